use std::fs;
use std::path::Path;

use super::*;

fn card(root: &Path, name: &str, attrs: &[(&str, &str)]) {
    let device = root.join(name).join("device");
    fs::create_dir_all(&device).expect("create fake card dir");
    for (attr, value) in attrs {
        fs::write(device.join(attr), format!("{value}\n")).expect("write fake attribute");
    }
}

#[test]
fn reads_amd_and_intel_cards_from_sysfs_and_skips_connectors() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    card(
        root,
        "card0",
        &[
            ("vendor", "0x1002"),
            ("device", "0x73bf"),
            ("product_name", "Radeon RX 6900 XT"),
            ("mem_info_vram_total", "17163091968"),
        ],
    );
    card(root, "card0-DP-1", &[("vendor", "0x1002")]);
    card(root, "card1", &[("vendor", "0x8086"), ("device", "0x9a49")]);
    card(root, "card2", &[("vendor", "0x10de")]);
    card(root, "renderD128", &[("vendor", "0x1002")]);
    #[cfg(unix)]
    std::os::unix::fs::symlink("/nonexistent/drivers/amdgpu", root.join("card0/device/driver"))
        .expect("symlink driver");

    let cards = drm_cards(root);
    assert_eq!(cards.iter().map(|c| c.number).collect::<Vec<_>>(), [0, 1, 2]);
    // Numbered after two NVIDIA GPUs.
    let gpus: Vec<Gpu> = sysfs_gpus(&cards, 2).into_iter().map(|(_, gpu)| gpu).collect();
    assert_eq!(gpus.len(), 2, "NVIDIA cards come from NVML, not sysfs: {gpus:?}");
    assert_eq!(gpus[0].index, 2);
    assert_eq!(gpus[0].drm_card, Some(0));

    assert_eq!(gpus[0].vendor, GpuVendor::Amd);
    assert_eq!(gpus[0].name, "Radeon RX 6900 XT");
    assert_eq!(gpus[0].memory_total_bytes, Some(17_163_091_968));
    #[cfg(unix)]
    assert_eq!(gpus[0].driver.as_deref(), Some("amdgpu"));

    assert_eq!((gpus[1].index, gpus[1].drm_card), (3, Some(1)));
    assert_eq!(gpus[1].vendor, GpuVendor::Intel);
    assert_eq!(gpus[1].name, "Intel GPU 0x9a49");
    assert_eq!(gpus[1].memory_total_bytes, None);

    let resource = gpus[0].to_resource();
    assert_eq!((resource.index, resource.vendor), (2, GpuVendor::Amd));
    assert_eq!(
        (resource.model.as_str(), resource.vram_bytes),
        ("Radeon RX 6900 XT", 17_163_091_968)
    );
    assert_eq!(gpus[1].to_resource().vram_bytes, 0);
}

#[test]
fn a_missing_drm_root_gives_no_cards() {
    assert!(drm_cards(Path::new("/nonexistent/sys/class/drm")).is_empty());
}
