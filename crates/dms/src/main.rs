//! The `dms` command: the daemon (`dms run`) and the CLI that talks to it.
//!
//! The binary is thin: it parses arguments, resolves the home directory and
//! configuration, and calls into the libraries. `dms run` calls [`dms_node::run`];
//! every command about a running daemon goes through its local API ([`client`]).
//!
//! # Module map
//! - [`cli`]: argument definitions.
//! - [`cmd`]: one module per command group.
//! - [`client`]: the HTTP client for the daemon's local API.
//! - [`output`]: table and JSON printing.
//! - [`passphrase`]: reading the keystore passphrase from the environment or a prompt.

mod agent;
mod cli;
mod client;
mod cmd;
mod output;
mod passphrase;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc, with its background thread purging freed pages after ~10 s: after 20,000
/// connection attempts the daemon's RSS comes back near its baseline, where glibc's
/// malloc kept ~60 % more (`hardening.feature`; numbers in the README).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // A command whose output is piped into `head` ends quietly when the pipe closes, as
    // other command-line tools do (Rust ignores SIGPIPE, and printing would panic). The
    // daemon keeps ignoring it: a closed socket must not kill it.
    if !matches!(cli.command, cli::Command::Run { .. }) {
        sigpipe::reset();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
