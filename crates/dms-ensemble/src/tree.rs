//! A YAML (or JSON) document as a tree of values that remember where they were written.
//!
//! Built from `saphyr-parser` events with the YAML 1.2 core schema, anchors, aliases and
//! merge keys (`<<`). Limits keep hostile input cheap: nesting depth and the number of
//! values (aliases included) are bounded, and duplicate keys are reported.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::{Diagnostic, Position};

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 64;
/// Most values in one input (mapping keys not counted), counting each alias expansion.
pub const MAX_VALUES: usize = 200_000;

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// Where the value starts in the source (line 0 when unknown).
    pub pos: Position,
    /// The value.
    pub kind: Kind,
}

/// The kinds of value.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Value>),
    /// A mapping, in the order written; keys are unique.
    Map(Vec<Entry>),
}

/// One key of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key (non-string keys are written as strings).
    pub key: String,
    /// Where the key is.
    pub key_pos: Position,
    /// The value.
    pub value: Value,
}

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path from the document root, printed `allocations.web.ports[0].port`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path(pub Vec<Seg>);

impl Path {
    /// This path with a key appended.
    pub fn key(&self, key: &str) -> Path {
        let mut next = self.clone();
        next.0.push(Seg::Key(key.to_string()));
        next
    }

    /// This path with an index appended.
    pub fn index(&self, index: usize) -> Path {
        let mut next = self.clone();
        next.0.push(Seg::Index(index));
        next
    }

    /// Parses `a.b[2].c`.
    pub fn parse(text: &str) -> Path {
        let mut segs = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let mut pieces = part.split('[');
            if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
                segs.push(Seg::Key(key.to_string()));
            }
            for index in pieces {
                if let Ok(i) = index.trim_end_matches(']').parse() {
                    segs.push(Seg::Index(i));
                }
            }
        }
        Path(segs)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => write!(f, "{key}")?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl Value {
    /// A value with no known position.
    pub fn new(kind: Kind) -> Value {
        Value { pos: Position::default(), kind }
    }

    /// The value of `key` when this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries()?.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// The entries when this is a mapping.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items when this is a sequence.
    pub fn items(&self) -> Option<&[Value]> {
        match &self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The text when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Where the value at `path` was written: the key's position for a mapping entry,
    /// else the value's. A path that does not exist gives its deepest existing ancestor.
    pub fn position(&self, path: &Path) -> Position {
        let mut here = self;
        let mut pos = self.pos;
        for seg in &path.0 {
            let next = match (seg, &here.kind) {
                (Seg::Key(key), Kind::Map(entries)) => {
                    entries.iter().find(|e| &e.key == key).map(|e| (e.key_pos, &e.value))
                }
                (Seg::Index(i), Kind::Seq(items)) => items.get(*i).map(|v| (v.pos, v)),
                _ => None,
            };
            match next {
                Some((at, value)) => {
                    pos = at;
                    here = value;
                }
                None => break,
            }
        }
        pos
    }

    /// A short description of the value for "found" lines: `string "abc"`, `integer 3`.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "null".into(),
            Kind::Bool(b) => format!("boolean {b}"),
            Kind::Int(i) => format!("integer {i}"),
            Kind::Float(x) => format!("number {x}"),
            Kind::Str(s) if s.chars().count() > 40 => {
                format!("string {:?}…", s.chars().take(40).collect::<String>())
            }
            Kind::Str(s) => format!("string {s:?}"),
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a mapping".into(),
        }
    }

    /// The JSON equivalent (non-finite floats become null).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            Kind::Null => J::Null,
            Kind::Bool(b) => J::Bool(*b),
            Kind::Int(i) => J::from(*i),
            Kind::Float(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
            Kind::Str(s) => J::String(s.clone()),
            Kind::Seq(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Kind::Map(entries) => {
                J::Object(entries.iter().map(|e| (e.key.clone(), e.value.to_json())).collect())
            }
        }
    }

    /// A tree (without positions) from an HCL/JSON value, keeping key order.
    pub fn from_hcl(value: hcl::Value) -> Value {
        let kind = match value {
            hcl::Value::Null => Kind::Null,
            hcl::Value::Bool(b) => Kind::Bool(b),
            hcl::Value::Number(n) => match n.as_i64() {
                Some(i) => Kind::Int(i),
                None => Kind::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            hcl::Value::String(s) => Kind::Str(s),
            hcl::Value::Array(items) => Kind::Seq(items.into_iter().map(Value::from_hcl).collect()),
            hcl::Value::Object(map) => Kind::Map(
                map.into_iter()
                    .map(|(key, v)| Entry {
                        key,
                        key_pos: Position::default(),
                        value: Value::from_hcl(v),
                    })
                    .collect(),
            ),
        };
        Value::new(kind)
    }

    /// A tree (without positions) of anything serializable, keeping field order.
    pub fn from_serialize<T: serde::Serialize>(value: &T) -> Result<Value, String> {
        hcl::to_value(value).map(Value::from_hcl).map_err(|e| e.to_string())
    }
}

/// Parses a single-document YAML or JSON text. Duplicate keys and other recoverable
/// problems come back as diagnostics beside the tree; a syntax error is fatal.
pub fn parse(source: &str) -> Result<(Value, Vec<Diagnostic>), Box<Diagnostic>> {
    let (mut docs, problems) = parse_documents(source)?;
    match docs.len() {
        0 => Err(Box::new(
            Diagnostic::error(Position::new(1, 1), "", "the file is empty")
                .expected("a YAML or JSON document"),
        )),
        1 => Ok((docs.remove(0), problems)),
        n => Err(Box::new(
            Diagnostic::error(docs[1].pos, "", format!("the file holds {n} documents"))
                .expected("exactly one document")
                .suggest("split the documents into separate files"),
        )),
    }
}

/// Parses every document of a YAML stream (`---` separated).
pub fn parse_documents(source: &str) -> Result<(Vec<Value>, Vec<Diagnostic>), Box<Diagnostic>> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(source) {
        let (event, span) = event.map_err(|e| {
            let at = e.marker();
            Box::new(
                Diagnostic::error(
                    Position::new(at.line(), at.col() + 1),
                    "",
                    "the file is not valid YAML",
                )
                .found(e.info().to_string()),
            )
        })?;
        builder.event(event, span)?;
    }
    Ok((builder.docs, builder.problems))
}

fn position(span: Span) -> Position {
    Position::new(span.start.line(), span.start.col() + 1)
}

enum Frame {
    Seq {
        pos: Position,
        anchor: usize,
        items: Vec<Value>,
    },
    Map {
        pos: Position,
        anchor: usize,
        entries: Vec<Entry>,
        /// Index into `entries` by key: duplicate checks stay linear in the keys.
        index: HashMap<String, usize>,
        /// The pending key, where it is, and whether it is a merge key (a plain `<<`).
        key: Option<(String, Position, bool)>,
        merges: Vec<Value>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    docs: Vec<Value>,
    problems: Vec<Diagnostic>,
    values: usize,
    /// Whether the scalar being added was plain (unquoted, untagged): only a plain `<<`
    /// is a merge key; `"<<"` is a key like any other.
    plain: bool,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Box<Diagnostic>> {
        let pos = position(span);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let quoted = style != ScalarStyle::Plain || tag.is_some_and(|t| t.suffix == "str");
                let kind = if quoted { Kind::Str(text.into_owned()) } else { resolve(&text) };
                self.plain = !quoted;
                let added = self.value(Value { pos, kind }, anchor);
                self.plain = false;
                added?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(pos)?;
                self.stack.push(Frame::Seq { pos, anchor, items: Vec::new() });
            }
            Event::MappingStart(anchor, _) => {
                self.open(pos)?;
                self.stack.push(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    index: HashMap::new(),
                    key: None,
                    merges: Vec::new(),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => {
                        (Value { pos, kind: Kind::Seq(items) }, anchor)
                    }
                    Some(Frame::Map { pos, anchor, mut entries, index, merges, .. }) => {
                        merge(&mut entries, index, merges);
                        (Value { pos, kind: Kind::Map(entries) }, anchor)
                    }
                    None => return Ok(()),
                };
                self.value(value, anchor)?;
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().ok_or_else(|| {
                    Box::new(Diagnostic::error(pos, "", "an alias refers to an unknown anchor"))
                })?;
                self.values = self.values.saturating_add(count(&value));
                self.value(Value { pos, ..value }, 0)?;
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
        Ok(())
    }

    fn open(&mut self, pos: Position) -> Result<(), Box<Diagnostic>> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Box::new(Diagnostic::error(
                pos,
                "",
                format!("the document nests deeper than {MAX_DEPTH} levels"),
            )));
        }
        Ok(())
    }

    fn value(&mut self, value: Value, anchor: usize) -> Result<(), Box<Diagnostic>> {
        // Mapping keys are not counted: an entry is one value.
        let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
        self.values += usize::from(!is_key);
        if self.values > MAX_VALUES {
            return Err(Box::new(
                Diagnostic::error(
                    value.pos,
                    "",
                    format!("the document holds more than {MAX_VALUES} values"),
                )
                .suggest("check for aliases that expand recursively"),
            ));
        }
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { entries, index, key, merges, .. }) => match key.take() {
                None => {
                    let text = match value.kind {
                        Kind::Str(s) => s,
                        Kind::Int(i) => i.to_string(),
                        Kind::Bool(b) => b.to_string(),
                        Kind::Float(x) => x.to_string(),
                        Kind::Null => "null".into(),
                        Kind::Seq(_) | Kind::Map(_) => {
                            return Err(Box::new(
                                Diagnostic::error(
                                    value.pos,
                                    "",
                                    "a mapping key is a list or mapping",
                                )
                                .expected("a plain key such as `name`"),
                            ));
                        }
                    };
                    let merge = self.plain && text == "<<";
                    *key = Some((text, value.pos, merge));
                }
                Some((_, key_pos, true)) => match value.kind {
                    Kind::Map(_) => merges.push(value),
                    Kind::Seq(items) => merges.extend(items),
                    _ => self.problems.push(Diagnostic::error(
                        key_pos,
                        "<<",
                        "a merge key needs a mapping or a list of mappings",
                    )),
                },
                Some((k, key_pos, false)) => {
                    if let Some(first) = index.get(&k).map(|i| &entries[*i]) {
                        self.problems.push(
                            Diagnostic::error(
                                key_pos,
                                k.as_str(),
                                "duplicate key; the first one is kept",
                            )
                            .found(format!("`{k}` again (first at line {})", first.key_pos.line))
                            .suggest("remove one of the two"),
                        );
                    } else {
                        index.insert(k.clone(), entries.len());
                        entries.push(Entry { key: k, key_pos, value });
                    }
                }
            },
        }
        Ok(())
    }
}

/// Adds merged (`<<`) entries that the mapping does not set itself.
fn merge(entries: &mut Vec<Entry>, mut index: HashMap<String, usize>, merges: Vec<Value>) {
    for source in merges {
        if let Kind::Map(more) = source.kind {
            for entry in more {
                if !index.contains_key(&entry.key) {
                    index.insert(entry.key.clone(), entries.len());
                    entries.push(entry);
                }
            }
        }
    }
}

fn count(value: &Value) -> usize {
    match &value.kind {
        Kind::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Kind::Map(entries) => 1 + entries.iter().map(|e| count(&e.value)).sum::<usize>(),
        _ => 1,
    }
}

/// The YAML 1.2 core schema for plain scalars.
pub fn resolve(text: &str) -> Kind {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Kind::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return Kind::Int(i);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Kind::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Kind::Int(i);
    }
    let numeric = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if numeric && let Ok(x) = text.parse::<f64>() {
        return Kind::Float(x);
    }
    Kind::Str(text.to_string())
}

#[cfg(test)]
mod tests;
