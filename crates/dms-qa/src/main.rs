//! `dms-qa`: the CI's QA tooling (see the crate README).
//!
//! - `dms-qa run`: runs one check of a shell stage (e.g. `cargo fmt --check`), echoing
//!   its output, and records it as a JUnit case with the output's tail when it fails.
//! - `dms-qa case`: records a case whose outcome is known (a whole stage's status).
//! - `dms-qa report`: the QA report and the project status page, from the stages' JUnit
//!   files, the Gherkin features and `docs/features.toml`.
//! - `dms-qa check-page`: opens a page in headless Chromium and checks its content,
//!   recording the check as a JUnit case.

mod browser;
mod features;
mod junit;
mod pages;
mod report;

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use crate::junit::Outcome;

/// QA tooling for the dms CI: JUnit cases, the QA report, the status page.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a command as one JUnit case of a stage; exits with the command's status.
    Run {
        /// The stage's JUnit file (made when missing, the case added when not).
        #[arg(long)]
        junit: PathBuf,
        /// The case's name.
        #[arg(long)]
        name: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Record one case whose outcome is already known (e.g. a whole stage's exit status).
    Case {
        /// The stage's JUnit file.
        #[arg(long)]
        junit: PathBuf,
        /// The case's name.
        #[arg(long)]
        name: String,
        /// It failed (default: it passed).
        #[arg(long)]
        failed: bool,
        /// How long it took, in seconds.
        #[arg(long, default_value_t = 0)]
        seconds: u64,
        /// What to say about it.
        #[arg(long)]
        message: Option<String>,
    },
    /// Write the QA report (`<out>/qa/index.html`) and the status page (`<out>/status/index.html`).
    Report {
        /// The folder of the stages' JUnit files (`<stage>.xml`).
        #[arg(long)]
        junit: PathBuf,
        /// The folder of the Gherkin feature files.
        #[arg(long, default_value = "tests/features")]
        features: PathBuf,
        /// The seed-feature registry.
        #[arg(long, default_value = "docs/features.toml")]
        registry: PathBuf,
        /// The artifacts folder the pages go under.
        #[arg(long)]
        out: PathBuf,
        /// What the pages name as the build (e.g. a commit and a date).
        #[arg(long, default_value = "(unnamed)")]
        build: String,
        /// The docs site's root, relative to the status page.
        #[arg(long, default_value = "../docs")]
        docs: String,
    },
    /// Open a page in headless Chromium, check it renders the given texts, record a case.
    CheckPage {
        /// The stage's JUnit file.
        #[arg(long)]
        junit: PathBuf,
        /// The case's name.
        #[arg(long)]
        name: String,
        /// The page: a file path or a URL.
        #[arg(long)]
        page: String,
        /// A text the rendered page must contain (repeatable).
        #[arg(long = "expect")]
        expect: Vec<String>,
        /// Where to save the screenshot.
        #[arg(long)]
        screenshot: PathBuf,
        /// The Chromium binary.
        #[arg(long, default_value = "/usr/bin/chromium")]
        chromium: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dms-qa: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Run { junit, name, command } => run_case(&junit, &name, &command),
        Cmd::Case { junit, name, failed, seconds, message } => {
            let outcome = if failed { Outcome::Failed } else { Outcome::Passed };
            let stage = junit::stage_of(&junit);
            let time = std::time::Duration::from_secs(seconds);
            junit::append(&junit, &stage, &name, outcome, time, message.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { junit, features, registry, out, build, docs } => {
            let registry = features::Registry::load(&registry)?;
            let scenarios = features::scenarios(&features)?;
            let cases = junit::read_dir(&junit)?;
            let report = report::Report::build(build, &registry, &scenarios, &cases);
            write(&out.join("qa/index.html"), &pages::qa(&report))?;
            write(&out.join("status/index.html"), &pages::status(&report, &docs))?;
            for f in &report.features {
                let (passed, all) = f.tally();
                println!("{:<28} {:<10} {passed}/{all}", f.feature.id, f.status().word());
            }
            println!("wrote {0}/qa/index.html and {0}/status/index.html", out.display());
            if report.any_failed() {
                println!("this build has failed cases: the QA report lists each with its message");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckPage { junit, name, page, expect, screenshot, chromium } => {
            let started = Instant::now();
            let url = if page.contains("://") { Ok(page) } else { file_url(Path::new(&page)) };
            let result = url.and_then(|url| {
                let len = browser::check(&chromium, &url, &expect, &screenshot)?;
                Ok((url, len))
            });
            let (outcome, message) = match &result {
                Ok((url, len)) => {
                    println!(
                        "{name}: {url} rendered ({len} bytes of DOM) with every expected text"
                    );
                    (Outcome::Passed, None)
                }
                Err(e) => (Outcome::Failed, Some(format!("{e:#}"))),
            };
            junit::append(
                &junit,
                &junit::stage_of(&junit),
                &name,
                outcome,
                started.elapsed(),
                message.as_deref(),
            )?;
            result.map(|_| ExitCode::SUCCESS)
        }
    }
}

fn file_url(path: &Path) -> Result<String> {
    let abs = path.canonicalize().with_context(|| format!("{} does not exist", path.display()))?;
    Ok(format!("file://{}", abs.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The last lines of a command's output, kept for the failure message.
const TAIL_LINES: usize = 80;

fn run_case(junit: &Path, name: &str, command: &[String]) -> Result<ExitCode> {
    let started = Instant::now();
    let stage = junit::stage_of(junit);
    let spawned = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", command[0]));
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            // A check that cannot even start has failed: recorded, so the report shows it.
            let message = format!("{e:#}");
            junit::append(junit, &stage, name, Outcome::Failed, started.elapsed(), Some(&message))?;
            return Err(e);
        }
    };
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
    let out = echo(child.stdout.take(), tail.clone(), false);
    let err = echo(child.stderr.take(), tail.clone(), true);
    let status = child.wait()?;
    for t in [out, err] {
        let _ = t.join();
    }
    let (outcome, message) = if status.success() {
        (Outcome::Passed, None)
    } else {
        let lines = tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<String>>().join("\n"))
            .unwrap_or_default();
        (
            Outcome::Failed,
            Some(format!("`{}` failed ({status}); its last lines:\n{lines}", command.join(" "))),
        )
    };
    junit::append(junit, &stage, name, outcome, started.elapsed(), message.as_deref())?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// Copies a child's output to ours line by line, keeping the last lines in `tail`.
fn echo<R: Read + Send + 'static>(
    pipe: Option<R>,
    tail: Arc<Mutex<VecDeque<String>>>,
    to_err: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(pipe) = pipe else { return };
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        // Bytes, not `lines()`: output that is not UTF-8 must not stop the draining.
        while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let line = String::from_utf8_lossy(&buf).trim_end_matches('\n').to_owned();
            buf.clear();
            if to_err {
                let _ = writeln!(std::io::stderr(), "{line}");
            } else {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
            if let Ok(mut t) = tail.lock() {
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    })
}
