@feature-execution-and-resources @integration
Feature: Ports: what an allocation listens on is published on its provider
  An allocation's ports are published on the machine it runs on: on the public port a
  node port map names, or on a free one the provider picks. `dms deployments info`
  shows where each is reachable, and a public port already taken on a machine is a
  refusal when it bids, not a failure when the container starts.

  Background:
    Given a devnet of 3 nodes is up
    And the Docker test image is built

  Scenario: A Docker service's port 8080 is published and answers at the address shown
    When the devnet user deploys a Docker web service answering "hello from port 8080" on port 8080
    Then the deployment succeeds
    And "dms deployments info" shows where port 8080/tcp is reachable
    And a request to that address is answered with "hello from port 8080"

  Scenario: Two services asking for the same public port do not both bid for it
    Given a free public port is chosen
    When the devnet user deploys a Docker web service answering "first" on port 8080 published at that port
    Then the deployment succeeds
    And a request to that public port on this machine is answered with "first"
    When the devnet user plans a Docker web service answering "second" on port 8080 published at that port
    Then the output shows "port: port"
    And no peer would take it, each refusing with "is in use on this machine" or "is held by"
