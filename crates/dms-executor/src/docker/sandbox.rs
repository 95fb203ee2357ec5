//! The sandbox of an execution that joins a deployment network: a container that only
//! holds the network namespace, so the namespace exists (and gets its interface through
//! [`Network::attach`](crate::Network)) before the workload's first instruction. The
//! workload then shares it (`network_mode: container:<sandbox>`). The sandbox carries
//! what Docker only allows on the namespace's owner: `/etc/hosts` entries and published
//! ports.
//!
//! Its image, `dms/pause:1`, is imported on first use from a 129-byte static x86_64
//! program that loops on `pause(2)` (no registry needed, no CPU used).

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, RemoveContainerOptions, StartContainerOptions,
};
use futures::StreamExt as _;
use tracing::{info, warn};

use super::{backend_error, body, status};
use crate::error::{Error, Result};
use crate::spec::{LABEL_ROLE, Network, Spec};

/// The sandbox image.
pub const IMAGE: &str = "dms/pause:1";
/// The value of [`LABEL_ROLE`] on sandboxes.
pub const ROLE: &str = "sandbox";

/// A static ELF for x86_64 Linux: one loadable segment whose code is
/// `mov eax, 34 (pause); syscall; jmp back`.
fn pause_elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const CODE: [u8; 9] = [0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7];
    let size = (64 + 56 + CODE.len()) as u64;
    let mut elf = Vec::with_capacity(size as usize);
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // executable
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // x86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(BASE + 120).to_le_bytes()); // entry: the code
    elf.extend_from_slice(&64u64.to_le_bytes()); // program headers
    elf.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    elf.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 0, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // read + execute
    for word in [0, BASE, BASE, size, size, 0x1000] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.extend_from_slice(&CODE);
    elf
}

/// The image's root filesystem: `/pause`.
fn rootfs() -> Result<Vec<u8>> {
    let elf = pause_elf();
    let mut header = tar::Header::new_ustar();
    header.set_size(elf.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    let mut archive = tar::Builder::new(Vec::new());
    let packed = archive
        .append_data(&mut header, "pause", elf.as_slice())
        .and_then(|()| archive.into_inner());
    packed.map_err(|e| Error::InvalidSpec(format!("cannot pack the sandbox image: {e}")))
}

/// Imports [`IMAGE`] unless the engine has it.
pub async fn ensure_image(docker: &Docker) -> Result<()> {
    if std::env::consts::ARCH != "x86_64" {
        return Err(Error::Refused(format!(
            "deployment networks need the sandbox program, built for x86_64 only; this \
             machine is {}",
            std::env::consts::ARCH
        )));
    }
    match docker.inspect_image(IMAGE).await {
        Ok(_) => return Ok(()),
        Err(e) if status(&e) == Some(404) => {}
        Err(e) => return Err(backend_error("inspect image", e)),
    }
    let (repo, tag) = IMAGE.split_once(':').unwrap_or((IMAGE, "latest"));
    let options = CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some(repo.into()),
        tag: Some(tag.into()),
        ..CreateImageOptions::default()
    };
    let body = bollard::body_full(rootfs()?.into());
    let mut progress = docker.create_image(Some(options), Some(body), None);
    while let Some(step) = progress.next().await {
        step.map_err(|e| backend_error("import the sandbox image", e))?;
    }
    info!(image = IMAGE, "Sandbox image imported.");
    Ok(())
}

/// Creates and starts the sandbox of `spec`, then gives its namespace the interface;
/// returns its container id. On any failure the sandbox is removed again.
pub async fn start(
    docker: &Docker,
    spec: &Spec,
    network: &Network,
    scope: &str,
    name: &str,
) -> Result<String> {
    ensure_image(docker).await?;
    let mut labels = body::labels(spec, scope);
    labels.insert(LABEL_ROLE.into(), ROLE.into());
    let (exposed, bindings) = body::ports(&spec.ports);
    let hosts = network.hosts.iter().map(|(name, ip)| format!("{name}:{ip}")).collect();
    let create = ContainerCreateBody {
        image: Some(IMAGE.into()),
        entrypoint: Some(vec!["/pause".into()]),
        labels: Some(labels),
        exposed_ports: exposed,
        host_config: Some(HostConfig {
            extra_hosts: Some(hosts),
            port_bindings: bindings,
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let options = CreateContainerOptions { name: Some(name.into()), ..Default::default() };
    let id = docker
        .create_container(Some(options), create)
        .await
        .map_err(|e| backend_error("create the sandbox", e))?
        .id;
    let started = async {
        docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .map_err(|e| backend_error("start the sandbox", e))?;
        let pid = docker
            .inspect_container(&id, None)
            .await
            .map_err(|e| backend_error("inspect the sandbox", e))?
            .state
            .and_then(|s| s.pid)
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|pid| *pid > 0)
            .ok_or_else(|| Error::Backend {
                backend: "docker",
                operation: "inspect the sandbox",
                message: "the sandbox has no process".into(),
            })?;
        (network.attach)(pid).await.map_err(Error::Network)
    };
    match started.await {
        Ok(()) => Ok(id),
        Err(e) => {
            let options = RemoveContainerOptions { force: true, ..Default::default() };
            if let Err(cleanup) = docker.remove_container(&id, Some(options)).await {
                warn!(sandbox = %id, error = %cleanup, "Cannot remove a sandbox that failed.");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_program_is_a_129_byte_elf_whose_entry_is_its_code() {
        let elf = pause_elf();
        assert_eq!(elf.len(), 129);
        assert_eq!(&elf[..4], b"\x7fELF");
        let entry = u64::from_le_bytes(elf[24..32].try_into().expect("8 bytes"));
        assert_eq!(entry - 0x40_0000, 120);
        assert_eq!(elf[120], 0xb8, "mov eax, imm32");
        assert!(rootfs().expect("packs").len() >= 1024);
    }
}
