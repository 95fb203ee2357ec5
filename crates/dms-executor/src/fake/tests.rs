use std::collections::HashSet;
use std::time::Duration;

use super::*;
use crate::Executor as _;
use crate::execution::OutputStream;
use crate::spec::{ModuleSource, Workload};

fn spec(allocation: &str) -> Spec {
    Spec::new(
        allocation,
        "dep",
        Workload::Wasm { module: ModuleSource::Bytes(Vec::new()), cpu_time: None, fuel: None },
    )
}

#[tokio::test(start_paused = true)]
async fn scripted_exit_output_and_escalating_stop() {
    let fake = Executor::new();
    fake.world().script(
        "job",
        Script {
            output: vec![LogLine { stream: OutputStream::Stdout, text: "hi".into() }],
            ..Script::exits(3, Duration::from_secs(5))
        },
    );
    fake.world().script("stubborn", Script { honours_stop: false, ..Script::service() });

    let job = fake.start(spec("job")).await.expect("start");
    let status = fake.wait(&job).await.expect("wait");
    assert_eq!(status, ExitStatus { code: 3, reason: ExitReason::Exited });
    let lines =
        fake.logs(&job, LogOptions::default()).await.expect("logs").collect().await.expect("ok");
    assert_eq!(lines[0].text, "hi");

    let stubborn = fake.start(spec("stubborn")).await.expect("start");
    let before = tokio::time::Instant::now();
    let status = fake.stop(&stubborn, Duration::from_secs(10)).await.expect("stop");
    assert_eq!(status.reason, ExitReason::Killed);
    assert!(before.elapsed() >= Duration::from_secs(10), "waited the grace period");
}

#[tokio::test]
async fn restart_reattaches_known_and_removes_orphans() {
    let fake = Executor::new();
    fake.world().script("bad", Script::fails_to_start("no image"));
    assert!(fake.start(spec("bad")).await.is_err());
    let keep = fake.start(spec("keep")).await.expect("start");
    fake.start(spec("orphan")).await.expect("start");

    let after = fake.restarted();
    assert!(
        matches!(after.inspect(&keep).await, Err(Error::NotFound(_))),
        "unknown before reattach"
    );
    let known: HashSet<String> = ["keep".to_owned()].into();
    let recovery = after.reattach(&known).await.expect("reattach");
    assert_eq!(recovery.reattached.len(), 1);
    assert_eq!(recovery.reattached[0].id, keep);
    assert_eq!(recovery.removed[0].allocation, "orphan");
    assert_eq!(after.world().allocations(), ["keep"]);
    assert_eq!(after.inspect(&keep).await.expect("attached").state, State::Running);
    assert_eq!(
        after.exec(&keep, vec!["echo".into(), "x".into()]).await.expect("exec").stdout,
        "echo x\n"
    );
    assert!(fake.world().calls().contains(&Call::Reattach(vec!["keep".into()])));
}
