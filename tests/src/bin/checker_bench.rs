//! Benchmark of the health checker: N real servers (default 10,000) on
//! loopback, listeners on 127.4.0.0/16 (100 addresses × 100 ports), each
//! TCP-checked every second, once with full connects (TCP_CHECK's default)
//! and once half-open (`half_open = true`), one after the other against
//! the same listeners. The checker runs in a child process (this binary
//! with `--checker`), so only its own CPU time and memory are measured:
//! CPU share of one core over a steady-state window after the warmup, and
//! peak RSS. Prints a markdown table (a row per probe kind), and with
//! `--append FILE` adds it as a section to FILE (`make bench`:
//! docs/benchmarks.md, which the failover benchmark has just written).
//!
//! `checker_bench [--servers N] [--seconds S] [--append FILE]`; build with
//! `--release`.

use appliance::check::runner::{self, Options, Report};
use appliance::config::model::{Config, VirtualServer};
use appliance_tests::loopback::{self, Server};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PORTS: usize = 100;
const FIRST_PORT: u16 = 20_000;
const PER_VS: usize = 100;
/// Bootstrap (1 s) plus the longest warmup (delay_loop, 1 s), plus margin.
const WARMUP: Duration = Duration::from_secs(4);
/// The goal: under this share of one core (percent) and this peak RSS (MB).
const GOAL_CPU: f64 = 5.0;
const GOAL_RSS: f64 = 50.0;

struct Args {
    servers: usize,
    seconds: u64,
    checker: Option<String>,
    append: Option<std::path::PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        servers: 10_000,
        seconds: 30,
        checker: None,
        append: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--servers" => out.servers = value()?.parse().map_err(|e| format!("--servers: {e}"))?,
            "--seconds" => out.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--checker" => out.checker = Some(value()?),
            "--append" => out.append = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let result = args().and_then(|args| match &args.checker {
        Some(config) => checker(config, args.seconds),
        None => parent(&args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("checker_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn server_address(i: usize) -> SocketAddr {
    let port = FIRST_PORT + u16::try_from(i % PORTS).unwrap_or(0);
    SocketAddr::new(loopback::address(4, i / PORTS).into(), port)
}

/// How the checks probe.
#[derive(Clone, Copy)]
enum Probe {
    Connect,
    HalfOpen,
}

impl Probe {
    const ALL: [Probe; 2] = [Probe::Connect, Probe::HalfOpen];

    /// The table's name for it.
    fn name(self) -> &'static str {
        match self {
            Probe::Connect => "connect + RST",
            Probe::HalfOpen => "half-open SYN",
        }
    }

    fn option(self) -> &'static str {
        match self {
            Probe::Connect => "",
            Probe::HalfOpen => ", half_open = true",
        }
    }
}

fn config_text(servers: usize, probe: Probe) -> String {
    let mut text = String::new();
    for i in 0..servers {
        if i % PER_VS == 0 {
            text.push_str(&format!(
                "[[virtual_server]]\nservice = {{ address = \"10.200.{}.{}:80\" }}\ndelay_loop = \"1s\"\n",
                i / PER_VS / 250,
                i / PER_VS % 250 + 1
            ));
        }
        text.push_str(&format!(
            "[[virtual_server.real_server]]\naddress = \"{}\"\ncheck = [{{ type = \"TCP_CHECK\", connect_timeout = \"2s\"{} }}]\n",
            server_address(i),
            probe.option()
        ));
    }
    text
}

/// Serves the listeners and runs the checker child, both in a network
/// namespace of their own: the host's may track every loopback connection
/// in conntrack (Docker's NAT rules load it), which would bill the checker
/// for a hundred thousand conntrack entries that a director's checks
/// against real servers do not make.
fn parent(args: &Args) -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("a network namespace of its own (run as root): {e}"))?;
    let lo = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .map_err(|e| format!("ip link set lo up (Debian package iproute2): {e}"))?;
    if !lo.success() {
        return Err(format!("ip link set lo up: {lo}"));
    }
    loopback::raise_nofile_limit().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let rt = runtime()?;
    let outputs = rt.block_on(async {
        let mut listeners = Vec::with_capacity(args.servers);
        for i in 0..args.servers {
            let server = Server::start(server_address(i))
                .await
                .map_err(|e| format!("listen on {}: {e}", server_address(i)))?;
            listeners.push(server);
        }
        let mut outputs = Vec::new();
        for probe in Probe::ALL {
            let config = dir.path().join(format!("checker-{}.toml", outputs.len()));
            std::fs::write(&config, config_text(args.servers, probe)).map_err(|e| e.to_string())?;
            let child = tokio::process::Command::new(&exe)
                .arg("--checker")
                .arg(&config)
                .arg("--seconds")
                .arg(args.seconds.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("start the checker: {e}"))?;
            let output = child
                .wait_with_output()
                .await
                .map_err(|e| format!("checker: {e}"))?;
            outputs.push((probe, output));
        }
        drop(listeners);
        Ok::<_, String>(outputs)
    })?;
    let mut table = "| probe | real servers | interval | window | checker CPU (% of one core) | of which user | of which kernel | peak RSS (MB) | RSS at the end (MB) | checks up at the end | state changes | oldest last check |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        .to_owned();
    // The best of the probe kinds, against the goal.
    let mut best_cpu = f64::INFINITY;
    let mut best_rss = f64::INFINITY;
    for (probe, output) in outputs {
        if !output.status.success() {
            return Err(format!(
                "the checker ({}) failed: {}",
                probe.name(),
                output.status
            ));
        }
        let line = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [cpu, user, sys, rss, rss_now, up, changes, oldest] = fields.as_slice() else {
            return Err(format!("unexpected checker output: {line}"));
        };
        best_cpu = best_cpu.min(cpu.parse().unwrap_or(f64::INFINITY));
        best_rss = best_rss.min(rss.parse().unwrap_or(f64::INFINITY));
        table.push_str(&format!(
            "| {} | {} | 1 s | {} s | {cpu} | {user} | {sys} | {rss} | {rss_now} | {up}/{} | {changes} | {oldest} s |\n",
            probe.name(),
            args.servers,
            args.seconds,
            args.servers
        ));
    }
    print!("{table}");
    if let Some(path) = &args.append {
        let verdict = |value: f64, goal: f64| if value < goal { "met" } else { "missed" };
        let section = format!(
            "\n## Health checker\n\n\
             Generated by `make bench` (tests/src/bin/checker_bench.rs): {} real \
             servers on loopback, each TCP-checked every second, by full connects \
             (TCP_CHECK's default) and half-open (`half_open = true`); the \
             checker's own CPU time and memory. Goal, by the better of the two: \
             under {GOAL_CPU} % of one core ({}) and under {GOAL_RSS} MB peak RSS \
             ({}). [benchmarks-checker.md](benchmarks-checker.md) says what the \
             kernel's share is and why.\n\n{table}",
            args.servers,
            verdict(best_cpu, GOAL_CPU),
            verdict(best_rss, GOAL_RSS),
        );
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(section.as_bytes()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// CPU time in user space and in the kernel, and peak RSS in KiB.
fn rusage() -> Result<(Duration, Duration, u64), String> {
    // SAFETY: getrusage only writes the struct passed.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok((
        tv(usage.ru_utime),
        tv(usage.ru_stime),
        u64::try_from(usage.ru_maxrss).unwrap_or(0),
    ))
}

/// Resident memory now (VmRSS), in KiB.
fn current_rss_kb() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/self/status".to_owned())
}

/// The child: runs the checker, prints `cpu% user% sys% peak_rss_mb
/// rss_mb up changes oldest_s`.
fn checker(config: &str, seconds: u64) -> Result<(), String> {
    loopback::raise_nofile_limit().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let text = std::fs::read_to_string(config).map_err(|e| format!("{config}: {e}"))?;
    let vss: Vec<VirtualServer> = toml::from_str::<Config>(&text)
        .map_err(|e| format!("{config}: {e}"))?
        .virtual_server;
    let total: usize = vss.iter().map(|vs| vs.real_server.len()).sum();
    let rt = runtime()?;
    rt.block_on(async {
        let options = Options {
            max_in_flight: 4096,
            ..Options::default()
        };
        let (handle, mut rx) = runner::spawn(&vss, options.clone()).map_err(|e| e.to_string())?;
        let mut changes = 0usize;
        let mut count = |report: Report| {
            if matches!(report, Report::Server { .. }) {
                changes += 1;
            }
        };
        let warm_until = tokio::time::Instant::now() + WARMUP;
        while let Ok(Some(report)) = tokio::time::timeout_at(warm_until, rx.recv()).await {
            count(report);
        }
        let (user0, sys0, _) = rusage()?;
        let wall0 = Instant::now();
        let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
        while let Ok(Some(report)) = tokio::time::timeout_at(end, rx.recv()).await {
            count(report);
        }
        let (user1, sys1, rss_kb) = rusage()?;
        let now_kb = current_rss_kb()?;
        let wall = wall0.elapsed();
        let status = handle.status().await.ok_or("the runner stopped")?;
        let now = appliance::clock::Instant::from_duration(options.origin.elapsed());
        let checks = status
            .iter()
            .flat_map(|vs| &vs.servers)
            .flat_map(|rs| &rs.checks);
        let up = checks.clone().filter(|c| c.up).count();
        let oldest = checks
            .filter_map(|c| c.last.map(|l| now.saturating_since(l.at)))
            .max()
            .unwrap_or(Duration::MAX);
        handle.shutdown().await;
        let share = |d: Duration| 100.0 * d.as_secs_f64() / wall.as_secs_f64();
        println!(
            "{:.2} {:.2} {:.2} {:.1} {:.1} {up} {changes} {:.2}",
            share(user1 - user0 + sys1 - sys0),
            share(user1 - user0),
            share(sys1 - sys0),
            rss_kb as f64 / 1024.0,
            now_kb as f64 / 1024.0,
            oldest.as_secs_f64()
        );
        if up != total {
            return Err(format!("only {up} of {total} checks up"));
        }
        Ok(())
    })
}
