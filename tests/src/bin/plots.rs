//! `make bench`, last: draws the benchmarks' plots (docs/img/*.svg) from
//! their samples (docs/bench-data/*.csv), which the benches have just
//! written; a bench without samples there has no plot. The same samples
//! give the same files, so the committed plots can be drawn again at will.
//!
//! Usage: `plots [--data DIR] [--img DIR]` (defaults: the workspace's
//! docs/bench-data and docs/img).

use appliance_tests::bench::{data, plot};
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
    data::path_flags(
        std::env::args().skip(1),
        &mut [("--data", &mut dir), ("--img", &mut img)],
    )?;
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
