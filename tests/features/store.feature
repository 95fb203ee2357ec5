@feature-local-db
Feature: Embedded store
  The node keeps its state in an embedded database: typed records with prefix scans
  and atomic transactions, and JSON documents searchable by field.

  Scenario: Documents are found by equality and range, with or without an index
    Given an empty store
    And the documents
      | id | name  | status  | cpu |
      | a  | alpha | running | 2   |
      | b  | beta  | stopped | 8   |
      | c  | gamma | running | 16  |
    When I search for status = "running"
    Then the results are "a,c"
    When I search for cpu between 4 and 16
    Then the results are "b,c"
    When I index the field "cpu"
    And I search for cpu between 4 and 16
    Then the results are "b,c"

  Scenario: A failed transaction writes nothing
    Given an empty store
    When a transaction writes "x" and "y" and then fails
    Then neither "x" nor "y" is stored

  Scenario: Records survive a reopen
    Given an empty store
    When I put records "job/1", "job/2" and "node/1"
    And I reopen the store
    Then a prefix scan for "job/" returns "job/1,job/2"
