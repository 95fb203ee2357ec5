//! Memory step: copy bandwidth between two buffers far larger than CPU caches, with the
//! buffers split across threads so the score is the machine's, not one core's.

use std::hint::black_box;
use std::thread;
use std::time::Instant;

use super::{Measured, Ticker};

/// Size of each of the two buffers.
const BUFFER: usize = 128 << 20;

/// Copies source to destination on `threads` threads until the step's time is up. Work is
/// bytes copied (each byte counted once, not once read and once written).
pub(super) fn copy(threads: usize, ticker: &mut Ticker<'_>) -> Measured {
    let src = vec![0x5au8; BUFFER];
    let mut dst = vec![0u8; BUFFER];
    // Untimed warm-up: maps the destination's pages.
    dst.copy_from_slice(&src);
    let slice = BUFFER.div_ceil(threads.max(1));
    let deadline = ticker.deadline();
    let start = Instant::now();
    let work = thread::scope(|scope| {
        let workers: Vec<_> = dst
            .chunks_mut(slice)
            .zip(src.chunks(slice))
            .map(|(to, from)| {
                scope.spawn(move || {
                    let mut bytes = 0u64;
                    loop {
                        to.copy_from_slice(black_box(from));
                        black_box(&mut *to);
                        bytes += to.len() as u64;
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                    bytes
                })
            })
            .collect();
        ticker.wait();
        workers
            .into_iter()
            .map(|w| w.join().expect("a memory benchmark worker has no panicking path"))
            .sum()
    });
    Measured { work, elapsed: start.elapsed() }
}
