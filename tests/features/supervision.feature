@feature-supervision-model @integration
Feature: Supervision: lost providers are noticed and replaced, nothing is orphaned
  Allocations send their orchestrator a heartbeat every second. A provider silent for
  `deployment.lost_after` (5 s) that does not answer, while the orchestrating node still
  reaches other peers, is lost: its allocations are placed again elsewhere. A copy that
  comes back after it was replaced is told to stop. Health checks run on the provider;
  an unhealthy workload is restarted by its policy. A node with `redundancy` keeps
  standbys reserved on other providers; one takes over without a bid round. Real `dms run` processes killed
  with SIGKILL; Docker containers survive their provider, as they do in production.

  Background:
    Given the Docker test image is built
    And a devnet of 3 nodes is up

  Scenario: A killed provider's service runs elsewhere, and its stale copy stops when it returns
    When the devnet user deploys a Docker service that avoids node 0
    Then the deployment succeeds
    When the provider of the service is killed
    Then the service soon runs on another node
    And its events say "lost: no heartbeat"
    And the service is at attempt 2, its first copy given up on the killed node
    When the killed node is started again
    Then its stale copy is stopped, its resources are free, and one copy of the service runs
    And its events say "told it to stop (it was replaced)"

  Scenario: A standby takes over when the primary's provider dies, without a bid round
    When the devnet user deploys a Docker service that avoids node 0, with one standby
    Then the deployment succeeds
    And a standby for it is kept on the third node
    When the provider of the service is killed
    Then the service soon runs on another node
    And the service runs where its standby was
    And its events say "standby takes over: only on"
    And its events eventually say "no standby for only yet"
    When the killed node is started again
    Then its stale copy is stopped, its resources are free, and one copy of the service runs

  Scenario: The orchestrating node down for 20 seconds keeps its deployment, nothing redeployed
    When the devnet user deploys a Docker service that avoids node 0
    Then the deployment succeeds
    When node 0 is killed, kept down for 20 seconds and started again
    Then the service still runs on its first provider, at attempt 1, after a while
    And the deployment is "running"

  Scenario: A service whose HTTP health check answers 500 is restarted by its policy, then given up on
    When the devnet user deploys a Docker web service whose health check answers 500 and may restart 2 times
    Then the deployment eventually fails with "unhealthy"
    And its events say "GET /cgi-bin/health answered 500"
    And its events say "restart 1 of 2"
    And its events say "gave up after 2 restarts"

  Scenario: one_for_all over two providers: one allocation exits 1, both restart
    When the devnet user deploys two WebAssembly services under one_for_all, one exiting 1 once started
    Then its events eventually say "supervisor (one_for_all): a failed and was restarted by its provider; restarting b"
    And its events eventually say "used up its 1 restarts"
    And its events eventually say "escalation is teardown"
    And the two services ran on two providers, and b was restarted by its supervisor
    And the deployment is "shut_down"
