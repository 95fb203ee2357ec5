use super::*;

const X86: &str = "processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
cpu MHz\t\t: 2095.078
flags\t\t: fpu vme sse2 avx2 avx512f sse2

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
cpu MHz\t\t: 3900.000
flags\t\t: fpu vme
";

const ARM: &str = "processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes crc32
CPU implementer\t: 0x41
CPU part\t: 0xd0c

processor\t: 1
Features\t: fp
CPU implementer\t: 0x41
";

#[test]
fn parses_x86_cpuinfo_from_the_first_processor() {
    let info = parse_cpuinfo(X86);
    assert_eq!(info.model.as_deref(), Some("Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz"));
    assert_eq!(info.vendor.as_deref(), Some("GenuineIntel"));
    assert_eq!(info.mhz, Some(2095.078));
    assert_eq!(info.flags, ["avx2", "avx512f", "fpu", "sse2", "vme"]);
}

#[test]
fn parses_arm_cpuinfo_and_names_the_implementer() {
    let info = parse_cpuinfo(ARM);
    assert_eq!(info.model, None);
    assert_eq!(info.vendor.as_deref(), Some("ARM"));
    assert_eq!(info.flags, ["aes", "asimd", "crc32", "evtstrm", "fp"]);
}

#[test]
fn empty_cpuinfo_gives_nothing() {
    assert_eq!(parse_cpuinfo(""), CpuInfo::default());
}

#[test]
fn reads_the_frequency_in_a_model_name() {
    assert_eq!(mhz_from_model("Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz"), Some(2100));
    assert_eq!(mhz_from_model("AMD EPYC 7763 64-Core Processor"), None);
    assert_eq!(mhz_from_model("odd @ fastGHz"), None);
}
