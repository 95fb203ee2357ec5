//! Volumes on the provider's disk: `<volumes_dir>/<deployment>/<name>` for a named
//! volume (`deployment.volumes_dir`, default `$DMS_HOME/db/volumes`; shared by the
//! deployment's allocations on this node that name it, kept across restarts of the
//! allocation, removed when the last of them ends), a scratch directory per allocation
//! for a WebAssembly `tmpfs` (a container's is real memory), and host paths for `bind`
//! only under the paths the provider allows.
//!
//! A volume's content is the workload's, and the workload is not trusted: the provider
//! reads and writes inside a volume only through [`resolve`], which refuses a path any
//! part of which is a symbolic link, so a planted link cannot make it read or write a
//! host file outside the volume.

use std::path::{Path, PathBuf};

use dms_ensemble::model::{Allocation, Executor, VolumeKind};

use crate::Error;

/// One volume of an allocation, placed on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The path inside the workload.
    pub target: String,
    /// The host directory (`None`: a container's memory-backed tmpfs).
    pub host: Option<PathBuf>,
    /// Mounted read-only.
    pub read_only: bool,
    /// Its size limit, bytes.
    pub size: Option<u64>,
    /// The directory is this deployment's to remove (not a host path it was lent).
    pub owned: bool,
}

/// The volumes directory of a provider.
#[derive(Clone, Debug)]
pub struct Volumes {
    root: PathBuf,
    /// Host paths a `bind` volume may name (itself or below).
    bind_paths: Vec<PathBuf>,
}

impl Volumes {
    /// Volumes under `root`, binds allowed under `bind_paths`.
    pub fn new(root: impl Into<PathBuf>, bind_paths: Vec<PathBuf>) -> Volumes {
        Volumes { root: root.into(), bind_paths }
    }

    /// The directory of a deployment's volumes.
    pub fn deployment_dir(&self, deployment: &str) -> PathBuf {
        self.root.join(deployment)
    }

    /// [`Volumes::plan`], with the directories created.
    pub fn place(
        &self,
        deployment: &str,
        allocation_id: &str,
        allocation: &Allocation,
    ) -> Result<Vec<Placed>, Error> {
        let placed = self.plan(deployment, allocation_id, allocation)?;
        for host in placed.iter().filter(|v| v.owned).filter_map(|v| v.host.as_ref()) {
            std::fs::create_dir_all(host)
                .map_err(|e| Error::Volume(format!("{}: {e}", host.display())))?;
        }
        Ok(placed)
    }

    /// Where each volume of `allocation` (id `allocation_id` in `deployment`) lives; a
    /// bind outside the allowed paths is refused.
    pub fn plan(
        &self,
        deployment: &str,
        allocation_id: &str,
        allocation: &Allocation,
    ) -> Result<Vec<Placed>, Error> {
        for id in [deployment, allocation_id] {
            if !plain_name(id) {
                return Err(Error::Volume(format!("{id:?} cannot name a directory")));
            }
        }
        let dir = self.deployment_dir(deployment);
        let mut placed = Vec::with_capacity(allocation.volumes.len());
        for (i, volume) in allocation.volumes.iter().enumerate() {
            let size = volume.size.map(|s| s.0);
            let (host, owned) = match volume.kind {
                VolumeKind::Volume => {
                    let name = volume.source.as_deref().unwrap_or("default");
                    if !plain_name(name) {
                        return Err(Error::Volume(format!("{name:?} is not a volume name")));
                    }
                    (Some(dir.join(name)), true)
                }
                VolumeKind::Tmpfs if allocation.executor == Executor::Docker => (None, true),
                VolumeKind::Tmpfs => (Some(dir.join(format!(".tmpfs-{allocation_id}-{i}"))), true),
                VolumeKind::Bind => {
                    let source = PathBuf::from(volume.source.as_deref().unwrap_or_default());
                    self.check_bind(&source)?;
                    (Some(source), false)
                }
            };
            placed.push(Placed {
                target: volume.target.clone(),
                host,
                read_only: volume.read_only,
                size,
                owned,
            });
        }
        Ok(placed)
    }

    fn check_bind(&self, source: &Path) -> Result<(), Error> {
        bind_allowed(&self.bind_paths, source).map_err(Error::Volume)
    }

    /// Removes the directories of `placed` this deployment owns; the deployment's
    /// directory too once it is empty.
    /// What could not be removed (a file a container left that this process may not
    /// delete), with why; a directory already gone is not a failure.
    pub fn remove(&self, deployment: &str, placed: &[Placed]) -> Vec<(PathBuf, std::io::Error)> {
        let mut failed = Vec::new();
        for host in placed.iter().filter(|v| v.owned).filter_map(|v| v.host.as_ref()) {
            match std::fs::remove_dir_all(host) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    failed.push((host.clone(), e))
                }
                _ => {}
            }
        }
        let _ = std::fs::remove_dir(self.deployment_dir(deployment));
        failed
    }

    /// Removes the volumes of every deployment not in `live` (after a crash: what no
    /// recovered allocation uses); how many deployments' volumes went. Only directories
    /// named like deployments (`d-<hex>`) are touched, whatever else the directory holds.
    pub fn sweep(&self, live: &std::collections::BTreeSet<String>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return 0 };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let deployment = name.strip_prefix("d-").is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if deployment && !live.contains(&name) && std::fs::remove_dir_all(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }
}

/// Whether a `bind` volume may name host path `source` on a provider that allows
/// `bind_paths` (each path itself or below it; absolute, without `..`), or why not.
pub fn bind_allowed(bind_paths: &[PathBuf], source: &Path) -> Result<(), String> {
    let allowed = source.is_absolute()
        && !source.components().any(|c| c == std::path::Component::ParentDir)
        && bind_paths.iter().any(|p| source.starts_with(p));
    if allowed {
        return Ok(());
    }
    let paths: Vec<String> = bind_paths.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "a bind mount of {} is not allowed on this provider (deployment.bind_paths allows {})",
        source.display(),
        if paths.is_empty() { "none".to_string() } else { paths.join(", ") }
    ))
}

/// A name that is one plain path component: not empty, no `/`, not starting with `.`.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.starts_with('.') && !name.contains('\0')
}

/// The volume that holds workload path `path` (the one mounted deepest) and the path
/// below its target; `None` when no volume with a host directory holds it, or the path
/// climbs (`..`).
pub fn locate<'a>(placed: &'a [Placed], path: &str) -> Option<(&'a Placed, String)> {
    let volume = placed
        .iter()
        .filter(|v| {
            let target = v.target.trim_end_matches('/');
            path.strip_prefix(target).is_some_and(|r| r.is_empty() || r.starts_with('/'))
        })
        .max_by_key(|v| v.target.len())?;
    let rest = path[volume.target.trim_end_matches('/').len()..].trim_start_matches('/');
    if rest.split('/').any(|p| p == ".." || p == ".") {
        return None;
    }
    volume.host.as_ref()?;
    Some((volume, rest.to_string()))
}

/// The host path of workload path `path`, through the volume that holds it (see
/// [`locate`]); not checked for links (the provider goes through [`resolve`]).
#[cfg(test)]
fn host_path(placed: &[Placed], path: &str) -> Option<PathBuf> {
    let (volume, rest) = locate(placed, path)?;
    let host = volume.host.as_ref()?;
    Some(if rest.is_empty() { host.clone() } else { host.join(rest) })
}

/// The host path of `rel` below volume directory `root`, refusing it when any part
/// below the root is a symbolic link or not a directory where one is needed; with
/// `create`, missing directories are made (one by one, never through a link). The last
/// part may be missing; if it exists it must not be a link.
pub fn resolve(root: &Path, rel: &str, create: bool) -> Result<PathBuf, String> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let mut path = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        if *part == ".." || *part == "." {
            return Err(format!("{rel}: climbs out of its volume"));
        }
        path.push(part);
        let last = i + 1 == parts.len();
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "{rel}: {part} is a symbolic link, which is not followed out of a volume"
                ));
            }
            Ok(meta) if !last && !meta.is_dir() => {
                return Err(format!("{rel}: {part} is not a directory"));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !last && create {
                    std::fs::create_dir(&path).map_err(|e| format!("{rel}: {e}"))?;
                } else if !last {
                    return Err(format!("{rel}: {part} does not exist"));
                }
            }
            Err(e) => return Err(format!("{rel}: {e}")),
        }
    }
    Ok(path)
}

/// Bytes used under `dir` (files only; links are not followed).
pub fn usage(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .follow_root_links(false)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Every regular file under host `dir` with its path relative to it (links are not
/// followed: a workload cannot publish what lies outside its volume).
pub fn files(dir: &Path) -> Vec<(String, PathBuf, u64)> {
    walkdir::WalkDir::new(dir)
        .follow_root_links(false)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(dir).ok()?.to_str()?.to_string();
            let size = e.metadata().ok()?.len();
            (!rel.ends_with(".dms-partial")).then(|| (rel, e.path().to_path_buf(), size))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(target: &str, host: &str) -> Placed {
        Placed {
            target: target.into(),
            host: Some(host.into()),
            read_only: false,
            size: None,
            owned: true,
        }
    }

    #[test]
    fn workload_paths_map_through_the_deepest_volume_and_never_climb_out() {
        let v = [placed("/data", "/v/work"), placed("/data/in", "/v/in")];
        assert_eq!(host_path(&v, "/data/out/x"), Some("/v/work/out/x".into()));
        assert_eq!(host_path(&v, "/data/in/a.txt"), Some("/v/in/a.txt".into()));
        assert_eq!(host_path(&v, "/data"), Some("/v/work".into()));
        assert_eq!(host_path(&v, "/database/x"), None);
        assert_eq!(host_path(&v, "/data/../etc/passwd"), None);
    }

    #[test]
    fn links_planted_in_a_volume_are_never_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, outside) = (dir.path().join("vol"), dir.path().join("outside"));
        std::fs::create_dir_all(&root).expect("root");
        std::fs::create_dir_all(&outside).expect("outside");
        std::os::unix::fs::symlink(&outside, root.join("out")).expect("dir link");
        std::os::unix::fs::symlink("/etc/hostname", root.join("secret")).expect("file link");
        assert!(
            resolve(&root, "out/result.txt", true).expect_err("dir link").contains("symbolic link")
        );
        assert!(resolve(&root, "secret", false).expect_err("file link").contains("symbolic link"));
        assert!(resolve(&root, "../x", true).is_err());
        let made = resolve(&root, "in/a/b.txt", true).expect("plain path");
        assert_eq!(made, root.join("in/a/b.txt"));
        assert!(root.join("in/a").is_dir() && !outside.join("a").exists());
        assert!(files(&root).iter().all(|(rel, _, _)| rel != "secret"), "links are not files");
    }

    #[test]
    fn sweeping_touches_only_deployment_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["d-00ff", "d-live", "d-0abc", "keep-me"] {
            std::fs::create_dir_all(dir.path().join(name)).expect("dir");
        }
        let volumes = Volumes::new(dir.path(), Vec::new());
        let live = ["d-0abc".to_string()].into();
        assert_eq!(volumes.sweep(&live), 1);
        let left: Vec<_> =
            ["d-live", "d-0abc", "keep-me"].iter().map(|n| dir.path().join(n).exists()).collect();
        assert_eq!(left, [true, true, true]);
        let id = Allocation::clone(&sample());
        assert!(volumes.plan("../etc", "x", &id).is_err(), "ids are not paths");
    }

    fn sample() -> Allocation {
        serde_json::from_value(serde_json::json!({
            "type": "task", "executor": "wasm",
            "resources": {"cpu": {"cores": 1}, "ram": "64MiB"},
            "execution": {"module": "m.wasm"},
            "volumes": [{"source": "work", "target": "/data"}],
        }))
        .expect("allocation")
    }

    #[test]
    fn binds_only_under_allowed_paths() {
        let volumes = Volumes::new("/tmp/v", vec!["/srv/data".into()]);
        assert!(volumes.check_bind(Path::new("/srv/data/set1")).is_ok());
        for refused in ["/etc", "/srv/data/../../etc", "srv/data", "/srv/database"] {
            assert!(volumes.check_bind(Path::new(refused)).is_err(), "{refused}");
        }
    }
}
