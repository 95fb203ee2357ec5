//! Reading, rendering and editing the configuration file.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::keys::{KEYS, KeyDoc, env_var, lookup};
use super::{Config, Error};

/// The defaults as a TOML table (one sub-table per section).
fn defaults_table() -> toml::Table {
    toml::Table::try_from(Config::default()).expect("the default Config serializes to TOML")
}

fn split(key: &str) -> (&str, &str) {
    key.split_once('.').unwrap_or(("", key))
}

fn get_path<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let (section, name) = split(key);
    table.get(section)?.as_table()?.get(name)
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    let (section, name) = split(key);
    let section =
        table.entry(section.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(section) = section {
        section.insert(name.to_string(), value);
    }
}

/// Parses `raw` (from the command line or the environment) as the kind of value `doc`
/// holds: strings are taken as they are, booleans and integers are parsed, anything
/// else is read as a TOML value.
fn parse_raw(doc: &KeyDoc, raw: &str) -> Result<toml::Value, Error> {
    let invalid = |detail: String| Error::InvalidValue {
        key: doc.key.to_string(),
        value: format!("{raw:?}"),
        expected: doc.expected,
        detail,
    };
    match get_path(&defaults_table(), doc.key) {
        Some(toml::Value::String(_)) => Ok(toml::Value::String(raw.to_string())),
        Some(toml::Value::Boolean(_)) => raw
            .trim()
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| invalid("not a boolean".into())),
        Some(toml::Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|e| invalid(format!("not a whole number: {e}"))),
        _ => toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or_else(|| invalid("not a TOML value".into())),
    }
}

/// Checks one value against its key, on top of the defaults so that the error can only
/// be about this key.
fn check_value(doc: &KeyDoc, value: &toml::Value) -> Result<(), Error> {
    let mut table = defaults_table();
    set_path(&mut table, doc.key, value.clone());
    table.try_into::<Config>().map(drop).map_err(|e| Error::InvalidValue {
        key: doc.key.to_string(),
        value: value.to_string(),
        expected: doc.expected,
        detail: e.message().trim().to_string(),
    })
}

/// Checks every key of a parsed file: known, and of the right form.
fn check_table(table: &toml::Table) -> Result<(), Error> {
    for (section, body) in table {
        let Some(body) = body.as_table() else {
            if KEYS.iter().any(|k| split(k.key).0 == section) {
                return Err(Error::Rule(format!("`{section}` must be a [section], not a value")));
            }
            return Err(lookup(section)
                .err()
                .unwrap_or_else(|| Error::UnknownKey { key: section.clone(), suggestion: None }));
        };
        for (name, value) in body {
            let doc = lookup(&format!("{section}.{name}"))?;
            check_value(doc, value)?;
        }
    }
    Ok(())
}

fn parse_file(path: &Path, text: &str) -> Result<toml::Table, Error> {
    let file_error = |message: String| Error::File { path: path.to_path_buf(), message };
    let table: toml::Table = toml::from_str(text).map_err(|e| file_error(e.to_string()))?;
    check_table(&table).map_err(|e| file_error(e.to_string()))?;
    Ok(table)
}

fn read_file(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path: path.to_path_buf(), source }),
    }
}

/// Loads the configuration from `path` (defaults if it does not exist) with overrides
/// from the process environment.
pub fn load(path: &Path) -> Result<Config, Error> {
    load_with_env(path, |var| std::env::var(var).ok())
}

/// Loads the configuration from `path` with overrides looked up through `env`.
///
/// Rules that span several keys are not checked here (see [`Config::validate`]), so a
/// file that breaks one can still be shown and repaired.
pub fn load_with_env(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
    let mut table = match read_file(path)? {
        Some(text) => parse_file(path, &text)?,
        None => toml::Table::new(),
    };
    for doc in KEYS {
        let var = env_var(doc.key);
        if let Some(raw) = env(&var) {
            let value = parse_raw(doc, &raw)
                .and_then(|value| check_value(doc, &value).map(|()| value))
                .map_err(|source| Error::Env { var: var.clone(), source: Box::new(source) })?;
            set_path(&mut table, doc.key, value);
        }
    }
    table
        .try_into::<Config>()
        .map_err(|e| Error::File { path: path.to_path_buf(), message: e.to_string() })
}

/// The default configuration file: every key with its default value, preceded by a
/// comment saying what it does, what it expects and which variable overrides it.
pub fn default_file() -> String {
    let defaults = defaults_table();
    let mut out = String::from(
        "# dms configuration.\n\
         #\n\
         # Every key can also be set with an environment variable DMS_<SECTION>_<KEY>\n\
         # (for example DMS_API_ADDR), which wins over this file. Change values with\n\
         # `dms config set KEY VALUE` to have them checked before they are written.\n",
    );
    let mut section = "";
    for doc in KEYS {
        let (sec, name) = split(doc.key);
        if sec != section {
            section = sec;
            let _ = write!(out, "\n[{section}]\n");
        }
        let value = get_path(&defaults, doc.key)
            .map(ToString::to_string)
            .expect("every key in KEYS has a default");
        let _ = write!(
            out,
            "\n# {}\n# Expected: {}. Environment: {}.\n{name} = {value}\n",
            doc.doc,
            doc.expected,
            env_var(doc.key)
        );
    }
    out
}

/// Writes the default file at `path` unless a file is already there. Returns whether it
/// wrote one.
pub fn init(path: &Path) -> Result<bool, Error> {
    if path.exists() {
        return Ok(false);
    }
    write_atomic(path, default_file().as_bytes())?;
    Ok(true)
}

/// Sets `key` to `raw` in the file at `path` (created with defaults if missing),
/// keeping comments and layout. The value is checked first, then the whole resulting
/// configuration; on any error nothing is written.
pub fn set(path: &Path, key: &str, raw: &str) -> Result<Config, Error> {
    let doc = lookup(key)?;
    let value = parse_raw(doc, raw)?;
    check_value(doc, &value)?;

    let text = read_file(path)?.unwrap_or_else(default_file);
    let mut document: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| Error::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let edit_value: toml_edit::Value = value
        .to_string()
        .parse()
        .map_err(|e: toml_edit::TomlError| Error::Rule(format!("cannot write `{key}`: {e}")))?;
    let (section, name) = split(key);
    let table = document
        .entry(section)
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_mut()
        .ok_or_else(|| Error::File {
            path: path.to_path_buf(),
            message: format!("`{section}` is not a [section]"),
        })?;
    match table.get_mut(name).and_then(|item| item.as_value_mut()) {
        Some(existing) => {
            let decor = existing.decor().clone();
            *existing = edit_value;
            *existing.decor_mut() = decor;
        }
        None => {
            table.insert(name, toml_edit::Item::Value(edit_value));
        }
    }
    let new_text = document.to_string();
    let table = parse_file(path, &new_text)?;
    let config: Config = table
        .try_into()
        .map_err(|e| Error::File { path: path.to_path_buf(), message: e.to_string() })?;
    config.validate()?;
    write_atomic(path, new_text.as_bytes())?;
    Ok(config)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, fsynced and
/// renamed over the target, so a crash leaves either the old or the new file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("toml.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}
