//! An allocation's data: its volumes placed on this machine (shared by name among the
//! deployment's allocations here, removed when the last of them ends), its inputs
//! staged before its first start and a task's outputs published when it ends — both
//! through URLs its orchestrator presigns (`dms_protocol::storage`): this machine never
//! holds the user's credentials. Transfers run on tasks the actor owns; a tick tells
//! their progress (every second at first, then every 5 and 15 s).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dms_actor::stateful::Context;
use dms_protocol::storage::{CompleteRequest, InputsRequest, PutFile, PutRequest, UploadMethod};
use dms_storage::transfer::{self, Staging};
use dms_storage::volume::{self, Placed};
use dms_types::units::format_bytes;

use super::machine::Input;
use super::{Allocation, Internal};

/// Longest the orchestrator may take to sign a plan.
const PLAN_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a running workload's sized volumes are measured.
const MEASURE_EVERY: Duration = Duration::from_secs(5);

/// Which allocations use each owned volume directory: one is removed when its last
/// user ends.
#[derive(Default)]
pub(crate) struct VolumeUsers(std::sync::Mutex<BTreeMap<PathBuf, BTreeSet<String>>>);

impl VolumeUsers {
    /// `allocation` uses the owned volumes of `placed`.
    pub fn add(&self, allocation: &str, placed: &[Placed]) {
        let mut users = self.0.lock().expect("volume users lock");
        for host in placed.iter().filter(|v| v.owned).filter_map(|v| v.host.clone()) {
            users.entry(host).or_default().insert(allocation.to_string());
        }
    }

    /// `allocation` is done with `placed`: those no one else uses, to remove.
    pub fn remove(&self, allocation: &str, placed: &[Placed]) -> Vec<Placed> {
        let mut users = self.0.lock().expect("volume users lock");
        let mut unused = Vec::new();
        for volume in placed.iter().filter(|v| v.owned) {
            let Some(host) = &volume.host else { continue };
            let left = users.get_mut(host).map(|set| {
                set.remove(allocation);
                set.len()
            });
            if left.unwrap_or(0) == 0 {
                users.remove(host);
                unused.push(volume.clone());
            }
        }
        unused
    }
}

/// A transfer in progress, for the progress tick.
pub(crate) struct Transfer {
    verb: &'static str,
    done: Arc<AtomicU64>,
    total: AtomicU64,
    started: Instant,
}

impl Transfer {
    fn new(verb: &'static str) -> Arc<Transfer> {
        Arc::new(Transfer {
            verb,
            done: Arc::new(AtomicU64::new(0)),
            total: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// `staging inputs: 12.0 MiB of 40.0 MiB (30 %), 8.5 MiB/s`.
    pub fn describe(&self) -> String {
        let (done, total) = (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed));
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = format_bytes((done as f64 / secs) as u64);
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        let (done, total) = (format_bytes(done), format_bytes(total));
        format!("{}: {done} of {total} ({percent} %), {rate}/s", self.verb)
    }

    /// `staged 40.0 MiB in 1.2 s (33.0 MiB/s)`.
    pub fn finished(&self, verb: &str) -> String {
        let done = self.done.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = format_bytes((done as f64 / secs) as u64);
        format!("{verb} {} in {secs:.1} s ({rate}/s)", format_bytes(done))
    }
}

impl Allocation {
    /// The allocation's volumes on this machine, directories created, and counted as
    /// used by it.
    pub(super) fn place_volumes(&self) -> Result<Vec<Placed>, String> {
        let h = &self.hosted;
        let placed = self
            .shared
            .volumes
            .place(&h.deployment, &h.id, &h.spec.allocation)
            .map_err(|e| e.to_string())?;
        self.shared.volume_users.add(&h.id, &placed);
        Ok(placed)
    }

    /// The allocation is done with its volumes: those no other allocation here uses
    /// are removed.
    pub(super) fn release_volumes(&self) {
        let h = &self.hosted;
        let Ok(placed) = self.shared.volumes.plan(&h.deployment, &h.id, &h.spec.allocation) else {
            return;
        };
        let unused = self.shared.volume_users.remove(&h.id, &placed);
        for (dir, error) in self.shared.volumes.remove(&h.deployment, &unused) {
            tracing::warn!(allocation = %h.id, dir = %dir.display(), %error,
                "Could not remove a volume; its disk is not free until it is deleted.");
        }
    }

    /// Measures the sized volumes in [`MEASURE_EVERY`], if there are any.
    pub(super) fn measure_later(&self, ctx: &mut Context<Internal>) {
        let sized = self.hosted.spec.allocation.volumes.iter().any(|v| v.size.is_some());
        if let (true, Some(execution)) = (sized, self.hosted.execution.clone()) {
            ctx.after(MEASURE_EVERY, Internal::Usage(execution));
        }
    }

    /// Measures the sized volumes of the running `execution` off the actor (a walk of
    /// their files): one over its size stops and fails the workload — a directory has
    /// no quota of its own, so this is how a volume's `size` holds.
    pub(super) fn measure(&self, ctx: &mut Context<Internal>, execution: String) {
        let running = self.hosted.status.state == dms_protocol::AllocationState::Running;
        if !running || self.hosted.execution.as_deref() != Some(&execution) {
            return;
        }
        let h = &self.hosted;
        let Ok(placed) = self.shared.volumes.plan(&h.deployment, &h.id, &h.spec.allocation) else {
            return;
        };
        ctx.spawn(async move {
            let over = tokio::task::spawn_blocking(move || {
                placed.iter().find_map(|v| {
                    let (host, size) = (v.host.as_ref().filter(|_| v.owned)?, v.size?);
                    let used = volume::usage(host);
                    (used > size).then(|| {
                        format!(
                            "the volume at {} holds {}, more than its size {}; the workload was stopped",
                            v.target,
                            format_bytes(used),
                            format_bytes(size)
                        )
                    })
                })
            })
            .await
            .ok()
            .flatten();
            Some(Internal::Measured { execution, over })
        });
    }

    /// Shows the transfer's progress while it runs: every second at first, then less
    /// often (each is an event of the deployment, and its history is bounded).
    pub(super) fn tick(&mut self, ctx: &mut Context<Internal>) -> Option<Input> {
        let transfer = self.transfer.as_ref()?;
        let every = match transfer.started.elapsed().as_secs() {
            0..10 => 1,
            10..60 => 5,
            _ => 15,
        };
        ctx.after(Duration::from_secs(every), Internal::Tick);
        Some(Input::Progress(transfer.describe()))
    }

    /// Stages the inputs on a task: the orchestrator's plan (page by page), checked
    /// against the volumes' sizes, fetched all-or-nothing into paths that never pass
    /// through a link.
    pub(super) fn stage(&mut self, ctx: &mut Context<Internal>) {
        let transfer = self.begin_transfer(ctx, "staging inputs");
        let placed = self.place_volumes();
        let (asker, http) = (Asker::of(self, ctx), self.shared.http.clone());
        ctx.spawn(async move {
            let result = async {
                let placed = placed?;
                let mut fetches = Vec::new();
                let mut from = Some(0);
                while let Some(at) = from {
                    let page = asker.inputs(at).await?;
                    fetches.extend(page.files);
                    from = page.next;
                }
                let files = destinations(&placed, fetches, &transfer)?;
                transfer::stage(&http, files, transfer.done.clone())
                    .await
                    .map_err(|e| e.to_string())
            }
            .await;
            Some(Internal::Input(Input::Staged(result)))
        });
    }

    /// Publishes the outputs on a task: every file under each output (links are not
    /// followed), one at a time — URLs asked for just before they are used, multipart
    /// uploads completed or aborted — with its SHA-256.
    pub(super) fn publish(&mut self, ctx: &mut Context<Internal>) {
        let transfer = self.begin_transfer(ctx, dms_protocol::storage::PUBLISHING);
        let h = &self.hosted;
        let placed = self.shared.volumes.plan(&h.deployment, &h.id, &h.spec.allocation);
        let outputs = h.spec.allocation.outputs.clone();
        let (asker, http) = (Asker::of(self, ctx), self.shared.http.clone());
        ctx.spawn(async move {
            let result = async {
                let placed = placed.map_err(|e| e.to_string())?;
                let files = output_files(&placed, &outputs)?;
                transfer.total.store(files.iter().map(|f| f.2).sum(), Ordering::Relaxed);
                let mut published = Vec::with_capacity(files.len());
                for (path, host, size) in files {
                    published.push(asker.send(&http, path, &host, size, &transfer.done).await?);
                }
                Ok(published)
            }
            .await;
            Some(Internal::Input(Input::Published(result)))
        });
    }

    /// A transfer begins: its progress is told from now on.
    fn begin_transfer(&mut self, ctx: &mut Context<Internal>, verb: &'static str) -> Arc<Transfer> {
        let transfer = Transfer::new(verb);
        self.transfer = Some(transfer.clone());
        ctx.after(Duration::from_secs(1), Internal::Tick);
        transfer
    }
}

/// What a transfer task needs to ask the orchestrator for URLs.
struct Asker {
    actor: dms_actor::Actor,
    to: dms_actor::Handle,
    deployment: String,
    allocation: String,
}

impl Asker {
    fn of(allocation: &Allocation, ctx: &Context<Internal>) -> Asker {
        let h = &allocation.hosted;
        Asker {
            actor: ctx.actor().clone(),
            to: h.orchestrator.clone(),
            deployment: h.deployment.clone(),
            allocation: h.spec.name.clone(),
        }
    }

    async fn ask<R: dms_protocol::Request>(&self, request: &R) -> Result<R::Response, String> {
        dms_protocol::call(&self.actor, &self.to, request, PLAN_TIMEOUT)
            .await
            .map_err(|e| format!("its orchestrator gave no URLs for them: {e}"))
    }

    async fn inputs(&self, from: usize) -> Result<dms_protocol::storage::InputPlan, String> {
        let (deployment, allocation) = (self.deployment.clone(), self.allocation.clone());
        self.ask(&InputsRequest { deployment, allocation, from }).await
    }

    /// Uploads one file (workload `path`, at `host`, `size` bytes) where the
    /// orchestrator says; a multipart upload is completed, or aborted on failure.
    async fn send(
        &self,
        http: &reqwest::Client,
        path: String,
        host: &std::path::Path,
        size: u64,
        done: &Arc<AtomicU64>,
    ) -> Result<dms_protocol::storage::Published, String> {
        let (deployment, allocation) = (self.deployment.clone(), self.allocation.clone());
        let files = vec![PutFile { path: path.clone(), size }];
        let plan = self.ask(&PutRequest { deployment, allocation, files }).await?;
        let upload = plan.uploads.into_iter().next().ok_or("its orchestrator gave no URL")?;
        let sent = transfer::upload(http, host, size, &upload, done).await;
        let UploadMethod::Multipart { upload_id, .. } = &upload.method else {
            return sent.map(|(one, _)| one).map_err(|e| e.to_string());
        };
        let complete = CompleteRequest {
            deployment: self.deployment.clone(),
            allocation: self.allocation.clone(),
            path,
            upload_id: upload_id.clone(),
            abort: sent.is_err(),
            etags: sent.as_ref().map(|(_, etags)| etags.clone()).unwrap_or_default(),
        };
        let completed = self.ask(&complete).await;
        let (one, _) = sent.map_err(|e| e.to_string())?;
        completed.map_err(|e| format!("{}: could not complete the upload: {e}", one.object))?;
        Ok(one)
    }
}

/// Where each object goes on this machine (directories made, never through a link),
/// after checking that each volume can hold what is staged into it on top of what it
/// holds; the total is counted into `transfer`.
fn destinations(
    placed: &[Placed],
    fetches: Vec<dms_protocol::storage::Fetch>,
    transfer: &Transfer,
) -> Result<Vec<Staging>, String> {
    let mut files = Vec::with_capacity(fetches.len());
    let mut per_volume: BTreeMap<String, u64> = BTreeMap::new();
    for fetch in fetches {
        let (volume, rel) = volume::locate(placed, &fetch.to)
            .ok_or_else(|| format!("{} is not inside a volume", fetch.to))?;
        let root = volume.host.as_ref().ok_or_else(|| format!("{} has no directory", fetch.to))?;
        let dest = volume::resolve(root, &rel, true)?;
        *per_volume.entry(volume.target.clone()).or_default() += fetch.size;
        transfer.total.fetch_add(fetch.size, Ordering::Relaxed);
        files.push(Staging { fetch, dest });
    }
    for v in placed {
        let need = per_volume.get(&v.target).copied().unwrap_or(0);
        let (Some(size), Some(host)) = (v.size, v.host.as_ref()) else { continue };
        let held = volume::usage(host);
        if need.saturating_add(held) > size {
            return Err(format!(
                "they need {} in the volume at {}, which holds {} of {}",
                format_bytes(need),
                v.target,
                format_bytes(held),
                format_bytes(size)
            ));
        }
    }
    Ok(files)
}

/// Every file the outputs name: (workload path, host path, size). A file output that
/// does not exist, or any path through a link, is an error; a directory output may be
/// empty, and links inside it are skipped.
fn output_files(
    placed: &[Placed],
    outputs: &[dms_ensemble::model::Output],
) -> Result<Vec<(String, PathBuf, u64)>, String> {
    let mut files = Vec::new();
    for output in outputs {
        let outside = || format!("output {} is not inside a volume", output.from);
        let (volume, rel) =
            volume::locate(placed, output.from.trim_end_matches('/')).ok_or_else(outside)?;
        let root = volume.host.as_ref().ok_or_else(outside)?;
        let host = volume::resolve(root, &rel, false).map_err(|e| format!("output {e}"))?;
        let meta =
            std::fs::symlink_metadata(&host).map_err(|e| format!("output {}: {e}", output.from))?;
        if output.from.ends_with('/') {
            if !meta.is_dir() {
                return Err(format!("output {} is not a directory", output.from));
            }
            for (rel, path, size) in volume::files(&host) {
                files.push((format!("{}{rel}", output.from), path, size));
            }
        } else if meta.is_file() {
            files.push((output.from.clone(), host, meta.len()));
        } else {
            return Err(format!("output {} is not a regular file", output.from));
        }
    }
    Ok(files)
}
