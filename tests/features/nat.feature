@feature-p2p-network @integration
Feature: NAT: a node behind a masquerading router stays reachable through a relay
  A node that peers cannot dial (behind NAT or a firewall) keeps a reservation on a relay
  (`network.relays`) and is dialable through it (hole punching then tries to make the
  connection direct where the network allows). `dms peers list` says which peers are
  reached how. The scenario builds its own network namespaces (root): a public network,
  a router that masquerades a LAN and lets it reach only the relay, and the LAN.

  Scenario: A node behind NAT is reached through a relay, and "dms peers list" says how
    Given a relay node and a node C on a public network, and a node B behind a masquerading router that keeps a reservation on the relay
    Then C has no route to B's own address
    When C connects to B through the relay
    Then C reaches B: "/public/hello" on B answers
    And "dms peers list" on C says B is reached through the relay, and the relay directly
