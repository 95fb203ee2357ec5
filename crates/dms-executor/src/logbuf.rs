//! In-memory output of in-process executions: a line splitter, and [`LogBuffer`], a bounded
//! ring of recent lines with live followers.
//!
//! Used by the WebAssembly and fake executors (Docker keeps logs in the engine). Writers are
//! synchronous (a WASI stdout write on the module's thread); readers get a [`LogStream`] fed
//! from a task. A follower too slow to keep up skips lines (counted in a warning) rather than
//! blocking the workload.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;
use tracing::warn;

use crate::execution::{LogLine, LogOptions, LogStream, OutputStream};

/// Lines kept per execution by default.
pub const DEFAULT_LOG_LINES: usize = 10_000;

/// Lines a live follower may fall behind before it skips.
const FOLLOW_BACKLOG: usize = 1024;

/// Splits chunks of output into lines, per stream, keeping partial lines until completed.
#[derive(Debug, Default)]
pub struct LineSplitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Longest partial line kept before it is emitted anyway.
const MAX_LINE: usize = 64 * 1024;

impl LineSplitter {
    /// Adds a chunk and returns the lines it completes.
    pub fn push(&mut self, stream: OutputStream, bytes: &[u8]) -> Vec<LogLine> {
        let buffer = match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        };
        buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
            let rest = buffer.split_off(pos + 1);
            let line = std::mem::replace(buffer, rest);
            out.push(line_of(stream, &line[..pos]));
        }
        if buffer.len() > MAX_LINE {
            out.push(line_of(stream, buffer));
            buffer.clear();
        }
        out
    }

    /// The partial lines left at the end of the output.
    pub fn finish(self) -> Vec<LogLine> {
        [(OutputStream::Stdout, self.stdout), (OutputStream::Stderr, self.stderr)]
            .into_iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(s, b)| line_of(s, &b))
            .collect()
    }
}

fn line_of(stream: OutputStream, bytes: &[u8]) -> LogLine {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    LogLine { stream, text: String::from_utf8_lossy(bytes).into_owned() }
}

/// Recent output of one execution, and its live followers.
#[derive(Debug)]
pub struct LogBuffer {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    lines: VecDeque<LogLine>,
    capacity: usize,
    splitter: LineSplitter,
    /// Until the output ends.
    open: bool,
    /// The followers' channel, made by the first follower (its backlog is sizeable,
    /// and most executions are never followed); dropped when the output ends.
    live: Option<broadcast::Sender<LogLine>>,
}

impl LogBuffer {
    /// An open buffer keeping the last `capacity` lines.
    pub fn new(capacity: usize) -> Arc<LogBuffer> {
        Arc::new(LogBuffer {
            inner: Mutex::new(Inner {
                lines: VecDeque::new(),
                capacity: capacity.max(1),
                splitter: LineSplitter::default(),
                open: true,
                live: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the buffer consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends output. Writes after [`close`](LogBuffer::close) are dropped.
    pub fn write(&self, stream: OutputStream, bytes: &[u8]) {
        let mut inner = self.lock();
        if !inner.open {
            return;
        }
        let lines = inner.splitter.push(stream, bytes);
        inner.append(lines);
    }

    /// Appends one whole line.
    pub fn line(&self, stream: OutputStream, text: impl Into<String>) {
        let mut inner = self.lock();
        if inner.open {
            inner.append(vec![LogLine { stream, text: text.into() }]);
        }
    }

    /// Ends the output: flushes partial lines and ends every follower's stream.
    pub fn close(&self) {
        let mut inner = self.lock();
        let rest = std::mem::take(&mut inner.splitter).finish();
        inner.append(rest);
        inner.open = false;
        inner.live = None;
    }

    /// A stream of the kept lines (the last `tail`), then, with `follow`, new lines until the
    /// output ends.
    pub fn stream(&self, options: LogOptions) -> LogStream {
        let (tx, stream) = LogStream::channel();
        let (snapshot, mut live) = {
            let mut inner = self.lock();
            let wanted: Vec<LogLine> =
                inner.lines.iter().filter(|l| options.wants(l.stream)).cloned().collect();
            let skip = options.tail.map_or(0, |n| wanted.len().saturating_sub(n));
            let live = (options.follow && inner.open).then(|| {
                inner.live.get_or_insert_with(|| broadcast::channel(FOLLOW_BACKLOG).0).subscribe()
            });
            (wanted.into_iter().skip(skip).collect::<Vec<_>>(), live)
        };
        tokio::spawn(async move {
            for line in snapshot {
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
            let Some(live) = live.as_mut() else { return };
            loop {
                match live.recv().await {
                    Ok(line) if options.wants(line.stream) => {
                        if tx.send(Ok(line)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        warn!(skipped, "Log follower too slow: lines skipped.");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        stream
    }
}

impl Inner {
    fn append(&mut self, lines: Vec<LogLine>) {
        for line in lines {
            if self.lines.len() == self.capacity {
                self.lines.pop_front();
            }
            if let Some(live) = &self.live {
                // No receivers is fine: nobody follows right now.
                let _ = live.send(line.clone());
            }
            self.lines.push_back(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_keeps_streams_apart_and_joins_partial_lines() {
        let mut s = LineSplitter::default();
        assert!(s.push(OutputStream::Stdout, b"hel").is_empty());
        let err = s.push(OutputStream::Stderr, b"oops\n");
        assert_eq!(err, vec![LogLine { stream: OutputStream::Stderr, text: "oops".into() }]);
        let out = s.push(OutputStream::Stdout, b"lo\r\nworld\nta");
        assert_eq!(out.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), vec!["hello", "world"]);
        assert_eq!(s.finish(), vec![LogLine { stream: OutputStream::Stdout, text: "ta".into() }]);
    }

    #[tokio::test]
    async fn buffer_tails_follows_and_ends() {
        let buffer = LogBuffer::new(3);
        buffer.write(OutputStream::Stdout, b"1\n2\n3\n4\n");
        let kept = buffer.stream(LogOptions::default()).collect().await.expect("lines");
        assert_eq!(kept.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["2", "3", "4"]);
        let tail = LogOptions { tail: Some(1), ..LogOptions::default() };
        assert_eq!(buffer.stream(tail).collect().await.expect("tail").len(), 1);

        let mut follow = buffer.stream(LogOptions { tail: Some(0), ..LogOptions::follow() });
        buffer.write(OutputStream::Stderr, b"err");
        buffer.close();
        let line = follow.next().await.expect("a line").expect("ok");
        assert_eq!(line, LogLine { stream: OutputStream::Stderr, text: "err".into() });
        assert!(follow.next().await.is_none(), "stream ends when the output closes");
    }
}
