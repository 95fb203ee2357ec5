@feature-ucan
Feature: Capabilities
  Every message is authorized by a chain of capability tokens. Identities keep
  capability contexts: roots they trust, anchors they hold, revocations they know.

  Background:
    Given a dms home with a node key protected by "pw"
    And identities alice, bob, carol, dave and mallory with capability contexts

  Scenario: A root grant authorizes everything under its path, and nothing else
    When alice grants bob "/dms/node" for "1h"
    Then alice allows bob to invoke "/dms/node/peers/list"
    And alice refuses bob invoking "/dms/deployment/new" with "not_granted"

  Scenario: A three-link delegation chain narrows at every step
    When alice grants bob "/dms" for "1h" with depth 3
    And bob holds the token from alice
    And bob delegates "/dms/node" to carol for "30m"
    And carol holds the token from bob
    And carol delegates "/dms/node/peers" to dave for "10m"
    Then alice allows dave to invoke "/dms/node/peers/list"
    And alice refuses dave invoking "/dms/node/onboarding" with "not_granted"
    And carol cannot delegate "/dms/deployment" to dave

  Scenario: Revoking a delegation refuses it and everything built on it
    When alice grants bob "/dms/node" for "1h"
    And bob holds the token from alice
    And bob delegates "/dms/node/peers" to carol for "30m"
    Then alice allows carol to invoke "/dms/node/peers/list"
    When bob revokes the token bob gave carol
    And alice imports that revocation
    Then alice refuses carol invoking "/dms/node/peers/list" with "revoked"

  Scenario: A revocation by someone outside the chain does not count
    When alice grants bob "/dms/node" for "1h"
    And mallory revokes the token alice gave bob
    And alice imports that revocation
    Then alice allows bob to invoke "/dms/node/peers/list"

  Scenario: A require anchor admits another issuer for some capabilities only
    Given alice trusts bob as a root
    When bob grants carol "/dms/deployment" for "1h" with depth 2
    And alice anchors the token bob gave carol as require
    And carol grants dave "/dms/deployment/bid" for "30m"
    Then alice allows dave to invoke "/dms/deployment/bid"
    When carol grants dave "/dms/node" for "30m"
    Then alice refuses dave invoking "/dms/node/peers/list" with "untrusted_root"

  Scenario: Mallory's self-made token is refused
    When mallory grants dave "/" for "1h"
    Then alice refuses dave invoking "/dms/node/peers/list" with "untrusted_root"

  Scenario: Garbage is refused as malformed
    Then alice refuses dave invoking "/dms/node" with token "dmscap1.AAAA" and "malformed"

  Scenario: Contexts are managed through the running daemon
    When I start the daemon with passphrase "pw"
    Then the daemon is ready
    When I run "dms cap anchor -c dms --root did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp" against the daemon
    Then the command succeeds
    When I run "dms cap list -c dms" against the daemon
    Then the output contains "roots:    did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
