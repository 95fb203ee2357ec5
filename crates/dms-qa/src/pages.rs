//! The two generated pages: the QA report (every feature, its scenarios and their
//! results, every failure) and the project status page (per seed feature, its status
//! and where it is documented).

use std::time::Duration;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::junit::{Case, Outcome};
use crate::report::{FeatureReport, Report, ScenarioRuns};

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}\
table{border-collapse:collapse;width:100%;margin:.6em 0 1.4em}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.badge{display:inline-block;padding:0 .5em;border-radius:.6em;font-size:.85em;font-weight:600}\
.passing,.passed{background:#d6f5d6;color:#135c13}.failing,.failed{background:#fbd5d5;color:#8a1010}\
.incomplete,.skipped,.not-run{background:#fff1c2;color:#6b5200}.uncovered{background:#e6e6e6;color:#444}\
pre{white-space:pre-wrap;background:#f7f7f7;padding:.5em;font-size:.85em;max-height:30em;overflow:auto}\
code{font-size:.9em}.muted{color:#666}";

fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

fn badge(word: &str) -> Markup {
    html! { span class={ "badge " (word) } { (word) } }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The QA report page.
pub fn qa(report: &Report<'_>) -> String {
    let body = html! {
        h1 { "dms QA report" }
        p.muted { "Build " code { (report.build) } ". Generated from the CI stages' JUnit files by "
            code { "dms-qa report" } "; the " a href="../status/index.html" { "status page" } " is derived from the same results." }
        h2 { "Stages" }
        table {
            tr { th { "Stage" } th { "Passed" } th { "Failed" } th { "Skipped" } th { "Time" } }
            @for (stage, t) in &report.stages {
                tr { td { (stage) } td { (t.passed) } td { (t.failed) } td { (t.skipped) } td { (secs(t.time)) } }
            }
        }
        h2 { "Features" }
        table {
            tr { th { "Feature" } th { "Status" } th { "Passed / all" } }
            @for f in &report.features {
                @let (passed, all) = f.tally();
                tr { td { a href={ "#" (f.feature.id) } { (f.feature.title) } } td { (badge(f.status().word())) } td { (passed) " / " (all) } }
            }
        }
        @for f in &report.features { (feature_section(f)) }
        @if !report.untagged.is_empty() {
            h2 { "Scenarios without a known feature tag" }
            ul { @for (s, bad) in &report.untagged {
                li { code { (s.file) ":" (s.line) } " " (s.name)
                    @if let Some(bad) = bad { " — unknown tag " code { "@" (bad) } } @else { " — no " code { "@feature-*" } " tag" } }
            } }
        }
        h2 { "Other failures" }
        @if report.other_failures.is_empty() { p { "None: every failed case is listed under its feature above." } }
        @for c in &report.other_failures { (failure(c)) }
    };
    page("dms QA report", body)
}

fn feature_section(f: &FeatureReport<'_>) -> Markup {
    html! {
        h3 id=(f.feature.id) { (f.feature.title) " " (badge(f.status().word())) }
        p.muted { code { "@feature-" (f.feature.id) } @if let Some(seed) = &f.feature.seed { " · " (seed) } " · " (f.feature.done) }
        @if f.scenarios.is_empty() && f.checks.is_empty() {
            p { strong { "Uncovered:" } " no scenario is tagged " code { "@feature-" (f.feature.id) } " and no check names it." }
        }
        @if !f.scenarios.is_empty() {
            table {
                tr { th { "Scenario" } th { "Where" } th { "Stage" } th { "Result" } th { "Time" } }
                @for s in &f.scenarios { (scenario_rows(s)) }
            }
        }
        @if !f.checks.is_empty() {
            table {
                tr { th { "Check" } th { "Stage" } th { "Result" } th { "Time" } }
                @for c in &f.checks {
                    tr { td { (c.name) @if let Some(m) = &c.message { pre { (m) } } } td { (c.stage) } td { (badge(c.outcome.word())) } td { (secs(c.time)) } }
                }
            }
        }
    }
}

fn scenario_rows(s: &ScenarioRuns<'_>) -> Markup {
    let place = format!("{}:{}", s.scenario.file, s.scenario.line);
    html! {
        @if s.runs.is_empty() {
            tr { td title=(s.scenario.feature_name) { (s.scenario.name) } td { code { (place) } } td { "—" } td { (badge("not-run")) } td { "—" } }
        }
        @for c in &s.runs {
            tr {
                td title=(s.scenario.feature_name) { (s.scenario.name) @if let Some(m) = &c.message { pre { (m) } } }
                td { code { (place) } } td { (c.stage) } td { (badge(c.outcome.word())) } td { (secs(c.time)) }
            }
        }
    }
}

fn failure(c: &Case) -> Markup {
    debug_assert_eq!(c.outcome, Outcome::Failed);
    html! {
        details open { summary { code { (c.stage) } " · " (c.suite) " · " strong { (c.name) } }
            pre { (c.message.as_deref().unwrap_or("(no message)")) } }
    }
}

/// The project status page; `docs` is the docs site's root relative to the page.
pub fn status(report: &Report<'_>, docs: &str) -> String {
    let html_of = |md: &str| {
        format!(
            "{docs}/{}",
            md.strip_suffix(".md").map(|p| format!("{p}.html")).unwrap_or_else(|| md.to_owned())
        )
    };
    let body = html! {
        h1 { "DMS 0.5 milestone: status" }
        p { "One row per seed feature of the milestone. Nothing here is written by hand: a feature's status is derived from "
            "its scenarios (Gherkin, tagged " code { "@feature-<id>" } ") and checks in this build's test results, "
            "and its list comes from " code { "docs/features.toml" } ". Build " code { (report.build) } "." }
        p { "Statuses: " (badge("passing")) " everything ran and passed · " (badge("failing")) " something failed · "
            (badge("incomplete")) " something did not run in this build · " (badge("uncovered")) " no scenario or check yet. "
            "Details: the " a href="../qa/index.html" { "QA report" } "; the " a href={ (docs) "/index.html" } { "documentation" } "." }
        table {
            tr { th { "Feature" } th { "Definition of done" } th { "Status" } th { "Passed / all" } th { "Docs" } th { "Crates" } }
            @for f in &report.features {
                @let (passed, all) = f.tally();
                tr {
                    td { a href={ "../qa/index.html#" (f.feature.id) } { (f.feature.title) } @if let Some(seed) = &f.feature.seed { br; code.muted { (seed) } } }
                    td { (f.feature.done) }
                    td { (badge(f.status().word())) }
                    td { (passed) " / " (all) }
                    td { @for d in &f.feature.docs { a href=(html_of(d)) { (d) } br; } }
                    td { @for c in &f.feature.crates { a href=(html_of(&format!("crates/{c}.md"))) { (c) } br; } }
                }
            }
        }
    };
    page("DMS 0.5 milestone: status", body)
}
