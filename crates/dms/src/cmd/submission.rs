//! What `dms deploy` submits: the checked ensemble, the local files it names (WebAssembly
//! modules, small VM images) read and sent along, and this environment's S3 credentials.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use dms_protocol::node::NewDeployment;

/// Largest total size of the modules and VM images sent with a deployment (the message
/// limit is 1 MiB).
const MAX_MODULES_BYTES: usize = 700 * 1024;

/// Loads and checks the ensemble, and reads the modules and VM images it names by path.
pub(super) fn request(file: &Path, timeout: Option<Duration>) -> anyhow::Result<NewDeployment> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.display().to_string();
    let loaded = match dms_ensemble::load(&text) {
        Ok(loaded) => loaded,
        Err(error) => {
            let diagnostics = error.diagnostics();
            eprint!("{}", dms_ensemble::error::render_all(&diagnostics, &name));
            bail!("{name} is not a valid ensemble (see `dms validate {name}`)");
        }
    };
    let base = file.parent().unwrap_or(Path::new("."));
    let mut modules = BTreeMap::new();
    let mut total = 0;
    for (alloc, allocation) in &loaded.ensemble.allocations {
        let x = &allocation.execution;
        // WebAssembly modules go by allocation name, VM images by `<allocation>/<image>`.
        let files = [
            (alloc.clone(), "module", &x.module),
            (format!("{alloc}/kernel"), "kernel", &x.kernel),
            (format!("{alloc}/initrd"), "initrd", &x.initrd),
            (format!("{alloc}/rootfs"), "rootfs", &x.rootfs),
        ];
        for (key, what, location) in files {
            let Some(location) = location else { continue };
            let remote = location.starts_with("http://") || location.starts_with("https://");
            if remote || allocation.in_volume(location).is_some() {
                continue; // Downloaded, or staged into a volume, by the provider.
            }
            let path = base.join(location);
            let bytes = std::fs::read(&path).with_context(|| {
                format!("allocation {alloc}: cannot read {what} {} (paths are relative to the ensemble file)", path.display())
            })?;
            total += bytes.len();
            if total > MAX_MODULES_BYTES {
                bail!(
                    "allocation {alloc}: {what} {}: the local files sent along add up to more \
                     than {} KiB, too large for one message; serve it over http(s) and give \
                     its URL as `{what}`",
                    path.display(),
                    MAX_MODULES_BYTES / 1024
                );
            }
            modules.insert(key, base64::engine::general_purpose::STANDARD.encode(bytes));
        }
    }
    let credentials = (!loaded.ensemble.storage.is_empty()).then(credentials).flatten();
    Ok(NewDeployment {
        ensemble: loaded.ensemble,
        modules,
        timeout_ms: timeout.map(|t| t.as_millis() as u64),
        credentials,
    })
}

/// The S3 credentials of this environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`), sent to this node only; its orchestrator presigns what
/// providers need and the keys never leave this machine.
fn credentials() -> Option<dms_protocol::storage::Credentials> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Some(dms_protocol::storage::Credentials {
        access_key_id: var("AWS_ACCESS_KEY_ID")?,
        secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
        session_token: var("AWS_SESSION_TOKEN"),
    })
}
