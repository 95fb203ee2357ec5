@feature-execution-and-resources @integration
Feature: A node that goes away leaves no workload running
  Containers and VMs outlive a restart of the daemon, which re-attaches them. When a
  node goes away for good, `dms cleanup` stops and removes every workload it left
  running — only its own, found by its scope label and its VM records. Removing the
  Debian package runs it (scripts/package-test installs and removes the package in a
  clean container).

  Scenario: dms cleanup removes the container a stopped node left running
    Given a devnet of 2 nodes is up
    And the Docker test image is built
    When the devnet user deploys a Docker service that sleeps
    And the node running the deployment is stopped
    Then the deployment's container still runs
    When "dms cleanup" runs in that node's home
    Then it names the container it removed, and none of the deployment's containers is left

  Scenario: dms cleanup refuses while the daemon runs
    Given a devnet of 1 nodes is up
    When "dms cleanup" runs in node 0's home
    Then the command fails with "stop it first"
