//! `[vm]`: the section's struct, its defaults and checks.

use serde::{Deserialize, Serialize};

use super::Error;

/// `[vm]`: whether this node runs VM allocations, and with which hypervisor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VmConfig {
    /// Run VM allocations when a hypervisor is found.
    pub enabled: bool,
    /// `auto`, `qemu` or `firecracker`.
    pub backend: String,
    /// QEMU's program (empty: `qemu-system-x86_64` on `PATH`).
    pub qemu: String,
    /// Firecracker's program (empty: `firecracker` on `PATH`).
    pub firecracker: String,
}

impl Default for VmConfig {
    fn default() -> VmConfig {
        VmConfig {
            enabled: true,
            backend: "auto".into(),
            qemu: String::new(),
            firecracker: String::new(),
        }
    }
}

impl VmConfig {
    /// Checks the backend's name.
    pub fn validate(&self) -> Result<(), Error> {
        self.choice().map(drop)
    }

    /// The hypervisor asked for.
    pub fn choice(&self) -> Result<dms_executor::vm::Choice, Error> {
        use dms_executor::vm::Choice;
        match self.backend.trim() {
            "" | "auto" => Ok(Choice::Auto),
            "qemu" => Ok(Choice::Qemu),
            "firecracker" => Ok(Choice::Firecracker),
            other => {
                Err(Error::Rule(format!("vm.backend: {other:?} is not auto, qemu or firecracker")))
            }
        }
    }

    /// A configured program path, or none for the one on `PATH`.
    pub fn program(path: &str) -> Option<std::path::PathBuf> {
        Some(path.trim()).filter(|p| !p.is_empty()).map(std::path::PathBuf::from)
    }
}
