@feature-execution-and-resources @integration
Feature: Virtual machine allocations
  `executor: vm` boots a kernel with an initramfs (or a root disk) in a micro VM: QEMU's
  microvm machine here (with KVM where it works, TCG otherwise), Firecracker where it is
  installed. The serial console is the allocation's log, and the guest reports its exit
  code with a `dms-exit-code: N` line. The images are Debian's kernel and a busybox
  initramfs (scripts/vm-test-images), served over HTTP with their checksums; the
  initramfs's init runs the DMS_RUN variable of the ensemble's environment.

  Background:
    Given a devnet of 2 nodes is up
    And the test VM images are served over HTTP

  Scenario: A VM task boots, prints a line and exits with the code it chose
    When the devnet user deploys a VM task running "echo hello from the guest; exit 3"
    Then the output shows "hello from the guest"
    And the error says "failed (exit 3)"

  Scenario: A small local disk image is sent along with the deployment and read by the guest
    When the devnet user deploys a VM task with the local disk image "disk.img" holding "hello from a disk"
    Then the deployment succeeds
    And the output shows "hello from a disk"

  Scenario: A VM service runs until it is shut down, and then no qemu process remains
    When the devnet user deploys a VM service running "while true; do echo tick; sleep 1; done"
    Then the deployment succeeds
    And the deployment is "running"
    And a qemu process runs the deployment
    When the provider of the VM is killed and restarted
    Then the same qemu process still runs it, and the deployment is running
    When the devnet user shuts the deployment down
    Then the deployment is "shut_down"
    And no qemu process of the deployment remains

  Scenario: A VM service's port is published and answers at the address shown
    When the devnet user deploys a VM web service answering "hello from a VM" on port 8080
    Then the deployment succeeds
    And "dms deployments info" shows where port 8080/tcp is reachable
    And a request to that address is answered with "hello from a VM"

  Scenario: A guest asking for more memory than its allocation is refused before placement
    When the devnet user deploys a VM task whose guest asks for 512MiB of a 256MiB allocation
    Then the deployment is refused with "do not fit the allocation's resources.ram"
    And nothing was submitted

  Scenario: dms doctor says which hypervisor runs VMs, and with what acceleration
    Then "dms doctor" names the hypervisor and its acceleration
