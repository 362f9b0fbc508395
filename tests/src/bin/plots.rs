//! `make bench`, last: draws the benchmarks' plots (docs/img/*.svg) from
//! their samples (docs/bench-data/*.csv), which the benches have just
//! written; a bench without samples there has no plot. The same samples
//! give the same files, so the committed plots can be drawn again at will.
//!
//! Usage: `plots [--data DIR] [--img DIR]` (defaults: the workspace's
//! docs/bench-data and docs/img).

use appliance_tests::bench::{data, plot};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plots: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut dir = data::workspace(data::DIR);
    let mut img = data::workspace(plot::DIR);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .map(PathBuf::from)
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--data" => dir = value()?,
            "--img" => img = value()?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let plots = plot::render(&dir).map_err(|e| e.to_string())?;
    if plots.is_empty() {
        return Err(format!("no samples in {}", dir.display()));
    }
    for (name, svg) in plots {
        let path = img.join(name);
        data::write(&path, &svg).map_err(|e| e.to_string())?;
        eprintln!("wrote {} ({} bytes)", path.display(), svg.len());
    }
    Ok(())
}
