//! Steps of `agent.feature`: the key agent, as the devnet user.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use cucumber::{then, when};

use super::daemon::run;
use super::steps_deploy::{devnet_cli, node};
use super::world::DmsWorld;

fn user_home(world: &DmsWorld) -> PathBuf {
    let devnet = world.devnet.as_ref().expect("a devnet is up");
    PathBuf::from(devnet["user_home"].as_str().expect("user_home"))
}

#[when(regex = r"^the devnet user starts the key agent for (\S+)$")]
async fn start(world: &mut DmsWorld, lifetime: String) {
    let out = devnet_cli(world, 0, &["agent", "start", "--for", &lifetime]).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("key agent started"), "{}", out.stdout);
}

#[when("the devnet user locks the key agent")]
async fn lock(world: &mut DmsWorld) {
    let out = devnet_cli(world, 0, &["agent", "lock"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("locked"), "{}", out.stdout);
}

/// `dms peers list` as the devnet user against node 0, with no passphrase given.
async fn signed_call(world: &mut DmsWorld) -> super::daemon::Run {
    let api = node(world, 0)["api"].as_str().expect("api").to_string();
    let node_home = PathBuf::from(node(world, 0)["home"].as_str().expect("home"));
    let token = dms_node::home::Home::new(node_home).token().expect("the node's API token");
    let home = user_home(world);
    run(&home, &["--api-addr", &api, "peers", "list"], &[("DMS_API_TOKEN", &token)]).await
}

#[then("a signed call as the devnet user without a passphrase succeeds")]
async fn call_succeeds(world: &mut DmsWorld) {
    let out = signed_call(world).await;
    assert!(out.status.success(), "the agent did not sign: {}", out.stderr);
}

#[then(regex = r#"^a signed call as the devnet user without a passphrase fails with "([^"]+)"$"#)]
async fn call_fails(world: &mut DmsWorld, text: String) {
    let out = signed_call(world).await;
    assert!(!out.status.success(), "signed without a key: {}", out.stdout);
    assert!(out.stderr.contains(&text), "{text:?} not in {}", out.stderr);
}

#[then("the agent's socket is private to its owner")]
async fn private(world: &mut DmsWorld) {
    let socket = user_home(world).join("agent.sock");
    let mode = std::fs::metadata(&socket).expect("the agent's socket").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", socket.display());
}
