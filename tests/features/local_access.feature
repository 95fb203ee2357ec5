@feature-cli-access
Feature: Local access
  The daemon serves a REST API on loopback. The CLI reaches the daemon only through it;
  clients that are not on loopback are refused unless remote access is enabled, and
  then only with the token.

  Scenario: The daemon reaches ready and answers health and info
    Given a dms home with a node key protected by "pw"
    When I start the daemon with passphrase "pw"
    Then the daemon is ready
    And GET /health answers 200
    And "dms info" shows the node's DID
    And the OpenAPI document lists "/health" and "/api/v1/info"

  Scenario: A client on a non-loopback address is refused
    Given a dms home with a node key protected by "pw"
    And the API listens on all addresses
    When I start the daemon with passphrase "pw"
    Then the daemon is ready
    And GET /health from a non-loopback address answers 403
    And GET /health answers 200

  Scenario: Remote access with a token
    Given a dms home with a node key protected by "pw"
    And the API listens on all addresses
    And remote access is enabled with token "a-long-enough-secret-token"
    When I start the daemon with passphrase "pw"
    Then the daemon is ready
    And GET /health from a non-loopback address answers 401
    And GET /health from a non-loopback address with token "a-long-enough-secret-token" answers 200

  Scenario: Graceful shutdown on SIGTERM
    Given a dms home with a node key protected by "pw"
    When I start the daemon with passphrase "pw"
    Then the daemon is ready
    When I send SIGTERM to the daemon
    Then the daemon exits cleanly
    And the store records a graceful stop

  Scenario: The CLI says clearly when no daemon answers
    Given a fresh dms home
    When I run "dms info --api-addr 127.0.0.1:9"
    Then the command fails with "cannot reach the dms daemon at 127.0.0.1:9"

  Scenario: Two daemons share one machine on different API addresses
    Given a dms home with a node key protected by "pw"
    And a second dms home with a node key protected by "pw"
    When I start the daemon with passphrase "pw"
    And I start the second daemon with passphrase "pw"
    Then both daemons are ready with different DIDs

  Scenario: A second daemon on the same home is refused
    Given a dms home with a node key protected by "pw"
    When I start the daemon with passphrase "pw"
    Then the daemon is ready
    When I start another daemon on the same home with passphrase "pw"
    Then that daemon exits with an error containing "another dms"
