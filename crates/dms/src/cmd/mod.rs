//! One module per command group, and the context they share.

mod actor;
mod agent;
mod bench;
mod cap;
mod config;
mod contract;
mod deploy;
mod devnet;
mod devnet_net;
mod devnet_ops;
mod devnet_place;
mod devnet_ssh;
mod devnet_start;
mod docs_gen;
mod doctor;
mod ensemble;
mod events;
mod failover;
mod info;
mod key;
mod outputs;
mod paging;
mod resources;
mod run;
mod sink_bench;
mod status;
mod submission;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::CommandFactory;
use dms_node::{Config, Home};

use crate::cli::{self, Cli, Command, Output};

/// What every command needs: where the home is, how to print, and flag overrides.
pub struct Ctx {
    /// The dms home.
    pub home: Home,
    /// Output format.
    pub output: Output,
    /// `--api-addr` / `DMS_API_ADDR`.
    pub api_addr: Option<SocketAddr>,
    /// `--api-socket` / `DMS_API_SOCKET`.
    pub api_socket: Option<PathBuf>,
}

impl Ctx {
    fn new(cli: &Cli) -> anyhow::Result<Ctx> {
        let root = match &cli.global.home {
            Some(home) => home.clone(),
            None => Home::default_root()
                .context("cannot find the home directory: set --home or DMS_HOME")?,
        };
        Ok(Ctx {
            home: Home::new(root),
            output: cli.global.output,
            api_addr: cli.global.api_addr,
            api_socket: cli.global.api_socket.clone(),
        })
    }

    /// The effective configuration: file (or defaults), environment, then flags.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = dms_node::config::load(&self.home.config_path())?;
        if let Some(addr) = self.api_addr {
            config.api.addr = addr;
        }
        Ok(config)
    }

    /// Where the daemon's API is: the flag, or api.addr from the configuration.
    pub fn api_addr(&self) -> anyhow::Result<SocketAddr> {
        match self.api_addr {
            Some(addr) => Ok(addr),
            None => Ok(self.config()?.api.addr),
        }
    }

    /// A client of this home's daemon: on its socket when that exists and no address
    /// was given, else at [`Ctx::api_addr`] with the local API token.
    pub fn api_client(&self) -> anyhow::Result<crate::client::ApiClient> {
        self.api_client_at(self.api_addr()?)
    }

    /// [`Ctx::api_client`] for the daemon at `addr` (its socket is still preferred
    /// unless --api-addr was given): `DMS_API_TOKEN`, else (for a loopback address)
    /// the token the daemon of this home wrote.
    pub fn api_client_at(&self, addr: SocketAddr) -> anyhow::Result<crate::client::ApiClient> {
        use crate::client::{ApiClient, Target};
        if let Some(socket) = self.api_socket() {
            return ApiClient::new(Target::Unix(socket), None);
        }
        // The home's token goes only to a daemon on this machine (it would travel in
        // clear to a remote one); DMS_API_TOKEN is sent wherever it is asked to go.
        let home_token = addr.ip().is_loopback().then(|| self.home.token()).flatten();
        let token =
            std::env::var("DMS_API_TOKEN").ok().filter(|t| !t.trim().is_empty()).or(home_token);
        ApiClient::new(Target::Tcp(addr), token)
    }

    /// The API socket to use: --api-socket, else (without --api-addr) this home's
    /// daemon's socket when it exists.
    fn api_socket(&self) -> Option<PathBuf> {
        if let Some(socket) = &self.api_socket {
            return Some(socket.clone());
        }
        if self.api_addr.is_some() {
            return None;
        }
        let socket = self.home.socket_path(&self.config().ok()?.api)?;
        socket.exists().then_some(socket)
    }

    /// Creates the home and a commented default config file on first use.
    pub fn init_home(&self) -> anyhow::Result<()> {
        self.home
            .ensure()
            .with_context(|| format!("cannot create dms home {}", self.home.root().display()))?;
        dms_node::config::init(&self.home.config_path())?;
        Ok(())
    }
}

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx::new(&cli)?;
    match cli.command {
        Command::Run { listen, bootstrap } => run::run(&ctx, listen, bootstrap).await,
        Command::Info => info::info(&ctx).await,
        Command::Dashboard { url } => info::dashboard(&ctx, url).await,
        Command::Cleanup => run::cleanup(&ctx).await,
        Command::Status { watch, target } => status::status(&ctx, watch, &target).await,
        Command::Key(command) => key::key(&ctx, command),
        Command::Cap(command) => cap::cap(&ctx, command).await,
        Command::Actor(command) => actor::actor(&ctx, command).await,
        Command::Peers(command) => actor::peers(&ctx, command).await,
        Command::Onboard { command: Some(cli::OnboardCommand::Status { target }), .. } => {
            resources::status(&ctx, &target).await
        }
        Command::Onboard { command: None, amounts } => resources::onboard(&ctx, amounts).await,
        Command::Offboard { target } => resources::offboard(&ctx, &target).await,
        Command::Benchmark { budget, dir, target } => {
            resources::benchmark(&ctx, &budget, dir, &target).await
        }
        Command::Hardware { usage, target } => resources::hardware(&ctx, usage, &target).await,
        Command::Deploy { file, plan, deadline, detach, target } => {
            deploy::deploy(&ctx, &file, plan, deadline.as_deref(), detach, &target).await
        }
        Command::Bench(cli::BenchCommand::Deploy { runs, dead_sink: true, target }) => {
            sink_bench::dead_sink(&ctx, runs, &target).await
        }
        Command::Bench(cli::BenchCommand::Deploy { runs, dead_sink: false, target }) => {
            bench::deploy(&ctx, runs, &target).await
        }
        Command::Bench(cli::BenchCommand::Failover { kills, redundancy, devnet_dir, target }) => {
            failover::bench(&ctx, kills, redundancy, &devnet_dir, &target).await
        }
        Command::Bench(cli::BenchCommand::SignedCalls { runs, devnet_dir }) => {
            agent::bench(&ctx, runs, &devnet_dir)
        }
        Command::Deployments(command) => deploy::deployments(&ctx, command).await,
        Command::Contract(command) => contract::contract(&ctx, command).await,
        Command::Events(args) => events::events(&ctx, args).await,
        Command::LogLevel(args) => events::log_level(&ctx, args).await,
        Command::Devnet(command) => {
            tokio::task::spawn_blocking(move || devnet_ops::devnet(&ctx, command)).await?
        }
        Command::Config(command) => config::config(&ctx, command),
        Command::Agent(command) => agent::agent(&ctx, command).await,
        Command::Doctor => doctor::doctor(&ctx).await,
        Command::Validate { file } => ensemble::validate(&ctx, &file),
        Command::Scaffold { executor, out } => ensemble::scaffold(executor, out.as_deref()),
        Command::Translate { file, from, out } => {
            ensemble::translate(&ctx, &file, from, out.as_deref())
        }
        Command::Version => version(&ctx),
        Command::DocsGen { out } => docs_gen::docs_gen(&out),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "dms", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn version(ctx: &Ctx) -> anyhow::Result<()> {
    match ctx.output {
        Output::Json => crate::output::json(&serde_json::json!({ "version": dms_node::VERSION })),
        Output::Table => {
            println!("dms {}", dms_node::VERSION);
            Ok(())
        }
    }
}
