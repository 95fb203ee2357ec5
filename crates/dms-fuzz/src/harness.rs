//! Running a target: replay the corpus, then random inputs for the budget; save the
//! input of any panic as a crash file.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Target, mutate};

/// Environment variable: milliseconds of random inputs per target.
pub const BUDGET_VAR: &str = "DMS_FUZZ_BUDGET_MS";
/// Budget per target when [`BUDGET_VAR`] is not set.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(2000);
/// Most random bytes one input is made from (inputs from the corpus can be larger).
const MAX_ENTROPY: u32 = 4096;

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Corpus files replayed.
    pub corpus: usize,
    /// Corpus files the decoder accepted.
    pub corpus_accepted: usize,
    /// Random inputs tried.
    pub random: usize,
    /// Random inputs the decoder accepted.
    pub random_accepted: usize,
}

/// The budget of the random phase: [`BUDGET_VAR`] milliseconds, or [`DEFAULT_BUDGET`].
pub fn budget() -> Duration {
    std::env::var(BUDGET_VAR)
        .ok()
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(DEFAULT_BUDGET, Duration::from_millis)
}

/// Where crash files go: `DMS_FUZZ_CRASH_DIR`, or `target/tmp/dms-fuzz/` of the workspace.
pub fn crash_dir() -> PathBuf {
    std::env::var_os("DMS_FUZZ_CRASH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp/dms-fuzz"))
}

/// The corpus directory of `target`.
pub fn corpus_dir(target: &Target) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target.name)
}

/// Every file under `dir` (recursively: `regressions/` too), sorted by path.
pub fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Fuzzes `target`: replays its corpus (every file must pass, and at least one must be
/// accepted, so the corpus stays real), then random inputs for [`budget`]. Panics, after
/// saving the input and printing how to keep it, when the target panics.
pub fn fuzz(target: &Target) -> Stats {
    let dir = corpus_dir(target);
    let files = corpus_files(&dir);
    assert!(!files.is_empty(), "{}: the corpus {} is empty", target.name, dir.display());
    let mut stats = Stats { corpus: files.len(), ..Stats::default() };
    let mut seeds = Vec::with_capacity(files.len());
    for file in &files {
        let bytes = std::fs::read(file).expect("a corpus file is readable");
        stats.corpus_accepted += usize::from(run_one(target, &bytes, Some(file)));
        seeds.push(bytes);
    }
    assert!(
        stats.corpus_accepted > 0,
        "{}: no file of {} decodes; the corpus must hold valid examples",
        target.name,
        dir.display()
    );
    let started = Instant::now();
    arbtest::arbtest(|u| {
        let input = mutate::input(u, &seeds, target)?;
        stats.random += 1;
        stats.random_accepted += usize::from(run_one(target, &input, None));
        Ok(())
    })
    .budget(budget())
    .size_max(MAX_ENTROPY)
    .run();
    eprintln!(
        "fuzz {}: {} corpus files ({} accepted), {} random inputs ({} accepted) in {:.1?}",
        target.name,
        stats.corpus,
        stats.corpus_accepted,
        stats.random,
        stats.random_accepted,
        started.elapsed()
    );
    stats
}

/// Runs the target on one input; on a panic, saves the input (unless it came from the
/// corpus file `from`), says how to keep it, and panics again.
pub fn run_one(target: &Target, input: &[u8], from: Option<&Path>) -> bool {
    match catch_unwind(AssertUnwindSafe(|| (target.check)(input))) {
        Ok(accepted) => accepted,
        Err(panic) => {
            match from {
                Some(file) => eprintln!("\n{}: corpus file {} panics", target.name, file.display()),
                None => report_crash(target, input),
            }
            resume_unwind(panic)
        }
    }
}

fn report_crash(target: &Target, input: &[u8]) {
    let mut hasher = DefaultHasher::new();
    input.hash(&mut hasher);
    let dir = crash_dir().join(target.name);
    let file = dir.join(format!("crash-{:016x}", hasher.finish()));
    let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, input));
    match saved {
        Ok(()) => eprintln!(
            "\n{name}: this input panics ({len} bytes), saved as {file}.\n\
             Fix the decoder, then keep the input as a regression test:\n    \
             mkdir -p crates/dms-fuzz/corpus/{name}/regressions && \
             cp {file} crates/dms-fuzz/corpus/{name}/regressions/<what-it-was>\n\
             (the arbtest seed printed below replays it while the corpus is unchanged:\n    \
             ARBTEST_SEED=<seed> cargo test -p dms-fuzz --test fuzz -- --exact {name})",
            name = target.name,
            len = input.len(),
            file = file.display(),
        ),
        Err(error) => eprintln!(
            "\n{}: this input panics and could not be saved ({error}): {input:02x?}",
            target.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boom(bytes: &[u8]) -> bool {
        assert!(bytes != b"boom", "the decoder panicked");
        !bytes.is_empty()
    }

    #[test]
    fn a_panicking_input_is_saved_as_a_crash_file_and_the_panic_goes_on() {
        let target = Target { name: "self-test", check: boom, generate: None, dictionary: &[] };
        assert!(run_one(&target, b"fine", None));
        assert!(!run_one(&target, b"", None));
        let panicked = catch_unwind(|| run_one(&target, b"boom", None));
        assert!(panicked.is_err(), "the panic reaches the test");
        let mut hasher = DefaultHasher::new();
        b"boom".as_slice().hash(&mut hasher);
        let file = crash_dir().join("self-test").join(format!("crash-{:016x}", hasher.finish()));
        assert_eq!(std::fs::read(&file).expect("the crash file exists"), b"boom");
        std::fs::remove_file(file).expect("the crash file is removed");
    }

    #[test]
    fn corpus_files_include_regressions_and_skip_hidden_files() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join("regressions")).expect("mkdir");
        for name in ["b.yaml", "a.yaml", ".hidden", "regressions/crash-1"] {
            std::fs::write(dir.path().join(name), name).expect("write");
        }
        let names: Vec<String> = corpus_files(dir.path())
            .iter()
            .map(|p| p.strip_prefix(dir.path()).expect("under dir").display().to_string())
            .collect();
        assert_eq!(names, ["a.yaml", "b.yaml", "regressions/crash-1"]);
    }
}
