Feature: A local network in one command
  `dms devnet up` starts several dms nodes as separate processes on loopback, each with
  its own home and key, joined through the first node and trusting one devnet user.

  Scenario: Three nodes come up, find each other, answer the user, and go down
    When I run "dms devnet up --nodes 3" in a fresh home
    Then "dms devnet status" shows 3 running nodes
    And "dms devnet cli peers list" eventually lists 2 peers
    And "dms devnet cli actor cmd /broadcast/hello" is answered by 3 nodes
    When the devnet is brought down with "dms devnet down"
    Then "dms devnet status" says there is no devnet
    And no devnet node process is left
