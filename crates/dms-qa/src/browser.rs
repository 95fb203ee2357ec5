//! Opening a page in headless Chromium and checking what it renders: the DOM after the
//! page has loaded (`--dump-dom`), and a screenshot kept as evidence.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// Loads `url` in headless `chromium`, saves a screenshot to `screenshot`, and checks
/// that the rendered DOM has a `<title>` and contains every string of `expect`.
/// Returns the rendered DOM's length on success; the error says what was missing.
pub fn check(chromium: &Path, url: &str, expect: &[String], screenshot: &Path) -> Result<usize> {
    const FLAGS: [&str; 5] = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ];
    let run = |extra: &[&str]| {
        Command::new(chromium).args(FLAGS).args(extra).arg(url).output().with_context(|| {
            format!("running {} (apt-get install chromium; .ci/run does)", chromium.display())
        })
    };
    let dom = run(&["--dump-dom"])?;
    if !dom.status.success() {
        bail!(
            "chromium could not load {url} ({}): {}",
            dom.status,
            String::from_utf8_lossy(&dom.stderr).trim()
        );
    }
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    if let Some(parent) = screenshot.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let shot = format!("--screenshot={}", screenshot.display());
    let shot_out = run(&[&shot, "--window-size=1280,2000"])?;
    if !shot_out.status.success() || !screenshot.exists() {
        bail!(
            "chromium took no screenshot of {url}: {}",
            String::from_utf8_lossy(&shot_out.stderr).trim()
        );
    }
    let missing: Vec<&String> = expect.iter().filter(|e| !dom.contains(e.as_str())).collect();
    if !dom.contains("<title>") {
        bail!("{url} rendered no <title>: is it an HTML page? ({} bytes of DOM)", dom.len());
    }
    if !missing.is_empty() {
        bail!("{url} rendered without {missing:?} ({} bytes of DOM)", dom.len());
    }
    Ok(dom.len())
}
