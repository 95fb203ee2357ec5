@feature-observability @integration
Feature: Telemetry: events, one trace per deployment across machines, metrics
  Every node records what happens to deployments, allocations, bids, refusals,
  executors and peers as events: kept in its store (`dms events`), shipped to
  Elasticsearch's `_bulk` API, exported with traces, logs and metrics over OTLP/HTTP,
  and counted in the Prometheus metrics of `/metrics`. No Elasticsearch or OTLP
  collector can be installed here: a receiver in the test speaks their wire protocols
  (NDJSON `_bulk`, OTLP protobuf); Prometheus and promtool are the real ones.

  Scenario: A deployment's events reach Elasticsearch and its spans are one trace across nodes
    Given a devnet of 3 nodes shipping telemetry to a receiver is up
    When the devnet user deploys "examples/hello.yaml"
    Then the deployment succeeds
    And "dms events --deployment" on node 0 lists the deployment from "submitted" to "completed"
    And every event of the deployment on every node reaches the receiver with its deployment id
    And the providers' events include a bid and the allocation reaching "completed"
    And spans from two nodes share the deployment's trace id, as do its events

  Scenario: Prometheus scrapes a node's metrics with the node's local token
    Given a devnet of 3 nodes is up
    When the devnet user deploys "examples/hello.yaml"
    Then the deployment succeeds
    And "promtool check metrics" accepts the metrics of node 0
    And Prometheus scraping node 0 finds dms_deployments{state="completed"} = 1
    And Prometheus scraping node 0 finds series of dms_bids_total and dms_free_cpu_cores
    And "dms status" on node 0 shows "2 (2 direct, 0 relayed)"
    And "dms status" on node 0 shows "0 unfinished of 1 deployments"

  Scenario: An operator raises a remote node's log level while it runs
    Given a devnet of 3 nodes is up
    When node 0 sends node 1 a message for a behavior it does not have
    Then node 1's log does not show "Refused a message"
    When the devnet user sets the log level of node 1 to "info,dms_actor=debug" from node 0
    Then "dms log-level" on node 1 says "info,dms_actor=debug"
    When node 0 sends node 1 a message for a behavior it does not have
    Then node 1's log shows "Refused a message"
    And "dms events --kind node" on node 1 lists "started"

  Scenario: A remote node's log level needs a capability, and redirecting its events another
    Given three nodes A, B and C, where B and C bootstrap from A and each trusts its own user
    When the user of A invokes "/dms/node/logger/config" on B
    Then it is refused as "unauthorized" with "untrusted_root"
    When B grants the user of A "/dms/node/logger/config" and the user of A holds the token
    And the user of A invokes "/dms/node/logger/config" on B
    Then it succeeds
    When the user of A invokes "/dms/node/logger/sink" with "elasticsearch_url=http://127.0.0.1:9" on B
    Then it is refused as "unauthorized"
