//! Compose variable interpolation, as `docker compose config` resolves it: `$VAR`,
//! `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
//! `${VAR:+alternative}`, `${VAR+alternative}`, `$$` for a literal `$`, and
//! interpolation inside defaults (`${A:-${B:-x}}`).
//!
//! Variables come from the caller: its environment over the `.env` file beside the
//! compose file (both handed in through [`Options`]; nothing here reads the process
//! environment or the disk). Values of the `.env` file may use the same syntax.

use std::collections::BTreeMap;

use crate::error::{Diagnostic, Position};
use crate::translate::{Cx, Options};
use crate::tree::{Kind, Path, Value};

/// Something interpolating one string ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// A variable without a value and without a default: the empty string was used.
    Unset(String),
    /// `${VAR:?message}` or `${VAR?message}` with the variable missing.
    Required { name: String, message: String },
    /// Text that is not a valid substitution (`${}`, `${A`, `${A/b}`): kept as written.
    Invalid(String),
}

/// `text` with every substitution replaced, and what went wrong on the way.
pub(crate) fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> (String, Vec<Problem>) {
    let mut problems = Vec::new();
    let out = expand(text, lookup, &mut problems);
    (out, problems)
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>, out: &mut Vec<Problem>) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        result.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            result.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            match closing_brace(inner) {
                Some(end) => {
                    result.push_str(&braced(&inner[..end], lookup, out));
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push(Problem::Invalid(format!("${{{inner}")));
                    result.push_str(&rest[at..]);
                    rest = "";
                }
            }
        } else if after.starts_with(is_name_start) {
            let end = after.find(|c| !is_name(c)).unwrap_or(after.len());
            result.push_str(&value_of(&after[..end], lookup, out));
            rest = &after[end..];
        } else {
            result.push('$');
            rest = after;
        }
    }
    result.push_str(rest);
    result
}

/// The index of the `}` closing a `${` whose content starts `inner`, nested `${…}` and
/// `$$` skipped.
fn closing_brace(inner: &str) -> Option<usize> {
    let bytes = inner.as_bytes();
    let (mut depth, mut i) = (1usize, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn value_of(name: &str, lookup: &dyn Fn(&str) -> Option<String>, out: &mut Vec<Problem>) -> String {
    lookup(name).unwrap_or_else(|| {
        out.push(Problem::Unset(name.to_string()));
        String::new()
    })
}

/// The content of `${…}`: a name, then nothing or an operator and its word.
fn braced(inner: &str, lookup: &dyn Fn(&str) -> Option<String>, out: &mut Vec<Problem>) -> String {
    let end = inner.find(|c| !is_name(c)).unwrap_or(inner.len());
    let (name, tail) = inner.split_at(end);
    if !name.starts_with(is_name_start) {
        out.push(Problem::Invalid(format!("${{{inner}}}")));
        return format!("${{{inner}}}");
    }
    let value = lookup(name);
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let word = |w: &str, out: &mut Vec<Problem>| expand(w, lookup, out);
    let required = |message: &str, out: &mut Vec<Problem>| {
        out.push(Problem::Required { name: name.to_string(), message: message.to_string() });
        String::new()
    };
    match tail {
        "" => value_of(name, lookup, out),
        _ if tail.starts_with(":-") => {
            if non_empty {
                value.unwrap_or_default()
            } else {
                word(&tail[2..], out)
            }
        }
        _ if tail.starts_with(":?") => {
            if non_empty {
                value.unwrap_or_default()
            } else {
                required(&tail[2..], out)
            }
        }
        _ if tail.starts_with(":+") => {
            if non_empty {
                word(&tail[2..], out)
            } else {
                String::new()
            }
        }
        _ if tail.starts_with('-') => {
            if set {
                value.unwrap_or_default()
            } else {
                word(&tail[1..], out)
            }
        }
        _ if tail.starts_with('?') => {
            if set {
                value.unwrap_or_default()
            } else {
                required(&tail[1..], out)
            }
        }
        _ if tail.starts_with('+') => {
            if set {
                word(&tail[1..], out)
            } else {
                String::new()
            }
        }
        _ => {
            out.push(Problem::Invalid(format!("${{{inner}}}")));
            format!("${{{inner}}}")
        }
    }
}

/// The variables of a compose translation: the `.env` file, then the caller's environment
/// over it. Problems of the `.env` file become warnings.
pub(crate) fn variables(
    options: &Options,
    warnings: &mut Vec<Diagnostic>,
) -> BTreeMap<String, String> {
    let mut variables = BTreeMap::new();
    if let Some(text) = &options.dot_env {
        let (pairs, problems) = dotenv(text, &options.environment);
        variables.extend(pairs);
        for (line, message) in problems {
            warnings.push(Diagnostic::warning(
                Position::default(),
                "",
                format!(".env line {line}: {message}"),
            ));
        }
    }
    variables.extend(options.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
    variables
}

/// A problem of a `.env` file: its line and what is wrong.
pub(crate) type LineProblem = (usize, String);

/// Parses a `.env` file: `KEY=VALUE` lines (an `export ` prefix allowed), `#` comments,
/// values unquoted (a ` #` starts a comment), in single quotes (literal) or in double
/// quotes (`\n`, `\t`, `\"`, `\\` escapes); both quotes may span lines. Unquoted and
/// double-quoted values are interpolated: the environment first, then earlier lines.
pub(crate) fn dotenv(
    text: &str,
    environment: &BTreeMap<String, String>,
) -> (Vec<(String, String)>, Vec<LineProblem>) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut problems = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let number = i + 1;
        let line = lines[i].trim_start();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, raw)) = line.split_once('=') else {
            problems.push((number, format!("ignored: no `=` in {line:?}")));
            continue;
        };
        let key = key.trim().to_string();
        if key.is_empty()
            || !key.starts_with(is_name_start)
            || !key.chars().all(|c| is_name(c) || c == '.' || c == '-')
        {
            problems.push((number, format!("ignored: {key:?} is not a variable name")));
            continue;
        }
        let raw = raw.trim_start();
        let (value, expand_it) = match raw.chars().next() {
            Some(q @ ('\'' | '"')) => match quoted(&raw[1..], q, &lines, &mut i) {
                Some(inside) if q == '"' => (unescape(&inside), true),
                Some(inside) => (inside, false),
                None => {
                    problems
                        .push((number, format!("ignored: the {q} quote of {key} is not closed")));
                    continue;
                }
            },
            _ => {
                let value = raw.find(" #").map_or(raw, |at| &raw[..at]);
                (value.trim_end().to_string(), true)
            }
        };
        let value = if expand_it && value.contains('$') {
            let lookup = |name: &str| {
                environment
                    .get(name)
                    .cloned()
                    .or_else(|| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            };
            let (value, found) = interpolate(&value, &lookup);
            problems.extend(found.into_iter().map(|p| (number, describe(&p))));
            value
        } else {
            value
        };
        pairs.push((key, value));
    }
    (pairs, problems)
}

/// The text inside quotes that open `first` (the rest of a line), reading further lines
/// (from `lines[*next]` on) until the quote closes; `None` when it never does.
fn quoted(first: &str, quote: char, lines: &[&str], next: &mut usize) -> Option<String> {
    let mut body = first.to_string();
    while closing_quote(&body, quote).is_none() && *next < lines.len() {
        body.push('\n');
        body.push_str(lines[*next]);
        *next += 1;
    }
    let end = closing_quote(&body, quote)?;
    Some(body[..end].to_string())
}

/// The index of the quote ending a value (a `\"` does not end a double-quoted one).
fn closing_quote(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other @ ('"' | '\\')) => out.push(other),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A problem as a sentence.
pub(crate) fn describe(problem: &Problem) -> String {
    match problem {
        Problem::Unset(name) => format!("variable `{name}` is not set; an empty string is used"),
        Problem::Required { name, message } if message.is_empty() => {
            format!("required variable `{name}` is not set")
        }
        Problem::Required { name, message } => {
            format!("required variable `{name}` is not set: {message}")
        }
        Problem::Invalid(text) => format!("`{text}` is not a valid substitution; kept as written"),
    }
}

/// Interpolates every string of the document (keys are not interpolated), in place.
/// Unset variables and invalid substitutions are warnings; missing required variables are
/// errors of the translation. Each names the variable, at the value's position.
pub(crate) fn document(value: &mut Value, path: &Path, cx: &mut Cx) {
    match &mut value.kind {
        Kind::Str(text) if text.contains('$') => {
            let variables = &cx.variables;
            let (result, problems) = interpolate(text, &|name| variables.get(name).cloned());
            *text = result;
            for problem in problems {
                let message = describe(&problem);
                match problem {
                    Problem::Required { .. } => cx.refuse(value.pos, path, message),
                    _ => cx.warn(value.pos, path, message),
                }
            }
        }
        Kind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                document(item, &path.index(i), cx);
            }
        }
        Kind::Map(entries) => {
            for entry in entries {
                document(&mut entry.value, &path.key(&entry.key), cx);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
