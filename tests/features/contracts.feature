@feature-tokenomics @integration
Feature: Contracts between requesters and providers, usage receipts, budgets
  A provider that requires contracts bids only under a contract signed by it and the
  requesting node; allocations under a contract sign usage receipts on a schedule; the
  orchestrating node books them, shuts a deployment down when what they owe reaches its
  budget, and the requester's and the provider's ledgers agree. Real `dms run`
  processes on loopback (`dms devnet`); node 0 orchestrates.

  Background:
    Given a devnet of 3 nodes is up
    And node 1 requires contracts and signs usage receipts every 1s

  Scenario: A provider refuses a deployment without a contract, and one under a contract it is not a party to
    When the devnet user plans a WebAssembly service on node 1 with no contract
    Then the output shows "contract_required"
    Given node 0 and node 2 signed a contract paying 3600 USD per hour
    When the devnet user plans a WebAssembly service on node 1 under that contract
    Then the output shows "contract_not_a_party"

  Scenario: Under a valid contract the service runs, receipts arrive on schedule, and the ledgers agree
    Given node 0 and node 1 signed a contract paying 3600 USD per hour
    When the devnet user deploys a WebAssembly service on node 1 under that contract
    Then the deployment succeeds
    And the deployment soon has 3 receipts, numbered in order, each covering the 1s schedule
    And what the deployment owes is 1 USD for every second its receipts cover
    When the devnet user shuts the deployment down
    Then the final receipt soon arrives
    And the ledgers of node 0 and node 1 agree on what the contract owes

  Scenario: A replayed receipt counts once and a forged one is refused
    Given node 0 and node 1 signed a contract paying 3600 USD per hour
    When the devnet user deploys a WebAssembly service on node 1 under that contract
    Then the deployment succeeds
    And the deployment soon has 2 receipts, numbered in order, each covering the 1s schedule
    When the devnet user hands the orchestrating node a receipt node 1 sent before
    Then the receipt is taken as a repeat and counted once
    When the devnet user hands the orchestrating node a receipt of node 1 with its usage changed
    Then the receipt is refused as "receipt_bad_signature"

  Scenario: A deployment that exhausts its budget is shut down with that reason
    Given node 0 and node 1 signed a contract paying 3600 USD per hour
    When the devnet user deploys a WebAssembly service on node 1 under that contract with a budget of 3 USD
    Then the deployment succeeds
    And the deployment is soon "shut_down" because "budget reached"
    And the ledgers of node 0 and node 1 both record "budget reached"
    And the ledgers of node 0 and node 1 agree on what the contract owes

  Scenario: A contract revoked by its provider binds no more, at either party
    Given node 0 and node 1 signed a contract paying 3600 USD per hour
    When node 1 revokes the contract because "machine retired"
    Then node 0 soon sees the contract revoked because "machine retired"
    When the devnet user deploys a WebAssembly service on node 1 under that contract
    Then the error says "machine retired"
