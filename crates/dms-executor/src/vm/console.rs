//! The serial console: a VM's log, and how its end is read from it.
//!
//! The hypervisor appends the guest's first serial port (`ttyS0`) to `console.log` in the
//! VM's directory, so output survives a restart of dms and is read the same way by a
//! re-attached executor. The file is capped: past [`CONSOLE_MAX`] bytes it is copied to
//! `console.log.1` (the previous copy dropped) and emptied, and readers start over.
//!
//! **Exit codes.** A guest reports its exit code by printing a line `dms-exit-code: N`
//! on the console before it powers off. The line is not shown in the logs. Without it, a
//! guest that powered off exited with 0, and a kernel panic is a failure with the panic's
//! message.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::Result;
use crate::execution::{LogLine, LogOptions, LogStream, OutputStream, State};

/// The line a guest prints to report its exit code.
pub const EXIT_MARKER: &str = "dms-exit-code:";

/// Size past which the console is rotated.
pub(crate) const CONSOLE_MAX: u64 = 16 << 20;

/// How often followers look for new output.
const POLL: Duration = Duration::from_millis(100);

/// The rotated copy beside `path`.
pub(crate) fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Rotates the console when it grew past the cap. The hypervisor appends (`O_APPEND`), so
/// after the truncation its writes land at the start again.
pub(crate) fn rotate_if_large(path: &Path) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    if meta.len() <= CONSOLE_MAX {
        return;
    }
    if std::fs::copy(path, rotated(path)).is_ok()
        && let Ok(file) = std::fs::OpenOptions::new().write(true).open(path)
    {
        let _ = file.set_len(0);
    }
}

/// The line without the serial port's carriage returns.
fn clean(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n']).trim_start_matches('\r')
}

/// The exit code the guest reported last, if any.
pub(crate) fn exit_code(text: &str) -> Option<i64> {
    text.lines()
        .rev()
        .filter_map(|l| clean(l).trim().strip_prefix(EXIT_MARKER))
        .find_map(|rest| rest.trim().parse().ok())
}

/// The message of a kernel panic on the console, if the guest panicked.
pub(crate) fn panic_message(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.split_once("Kernel panic - not syncing:"))
        .map(|(_, why)| clean(why).trim().to_string())
}

/// The last `max` bytes of the console (lossily decoded).
pub(crate) fn tail(path: &Path, max: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else { return String::new() };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut bytes = Vec::new();
    let _ = file.take(max).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Whether a console line is shown in the logs (the exit marker is not).
fn shown(line: &str) -> bool {
    !clean(line).trim().starts_with(EXIT_MARKER)
}

/// Streams the console as stdout lines: what it holds (the last `tail` lines), then, with
/// `follow`, new lines until the VM exits and its output is read.
pub(crate) fn stream(
    path: PathBuf,
    options: LogOptions,
    state: watch::Receiver<State>,
) -> LogStream {
    let (tx, stream) = LogStream::channel();
    if !options.stdout {
        return stream; // The console is one stream: stdout.
    }
    tokio::spawn(async move {
        let mut reader = Reader { path, offset: 0, partial: Vec::new() };
        let mut first = reader.read_rotated();
        first.extend(reader.read_new());
        let skip = options.tail.map_or(0, |n| first.len().saturating_sub(n));
        for line in first.into_iter().skip(skip) {
            if !send(&tx, line).await {
                return;
            }
        }
        if !options.follow {
            return;
        }
        loop {
            let exited = state.borrow().is_exited();
            let lines = reader.read_new();
            if lines.is_empty() && exited {
                if let Some(last) = reader.flush() {
                    send(&tx, last).await;
                }
                return;
            }
            for line in lines {
                if !send(&tx, line).await {
                    return;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = tx.closed() => return,
            }
        }
    });
    stream
}

async fn send(tx: &mpsc::Sender<Result<LogLine>>, text: String) -> bool {
    tx.send(Ok(LogLine { stream: OutputStream::Stdout, text })).await.is_ok()
}

/// Reads complete lines from where it stopped.
struct Reader {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Reader {
    /// The shown lines of the rotated copy, if there is one.
    fn read_rotated(&self) -> Vec<String> {
        let text = std::fs::read(rotated(&self.path)).unwrap_or_default();
        String::from_utf8_lossy(&text).lines().filter(|l| shown(l)).map(own).collect()
    }

    /// New complete lines; starts over when the file was rotated under it.
    fn read_new(&mut self) -> Vec<String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return Vec::new() };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        if len == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        let Ok(n) = file.take(len - self.offset).read_to_end(&mut bytes) else { return Vec::new() };
        self.offset += n as u64;
        self.partial.extend_from_slice(&bytes);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else { return Vec::new() };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        String::from_utf8_lossy(&complete).lines().filter(|l| shown(l)).map(own).collect()
    }

    /// The last line when it has no newline.
    fn flush(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.partial);
        let text = String::from_utf8_lossy(&rest);
        (!text.trim().is_empty() && shown(&text)).then(|| own(&text))
    }
}

fn own(line: &str) -> String {
    clean(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_marker_is_the_exit_code() {
        let text = "hello\r\ndms-exit-code: 1\r\nmore\r\ndms-exit-code: 3\r\n[ 1.8] reboot: Power down\r\n";
        assert_eq!(exit_code(text), Some(3));
        assert_eq!(exit_code("hello\n"), None);
        assert_eq!(exit_code("dms-exit-code: nope\n"), None);
    }

    #[test]
    fn a_panic_is_found_with_its_message() {
        let text =
            "[    1.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\r\n";
        assert_eq!(
            panic_message(text).as_deref(),
            Some("Attempted to kill init! exitcode=0x00000100")
        );
        assert_eq!(panic_message("fine\n"), None);
    }

    #[tokio::test]
    async fn lines_are_read_without_the_marker_and_rotation_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console.log");
        std::fs::write(&path, "one\r\ndms-exit-code: 0\r\ntwo\r\npart").expect("write");
        let mut reader = Reader { path: path.clone(), offset: 0, partial: Vec::new() };
        assert_eq!(reader.read_new(), ["one", "two"]);
        std::fs::write(&path, "x\n").expect("truncate and write");
        assert_eq!(reader.read_new(), ["x"], "a shorter file was rotated: read from its start");
        std::fs::write(rotated(&path), "old\n").expect("rotated");
        assert_eq!(reader.read_rotated(), ["old"]);

        let (_tx, rx) = watch::channel(State::Running);
        let options = LogOptions { tail: Some(1), ..LogOptions::default() };
        let lines = stream(path, options, rx).collect().await.expect("lines");
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["x"], "tail counts the rotated copy's lines too");
    }
}
