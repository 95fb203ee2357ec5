//! Reading JUnit XML files (cucumber's, nextest's, ours) into one list of cases, and
//! adding one case to a stage's file for a check run by a shell script.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

/// How a test case ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// It failed (a `<failure>` or an `<error>`).
    Failed,
    /// It was skipped.
    Skipped,
    /// It passed.
    Passed,
}

impl Outcome {
    /// The word the pages show.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Passed => "passed",
        }
    }
}

/// One test case of one JUnit file.
#[derive(Clone, Debug)]
pub struct Case {
    /// The stage that ran it: the file's name without `.xml`.
    pub stage: String,
    /// The `<testsuite>` name.
    pub suite: String,
    /// The `<testcase>` name.
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub time: Duration,
    /// The failure's message and text, when it failed.
    pub message: Option<String>,
}

/// The stage a JUnit file is for: its name up to the first dot (`unit.xml` and
/// `unit.doctests.xml` are both the `unit` stage's).
pub fn stage_of(file: &Path) -> String {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    name.split('.').next().unwrap_or_default().to_owned()
}

/// Every case of every `*.xml` file in `dir`, in file order. A file that cannot be read
/// or parsed (a run killed while writing it) is a failed case of its stage, not an
/// error: the report is still made, and says so.
pub fn read_dir(dir: &Path) -> Result<Vec<Case>> {
    let files = crate::features::files_ending(dir, "xml")?;
    let mut cases = Vec::new();
    for file in files {
        let stage = stage_of(&file);
        let parsed = std::fs::read_to_string(&file)
            .map_err(anyhow::Error::from)
            .and_then(|text| parse(&stage, &text));
        match parsed {
            Ok(found) => cases.extend(found),
            Err(e) => cases.push(Case {
                stage,
                suite: "(unreadable JUnit file)".into(),
                name: file.display().to_string(),
                outcome: Outcome::Failed,
                time: Duration::ZERO,
                message: Some(format!("{e:#}: was the stage killed while writing it?")),
            }),
        }
    }
    Ok(cases)
}

/// The cases of one JUnit document.
pub fn parse(stage: &str, xml: &str) -> Result<Vec<Case>> {
    let doc = roxmltree::Document::parse(xml)?;
    let mut cases = Vec::new();
    for suite in doc.descendants().filter(|n| n.has_tag_name("testsuite")) {
        let suite_name = suite.attribute("name").unwrap_or_default();
        for case in suite.children().filter(|n| n.has_tag_name("testcase")) {
            cases.push(case_of(stage, suite_name, case));
        }
    }
    Ok(cases)
}

fn case_of(stage: &str, suite: &str, node: roxmltree::Node<'_, '_>) -> Case {
    let child = |tag: &str| node.children().find(|n| n.has_tag_name(tag));
    let failed = child("failure").or_else(|| child("error"));
    let outcome = match (failed, child("skipped")) {
        (Some(_), _) => Outcome::Failed,
        (None, Some(_)) => Outcome::Skipped,
        (None, None) => Outcome::Passed,
    };
    let message = failed.map(|f| {
        let head = f.attribute("message").unwrap_or_default();
        let body = f.text().unwrap_or_default().trim();
        let mut text = match (head.is_empty(), body.is_empty()) {
            (_, true) => head.to_owned(),
            (true, false) => body.to_owned(),
            (false, false) => format!("{head}\n{body}"),
        };
        // nextest keeps a failed test's output beside the failure: its end says why.
        for tag in ["system-out", "system-err"] {
            let output = child(tag).and_then(|n| n.text()).unwrap_or_default().trim();
            if !output.is_empty() {
                let lines: Vec<&str> = output.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                text.push_str(&format!("\n--- {tag} (last lines) ---\n{tail}"));
            }
        }
        text
    });
    let secs: f64 = node.attribute("time").and_then(|t| t.parse().ok()).unwrap_or(0.0);
    Case {
        stage: stage.to_owned(),
        suite: suite.to_owned(),
        name: node.attribute("name").unwrap_or_default().to_owned(),
        outcome,
        time: Duration::from_secs_f64(secs.max(0.0)),
        message,
    }
}

/// Adds a case to the single-suite JUnit file `file` (made when missing): a shell
/// stage's check, e.g. `cargo fmt --check`, recorded with its outcome and output.
pub fn append(
    file: &Path,
    suite: &str,
    name: &str,
    outcome: Outcome,
    time: Duration,
    message: Option<&str>,
) -> Result<()> {
    use junit_report::{ReportBuilder, TestCase, TestSuiteBuilder};

    let mut earlier = Vec::new();
    if file.exists() {
        let text = std::fs::read_to_string(file)?;
        earlier = parse(suite, &text).with_context(|| format!("parsing {}", file.display()))?;
        if let Some(other) = earlier.iter().find(|c| c.suite != suite) {
            bail!(
                "{} holds suite {:?}, not {suite:?}: use one file per stage",
                file.display(),
                other.suite
            );
        }
    }
    let to_case = |name: &str, outcome: Outcome, time: Duration, message: Option<&str>| {
        let message = message.map(xml_safe);
        let message = message.as_deref();
        let time = time::Duration::try_from(time).unwrap_or(time::Duration::ZERO);
        match outcome {
            Outcome::Passed => TestCase::success(name, time),
            Outcome::Skipped => TestCase::skipped(name),
            Outcome::Failed => TestCase::failure(name, time, "check failed", message.unwrap_or("")),
        }
    };
    let mut builder = TestSuiteBuilder::new(suite);
    for c in &earlier {
        builder.add_testcase(to_case(&c.name, c.outcome, c.time, c.message.as_deref()));
    }
    builder.add_testcase(to_case(name, outcome, time, message));
    let report = ReportBuilder::new().add_testsuite(builder.build()).build();
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let out =
        std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?;
    report.write_xml(out).with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}

/// Text that XML 1.0 can hold: terminal colours stripped, other control characters
/// (which no XML escape can carry) dropped.
fn xml_safe(text: &str) -> String {
    anstream::adapter::strip_str(text)
        .to_string()
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUCUMBER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite id="0" name="Feature: Embedded store: tests/features/store.feature" tests="2">
    <testcase name="Scenario: A failed transaction writes nothing: tests/features/store.feature:21:3" time="0.5"/>
    <testcase name="Scenario: Records survive a reopen: tests/features/store.feature:26:3" time="1.25">
      <failure type="Step Panicked" message="record lost"/>
    </testcase>
  </testsuite>
</testsuites>"#;

    #[test]
    fn reads_outcomes_times_and_messages() {
        let cases = parse("functional", CUCUMBER).expect("test setup");
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].outcome, Outcome::Passed);
        assert_eq!(cases[0].time, Duration::from_millis(500));
        assert_eq!(cases[1].outcome, Outcome::Failed);
        assert_eq!(cases[1].message.as_deref(), Some("record lost"));
        assert_eq!(cases[1].stage, "functional");
        assert!(cases[1].suite.starts_with("Feature: Embedded store"));
    }

    #[test]
    fn append_keeps_earlier_cases_and_refuses_another_suite() {
        let dir = tempfile::tempdir().expect("test setup");
        let file = dir.path().join("junit/static.xml");
        append(&file, "static", "cargo fmt --check", Outcome::Passed, Duration::from_secs(2), None)
            .expect("test setup");
        let coloured = "\u{1b}[31merror[E0308]\u{1b}[0m: mismatched types\u{7}";
        append(
            &file,
            "static",
            "cargo clippy",
            Outcome::Failed,
            Duration::from_secs(90),
            Some(coloured),
        )
        .expect("test setup");
        let cases = read_dir(file.parent().expect("test setup")).expect("test setup");
        let names: Vec<_> = cases.iter().map(|c| (c.name.as_str(), c.outcome)).collect();
        assert_eq!(
            names,
            [("cargo fmt --check", Outcome::Passed), ("cargo clippy", Outcome::Failed)]
        );
        assert_eq!(cases[1].message.as_deref(), Some("error[E0308]: mismatched types"));
        let err =
            append(&file, "unit", "x", Outcome::Passed, Duration::ZERO, None).expect_err("fails");
        assert!(err.to_string().contains("one file per stage"), "{err}");
    }
}
