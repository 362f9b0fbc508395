//! `make bench`: measures the client-visible failover outage of the
//! appliance and of keepalived side by side, prints the table and writes
//! `docs/benchmarks.md` and every trial's outage as CSV (the samples the
//! `plots` binary draws).
//!
//! Usage: `failover_bench [--page OUT.md] [--csv OUT.csv]` (defaults: the
//! workspace's docs/benchmarks.md and docs/bench-data/failover.csv; a quick
//! run can write elsewhere and leave them be); `TRIALS=N` sets the trials
//! per implementation and scenario. Runs as root.

use appliance_tests::bench::{self, DEFAULT_TRIALS, Options, data, report};
use std::path::Path;
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
    let mut page_path = data::workspace("docs/benchmarks.md");
    let mut csv_path = data::workspace(data::DIR).join(data::FAILOVER);
    data::path_flags(
        std::env::args().skip(1),
        &mut [("--page", &mut page_path), ("--csv", &mut csv_path)],
    )?;
    let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    // target/release/failover_bench -> target/release/appliance
    let appliance = exe.with_file_name("appliance");
    let options = Options { trials, appliance };
    let rows = bench::run(&options).map_err(|e| e.to_string())?;
    println!("{}", report::table(&rows));
    let page = report::page(&bench::machine(&options), &rows);
    write(&page_path, &page)?;
    write(&csv_path, &data::failover_csv(&data::trials(&rows)))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    data::write(path, text).map_err(|e| e.to_string())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
