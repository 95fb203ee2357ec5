//! Diagnostics (one problem at one place) and the crate's error type.

use std::fmt;

/// A place in a source file: 1-based line and column. Line 0 means "no position known"
/// (a value that came from a format without positions, or a default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl Position {
    /// A position at `line`:`column` (both 1-based).
    pub fn new(line: usize, column: usize) -> Position {
        Position { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The ensemble cannot be deployed as written.
    Error,
    /// The ensemble is valid, but something is likely not what the author meant.
    Warning,
}

/// One problem found in an ensemble (or in a file being translated), at one place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where in the file; line 0 when unknown.
    pub position: Position,
    /// The dotted path of the value, e.g. `allocations.web.resources.ram`; empty for the
    /// document itself.
    pub path: String,
    /// What is wrong, as a sentence fragment.
    pub message: String,
    /// What was found, when that helps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// What was expected, when that helps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// How to fix it, when there is an obvious fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

impl Diagnostic {
    /// An error at `position` about the value at `path`.
    pub fn error(position: Position, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            position,
            path: path.into(),
            message: message.into(),
            found: None,
            expected: None,
            suggestion: None,
        }
    }

    /// A warning at `position` about the value at `path`.
    pub fn warning(
        position: Position,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(position, path, message) }
    }

    /// Adds what was found.
    pub fn found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }

    /// Adds what was expected.
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Adds a suggested fix.
    pub fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }

    /// Adds a suggestion only when there is one.
    pub fn maybe_suggest(mut self, suggestion: Option<String>) -> Self {
        self.suggestion = suggestion;
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic with the file name in front: `file:line:col: error: ...`,
    /// then indented `found`, `expected` and `help` lines.
    pub fn render(&self, file: &str) -> String {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let path = if self.path.is_empty() { String::new() } else { format!("{}: ", self.path) };
        let at =
            if self.position.line == 0 { String::new() } else { format!(":{}", self.position) };
        let mut out = format!("{file}{at}: {severity}: {path}{}", self.message);
        if let Some(found) = &self.found {
            out.push_str(&format!("\n  found:    {found}"));
        }
        if let Some(expected) = &self.expected {
            out.push_str(&format!("\n  expected: {expected}"));
        }
        if let Some(suggestion) = &self.suggestion {
            out.push_str(&format!("\n  help:     {suggestion}"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("<input>"))
    }
}

/// Renders diagnostics one after the other, errors and warnings in file order.
pub fn render_all(diagnostics: &[Diagnostic], file: &str) -> String {
    diagnostics.iter().map(|d| d.render(file)).collect::<Vec<_>>().join("\n")
}

/// Sorts diagnostics by position, then path, and drops exact duplicates.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| (a.position, &a.path).cmp(&(b.position, &b.path)));
    diagnostics.dedup();
}

/// What can go wrong loading, validating or translating an ensemble.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not well-formed YAML/JSON (or HCL for Nomad). The diagnostic has the
    /// position of the first syntax error; nothing was checked beyond it.
    #[error("{}", .0)]
    Syntax(Box<Diagnostic>),
    /// The document is well-formed but not a valid ensemble. Holds every error found (at
    /// least one) and any warnings, sorted by position.
    #[error("{} error(s) in the ensemble", .0.iter().filter(|d| d.is_error()).count())]
    Invalid(Vec<Diagnostic>),
    /// A translator was given something it cannot translate at all (wrong kind of file,
    /// nothing to run). The message says what was expected.
    #[error("cannot translate: {0}")]
    Untranslatable(String),
}

impl Error {
    /// Every diagnostic this error carries.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            Error::Syntax(d) => vec![(**d).clone()],
            Error::Invalid(all) => all.clone(),
            Error::Untranslatable(message) => {
                vec![Diagnostic::error(Position::default(), "", message.clone())]
            }
        }
    }
}

/// "did you mean" for a misspelt name: the closest candidate when it is close enough.
pub fn did_you_mean<'a>(
    found: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    // Close by spelling (Jaro-Winkler), or one edit away (a swapped pair counts as one).
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(found, c), strsim::jaro_winkler(found, c), c))
        .filter(|(edits, score, _)| *score >= 0.8 || (*edits <= 1 && found.chars().count() >= 3))
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_all_parts() {
        let d = Diagnostic::error(Position::new(3, 5), "allocations.web.resorces", "unknown key")
            .found("`resorces`")
            .expected("one of: type, resources")
            .suggest("did you mean `resources`?");
        assert_eq!(
            d.render("e.yaml"),
            "e.yaml:3:5: error: allocations.web.resorces: unknown key\n  found:    `resorces`\n  expected: one of: type, resources\n  help:     did you mean `resources`?"
        );
    }

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(
            did_you_mean("resorces", ["resources", "ports"]).as_deref(),
            Some("did you mean `resources`?")
        );
        assert_eq!(did_you_mean("zzz", ["resources", "ports"]), None);
        assert_eq!(
            did_you_mean("wbe", ["api", "db", "web"]).as_deref(),
            Some("did you mean `web`?")
        );
    }
}
