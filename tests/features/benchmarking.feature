@feature-machine-benchmarking
Feature: Benchmarking the machine
  Benchmarks measure CPU, memory and disk within a time bound, are stored with a
  timestamp, and appear in the onboarding status and the advertised capability.

  Scenario: A benchmark finishes within its bound and its results are kept
    Given a running node whose user is trusted
    And the user onboards "--cpu 1 --ram 512MiB --disk 1GiB"
    When the user runs "dms benchmark --budget 6s"
    Then it finishes within its budget with CPU, memory and disk scores
    And "dms onboard status" shows the benchmark scores
    And the node's advertised capability carries the benchmark scores
