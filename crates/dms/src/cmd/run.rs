//! `dms run`: the daemon in the foreground.

use std::io::IsTerminal;

use anyhow::Context as _;
use dms_node::config::LogFormat;
use tracing_subscriber::EnvFilter;

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
    init_logging(&config.log.level, config.log.format)?;
    let passphrase = passphrase::read(&config.node.key, false)?;
    dms_node::run(&ctx.home, config, &passphrase, shutdown_signal()).await.map_err(|error| {
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

fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.is_empty() => EnvFilter::try_new(filter).context("RUST_LOG")?,
        _ => EnvFilter::try_new(level)
            .with_context(|| format!("invalid log.level {level:?}: expected a tracing filter"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
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
