//! Loading a large table into IPVS: `ipvsadm -R` beside the appliance, on
//! one kernel. The host's kernel has no IPVS, so this boots Debian's kernel
//! under qemu (TCG, one vCPU, [`vm`]) and, for each size N, loads N virtual
//! services × 4 real servers (NAT, wlc, as a keepalived.conf without
//! checks would have them) three ways, each into the empty table of a
//! fresh network namespace:
//!
//! - `ipvsadm -R` reading the rules a saved table would hold;
//! - `appliance dataplane apply`: the appliance's reconcile alone;
//! - `appliance run` until it logs the table reconciled: the daemon as an
//!   operator starts it, config parsing and planning included;
//!
//! then reloads that daemon with one real server's weight changed: the
//! whole `appliance reload` (the config parsed again) and the dataplane's
//! part of it (`took` in its log). The kernel holds what each claims,
//! checked with `ipvsadm -Ln`.
//!
//! Times come from the guest's /proc/uptime (10 ms steps; `appliance run`'s
//! log is polled every 0.2 s). Prints the table, and with `--append FILE`
//! adds it as a section to FILE.
//!
//! `ipvs_bench [--services N,N,...] [--append FILE]`; build the release
//! appliance first (`cargo build --release -p appliance`).

use appliance_tests::vm::{self, Vm, section};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const REAL_SERVERS: usize = 4;
/// Guest memory: the configs and the appliance's copy of each table.
const MEMORY_MB: u32 = 1024;
/// How long `appliance run` may take to load one table.
const RUN_LIMIT_S: u32 = 600;

struct Args {
    services: Vec<usize>,
    append: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        services: vec![1000, 2000, 5000, 10_000],
        append: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--services" => {
                out.services = value()?
                    .split(',')
                    .map(|n| n.parse().map_err(|e| format!("--services {n}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--append" => out.append = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if out.services.is_empty() || out.services.iter().any(|n| *n == 0 || *n > 60_000) {
        return Err("--services: sizes between 1 and 60000".into());
    }
    Ok(out)
}

/// The release appliance beside this binary's target directory.
fn appliance() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    exe.parent()
        .map(|dir| dir.join("appliance"))
        .filter(|bin| bin.is_file())
        .ok_or(format!(
            "no appliance beside {}: build it with `cargo build --release -p appliance`",
            exe.display()
        ))
}

/// Service `i`'s virtual address and its real servers' addresses.
fn addresses(i: usize) -> (String, Vec<String>) {
    let (hi, lo) = (i / 250, i % 250 + 1);
    let vip = format!("10.1.{hi}.{lo}:80");
    let servers = (0..REAL_SERVERS)
        .map(|r| format!("10.{}.{hi}.{lo}:8080", 2 + r))
        .collect();
    (vip, servers)
}

/// The table as keepalived.conf, and as `ipvsadm -R` rules.
fn tables(n: usize) -> (String, String) {
    let (mut conf, mut rules) = (String::new(), String::new());
    for i in 0..n {
        let (vip, servers) = addresses(i);
        let (ip, port) = vip.split_once(':').unwrap_or((&vip, "80"));
        let _ = write!(
            conf,
            "virtual_server {ip} {port} {{\n  lb_algo wlc\n  lb_kind NAT\n  protocol TCP\n"
        );
        let _ = writeln!(rules, "-A -t {vip} -s wlc");
        for server in &servers {
            let (rip, rport) = server.split_once(':').unwrap_or((server, "8080"));
            let _ = write!(conf, "  real_server {rip} {rport} {{\n    weight 1\n  }}\n");
            let _ = writeln!(rules, "-a -t {vip} -r {server} -m -w 1");
        }
        conf.push_str("}\n");
    }
    (conf, rules)
}

/// The guest script: each way for each size, each into an empty table of
/// a network namespace of its own, timed. A fresh namespace rather than
/// `ipvsadm -C`: the kernel keeps deleted destinations in a trash list for
/// a minute or two and searches it on every destination added, so a load
/// right after flushing N destinations costs N per destination, whoever
/// loads (docs/benchmarks.md). Its loopback is up so that the kernel takes
/// the real servers' addresses as unicast.
fn script(sizes: &[usize]) -> String {
    let mut s = String::from("set -e\nmkdir -p /tmp /run\necho '--- table'\n");
    for n in sizes {
        let _ = write!(
            s,
            "unshare -n sh -c '\n\
               . /bench/lib.sh; ip link set lo up\n\
               t0=$(now); ipvsadm -R < /bench/rules.{n}; t1=$(now)\n\
               loaded {n} || {{ echo \"ipvsadm -R did not load {n}\"; exit 1; }}\n\
               echo \"{n} ipvsadm $(elapsed $t0 $t1)\"'\n\
             unshare -n sh -c '\n\
               . /bench/lib.sh; ip link set lo up\n\
               t0=$(now); appliance dataplane apply --config /bench/conf.{n} --state /tmp/apply.{n}.json > /tmp/apply.{n}.log 2>&1; t1=$(now)\n\
               loaded {n} || {{ echo \"dataplane apply did not load {n}\"; exit 1; }}\n\
               echo \"{n} apply $(elapsed $t0 $t1)\"'\n\
             mkdir -p /run/appliance.{n}; cp /bench/conf.{n} /tmp/conf.{n}\n\
             unshare -n sh -c '\n\
               . /bench/lib.sh; ip link set lo up\n\
               log=/tmp/run.{n}.log\n\
               t0=$(now)\n\
               appliance run --config /tmp/conf.{n} --state-dir /run/appliance.{n} > $log 2>&1 &\n\
               pid=$!\n\
               polls=0\n\
               while ! grep -q \"dataplane reconciled\" $log; do\n\
                 polls=$((polls + 1))\n\
                 if [ $polls -ge $(({RUN_LIMIT_S} * 5)) ]; then echo \"run: not loaded in {RUN_LIMIT_S} s\"; exit 1; fi\n\
                 sleep 0.2\n\
               done\n\
               t1=$(now)\n\
               loaded {n} || {{ echo \"appliance run did not load {n}\"; exit 1; }}\n\
               echo \"{n} run $(elapsed $t0 $t1)\"\n\
               sed -i \"6s/weight 1/weight 3/\" /tmp/conf.{n}\n\
               t0=$(now); appliance reload --socket /run/appliance.{n}/appliance.sock > /dev/null; t1=$(now)\n\
               ipvsadm -Ln | grep -q \"Masq    3 \" || {{ echo \"reload: weight 3 not in the kernel\"; exit 1; }}\n\
               echo \"{n} reload $(elapsed $t0 $t1)\"\n\
               echo \"{n} reload-dataplane $(took $log 2)\"\n\
               kill $pid; wait $pid || true'\n"
        );
    }
    s
}

/// The helpers of [`script`], sourced by each namespace's shell.
const LIB: &str = "now() { read up _ < /proc/uptime; echo \"$up\"; }\n\
    elapsed() { awk -v a=\"$1\" -v b=\"$2\" 'BEGIN { printf \"%.2f\", b - a }'; }\n\
    loaded() { [ \"$(ipvsadm -Ln | grep -c '^TCP')\" -eq \"$1\" ] && [ \"$(ipvsadm -Ln | grep -c Masq)\" -eq $(($1 * 4)) ]; }\n\
    took() { grep 'dataplane reconciled' \"$1\" | sed -n \"$2p\" | sed 's/.* took=\\([^ ]*\\).*/\\1/'; }\n";

/// A `Duration`'s `Debug` text (`93.04ms`, `1.93s`) in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic() || c == 'µ')?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "ns" => 1e-6,
        "µs" | "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        _ => return None,
    };
    Some(number * scale)
}

/// The guest's lines (`N way value`) as Markdown: the loads, then the
/// reloads.
fn render(lines: &[&str], sizes: &[usize]) -> String {
    let cell = |n: usize, way: &str| {
        lines
            .iter()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(&n.to_string()) && w.next() == Some(way))
                    .then(|| w.collect::<Vec<_>>().join(" "))
            })
            .next()
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::from(
        "Loading the services, each with 4 real servers, in seconds (the ratio: \
         how many times `appliance run` is faster than `ipvsadm -R`):\n\n\
         | services | `ipvsadm -R` | `dataplane apply` | `appliance run` | ratio |\n\
         |---:|---:|---:|---:|---:|\n",
    );
    for &n in sizes {
        let (ipvsadm, apply, run) = (cell(n, "ipvsadm"), cell(n, "apply"), cell(n, "run"));
        let ratio = match (ipvsadm.parse::<f64>(), run.parse::<f64>()) {
            (Ok(i), Ok(r)) if r > 0.0 => format!("{:.1}", i / r),
            _ => "-".into(),
        };
        let _ = writeln!(out, "| {n} | {ipvsadm} | {apply} | {run} | {ratio} |");
    }
    out.push_str(
        "\nReloading with one real server's weight changed:\n\n\
         | services | `appliance reload` | of which the dataplane |\n\
         |---:|---:|---:|\n",
    );
    for &n in sizes {
        let reload = cell(n, "reload");
        let dataplane = millis(&cell(n, "reload-dataplane"))
            .map_or_else(|| "-".into(), |ms| format!("{ms:.0} ms"));
        let _ = writeln!(out, "| {n} | {reload} s | {dataplane} |");
    }
    out
}

fn run(args: &Args) -> Result<(), String> {
    let kernel = vm::kernel::kernel().map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lib = dir.path().join("lib.sh");
    std::fs::write(&lib, LIB).map_err(|e| e.to_string())?;
    let mut builder = Vm::builder()
        .file(appliance()?, "/usr/sbin/appliance")
        .file(lib, "/bench/lib.sh");
    for &n in &args.services {
        let (conf, rules) = tables(n);
        let (conf_path, rules_path) = (
            dir.path().join(format!("conf.{n}")),
            dir.path().join(format!("rules.{n}")),
        );
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        std::fs::write(&rules_path, rules).map_err(|e| e.to_string())?;
        builder = builder
            .file(conf_path, format!("/bench/conf.{n}"))
            .file(rules_path, format!("/bench/rules.{n}"));
    }
    let limit: u64 = args
        .services
        .iter()
        .map(|n| 120 + u64::from(RUN_LIMIT_S) + (*n as u64) / 50)
        .sum();
    let out = builder
        .script(script(&args.services))
        .memory_mb(MEMORY_MB)
        .timeout(Duration::from_secs(300 + limit))
        .run()
        .map_err(|e| e.to_string())?;
    if out.exit_code != 0 {
        return Err(format!("the VM scenario exited {}\n{out}", out.exit_code));
    }
    let table = render(&section(&out.stdout, "table"), &args.services);
    let times = format!(
        "boot {:.1} s, whole VM run {:.1} s",
        out.boot.as_secs_f64(),
        out.elapsed.as_secs_f64()
    );
    print!("{table}");
    println!("{times}");
    if let Some(path) = &args.append {
        let text = format!(
            "\n## Loading IPVS (in a VM)\n\n\
             Generated by `make bench` (tests/src/bin/ipvs_bench.rs): N virtual \
             services × {REAL_SERVERS} real servers (NAT, wlc, no checks) loaded \
             into the empty IPVS table of a fresh network namespace by `ipvsadm -R`, \
             by `appliance dataplane apply` and by `appliance run` (until it logs \
             the table reconciled; `ipvsadm -Ln` then checks that the kernel holds \
             every service and real server), then that daemon reloaded with one \
             real server's weight changed: the whole `appliance reload` (which \
             parses the config again) and the dataplane's part of it. In one VM: \
             Debian's kernel {} under qemu TCG, one vCPU, {MEMORY_MB} MiB \
             ({times}); TCG makes every figure several times what a real CPU takes. \
             Goal: `appliance run` at least 2× faster than `ipvsadm -R` at 10,000 \
             services, and the reload's dataplane part under 100 ms.\n\n{table}",
            kernel.release
        );
        appliance_tests::bench::append(path, &text)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match args().and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipvs_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use appliance_tests::bench::report::{MAX_COLUMNS, widest_table};

    #[test]
    fn the_tables_fit_a_page() {
        let lines = [
            "1000 ipvsadm 2.50",
            "1000 apply 0.70",
            "1000 run 0.83",
            "1000 reload 0.39",
            "1000 reload-dataplane 4.2ms",
        ];
        let text = render(&lines, &[1000, 2000]);
        assert!(widest_table(&text) <= MAX_COLUMNS, "{text}");
        for line in [
            "| 1000 | 2.50 | 0.70 | 0.83 | 3.0 |",
            "| 2000 | - | - | - | - |",
            "| 1000 | 0.39 s | 4 ms |",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }
}
