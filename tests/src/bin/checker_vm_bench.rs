//! The health checker beside keepalived's, on one kernel: keepalived's
//! checker exits where the kernel has no IPVS (the host's has none), so
//! this boots Debian's kernel under qemu (TCG, one vCPU, [`vm`]) with the
//! release checker_bench, keepalived and ipvsadm in it, and runs
//! `checker_bench --keepalived` there: the same real servers, checked every
//! second by keepalived's checker, by ours with full connects and by ours
//! half-open, each measured over the same window. Emulation makes every
//! check 20 to 35 times dearer than on the host; the rows compare, on the
//! same (emulated) machine.
//! Prints the tables and the VM's times, with `--append FILE` adds them
//! as a section to FILE (`make bench`: docs/benchmarks.md), and with
//! `--csv FILE` writes the runs as CSV (`make bench`:
//! docs/bench-data/checker-vm.csv, which the `plots` binary draws).
//!
//! `checker_vm_bench [--servers N] [--seconds S] [--append FILE] [--csv FILE]`; build
//! the package's binaries with `--release` first (checker_bench is taken
//! from beside this one).

use appliance_tests::bench::data;
use appliance_tests::vm::{self, Vm, section};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const KEEPALIVED: &str = "/usr/sbin/keepalived";
/// Guest memory: the initramfs (keepalived brings some 40 libraries) and
/// two processes' copies of the config.
const MEMORY_MB: u32 = 1024;

struct Args {
    servers: usize,
    seconds: u64,
    append: Option<PathBuf>,
    csv: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        servers: 500,
        seconds: 30,
        append: None,
        csv: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--servers" => out.servers = value()?.parse().map_err(|e| format!("--servers: {e}"))?,
            "--seconds" => out.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--append" => out.append = Some(value()?.into()),
            "--csv" => out.csv = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

/// checker_bench from the same target directory as this binary.
fn checker_bench() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe
        .parent()
        .map(|dir| dir.join("checker_bench"))
        .filter(|bin| bin.is_file())
        .ok_or(format!(
            "no checker_bench beside {}: build it with \
             `cargo build --release -p appliance-tests --bins`",
            exe.display()
        ))?;
    Ok(bin)
}

fn run(args: &Args) -> Result<(), String> {
    if !Path::new(KEEPALIVED).is_file() {
        return Err(format!(
            "{KEEPALIVED} is missing: install the Debian package keepalived"
        ));
    }
    let kernel = vm::kernel::kernel().map_err(|e| e.to_string())?;
    // checker_bench runs three checkers one after the other, each warmed
    // up and measured; keepalived also programs and removes every
    // destination. Boot and listeners take a minute or two under TCG.
    let timeout = Duration::from_secs(600 + 3 * 4 * args.seconds);
    // The open-files limit the guest's init starts with (4096) is too low
    // for more than a few thousand listeners; checker_bench raises its soft
    // limit to the hard one.
    let script = format!(
        "set -e\n\
         ulimit -n 65536\n\
         mkdir -p /tmp\n\
         echo '--- table'\n\
         checker_bench --servers {} --seconds {} --keepalived {KEEPALIVED} --csv /tmp/checker.csv\n\
         echo '--- csv'\n\
         cat /tmp/checker.csv\n",
        args.servers, args.seconds
    );
    let out = Vm::builder()
        .file(checker_bench()?, "/usr/bin/checker_bench")
        .file(KEEPALIVED, KEEPALIVED)
        .script(script)
        .memory_mb(MEMORY_MB)
        .timeout(timeout)
        .run()
        .map_err(|e| e.to_string())?;
    if out.exit_code != 0 {
        return Err(format!("the VM scenario exited {}\n{out}", out.exit_code));
    }
    let table = section(&out.stdout, "table").join("\n") + "\n";
    let times = format!(
        "boot {:.1} s, whole VM run {:.1} s",
        out.boot.as_secs_f64(),
        out.elapsed.as_secs_f64()
    );
    print!("{table}");
    println!("{times}");
    if let Some(path) = &args.csv {
        let csv = section(&out.stdout, "csv").join("\n") + "\n";
        // Parsed before it is written: a garbled guest output fails here.
        data::parse_checker(Path::new("the VM's /tmp/checker.csv"), &csv)
            .map_err(|e| e.to_string())?;
        data::write(path, &csv).map_err(|e| e.to_string())?;
    }
    if let Some(path) = &args.append {
        let text = format!(
            "\n## Health checker beside keepalived (in a VM)\n\n\
             Generated by `make bench` (tests/src/bin/checker_vm_bench.rs): \
             keepalived's checker needs IPVS, which the host's kernel lacks, so \
             all three run in one VM: Debian's kernel {} under qemu TCG, one \
             vCPU, {MEMORY_MB} MiB ({times}). The same {} real servers on \
             loopback, each TCP-checked every second by keepalived's checker \
             (`-C`, `TCP_CHECK {{ connect_timeout 2 }}`, programming IPVS), by \
             ours with full connects and by ours half-open, one after the \
             other; each checker process's own CPU time and memory over a {} s \
             window after its warmup. Emulation makes every check many times \
             dearer than on the host (20 to 35 times when this was written): \
             compare the rows, not with the host's table. Checks per s are the \
             connects (or, half-open, the resets answering SYN-ACKs) the kernel \
             counted; machine idle says whether the vCPU was saturated. \
             [benchmarks-checker.md](benchmarks-checker.md) says what it \
             means.\n\n{table}",
            kernel.release, args.servers, args.seconds
        );
        appliance_tests::bench::append(path, &text)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match args().and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("checker_vm_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
