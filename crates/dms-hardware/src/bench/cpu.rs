//! CPU steps: the SHA-256 compression function over a fixed 4 KiB block, again and again,
//! into a running state, so every pass depends on the previous one and none can be skipped.
//! Work is bytes compressed; the score is MiB/s (the work unit is one MiB hashed). The work runs in `sha2`'s non-generic
//! `compress256`, compiled with `sha2`'s own optimization, so scores match between debug
//! and release builds; it uses the SHA extensions where the CPU has them, which is part of
//! what the score measures.

use std::hint::black_box;
use std::thread;
use std::time::Instant;

use sha2::block_api::compress256;

use super::{Measured, Ticker};

/// 64-byte SHA-256 blocks per pass (4 KiB).
const BLOCKS: usize = 64;
/// Passes between clock checks.
const BATCH: u64 = 16;
/// Bytes compressed per batch.
const BATCH_BYTES: u64 = BATCH * BLOCKS as u64 * 64;

/// The block, the same on every machine.
fn seed_block() -> [[u8; 64]; BLOCKS] {
    let mut block = [[0u8; 64]; BLOCKS];
    for (i, byte) in block.iter_mut().flatten().enumerate() {
        *byte = (i.wrapping_mul(31) % 251) as u8;
    }
    block
}

/// The SHA-256 initial state, varied by `lane` so threads do not compute the same thing.
fn seed_state(lane: usize) -> [u32; 8] {
    let mut state = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    state[0] ^= lane as u32;
    state
}

/// Runs one batch of passes.
fn batch(state: &mut [u32; 8], block: &[[u8; 64]; BLOCKS]) {
    for _ in 0..BATCH {
        compress256(state, black_box(block));
    }
}

/// Compresses on this thread until the step's time is up.
pub(super) fn single(ticker: &mut Ticker<'_>) -> Measured {
    let block = seed_block();
    let mut state = seed_state(0);
    let start = Instant::now();
    let mut work = 0;
    loop {
        batch(&mut state, &block);
        work += BATCH_BYTES;
        if ticker.finished() {
            break;
        }
    }
    black_box(&state);
    Measured { work, elapsed: start.elapsed() }
}

/// Compresses on `threads` threads until the step's time is up, added together.
pub(super) fn multi(threads: usize, ticker: &mut Ticker<'_>) -> Measured {
    let block = seed_block();
    let deadline = ticker.deadline();
    let start = Instant::now();
    let work = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|lane| {
                let block = &block;
                scope.spawn(move || {
                    let mut state = seed_state(lane);
                    let mut work = 0;
                    loop {
                        batch(&mut state, block);
                        work += BATCH_BYTES;
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                    black_box(&state);
                    work
                })
            })
            .collect();
        ticker.wait();
        workers
            .into_iter()
            .map(|w| w.join().expect("a CPU benchmark worker has no panicking path"))
            .sum()
    });
    Measured { work, elapsed: start.elapsed() }
}
