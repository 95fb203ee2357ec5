//! Errors of this crate. Only benchmarks fail; detection and usage report what they could
//! not learn as notes or `None` fields instead.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why [`run_benchmarks`](crate::run_benchmarks) failed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `Options::total_budget` is below the minimum. Nothing was run.
    #[error("benchmark budget {budget:?} is too short: give at least {minimum:?}")]
    BudgetTooShort {
        /// The budget asked for.
        budget: Duration,
        /// The smallest budget accepted.
        minimum: Duration,
    },
    /// The benchmark directory does not exist or is not a directory. Nothing was run.
    #[error(
        "benchmark directory {} does not exist or is not a directory: create it or pass another \
         directory",
        dir.display()
    )]
    DirNotFound {
        /// The directory from the options.
        dir: PathBuf,
    },
    /// No file could be created in the benchmark directory. Nothing was run.
    #[error(
        "benchmark directory {} is not writable: pass a directory this user can write to, or fix \
         its permissions",
        dir.display()
    )]
    DirNotWritable {
        /// The directory from the options.
        dir: PathBuf,
        /// Why creating the test file failed.
        #[source]
        source: io::Error,
    },
    /// Too little free space for the disk test file. Nothing was run; the probe file is gone.
    #[error(
        "only {available} bytes free in {}, the disk benchmark needs {needed}: free some space, \
         pass another directory or turn the disk steps off",
        dir.display()
    )]
    NoSpace {
        /// The directory from the options.
        dir: PathBuf,
        /// Bytes available to this user.
        available: u64,
        /// Bytes needed.
        needed: u64,
    },
    /// Disk I/O failed during the disk steps. Results of earlier steps are lost; the test file
    /// was removed (a failure to remove it is logged).
    #[error(
        "disk benchmark I/O failed on {}: check the disk and its free space, or turn the disk \
         steps off (Options::disk = false)",
        path.display()
    )]
    DiskIo {
        /// The test file.
        path: PathBuf,
        /// The failed operation's error.
        #[source]
        source: io::Error,
    },
}
