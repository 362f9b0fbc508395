//! `make bench`: measures the client-visible failover outage of the
//! appliance and of keepalived side by side, prints the table and writes
//! `docs/benchmarks.md`.
//!
//! Usage: `failover_bench [OUT.md]` (default: docs/benchmarks.md of the
//! workspace); `TRIALS=N` sets the trials per implementation and scenario.
//! Runs as root.

use appliance_tests::bench::{self, DEFAULT_TRIALS, Options, report};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let trials = match std::env::var("TRIALS") {
        Ok(n) => n
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("TRIALS={n}: expected a positive integer"))?,
        Err(_) => DEFAULT_TRIALS,
    };
    let out = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md"),
        PathBuf::from,
    );
    let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    // target/release/failover_bench -> target/release/appliance
    let appliance = exe.with_file_name("appliance");
    let options = Options { trials, appliance };
    let rows = bench::run(&options).map_err(|e| e.to_string())?;
    println!("{}", report::table(&rows));
    let page = report::page(&bench::machine(&options), &rows);
    std::fs::write(&out, page).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
