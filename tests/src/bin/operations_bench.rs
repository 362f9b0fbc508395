//! `make bench`: the probes a client loses while the master is handed over
//! or restarted, the appliance and keepalived side by side
//! (appliance_tests::bench::operations says what and how). Prints the
//! table and, with `--append FILE`, adds it to FILE as a section.
//!
//! Usage: `operations_bench [--trials N] [--append FILE]`. Runs as root.

use appliance_tests::bench::operations::{self, Options};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("operations_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    let mut options = Options {
        trials: 5,
        appliance: exe.with_file_name("appliance"),
    };
    let mut append: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg}: a value is missing"))
        };
        match arg.as_str() {
            "--trials" => {
                let text = value()?;
                options.trials = text
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--trials {text}: expected a positive integer"))?;
            }
            "--append" => append = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let rows = operations::run(&options).map_err(|e| e.to_string())?;
    let section = operations::table(&options, &rows);
    println!("{section}");
    if let Some(path) = append {
        appliance_tests::bench::append(&path, &format!("\n{section}"))?;
        eprintln!("appended to {}", path.display());
    }
    Ok(())
}
