@feature-ucan
Feature: Identity and keystore
  Every machine and user has a key pair; its DID is a did:key. Keys are kept in an
  encrypted keystore that only the right passphrase opens.

  Scenario: Create the node key and read its DID
    Given a fresh dms home
    When I run "dms key new" with passphrase "correct horse battery"
    Then the command succeeds
    And the output contains "did:key:z6Mk"
    And the key file "dms" has mode 600
    And "dms key did" prints the DID of key "dms"

  Scenario: Create a secp256k1 key
    Given a fresh dms home
    When I run "dms key new alice --type secp256k1" with passphrase "pw-alice"
    Then the command succeeds
    And the output contains "did:key:zQ3s"
    And "dms key list" lists the key "alice" of type "secp256k1"

  Scenario: Keys are never overwritten
    Given a dms home with a node key protected by "first"
    When I run "dms key new" with passphrase "second"
    Then the command fails with "already exists"

  Scenario: A wrong passphrase is a clear error and changes nothing
    Given a dms home with a node key protected by "right passphrase"
    When I start the daemon with passphrase "wrong passphrase"
    Then the daemon exits with an error containing "wrong passphrase"
    And the key file "dms" is unchanged

  Scenario: The daemon needs a node key
    Given a fresh dms home
    When I start the daemon with passphrase "anything"
    Then the daemon exits with an error containing "dms key new"

  Scenario Outline: did:key test vectors from the W3C did:key method specification
    Given the <type> secret key <seed>
    Then its DID is "<did>"

    Examples:
      | type      | seed                                                             | did                                                        |
      | ed25519   | 0000000000000000000000000000000000000000000000000000000000000000 | did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp   |
      | ed25519   | 0000000000000000000000000000000000000000000000000000000000000003 | did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ   |
      | secp256k1 | 9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0c | did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme  |
      | secp256k1 | 175a232d440be1e0788f25488a73d9416c04b6f924bea6354bf05dd2f1a75133 | did:key:zQ3shptjE6JwdkeKN4fcpnYQY3m9Cet3NiHdAfpvSUZBFoKBj  |
