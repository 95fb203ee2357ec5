//! Translators from docker-compose, Kubernetes and Nomad files to ensembles.
//!
//! Every key of the input is either translated or named in a warning: [`Obj`] records
//! which keys a translator read, and [`Obj::finish`] warns about the rest. Values assumed,
//! approximated or kept although nothing will fill them in are warnings too; what cannot
//! be approximated without changing the meaning (an unset required variable, more than
//! [`MAX_ALLOCATIONS`] allocations) is refused as an error of the translation. The result
//! is checked like any ensemble; its warnings and errors come back beside it.
//!
//! Variables (compose interpolation, Nomad's `NOMAD_VAR_<name>`) come from the caller
//! through [`Options`]: nothing here reads the process environment or the disk.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::error::{Diagnostic, Error, Position};
use crate::model::{
    Allocation, AllocationType, Cpu, Ensemble, Execution, Node, Resources, Version,
};
use crate::tree::{Kind, Path, Value};
use crate::units::ByteSize;

mod compose;
mod kubernetes;
mod nomad;

/// The formats a translator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A docker-compose file (Compose specification).
    Compose,
    /// Kubernetes manifests (Pod, Deployment, StatefulSet, Job, DaemonSet).
    Kubernetes,
    /// A Nomad job file, HCL or JSON.
    Nomad,
}

impl FromStr for Source {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "compose" | "docker-compose" => Ok(Source::Compose),
            "kubernetes" | "k8s" => Ok(Source::Kubernetes),
            "nomad" => Ok(Source::Nomad),
            other => Err(format!(
                "unknown source format {other:?}: expected compose, kubernetes or nomad"
            )),
        }
    }
}

/// A translated ensemble and what could not be carried over.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The ensemble.
    pub ensemble: Ensemble,
    /// Everything dropped or approximated, then any validation warnings.
    pub warnings: Vec<Diagnostic>,
    /// What the translator refused (an unset required variable, too many replicas), then
    /// the validation errors of the result; empty when the result can be deployed.
    pub errors: Vec<Diagnostic>,
}

/// Guesses the format from the file name and content.
pub fn detect(text: &str, file_name: &str) -> Option<Source> {
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".hcl") || lower.ends_with(".nomad") {
        return Some(Source::Nomad);
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('{')
        && (trimmed.contains("\"Job\"") || trimmed.contains("\"job\""))
        && !trimmed.contains("\"apiVersion\"")
    {
        return Some(Source::Nomad);
    }
    if text.lines().any(|l| l.starts_with("job ") || l.starts_with("job\t")) {
        return Some(Source::Nomad);
    }
    if text.lines().any(|l| l.starts_with("apiVersion:") || l.starts_with("kind:"))
        || trimmed.contains("\"apiVersion\"")
    {
        return Some(Source::Kubernetes);
    }
    if text.lines().any(|l| l.starts_with("services:")) || trimmed.contains("\"services\"") {
        return Some(Source::Compose);
    }
    None
}

/// Translates `text` (named `file_name`, for detection) from `from`, or the detected
/// format, with no variables (see [`translate_with`]).
///
/// # Errors
/// [`Error::Syntax`] when the input does not parse; [`Error::Untranslatable`] when it is
/// not a file of the format or holds nothing to run.
pub fn translate(text: &str, from: Option<Source>, file_name: &str) -> Result<Translation, Error> {
    translate_with(text, file_name, &Options { from, ..Options::default() })
}

/// What a caller gives a translator besides the text.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The format; detected from the file name and text when `None`.
    pub from: Option<Source>,
    /// Variables for compose interpolation and Nomad's `NOMAD_VAR_<name>` (the CLI passes
    /// the process environment); they win over those of `dot_env`.
    pub environment: BTreeMap<String, String>,
    /// The text of the `.env` file beside a compose file, when there is one.
    pub dot_env: Option<String>,
}

/// Translates `text` (named `file_name`) with `options`: compose variables from
/// `options.environment` over `options.dot_env`, as `docker compose config` resolves them.
///
/// # Errors
/// As [`translate`]. Refusals that point at one value (an unset required variable, too
/// many replicas) are not `Err`: they are in [`Translation::errors`], with their position.
pub fn translate_with(
    text: &str,
    file_name: &str,
    options: &Options,
) -> Result<Translation, Error> {
    let source = options.from.or_else(|| detect(text, file_name)).ok_or_else(|| {
        Error::Untranslatable(
            "cannot tell the format of the file; pass --from compose, kubernetes or nomad".into(),
        )
    })?;
    let mut cx = Cx::default();
    if source == Source::Compose {
        cx.variables = compose::interpolate::variables(options, &mut cx.warnings);
    }
    let mut ensemble = match source {
        Source::Compose => compose::translate(text, &mut cx)?,
        Source::Kubernetes => kubernetes::translate(text, &mut cx)?,
        Source::Nomad => nomad::translate(text, &mut cx, options)?,
    };
    // Services of one compose project, pod or job reach each other by name: on the
    // ensemble's subnet, where every Docker allocation is `<name>.internal` (and `<name>`).
    if ensemble.allocations.len() > 1 && ensemble.subnet.is_none() {
        ensemble.subnet = Some(crate::model::Subnet::default());
    }
    let (errors, warnings): (Vec<_>, Vec<_>) =
        crate::check(&ensemble).into_iter().partition(Diagnostic::is_error);
    cx.warnings.extend(warnings);
    cx.errors.extend(errors);
    Ok(Translation { ensemble, warnings: cx.warnings, errors: cx.errors })
}

/// The most allocations a translation makes: replicas (compose `replicas`, Kubernetes
/// `replicas`, Nomad `count`) are one allocation per copy, and deployments are tested with
/// up to a thousand allocations. A count that would go past it is refused, not cut.
pub const MAX_ALLOCATIONS: usize = 1000;

/// What translators share: the warnings so far, and the requests refused.
#[derive(Debug, Default)]
pub(crate) struct Cx {
    pub(crate) warnings: Vec<Diagnostic>,
    /// Requests that cannot be represented and must not be approximated (an unset
    /// required variable, too many replicas): errors of the translation.
    pub(crate) errors: Vec<Diagnostic>,
    /// Variables for interpolation: the caller's environment over the `.env` file.
    pub(crate) variables: BTreeMap<String, String>,
    /// Allocations made so far by [`Cx::copies`].
    made: usize,
}

impl Cx {
    /// Warns about the value at `path` (positioned at `pos`).
    pub(crate) fn warn(&mut self, pos: Position, path: &Path, message: impl Into<String>) {
        self.warnings.push(Diagnostic::warning(pos, path.to_string(), message));
    }

    /// Refuses the value at `path`: the translation reports it as an error.
    pub(crate) fn refuse(&mut self, pos: Position, path: &Path, message: impl Into<String>) {
        self.errors.push(Diagnostic::error(pos, path.to_string(), message));
    }

    /// Warns that resources the source left out were assumed (the values now in `a`).
    pub(crate) fn assumed(
        &mut self,
        pos: Position,
        path: &Path,
        a: &Allocation,
        (cpu, ram): (bool, bool),
        hint: &str,
    ) {
        let cores = a.resources.cpu.cores;
        let cores = if cores == 1.0 { "1 core".to_string() } else { format!("{cores} cores") };
        let size = a.resources.ram;
        let message = match (cpu, ram) {
            (true, true) => return,
            (false, false) => format!("no resources given; assumed {cores} and {size}{hint}"),
            (false, true) => format!("no cpu given; assumed {cores}{hint}"),
            (true, false) => format!("no memory given; assumed {size}{hint}"),
        };
        self.warn(pos, path, message);
    }
}

/// A number of copies as the source wrote it, and where.
pub(crate) struct Replicas {
    n: u64,
    pos: Position,
    path: Path,
}

impl Replicas {
    /// One copy, which the source did not ask for in so many words.
    pub(crate) fn one() -> Replicas {
        Replicas { n: 1, pos: Position::default(), path: Path::default() }
    }
}

/// The number of copies `value` asks for. 0 and anything not a number are one copy, with
/// a warning; how many are made is [`Cx::copies`]'s decision.
pub(crate) fn replicas(value: &Value, path: &Path, cx: &mut Cx) -> Replicas {
    let written = text(value).unwrap_or_default();
    let n = match written.trim().parse::<i64>() {
        Ok(n) if n > 0 => n as u64,
        Ok(0) => {
            let why = "0 replicas translated as 1: an ensemble runs every allocation it names";
            cx.warn(value.pos, path, why);
            1
        }
        _ => {
            let why = format!(
                "not translated: {written:?} is not a number of replicas; one copy is made"
            );
            cx.warn(value.pos, path, why);
            1
        }
    };
    Replicas { n, pos: value.pos, path: path.clone() }
}

impl Cx {
    /// How many copies of a workload of `per_copy` allocations to make: all that were
    /// asked for while the ensemble stays within [`MAX_ALLOCATIONS`]; otherwise one, and
    /// the count is refused (an error of the translation).
    pub(crate) fn copies(&mut self, replicas: &Replicas, per_copy: usize) -> u32 {
        let per_copy = per_copy.max(1) as u64;
        let wanted = replicas.n.saturating_mul(per_copy);
        if replicas.n > 1 && (self.made as u64).saturating_add(wanted) > MAX_ALLOCATIONS as u64 {
            let n = replicas.n;
            self.refuse(replicas.pos, &replicas.path, format!("{n} replicas: a translated ensemble holds at most {MAX_ALLOCATIONS} allocations (one per copy of each container or task); lower the count or split the deployment"));
            self.made += per_copy as usize;
            return 1;
        }
        self.made += wanted as usize;
        replicas.n as u32
    }
}

/// A mapping of the input being translated: remembers which keys were read so that the
/// rest can be reported.
pub(crate) struct Obj<'v> {
    value: &'v Value,
    pub(crate) path: Path,
    used: Vec<&'v str>,
}

impl<'v> Obj<'v> {
    /// Wraps `value` (a mapping; anything else reads as empty).
    pub(crate) fn new(value: &'v Value, path: Path) -> Obj<'v> {
        Obj { value, path, used: Vec::new() }
    }

    /// The value of `key`, marking it translated.
    pub(crate) fn get(&mut self, key: &str) -> Option<&'v Value> {
        let entry = self.value.entries()?.iter().find(|e| e.key == key)?;
        self.used.push(&entry.key);
        Some(&entry.value)
    }

    /// The string value of `key` (numbers and booleans written as text too).
    pub(crate) fn str(&mut self, key: &str) -> Option<String> {
        self.get(key).and_then(text)
    }

    /// A nested mapping.
    pub(crate) fn obj(&mut self, key: &str) -> Option<Obj<'v>> {
        let path = self.path.key(key);
        self.get(key).map(|v| Obj::new(v, path))
    }

    /// Marks `key` as read without translating it (it has no meaning for an ensemble).
    pub(crate) fn skip(&mut self, key: &str) {
        self.get(key);
    }

    /// Warns that `key`, when present, is not translated, and why.
    pub(crate) fn drop_key(&mut self, cx: &mut Cx, key: &str, why: &str) {
        if let Some(value) = self.get(key) {
            let pos = self.value.position(&Path::default().key(key)).max(value.pos);
            cx.warn(pos, &self.path.key(key), format!("not translated: {why}"));
        }
    }

    /// Position of `key`, or of the mapping.
    pub(crate) fn pos(&self, key: &str) -> Position {
        self.value.position(&Path::default().key(key))
    }

    /// Warns about every key not read.
    pub(crate) fn finish(self, cx: &mut Cx) {
        for entry in self.value.entries().unwrap_or_default() {
            if !self.used.contains(&entry.key.as_str()) && !entry.key.starts_with("x-") {
                cx.warn(
                    entry.key_pos,
                    &self.path.key(&entry.key),
                    "not translated: an ensemble has no equivalent",
                );
            }
        }
    }
}

/// A scalar as text.
pub(crate) fn text(value: &Value) -> Option<String> {
    match &value.kind {
        Kind::Str(s) => Some(s.clone()),
        Kind::Int(i) => Some(i.to_string()),
        Kind::Float(x) => Some(x.to_string()),
        Kind::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list of strings (a single string counts as a one-item list).
pub(crate) fn strings(value: &Value) -> Vec<String> {
    match &value.kind {
        Kind::Seq(items) => items.iter().filter_map(text).collect(),
        _ => text(value).into_iter().collect(),
    }
}

/// An allocation name from any name: lower-case DNS label; warns when it had to change.
pub(crate) fn dns_name(raw: &str, cx: &mut Cx, pos: Position, path: &Path) -> String {
    let mut name: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let mut name: String = name.trim_matches('-').chars().take(63).collect();
    name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        name = "app".into();
    }
    if name != raw {
        cx.warn(pos, path, format!("renamed `{raw}` to `{name}`: names are DNS labels"));
    }
    name
}

/// A new docker allocation with the given image and the default resources.
pub(crate) fn docker(kind: AllocationType, image: String) -> Allocation {
    Allocation {
        kind,
        executor: crate::model::Executor::Docker,
        resources: Resources {
            cpu: Cpu { cores: 1.0, clock: None, architecture: None },
            ram: ByteSize::mib(512),
            disk: None,
            gpus: Vec::new(),
        },
        execution: Execution { image: Some(image), ..Execution::default() },
        ports: Vec::new(),
        volumes: Vec::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        environment: BTreeMap::new(),
        healthcheck: None,
        depends_on: Vec::new(),
        restart: None,
        dns_name: None,
        keys: Vec::new(),
        provision: Vec::new(),
    }
}

/// An ensemble with these allocations and nodes, nothing else.
pub(crate) fn ensemble(
    allocations: BTreeMap<String, Allocation>,
    nodes: BTreeMap<String, Node>,
) -> Ensemble {
    Ensemble {
        version: Version::V1,
        metadata: BTreeMap::new(),
        allocations,
        nodes,
        edges: Vec::new(),
        supervisor: None,
        subnet: None,
        scripts: BTreeMap::new(),
        keys: BTreeMap::new(),
        storage: BTreeMap::new(),
        exclude_peers: Vec::new(),
        contracts: BTreeMap::new(),
        requirements: None,
        escalation: None,
    }
}

/// Splits a shell-like command line on spaces, honouring single and double quotes.
pub(crate) fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            (None, c) => current.push(c),
        }
    }
    if any || !current.is_empty() {
        words.push(current);
    }
    words
}

/// Sizes with the suffixes of docker and Kubernetes: `512m`, `1g` (docker, binary),
/// `512Mi`, `1Gi` (binary), `500M`, `1G` (decimal), plain bytes, `1e9`.
pub(crate) fn loose_bytes(text: &str, docker_style: bool) -> Option<ByteSize> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic() && c != 'e').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let scale: f64 = match unit.trim() {
        "" | "b" | "B" => 1.0,
        "Ki" | "KiB" | "kib" => 1024.0,
        "Mi" | "MiB" | "mib" => 1048576.0,
        "Gi" | "GiB" | "gib" => 1073741824.0,
        "Ti" | "TiB" => 1099511627776.0,
        "k" | "K" | "kb" | "KB" if docker_style => 1024.0,
        "m" | "M" | "mb" | "MB" if docker_style => 1048576.0,
        "g" | "G" | "gb" | "GB" if docker_style => 1073741824.0,
        "k" | "K" | "kB" | "KB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "T" | "TB" => 1e12,
        _ => return None,
    };
    let bytes = number * scale;
    (bytes.is_finite() && (0.0..1.8e19).contains(&bytes)).then(|| ByteSize(bytes.round() as u64))
}

#[cfg(test)]
mod tests;
