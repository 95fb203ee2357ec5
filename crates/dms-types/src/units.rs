//! Human units, one parser for the CLI, the configuration file and ensembles: sizes
//! (`8GiB`, `8 GB`, `8G`, `1.5TiB`), CPU amounts (`4`, `2.5`, `500m`), frequencies
//! (`2.5GHz`), bandwidths (`100Mbps`) and durations (`30s`, `1h 30m`, `7d`).
//!
//! | quantity | written | unit |
//! |---|---|---|
//! | size | a number, optionally a unit in any case: `B`; `K`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB`, `P`/`PB`, `E`/`EB` (powers of 1000); `Ki`/`KiB` … `Ei`/`EiB` (powers of 1024); a bare number is bytes | bytes, rounded to the nearest |
//! | CPU | cores (`2.5`, at most three decimals) or millicores (`500m`) | millicores |
//! | frequency | a number and `Hz`, `kHz`, `MHz` or `GHz` | hertz, exact |
//! | bandwidth | a number and `bps`, `kbps`, `Mbps` or `Gbps` (bits per second) | bits/s, exact |
//! | duration | `humantime`: `250ms`, `30s`, `5m`, `1h 30m`, `7d`, units `ns us ms s m h d w` | nanoseconds |

use crate::Error;

pub use duration::{format_duration, parse_duration, serde_duration, serde_duration_option};

mod duration;

/// Size units, lowercase, and how many bytes each is. Bare `K`, `M`, … are decimal, as in
/// Kubernetes quantities.
const SIZE_UNITS: [(&str, u64); 26] = [
    ("", 1),
    ("b", 1),
    ("k", 1000),
    ("kb", 1000),
    ("m", 1000_u64.pow(2)),
    ("mb", 1000_u64.pow(2)),
    ("g", 1000_u64.pow(3)),
    ("gb", 1000_u64.pow(3)),
    ("t", 1000_u64.pow(4)),
    ("tb", 1000_u64.pow(4)),
    ("p", 1000_u64.pow(5)),
    ("pb", 1000_u64.pow(5)),
    ("e", 1000_u64.pow(6)),
    ("eb", 1000_u64.pow(6)),
    ("ki", 1 << 10),
    ("kib", 1 << 10),
    ("mi", 1 << 20),
    ("mib", 1 << 20),
    ("gi", 1 << 30),
    ("gib", 1 << 30),
    ("ti", 1 << 40),
    ("tib", 1 << 40),
    ("pi", 1 << 50),
    ("pib", 1 << 50),
    ("ei", 1 << 60),
    ("eib", 1 << 60),
];

/// Fraction digits beyond this many are ignored (they are worth less than a byte).
const MAX_FRACTION_DIGITS: usize = 18;

/// Parses a size: a non-negative decimal number, optionally followed (after optional spaces)
/// by a unit in any case: `B`, `KB`/`K`, `MB`/`M`, `GB`/`G`, `TB`/`T`, `PB`/`P`, `EB`/`E` are
/// powers of 1000; `KiB`/`Ki`, `MiB`/`Mi`, `GiB`/`Gi`, `TiB`/`Ti`, `PiB`/`Pi`, `EiB`/`Ei` are
/// powers of 1024.
/// A fractional result is rounded to the nearest byte.
///
/// ```
/// use dms_types::resources::parse_bytes;
/// assert_eq!(parse_bytes("8GiB"), Ok(8 << 30));
/// assert_eq!(parse_bytes("8 GB"), Ok(8_000_000_000));
/// assert_eq!(parse_bytes("1.5TiB"), Ok(3 << 39));
/// assert_eq!(parse_bytes("1073741824"), Ok(1 << 30));
/// ```
pub fn parse_bytes(input: &str) -> Result<u64, Error> {
    let text = input.trim();
    let (number, unit) =
        text.split_at(text.find(|c: char| !is_number_char(c)).unwrap_or(text.len()));
    let unit = unit.trim_start();
    let invalid = || Error::InvalidSize { input: input.to_owned() };
    if number.is_empty() {
        return Err(invalid());
    }
    let multiplier = SIZE_UNITS
        .iter()
        .find(|(name, _)| unit.eq_ignore_ascii_case(name))
        .map(|&(_, multiplier)| multiplier)
        .ok_or_else(|| Error::UnknownSizeUnit { input: input.to_owned(), unit: unit.to_owned() })?;
    let too_large = || Error::SizeTooLarge { input: input.to_owned() };
    let bytes = Decimal::parse(number, multiplier).map_err(|error| match error {
        NumberError::Malformed => invalid(),
        NumberError::TooLarge => too_large(),
    })?;
    u64::try_from(bytes.rounded()).map_err(|_| too_large())
}

/// Parses a CPU amount: a non-negative decimal number of cores with at most three decimals
/// (`4`, `2.5`), or a whole number of millicores followed by `m` (`500m`). Returns
/// millicores.
///
/// ```
/// use dms_types::resources::parse_cpu;
/// assert_eq!(parse_cpu("4"), Ok(4000));
/// assert_eq!(parse_cpu("2.5"), Ok(2500));
/// assert_eq!(parse_cpu("500m"), Ok(500));
/// ```
pub fn parse_cpu(input: &str) -> Result<u64, Error> {
    let text = input.trim();
    let (number, multiplier) = match text.strip_suffix('m') {
        Some(millicores) => (millicores.trim_end(), 1),
        None => (text, 1000),
    };
    let invalid = || Error::InvalidCpu { input: input.to_owned() };
    let too_large = || Error::CpuTooLarge { input: input.to_owned() };
    let scaled = Decimal::parse(number, multiplier).map_err(|error| match error {
        NumberError::Malformed => invalid(),
        NumberError::TooLarge => too_large(),
    })?;
    let millicores =
        scaled.exact().ok_or_else(|| Error::CpuTooPrecise { input: input.to_owned() })?;
    u64::try_from(millicores).map_err(|_| too_large())
}

/// Formats a size in binary units with one decimal (`8.0 GiB`), or in bytes below 1 KiB
/// (`512 B`). [`parse_bytes`] reads it back (to within the rounding).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Move up while the value would print as 1024.0 or more.
    while (value * 10.0).round() >= 10240.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Formats millicores as a number of cores with no trailing zeros (`4`, `2.5`, `0.25`).
/// [`parse_cpu`] reads it back exactly.
pub fn format_cpu(millicores: u64) -> String {
    let (cores, rest) = (millicores / 1000, millicores % 1000);
    if rest == 0 {
        cores.to_string()
    } else {
        format!("{cores}.{rest:03}").trim_end_matches('0').to_owned()
    }
}

fn is_number_char(c: char) -> bool {
    c.is_ascii_digit() || c == '.'
}

/// A non-negative decimal number times a unit, as the exact fraction
/// `numerator / denominator`, where the denominator is a power of ten.
struct Decimal {
    numerator: u128,
    denominator: u128,
}

/// Why a number did not parse.
enum NumberError {
    /// No digits, two dots, a sign, an exponent.
    Malformed,
    /// More than `u128` can hold once scaled.
    TooLarge,
}

impl Decimal {
    /// Parses `12`, `1.5`, `.5` or `5.` and multiplies it by `unit`.
    fn parse(text: &str, unit: u64) -> Result<Decimal, NumberError> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
            return Err(NumberError::Malformed);
        }
        let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
        // At most 10^18: `fraction` has at most 18 digits.
        let denominator = 10_u128.pow(fraction.len() as u32);
        let value = |s: &str| if s.is_empty() { Some(0) } else { s.parse::<u128>().ok() };
        value(whole)
            .and_then(|whole| whole.checked_mul(denominator))
            .and_then(|n| n.checked_add(value(fraction)?))
            .and_then(|n| n.checked_mul(u128::from(unit)))
            .map(|numerator| Decimal { numerator, denominator })
            .ok_or(NumberError::TooLarge)
    }

    /// Rounded to the nearest whole number, halves up.
    fn rounded(&self) -> u128 {
        let (quotient, remainder) =
            (self.numerator / self.denominator, self.numerator % self.denominator);
        quotient + u128::from(remainder >= self.denominator.div_ceil(2))
    }

    /// The whole number it is, if it is one.
    fn exact(&self) -> Option<u128> {
        self.numerator.is_multiple_of(self.denominator).then(|| self.numerator / self.denominator)
    }
}

/// Parses a frequency: a non-negative decimal number and a unit, `Hz`, `kHz`, `MHz` or
/// `GHz` in any case; returns whole hertz.
///
/// ```
/// assert_eq!(dms_types::units::parse_frequency("2.5GHz"), Ok(2_500_000_000));
/// ```
pub fn parse_frequency(input: &str) -> Result<u64, Error> {
    parse_exact(input, HERTZ, "frequency", "a number and Hz, kHz, MHz or GHz (2.5GHz)")
}

/// Parses a bandwidth: a non-negative decimal number and a unit, `bps`, `kbps`, `Mbps`
/// or `Gbps` in any case; returns whole bits per second.
///
/// ```
/// assert_eq!(dms_types::units::parse_bandwidth("100Mbps"), Ok(100_000_000));
/// ```
pub fn parse_bandwidth(input: &str) -> Result<u64, Error> {
    parse_exact(input, BITS, "bandwidth", "a number and bps, kbps, Mbps or Gbps (100Mbps)")
}

/// Hertz units, largest first.
pub const HERTZ: &[(&str, u64)] =
    &[("GHz", 1_000_000_000), ("MHz", 1_000_000), ("kHz", 1_000), ("Hz", 1)];
/// Bits-per-second units, largest first.
pub const BITS: &[(&str, u64)] =
    &[("Gbps", 1_000_000_000), ("Mbps", 1_000_000), ("kbps", 1_000), ("bps", 1)];

/// A number with a required unit of `units`, as a whole number of the base unit.
fn parse_exact(
    input: &str,
    units: &[(&str, u64)],
    what: &'static str,
    forms: &'static str,
) -> Result<u64, Error> {
    let invalid = || Error::InvalidQuantity { what, input: input.to_owned(), forms };
    let text = input.trim();
    let (number, unit) =
        text.split_at(text.find(|c: char| !is_number_char(c)).unwrap_or(text.len()));
    let unit = unit.trim_start();
    let scale = units
        .iter()
        .find(|(name, _)| unit.eq_ignore_ascii_case(name))
        .map(|&(_, scale)| scale)
        .ok_or_else(invalid)?;
    let value = Decimal::parse(number, scale).map_err(|_| invalid())?;
    value.exact().and_then(|v| u64::try_from(v).ok()).ok_or_else(invalid)
}
