//! Order-preserving encoding of JSON scalars for index keys, and dotted field paths.
//!
//! A scalar is encoded as a one-byte type tag followed by a payload, so that comparing two
//! encodings byte by byte orders the values first by type (`null < bool < number < string`)
//! and then by value:
//!
//! | type   | tag    | payload                                                      |
//! |--------|--------|--------------------------------------------------------------|
//! | null   | `0x00` | none                                                         |
//! | bool   | `0x01` | `0x00` (false) or `0x01` (true)                              |
//! | number | `0x02` | the value as `f64`, 8 bytes big-endian, sign-flipped so that  |
//! |        |        | the bytes sort as the numbers do (`-0.0` is stored as `0.0`) |
//! | string | `0x03` | the UTF-8 bytes (strings sort by bytes, i.e. code points)    |
//!
//! Arrays and objects have no encoding: they are not indexed, and range conditions never match
//! them. Numbers are compared as `f64`, so integers beyond 2^53 that round to the same `f64`
//! compare equal.

use serde_json::Value;

use crate::Error;

/// Type tag of `null`.
pub(crate) const TAG_NULL: u8 = 0x00;
/// Type tag of booleans.
pub(crate) const TAG_BOOL: u8 = 0x01;
/// Type tag of numbers.
pub(crate) const TAG_NUMBER: u8 = 0x02;
/// Type tag of strings.
pub(crate) const TAG_STRING: u8 = 0x03;

/// The order-preserving encoding of a JSON scalar, or `None` for arrays and objects (and for a
/// number that has no finite `f64` value, which plain JSON cannot produce).
pub(crate) fn encode_scalar(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Null => Some(vec![TAG_NULL]),
        Value::Bool(b) => Some(vec![TAG_BOOL, u8::from(*b)]),
        Value::Number(n) => {
            let f = n.as_f64().filter(|f| f.is_finite())?;
            let mut out = Vec::with_capacity(9);
            out.push(TAG_NUMBER);
            out.extend_from_slice(&sortable_f64(f));
            Some(out)
        }
        Value::String(s) => {
            let mut out = Vec::with_capacity(1 + s.len());
            out.push(TAG_STRING);
            out.extend_from_slice(s.as_bytes());
            Some(out)
        }
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// The bytes of `f` such that unsigned big-endian comparison orders them as the numbers are
/// ordered (`-0.0` and `0.0` encode the same).
pub(crate) fn sortable_f64(f: f64) -> [u8; 8] {
    let f = if f == 0.0 { 0.0 } else { f };
    let bits = f.to_bits();
    let key = if bits >> 63 == 1 {
        // Negative: flip everything, so larger magnitudes sort lower.
        !bits
    } else {
        // Positive: set the sign bit, so positives sort above negatives.
        bits | (1 << 63)
    };
    key.to_be_bytes()
}

/// A validated dotted field path, such as `spec.resources.cpu`.
///
/// Each segment names an object member; a segment that is a decimal number also indexes into
/// an array (`ports.0.number`). Member names containing `.` cannot be addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath {
    raw: String,
}

impl FieldPath {
    /// Validates `field`: non-empty, with no empty segment.
    pub(crate) fn parse(field: &str) -> Result<FieldPath, Error> {
        let reason = if field.is_empty() {
            Some("must not be empty")
        } else if field.split('.').any(str::is_empty) {
            Some("must not have an empty segment (leading, trailing or doubled '.')")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidField { field: field.to_owned(), reason }),
            None => Ok(FieldPath { raw: field.to_owned() }),
        }
    }

    /// The path as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }

    /// The value at this path in `doc`, or `None` if the path does not exist.
    pub(crate) fn lookup<'v>(&self, doc: &'v Value) -> Option<&'v Value> {
        self.raw.split('.').try_fold(doc, |current, segment| match current {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
    }

    /// The index encoding of the value at this path in `doc`: `None` if the path does not exist
    /// or holds an array or object.
    pub(crate) fn encode_in(&self, doc: &Value) -> Option<Vec<u8>> {
        self.lookup(doc).and_then(encode_scalar)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn enc(v: Value) -> Vec<u8> {
        encode_scalar(&v).expect("scalar")
    }

    #[test]
    fn types_order_null_bool_number_string() {
        let ordered = [
            json!(null),
            json!(false),
            json!(true),
            json!(f64::MIN),
            json!(-1e300),
            json!(-2),
            json!(-1.5),
            json!(-1),
            json!(-1e-300),
            json!(0),
            json!(1e-300),
            json!(0.5),
            json!(1),
            json!(2),
            json!(2.5),
            json!(u64::MAX),
            json!(f64::MAX),
            json!(""),
            json!("A"),
            json!("a"),
            json!("ab"),
            json!("b"),
            json!("é"),
        ];
        for pair in ordered.windows(2) {
            assert!(enc(pair[0].clone()) < enc(pair[1].clone()), "{} !< {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn numbers_compare_by_value_not_representation() {
        assert_eq!(enc(json!(2)), enc(json!(2.0)));
        assert_eq!(enc(json!(-3)), enc(json!(-3.0)));
        assert_eq!(enc(json!(0.0)), enc(json!(-0.0)));
        assert_eq!(enc(json!(0)), enc(json!(-0.0)));
    }

    #[test]
    fn arrays_and_objects_have_no_encoding() {
        assert_eq!(encode_scalar(&json!([1])), None);
        assert_eq!(encode_scalar(&json!({"a": 1})), None);
    }

    #[test]
    fn paths_are_validated() {
        for bad in ["", ".", "a.", ".a", "a..b"] {
            assert!(matches!(FieldPath::parse(bad), Err(Error::InvalidField { .. })), "{bad:?}");
        }
        for good in ["a", "a.b", "spec.resources.cpu", "ports.0"] {
            assert_eq!(FieldPath::parse(good).expect(good).as_str(), good);
        }
    }

    #[test]
    fn lookup_walks_objects_and_arrays() {
        let doc = json!({
            "status": "running",
            "spec": {"resources": {"cpu": 2}},
            "ports": [{"n": 80}, {"n": 443}],
            "nothing": null,
        });
        let get = |p: &str| FieldPath::parse(p).expect(p).lookup(&doc).cloned();
        assert_eq!(get("status"), Some(json!("running")));
        assert_eq!(get("spec.resources.cpu"), Some(json!(2)));
        assert_eq!(get("ports.1.n"), Some(json!(443)));
        assert_eq!(get("nothing"), Some(json!(null)));
        assert_eq!(get("ports.2.n"), None);
        assert_eq!(get("ports.x"), None);
        assert_eq!(get("status.x"), None);
        assert_eq!(get("missing"), None);
        let path = FieldPath::parse("spec").expect("path");
        assert_eq!(path.encode_in(&doc), None, "objects are not indexed");
    }

    proptest! {
        #[test]
        fn f64_encoding_preserves_order(a in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
                                        b in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
            let (ea, eb) = (sortable_f64(a), sortable_f64(b));
            prop_assert_eq!(a.partial_cmp(&b), Some(ea.cmp(&eb)));
        }

        #[test]
        fn i64_encoding_preserves_order(a in -(1i64 << 53)..(1i64 << 53), b in -(1i64 << 53)..(1i64 << 53)) {
            prop_assert_eq!(a.cmp(&b), enc(json!(a)).cmp(&enc(json!(b))));
        }

        #[test]
        fn string_encoding_preserves_order(a in ".*", b in ".*") {
            prop_assert_eq!(a.cmp(&b), enc(json!(a)).cmp(&enc(json!(b))));
        }
    }
}
