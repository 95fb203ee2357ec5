@feature-cli-access @integration
Feature: The key agent: signed CLI calls without unlocking the key each time
  `dms agent start` unlocks the user's keys once (passphrase from DMS_PASSPHRASE or the
  terminal) and keeps them in a background agent for a bounded time, on an owner-only
  socket; signed commands ask it for signatures instead of running the passphrase's
  scrypt on every call. The agent signs actor requests only, never capability tokens.
  `dms agent lock`, or the end of its lifetime, forgets the keys.

  Background:
    Given a devnet of 2 nodes is up

  Scenario: With the agent running a signed call needs no passphrase; after lock it does again
    When the devnet user starts the key agent for 1m
    Then a signed call as the devnet user without a passphrase succeeds
    And the agent's socket is private to its owner
    When the devnet user locks the key agent
    Then a signed call as the devnet user without a passphrase fails with "dms agent start"
