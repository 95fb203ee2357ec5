//! HCL text → the positioned tree the translator reads, shaped as hcl-rs shapes a body
//! (the HCL JSON mapping): a block `group "web" { … }` is `group: {web: {…}}`, blocks
//! with the same name and labels merge, and a repeated unlabelled block becomes a list.
//! Unlike `hcl::from_str`, every key and value keeps the line and column it was written
//! at, so warnings and errors point into the file; a syntax error is placed where the
//! parser stopped.

use std::ops::Range;

use hcl::edit::Span as _;
use hcl::edit::structure::{Block, Body, Structure};

use crate::error::{Diagnostic, Position};
use crate::tree::{Entry, Kind, Value};

/// Parses an HCL job file.
pub(super) fn parse(source: &str) -> Result<Value, Box<Diagnostic>> {
    let body = hcl::edit::parser::parse_body(source).map_err(|e| {
        let at = e.location();
        Box::new(
            Diagnostic::error(
                Position::new(at.line(), at.column()),
                "",
                "the file is not valid HCL",
            )
            .found(e.message().to_string()),
        )
    })?;
    let lines = Lines::new(source);
    Ok(Value { pos: Position::new(1, 1), kind: Kind::Map(entries(nodes(&body, &lines))) })
}

/// Byte offsets where lines start, to turn spans into positions.
struct Lines(Vec<usize>);

impl Lines {
    fn new(source: &str) -> Lines {
        let starts = std::iter::once(0).chain(source.match_indices('\n').map(|(i, _)| i + 1));
        Lines(starts.collect())
    }

    fn pos(&self, span: Option<Range<usize>>) -> Position {
        let Some(span) = span else { return Position::default() };
        let line = self.0.partition_point(|&start| start <= span.start);
        let start = self.0[line.saturating_sub(1)];
        Position::new(line, span.start - start + 1)
    }
}

/// A body on its way to a value: labels nest, bodies of one name collect.
enum Node {
    Map(Vec<(String, Position, Node)>),
    Bodies(Vec<Value>),
    Leaf(Value),
}

fn nodes(body: &Body, lines: &Lines) -> Vec<(String, Position, Node)> {
    let mut map: Vec<(String, Position, Node)> = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                let key = attr.key.as_str().to_string();
                let pos = lines.pos(attr.key.span());
                let leaf = Node::Leaf(expression(&attr.value, lines));
                match map.iter_mut().find(|(k, ..)| *k == key) {
                    Some(slot) => slot.2 = leaf,
                    None => map.push((key, pos, leaf)),
                }
            }
            Structure::Block(block) => {
                let (key, pos, node) = block_node(block, lines);
                merge_into(&mut map, key, pos, node);
            }
        }
    }
    map
}

fn block_node(block: &Block, lines: &Lines) -> (String, Position, Node) {
    let body =
        Value { pos: lines.pos(block.span()), kind: Kind::Map(entries(nodes(&block.body, lines))) };
    let mut node = Node::Bodies(vec![body]);
    for label in block.labels.iter().rev() {
        node = Node::Map(vec![(label.as_str().to_string(), lines.pos(label.span()), node)]);
    }
    (block.ident.as_str().to_string(), lines.pos(block.ident.span()), node)
}

fn merge_into(map: &mut Vec<(String, Position, Node)>, key: String, pos: Position, node: Node) {
    match map.iter_mut().find(|(k, ..)| *k == key) {
        Some(slot) => merge(&mut slot.2, node),
        None => map.push((key, pos, node)),
    }
}

fn merge(into: &mut Node, node: Node) {
    match (into, node) {
        (Node::Map(existing), Node::Map(more)) => {
            for (key, pos, node) in more {
                merge_into(existing, key, pos, node);
            }
        }
        (Node::Bodies(existing), Node::Bodies(more)) => existing.extend(more),
        (slot, other) => *slot = other,
    }
}

fn entries(map: Vec<(String, Position, Node)>) -> Vec<Entry> {
    map.into_iter()
        .map(|(key, key_pos, node)| Entry { key, key_pos, value: value(node, key_pos) })
        .collect()
}

fn value(node: Node, pos: Position) -> Value {
    match node {
        Node::Map(map) => Value { pos, kind: Kind::Map(entries(map)) },
        Node::Bodies(mut bodies) if bodies.len() == 1 => bodies.remove(0),
        Node::Bodies(bodies) => Value { pos: bodies[0].pos, kind: Kind::Seq(bodies) },
        Node::Leaf(value) => value,
    }
}

/// An attribute's value, as hcl-rs writes it (templates and traversals as `${…}`
/// strings), positioned where the expression starts; nested values share that position.
fn expression(expr: &hcl::edit::expr::Expression, lines: &Lines) -> Value {
    let pos = lines.pos(expr.span());
    let mut value = Value::from_hcl(hcl::Value::from(hcl::Expression::from(expr.clone())));
    place(&mut value, pos);
    value
}

fn place(value: &mut Value, pos: Position) {
    value.pos = pos;
    match &mut value.kind {
        Kind::Seq(items) => items.iter_mut().for_each(|v| place(v, pos)),
        Kind::Map(entries) => {
            for entry in entries {
                entry.key_pos = pos;
                place(&mut entry.value, pos);
            }
        }
        _ => {}
    }
}
