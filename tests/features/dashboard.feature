@feature-cli-access @integration
Feature: The web dashboard
  The daemon serves a web page with the same owner-only access as its API: `dms dashboard`
  opens it with a one-time login link (`--url` prints it). The page shows the node (its
  identity, peers and how they are reached, resources and benchmarks), its deployments
  (state, allocations on a map of their providers, events as they happen, logs with
  follow) and its capability contexts. It only reads.

  Background:
    Given a devnet of 2 nodes is up

  Scenario: The dashboard shows a running deployment and follows its events live
    When the devnet user deploys a WebAssembly service of two allocations that print a line
    And the devnet user opens node 0's dashboard in a headless browser
    Then the page shows the node's identity and its peers
    And the page shows the deployment running with its two allocations on the map
    And the page shows the allocation's log line "serving requests"
    And a screenshot "dashboard-running" is saved
    When the page is marked
    And the devnet user shuts the deployment down
    Then the page shows the event "shut down; every resource released" as it happens, without a reload
    And a screenshot "dashboard-shut-down" is saved

  Scenario: A login link works once and the dashboard cannot change anything
    When the devnet user asks node 0 for a dashboard login URL
    Then the login token works once, and the session reads but cannot change anything
    And the page opened without a login link says how to log in
