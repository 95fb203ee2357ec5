//! State-owning actors: one message at a time, internal messages and owned tasks, stop
//! (by itself, from outside, by a panic) and the exit reason its linked parent hears.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dms_actor::stateful::{self, Context, ExitReason, Stateful};
use dms_actor::{
    Actor, ActorError, BoxFuture, Config, Handle, Message, Reply, Router, Transport, json_reply,
};
use dms_crypto::{KeyPair, KeyType};
use dms_ucan::{CapContext, Verifier};

const T: Duration = Duration::from_secs(5);

/// Every actor of these tests lives on one node: nothing crosses a transport.
struct Nowhere;

impl Transport for Nowhere {
    fn send(&self, _: &str, _: Vec<u8>) -> BoxFuture<Result<Option<Vec<u8>>, ActorError>> {
        Box::pin(async { Err(ActorError::Transport { reason: "no network here".into() }) })
    }

    fn publish(&self, _: &str, _: Vec<u8>) -> BoxFuture<Result<(), ActorError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Drops set the flag: proves a task's future was dropped (aborted).
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[derive(Default, Clone)]
struct Seen {
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
    internal: Arc<Mutex<Vec<u64>>>,
    exits: Arc<Mutex<Vec<(String, ExitReason)>>>,
    task_dropped: Arc<AtomicBool>,
}

struct Counter {
    count: u64,
    seen: Seen,
    world: World,
}

enum Tick {
    Note(u64),
}

impl Stateful for Counter {
    type Internal = Tick;

    fn behaviors(&self) -> Vec<String> {
        ["/test/add", "/test/panic", "/test/stop", "/test/later", "/test/forever", "/test/child"]
            .map(String::from)
            .to_vec()
    }

    async fn handle(&mut self, ctx: &mut Context<Tick>, message: Message) -> Reply {
        match message.envelope.behavior.as_str() {
            "/test/add" => {
                let now = self.seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.seen.most_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                self.count += 1;
                self.seen.in_flight.fetch_sub(1, Ordering::SeqCst);
                json_reply(&self.count)
            }
            "/test/panic" => panic!("boom"),
            "/test/stop" => {
                ctx.stop(ExitReason::Failed("asked to".into()));
                json_reply(&())
            }
            "/test/later" => {
                ctx.after(Duration::from_millis(5), Tick::Note(2));
                ctx.spawn(async { Some(Tick::Note(1)) });
                json_reply(&())
            }
            "/test/forever" => {
                let guard = Dropped(self.seen.task_dropped.clone());
                ctx.spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    None
                });
                json_reply(&ctx.tasks())
            }
            "/test/child" => {
                let child = self.world.counter("child", self.seen.clone());
                ctx.link(&child);
                json_reply(child.handle())
            }
            other => Err(ActorError::UnknownBehavior { behavior: other.into() }),
        }
    }

    async fn internal(&mut self, _: &mut Context<Tick>, message: Tick) {
        let Tick::Note(n) = message;
        self.seen.internal.lock().expect("lock").push(n);
    }

    async fn child_exited(&mut self, _: &mut Context<Tick>, child: Handle, reason: ExitReason) {
        self.seen.exits.lock().expect("lock").push((child.inbox, reason));
    }
}

/// One node: a caller actor, and state-owning actors that trust it.
#[derive(Clone)]
struct World {
    router: Router,
    caller: Actor,
}

impl World {
    fn new() -> World {
        let router = Router::new("peer-a", Arc::new(Nowhere), Config::default());
        let key = KeyPair::generate(KeyType::Ed25519);
        let context = CapContext::new("caller", key.did());
        let caller = Actor::spawn(&router, "caller", key, context.into(), Default::default());
        World { router, caller }
    }

    fn counter(&self, inbox: &str, seen: Seen) -> Actor {
        let key = KeyPair::generate(KeyType::Ed25519);
        let mut context = CapContext::new(inbox, key.did());
        context.add_root(self.caller.handle().did.clone());
        let actor = Actor::spawn_sequential(
            &self.router,
            inbox,
            key,
            context.into(),
            Arc::new(Verifier::default()),
        );
        stateful::spawn(actor, Counter { count: 0, seen, world: self.clone() })
    }

    async fn ask(&self, to: &Handle, behavior: &str) -> Reply {
        self.caller.invoke(to, behavior, Vec::new(), T).await
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < T, "{what}: not within {T:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_are_handled_one_at_a_time_on_owned_state() {
    let world = World::new();
    let seen = Seen::default();
    let counter = world.counter("counter", seen.clone());
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (world, to) = (world.clone(), counter.handle().clone());
        calls.spawn(async move { world.ask(&to, "/test/add").await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = calls.join_next().await {
        let bytes = answer.expect("joined").expect("answered");
        answers.push(serde_json::from_slice::<u64>(&bytes).expect("a count"));
    }
    answers.sort_unstable();
    assert_eq!(answers, (1..=200).collect::<Vec<_>>(), "every message saw the state alone");
    assert_eq!(seen.most_in_flight.load(Ordering::SeqCst), 1, "never two at once");
}

#[tokio::test]
async fn internal_messages_and_task_results_come_back_to_the_actor() {
    let world = World::new();
    let seen = Seen::default();
    let counter = world.counter("counter", seen.clone());
    world.ask(counter.handle(), "/test/later").await.expect("answered");
    eventually("both internal messages arrive", || seen.internal.lock().expect("lock").len() == 2)
        .await;
    assert_eq!(*seen.internal.lock().expect("lock"), vec![1, 2], "the task first, the timer later");
    let unknown = world.ask(counter.handle(), "/test/nothing").await;
    assert!(matches!(unknown, Err(ActorError::UnknownBehavior { .. })), "{unknown:?}");
}

#[tokio::test]
async fn a_stopped_actor_aborts_its_tasks_and_refuses_messages() {
    let world = World::new();
    let seen = Seen::default();
    let counter = world.counter("counter", seen.clone());
    let tasks = world.ask(counter.handle(), "/test/forever").await.expect("answered");
    assert_eq!(serde_json::from_slice::<usize>(&tasks).expect("count"), 1);
    counter.stop();
    eventually("the task is aborted", || seen.task_dropped.load(Ordering::SeqCst)).await;
    assert_eq!(counter.exit_reason(), Some(ExitReason::Normal));
    let after = world.ask(counter.handle(), "/test/add").await;
    assert!(matches!(after, Err(ActorError::NoSuchActor { .. })), "{after:?}");
}

#[tokio::test]
async fn a_parent_hears_why_its_children_stopped() {
    let world = World::new();
    let seen = Seen::default();
    let parent = world.counter("parent", seen.clone());
    let exits = || seen.exits.lock().expect("lock").clone();

    let child: Handle =
        serde_json::from_slice(&world.ask(parent.handle(), "/test/child").await.expect("child"))
            .expect("a handle");
    world.ask(&child, "/test/stop").await.expect("the stop is answered first");
    eventually("the parent hears the stop", || exits().len() == 1).await;
    assert_eq!(exits()[0], ("child".into(), ExitReason::Failed("asked to".into())));

    let child: Handle =
        serde_json::from_slice(&world.ask(parent.handle(), "/test/child").await.expect("child"))
            .expect("a handle");
    let crashed = world.ask(&child, "/test/panic").await;
    assert!(
        matches!(&crashed, Err(ActorError::Internal { reason }) if reason.contains("boom")),
        "a panicking handler is answered with what happened: {crashed:?}"
    );
    eventually("the parent hears the panic", || exits().len() == 2).await;
    let (_, reason) = &exits()[1];
    assert!(
        matches!(reason, ExitReason::Failed(why) if why.contains("boom")),
        "the reason names the panic: {reason:?}"
    );
    assert!(parent.exit_reason().is_none(), "the parent lives on");
}
