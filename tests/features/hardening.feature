@feature-cli-access
Feature: Hardening: nothing a client, a file or another local user does can crash or take over a node
  Dates beyond what RFC 3339 can write, closed pipes and sizes no machine offers are
  answered, not panicked on. The local API serves only its user: on its Unix socket
  (owner-only, no token), and on loopback TCP to clients that present the token the
  daemon keeps 0600 in its home.

  Background:
    Given a dms home with a node key protected by "pw"
    And identities alice and bob with capability contexts

  Scenario: A capability granted for ten million days prints, and lists once held
    When alice grants bob "/dms/node" for "10000000d"
    And bob holds the token from alice
    And I run "dms cap list -c bob" with passphrase "pw"
    Then the command succeeds
    And the output contains "after 9999-12-31"

  Scenario: Output into a closed pipe ends the command quietly
    When I run "dms scaffold" with its output closed
    Then it ends quietly, without a panic
    When I run "dms cap list -c alice" with its output closed
    Then it ends quietly, without a panic

  Scenario: Resources beyond any machine are refused when validated, with the limit
    Given an ensemble file "huge.yaml" with:
      """
      version: V1
      allocations:
        huge:
          type: task
          executor: docker
          resources: {cpu: {cores: 1e30}, ram: 100TiB}
          execution: {image: nginx:1.27}
      nodes:
        n: {allocations: [huge]}
      """
    When I validate "huge.yaml"
    Then the command fails with "the ensemble is not valid"
    And the error contains "allocations.huge.resources.cpu.cores: number out of range"
    And the error contains "expected: a number from 0.001 to 4096"

  Scenario: Another local user can neither read the API token nor use the API
    When I start the daemon with passphrase "pw"
    Then the daemon is ready
    And the daemon's API token file is readable by its user only
    And another local user cannot read the token, and running "dms info" against the daemon is refused with "local clients need"
    And GET /api/v1/info without the token answers 401 in the JSON shape
    And GET /health answers 200
    And "dms info" shows the node's DID
    And the daemon's API socket is usable by its user only
    And another local user cannot use the daemon's API socket, even where it can reach the file, refused with "Permission denied"
    And with the API token file removed, "dms info" through the socket shows the node's DID

  Scenario: Twenty thousand connection attempts leave /health answering, and memory returns
    When I start the daemon with passphrase "pw"
    Then the daemon is ready
    When I note the daemon's memory
    And 20000 connections are attempted on the API, each sending half a request, while /health is polled
    Then /health answered every poll during the flood
    And the daemon's memory comes back within 20 % of what was noted

  Scenario: Every error the API answers has the JSON shape
    When I run "dms config set api.request_timeout 1s"
    When I start the daemon with passphrase "pw"
    Then the daemon is ready
    And each of these requests is answered with its status in the JSON shape:
      | request                              | status | error                  |
      | GET /api/v1/info without the token   | 401    | unauthorized           |
      | GET /api/v1/nowhere                  | 404    | not_found              |
      | DELETE /health                       | 405    | method_not_allowed     |
      | PUT a context of 2 MiB               | 413    | payload_too_large      |
      | GET a path of 9 KiB                  | 414    | uri_too_long           |
      | PUT a context that is not JSON       | 400    | bad_request            |
      | PUT a context as text/plain          | 415    | unsupported_media_type |
      | PUT a context whose body never ends  | 408    | request_timeout        |
