//! Printing data as aligned columns (for people) or JSON (for scripts).

use serde::Serialize;

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows under upper-case headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Prints `label: value` pairs with the labels aligned.
pub fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(label, _)| label.len()).max().unwrap_or(0) + 1;
    for (label, value) in pairs {
        let label = format!("{label}:");
        println!("{label:<width$} {value}");
    }
}

/// Progress of a fixed number of steps on stderr: a bar on a terminal, one plain line per
/// step otherwise (a log or a pipe gets no control characters); nothing when `show` is
/// false.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    label: &'static str,
    len: u64,
    done: std::cell::Cell<u64>,
    show: bool,
}

impl Progress {
    /// Progress of `len` steps called `label` (e.g. "run").
    pub fn new(label: &'static str, len: u64, show: bool) -> Progress {
        use std::io::IsTerminal as _;
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(len);
            let style = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(label);
            bar
        });
        Progress { bar, label, len, done: std::cell::Cell::new(0), show }
    }

    /// One more step done.
    pub fn step(&self) {
        self.done.set(self.done.get() + 1);
        match &self.bar {
            Some(bar) => bar.inc(1),
            None if self.show => eprintln!("{} {}/{}", self.label, self.done.get(), self.len),
            None => {}
        }
    }

    /// Says what the next step waits for (on the bar; nothing on plain lines).
    pub fn doing(&self, what: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{}: {}", self.label, what.into()));
        }
    }

    /// Prints a line above the bar (or as is), e.g. what a finished step found.
    pub fn note(&self, line: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(line.as_ref()),
            None => eprintln!("{}", line.as_ref()),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A wait of unknown length on stderr: a spinner with the time waited so far on a
/// terminal, one line saying what is awaited otherwise; nothing when `show` is false.
/// Cleared when dropped.
pub struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    /// Starts waiting for `what` (e.g. "stopping node-1").
    pub fn new(what: impl Into<String>, show: bool) -> Spinner {
        use std::io::IsTerminal as _;
        let what = what.into();
        if !show {
            return Spinner(None);
        }
        if !std::io::stderr().is_terminal() {
            eprintln!("{what}…");
            return Spinner(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        let style = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(what);
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        Spinner(Some(bar))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// The last second RFC 3339 can write: 9999-12-31T23:59:59Z.
const LAST_RFC3339_SECS: u64 = 253_402_300_799;

/// A Unix time in seconds as RFC 3339 (UTC). Times RFC 3339 cannot write (after the
/// year 9999, e.g. a token granted for ten million days) say so instead of failing.
pub fn rfc3339_secs(secs: u64) -> String {
    if secs > LAST_RFC3339_SECS {
        return "after 9999-12-31".into();
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_up_to_the_year_9999_are_written_and_later_ones_said() {
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_secs(LAST_RFC3339_SECS), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_secs(LAST_RFC3339_SECS + 1), "after 9999-12-31");
        assert_eq!(rfc3339_secs(u64::MAX), "after 9999-12-31");
    }
}
