//! An allocation's whole output, kept on the provider's disk while it runs and after it
//! ends (until its deployment is shut down), within `deployment.log_cap`.
//!
//! Lines go to `<logs>/<allocation>.log` as JSON lines (`{"s":"stdout","t":"…"}`); when
//! that file reaches half the cap it becomes `<allocation>.log.1` (the previous `.1` is
//! dropped), so at most the cap is kept. What was dropped is counted in
//! `<allocation>.dropped` and stated with every read — truncation is never silent.
//! `<allocation>.exec` names the execution being followed, so that following it again
//! after a provider restart does not write its lines twice.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use dms_protocol::{LogLine, Logs, LogsRequest};
use serde::{Deserialize, Serialize};

/// Most bytes of lines one answer carries (a message holds 1 MiB).
const ANSWER_BYTES: usize = 640 * 1024;

/// The log files of one allocation.
#[derive(Clone, Debug)]
pub(crate) struct LogFile {
    base: PathBuf,
    cap: u64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    s: String,
    t: String,
}

impl LogFile {
    /// The files of allocation `id` under `dir`, keeping at most `cap` bytes.
    pub(crate) fn new(dir: &Path, id: &str, cap: u64) -> LogFile {
        let name: String = id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
            .collect();
        LogFile { base: dir.join(name), cap: cap.max(2) }
    }

    fn path(&self, suffix: &str) -> PathBuf {
        let mut name = self.base.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }

    /// Whether `execution` is the one these files follow (and records it when not).
    pub(crate) fn follows(&self, execution: &str) -> std::io::Result<bool> {
        let path = self.path(".exec");
        if std::fs::read_to_string(&path).is_ok_and(|e| e == execution) {
            return Ok(true);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, execution)?;
        Ok(false)
    }

    /// Appends `lines`, rotating at half the cap.
    pub(crate) fn append(&self, lines: &[LogLine]) -> std::io::Result<()> {
        let current = self.path(".log");
        if let Some(dir) = current.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut buffer = Vec::new();
        for line in lines {
            serde_json::to_writer(
                &mut buffer,
                &Stored { s: line.stream.clone(), t: line.text.clone() },
            )?;
            buffer.push(b'\n');
        }
        let size = std::fs::metadata(&current).map_or(0, |m| m.len());
        if size > 0 && size + buffer.len() as u64 > self.cap / 2 {
            self.rotate(&current)?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&current)?;
        file.write_all(&buffer)
    }

    fn rotate(&self, current: &Path) -> std::io::Result<()> {
        let older = self.path(".log.1");
        if let Ok(meta) = std::fs::metadata(&older) {
            let dropped = self.dropped().saturating_add(meta.len());
            std::fs::write(self.path(".dropped"), dropped.to_string())?;
        }
        std::fs::rename(current, older)
    }

    /// Bytes of output dropped by rotation so far.
    fn dropped(&self) -> u64 {
        std::fs::read_to_string(self.path(".dropped"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// What a logs request reads: the kept lines from line `from` on (oldest first), or
    /// else the last `tail` (all when `None`), at most `max_bytes` of them; `None` when
    /// nothing was ever written.
    pub(crate) fn read(&self, request: &LogsRequest) -> Option<Logs> {
        let lines = self.lines()?;
        let budget = request.max_bytes.unwrap_or(ANSWER_BYTES).min(ANSWER_BYTES);
        let size = |l: &LogLine| l.text.len() + 16;
        let mut notes = Vec::new();
        let mut next = None;
        let lines: Vec<LogLine> = if let Some(from) = request.from {
            // Oldest first from `from`, as many as fit (at least one); the lines after
            // them are not decoded, only looked for so that `next` continues.
            let mut rest = lines.skip(from).peekable();
            let (mut page, mut used) = (Vec::new(), 0);
            while let Some(line) = rest.next_if(|l| page.is_empty() || used + size(l) <= budget) {
                used += size(&line);
                page.push(line);
            }
            if rest.peek().is_some() {
                next = Some(from + page.len());
            }
            page
        } else {
            let mut lines: Vec<LogLine> = lines.collect();
            if let Some(tail) = request.tail {
                lines.drain(..lines.len().saturating_sub(tail));
            }
            // The newest lines that fit one answer.
            let mut used = 0;
            let fit = lines.iter().rev().take_while(|l| {
                used += size(l);
                used <= budget
            });
            let unsent = lines.len() - fit.count();
            lines.drain(..unsent);
            if unsent > 0 {
                notes.push(format!(
                    "{unsent} earlier lines are kept but not in this answer (at most {}); \
                     `dms deployments logs` without --tail reads them all",
                    dms_types::format_bytes(budget as u64)
                ));
            }
            lines
        };
        let dropped = self.dropped();
        if dropped > 0 {
            notes.insert(
                0,
                format!(
                    "{} of earlier output was dropped to stay within deployment.log_cap ({})",
                    dms_types::format_bytes(dropped),
                    dms_types::format_bytes(self.cap)
                ),
            );
        }
        let truncated = (!notes.is_empty()).then(|| notes.join("; "));
        Some(Logs { lines, exited: false, truncated, next })
    }

    /// Every kept line, oldest first, read as it is consumed; `None` when nothing was
    /// ever written.
    fn lines(&self) -> Option<impl Iterator<Item = LogLine>> {
        let files: Vec<std::fs::File> = [self.path(".log.1"), self.path(".log")]
            .iter()
            .filter_map(|path| std::fs::File::open(path).ok())
            .collect();
        if files.is_empty() {
            return None;
        }
        Some(files.into_iter().flat_map(|file| {
            std::io::BufReader::new(file).lines().map_while(Result::ok).filter_map(|line| {
                serde_json::from_str::<Stored>(&line)
                    .ok()
                    .map(|stored| LogLine { stream: stored.s, text: stored.t })
            })
        }))
    }

    /// Deletes the files.
    pub(crate) fn remove(&self) {
        for suffix in [".log", ".log.1", ".dropped", ".exec"] {
            let _ = std::fs::remove_file(self.path(suffix));
        }
    }
}

/// An executor's line as the protocol carries it.
pub(crate) fn line(l: dms_executor::LogLine) -> LogLine {
    LogLine {
        stream: match l.stream {
            dms_executor::OutputStream::Stdout => "stdout".into(),
            dms_executor::OutputStream::Stderr => "stderr".into(),
        },
        text: l.text.trim_end_matches('\n').to_string(),
    }
}

/// Most lines written at once.
const BATCH: usize = 256;

/// Copies `stream` to `file` until it ends, a batch of lines at a time.
pub(crate) async fn copy(mut stream: dms_executor::LogStream, file: LogFile) {
    let mut batch = Vec::new();
    loop {
        // Whatever is ready now, then a write.
        let next = stream.next().await;
        let ended = !matches!(next, Some(Ok(_)));
        if let Some(Ok(l)) = next {
            batch.push(line(l));
        }
        if !batch.is_empty() && (ended || batch.len() >= BATCH || stream.is_idle()) {
            let (file, lines) = (file.clone(), std::mem::take(&mut batch));
            match tokio::task::spawn_blocking(move || file.append(&lines)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "Could not keep an allocation's output."),
                Err(_) => return,
            }
        }
        if ended {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine { stream: "stdout".into(), text: text.into() }
    }

    #[test]
    fn lines_are_kept_and_rotation_within_the_cap_is_stated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogFile::new(dir.path(), "d-1.web", 4096);
        let all = LogsRequest::default();
        assert!(log.read(&all).is_none(), "nothing written yet");
        for i in 0..200 {
            log.append(&[line(&format!("line {i:03} {}", "x".repeat(20)))]).expect("append");
        }
        let Logs { lines, truncated, .. } = log.read(&all).expect("written");
        let kept: u64 = ["log", "log.1"]
            .iter()
            .filter_map(|s| std::fs::metadata(dir.path().join(format!("d-1.web.{s}"))).ok())
            .map(|m| m.len())
            .sum();
        assert!(kept <= 4096, "at most the cap is kept: {kept}");
        assert_eq!(
            lines.last().map(|l| l.text.as_str()),
            Some(format!("line 199 {}", "x".repeat(20)).as_str())
        );
        assert!(lines.len() < 200, "the oldest were dropped");
        let truncated = truncated.expect("the drop is stated");
        assert!(truncated.contains("dropped to stay within deployment.log_cap"), "{truncated}");
        let tail = log.read(&LogsRequest { tail: Some(3), ..all.clone() }).expect("written");
        assert_eq!(tail.lines.len(), 3);
        // Paging from the first kept line reads every kept line, a budget at a time.
        let (mut paged, mut from) = (Vec::new(), Some(0));
        while let Some(start) = from {
            let page = LogsRequest { from: Some(start), max_bytes: Some(200), ..all.clone() };
            let page = log.read(&page).expect("written");
            assert!(!page.lines.is_empty());
            paged.extend(page.lines.into_iter().map(|l| l.text));
            from = page.next;
        }
        assert_eq!(paged, lines.iter().map(|l| l.text.clone()).collect::<Vec<_>>());
        log.remove();
        assert!(log.read(&all).is_none(), "removed");
    }

    #[test]
    fn an_execution_is_followed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogFile::new(dir.path(), "d-1.web", 4096);
        assert!(!log.follows("c1").expect("record"));
        assert!(log.follows("c1").expect("read"), "the same execution again");
        assert!(!log.follows("c2").expect("record"), "a restart's new execution");
    }
}
