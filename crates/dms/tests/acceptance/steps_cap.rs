//! Steps for capability contexts, driven through the real `dms cap` commands.

use cucumber::{given, then, when};

use super::daemon::{Run, run};
use super::world::DmsWorld;

const PASS: (&str, &str) = ("DMS_PASSPHRASE", "pw");

async fn dms(world: &DmsWorld, args: &[&str]) -> Run {
    run(&world.home(0), args, &[PASS]).await
}

async fn dms_ok(world: &DmsWorld, args: &[&str]) -> String {
    let out = dms(world, args).await;
    assert!(out.status.success(), "dms {args:?} failed: {}", out.stderr);
    out.stdout.trim().to_string()
}

fn did(world: &DmsWorld, name: &str) -> String {
    world.dids.get(name).unwrap_or_else(|| panic!("no identity {name}")).clone()
}

fn token(world: &DmsWorld, from: &str, to: &str) -> String {
    world
        .tokens
        .get(&(from.to_string(), to.to_string()))
        .unwrap_or_else(|| panic!("no token {from}->{to}"))
        .clone()
}

/// The newest token addressed to `name`.
fn token_for(world: &DmsWorld, name: &str) -> String {
    world
        .token_order
        .iter()
        .rev()
        .find(|(_, to)| to == name)
        .map(|k| world.tokens[k].clone())
        .unwrap_or_default()
}

fn remember(world: &mut DmsWorld, from: &str, to: &str, text: String) {
    let key = (from.to_string(), to.to_string());
    world.tokens.insert(key.clone(), text);
    world.token_order.push(key);
}

#[given(regex = r"^identities (.+) with capability contexts$")]
async fn identities(world: &mut DmsWorld, names: String) {
    for name in names.split([',', ' ']).filter(|n| !n.is_empty() && *n != "and") {
        dms_ok(world, &["key", "new", name]).await;
        dms_ok(world, &["cap", "new", name]).await;
        let did = dms_ok(world, &["key", "did", name]).await;
        world.dids.insert(name.to_string(), did);
    }
}

async fn grant(
    world: &mut DmsWorld,
    from: &str,
    to: &str,
    path: &str,
    duration: &str,
    depth: Option<i64>,
) {
    let audience = did(world, to);
    let depth = depth.map(|d| d.to_string());
    let mut args =
        vec!["cap", "grant", "-c", from, "--cap", path, "--duration", duration, &audience];
    if let Some(depth) = &depth {
        args.extend(["--depth", depth]);
    }
    let text = dms_ok(world, &args).await;
    remember(world, from, to, text);
}

#[when(regex = r#"^(\w+) grants (\w+) "([^"]+)" for "([^"]+)"$"#)]
async fn grants(world: &mut DmsWorld, from: String, to: String, path: String, duration: String) {
    grant(world, &from, &to, &path, &duration, None).await;
}

#[when(regex = r#"^(\w+) grants (\w+) "([^"]+)" for "([^"]+)" with depth (\d+)$"#)]
async fn grants_depth(
    world: &mut DmsWorld,
    from: String,
    to: String,
    path: String,
    duration: String,
    depth: i64,
) {
    grant(world, &from, &to, &path, &duration, Some(depth)).await;
}

#[when(regex = r"^(\w+) holds the token from (\w+)$")]
async fn holds(world: &mut DmsWorld, holder: String, from: String) {
    let text = token(world, &from, &holder);
    dms_ok(world, &["cap", "anchor", "-c", &holder, "--provide", &text]).await;
}

#[when(regex = r#"^(\w+) delegates "([^"]+)" to (\w+) for "([^"]+)"$"#)]
async fn delegates(world: &mut DmsWorld, from: String, path: String, to: String, duration: String) {
    let audience = did(world, &to);
    let text = dms_ok(
        world,
        &["cap", "delegate", "-c", &from, "--cap", &path, "--duration", &duration, &audience],
    )
    .await;
    remember(world, &from, &to, text);
}

#[then(regex = r#"^(\w+) cannot delegate "([^"]+)" to (\w+)$"#)]
async fn cannot_delegate(world: &mut DmsWorld, from: String, path: String, to: String) {
    let audience = did(world, &to);
    let out = dms(
        world,
        &["cap", "delegate", "-c", &from, "--cap", &path, "--duration", "5m", &audience],
    )
    .await;
    assert!(!out.status.success(), "delegation of {path} succeeded");
    assert!(out.stderr.contains("no valid provide anchor"), "{}", out.stderr);
}

async fn check(world: &DmsWorld, ctx: &str, invoker: &str, behavior: &str, chain: &str) -> Run {
    let invoker = did(world, invoker);
    let mut args = vec!["cap", "check", "-c", ctx, "--invoker", &invoker, "--behavior", behavior];
    if !chain.is_empty() {
        args.push(chain);
    }
    dms(world, &args).await
}

#[then(regex = r#"^(\w+) allows (\w+) to invoke "([^"]+)"$"#)]
async fn allows(world: &mut DmsWorld, ctx: String, invoker: String, behavior: String) {
    let chain = token_for(world, &invoker);
    let out = check(world, &ctx, &invoker, &behavior, &chain).await;
    assert!(out.status.success(), "refused: {}", out.stderr);
    assert!(out.stdout.starts_with("allowed"), "{}", out.stdout);
}

#[then(regex = r#"^(\w+) refuses (\w+) invoking "([^"]+)" with "([^"]+)"$"#)]
async fn refuses(
    world: &mut DmsWorld,
    ctx: String,
    invoker: String,
    behavior: String,
    code: String,
) {
    let chain = token_for(world, &invoker);
    let out = check(world, &ctx, &invoker, &behavior, &chain).await;
    assert!(!out.status.success(), "allowed: {}", out.stdout);
    assert!(out.stderr.contains(&format!("({code})")), "expected {code}: {}", out.stderr);
}

#[then(regex = r#"^(\w+) refuses (\w+) invoking "([^"]+)" with token "([^"]+)" and "([^"]+)"$"#)]
async fn refuses_token(
    world: &mut DmsWorld,
    ctx: String,
    invoker: String,
    behavior: String,
    chain: String,
    needle: String,
) {
    let out = check(world, &ctx, &invoker, &behavior, &chain).await;
    assert!(!out.status.success(), "allowed: {}", out.stdout);
    assert!(out.stderr.contains(&needle), "expected {needle}: {}", out.stderr);
}

#[when(regex = r"^(\w+) revokes the token (\w+) gave (\w+)$")]
async fn revokes_other(world: &mut DmsWorld, by: String, from: String, to: String) {
    let text = token(world, &from, &to);
    world.revocation = Some(dms_ok(world, &["cap", "revoke", "-c", &by, &text]).await);
}

#[when(regex = r"^(\w+) imports that revocation$")]
async fn imports(world: &mut DmsWorld, ctx: String) {
    let text = world.revocation.clone().expect("a revocation was issued");
    dms_ok(world, &["cap", "revoke", "-c", &ctx, &text]).await;
}

#[given(regex = r"^(\w+) trusts (\w+) as a root$")]
async fn trusts_root(world: &mut DmsWorld, ctx: String, root: String) {
    let root = did(world, &root);
    dms_ok(world, &["cap", "anchor", "-c", &ctx, "--root", &root]).await;
}

#[when(regex = r"^(\w+) anchors the token (\w+) gave (\w+) as require$")]
async fn anchors_require(world: &mut DmsWorld, ctx: String, from: String, to: String) {
    let text = token(world, &from, &to);
    dms_ok(world, &["cap", "anchor", "-c", &ctx, "--require", &text]).await;
}

#[when(expr = "I run {string} against the daemon")]
async fn run_against_daemon(world: &mut DmsWorld, command: String) {
    let api = world.daemons.first().expect("a daemon runs").ready().api.to_string();
    let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
    args.extend(["--api-addr", &api]);
    world.last = Some(dms(world, &args).await);
}
