//! Steps of `cleanup.feature`: `dms cleanup` removes what a stopped node left running
//! (the Debian package's removal runs it; `scripts/package-test` checks the package).

use cucumber::{then, when};

use super::daemon::run;
use super::steps_deploy::{IMAGE, deploy, dms, node, status, write};
use super::steps_supervision::index_of;
use super::world::DmsWorld;

#[when("the devnet user deploys a Docker service that sleeps")]
async fn deploy_sleeper(world: &mut DmsWorld) {
    let text = format!(
        "version: V1\nallocations:\n  work:\n    type: service\n    executor: docker\n    \
         resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    execution: {{image: \"{IMAGE}\", \
         command: [sleep, \"3600\"]}}\nnodes:\n  only: {{allocations: [work]}}\n"
    );
    let file = write(world, "sleeper.yaml", &text);
    deploy(world, &file, &[]).await;
    assert!(world.last().status.success(), "{}", world.last().stderr);
}

#[when("the node running the deployment is stopped")]
async fn stop_provider(world: &mut DmsWorld) {
    let peer = status(world).await["allocations"]["work"]["peer"]
        .as_str()
        .expect("the allocation is placed")
        .to_string();
    let index = index_of(world, &peer);
    let out = dms(world, &["devnet", "stop", "--node", &index.to_string()]).await;
    assert!(out.status.success(), "{}", out.stderr);
    world.stopped = Some((index, peer));
}

/// Containers of the deployment under test, running or not.
async fn containers(world: &DmsWorld) -> Vec<String> {
    let id = world.deployment.clone().expect("a deployment");
    let out = tokio::process::Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter", &format!("label=dms.deployment={id}")])
        .output()
        .await
        .expect("docker runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[then("the deployment's container still runs")]
async fn still_runs(world: &mut DmsWorld) {
    let found = containers(world).await;
    assert_eq!(found.len(), 1, "the service's container outlives its daemon: {found:?}");
}

#[when(regex = r#"^"dms cleanup" runs in (that node's|node (\d+)'s) home$"#)]
async fn cleanup(world: &mut DmsWorld, which: String, index: String) {
    let index = if which == "that node's" {
        world.stopped.as_ref().expect("a stopped node").0
    } else {
        index.parse().expect("a node index")
    };
    let home = node(world, index)["home"].as_str().expect("home").to_string();
    world.last = Some(run(std::path::Path::new(&home), &["cleanup"], &[]).await);
}

#[then("it names the container it removed, and none of the deployment's containers is left")]
async fn removed(world: &mut DmsWorld) {
    let out = world.last();
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("removed container"), "{}", out.stdout);
    assert_eq!(containers(world).await, Vec::<String>::new());
}
