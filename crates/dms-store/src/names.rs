//! Validation of table and collection names, and the table names derived from them.
//!
//! Repository tables are stored under the caller's name as is. Collection tables are stored
//! under `col/<name>/<part>`; since valid names cannot contain `/`, the two namespaces never
//! collide.

use crate::Error;

/// Longest accepted table or collection name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a table or collection name: 1 to [`MAX_NAME_LEN`] bytes of ASCII letters, digits,
/// `_`, `-`, `.` and `:`.
pub(crate) fn validate(kind: &'static str, name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("must be at most 128 bytes long")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        Some("may only contain ASCII letters, digits, '_', '-', '.' and ':'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName { kind, name: name.to_owned(), reason }),
        None => Ok(()),
    }
}

/// The redb table names backing one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CollectionTables {
    /// `id -> JSON document`.
    pub docs: String,
    /// `(field, encoded value, id) -> ()`.
    pub index: String,
    /// `field -> ()`: the indexed fields.
    pub fields: String,
}

impl CollectionTables {
    /// Validates `name` and derives the table names of the collection.
    pub(crate) fn new(name: &str) -> Result<Self, Error> {
        validate("collection", name)?;
        Ok(CollectionTables {
            docs: format!("col/{name}/docs"),
            index: format!("col/{name}/index"),
            fields: format!("col/{name}/fields"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_reasonable_names() {
        for name in ["devices", "node-keys", "a.b:c_d", "X1", &"a".repeat(MAX_NAME_LEN)] {
            assert!(validate("table", name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        for name in ["", "a/b", "with space", "é", &"a".repeat(MAX_NAME_LEN + 1)] {
            let err = validate("table", name).expect_err(name);
            assert!(matches!(err, Error::InvalidName { kind: "table", .. }), "{err:?}");
        }
    }

    #[test]
    fn collection_tables_are_namespaced() {
        let t = CollectionTables::new("pods").expect("valid");
        assert_eq!(t.docs, "col/pods/docs");
        assert_eq!(t.index, "col/pods/index");
        assert_eq!(t.fields, "col/pods/fields");
        assert!(CollectionTables::new("a/b").is_err());
    }
}
