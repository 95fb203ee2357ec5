//! Quantities written with human units: sizes (`512MiB`), frequencies (`2.5GHz`),
//! bandwidths (`100Mbps`) and durations (`30s`).
//!
//! Each type stores an exact integer (bytes, hertz, bits per second, nanoseconds), parses
//! with the one units parser of `dms_types::units` (so `ram: 8G` here and `dms onboard
//! --ram 8G` mean the same), prints back in the largest unit that keeps the value exact,
//! and describes itself in the JSON Schema with a `format` that the validator checks.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use dms_types::units::{BITS, HERTZ};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Checks `text` against a unit `format` named in the schema; `None` when it is fine or
/// the format is not a unit format, else what was expected.
pub fn check_format(format: &str, text: &str) -> Option<String> {
    let result = match format {
        ByteSize::FORMAT => text.parse::<ByteSize>().map(drop),
        Frequency::FORMAT => text.parse::<Frequency>().map(drop),
        Bandwidth::FORMAT => text.parse::<Bandwidth>().map(drop),
        Duration::FORMAT => text.parse::<Duration>().map(drop),
        _ => Ok(()),
    };
    result.err()
}

/// What a value of a unit `format` looks like, for "expected" lines.
pub fn describe_format(format: &str) -> Option<&'static str> {
    Some(match format {
        ByteSize::FORMAT => ByteSize::EXPECTED,
        Frequency::FORMAT => Frequency::EXPECTED,
        Bandwidth::FORMAT => Bandwidth::EXPECTED,
        Duration::FORMAT => Duration::EXPECTED,
        _ => return None,
    })
}

/// The parser's error, short: the validator's diagnostic says what was expected.
fn short(error: dms_types::Error) -> String {
    use dms_types::Error;
    match error {
        Error::UnknownSizeUnit { unit, .. } => format!("unknown unit {unit:?}"),
        Error::InvalidSize { .. } => "not a size".into(),
        Error::SizeTooLarge { .. } => "too large (at most 16 EiB)".into(),
        Error::InvalidQuantity { what, .. } => format!("not a {what}"),
        other => other.to_string(),
    }
}

/// Prints `value` in the largest unit of `units` (largest first) that divides it exactly,
/// or as a decimal of the largest unit not above it when `decimal` allows.
fn print_with(value: u64, units: &[(&str, u64)], decimal: bool) -> String {
    let value = u128::from(value);
    for (name, scale) in units {
        let scale = &u128::from(*scale);
        if value >= *scale && value % scale == 0 {
            return format!("{}{name}", value / scale);
        }
        if decimal && value >= *scale {
            let frac = format!("{:0width$}", value % scale, width = scale.ilog10() as usize);
            return format!("{}.{}{name}", value / scale, frac.trim_end_matches('0'));
        }
    }
    let (name, _) = units.last().expect("unit tables are not empty");
    format!("{value}{name}")
}

macro_rules! quantity {
    ($name:ident, $doc:literal, $field:literal, $format:literal, $expected:literal, $examples:expr) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl $name {
            /// The schema `format` name of this quantity.
            pub const FORMAT: &'static str = $format;
            /// What a value looks like, for error messages.
            pub const EXPECTED: &'static str = $expected;
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = Cow::<str>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "format": $format,
                    "description": concat!($field, ": ", $expected, "."),
                    "examples": $examples,
                })
            }
        }
    };
}

quantity!(
    ByteSize,
    "A size in bytes, written `512MiB`, `2GiB`, `10GB`.",
    "A size",
    "byte-size",
    "a number with a unit: B, K/KB, M/MB, G/GB, T/TB (powers of 1000) or Ki/KiB, Mi/MiB, Gi/GiB, Ti/TiB (powers of 1024), e.g. \"512MiB\"",
    ["512MiB", "2GiB"]
);
quantity!(
    Frequency,
    "A clock frequency in hertz, written `2.5GHz`, `800MHz`.",
    "A frequency",
    "frequency",
    "a number with a unit: Hz, kHz, MHz or GHz (e.g. \"2.5GHz\")",
    ["2.5GHz"]
);
quantity!(
    Bandwidth,
    "A bandwidth in bits per second, written `100Mbps`, `1Gbps`.",
    "A bandwidth",
    "bandwidth",
    "a number with a unit: bps, kbps, Mbps or Gbps (e.g. \"100Mbps\")",
    ["100Mbps"]
);
quantity!(
    Duration,
    "A duration in nanoseconds, written `30s`, `5m`, `1h 30m`, `250ms`.",
    "A duration",
    "duration",
    "a duration such as \"30s\", \"5m\", \"1h 30m\" or \"250ms\"",
    ["30s", "5m"]
);

const BYTES: &[(&str, u128)] = &[
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

impl ByteSize {
    /// `n` mebibytes.
    pub fn mib(n: u64) -> ByteSize {
        ByteSize(n << 20)
    }
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        dms_types::units::parse_bytes(text).map(ByteSize).map_err(short)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The exact unit giving the smallest number: 512MiB, 10GB, 1000B.
        let value = u128::from(self.0);
        let (name, scale) = BYTES
            .iter()
            .filter(|(_, scale)| value % scale == 0 && (value >= *scale || *scale == 1))
            .min_by_key(|(_, scale)| value / scale)
            .expect("bytes divide every value");
        write!(f, "{}{name}", value / scale)
    }
}

impl FromStr for Frequency {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        dms_types::units::parse_frequency(text).map(Frequency).map_err(short)
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print_with(self.0, HERTZ, true))
    }
}

impl FromStr for Bandwidth {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        dms_types::units::parse_bandwidth(text).map(Bandwidth).map_err(short)
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print_with(self.0, BITS, true))
    }
}

impl Duration {
    /// `n` seconds.
    pub fn secs(n: u64) -> Duration {
        Duration(n.saturating_mul(1_000_000_000))
    }

    /// As a standard duration.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0)
    }
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let parsed = dms_types::units::parse_duration(text).map_err(short)?;
        u64::try_from(parsed.as_nanos())
            .map(Duration)
            .map_err(|_| format!("{text:?} is too long (at most about 584 years)"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&dms_types::units::format_duration(self.to_std()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_exactly() {
        assert_eq!("512MiB".parse::<ByteSize>(), Ok(ByteSize(512 << 20)));
        assert_eq!("1.5GiB".parse::<ByteSize>(), Ok(ByteSize(1536 << 20)));
        assert_eq!("10GB".parse::<ByteSize>(), Ok(ByteSize(10_000_000_000)));
        assert_eq!("2 gib".parse::<ByteSize>(), Ok(ByteSize(2 << 30)));
        assert_eq!(ByteSize(1536 << 20).to_string(), "1536MiB");
        assert_eq!(ByteSize(10_000_000_000).to_string(), "10GB");
        assert_eq!(ByteSize(1001).to_string(), "1001B");
        assert_eq!(ByteSize(0).to_string(), "0B");
    }

    #[test]
    fn sizes_are_read_as_the_cli_reads_them() {
        for text in ["8G", "8GB", "8 gib", "512Mi", "2048", "1.5TiB"] {
            assert_eq!(
                text.parse::<ByteSize>().map(|b| b.0),
                dms_types::units::parse_bytes(text).map_err(|e| e.to_string()),
                "{text}"
            );
        }
        assert_eq!("8G".parse::<ByteSize>(), Ok(ByteSize(8_000_000_000)), "as `dms onboard`");
        assert_eq!("2048".parse::<ByteSize>(), Ok(ByteSize(2048)), "a bare number is bytes");
        assert!(
            "2 parsecs"
                .parse::<ByteSize>()
                .expect_err("bad unit")
                .starts_with("unknown unit \"parsecs\"")
        );
        assert!("99999999999TiB".parse::<ByteSize>().is_err(), "overflow is refused");
        assert!("".parse::<ByteSize>().is_err());
    }

    #[test]
    fn frequencies_print_decimals() {
        let f: Frequency = "2.5GHz".parse().expect("valid");
        assert_eq!(f, Frequency(2_500_000_000));
        assert_eq!(f.to_string(), "2.5GHz");
        assert_eq!(Frequency(800_000_000).to_string(), "800MHz");
        assert_eq!(Frequency(1_000_000_001).to_string(), "1.000000001GHz");
        assert_eq!("1.000000001GHz".parse::<Frequency>(), Ok(Frequency(1_000_000_001)));
    }

    #[test]
    fn bandwidths_and_durations() {
        assert_eq!("100Mbps".parse::<Bandwidth>(), Ok(Bandwidth(100_000_000)));
        assert_eq!("30s".parse::<Duration>(), Ok(Duration::secs(30)));
        assert_eq!(Duration::secs(90).to_string(), "1m 30s");
        assert_eq!("1m 30s".parse::<Duration>(), Ok(Duration::secs(90)));
        assert!("soon".parse::<Duration>().is_err());
    }

    #[test]
    fn check_format_names_the_problem() {
        assert_eq!(check_format("byte-size", "1GiB"), None);
        assert!(check_format("byte-size", "1 GiBs").is_some());
        assert_eq!(check_format("uint16", "anything"), None);
    }
}
