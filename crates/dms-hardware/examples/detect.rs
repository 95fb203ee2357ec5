//! Prints what `dms_hardware::detect()` finds as JSON; with `--usage`, one usage sample too.
//!
//! `cargo run -p dms-hardware --example detect`; copy the binary
//! (`target/debug/examples/detect`) to a GPU machine to check NVML there.

use std::time::Instant;

fn main() -> Result<(), serde_json::Error> {
    let started = Instant::now();
    let hardware = dms_hardware::detect();
    let took = started.elapsed();
    println!("{}", serde_json::to_string_pretty(&hardware)?);
    eprintln!("detect() took {took:?}");
    if std::env::args().any(|a| a == "--usage") {
        println!("{}", serde_json::to_string_pretty(&dms_hardware::usage())?);
    }
    Ok(())
}
