use std::collections::BTreeMap;

use super::*;

fn tcg() -> Backend {
    Backend {
        hypervisor: Hypervisor::Qemu,
        binary: "/usr/bin/qemu-system-x86_64".into(),
        accel: Accel::Tcg,
        no_kvm: Some("KVM unusable".into()),
        tsc_khz: Some(2_596_154),
    }
}

#[test]
fn the_command_line_adds_what_the_hypervisor_needs_then_env_then_args() {
    let env = BTreeMap::from([("DMS_RUN".to_string(), "echo hi; exit 3".to_string())]);
    let line =
        cmdline(&tcg(), Some("loglevel=7"), true, &env, &["a".into(), "b".into()]).expect("valid");
    assert_eq!(
        line,
        "console=ttyS0 reboot=t panic=-1 pci=off edd=off tsc_early_khz=2596154 tsc=reliable \
         root=/dev/vda rw loglevel=7 DMS_RUN=\"echo hi; exit 3\" -- a b"
    );
    let kvm = Backend { accel: Accel::Kvm, tsc_khz: None, no_kvm: None, ..tcg() };
    let line = cmdline(&kvm, Some("root=/dev/vdb"), true, &BTreeMap::new(), &[]).expect("valid");
    assert_eq!(line, "console=ttyS0 reboot=t panic=-1 pci=off edd=off loglevel=3 root=/dev/vdb");
}

#[test]
fn what_the_kernel_command_line_cannot_carry_is_refused() {
    let bad = |k: &str, v: &str| {
        cmdline(&tcg(), None, false, &BTreeMap::from([(k.into(), v.into())]), &[])
            .expect_err("refused")
    };
    assert!(bad("A-B", "x").contains("letters, digits"));
    assert!(bad("A", "say \"hi\"").contains("cannot hold"));
    assert!(bad("A", "two\nlines").contains("cannot hold"));
    let error = cmdline(&tcg(), None, false, &BTreeMap::new(), &["a b".into()]).expect_err("space");
    assert!(error.contains("splits them at spaces"));
    assert!(bad("init", "/bin/sh").contains("its own parameter"));
    let many: BTreeMap<String, String> = (0..31).map(|n| (format!("V{n}"), "x".into())).collect();
    let error = cmdline(&tcg(), None, false, &many, &[]).expect_err("too many");
    assert!(error.contains("at most"), "{error}");
    let long = "x".repeat(3000);
    let error = cmdline(&tcg(), Some(&long), false, &BTreeMap::new(), &[]).expect_err("long");
    assert!(error.contains("more than the 2047"), "{error}");
}

#[test]
fn qemu_gets_a_microvm_with_the_console_in_a_file_and_a_qmp_socket() {
    let plan = Plan {
        dir: "/var/dms/vms/vm-a-1".into(),
        name: "dms-vm-a-1".into(),
        kernel: "/k".into(),
        initrd: Some("/i".into()),
        rootfs: Some("/r".into()),
        shares: vec![("dms0".into(), "/vol".into(), true)],
        forwards: vec![
            Forward {
                protocol: crate::spec::Protocol::Tcp,
                host_ip: None,
                host_port: 18080,
                guest_port: 80,
            },
            Forward {
                protocol: crate::spec::Protocol::Udp,
                host_ip: Some("127.0.0.1".parse().expect("ip")),
                host_port: 5353,
                guest_port: 53,
            },
        ],
        cmdline: "console=ttyS0".into(),
        vcpus: 2,
        memory_mib: 176,
    };
    let args = qemu_args(&tcg(), &plan).join(" ");
    for part in [
        "-M microvm -accel tcg,tb-size=32 -cpu max -smp 2 -m 176M",
        "-chardev file,id=console,path=/var/dms/vms/vm-a-1/console.log,append=on -serial chardev:console",
        "-qmp unix:/var/dms/vms/vm-a-1/control.sock,server=on,wait=off",
        "-kernel /k -append console=ttyS0 -initrd /i",
        "-drive id=rootfs,file=/r,format=raw,if=none -device virtio-blk-device,drive=rootfs",
        "-netdev user,id=net0,restrict=on,hostfwd=tcp::18080-10.0.2.15:80,hostfwd=udp:127.0.0.1:5353-10.0.2.15:53 -device virtio-net-device,netdev=net0",
        "-fsdev local,id=fs0,path=/vol,security_model=mapped-xattr,readonly=on -device virtio-9p-device,fsdev=fs0,mount_tag=dms0",
    ] {
        assert!(args.contains(part), "{part} in {args}");
    }
    let kvm = Backend { accel: Accel::Kvm, ..tcg() };
    assert!(qemu_args(&kvm, &plan).join(" ").contains("-accel kvm -cpu host"));
    let odd = Plan { dir: "/var/dms/a,b".into(), ..plan };
    assert!(qemu_args(&tcg(), &odd).join(" ").contains("path=/var/dms/a,,b/console.log,append=on"));
}

#[test]
fn the_tsc_rate_comes_from_cpuinfo() {
    assert_eq!(cpu_mhz_khz("processor\t: 0\ncpu MHz\t\t: 2596.154\n"), Some(2_596_154));
    assert_eq!(cpu_mhz_khz("processor\t: 0\n"), None);
    assert_eq!(tcg().describe(), "qemu-microvm (tcg)");
}

#[test]
fn kvm_is_not_used_inside_a_virtual_machine_unless_asked() {
    let bare = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx\n";
    let guest = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx hypervisor\n";
    assert!(not_nested(bare).is_ok());
    if std::env::var(NESTED_KVM_ENV).as_deref() != Ok("1") {
        let why = not_nested(guest).expect_err("nested");
        assert!(why.contains(NESTED_KVM_ENV), "{why}");
    }
}
