//! Steps for hardening: input and terminals that must not crash the CLI.

use std::process::Stdio;

use cucumber::{then, when};
use tokio::io::AsyncReadExt as _;

use super::daemon::{DMS, Run, patience};
use super::world::DmsWorld;

/// Runs `command` with its standard output closed before it writes (as `| head -0`
/// does): every write fails with a broken pipe.
#[when(expr = "I run {string} with its output closed")]
async fn run_closed(world: &mut DmsWorld, command: String) {
    let args: Vec<&str> = command.split_whitespace().skip_while(|w| *w == "dms").collect();
    let mut child = tokio::process::Command::new(DMS)
        .arg("--home")
        .arg(world.home(0))
        .args(&args)
        .env("DMS_PASSPHRASE", "pw")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("dms binary runs");
    drop(child.stdout.take());
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    let status = tokio::time::timeout(patience(), child.wait())
        .await
        .expect("dms command timed out")
        .expect("dms exits");
    world.last = Some(Run { status, stdout: String::new(), stderr });
}

/// Ended by the broken pipe (SIGPIPE) or successfully, saying nothing on stderr: no
/// panic, and no other error that would keep the command from writing at all.
#[then("it ends quietly, without a panic")]
async fn quietly(world: &mut DmsWorld) {
    use std::os::unix::process::ExitStatusExt as _;
    let last = world.last();
    assert!(last.stderr.trim().is_empty(), "stderr: {}", last.stderr);
    let piped = last.status.signal() == Some(13);
    assert!(piped || last.status.success(), "{:?}", last.status);
}
