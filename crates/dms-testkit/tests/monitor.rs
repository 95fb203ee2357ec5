//! `dms_actor` monitors over a real (in-memory libp2p) network: the same API for local
//! and remote actors, a typed reason when the watched actor is down, and `lost` only on
//! positive evidence.

use std::time::{Duration, Instant};

use dms_actor::{
    Actor, Context, Down, ExitReason, Handle, Liveness, Message, PeerState, Reply, Stateful,
    json_reply,
};
use dms_crypto::{KeyPair, KeyType};
use dms_testkit::{Net, Node, Options};

const LIVENESS: Liveness =
    Liveness { heartbeat: Duration::from_millis(200), lost_after: Duration::from_secs(1) };

/// A plain actor on `node`, sharing its capability context.
fn actor_on(node: &Node, inbox: &str) -> Actor {
    let root = &node.runtime.actor;
    Actor::spawn(
        &node.runtime.router,
        inbox,
        KeyPair::generate(KeyType::Ed25519),
        root.live_context().clone(),
        root.verifier().clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_actor_that_stops_is_down_at_once_with_its_reason() {
    let net = Net::start(1, Options::default()).await;
    let watched = actor_on(net.node(0), "watched");
    let mut monitor = net.node(0).runtime.actor.monitor(watched.handle().clone(), LIVENESS);
    watched.stop();
    let down = tokio::time::timeout(Duration::from_secs(1), monitor.down()).await.expect("at once");
    assert_eq!(down, Down::Exited(ExitReason::Normal));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_actor_is_healthy_then_down_when_its_node_says_it_is_gone() {
    let net = Net::start(2, Options::default()).await;
    net.trust_all();
    let watched = actor_on(net.node(1), "watched");
    let mut monitor = net.node(0).runtime.actor.monitor(watched.handle().clone(), LIVENESS);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(monitor.state(), PeerState::Healthy);
    assert_eq!(monitor.down_now(), None);
    watched.stop();
    let down = tokio::time::timeout(Duration::from_secs(2), monitor.down()).await.expect("soon");
    match down {
        Down::Exited(ExitReason::Failed(why)) => assert!(why.contains("says it is gone"), "{why}"),
        other => panic!("expected an exit, got {other:?}"),
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_peer_is_lost_while_this_node_reaches_others() {
    let net = Net::start(3, Options::default()).await;
    net.trust_all();
    let watched = actor_on(net.node(1), "watched");
    let mut monitor = net.node(0).runtime.actor.monitor(watched.handle().clone(), LIVENESS);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cut = Instant::now();
    net.partition(&[1]).await;
    let down = tokio::time::timeout(Duration::from_secs(5), monitor.down()).await.expect("lost");
    let took = cut.elapsed();
    assert!(matches!(down, Down::Lost { silent_for } if silent_for >= LIVENESS.lost_after));
    assert!(took >= LIVENESS.lost_after, "not before lost_after: {took:?}");
    assert!(took < LIVENESS.lost_after * 3, "about lost_after and a beat or two: {took:?}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_reaches_nobody_calls_the_peer_unknown_never_lost() {
    let net = Net::start(3, Options::default()).await;
    net.trust_all();
    let watched = actor_on(net.node(1), "watched");
    let monitor = net.node(0).runtime.actor.monitor(watched.handle().clone(), LIVENESS);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // This node is the one cut off: every peer is silent, and it reaches none.
    net.partition(&[0]).await;
    tokio::time::sleep(LIVENESS.lost_after * 3).await;
    assert!(matches!(monitor.state(), PeerState::Unknown { .. }), "{:?}", monitor.state());
    assert_eq!(monitor.down_now(), None, "no verdict without evidence");
    net.heal().await;
    let healed = Instant::now();
    while monitor.state() != PeerState::Healthy {
        assert!(healed.elapsed() < Duration::from_secs(10), "never healthy again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    net.shutdown().await;
}

/// A state-owning actor that watches `target` when asked, and reports what it hears.
struct Watcher {
    target: Handle,
    heard: tokio::sync::mpsc::UnboundedSender<(Handle, ExitReason)>,
}

impl Stateful for Watcher {
    type Internal = ();

    fn behaviors(&self) -> Vec<String> {
        vec!["/public/test/watch".into()]
    }

    async fn handle(&mut self, ctx: &mut Context<()>, _message: Message) -> Reply {
        ctx.watch(self.target.clone(), LIVENESS);
        json_reply(&())
    }

    async fn internal(&mut self, _ctx: &mut Context<()>, _message: ()) {}

    async fn child_exited(&mut self, _ctx: &mut Context<()>, child: Handle, reason: ExitReason) {
        let _ = self.heard.send((child, reason));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_owning_actor_hears_a_watched_remote_actor_lost_as_an_exit() {
    let net = Net::start(3, Options::default()).await;
    net.trust_all();
    let watched = actor_on(net.node(1), "watched");
    let node = net.node(0);
    let root = &node.runtime.actor;
    let (heard, mut exits) = tokio::sync::mpsc::unbounded_channel();
    let actor = Actor::spawn_sequential(
        &node.runtime.router,
        "watcher",
        KeyPair::generate(KeyType::Ed25519),
        root.live_context().clone(),
        root.verifier().clone(),
    );
    let watcher =
        dms_actor::stateful::spawn(actor, Watcher { target: watched.handle().clone(), heard });
    root.invoke(watcher.handle(), "/public/test/watch", Vec::new(), Duration::from_secs(5))
        .await
        .expect("watching");
    net.partition(&[1]).await;
    let (child, reason) = tokio::time::timeout(Duration::from_secs(5), exits.recv())
        .await
        .expect("heard")
        .expect("an exit");
    assert_eq!(&child, watched.handle());
    match reason {
        ExitReason::Failed(why) => assert!(why.starts_with("lost: silent for"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    net.shutdown().await;
}
