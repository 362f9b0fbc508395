//! `make bench`: what a client loses while the operator works, the
//! appliance and keepalived side by side, each section printed and, with
//! `--append FILE`, added to FILE:
//! - by default, the master handed over or restarted (on a netns LAN;
//!   appliance_tests::bench::operations says what and how);
//! - with `--vm`, a real server drained or reweighted by a reload: IPVS,
//!   which the host's kernel lacks, so this boots Debian's kernel under
//!   qemu with this binary, the appliance and keepalived in it, and runs
//!   `operations_bench --pool` there (appliance_tests::bench::pool).
//!
//! Usage: `operations_bench [--trials N] [--vm | --pool [--where TEXT]]
//! [--append FILE]`. Runs as root; the release `appliance` is taken from
//! beside this binary.

use appliance_tests::bench::{operations, pool};
use appliance_tests::vm::{self, Vm, section};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const KEEPALIVED: &str = "/usr/sbin/keepalived";
/// Guest memory: the initramfs (keepalived brings some 40 libraries, the
/// binaries their debug-less release builds) and the daemons.
const MEMORY_MB: u32 = 1024;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("operations_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Mode {
    Vrrp,
    Vm,
    Pool { place: String },
}

fn run() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    let appliance = exe.with_file_name("appliance");
    let mut trials = 5;
    let mut mode = Mode::Vrrp;
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
                trials = text
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--trials {text}: expected a positive integer"))?;
            }
            "--vm" => mode = Mode::Vm,
            "--pool" => {
                mode = Mode::Pool {
                    place: "this machine".into(),
                }
            }
            "--where" => {
                let text = value()?;
                match &mut mode {
                    Mode::Pool { place } => *place = text,
                    _ => return Err("--where goes after --pool".into()),
                }
            }
            "--append" => append = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let section = match mode {
        Mode::Vrrp => {
            let options = operations::Options { trials, appliance };
            let rows = operations::run(&options).map_err(|e| e.to_string())?;
            operations::table(&options, &rows)
        }
        Mode::Pool { place } => {
            let options = pool::Options { trials, appliance };
            let rows = pool::run(&options).map_err(|e| e.to_string())?;
            pool::table(&options, &rows, &place)
        }
        Mode::Vm => in_vm(&exe, &appliance, trials)?,
    };
    println!("{section}");
    if let Some(path) = append {
        appliance_tests::bench::append(&path, &format!("\n{section}"))?;
        eprintln!("appended to {}", path.display());
    }
    Ok(())
}

/// Runs `operations_bench --pool` in a VM; returns its section.
fn in_vm(exe: &Path, appliance: &Path, trials: usize) -> Result<String, String> {
    if !appliance.is_file() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release -p appliance` (make bench does)",
            appliance.display()
        ));
    }
    if !Path::new(KEEPALIVED).is_file() {
        return Err(format!(
            "{KEEPALIVED} is missing: install the Debian package keepalived"
        ));
    }
    let kernel = vm::kernel::kernel().map_err(|e| e.to_string())?;
    let place = format!(
        "Debian's kernel {} under qemu TCG, one vCPU, {MEMORY_MB} MiB",
        kernel.release
    );
    // Each trial is some 10 s of emulated time, four per trial number.
    let timeout = Duration::from_secs(300 + 60 * u64::try_from(trials).unwrap_or(u64::MAX / 60));
    let script = format!(
        "set -e\n\
         echo '--- section'\n\
         operations_bench --pool --trials {trials} --where \"{place}\"\n"
    );
    let out = Vm::builder()
        .file(exe, "/usr/bin/operations_bench")
        .file(appliance, "/usr/bin/appliance")
        .file(KEEPALIVED, KEEPALIVED)
        .script(script)
        .memory_mb(MEMORY_MB)
        .timeout(timeout)
        .run()
        .map_err(|e| e.to_string())?;
    eprint!("{}", out.stderr);
    if out.exit_code != 0 {
        return Err(format!("the VM scenario exited {}\n{out}", out.exit_code));
    }
    eprintln!(
        "VM: boot {:.1} s, whole run {:.1} s",
        out.boot.as_secs_f64(),
        out.elapsed.as_secs_f64()
    );
    Ok(section(&out.stdout, "section").join("\n"))
}
