@feature-hardware-capability
Feature: Onboarding a machine's resources
  A provider offers part of its machine. The node knows what it has, refuses to offer
  more than that (naming the limit), accepts new amounts without offboarding, and keeps
  exact accounts of what is onboarded, committed, allocated and free.

  Background:
    Given a running node whose user is trusted

  Scenario: Onboarding realistic values shows them in the status
    When the user onboards "--cpu 1 --ram 512MiB --disk 1GiB"
    Then the command succeeds
    And "dms onboard status" shows 1 CPU core, "512.0 MiB" RAM and "1.0 GiB" disk onboarded
    And "dms onboard status" shows the same amounts free

  Scenario: Asking for more than the machine has names the limit
    When the user onboards "--cpu 4096 --ram 512MiB --disk 1GiB"
    Then the command fails saying "this machine has"
    When the user onboards "--cpu 1 --ram 64TiB --disk 1GiB"
    Then the command fails saying "RAM"

  Scenario: Re-onboarding with new values works without offboarding
    When the user onboards "--cpu 1 --ram 512MiB --disk 1GiB"
    And the user onboards "--cpu 1 --ram 256MiB --disk 2GiB"
    Then the command succeeds
    And "dms onboard status" shows 1 CPU core, "256.0 MiB" RAM and "2.0 GiB" disk onboarded

  Scenario: Offboarding withdraws the offer
    When the user onboards "--cpu 1 --ram 512MiB --disk 1GiB"
    And the user offboards
    Then "dms onboard status" says the machine is not onboarded

  Scenario: Bad sizes are refused with the accepted forms
    When the user onboards "--cpu 1 --ram lots --disk 1GiB"
    Then the command fails saying "lots"

  Scenario: The hardware is described, without a GPU on this machine
    When the user asks for the hardware spec
    Then it shows the CPU cores, the RAM and at least one disk
