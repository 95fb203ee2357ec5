//! The allocation life cycle (with inputs staged and outputs published) under random
//! sequences of start, exit, loss, a full volume, publishing on request, health
//! verdicts, restart timers, stop, abandonment (replaced elsewhere, orchestrator
//! silent) and provider restarts (crashes between any two effects, the record reloaded as last persisted):
//! resources are released exactly once, never while the workload may run, and the
//! allocation always ends terminal.

use dms_actor::Handle;
use dms_protocol::{AllocationSpec, AllocationState, AllocationStatus};
use dms_provider::allocation::machine::{Effect, Input, restart_due, step};
use dms_provider::hosted::Hosted;
use proptest::prelude::*;

fn hosted(policy: &str, kind: &str) -> Hosted {
    let allocation: dms_ensemble::model::Allocation = serde_json::from_value(serde_json::json!({
        "type": kind, "executor": "docker",
        "resources": {"cpu": {"cores": 0.5}, "ram": "64MiB"},
        "execution": {"image": "busybox"},
        "restart": {"policy": policy, "max_attempts": 2, "delay": "1s"},
    }))
    .expect("allocation");
    let did = dms_crypto::KeyPair::generate(dms_crypto::KeyType::Ed25519).did();
    Hosted {
        gpus: Vec::new(),
        id: "d-1.web".into(),
        deployment: "d-1".into(),
        node: "n".into(),
        reservation: "d-1/0".into(),
        orchestrator: Handle { did, peer: "p".into(), inbox: "d-1".into() },
        spec: AllocationSpec {
            name: "web".into(),
            allocation,
            module_b64: None,
            images_b64: Default::default(),
            port_maps: Vec::new(),
            subnet: None,
        },
        execution: None,
        status: AllocationStatus { state: AllocationState::Allocated, ..Default::default() },
        restart_times: Vec::new(),
        grant: None,
        liveness: None,
        exit: None,
        publishing: None,
        trace: None,
        contract: None,
        billed_from_ms: None,
    }
}

/// `hosted` with a volume, an input to stage and outputs to publish.
fn with_storage(mut h: Hosted) -> Hosted {
    let a = &mut h.spec.allocation;
    a.volumes = serde_json::from_value(serde_json::json!([{"source": "work", "target": "/data"}]))
        .expect("volumes");
    a.inputs = serde_json::from_value(serde_json::json!([{"from": "lake:in/a", "to": "/data/a"}]))
        .expect("inputs");
    a.outputs =
        serde_json::from_value(serde_json::json!([{"from": "/data/out/", "to": "lake:out/"}]))
            .expect("outputs");
    h
}

/// The world around one allocation: its executor, its timers, its persisted record,
/// and the resources it holds.
struct World {
    live: Hosted,
    persisted: Option<Hosted>,
    container: Option<String>,
    watched: bool,
    restart_pending: bool,
    held: bool,
    forgotten: bool,
    now: u64,
    next_id: u32,
    choices: std::vec::IntoIter<u8>,
}

impl World {
    /// The next random choice below `n`; once the choices run out, always `n - 1`
    /// (no crash, starts succeed).
    fn choose(&mut self, n: u8) -> u8 {
        self.choices.next().map_or(n - 1, |c| c % n)
    }

    /// Feeds an input and carries out the effects, feeding results back; a crash may
    /// cut the effects short (then the provider restarts).
    fn feed(&mut self, input: Input) -> Result<(), String> {
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            let before = self.live.status.clone();
            for effect in step(&mut self.live, input, self.now) {
                if self.choose(16) == 0 {
                    return self.crash();
                }
                if let Some(next) = self.carry_out(effect)? {
                    inputs.push(next);
                }
            }
            if before.state.is_terminal() && self.live.status.state != before.state {
                return Err(format!("left terminal {before:?} for {:?}", self.live.status));
            }
            if self.live.status != before && self.live.status.version <= before.version {
                return Err("a change did not bump the version".into());
            }
        }
        Ok(())
    }

    fn carry_out(&mut self, effect: Effect) -> Result<Option<Input>, String> {
        Ok(match effect {
            Effect::StartExecution => {
                if self.choose(4) == 0 {
                    Some(Input::StartFailed { error: "no such image".into() })
                } else {
                    self.next_id += 1;
                    let id = format!("c{}", self.next_id);
                    self.container = Some(id.clone());
                    Some(Input::Started { execution: id, start_us: 5, endpoints: Vec::new() })
                }
            }
            Effect::RemoveExecution(_) | Effect::StopExecution(_) => {
                self.container = None;
                self.watched = false;
                None
            }
            Effect::Watch => {
                self.watched = true;
                None
            }
            Effect::ScheduleRestart(_) => {
                self.restart_pending = true;
                None
            }
            Effect::Persist { .. } => {
                self.persisted = Some(self.live.clone());
                None
            }
            Effect::Stage => Some(Input::Staged(match self.choose(4) {
                0 => Err("input lake:in/a: the object is gone (404)".into()),
                _ => Ok(()),
            })),
            Effect::Publish => Some(Input::Published(match self.choose(4) {
                0 => Err("lake:out/r: the store answered 500".into()),
                _ => Ok(Vec::new()),
            })),
            Effect::Tell => None,
            Effect::Ended => {
                if !self.held {
                    return Err("resources released twice".into());
                }
                if !self.live.status.state.is_terminal() {
                    return Err("resources released while the allocation runs".into());
                }
                self.held = false;
                None
            }
            Effect::Forget => {
                self.forgotten = true;
                self.persisted = None;
                None
            }
        })
    }

    /// The provider process dies: timers and watchers are gone, the record is what was
    /// last persisted; recovery releases a reservation whose allocations all ended and
    /// tells the actor whether its container was found.
    fn crash(&mut self) -> Result<(), String> {
        self.restart_pending = false;
        self.watched = false;
        let Some(record) = self.persisted.clone() else {
            // Never persisted, or forgotten: nothing comes back.
            self.forgotten = true;
            if self.live.status.state.is_terminal() {
                self.held = false;
            }
            return Ok(());
        };
        self.live = record;
        if self.live.status.state.is_terminal() {
            self.held = false; // recovery: every allocation of the reservation ended
            return Ok(());
        }
        let found = self.container.clone().filter(|_| self.choose(2) == 0);
        if found.is_none() {
            self.container = None;
        }
        self.feed(Input::Recovered { execution: found })
    }

    fn act(&mut self) -> Result<(), String> {
        self.now += 700;
        match self.choose(12) {
            0 => self.feed(Input::Start),
            1 if self.watched && self.container.is_some() => {
                self.watched = false;
                let code = i64::from(self.choose(2));
                self.feed(Input::Exited { code, reason: "exited".into(), output: "out".into() })
            }
            2 if self.watched => {
                self.watched = false;
                self.feed(Input::Lost { error: "engine restarted".into() })
            }
            3 if self.restart_pending => {
                self.restart_pending = false;
                self.feed(Input::RestartDue)
            }
            4 => self.feed(Input::Stop),
            5 => self.crash(),
            6 => self.feed(Input::Abandon { reason: "replaced elsewhere".into() }),
            7 if self.watched && self.container.is_some() => {
                // The watcher of the stopped execution is dropped by the actor.
                self.watched = false;
                self.feed(Input::Unhealthy { reason: "GET / answered 500".into() })
            }
            8 => self.feed(Input::Health(dms_protocol::Health::Healthy)),
            9 if self.watched && self.container.is_some() => {
                self.feed(Input::Exceeded { reason: "the volume at /data is full".into() })
            }
            10 => self.feed(Input::PublishNow),
            // Late and duplicate inputs change nothing they should not.
            _ => self.feed(Input::Exited { code: 1, reason: "late".into(), output: String::new() }),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn resources_are_released_exactly_once_and_the_end_is_terminal(
        choices in proptest::collection::vec(any::<u8>(), 0..120),
        policy in prop_oneof![Just("never"), Just("on_failure"), Just("always")],
        kind in prop_oneof![Just("task"), Just("service")],
        storage in any::<bool>(),
    ) {
        let start = if storage { with_storage(hosted(policy, kind)) } else { hosted(policy, kind) };
        let mut world = World {
            persisted: Some(start.clone()),
            live: start,
            container: None,
            watched: false,
            restart_pending: false,
            held: true,
            forgotten: false,
            now: 1_000,
            next_id: 0,
            choices: choices.into_iter(),
        };
        while world.choices.len() > 0 && !world.forgotten {
            world.act().map_err(TestCaseError::fail)?;
        }
        if !world.forgotten {
            // Whatever happened, a shutdown ends it.
            world.choices = Vec::new().into_iter();
            world.feed(Input::Stop).map_err(TestCaseError::fail)?;
        }
        prop_assert!(world.live.status.state.is_terminal(), "ends terminal: {:?}", world.live.status);
        prop_assert!(!world.held, "the resources were released");
        prop_assert!(world.container.is_none(), "no workload left behind");
        prop_assert!(world.forgotten && world.persisted.is_none(), "the record is gone after a stop");
    }
}

#[test]
fn restart_policies() {
    let on_failure = hosted("on_failure", "service");
    assert_eq!(restart_due(&on_failure, 0, 0), None, "a clean exit is not a failure");
    assert_eq!(restart_due(&on_failure, 1, 0), Some(Ok(std::time::Duration::from_secs(1))));
    let mut spent = on_failure.clone();
    spent.restart_times = vec![1, 2];
    spent.status.restarts = 2;
    assert_eq!(restart_due(&spent, 1, 3), Some(Err(2)), "gives up after max_attempts");
    assert_eq!(restart_due(&hosted("never", "task"), 1, 0), None);
}

#[test]
fn a_task_that_exits_zero_completes_and_is_told_once() {
    let mut h = hosted("never", "task");
    assert_eq!(
        step(&mut h, Input::Start, 1),
        vec![Effect::Persist { durable: true }, Effect::StartExecution],
        "the start brings the grant a recovered copy needs: written durably"
    );
    let started = step(
        &mut h,
        Input::Started { execution: "c1".into(), start_us: 7, endpoints: Vec::new() },
        2,
    );
    assert_eq!(started, vec![Effect::Persist { durable: false }, Effect::Watch]);
    let exited =
        step(&mut h, Input::Exited { code: 0, reason: "done".into(), output: "hi".into() }, 3);
    assert_eq!(exited, vec![Effect::Persist { durable: true }, Effect::Ended, Effect::Tell]);
    assert_eq!(h.status.state, AllocationState::Completed);
    assert_eq!(h.status.output.as_deref(), Some("hi"));
    assert!(
        step(&mut h, Input::Exited { code: 1, reason: "late".into(), output: String::new() }, 4)
            .is_empty()
    );
    assert_eq!(
        step(&mut h, Input::Stop, 5),
        vec![Effect::StopExecution("c1".into()), Effect::Forget]
    );
}

#[test]
fn an_unhealthy_service_is_stopped_and_restarted_by_its_policy_then_given_up_on() {
    use dms_protocol::Health;
    let mut h = hosted("on_failure", "service");
    h.spec.allocation.healthcheck = Some(
        serde_json::from_value(serde_json::json!({"type": "http", "port": 8080}))
            .expect("healthcheck"),
    );
    step(&mut h, Input::Start, 1);
    step(&mut h, Input::Started { execution: "c1".into(), start_us: 7, endpoints: Vec::new() }, 2);
    assert_eq!(h.status.health, Some(Health::Starting), "no probe has passed yet");
    assert_eq!(
        step(&mut h, Input::Health(Health::Healthy), 3),
        vec![Effect::Persist { durable: false }, Effect::Tell]
    );
    assert!(step(&mut h, Input::Health(Health::Healthy), 4).is_empty(), "no change, no news");
    for (n, execution) in [(1, "c1"), (2, "c2")] {
        let reason = "3 health probes failed in a row; the last: GET / answered 500";
        let effects = step(&mut h, Input::Unhealthy { reason: reason.into() }, 10 * n);
        assert_eq!(
            effects,
            vec![
                Effect::StopExecution(execution.into()),
                Effect::Persist { durable: true },
                Effect::Tell,
                Effect::ScheduleRestart(std::time::Duration::from_secs(1)),
            ]
        );
        let message = h.status.message.clone().unwrap_or_default();
        assert!(message.contains(&format!("restart {n} of 2")), "{message}");
        assert_eq!(h.status.health, Some(Health::Unhealthy));
        assert_eq!(step(&mut h, Input::RestartDue, 10 * n + 1), vec![Effect::StartExecution]);
        let next = format!("c{}", n + 1);
        step(
            &mut h,
            Input::Started { execution: next, start_us: 7, endpoints: Vec::new() },
            10 * n + 2,
        );
        assert_eq!(h.status.health, Some(Health::Starting), "a new run starts over");
    }
    let effects = step(&mut h, Input::Unhealthy { reason: "GET / answered 500".into() }, 40);
    assert_eq!(h.status.state, AllocationState::Failed);
    assert!(effects.contains(&Effect::Ended));
    let message = h.status.message.clone().unwrap_or_default();
    assert!(message.contains("gave up after 2 restarts"), "{message}");
}
