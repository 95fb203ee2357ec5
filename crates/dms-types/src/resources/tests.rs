use super::*;

const GIB: u64 = 1 << 30;

fn gpu(index: u32) -> Gpu {
    Gpu {
        index,
        vendor: GpuVendor::Nvidia,
        model: "RTX 4090".to_owned(),
        vram_bytes: 24 * GIB,
        uuid: None,
        drm_card: None,
    }
}

fn resources(cpu: u64, ram: u64, disk: u64, gpus: &[u32]) -> Resources {
    Resources {
        cpu_millicores: cpu,
        ram_bytes: ram,
        disk_bytes: disk,
        gpus: gpus.iter().copied().map(gpu).collect(),
    }
}

#[test]
fn parses_sizes() {
    let cases = [
        ("8GiB", 8 * GIB),
        ("8 GB", 8_000_000_000),
        ("8gb", 8_000_000_000),
        ("8G", 8_000_000_000),
        ("8Gi", 8 * GIB),
        ("512MiB", 512 << 20),
        ("1.5TiB", 3 << 39),
        ("1073741824", GIB),
        ("  42 b ", 42),
        (".5KiB", 512),
        ("1.", 1),
        ("0.1KiB", 102),    // 102.4 rounds down
        ("1.0005KB", 1001), // 1000.5 rounds up
        ("0", 0),
        ("16PiB", 16 << 50),
        ("15.5 EiB", 31 << 59),
        ("18.4 EB", 18_400_000_000_000_000_000),
        ("18446744073709551615", u64::MAX),
        ("1.0000000000000000001GiB", GIB), // digits past the 18th are ignored
    ];
    for (input, bytes) in cases {
        assert_eq!(parse_bytes(input), Ok(bytes), "{input}");
    }
}

#[test]
fn rejects_bad_sizes_with_the_accepted_forms() {
    let forms = "expected a number of bytes (1073741824) or a number and a unit (512MiB, 8 GB, \
        1.5TiB); units B, KB, MB, GB, TB, PB, EB (powers of 1000) or KiB, MiB, GiB, TiB, PiB, \
        EiB (powers of 1024), in any case";
    for input in ["", "GiB", "-1GiB", "1.2.3GB", ".GB", "eight"] {
        let error = parse_bytes(input).expect_err(input);
        assert_eq!(error, Error::InvalidSize { input: input.to_owned() });
        assert_eq!(error.to_string(), format!("invalid size {input:?}: {forms}"));
    }
    let error = parse_bytes("8 GiBs").expect_err("unknown unit");
    assert_eq!(error.to_string(), format!("unknown unit \"GiBs\" in size \"8 GiBs\": {forms}"));
    assert!(matches!(parse_bytes("1e9"), Err(Error::UnknownSizeUnit { unit, .. }) if unit == "e9"));
    for input in
        ["18446744073709551616", "16EiB", "18.5EB", "99999999999999999999999999999999999999999"]
    {
        assert_eq!(parse_bytes(input), Err(Error::SizeTooLarge { input: input.to_owned() }));
    }
    assert_eq!(
        parse_bytes("17000PiB").expect_err("too large").to_string(),
        "size \"17000PiB\" is too large: the most is 18446744073709551615 bytes (16 EiB)"
    );
}

#[test]
fn formats_sizes() {
    let cases = [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (8 * GIB, "8.0 GiB"),
        (6 * GIB + GIB / 2, "6.5 GiB"),
        ((1 << 20) - 1, "1.0 MiB"), // 1023.999 KiB would print as 1024.0 KiB
        (3 << 39, "1.5 TiB"),
        (u64::MAX, "16.0 EiB"),
    ];
    for (bytes, text) in cases {
        assert_eq!(format_bytes(bytes), text, "{bytes}");
    }
    assert_eq!(parse_bytes(&format_bytes(8 * GIB)), Ok(8 * GIB));
}

#[test]
fn parses_cpu() {
    let cases = [
        ("4", 4000),
        ("2.5", 2500),
        ("0.125", 125),
        (".5", 500),
        ("500m", 500),
        (" 250 m ", 250),
        ("0", 0),
        ("2.5000", 2500),
        ("18446744073709551615m", u64::MAX),
    ];
    for (input, millicores) in cases {
        assert_eq!(parse_cpu(input), Ok(millicores), "{input}");
    }
}

#[test]
fn rejects_bad_cpu_with_the_accepted_forms() {
    for input in ["", "m", "four", "-1", "2 cores", "500M", "1e3", "1.2.3"] {
        assert_eq!(
            parse_cpu(input).expect_err(input).to_string(),
            format!("invalid CPU amount {input:?}: expected cores (4, 2.5) or millicores (500m)")
        );
    }
    for input in ["0.0005", "2.5m"] {
        assert_eq!(
            parse_cpu(input).expect_err(input).to_string(),
            format!(
                "CPU amount {input:?} is finer than one millicore: use at most three decimals \
                 (2.125) or whole millicores (2125m)"
            )
        );
    }
    assert_eq!(
        parse_cpu("18446744073709552").expect_err("too large").to_string(),
        "CPU amount \"18446744073709552\" is too large: the most is 18446744073709551615m"
    );
}

#[test]
fn formats_cpu_so_that_it_parses_back() {
    for (millicores, text) in [(0, "0"), (4000, "4"), (2500, "2.5"), (250, "0.25"), (1, "0.001")] {
        assert_eq!(format_cpu(millicores), text);
        assert_eq!(parse_cpu(text), Ok(millicores));
    }
}

#[test]
fn gpu_vendors_parse_in_any_case_and_serialize_in_lowercase() {
    assert_eq!("nvidia".parse(), Ok(GpuVendor::Nvidia));
    assert_eq!("AMD".parse(), Ok(GpuVendor::Amd));
    assert_eq!(" Intel ".parse(), Ok(GpuVendor::Intel));
    assert_eq!(
        "matrox".parse::<GpuVendor>().expect_err("unknown").to_string(),
        "unknown GPU vendor \"matrox\": expected nvidia, amd, intel or other"
    );
    assert_eq!(serde_json::to_string(&GpuVendor::Nvidia).expect("serializes"), "\"nvidia\"");
}

#[test]
fn adds_and_subtracts() {
    let free = resources(8000, 16 * GIB, 100 * GIB, &[0, 1]);
    let claim = resources(2000, 4 * GIB, 10 * GIB, &[1]);
    let left = free.checked_sub(&claim).expect("fits");
    assert_eq!(left, resources(6000, 12 * GIB, 90 * GIB, &[0]));
    assert_eq!(left.checked_add(&claim), Some(free.clone()));
    assert!(claim.fits_in(&free));
    assert!(!claim.fits_in(&left));
}

#[test]
fn subtraction_refuses_to_underflow_or_take_absent_gpus() {
    let free = resources(1000, GIB, GIB, &[0]);
    assert_eq!(free.checked_sub(&resources(1001, 0, 0, &[])), None);
    assert_eq!(free.checked_sub(&resources(0, GIB + 1, 0, &[])), None);
    assert_eq!(free.checked_sub(&resources(0, 0, GIB + 1, &[])), None);
    assert_eq!(free.checked_sub(&resources(0, 0, 0, &[1])), None);
    assert_eq!(
        free.saturating_sub(&resources(2000, GIB / 2, 0, &[0, 1])),
        resources(0, GIB / 2, GIB, &[])
    );
}

#[test]
fn addition_refuses_to_overflow_or_add_a_gpu_twice() {
    let some = resources(1, 1, 1, &[0]);
    assert_eq!(some.checked_add(&resources(u64::MAX, 0, 0, &[])), None);
    assert_eq!(some.checked_add(&resources(0, 0, 0, &[0])), None);
}

#[test]
fn serializes_with_optional_parts_left_out() {
    let parsed: Resources =
        serde_json::from_str(r#"{"cpu_millicores": 2000, "ram_bytes": 1024}"#).expect("parses");
    assert_eq!(parsed, resources(2000, 1024, 0, &[]));
    let json = serde_json::to_value(gpu(0)).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({"index": 0, "vendor": "nvidia", "model": "RTX 4090", "vram_bytes": 24 * GIB})
    );
    assert_eq!(
        resources(2500, 8 * GIB, 100 * GIB, &[0]).to_string(),
        "2.5 CPU, 8.0 GiB RAM, 100.0 GiB disk, 1 GPU"
    );
}
