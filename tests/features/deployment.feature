@feature-job-orchestration @integration
Feature: Deploying ensembles across a network
  A user submits an ensemble to their own node; providers bid with reservations or
  refuse with reasons, the orchestrator chooses by score, commits, allocates and starts
  the allocations, and follows them to the end. Everything runs as real `dms run`
  processes on loopback (`dms devnet`).

  Background:
    Given a devnet of 3 nodes is up

  Scenario: Two WebAssembly tasks run on two different nodes and print their outputs
    When the devnet user deploys "examples/hello.yaml"
    Then the deployment succeeds
    And the output shows "hello from the greet allocation"
    And the output shows "42: the answer allocation ran on another machine"
    And the deployment is "completed" with its 2 allocations on 2 different peers
    And "dms deployments info" shows where each node went, each actor's own DID and the latest events

  Scenario: A service runs until it is shut down, and every resource comes back
    Given the free resources of every node are noted
    When the devnet user deploys a WebAssembly service
    Then the deployment succeeds
    And the deployment is "running"
    And one node has less free resources than before
    When the devnet user shuts the deployment down
    Then the deployment is "shut_down"
    And every node has the same free resources as before

  @feature-supervision-model
  Scenario: A failing service is restarted by its policy, then given up on
    When the devnet user deploys a WebAssembly service that exits with code 1 and may restart 2 times
    Then the deployment eventually fails with "gave up after 2 restarts"
    And its events say "restart 1 of 2"
    And its events say "restart 2 of 2"

  Scenario: An impossible ensemble fails early with the reason of every node
    When the devnet user deploys an ensemble needing 16GiB of RAM with a deadline of 60s
    Then the deployment fails before its deadline, as it cannot be placed
    And the error says "0 of 3 peers could take it"
    And the error says "insufficient_ram (needs 16.0 GiB RAM, 1.0 GiB free"

  Scenario: A deployment waiting for resources says why, and can be cancelled
    Given a WebAssembly service taking 0.75 CPU runs on every node
    When the devnet user submits a WebAssembly service needing 0.5 CPU
    Then the deployment list shows it pending because of "insufficient_cpu"
    When the devnet user shuts the deployment down
    Then the deployment is "shut_down"

  Scenario: Fifty deployments submitted at once from one home are all accepted
    When the devnet user submits 50 WebAssembly tasks at once
    Then all 50 are accepted with distinct ids

  Scenario: A provider whose reservation lapses before it is used is skipped and the deployment succeeds elsewhere
    Given node 1 holds bid reservations for only 1ms and offers the tightest fit
    When the devnet user deploys a WebAssembly task
    Then the deployment succeeds
    And the events say the allocate on node 1 failed
    And the task did not run on node 1

  @feature-actor-model
  Scenario: Killing and restarting the orchestrating node keeps its deployment
    When the devnet user deploys a WebAssembly service that avoids node 0
    Then the deployment succeeds
    When node 0 is killed and restarted
    Then the deployment is "running"
    And its events say the orchestrating node restarted
    And node 0's log still holds the run before its restart
    When the devnet user shuts the deployment down
    Then the deployment is "shut_down"

  @feature-actor-model
  Scenario: A revocation spread over gossip reaches a running deployment's actors at once
    When the devnet user deploys a WebAssembly service that avoids node 0
    Then the deployment succeeds
    And the deployment's logs can be read
    When the devnet user revokes node 0's deployment grant and spreads the revocation over gossip
    Then the deployment's logs are soon refused as "unauthorized"

  Scenario: A provider that requires contracts refuses bids without one, and the plan says so
    Given node 2 requires contracts
    When the devnet user plans "examples/hello.yaml"
    Then the output shows "contract_required"
    And the output shows "would place"

  Scenario: A Docker task runs from a locally built image
    Given the Docker test image is built
    When the devnet user deploys a Docker task printing "hello from a container"
    Then the deployment succeeds
    And the output shows "hello from a container"
