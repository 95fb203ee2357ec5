//! Command paths (`/dms/node/peers/list`) and broadcast topics, with the "implies"
//! relation that attenuation rests on: a path implies itself and every path under it,
//! and `/` implies everything.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A capability path: `/`, or `/seg/seg...` with non-empty segments of visible ASCII
/// characters other than `/`. Used both for behaviors (commands) and broadcast topics.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Command(String);

/// Longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 256;

impl Command {
    /// The root path `/`, which implies every path.
    pub fn root() -> Command {
        Command("/".into())
    }

    /// Parses and checks a path.
    pub fn parse(path: &str) -> Result<Command, Error> {
        let bad =
            |reason: &str| Error::InvalidPath { path: path.to_string(), reason: reason.into() };
        if path.len() > MAX_PATH_LEN {
            return Err(bad("longer than 256 bytes"));
        }
        if path == "/" {
            return Ok(Command::root());
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Err(bad("must start with '/'"));
        };
        for segment in rest.split('/') {
            if segment.is_empty() {
                return Err(bad("has an empty segment (\"//\" or a trailing '/')"));
            }
            if !segment.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad("segments may hold only visible ASCII characters"));
            }
        }
        Ok(Command(path.to_string()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether holding `self` grants `other`: equal, `self` is `/`, or `other` lies
    /// under `self` (`/dms` implies `/dms/node` but not `/dmsx`).
    pub fn implies(&self, other: &Command) -> bool {
        self.0 == "/"
            || self.0 == other.0
            || (other.0.starts_with(&self.0) && other.0.as_bytes().get(self.0.len()) == Some(&b'/'))
    }

    /// Whether any of `held` implies `self`.
    pub fn is_implied_by_any(&self, held: &[Command]) -> bool {
        held.iter().any(|h| h.implies(self))
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Command {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Command::parse(s)
    }
}

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Command::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Sorts and removes duplicates and paths already implied by another in the list.
pub fn normalize(mut paths: Vec<Command>) -> Vec<Command> {
    paths.sort();
    paths.dedup();
    let all = paths.clone();
    paths.retain(|p| !all.iter().any(|q| q != p && q.implies(p)));
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Command {
        Command::parse(s).expect("valid path")
    }

    #[test]
    fn implication_follows_segments() {
        assert!(c("/").implies(&c("/dms/node/peers/list")));
        assert!(c("/dms").implies(&c("/dms/node/peers/list")));
        assert!(c("/dms/node").implies(&c("/dms/node")));
        assert!(!c("/dms").implies(&c("/dmsx")));
        assert!(!c("/dms/node/peers/list").implies(&c("/dms/node")));
        assert!(!c("/public").implies(&c("/")));
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in ["", "dms", "/dms/", "//", "/a//b", "/a b", "/a\u{e9}"] {
            assert!(Command::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Command::parse(&format!("/{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn normalize_drops_implied_paths() {
        let out = normalize(vec![c("/dms/node"), c("/dms"), c("/public/hello"), c("/dms")]);
        assert_eq!(out, vec![c("/dms"), c("/public/hello")]);
    }
}
