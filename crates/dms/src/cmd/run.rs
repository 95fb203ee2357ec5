//! `dms run`: the daemon in the foreground; `dms cleanup`: what it leaves running, removed.

use dms_node::config::LogFormat;

use super::Ctx;
use crate::passphrase;

pub async fn run(ctx: &Ctx, listen: Vec<String>, bootstrap: Vec<String>) -> anyhow::Result<()> {
    ctx.init_home()?;
    let mut config = ctx.config()?;
    if !listen.is_empty() {
        config.network.listen = listen;
    }
    if !bootstrap.is_empty() {
        config.network.bootstrap = bootstrap;
    }
    // The node's DID names its telemetry; the key file says it without the passphrase.
    let did = dms_crypto::Keystore::open(ctx.home.keys_dir())
        .and_then(|keys| keys.info(&config.node.key))
        .ok()
        .map(|info| info.did.to_string());
    let telemetry = init_telemetry(&config, did)?;
    let passphrase = passphrase::read(&config.node.key, false)?;
    let ran = dms_node::run(&ctx.home, config, &passphrase, shutdown_signal()).await;
    telemetry.shutdown().await;
    ran.map_err(|error| {
        let hint = match &error {
            dms_node::Error::NoNodeKey { name, .. } => {
                format!("create it with `dms key new {name}` (same --home), then run again")
            }
            dms_node::Error::Key { source: dms_crypto::Error::WrongPassphrase { .. }, .. } => {
                format!("check {} or the passphrase you typed", passphrase::ENV)
            }
            dms_node::Error::Store(dms_store::Error::Locked { .. }) => {
                "another dms daemon is using this home; stop it or use another --home".into()
            }
            _ => String::new(),
        };
        if hint.is_empty() {
            anyhow::Error::new(error)
        } else {
            anyhow::Error::new(error).context(hint)
        }
    })
}

/// Installs logging and telemetry as `[log]` and `[telemetry]` say.
fn init_telemetry(
    config: &dms_node::Config,
    did: Option<String>,
) -> anyhow::Result<dms_telemetry::Telemetry> {
    config.telemetry.validate()?;
    let settings = dms_telemetry::Settings {
        log_level: config.log.level.clone(),
        log_format: match config.log.format {
            LogFormat::Text => dms_telemetry::Format::Text,
            LogFormat::Json => dms_telemetry::Format::Json,
        },
        service_name: config.telemetry.service_name.clone(),
        version: dms_node::VERSION.to_string(),
        instance: did,
        elasticsearch: config.telemetry.elasticsearch(),
        otlp_endpoint: config.telemetry.otlp(),
    };
    dms_telemetry::init(&settings).map_err(|e| match e {
        dms_telemetry::Error::Filter { .. } if std::env::var_os("RUST_LOG").is_some() => {
            anyhow::Error::new(e).context("RUST_LOG")
        }
        dms_telemetry::Error::Filter { .. } => anyhow::Error::new(e).context("log.level"),
        e => anyhow::Error::new(e),
    })
}

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed here, before the
/// daemon starts and says "ready": a signal sent right after "ready" (or during
/// start-up) is a shutdown request, never the default action that kills the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = int.recv() => tracing::info!("SIGINT received."),
                _ = term.recv() => tracing::info!("SIGTERM received."),
            },
            (Ok(mut term), Err(error)) => {
                tracing::warn!(%error, "Cannot listen for SIGINT; SIGTERM stops the daemon.");
                term.recv().await;
            }
            (Err(error), Ok(mut int)) => {
                tracing::warn!(%error, "Cannot listen for SIGTERM; only SIGINT stops the daemon.");
                int.recv().await;
            }
            (Err(error), Err(_)) => {
                tracing::warn!(%error, "Cannot listen for signals; stop the daemon with SIGKILL.");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// `dms cleanup`: stops and removes the workloads the node of this home left running.
/// Containers and VMs outlive the daemon on purpose (a restart re-attaches them); this is
/// for when the node goes away for good (the Debian package's removal runs it).
pub async fn cleanup(ctx: &Ctx) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let Ok(info) = dms_crypto::Keystore::open(ctx.home.keys_dir())
        .and_then(|keys| keys.info(&config.node.key))
    else {
        println!(
            "No node key in {}: this home never ran a node; nothing to remove.",
            ctx.home.root().display()
        );
        return Ok(());
    };
    // The daemon holds its store open (locked): that, not a pid file, says it runs. It is
    // held here until the end, so no daemon starts meanwhile.
    let _held = match dms_store::Store::open(config.store.resolve(ctx.home.root())) {
        Err(error) if error.is_locked() => anyhow::bail!(
            "the daemon of this home runs: stop it first (`systemctl stop dms`, or Ctrl-C), \
             or it would re-attach the workloads"
        ),
        Ok(store) => Some(store),
        // An unreadable store: what it recorded cannot matter to what runs.
        Err(_) => None,
    };
    let peer = dms_node::behaviors::resolve(info.did.as_ref()).map_err(anyhow::Error::msg)?.peer;
    let removed = dms_node::remove_workloads(&ctx.home, &config, &peer).await?;
    if removed.is_empty() {
        println!("No workload of this node was running.");
    }
    for what in removed {
        println!("removed {what}");
    }
    Ok(())
}
