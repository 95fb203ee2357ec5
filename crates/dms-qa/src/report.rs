//! Joining the JUnit cases with the scenarios and the registry: per seed feature, its
//! scenarios with their results, its checks, and a status derived from them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::features::{self, Feature, Registry, Scenario};
use crate::junit::{Case, Outcome};

/// A feature's status, derived from its results, never set by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every scenario and check ran and passed.
    Passing,
    /// Something of it failed.
    Failing,
    /// Nothing failed, but some scenario or check did not run in this build.
    Incomplete,
    /// It has no scenario and no check.
    Uncovered,
}

impl Status {
    /// The word the pages show (also the CSS class).
    pub fn word(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Failing => "failing",
            Status::Incomplete => "incomplete",
            Status::Uncovered => "uncovered",
        }
    }
}

/// A scenario and every run of it in this build (none when it did not run).
pub struct ScenarioRuns<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Its cases, in stage order.
    pub runs: Vec<&'a Case>,
}

impl ScenarioRuns<'_> {
    /// The worst outcome of its runs; `None` when it did not run.
    pub fn outcome(&self) -> Option<Outcome> {
        self.runs.iter().map(|c| c.outcome).min()
    }
}

/// One seed feature with its evidence.
pub struct FeatureReport<'a> {
    /// The registry entry.
    pub feature: &'a Feature,
    /// The scenarios tagged with it.
    pub scenarios: Vec<ScenarioRuns<'a>>,
    /// The JUnit cases its `checks` select.
    pub checks: Vec<&'a Case>,
    /// Whether some selector of its `checks` matched no case in this build.
    pub check_missing: bool,
}

impl FeatureReport<'_> {
    /// Its status: failing beats incomplete beats passing; nothing at all is uncovered.
    pub fn status(&self) -> Status {
        if self.scenarios.is_empty() && self.checks.is_empty() {
            // Named checks that did not run in this build leave it incomplete, not uncovered.
            return if self.feature.checks.is_empty() {
                Status::Uncovered
            } else {
                Status::Incomplete
            };
        }
        let outcomes = self
            .scenarios
            .iter()
            .map(|s| s.outcome())
            .chain(self.checks.iter().map(|c| Some(c.outcome)));
        let mut status = Status::Passing;
        for outcome in outcomes {
            match outcome {
                Some(Outcome::Failed) => return Status::Failing,
                None | Some(Outcome::Skipped) => status = Status::Incomplete,
                Some(Outcome::Passed) => {}
            }
        }
        if self.check_missing {
            // A check it names never ran in this build.
            status = Status::Incomplete;
        }
        status
    }

    /// Passed scenarios and checks, and all of them.
    pub fn tally(&self) -> (usize, usize) {
        let passed = self.scenarios.iter().filter(|s| s.outcome() == Some(Outcome::Passed)).count()
            + self.checks.iter().filter(|c| c.outcome == Outcome::Passed).count();
        (passed, self.scenarios.len() + self.checks.len())
    }
}

/// The counts of one stage (one JUnit file).
#[derive(Default)]
pub struct StageTally {
    /// Passed cases.
    pub passed: usize,
    /// Failed cases.
    pub failed: usize,
    /// Skipped cases.
    pub skipped: usize,
    /// The sum of the cases' times.
    pub time: Duration,
}

/// The whole build's report.
pub struct Report<'a> {
    /// The build it describes (a commit, a date), as given.
    pub build: String,
    /// Every seed feature, in registry order.
    pub features: Vec<FeatureReport<'a>>,
    /// Scenarios with no `@feature-*` tag, or with one the registry does not know.
    pub untagged: Vec<(&'a Scenario, Option<String>)>,
    /// Per stage, its counts.
    pub stages: BTreeMap<String, StageTally>,
    /// Failed cases that are neither a scenario's nor a feature's check.
    pub other_failures: Vec<&'a Case>,
}

impl<'a> Report<'a> {
    /// Joins cases to scenarios by feature file and line, and scenarios and checks to
    /// the registry's features.
    pub fn build(
        build: String,
        registry: &'a Registry,
        scenarios: &'a [Scenario],
        cases: &'a [Case],
    ) -> Report<'a> {
        let mut runs: BTreeMap<(&str, usize), Vec<&Case>> = BTreeMap::new();
        let mut stages: BTreeMap<String, StageTally> = BTreeMap::new();
        let mut claimed = vec![false; cases.len()];
        for (i, case) in cases.iter().enumerate() {
            let tally = stages.entry(case.stage.clone()).or_default();
            match case.outcome {
                Outcome::Passed => tally.passed += 1,
                Outcome::Failed => tally.failed += 1,
                Outcome::Skipped => tally.skipped += 1,
            }
            tally.time += case.time;
            let Some((file, line)) = features::location(&case.name) else { continue };
            if let Some(s) = features::scenario_at(scenarios, file, line) {
                runs.entry((s.file.as_str(), s.line)).or_default().push(case);
                claimed[i] = true;
            }
        }
        let features = registry
            .features
            .iter()
            .map(|feature| {
                let scenarios = scenarios
                    .iter()
                    .filter(|s| s.feature_ids().any(|id| id == feature.id))
                    .map(|s| ScenarioRuns {
                        scenario: s,
                        runs: runs.get(&(s.file.as_str(), s.line)).cloned().unwrap_or_default(),
                    })
                    .collect();
                let mut checks = Vec::new();
                let mut matched = vec![false; feature.checks.len()];
                for (i, case) in cases.iter().enumerate() {
                    let mut selected = false;
                    for (m, c) in matched.iter_mut().zip(&feature.checks) {
                        if c.suite == case.stage && case.name.starts_with(&c.case) {
                            *m = true;
                            selected = true;
                        }
                    }
                    if selected {
                        checks.push(case);
                        claimed[i] = true;
                    }
                }
                // A selector that matched nothing is a check that did not run.
                let check_missing = matched.contains(&false);
                FeatureReport { feature, scenarios, checks, check_missing }
            })
            .collect();
        let known = |id: &str| registry.features.iter().any(|f| f.id == id);
        let untagged = scenarios
            .iter()
            .filter_map(|s| {
                let ids: Vec<&str> = s.feature_ids().collect();
                match ids.iter().find(|id| !known(id)) {
                    Some(bad) => Some((s, Some(format!("feature-{bad}")))),
                    None if ids.is_empty() => Some((s, None)),
                    None => None,
                }
            })
            .collect();
        let other_failures = cases
            .iter()
            .zip(&claimed)
            .filter(|(c, claimed)| !**claimed && c.outcome == Outcome::Failed)
            .map(|(c, _)| c)
            .collect();
        Report { build, features, untagged, stages, other_failures }
    }

    /// Whether anything failed in this build.
    pub fn any_failed(&self) -> bool {
        self.stages.values().any(|s| s.failed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Check;

    fn feature(id: &str, checks: Vec<Check>) -> Feature {
        Feature {
            id: id.into(),
            title: id.into(),
            seed: None,
            done: String::new(),
            docs: vec![],
            crates: vec![],
            checks,
        }
    }

    fn scenario(file: &str, line: usize, tags: &[&str]) -> Scenario {
        Scenario {
            file: file.into(),
            line,
            name: format!("s{line}"),
            feature_name: "F".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn case(stage: &str, name: &str, outcome: Outcome) -> Case {
        Case {
            stage: stage.into(),
            suite: "S".into(),
            name: name.into(),
            outcome,
            time: Duration::from_secs(1),
            message: None,
        }
    }

    #[test]
    fn statuses_follow_from_results() {
        let registry = Registry {
            features: vec![
                feature("db", vec![]),
                feature("net", vec![]),
                feature("ci", vec![Check { suite: "static".into(), case: String::new() }]),
                feature(
                    "half",
                    vec![
                        Check { suite: "static".into(), case: "cargo fmt".into() },
                        Check { suite: "coverage".into(), case: String::new() },
                    ],
                ),
                feature("docs", vec![]),
                feature("vm", vec![]),
                feature("qa", vec![Check { suite: "report".into(), case: "qa page".into() }]),
            ],
        };
        let scenarios = vec![
            scenario("db.feature", 5, &["feature-db"]),
            scenario("net.feature", 5, &["feature-net", "integration"]),
            scenario("net.feature", 9, &["feature-net"]),
            scenario("vm.feature", 3, &["feature-vm"]),
            scenario("odd.feature", 3, &["feature-nope"]),
            scenario("odd.feature", 8, &[]),
        ];
        let cases = vec![
            case("functional", "Scenario: s5: tests/features/db.feature:5:3", Outcome::Passed),
            case("integration", "Scenario: s5: tests/features/net.feature:5:3", Outcome::Failed),
            case("integration", "Scenario: s9: tests/features/net.feature:9:3", Outcome::Passed),
            case("static", "cargo fmt --check", Outcome::Passed),
            case("unit", "dms-store::reopen", Outcome::Failed),
        ];
        let report = Report::build("b".into(), &registry, &scenarios, &cases);
        let status: Vec<_> = report.features.iter().map(|f| f.status()).collect();
        assert_eq!(
            status,
            [
                Status::Passing,
                Status::Failing,
                Status::Passing,
                Status::Incomplete,
                Status::Uncovered,
                Status::Incomplete,
                Status::Incomplete
            ]
        );
        assert_eq!(report.features[1].tally(), (1, 2));
        assert_eq!(report.untagged.len(), 2);
        assert_eq!(report.untagged[0].1.as_deref(), Some("feature-nope"));
        let others: Vec<_> = report.other_failures.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(others, ["dms-store::reopen"]);
        assert_eq!(report.stages["integration"].failed, 1);
        assert!(report.any_failed());
    }
}
