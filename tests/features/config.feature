@feature-cli-access
Feature: Configuration
  The node is configured by a commented TOML file in its home, overridable by
  DMS_<SECTION>_<KEY> variables; bad values are refused with the key named.

  Scenario: The default file documents every key
    Given a fresh dms home
    When I run "dms config show"
    Then the command succeeds
    And the config file documents every key with a comment

  Scenario: Setting a bad value names the key, the value and the expected form
    Given a fresh dms home
    When I run "dms config set api.addr localhost"
    Then the command fails with "`api.addr`"
    And the error contains "localhost"
    And the error contains "HOST:PORT"

  Scenario: Setting a good value keeps the comments
    Given a fresh dms home
    When I run "dms config set api.addr 127.0.0.1:9100"
    Then the command succeeds
    And "dms config get api.addr" prints "127.0.0.1:9100"
    And the config file contains "# Address of the local REST API"

  Scenario: An unknown key suggests the right one
    Given a fresh dms home
    When I run "dms config set api.adress 127.0.0.1:1"
    Then the command fails with "did you mean `api.addr`"

  Scenario: Environment variables override the file
    Given a fresh dms home
    When I run "dms config get log.level" with environment "DMS_LOG_LEVEL=debug"
    Then the command succeeds
    And the output contains "debug"

  Scenario: Remote access cannot be enabled without a token
    Given a fresh dms home
    When I run "dms config set api.allow_remote true"
    Then the command fails with "api.token"
