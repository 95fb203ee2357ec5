@feature-ip-over-libp2p @integration
Feature: Subnet: one private IPv4 network per deployment, across providers
  Every Docker allocation of an ensemble with a `subnet` gets an address on the
  deployment's own network (interface `dms0` in its namespace) and resolves every other
  allocation as `<name>.internal`. Packets between providers travel as QUIC datagrams
  authenticated by the providers' node identities; nothing outside the deployment
  reaches its addresses, and shutting it down leaves nothing behind.

  Background:
    Given a devnet of 3 nodes is up
    And the Docker test image is built

  Scenario: A compose web task reaches its db service on another provider by name
    Given a free public port is chosen
    When the devnet user translates a compose file with a db service published at that port and a web task reading db.internal:5432
    And deploys it with db pinned to node 1 and web to node 2
    Then the deployment succeeds
    And the output of web is "rows from db"
    And "dms deployments info" shows the subnet addresses of db and web
    And a connection to that public port on this machine reads "rows from db"
    When a second deployment on node 2 tries to reach db's subnet address
    Then it could not, and neither can this machine
    When the devnet user shuts the deployment down
    Then no container, TUN device or firewall rule made for it remains

  Scenario: A db that moves to another provider keeps its address and name
    When the devnet user deploys a db service "work" named db and a web service on node 0 reading db.internal
    Then the web service reads rows from one copy of the db
    When the provider of the service is killed
    Then the service soon runs on another node
    And the web service reads rows from another copy of the db, at the same address
    When the killed node is started again
    Then one copy of the db and its sandbox remain

  Scenario: A provider that cannot join subnets refuses subnet deployments at bid time
    Given node 2 has subnets disabled
    When the devnet user plans a subnet deployment pinned to node 2
    Then the output shows "subnet: cannot join the deployment's subnet: subnets are disabled here"
