//! Runs the benchmarks and prints the report as JSON, progress on stderr.
//!
//! `cargo run -p dms-hardware --example bench -- [DIR] [BUDGET_SECS]`

use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut options = dms_hardware::Options::default();
    if let Some(dir) = args.next() {
        options.dir = dir.into();
    }
    if let Some(secs) = args.next() {
        options.total_budget = Duration::from_secs_f64(secs.parse()?);
    }
    let mut last = None;
    let report = dms_hardware::run_benchmarks(&options, |p| {
        // One line per step and per tenth of it.
        let key = (p.step, (p.step_fraction * 10.0) as u8);
        if last != Some(key) {
            last = Some(key);
            eprintln!("{p}");
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
