//! The seed-feature registry (`docs/features.toml`) and the Gherkin scenarios, with the
//! tags that tie a scenario to a feature.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

/// The registry file.
#[derive(Debug, Deserialize)]
pub struct Registry {
    /// The seed features, in the order the pages list them.
    #[serde(rename = "feature")]
    pub features: Vec<Feature>,
}

/// One seed feature.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// The tag suffix: scenarios tagged `@feature-<id>` belong to it.
    pub id: String,
    /// What the pages call it.
    pub title: String,
    /// NuNet's label for it, when it has one.
    #[serde(default)]
    pub seed: Option<String>,
    /// The seed's definition of done, in short.
    pub done: String,
    /// Pages of the docs site about it (Markdown paths relative to the site's root).
    #[serde(default)]
    pub docs: Vec<String>,
    /// The crates that implement it.
    #[serde(default)]
    pub crates: Vec<String>,
    /// JUnit cases that are evidence for it besides scenarios.
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// A JUnit case selector: the cases of stage file `suite` whose name starts with `case`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// The stage (the JUnit file's name without `.xml`).
    pub suite: String,
    /// A prefix of the case name; empty selects every case of the stage.
    pub case: String,
}

impl Registry {
    /// Reads and checks the registry: ids unique and usable as tags.
    pub fn load(path: &Path) -> Result<Registry> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the feature registry {}", path.display()))?;
        let registry: Registry =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let mut seen = std::collections::HashSet::new();
        for f in &registry.features {
            if f.id.is_empty()
                || !f.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                bail!(
                    "{}: feature id {:?} must be lowercase letters, digits and '-'",
                    path.display(),
                    f.id
                );
            }
            if !seen.insert(f.id.as_str()) {
                bail!("{}: feature id {:?} appears twice", path.display(), f.id);
            }
        }
        Ok(registry)
    }
}

/// One scenario of a feature file, with its own and its Feature's tags.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The feature file's name, e.g. `store.feature`.
    pub file: String,
    /// The line of its `Scenario:` keyword.
    pub line: usize,
    /// Its name.
    pub name: String,
    /// The name of the Feature it is in.
    pub feature_name: String,
    /// Its tags and its Feature's and Rule's, without the `@`.
    pub tags: Vec<String>,
}

impl Scenario {
    /// The seed features it belongs to (its `feature-*` tags, without the prefix).
    pub fn feature_ids(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().filter_map(|t| t.strip_prefix("feature-"))
    }
}

/// The files of `dir` with extension `ext`, sorted by name.
pub fn files_ending(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    Ok(files)
}

/// Every scenario of every `*.feature` file in `dir`, sorted by file and line.
pub fn scenarios(dir: &Path) -> Result<Vec<Scenario>> {
    let files = files_ending(dir, "feature")?;
    let mut out = Vec::new();
    for path in files {
        let feature = gherkin::Feature::parse_path(&path, gherkin::GherkinEnv::default())
            .with_context(|| format!("parsing {}", path.display()))?;
        let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let top = feature.scenarios.iter().map(|s| (s, Vec::new()));
        let ruled =
            feature.rules.iter().flat_map(|r| r.scenarios.iter().map(|s| (s, r.tags.clone())));
        for (s, rule_tags) in top.chain(ruled) {
            let tags = feature.tags.iter().chain(&rule_tags).chain(&s.tags).cloned().collect();
            out.push(Scenario {
                file: file.clone(),
                line: s.position.line,
                name: s.name.clone(),
                feature_name: feature.name.clone(),
                tags,
            });
        }
    }
    out.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(out)
}

/// The feature file and line a cucumber JUnit case names
/// (`Scenario: <name>: <path>/<file>.feature:<line>:<col>`), if it names one.
pub fn location(case_name: &str) -> Option<(&str, usize)> {
    let (rest, _col) = case_name.rsplit_once(':')?;
    let (path, line) = rest.rsplit_once(':')?;
    let line = line.parse().ok()?;
    let path = path.rsplit(": ").next()?;
    let file = path.rsplit('/').next()?;
    file.ends_with(".feature").then_some((file, line))
}

/// The scenario a case at `file:line` ran: the last one that starts at or before the
/// line (an outline's examples run under lines of their own, below the outline).
pub fn scenario_at<'a>(scenarios: &'a [Scenario], file: &str, line: usize) -> Option<&'a Scenario> {
    scenarios.iter().filter(|s| s.file == file && s.line <= line).max_by_key(|s| s.line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_reads_the_file_and_line_of_a_cucumber_case() {
        let name = "Scenario: Records survive a reopen: /w/tests/features/store.feature:26:3";
        assert_eq!(location(name), Some(("store.feature", 26)));
        assert_eq!(
            location("Scenario: a: b: tests/features/x.feature:7:5"),
            Some(("x.feature", 7))
        );
        assert_eq!(location("dms-store::tests::reopen"), None);
    }

    #[test]
    fn scenarios_carry_feature_rule_and_own_tags_and_outlines_map_to_their_rows() {
        let dir = tempfile::tempdir().expect("test setup");
        std::fs::write(
            dir.path().join("a.feature"),
            "@feature-local-db\nFeature: A\n\n  @slow\n  Scenario: one\n    Given x\n\n  \
             Scenario Outline: two\n    Given <v>\n\n    Examples:\n      | v |\n      | 1 |\n",
        )
        .expect("test setup");
        let all = scenarios(dir.path()).expect("test setup");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].tags, ["feature-local-db", "slow"]);
        assert_eq!(all[0].feature_ids().collect::<Vec<_>>(), ["local-db"]);
        assert_eq!(scenario_at(&all, "a.feature", 13).map(|s| s.name.as_str()), Some("two"));
        assert_eq!(scenario_at(&all, "a.feature", 5).map(|s| s.name.as_str()), Some("one"));
        assert!(scenario_at(&all, "a.feature", 1).is_none());
    }

    #[test]
    fn the_registry_refuses_a_duplicate_or_untaggable_id() {
        let dir = tempfile::tempdir().expect("test setup");
        let path = dir.path().join("f.toml");
        let entry = |id: &str| format!("[[feature]]\nid = \"{id}\"\ntitle = \"t\"\ndone = \"d\"\n");
        std::fs::write(&path, entry("a") + &entry("a")).expect("test setup");
        assert!(Registry::load(&path).expect_err("fails").to_string().contains("twice"));
        std::fs::write(&path, entry("Bad Id")).expect("test setup");
        assert!(Registry::load(&path).expect_err("fails").to_string().contains("lowercase"));
    }
}
