//! Disk steps on one test file: sequential write, sequential read, random 4 KiB reads.
//!
//! Reads must reach the disk, not the page cache: after writing, the file is synced and its
//! pages dropped with `posix_fadvise(DONTNEED)` (Linux; elsewhere reads may be served from
//! cache and score high). Random reads visit every block once per pass, in a scrambled
//! order, and drop the cache again between passes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::warn;

use super::{Measured, Ticker};
use crate::Error;

/// Sequential I/O size.
const CHUNK: usize = 1 << 20;
/// Random read size.
const BLOCK: u64 = 4096;
/// Written bytes between `fdatasync`s, bounding how long the final sync can take.
const SYNC_EVERY: u64 = 16 << 20;
/// The smallest test file worth measuring.
const MIN_FILE: u64 = 8 << 20;

/// The benchmark's test file; removed when dropped, so on errors and panics too.
pub(super) struct TestFile {
    path: PathBuf,
    file: File,
    /// Most bytes to write.
    max_bytes: u64,
    /// Bytes written so far.
    len: u64,
}

impl TestFile {
    /// Checks `dir` and creates the test file in it, sized to at most `max_bytes` and half
    /// the free space.
    pub(super) fn create(dir: &Path, max_bytes: u64) -> Result<Self, Error> {
        if !dir.is_dir() {
            return Err(Error::DirNotFound { dir: dir.to_owned() });
        }
        let name = format!(".dms-bench-{}-{}.tmp", std::process::id(), unique());
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| Error::DirNotWritable { dir: dir.to_owned(), source })?;
        let mut test = Self { path, file, max_bytes, len: 0 };
        if let Some(available) = free_bytes(dir) {
            test.max_bytes = test.max_bytes.min(available / 2);
        }
        test.max_bytes -= test.max_bytes % CHUNK as u64;
        if test.max_bytes < MIN_FILE {
            let available = free_bytes(dir).unwrap_or(0);
            return Err(Error::NoSpace { dir: dir.to_owned(), available, needed: 2 * MIN_FILE });
        }
        Ok(test)
    }

    fn io_error(&self, source: io::Error) -> Error {
        Error::DiskIo { path: self.path.clone(), source }
    }

    /// Writes 1 MiB chunks of incompressible data until the time is up or the file is full,
    /// syncing every 16 MiB and at the end; the sync time counts.
    pub(super) fn write(&mut self, ticker: &mut Ticker<'_>) -> Result<Measured, Error> {
        let mut chunk = noise(CHUNK);
        let start = Instant::now();
        self.write_chunks(&mut chunk, ticker).map_err(|e| self.io_error(e))?;
        Ok(Measured { work: self.len, elapsed: start.elapsed() })
    }

    fn write_chunks(&mut self, chunk: &mut [u8], ticker: &mut Ticker<'_>) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        loop {
            // Each chunk differs, so deduplicating filesystems store them all.
            chunk[..8].copy_from_slice(&self.len.to_le_bytes());
            self.file.write_all(chunk)?;
            self.len += chunk.len() as u64;
            if self.len.is_multiple_of(SYNC_EVERY) {
                self.file.sync_data()?;
            }
            if self.len >= self.max_bytes || ticker.finished() {
                break;
            }
        }
        self.file.sync_all()
    }

    /// Reads the file from the start in 1 MiB chunks until the end or the time is up.
    pub(super) fn read(&mut self, ticker: &mut Ticker<'_>) -> Result<Measured, Error> {
        let mut chunk = vec![0u8; CHUNK];
        let start = Instant::now();
        let read = self.read_chunks(&mut chunk, ticker).map_err(|e| self.io_error(e))?;
        Ok(Measured { work: read, elapsed: start.elapsed() })
    }

    fn read_chunks(&mut self, chunk: &mut [u8], ticker: &mut Ticker<'_>) -> io::Result<u64> {
        cache::evict(&self.file)?;
        cache::sequential(&self.file)?;
        self.file.seek(SeekFrom::Start(0))?;
        let mut read = 0;
        while read < self.len {
            self.file.read_exact(chunk)?;
            read += chunk.len() as u64;
            if ticker.finished() {
                break;
            }
        }
        Ok(read)
    }

    /// Reads 4 KiB blocks in a scrambled order until the time is up; work is reads.
    pub(super) fn random_read(&mut self, ticker: &mut Ticker<'_>) -> Result<Measured, Error> {
        let start = Instant::now();
        let reads = self.read_blocks(ticker).map_err(|e| self.io_error(e))?;
        Ok(Measured { work: reads, elapsed: start.elapsed() })
    }

    fn read_blocks(&mut self, ticker: &mut Ticker<'_>) -> io::Result<u64> {
        let blocks = (self.len / BLOCK).max(1);
        let mut order = Scramble::new(blocks);
        let mut block = [0u8; BLOCK as usize];
        cache::evict(&self.file)?;
        cache::random(&self.file)?;
        let mut reads = 0;
        loop {
            let index = match order.next() {
                Some(index) => index,
                None => {
                    // Every block read once: forget them and start another pass.
                    cache::evict(&self.file)?;
                    order = Scramble::new(blocks);
                    continue;
                }
            };
            read_at(&mut self.file, &mut block, index * BLOCK)?;
            reads += 1;
            if ticker.finished() {
                break;
            }
        }
        Ok(reads)
    }
}

impl Drop for TestFile {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_file(&self.path) {
            warn!(path = %self.path.display(), %error, "Could not remove the benchmark test file.");
        }
    }
}

/// Visits `0..n` once each in a scrambled order: a full-period linear congruential sequence
/// modulo the next power of two, skipping values of `n` and above.
struct Scramble {
    n: u64,
    mask: u64,
    state: u64,
    left: u64,
}

impl Scramble {
    fn new(n: u64) -> Self {
        Self { n, mask: n.next_power_of_two() - 1, state: 0, left: n }
    }
}

impl Iterator for Scramble {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.left == 0 {
            return None;
        }
        loop {
            // Multiplier ≡ 1 (mod 4) and odd increment: full period for a power-of-two modulus.
            self.state = self
                .state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407)
                & self.mask;
            if self.state < self.n {
                self.left -= 1;
                return Some(self.state);
            }
        }
    }
}

/// Pseudo-random bytes (xorshift), so compressing filesystems store them as they are.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A number that differs between test files created by one process.
fn unique() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Bytes this user may still write on the filesystem holding `dir`, where the OS says.
fn free_bytes(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let stat = rustix::fs::statvfs(dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

#[cfg(unix)]
fn read_at(file: &mut File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(file: &mut File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// Page-cache advice; no-ops where `posix_fadvise` is not available.
mod cache {
    use std::fs::File;
    use std::io;

    #[cfg(target_os = "linux")]
    fn advise(file: &File, advice: rustix::fs::Advice) -> io::Result<()> {
        rustix::fs::fadvise(file, 0, None, advice).map_err(io::Error::from)
    }

    /// Drops the file's clean pages from the page cache.
    pub(super) fn evict(file: &File) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        return advise(file, rustix::fs::Advice::DontNeed);
        #[cfg(not(target_os = "linux"))]
        {
            let _ = file;
            Ok(())
        }
    }

    /// Announces sequential reading (more read-ahead).
    pub(super) fn sequential(file: &File) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        return advise(file, rustix::fs::Advice::Sequential);
        #[cfg(not(target_os = "linux"))]
        {
            let _ = file;
            Ok(())
        }
    }

    /// Announces random reading (no read-ahead).
    pub(super) fn random(file: &File) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        return advise(file, rustix::fs::Advice::Random);
        #[cfg(not(target_os = "linux"))]
        {
            let _ = file;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scramble_visits_every_block_once() {
        for n in [1, 2, 3, 7, 8, 1000, 4096] {
            let mut seen: Vec<u64> = Scramble::new(n).collect();
            assert_eq!(seen.len() as u64, n);
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len() as u64, n, "n = {n}");
            assert!(seen.iter().all(|i| *i < n));
        }
    }

    #[test]
    fn noise_has_the_asked_length_and_is_not_constant() {
        let bytes = noise(CHUNK);
        assert_eq!(bytes.len(), CHUNK);
        assert!(bytes.windows(2).any(|w| w[0] != w[1]));
    }
}
