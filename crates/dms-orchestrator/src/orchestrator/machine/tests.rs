//! The placement machine driven by a scripted world under paused tokio time: pauses
//! are real `sleep`s on the virtual clock, so back-off is measured, not assumed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use dms_protocol::{Bid, BidAnswer, Reason, Refusal};
use dms_types::capability::Machine;
use tokio::time::Instant;

use super::*;
use crate::deployment::{AllocationView, DeploymentState};

/// Unix ms at which the virtual clock starts.
const T0: u64 = 1_000_000;

fn record(deadline_after: Duration) -> Deployment {
    record_of(&["only"], deadline_after)
}

/// A deployment of one WebAssembly service per node, each allocation named after its
/// node.
fn record_of(nodes: &[&str], deadline_after: Duration) -> Deployment {
    let mut text = String::from("version: V1\nallocations:\n");
    for node in nodes {
        text.push_str(&format!(
            "  {node}:\n    type: service\n    executor: wasm\n    resources: {{cpu: {{cores: \
             1}}, ram: 16MiB}}\n    execution: {{module: m.wasm}}\n"
        ));
    }
    text.push_str("nodes:\n");
    for node in nodes {
        text.push_str(&format!("  {node}: {{allocations: [{node}]}}\n"));
    }
    let ensemble = dms_ensemble::load(&text).expect("a valid ensemble").ensemble;
    let allocations = nodes
        .iter()
        .map(|node| {
            let view = AllocationView {
                node: node.to_string(),
                kind: dms_ensemble::model::AllocationType::Service,
                executor: "wasm".into(),
                peer: None,
                handle: None,
                status: Default::default(),
                lineage: Vec::new(),
                heard_ms: None,
            };
            (node.to_string(), view)
        })
        .collect();
    Deployment {
        id: "d-test".into(),
        created_ms: T0,
        deadline_ms: T0 + deadline_after.as_millis() as u64,
        state: DeploymentState::Bidding,
        reason: None,
        ensemble,
        modules: BTreeMap::new(),
        placement: BTreeMap::new(),
        standby: BTreeMap::new(),
        allocations,
        failed_peers: BTreeSet::new(),
        failures: BTreeMap::new(),
        attempts: 0,
        events: Default::default(),
        next_seq: 0,
        orchestrator: None,
        submitter: None,
        subnet: None,
        trace: None,
    }
}

fn bid(peer: &str) -> BidAnswer {
    bid_for(peer, "only")
}

fn bid_for(peer: &str, node: &str) -> BidAnswer {
    let bid = Bid {
        node: node.into(),
        reservation: format!("r-{peer}"),
        expires_ms: 0,
        machine: Machine::default(),
        score: 1.0,
        rtt_ms: BTreeMap::new(),
        parts: None,
        contract: None,
    };
    BidAnswer { peer: peer.into(), bids: vec![bid], refusals: Vec::new() }
}

fn refusal(peer: &str, transient: bool) -> BidAnswer {
    let reason = Reason {
        transient,
        code: "insufficient_cpu".into(),
        message: "needs 1 CPU core, 0.5 free".into(),
    };
    BidAnswer {
        peer: peer.into(),
        bids: Vec::new(),
        refusals: vec![Refusal { node: "only".into(), reasons: vec![reason] }],
    }
}

/// What a provider does with a commit-and-start.
type Outcome = Result<(), (&'static str, &'static str)>;

/// A scripted world: bid windows and commit outcomes in order, the record kept as the
/// real driver keeps it, and a log of what was carried out.
struct World {
    record: Deployment,
    windows: VecDeque<Vec<BidAnswer>>,
    outcomes: VecDeque<Outcome>,
    started: Instant,
    waits: Vec<Duration>,
    released: usize,
    reverts: usize,
    chosen: Vec<String>,
    /// Cancel when this many bid windows have closed.
    cancel_after_windows: Option<usize>,
    windows_closed: usize,
    /// Cancel while committing (a shutdown arrives meanwhile).
    cancel_during_commit: bool,
    cancelled: bool,
    /// The nodes a replacement places.
    replacing: Option<BTreeSet<String>>,
    replacements: u32,
}

impl World {
    fn new(record: Deployment) -> World {
        World {
            record,
            windows: VecDeque::new(),
            outcomes: VecDeque::new(),
            started: Instant::now(),
            waits: Vec::new(),
            released: 0,
            reverts: 0,
            chosen: Vec::new(),
            cancel_after_windows: None,
            windows_closed: 0,
            cancel_during_commit: false,
            cancelled: false,
            replacing: None,
            replacements: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        T0 + self.started.elapsed().as_millis() as u64
    }

    /// Runs the machine from `start` until it is done, as `placement.rs` does.
    async fn run(&mut self, machine: &mut Placement, start: Input) {
        let mut input = start;
        for _ in 0..1000 {
            if self.cancelled || self.cancel_after_windows.is_some_and(|n| self.windows_closed >= n)
            {
                machine.cancel();
            }
            let effects = machine.step(&self.record, input, self.now_ms());
            let mut next = None;
            for effect in effects {
                if let Some(produced) = self.carry_out(effect).await {
                    next = Some(produced);
                }
            }
            match next {
                Some(produced) if !machine.is_done() => input = produced,
                _ => return,
            }
        }
        panic!("the placement never finished");
    }

    async fn carry_out(&mut self, effect: Effect) -> Option<Input> {
        match effect {
            Effect::Bidding { attempt } => {
                self.record.state = DeploymentState::Bidding;
                self.record.attempts = attempt;
                None
            }
            Effect::Replacing { nodes, attempt } => {
                assert_eq!(Some(&nodes), self.replacing.as_ref());
                self.replacements = attempt;
                None
            }
            Effect::AskBids { asks, .. } => {
                assert_eq!(asks.len(), 1, "one ensemble node, one ask");
                self.windows_closed += 1;
                Some(Input::Bids(self.windows.pop_front().unwrap_or_default()))
            }
            Effect::Release(answers) => {
                self.released += answers.len();
                None
            }
            Effect::Pending(reason) => {
                self.record.reason = Some(format!("pending: {reason}"));
                None
            }
            Effect::CommitAndStart { choice, .. } | Effect::TakeOver { choice } => {
                let node = choice.keys().next().expect("one node chosen").clone();
                self.chosen.push(choice[&node].peer.clone());
                self.cancelled |= self.cancel_during_commit;
                Some(match self.outcomes.pop_front().unwrap_or(Ok(())) {
                    Ok(()) => {
                        self.record.state = DeploymentState::Running;
                        Input::Started
                    }
                    Err((peer, reason)) => {
                        Input::ProviderFailed { peer: peer.into(), reason: reason.into() }
                    }
                })
            }
            Effect::Revert(nodes) => {
                assert_eq!(nodes.as_ref(), self.replacing.as_ref(), "reverts only what it places");
                self.reverts += 1;
                Some(Input::Reverted)
            }
            Effect::ForgetPlacement { peer, reason, nodes } => {
                assert_eq!(nodes.as_ref(), self.replacing.as_ref());
                if let Some(peer) = peer {
                    self.record.failed_peers.insert(peer);
                }
                self.record.reason = Some(format!("pending: {reason}"));
                match nodes {
                    Some(nodes) => self.record.placement.retain(|n, _| !nodes.contains(n)),
                    None => self.record.placement.clear(),
                }
                None
            }
            Effect::Wait(pause) => {
                self.waits.push(pause);
                tokio::time::sleep(pause).await;
                Some(Input::Due)
            }
            Effect::Fail(why) => {
                self.record.state = DeploymentState::Failed;
                self.record.reason = Some(why);
                None
            }
            Effect::Done => None,
        }
    }
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[tokio::test(start_paused = true)]
async fn a_placeable_window_is_committed_and_started_in_one_attempt() {
    let mut world = World::new(record(Duration::from_secs(60)));
    world.windows.push_back(vec![bid("p1"), refusal("p2", true)]);
    let mut machine = Placement::default();
    world.run(&mut machine, Input::Start).await;
    assert_eq!(world.record.state, DeploymentState::Running);
    assert_eq!(
        (world.record.attempts, world.chosen.as_slice()),
        (1, ["p1".to_string()].as_slice())
    );
    assert!(world.waits.is_empty() && world.reverts == 0);
    let effects = machine.step(&world.record, Input::Due, world.now_ms());
    assert!(matches!(effects.as_slice(), [Effect::Done]), "{effects:?}");
}

#[tokio::test(start_paused = true)]
async fn resources_in_use_back_off_doubling_until_they_free_up() {
    let mut world = World::new(record(Duration::from_secs(60)));
    for _ in 0..4 {
        world.windows.push_back(vec![refusal("p1", true)]);
    }
    world.windows.push_back(vec![bid("p1")]);
    world.run(&mut Placement::default(), Input::Start).await;
    assert_eq!(world.waits, [MS(250), MS(500), MS(1000), MS(2000)]);
    assert_eq!(world.started.elapsed(), MS(3750), "the pauses are slept on the clock");
    assert_eq!((world.record.state, world.record.attempts), (DeploymentState::Running, 5));
    assert_eq!(world.released, 4, "every refused window's answers are released");
}

#[tokio::test(start_paused = true)]
async fn the_same_lasting_reason_three_times_fails_before_the_deadline() {
    let mut world = World::new(record(Duration::from_secs(600)));
    for _ in 0..5 {
        world.windows.push_back(vec![refusal("p1", false)]);
    }
    world.run(&mut Placement::default(), Input::Start).await;
    assert_eq!(world.record.state, DeploymentState::Failed);
    assert_eq!(world.record.attempts, 3, "three strikes");
    let why = world.record.reason.clone().unwrap_or_default();
    assert!(why.starts_with("cannot be placed: ") && why.contains("insufficient_cpu"), "{why}");
    assert_eq!(world.started.elapsed(), MS(750), "two pauses, not the 600 s deadline");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_a_placement_that_keeps_waiting() {
    let mut world = World::new(record(Duration::from_secs(2)));
    for _ in 0..20 {
        world.windows.push_back(vec![refusal("p1", true)]);
    }
    world.run(&mut Placement::default(), Input::Start).await;
    assert_eq!(world.record.state, DeploymentState::Failed);
    let why = world.record.reason.clone().unwrap_or_default();
    assert!(why.starts_with("deadline passed after 4 attempts"), "{why}");
    // 250 + 500 + 1000, then only what is left of the 2 s.
    assert_eq!(world.waits, [MS(250), MS(500), MS(1000), MS(250)]);
    assert_eq!(world.started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_failed_provider_is_reverted_not_asked_again_and_the_strikes_start_over() {
    let mut world = World::new(record(Duration::from_secs(60)));
    world.windows.push_back(vec![bid("p1"), bid("p2")]);
    world.windows.push_back(vec![bid("p1"), bid("p2")]);
    world.outcomes.push_back(Err(("p1", "commit on p1 failed: timed out")));
    // Break ties by peer id: p1 first; after it failed, p2 although p1 bids again.
    world.run(&mut Placement::default(), Input::Start).await;
    assert_eq!(world.chosen, ["p1", "p2"]);
    assert_eq!(world.reverts, 1);
    assert_eq!(world.waits, [MS(250)]);
    assert!(world.record.failed_peers.contains("p1"));
    assert_eq!((world.record.state, world.record.attempts), (DeploymentState::Running, 2));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_window_releases_its_bids_and_places_nothing() {
    let mut world = World::new(record(Duration::from_secs(60)));
    world.windows.push_back(vec![bid("p1"), bid("p2")]);
    world.cancel_after_windows = Some(1);
    world.run(&mut Placement::default(), Input::Start).await;
    assert!(world.chosen.is_empty());
    assert_eq!(world.released, 2);
    assert_eq!(world.record.state, DeploymentState::Bidding, "the shutdown takes it from here");
}

#[tokio::test(start_paused = true)]
async fn a_placement_interrupted_by_cancellation_is_reverted_and_not_retried() {
    let mut world = World::new(record(Duration::from_secs(60)));
    world.windows.push_back(vec![bid("p1")]);
    world.outcomes.push_back(Err(("", "cancelled")));
    world.cancel_during_commit = true;
    world.run(&mut Placement::default(), Input::Start).await;
    assert_eq!((world.reverts, world.waits.len()), (1, 0));
    assert!(world.record.failed_peers.is_empty(), "nobody is blamed for a cancellation");
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_during_a_pause_ends_the_placement_at_the_next_step() {
    let mut world = World::new(record(Duration::from_secs(60)));
    world.windows.push_back(vec![refusal("p1", true)]);
    let mut machine = Placement::default();
    let now = world.now_ms();
    let effects = machine.step(&world.record, Input::Start, now);
    assert!(matches!(effects.as_slice(), [Effect::Bidding { attempt: 1 }, Effect::AskBids { .. }]));
    let effects = machine.step(&world.record, Input::Bids(vec![refusal("p1", true)]), now);
    assert!(matches!(effects.last(), Some(Effect::Wait(_))), "{effects:?}");
    machine.cancel();
    tokio::time::advance(MS(250)).await;
    let effects = machine.step(&world.record, Input::Due, world.now_ms());
    assert!(matches!(effects.as_slice(), [Effect::Done]), "{effects:?}");
    assert!(machine.is_done());
}

#[tokio::test(start_paused = true)]
async fn a_restart_while_placing_reverts_forgets_and_places_again() {
    let mut world = World::new(record(Duration::from_secs(60)));
    // Found in the store after a restart: attempt 2 was committing on p1.
    world.record.attempts = 2;
    world.record.state = DeploymentState::Committing;
    world.windows.push_back(vec![bid("p1")]);
    world.run(&mut Placement::default(), Input::Resume).await;
    assert_eq!(world.reverts, 1, "what providers held is reverted first");
    assert!(world.record.failed_peers.is_empty(), "a restart blames no provider");
    assert_eq!(world.chosen, ["p1"]);
    assert_eq!((world.record.state, world.record.attempts), (DeploymentState::Running, 3));
}

#[tokio::test(start_paused = true)]
async fn a_restart_after_the_deadline_reverts_and_fails() {
    let mut world = World::new(record(Duration::from_secs(1)));
    tokio::time::advance(Duration::from_secs(2)).await;
    world.record.attempts = 1;
    world.run(&mut Placement::default(), Input::Resume).await;
    assert_eq!((world.reverts, world.windows_closed), (1, 0));
    assert_eq!(world.record.state, DeploymentState::Failed);
    let why = world.record.reason.clone().unwrap_or_default();
    assert!(why.starts_with("deadline passed after 1 attempts"), "{why}");
}

#[test]
fn an_input_out_of_turn_fails_loudly_instead_of_guessing() {
    let record = record(Duration::from_secs(60));
    let mut machine = Placement::default();
    let effects = machine.step(&record, Input::Started, T0);
    assert!(
        matches!(effects.as_slice(), [Effect::Fail(why), Effect::Done] if why.contains("internal error")),
        "{effects:?}"
    );
}

/// A deployment running `a` on p1 and `b` on p2, as the lost-provider path leaves it
/// when p1 is lost: `a` unplaced (its replacement avoids p1).
fn lost_a(deadline_after: Duration) -> World {
    let mut record = record_of(&["a", "b"], deadline_after);
    record.state = DeploymentState::Running;
    record.attempts = 1;
    let provider = dms_actor::Handle {
        did: dms_crypto::KeyPair::generate(dms_crypto::KeyType::Ed25519).did(),
        peer: "p2".into(),
        inbox: "root".into(),
    };
    let placed =
        crate::deployment::Placed { provider, reservation: "r".into(), score: 1.0, contract: None };
    record.placement.insert("b".into(), placed);
    let mut world = World::new(record);
    world.replacing = Some(["a".to_string()].into());
    world
}

#[tokio::test(start_paused = true)]
async fn a_lost_node_is_placed_again_alone_on_a_peer_that_runs_nothing_else() {
    let mut world = lost_a(Duration::from_secs(1));
    // The deployment's own placement deadline is long past; the replacement has its own.
    tokio::time::advance(Duration::from_secs(10)).await;
    let both = |peer: &str| {
        let mut answer = bid_for(peer, "a");
        answer.bids.extend(bid_for(peer, "b").bids);
        answer
    };
    world.windows.push_back(vec![both("p1"), both("p2"), both("p3")]);
    let deadline = world.now_ms() + 60_000;
    let mut machine = Placement::replacing(["a".to_string()].into(), lost(), deadline);
    world.run(&mut machine, Input::Start).await;
    assert_eq!(world.chosen, ["p3"], "not the lost p1, not p2 which runs b");
    assert_eq!((world.replacements, world.record.attempts), (1, 1), "its own attempt count");
    assert_eq!(world.record.state, DeploymentState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_failed_replacement_reverts_only_its_nodes_and_tries_another_peer() {
    let mut world = lost_a(Duration::from_secs(60));
    world.windows.push_back(vec![bid_for("p3", "a")]);
    world.windows.push_back(vec![bid_for("p3", "a"), bid_for("p4", "a")]);
    world.outcomes.push_back(Err(("p3", "allocate on p3 failed: no space")));
    let deadline = world.now_ms() + 60_000;
    world
        .run(&mut Placement::replacing(["a".to_string()].into(), lost(), deadline), Input::Start)
        .await;
    assert_eq!(world.chosen, ["p3", "p4"]);
    assert_eq!((world.reverts, world.replacements), (1, 2));
    assert!(world.record.placement.contains_key("b"), "the other node's placement stays");
}

#[tokio::test(start_paused = true)]
async fn a_replacement_that_finds_no_peer_fails_at_its_own_deadline() {
    let mut world = lost_a(Duration::from_secs(600));
    for _ in 0..50 {
        world.windows.push_back(vec![refusal("p3", true)]);
    }
    let deadline = world.now_ms() + 3_000;
    world
        .run(&mut Placement::replacing(["a".to_string()].into(), lost(), deadline), Input::Start)
        .await;
    assert_eq!(world.record.state, DeploymentState::Failed);
    assert_eq!(world.started.elapsed(), Duration::from_secs(3), "its deadline, not the record's");
}

fn lost() -> BTreeSet<String> {
    ["p1".to_string()].into()
}

fn standby(peer: &str) -> BTreeMap<String, select::Choice> {
    let choice = select::Choice {
        peer: peer.into(),
        reservation: format!("{peer}-r"),
        score: 0.9,
        contract: None,
    };
    [("a".to_string(), choice)].into()
}

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_without_a_bid_round() {
    let mut world = lost_a(Duration::from_secs(60));
    let deadline = world.now_ms() + 60_000;
    let mut machine =
        Placement::replacing(["a".to_string()].into(), lost(), deadline).standing_by(standby("p3"));
    world.run(&mut machine, Input::Start).await;
    assert_eq!(world.chosen, ["p3"]);
    assert_eq!((world.windows_closed, world.replacements), (0, 1), "no bid window");
    assert!(world.waits.is_empty() && world.reverts == 0);
}

#[tokio::test(start_paused = true)]
async fn a_standby_that_fails_is_reverted_then_bids_place_the_node() {
    let mut world = lost_a(Duration::from_secs(60));
    world.outcomes.push_back(Err(("p3", "commit on p3 failed: reservation lapsed")));
    world.windows.push_back(vec![bid_for("p3", "a"), bid_for("p4", "a")]);
    let deadline = world.now_ms() + 60_000;
    let mut machine =
        Placement::replacing(["a".to_string()].into(), lost(), deadline).standing_by(standby("p3"));
    world.run(&mut machine, Input::Start).await;
    assert_eq!(world.chosen, ["p3", "p4"], "the failed standby is not chosen again");
    assert_eq!((world.reverts, world.windows_closed, world.replacements), (1, 1, 2));
    assert_eq!(world.waits, [MS(250)], "the usual back-off after a failed provider");
}

#[tokio::test(start_paused = true)]
async fn a_standby_on_the_lost_peer_or_for_only_some_nodes_is_not_taken() {
    // On the lost peer itself: bids instead.
    let mut world = lost_a(Duration::from_secs(60));
    world.windows.push_back(vec![bid_for("p4", "a")]);
    let deadline = world.now_ms() + 60_000;
    let mut machine =
        Placement::replacing(["a".to_string()].into(), lost(), deadline).standing_by(standby("p1"));
    world.run(&mut machine, Input::Start).await;
    assert_eq!((world.chosen.as_slice(), world.windows_closed), (["p4".to_string()].as_slice(), 1));
    // Two nodes to replace, a standby for one: both are bid for together.
    let nodes: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
    let machine = Placement::replacing(nodes, lost(), deadline).standing_by(standby("p3"));
    assert!(machine.standby.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_replacement_never_chooses_a_peer_keeping_a_standby() {
    let mut world = lost_a(Duration::from_secs(60));
    let provider = dms_actor::Handle {
        did: dms_crypto::KeyPair::generate(dms_crypto::KeyType::Ed25519).did(),
        peer: "p3".into(),
        inbox: "root".into(),
    };
    let standby = crate::deployment::Standby {
        provider,
        reservation: "p3-r".into(),
        score: 1.0,
        kept_ms: T0,
        expires_ms: T0 + 120_000,
        contract: None,
    };
    world.record.standby.insert("b".into(), vec![standby]);
    world.windows.push_back(vec![bid_for("p3", "a"), bid_for("p4", "a")]);
    let deadline = world.now_ms() + 60_000;
    world
        .run(&mut Placement::replacing(["a".to_string()].into(), lost(), deadline), Input::Start)
        .await;
    assert_eq!(world.chosen, ["p4"], "p3 keeps b's standby");
}
