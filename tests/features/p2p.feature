@feature-p2p-network @integration
Feature: Peer-to-peer network and actor messaging
  Three dms daemons on loopback find each other and talk only through signed,
  capability-checked actor messages. The CLI signs envelopes with the user's key and
  the local daemon relays them; refusals come back typed, never as timeouts.

  Background:
    Given three nodes A, B and C, where B and C bootstrap from A and each trusts its own user

  Scenario: The nodes discover each other
    Then "dms peers list" on every node shows the other two

  @feature-remote-invocation
  Scenario: A remote invocation needs a capability chain
    When the user of A invokes "/dms/node/peers/list" on B
    Then it is refused as "unauthorized" with "untrusted_root"
    When B grants the user of A "/dms/node/peers" and the user of A holds the token
    And the user of A invokes "/dms/node/peers/list" on B
    Then it succeeds

  @feature-remote-invocation
  Scenario: Public behaviors need no capability, and unknown ones are refused typed
    When the user of A invokes "/public/hello" on C
    Then it succeeds
    When the user of A invokes "/dms/no/such/behavior" on C
    Then it is refused as "unknown_behavior"

  @feature-actor-model
  Scenario: A broadcast reaches every node
    Given B trusts node A as a root
    And C trusts node A as a root
    And A grants the user of A "/broadcast/hello" on topic "/dms/hello" and the user of A holds the token
    When the user of A broadcasts "/broadcast/hello"
    Then answers come from A, B and C

  Scenario: A revocation broadcast makes the revoked token fail on every node
    Given C trusts node B as a root
    And B grants the user of A "/dms/node/peers" and the user of A holds the token
    When the user of A invokes "/dms/node/peers/list" on C
    Then it succeeds
    When the user of B has B revoke the token it gave the user of A
    Then the user of A invoking "/dms/node/peers/list" on C is soon refused as "unauthorized" with "revoked"
    And the user of A invoking "/dms/node/peers/list" on B is soon refused as "unauthorized" with "revoked"

  Scenario: Removing a root while the daemon runs is in force at once
    When the user of A invokes "/dms/node/peers/list" on A
    Then it succeeds
    When "dms cap remove" takes the user of A off the roots of node A
    And the user of A invokes "/dms/node/peers/list" on A
    Then it is refused as "unauthorized" with "untrusted_root"

  Scenario: Removing the whole node context while the daemon runs is in force at once
    When the user of B invokes "/dms/node/peers/list" on B
    Then it succeeds
    When "dms cap remove --all" removes the capability context of node B
    And the user of B invokes "/dms/node/peers/list" on B
    Then it is refused as "unauthorized" with "untrusted_root"
