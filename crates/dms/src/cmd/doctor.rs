//! `dms doctor`: checks whether this host can run the executors.

use dms_executor::doctor::{self, Status};

use super::Ctx;
use crate::cli::Output;

/// Runs every host check, prints them with what to do for each one that did not pass, and
/// fails when a required check failed.
pub async fn doctor(ctx: &Ctx) -> anyhow::Result<()> {
    // The VM check follows the node's `[vm]` settings (defaults when it has no config).
    let config = dms_node::config::load(&ctx.home.config_path()).unwrap_or_default();
    let vm = config.vm.enabled.then(|| {
        let program = dms_node::config::VmConfig::program;
        let choice = config.vm.choice().unwrap_or_default();
        (choice, program(&config.vm.qemu), program(&config.vm.firecracker))
    });
    let options = doctor::Options {
        docker_socket: dms_executor::docker::default_socket(),
        data_dirs: vec![ctx.home.root().to_owned()],
        vm,
    };
    let waiting = crate::output::Spinner::new(
        "checking Docker, cgroups, KVM, the hypervisor, TUN, GPUs and disk",
        ctx.output == Output::Table,
    );
    let checks = doctor::run(&options).await;
    drop(waiting);
    match ctx.output {
        Output::Json => crate::output::json(&checks)?,
        Output::Table => {
            let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
            for check in &checks {
                let mark = match check.status {
                    Status::Ok => "ok  ",
                    Status::Warn => "warn",
                    Status::Fail => "FAIL",
                    Status::Skip => "skip",
                };
                println!("[{mark}] {:<width$}  {}", check.name, check.summary);
                if let Some(fix) = &check.fix {
                    println!("       {:<width$}  fix: {fix}", "");
                }
            }
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed: apply the fixes shown above");
    }
    Ok(())
}
