//! `dms events` and `dms log-level`: the arguments.

use clap::Args;

use super::ActorTarget;

/// `dms events`: the node's recent events, searched by field.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events of this deployment.
    #[arg(long, value_name = "ID")]
    pub deployment: Option<String>,
    /// Only events of this kind: deployment, allocation, bid, capability, executor,
    /// peer, node.
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only events of the last DURATION, e.g. 10m or 2h.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// At most this many events (the newest; at most 1000).
    #[arg(long, short = 'n', default_value_t = 100)]
    pub limit: usize,
    /// Keep printing new events as they are recorded (until interrupted).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Print one JSON object per line instead of columns.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: ActorTarget,
}

/// `dms log-level`: show or change a node's log filter while it runs.
#[derive(Debug, Args)]
pub struct LogLevelArgs {
    /// The new filter, e.g. `debug` or `info,dms_orchestrator=debug`; without it, the
    /// filter in force is shown.
    pub level: Option<String>,
    /// Also ship events to this Elasticsearch from now on (empty: stop shipping). Lasts
    /// until the node stops; `telemetry.elasticsearch_url` is what it starts with.
    #[arg(long, value_name = "URL")]
    pub elasticsearch_url: Option<String>,
    #[command(flatten)]
    pub target: ActorTarget,
}
