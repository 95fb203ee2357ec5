//! `dms validate`, `dms scaffold` and `dms translate`: ensemble files, without a daemon.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use dms_ensemble::error::render_all;
use dms_ensemble::model::Executor;
use dms_ensemble::translate::{self, Source};
use dms_ensemble::{Diagnostic, Error};

use super::Ctx;
use crate::cli::{Output, ScaffoldExecutor, TranslateFrom};

fn read(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

fn eprint_all(diagnostics: &[Diagnostic], file: &str) {
    if !diagnostics.is_empty() {
        eprintln!("{}", render_all(diagnostics, file));
    }
}

fn count(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    format!("{errors} error(s), {warnings} warning(s)")
}

/// `dms validate <file>`: every error and warning, with positions.
pub fn validate(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let text = read(file)?;
    let name = file.display().to_string();
    let (diagnostics, summary) = match dms_ensemble::load(&text) {
        Ok(loaded) => {
            let e = &loaded.ensemble;
            let summary = format!(
                "{name}: valid ensemble: {} allocation(s) on {} node(s)",
                e.allocations.len(),
                e.nodes.len()
            );
            (loaded.warnings, Some(summary))
        }
        Err(error) => (error.diagnostics(), None),
    };
    if ctx.output == Output::Json {
        crate::output::json(
            &serde_json::json!({ "file": name, "valid": summary.is_some(), "diagnostics": diagnostics }),
        )?;
    } else {
        eprint_all(&diagnostics, &name);
        if let Some(summary) = &summary {
            println!("{summary}");
        }
    }
    if summary.is_none() {
        bail!("{name}: the ensemble is not valid: {}", count(&diagnostics));
    }
    Ok(())
}

/// `dms scaffold`: a commented starter ensemble on stdout, or written to a new file.
pub fn scaffold(executor: ScaffoldExecutor, out: Option<&Path>) -> anyhow::Result<()> {
    let executor = match executor {
        ScaffoldExecutor::Docker => Executor::Docker,
        ScaffoldExecutor::Wasm => Executor::Wasm,
        ScaffoldExecutor::Vm => Executor::Vm,
    };
    let text = dms_ensemble::scaffold::scaffold(executor);
    match out {
        Some(path) => write_new(path, &text),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).open(path).with_context(|| {
            format!("cannot create {} (an existing file is never overwritten)", path.display())
        })?;
    file.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The process environment, for compose interpolation and Nomad's `NOMAD_VAR_<name>`
/// (variables whose name or value is not UTF-8 are left out).
fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// The `.env` file beside `file`, as `docker compose` reads it, when there is one.
fn dot_env(file: &Path) -> anyhow::Result<Option<String>> {
    let path = file.parent().unwrap_or(Path::new(".")).join(".env");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `dms translate <file>`: the ensemble on stdout (or `--out`), warnings on stderr.
/// Compose variables come from the process environment and the `.env` file beside the
/// file, as `docker compose config` takes them.
pub fn translate(
    ctx: &Ctx,
    file: &Path,
    from: Option<TranslateFrom>,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let text = read(file)?;
    let name = file.display().to_string();
    let from = from.map(|f| match f {
        TranslateFrom::Compose => Source::Compose,
        TranslateFrom::Kubernetes => Source::Kubernetes,
        TranslateFrom::Nomad => Source::Nomad,
    });
    let options = translate::Options { from, environment: environment(), dot_env: dot_env(file)? };
    let translation = match translate::translate_with(&text, &name, &options) {
        Ok(translation) => translation,
        Err(Error::Untranslatable(why)) => bail!("{name}: cannot translate: {why}"),
        Err(error) => {
            eprint_all(&error.diagnostics(), &name);
            bail!("{name}: cannot translate: the file does not parse");
        }
    };
    let rendered = match ctx.output {
        Output::Json => dms_ensemble::to_json(&translation.ensemble) + "\n",
        Output::Table => dms_ensemble::to_yaml(&translation.ensemble),
    };
    eprint_all(&translation.warnings, &name);
    match out {
        Some(path) => write_new(path, &rendered)?,
        None => print!("{rendered}"),
    }
    if !translation.errors.is_empty() {
        // Refusals point into the source file; validation errors into the result.
        let (refused, invalid): (Vec<_>, Vec<_>) =
            translation.errors.iter().cloned().partition(|d| d.position.line > 0);
        eprint_all(&refused, &name);
        eprint_all(&invalid, "translated ensemble");
        bail!(
            "{name}: the translation is not valid: {}; fix the source (or set the variables it \
             needs) or edit the result",
            count(&translation.errors)
        );
    }
    eprintln!("{name}: translated with {} warning(s)", translation.warnings.len());
    Ok(())
}
