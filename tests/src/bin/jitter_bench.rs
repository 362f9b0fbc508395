//! `make bench`: the master's advert timing under a VRRP flood and a large
//! reload, the appliance and keepalived side by side
//! (appliance_tests::bench::jitter says what and why). Prints the table
//! and, with `--append FILE`, adds it to FILE as a section.
//!
//! Usage: `jitter_bench [--seconds N] [--pps N] [--services N]
//! [--stalling APPLIANCE] [--no-keepalived] [--append FILE]`. Runs as
//! root. `--stalling` names the appliance built with its fail points (by
//! default `appliance-failpoints` beside this executable; make bench
//! builds it).

use appliance_tests::bench::jitter::{self, Options};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jitter_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    let mut options = Options {
        appliance: exe.with_file_name("appliance"),
        window: Duration::from_secs(20),
        pps: 100_000,
        services: 300,
        stalling: exe.with_file_name("appliance-failpoints"),
        keepalived: true,
    };
    let mut append: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg}: a value is missing"))
        };
        let number = |text: String| {
            text.parse::<u64>()
                .map_err(|e| format!("{arg} {text}: {e}"))
        };
        match arg.as_str() {
            "--seconds" => options.window = Duration::from_secs(number(value()?)?),
            "--pps" => options.pps = number(value()?)?.max(1),
            "--services" => {
                options.services = usize::try_from(number(value()?)?).map_err(|e| e.to_string())?;
            }
            "--stalling" => options.stalling = value()?.into(),
            "--no-keepalived" => options.keepalived = false,
            "--append" => append = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let rows = jitter::run(&options).map_err(|e| e.to_string())?;
    let section = jitter::table(&options, &rows);
    println!("{section}");
    if let Some(path) = append {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(file, "\n{section}").map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("appended to {}", path.display());
    }
    Ok(())
}
