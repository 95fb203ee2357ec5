@feature-storage @integration
Feature: Storage: volumes, inputs staged in, outputs published, credentials kept home
  An allocation's volumes are directories on its provider (mounted into containers,
  preopened for WebAssembly, shared with VMs over virtio-9p); its inputs are copied in from an S3-compatible store
  before it starts and its outputs copied out when it ends, through URLs the user's own
  node presigns: the credentials never leave the user's machine. Everything runs as
  real `dms run` processes and a real S3 server (s3s-fs, SigV4 checked).

  Background:
    Given a devnet of 3 nodes is up
    And an S3 server with bucket "data" holding "in/input.txt" = "hello storage"

  Scenario: A WebAssembly task reads a staged input and its output lands in the bucket
    Given the free resources of every node are noted
    When the devnet user deploys the WebAssembly upper-caser with the S3 credentials
    Then the deployment succeeds
    And the output shows "staged"
    And the bucket holds "results/result.txt" = "HELLO STORAGE"
    And "dms deployments outputs" lists "lake:results/result.txt" with its size and sha256
    And no provider keeps a volume of the deployment
    And every node has the same free resources as before
    And the secret key appears nowhere in any node's home

  Scenario: A Docker task reads a staged input and its output lands in the bucket
    Given the Docker test image is built
    When the devnet user deploys the Docker upper-caser with the S3 credentials
    Then the deployment succeeds
    And the bucket holds "results/result.txt" = "HELLO STORAGE"
    And "dms deployments outputs" lists "lake:results/result.txt" with its size and sha256
    And no provider keeps a volume of the deployment

  Scenario: A VM boots from a kernel and initramfs staged from the store, and its output lands in the bucket
    Given the test VM images are in bucket "data" under "images"
    When the devnet user deploys a VM upper-caser booted from images in the store, with the S3 credentials
    Then the deployment succeeds
    And the bucket holds "results/result.txt" = "HELLO STORAGE"
    And no provider keeps a volume of the deployment

  Scenario: A missing input object fails the deployment before it starts, naming it
    When the devnet user deploys the WebAssembly upper-caser reading "in/missing.txt" with the S3 credentials
    Then the deployment is refused with "input lake:in/missing.txt: no such object"
    And no allocation was started anywhere

  Scenario: Wrong credentials are a clear error on the user's machine at submission
    When the devnet user deploys the WebAssembly upper-caser with a wrong secret key
    Then the deployment is refused with "refused the credentials"
    And the deployment is refused with "AWS_SECRET_ACCESS_KEY"

  Scenario: A service's outputs are published on request while it runs
    Given the Docker test image is built
    When the devnet user deploys a Docker service writing "service report" to /data/out/report.txt
    Then the deployment succeeds
    When the devnet user runs "dms deployments outputs --publish" for the deployment
    Then the bucket holds "results/report.txt" = "service report"
    And the output shows "lake:results/report.txt"

  Scenario: A workload that fills its volume beyond its size is stopped and fails, saying so
    Given the Docker test image is built
    When the devnet user deploys a Docker task writing 4 MiB into a volume of 1MiB
    Then the deployment eventually fails with "more than its size 1.0 MiB"
    And no provider keeps a volume of the deployment
