@feature-feature-environment @integration
Feature: A local network in one command
  `dms devnet up` starts several dms nodes as separate processes on loopback, each with
  its own home and key, joined through the first node and trusting one devnet user;
  `--isolated` gives each its own network namespace, so that links can be cut
  (`dms devnet fault`), and `--hosts` runs them on other machines over SSH.

  Scenario: Three nodes come up, find each other, answer the user, and go down
    When I run "dms devnet up --nodes 3" in a fresh home
    Then "dms devnet status" shows 3 running nodes
    And "dms devnet cli peers list" eventually lists 2 peers
    And "dms devnet cli actor cmd /broadcast/hello" is answered by 3 nodes
    When the devnet is brought down with "dms devnet down"
    Then "dms devnet status" says there is no devnet
    And no devnet node process is left

  Scenario: A partition between two nodes of an isolated devnet holds back a deployment needing both, which says why, until it heals
    Given an isolated devnet of 3 nodes is up
    When the fault file "tests/faults/partition-1-2.toml" is applied
    Then node 1 and node 2 each stop seeing the other
    And node 0 still sees both
    When node 1 orchestrates a WebAssembly task pinned to node 2
    Then the deployment waits, saying it is pinned to node 2, which does not answer
    When the partition is healed with "dms devnet fault heal"
    Then the deployment completes
    When the devnet is brought down, collecting its artifacts
    Then its artifact folder holds every node's log, config and events
    And no namespace of the devnet is left

  Scenario: Three nodes on three SSH hosts deploy the example, and their logs come home at the end
    Given three SSH hosts in network namespaces, each running sshd that accepts a test key
    When the devnet user brings up a devnet on those hosts
    Then "dms devnet status" shows 3 running nodes
    When the devnet user deploys "examples/hello.yaml"
    Then the deployment succeeds
    And the output shows "42: the answer allocation ran on another machine"
    When the devnet is brought down, collecting its artifacts
    Then its artifact folder holds every node's log, config and events
