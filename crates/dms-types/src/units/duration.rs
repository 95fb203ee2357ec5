//! Durations: `humantime`'s grammar (`250ms`, `30s`, `1h 30m`, `7d`), the one used by the
//! CLI's flags, the configuration file and ensembles, and a serde adapter for
//! configuration fields.

use std::time::Duration;

use crate::Error;

/// The accepted forms of a duration.
const FORMS: &str = "a number and a unit, e.g. 250ms, 30s, 5m, 1h 30m, 7d (units ns, us, ms, \
    s, m, h, d, w)";

/// Parses a duration such as `30s`, `1h 30m` or `7d`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(dms_types::units::parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
/// assert!(dms_types::units::parse_duration("90").is_err(), "a unit is required");
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, Error> {
    humantime::parse_duration(input.trim()).map_err(|_| Error::InvalidQuantity {
        what: "duration",
        input: input.to_owned(),
        forms: FORMS,
    })
}

/// Formats a duration as [`parse_duration`] reads it back (`1m 30s`, `0s`).
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".into();
    }
    humantime::format_duration(duration).to_string()
}

/// `#[serde(with = "dms_types::units::serde_duration")]` for configuration fields:
/// written as [`format_duration`], read with [`parse_duration`].
pub mod serde_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `duration` as text (`30s`).
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*duration))
    }

    /// Reads a duration from text.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// [`serde_duration`] for optional fields (`None` is absent or null).
pub mod serde_duration_option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `duration` as text, or nothing.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.serialize_some(&super::format_duration(*duration)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads an optional duration from text.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_back_what_they_print() {
        for text in ["0s", "250ms", "30s", "1m 30s", "2h", "7days", "1w"] {
            let parsed = parse_duration(text).expect(text);
            assert_eq!(parse_duration(&format_duration(parsed)), Ok(parsed), "{text}");
        }
        let error = parse_duration("soon").expect_err("not a duration").to_string();
        assert!(error.contains("invalid duration \"soon\"") && error.contains("7d"), "{error}");
    }
}
