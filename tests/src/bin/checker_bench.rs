//! Benchmark of the health checker: N real servers (default 10,000) on
//! loopback, listeners on 127.4.0.0/16 (100 addresses × 100 ports), each
//! TCP-checked every second, once with full connects (TCP_CHECK's default)
//! and once half-open (`half_open = true`), one after the other against
//! the same listeners. The checker runs in a child process (this binary
//! with `--checker`), so only its own CPU time and memory are measured:
//! CPU share of one core over a steady-state window after the warmup, and
//! peak RSS. With `--keepalived PATH`, keepalived's checker (`-C`) then
//! checks the same listeners, configured alike, and is measured the same
//! way from /proc; it programs IPVS, so this needs a kernel with IPVS
//! (checker_vm_bench runs it all in a VM). Each row also says how many
//! checks a second the kernel counted and how idle the whole machine was,
//! which shows whether the checker kept up and whether the machine was
//! saturated. Prints markdown tables (a row per checker and probe kind),
//! with `--append FILE` adds them as a section to FILE (`make bench`:
//! docs/benchmarks.md, which the failover benchmark has just written), and
//! with `--csv FILE` writes the runs as CSV (`make bench`:
//! docs/bench-data/checker.csv, which the `plots` binary draws).
//!
//! On loopback both ends of every check run in the kernel on the checker's
//! CPU, the real servers' SYN handling included, and that is billed to the
//! checker. With `--steered`, each of our rows is measured a second time
//! the way a director meets real servers on a network: the checker pinned
//! to CPU 0 and loopback's receive work (the servers' side, and the
//! arrival of their answers, which a NIC's interrupt would do) moved to
//! CPU 1 by RPS; the machine's idle share then shows the whole cost.
//!
//! Beside the half-open rows, a bare SYN loop ([`floor`]) is measured the
//! same way: the prober's socket alone, sending the same SYNs in the same
//! batches and reading the answers, with no checker around it. Its share
//! is the kernel's cost of the probes on this machine, the floor under any
//! half-open checker, and the yardstick for ours when machines differ.
//!
//! `checker_bench [--servers N] [--seconds S] [--probe connect|half-open]
//! [--steered] [--keepalived PATH] [--append FILE] [--csv FILE]`; `--probe`
//! runs only that kind of ours. Build with `--release`.

use appliance::check::TICK;
use appliance::check::runner::{self, Options, Report};
use appliance::check::syn::segment::{Answer, SYN_LEN, Segment, Syn, Verdict};
use appliance::check::syn::socket::{self, BATCH, Family, ProbeSocket};
use appliance::config::model::{Config, VirtualServer};
use appliance_tests::bench::data::{self, CheckerRun, FLOOR};
use appliance_tests::loopback::{self, Server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PORTS: usize = 100;
const FIRST_PORT: u16 = 20_000;
const PER_VS: usize = 100;
/// Bootstrap (1 s) plus the longest warmup (delay_loop, 1 s), plus margin.
const WARMUP: Duration = Duration::from_secs(4);
/// How long keepalived may take to start and check every server once:
/// in a VM under TCG it programs its IPVS destinations slowly.
const KEEPALIVED_START: Duration = Duration::from_secs(120);
/// How long keepalived may take to stop (its checker removes every
/// destination from IPVS first).
const KEEPALIVED_STOP: Duration = Duration::from_secs(60);
/// The goal: under this share of one core (percent) and this peak RSS (MB).
const GOAL_CPU: f64 = 5.0;
const GOAL_RSS: f64 = 50.0;

struct Args {
    servers: usize,
    seconds: u64,
    checker: Option<String>,
    keepalived: Option<PathBuf>,
    append: Option<PathBuf>,
    csv: Option<PathBuf>,
    probes: Vec<Probe>,
    steered: bool,
    /// The child: the CPU to run on.
    cpu: Option<usize>,
    /// The child: run the bare SYN loop instead of the checker.
    floor: bool,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        servers: 10_000,
        seconds: 30,
        checker: None,
        keepalived: None,
        append: None,
        csv: None,
        probes: Probe::ALL.to_vec(),
        steered: false,
        cpu: None,
        floor: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--servers" => out.servers = value()?.parse().map_err(|e| format!("--servers: {e}"))?,
            "--seconds" => out.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--checker" => out.checker = Some(value()?),
            "--keepalived" => out.keepalived = Some(value()?.into()),
            "--append" => out.append = Some(value()?.into()),
            "--csv" => out.csv = Some(value()?.into()),
            "--steered" => out.steered = true,
            "--cpu" => out.cpu = Some(value()?.parse().map_err(|e| format!("--cpu: {e}"))?),
            "--floor" => out.floor = true,
            "--probe" => {
                let name = value()?;
                let probe = Probe::ALL
                    .into_iter()
                    .find(|p| p.flag() == name)
                    .ok_or(format!("--probe: {name}: not connect or half-open"))?;
                out.probes = vec![probe];
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let result = args().and_then(|args| match &args.checker {
        Some(config) => checker(config, args.seconds, args.cpu),
        None if args.floor => floor(args.servers, args.seconds, args.cpu),
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

/// The virtual server of real server `i`: 10.200.x.y, port 80.
fn virtual_address(i: usize) -> String {
    format!("10.200.{}.{}", i / PER_VS / 250, i / PER_VS % 250 + 1)
}

/// Where loopback's receive work runs while our checker is measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Wherever the kernel runs it: on loopback, in the sending checker's
    /// system calls, so both ends' kernel work is billed to the checker.
    Shared,
    /// The checker on CPU 0, loopback's receive work on CPU 1 (RPS).
    Steered,
}

impl Placement {
    /// The table's name for it.
    fn name(self) -> &'static str {
        match self {
            Placement::Shared => "checker's CPU",
            Placement::Steered => "other CPU (RPS)",
        }
    }
}

/// The CPU the checker runs on, and the one loopback's receive work is
/// steered to, when steered.
const CHECKER_CPU: usize = 0;
const RECEIVE_CPU: usize = 1;

/// The RPS mask of this network namespace's loopback (the namespace's own
/// sysfs is mounted over /sys).
const LO_RPS: &str = "/sys/class/net/lo/queues/rx-0/rps_cpus";

/// Steers loopback's receive work to `cpu`, or lets it run where it
/// arrives (`None`).
fn steer_loopback(cpu: Option<usize>) -> Result<(), String> {
    let mask = cpu.map_or(0u64, |cpu| 1 << cpu);
    std::fs::write(LO_RPS, format!("{mask:x}\n")).map_err(|e| format!("{LO_RPS}: {e}"))
}

/// A sysfs of this network namespace over /sys, in a mount namespace of
/// this process's own, so that [`LO_RPS`] is this loopback's.
fn own_sysfs() -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("a mount namespace of its own: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private: {e}"))?;
    mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("mounting this namespace's sysfs: {e}"))
}

/// How the checks probe.
#[derive(Clone, Copy, PartialEq, Eq)]
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

    /// Its `--probe` value.
    fn flag(self) -> &'static str {
        match self {
            Probe::Connect => "connect",
            Probe::HalfOpen => "half-open",
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
                "[[virtual_server]]\nservice = {{ address = \"{}:80\" }}\ndelay_loop = \"1s\"\n",
                virtual_address(i)
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

/// The same virtual and real servers and checks as [`config_text`], as
/// keepalived.conf; NAT and rr because keepalived programs IPVS with them
/// (ours, in this bench, only checks).
fn keepalived_config(servers: usize) -> String {
    let mut text = String::new();
    for i in 0..servers {
        if i % PER_VS == 0 {
            if i > 0 {
                text.push_str("}\n");
            }
            text.push_str(&format!(
                "virtual_server {} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n",
                virtual_address(i)
            ));
        }
        let rs = server_address(i);
        text.push_str(&format!(
            "  real_server {} {} {{\n    weight 1\n    TCP_CHECK {{\n      connect_timeout 2\n    }}\n  }}\n",
            rs.ip(),
            rs.port()
        ));
    }
    if servers > 0 {
        text.push_str("}\n");
    }
    text
}

/// One line of the table: a checker over the window.
struct Row {
    checker: String,
    probe: &'static str,
    placement: Placement,
    /// Probes a second the kernel counted: connects, or for half-open
    /// probes the resets our kernel sends to the servers' SYN-ACKs.
    rate: f64,
    /// Shares of one core: the total, in user space, in the kernel.
    cpu: f64,
    user: f64,
    sys: f64,
    /// Peak and final resident memory, MB.
    peak_rss: f64,
    rss: f64,
    up: usize,
    changes: usize,
    /// Seconds since the least recently checked server's last check, when
    /// the checker can say.
    oldest: Option<f64>,
    /// The whole machine's idle share (all CPUs) over the window.
    idle: f64,
    /// Sockets left in TIME_WAIT at the window's end: each holds kernel
    /// memory until it expires (60 s).
    time_wait: u64,
}

impl Row {
    /// Its CSV record.
    fn run(&self, servers: usize) -> CheckerRun {
        CheckerRun {
            checker: self.checker.clone(),
            probe: self.probe.to_owned(),
            receive_work: self.placement.name().to_owned(),
            servers,
            checks_per_s: self.rate,
            cpu: self.cpu,
            user: self.user,
            kernel: self.sys,
            peak_rss_mb: self.peak_rss,
        }
    }
}

/// The results as Markdown, three tables narrow enough for a page (CPU;
/// memory and the machine; the checks), each row named by its checker and
/// probe, and where loopback's receive work ran when some rows steered it.
fn tables(rows: &[Row], servers: usize, seconds: u64) -> String {
    let steered = rows.iter().any(|r| r.placement == Placement::Steered);
    let (key, rule, place) = if steered {
        ("| checker | receive work on |", "|---|---|", "")
    } else {
        (
            "| checker |",
            "|---|",
            ", loopback's receive work on the checker's CPU",
        )
    };
    let name = |r: &Row| {
        let name = format!("| {}, {} |", r.checker, r.probe);
        if steered {
            format!("{name} {} |", r.placement.name())
        } else {
            name
        }
    };
    let mut out = format!(
        "{servers} real servers, each checked every 1 s{place}. CPU over the \
         {seconds} s window, % of one core, and per check (µs):\n\n\
         {key} CPU | user | kernel | per check | checks per s |\n\
         {rule}---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        out.push_str(&format!(
            "{} {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |\n",
            name(r),
            r.cpu,
            r.user,
            r.sys,
            // (% of a second) / (checks a second) × 10⁴ = µs per check
            r.cpu * 1e4 / r.rate.max(1.0),
            r.rate,
        ));
    }
    out.push_str(&format!(
        "\nThe checker's memory (MB) and the sockets left in TIME_WAIT at the \
         window's end, and the whole machine's idle share over it (%):\n\n\
         {key} peak RSS | RSS at the end | TIME_WAIT | machine idle |\n\
         {rule}---:|---:|---:|---:|\n"
    ));
    for r in rows {
        out.push_str(&format!(
            "{} {:.1} | {:.1} | {} | {:.1} |\n",
            name(r),
            r.peak_rss,
            r.rss,
            r.time_wait,
            r.idle,
        ));
    }
    out.push_str(&format!(
        "\nThe checks at the window's end:\n\n\
         {key} checks up | state changes | oldest last check |\n\
         {rule}---:|---:|---:|\n"
    ));
    for r in rows {
        let oldest = r.oldest.map_or("n/a".to_owned(), |s| format!("{s:.2} s"));
        out.push_str(&format!(
            "{} {}/{servers} | {} | {oldest} |\n",
            name(r),
            r.up,
            r.changes,
        ));
    }
    out
}

/// Serves the listeners and runs the checker children, all in a network
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
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if args.steered && cpus <= RECEIVE_CPU {
        return Err(format!(
            "--steered needs at least 2 CPUs; this machine has {cpus}"
        ));
    }
    if args.steered {
        own_sysfs()?;
    }
    loopback::raise_nofile_limit().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let rt = runtime()?;
    let rows = rt.block_on(async {
        let mut listeners = Vec::with_capacity(args.servers);
        for i in 0..args.servers {
            let server = Server::start(server_address(i))
                .await
                .map_err(|e| format!("listen on {}: {e}", server_address(i)))?;
            listeners.push(server);
        }
        let mut rows = Vec::new();
        for &probe in &args.probes {
            let mut runs = vec![Child::Checker(probe)];
            if probe == Probe::HalfOpen {
                runs.push(Child::Floor);
            }
            for child in runs {
                rows.push(ours(args, child, Placement::Shared, dir.path()).await?);
                if args.steered {
                    steer_loopback(Some(RECEIVE_CPU))?;
                    let row = ours(args, child, Placement::Steered, dir.path()).await;
                    steer_loopback(None)?;
                    rows.push(row?);
                }
            }
        }
        if let Some(keepalived) = &args.keepalived {
            rows.push(keepalived_row(keepalived, args, dir.path()).await?);
        }
        drop(listeners);
        Ok::<_, String>(rows)
    })?;
    let table = tables(&rows, args.servers, args.seconds);
    print!("{table}");
    if let Some(path) = &args.csv {
        let runs: Vec<CheckerRun> = rows.iter().map(|r| r.run(args.servers)).collect();
        data::write(path, &data::checker_csv(&runs)).map_err(|e| e.to_string())?;
    }
    if let Some(path) = &args.append {
        // The better of our probe kinds against the goal, for each place
        // loopback's receive work ran.
        let ours = |placement: Placement| {
            rows.iter()
                .filter(move |r| r.checker == OURS && r.placement == placement)
        };
        let best = |placement: Placement| {
            ours(placement)
                .map(|r| r.cpu)
                .fold(None, |best: Option<f64>, cpu| {
                    Some(best.map_or(cpu, |b| b.min(cpu)))
                })
        };
        let best_rss = rows
            .iter()
            .filter(|r| r.checker == OURS)
            .map(|r| r.peak_rss)
            .fold(f64::INFINITY, f64::min);
        let verdict = |value: f64, goal: f64| if value < goal { "met" } else { "missed" };
        let mut cpu_verdicts = Vec::new();
        for placement in [Placement::Shared, Placement::Steered] {
            if let Some(cpu) = best(placement) {
                cpu_verdicts.push(format!(
                    "{} with loopback's receive work on the {}: {cpu:.2} %",
                    verdict(cpu, GOAL_CPU),
                    placement.name()
                ));
            }
        }
        let floors: Vec<String> = rows
            .iter()
            .filter(|r| r.checker == FLOOR)
            .map(|r| {
                format!(
                    "{:.2} % with loopback's receive work on the {}",
                    r.cpu,
                    r.placement.name()
                )
            })
            .collect();
        let floor = if floors.is_empty() {
            String::new()
        } else {
            format!(
                " The {FLOOR} row is the prober's own socket sending the same \
                 SYNs in the same batches and reading the answers, with no \
                 checker around it: what the kernel's work per probe costs on \
                 this machine ({}), under any half-open checker that sends \
                 through the kernel's IP stack.",
                floors.join("; ")
            )
        };
        let section = format!(
            "\n## Health checker\n\n\
             Generated by `make bench` (tests/src/bin/checker_bench.rs): {} real \
             servers on loopback, each TCP-checked every second, by full connects \
             (TCP_CHECK's default) and half-open (`half_open = true`); the \
             checker's own CPU time and memory, first with everything on \
             whichever CPU the kernel runs it (on loopback the real servers' side \
             of every handshake then runs in the checker's system calls and is \
             billed to it), then with the checker on CPU {CHECKER_CPU} and \
             loopback's receive work on CPU {RECEIVE_CPU} (RPS), as a NIC's \
             interrupts would take it. Goal, by the better probe kind: under \
             {GOAL_CPU} % of one core ({}) and under {GOAL_RSS} MB peak RSS ({}). \
             [benchmarks-checker.md](benchmarks-checker.md) says where the time \
             goes.{floor}\n\n{table}\n\
             ![Each run's CPU, ours beside the bare SYN loop's (the kernel's floor) \
             and, in the VM, keepalived's checker](img/checker.svg)\n\n\
             Each run's CPU as a bar, here and in the VM below (where \
             keepalived's checker runs beside ours); the grey line is the bare \
             SYN loop's, the kernel's floor. \
             [bench-data/checker.csv](bench-data/checker.csv) and \
             [bench-data/checker-vm.csv](bench-data/checker-vm.csv) hold the \
             runs; `make bench` draws the plot from them.\n",
            args.servers,
            cpu_verdicts.join("; "),
            verdict(best_rss, GOAL_RSS),
        );
        appliance_tests::bench::append(path, &section)?;
    }
    Ok(())
}

/// The table's name for our checker.
const OURS: &str = "appliance";

/// What a measured child runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Child {
    /// Our checker, probing so.
    Checker(Probe),
    /// The bare SYN loop ([`floor`]).
    Floor,
}

/// Runs our checker, or the bare SYN loop, in a child (this binary with
/// `--checker` or `--floor`) and reads its row from the child's output.
async fn ours(args: &Args, child: Child, placement: Placement, dir: &Path) -> Result<Row, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = tokio::process::Command::new(&exe);
    let probe = match child {
        Child::Checker(probe) => {
            let config = dir.join(format!("checker-{}.toml", probe.name().replace(' ', "-")));
            std::fs::write(&config, config_text(args.servers, probe)).map_err(|e| e.to_string())?;
            command.arg("--checker").arg(&config);
            probe
        }
        Child::Floor => {
            command
                .arg("--floor")
                .arg("--servers")
                .arg(args.servers.to_string());
            Probe::HalfOpen
        }
    };
    command.arg("--seconds").arg(args.seconds.to_string());
    if placement == Placement::Steered {
        command.arg("--cpu").arg(CHECKER_CPU.to_string());
    }
    let output = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("start the checker: {e}"))?
        .wait_with_output()
        .await
        .map_err(|e| format!("checker: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the checker ({}) failed: {}",
            probe.name(),
            output.status
        ));
    }
    let line = String::from_utf8_lossy(&output.stdout);
    let bad = || format!("unexpected checker output: {line}");
    let fields: Vec<f64> = line
        .split_whitespace()
        .map(|f| f.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [
        cpu,
        user,
        sys,
        peak_rss,
        rss,
        up,
        changes,
        oldest,
        opens,
        rsts,
        idle,
        time_wait,
    ] = fields.as_slice()
    else {
        return Err(bad());
    };
    Ok(Row {
        checker: match child {
            Child::Checker(_) => OURS,
            Child::Floor => FLOOR,
        }
        .to_owned(),
        probe: probe.name(),
        placement,
        rate: match probe {
            Probe::Connect => *opens,
            Probe::HalfOpen => *rsts,
        },
        cpu: *cpu,
        user: *user,
        sys: *sys,
        peak_rss: *peak_rss,
        rss: *rss,
        up: *up as usize,
        changes: *changes as usize,
        // The loop keeps no last check.
        oldest: (child != Child::Floor).then_some(*oldest),
        idle: *idle,
        time_wait: *time_wait as u64,
    })
}

/// What the whole machine and this network namespace have counted so far.
#[derive(Clone, Copy)]
struct Counters {
    at: Instant,
    /// Clock ticks of all CPUs: idle (with iowait) and in all (/proc/stat).
    idle: u64,
    total: u64,
    /// TCP connects started and resets sent in this network namespace
    /// (/proc/net/snmp).
    active_opens: u64,
    out_rsts: u64,
    /// Sockets in TIME_WAIT in this network namespace now
    /// (/proc/net/sockstat).
    time_wait: u64,
}

impl Counters {
    fn read() -> Result<Self, String> {
        let at = Instant::now();
        let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("cpu "))
            .ok_or("/proc/stat: no cpu line")?
            .split_whitespace()
            .map(|t| t.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is
        // already counted in user).
        let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
        let total = ticks.iter().take(8).sum();
        let snmp = std::fs::read_to_string("/proc/net/snmp")
            .map_err(|e| format!("/proc/net/snmp: {e}"))?;
        // A `Tcp:` line of names, then one of values.
        let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = tcp
            .next()
            .zip(tcp.next())
            .ok_or("/proc/net/snmp: no Tcp lines")?;
        let counter = |name: &str| {
            names
                .split_whitespace()
                .position(|n| n == name)
                .and_then(|i| values.split_whitespace().nth(i))
                .and_then(|v| v.parse().ok())
                .ok_or(format!("/proc/net/snmp: no Tcp {name}"))
        };
        let sockstat = std::fs::read_to_string("/proc/net/sockstat")
            .map_err(|e| format!("/proc/net/sockstat: {e}"))?;
        // `TCP: inuse 5 orphan 0 tw 120 alloc 9 mem 1`
        let time_wait = sockstat
            .lines()
            .find_map(|l| l.strip_prefix("TCP:"))
            .and_then(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                let i = fields.iter().position(|f| *f == "tw")?;
                fields.get(i + 1)?.parse().ok()
            })
            .ok_or("/proc/net/sockstat: no TCP tw")?;
        Ok(Counters {
            at,
            idle,
            total,
            active_opens: counter("ActiveOpens")?,
            out_rsts: counter("OutRsts")?,
            time_wait,
        })
    }

    /// The window from `start` to these counters.
    fn since(&self, start: &Counters) -> Window {
        let secs = (self.at - start.at).as_secs_f64();
        Window {
            secs,
            opens: (self.active_opens - start.active_opens) as f64 / secs,
            rsts: (self.out_rsts - start.out_rsts) as f64 / secs,
            idle: 100.0 * (self.idle - start.idle) as f64
                / (self.total - start.total).max(1) as f64,
            time_wait: self.time_wait,
        }
    }
}

/// What [`Counters`] say of a window.
struct Window {
    secs: f64,
    /// Connects and resets a second.
    opens: f64,
    rsts: f64,
    /// The machine's idle share, percent.
    idle: f64,
    /// Sockets in TIME_WAIT at its end.
    time_wait: u64,
}

/// Runs keepalived's checker against the listeners and measures its
/// checker process (the child that `-c` names) from /proc, over the same
/// window as ours after every server has been checked once and a warmup.
async fn keepalived_row(binary: &Path, args: &Args, dir: &Path) -> Result<Row, String> {
    let version = keepalived_version(binary)?;
    let file = |name: &str| dir.join(name);
    std::fs::write(file("keepalived.conf"), keepalived_config(args.servers))
        .map_err(|e| e.to_string())?;
    let log = std::fs::File::create(file("keepalived.log")).map_err(|e| e.to_string())?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let before = Counters::read()?;
    // Foreground, log to the console, the checker only.
    let mut keepalived = tokio::process::Command::new(binary)
        .args(["-n", "-l", "-C", "-f"])
        .arg(file("keepalived.conf"))
        .arg("-p")
        .arg(file("keepalived.pid"))
        .arg("-c")
        .arg(file("checkers.pid"))
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    // Its IPVS errors (which a line per real server shut down follows)
    // and its last lines.
    let log_tail = || {
        let text = std::fs::read_to_string(file("keepalived.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let ipvs = lines.iter().filter(|l| l.contains("IPVS:"));
        let tail = lines[lines.len().saturating_sub(10)..].iter();
        ipvs.chain(tail).copied().collect::<Vec<_>>().join("\n")
    };
    // Its checker's pid, once every server has been probed about once.
    let deadline = Instant::now() + KEEPALIVED_START;
    let pid = loop {
        if let Some(status) = keepalived.try_wait().map_err(|e| e.to_string())? {
            return Err(format!(
                "keepalived exited ({status}); its checker needs a kernel with IPVS \
                 (checker_vm_bench runs this in a VM). Its log:\n{}",
                log_tail()
            ));
        }
        let pid = std::fs::read_to_string(file("checkers.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        let probed = Counters::read()?.active_opens - before.active_opens;
        if let Some(pid) = pid.filter(|_| probed >= args.servers as u64) {
            break pid;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "keepalived's checker did not probe every server within {KEEPALIVED_START:?} \
                 ({probed} connects). Its log:\n{}",
                log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(WARMUP).await;
    let cpu0 = proc_cpu(pid)?;
    let start = Counters::read()?;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let cpu1 = proc_cpu(pid)?;
    let end = Counters::read()?;
    let (peak_rss, rss) = proc_memory(pid)?;
    let up = ipvs_up()?;
    let changes = std::fs::read_to_string(file("keepalived.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            [
                "Adding service",
                "Removing service",
                "Enabling service",
                "Disabling service",
            ]
            .iter()
            .any(|m| l.contains(m))
        })
        .count();
    stop(&mut keepalived).await?;
    if up != args.servers {
        return Err(format!(
            "keepalived: only {up} of {} real servers up in IPVS. Its log:\n{}",
            args.servers,
            log_tail()
        ));
    }
    let window = end.since(&start);
    let share = |ticks: u64| 100.0 * ticks as f64 / clock_ticks() / window.secs;
    Ok(Row {
        checker: version,
        probe: "connect",
        placement: Placement::Shared,
        rate: window.opens,
        cpu: share(cpu1.0 + cpu1.1 - cpu0.0 - cpu0.1),
        user: share(cpu1.0 - cpu0.0),
        sys: share(cpu1.1 - cpu0.1),
        peak_rss,
        rss,
        up,
        changes,
        oldest: None,
        idle: window.idle,
        time_wait: window.time_wait,
    })
}

/// "keepalived 2.2.7", from the first line of `--version` ("Keepalived
/// v2.2.7 (01/16,2022)", on stderr).
fn keepalived_version(binary: &Path) -> Result<String, String> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .map(|v| format!("keepalived {v}"))
        .ok_or(format!("{} --version: {text}", binary.display()))
}

/// SIGTERM, then SIGKILL if it has not stopped in time.
async fn stop(keepalived: &mut tokio::process::Child) -> Result<(), String> {
    if let Some(pid) = keepalived.id() {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).map_err(|e| e.to_string())?);
        // Already gone is the only error, and then there is nothing to stop.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    match tokio::time::timeout(KEEPALIVED_STOP, keepalived.wait()).await {
        Ok(status) => status.map(drop).map_err(|e| e.to_string()),
        Err(_) => keepalived.kill().await.map_err(|e| e.to_string()),
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// A process's user and kernel CPU time so far, in clock ticks (fields 14
/// and 15 of /proc/PID/stat, counted after the parenthesised name).
fn proc_cpu(pid: u32) -> Result<(u64, u64), String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or(format!("{path}: {stat}"))
    };
    // The rest starts at field 3 (the state).
    Ok((field(14 - 3)?, field(15 - 3)?))
}

/// A process's peak and current resident memory, in MB (VmHWM and VmRSS).
fn proc_memory(pid: u32) -> Result<(f64, f64), String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .ok_or(format!("{path}: no {key}"))
    };
    Ok((kb("VmHWM:")?, kb("VmRSS:")?))
}

/// Real servers in this namespace's IPVS table with a weight above zero,
/// as `ipvsadm -Ln` lists them (`  -> 127.4.0.1:20000  Masq  1  0  0`).
fn ipvs_up() -> Result<usize, String> {
    let out = std::process::Command::new("ipvsadm")
        .arg("-Ln")
        .output()
        .map_err(|e| format!("ipvsadm (Debian package ipvsadm): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ipvsadm -Ln: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 4
                && f[0] == "->"
                && f[1].starts_with("127.4.")
                && f[3].parse::<u32>().is_ok_and(|w| w > 0)
        })
        .count())
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
/// rss_mb up changes oldest_s connects/s resets/s idle% time_wait` (peak
/// RSS from `ru_maxrss`, which is what VmHWM says of a process).
/// Pins this process to `cpu`, if given.
fn pin(cpu: Option<usize>) -> Result<(), String> {
    if let Some(cpu) = cpu {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu).map_err(|e| format!("--cpu {cpu}: {e}"))?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
            .map_err(|e| format!("running on CPU {cpu}: {e}"))?;
    }
    Ok(())
}

/// A child's measured window, from its start.
struct Measure {
    user: Duration,
    sys: Duration,
    start: Counters,
}

/// What a child measured over its window.
struct Measured {
    user: Duration,
    sys: Duration,
    peak_kb: u64,
    now_kb: u64,
    window: Window,
}

impl Measure {
    fn start() -> Result<Self, String> {
        let (user, sys, _) = rusage()?;
        Ok(Measure {
            user,
            sys,
            start: Counters::read()?,
        })
    }

    fn end(self) -> Result<Measured, String> {
        let (user, sys, peak_kb) = rusage()?;
        Ok(Measured {
            user: user - self.user,
            sys: sys - self.sys,
            peak_kb,
            window: Counters::read()?.since(&self.start),
            now_kb: current_rss_kb()?,
        })
    }
}

impl Measured {
    /// The child's line, which [`ours`] reads.
    fn print(&self, up: usize, changes: usize, oldest: Duration) {
        let share = |d: Duration| 100.0 * d.as_secs_f64() / self.window.secs;
        println!(
            "{:.2} {:.2} {:.2} {:.1} {:.1} {up} {changes} {:.2} {:.1} {:.1} {:.1} {}",
            share(self.user + self.sys),
            share(self.user),
            share(self.sys),
            self.peak_kb as f64 / 1024.0,
            self.now_kb as f64 / 1024.0,
            oldest.as_secs_f64(),
            self.window.opens,
            self.window.rsts,
            self.window.idle,
            self.window.time_wait,
        );
    }
}

fn checker(config: &str, seconds: u64, cpu: Option<usize>) -> Result<(), String> {
    loopback::raise_nofile_limit().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    pin(cpu)?;
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
        let measure = Measure::start()?;
        let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
        while let Ok(Some(report)) = tokio::time::timeout_at(end, rx.recv()).await {
            count(report);
        }
        let measured = measure.end()?;
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
        measured.print(up, changes, oldest);
        if up != total {
            return Err(format!("only {up} of {total} checks up"));
        }
        Ok(())
    })
}

/// The floor under any half-open checker on this machine: a loop that
/// sends each server a SYN a second, [`TICK`]'s share at a time through
/// the prober's own socket (batched alike), and reads the answers, with
/// nothing else: no schedule, no flights, no decisions, no timeouts. It
/// pays the kernel's work per probe and little more, so its CPU share says
/// how much of the checker's is the kernel's, here and now.
fn floor(servers: usize, seconds: u64, cpu: Option<usize>) -> Result<(), String> {
    pin(cpu)?;
    let rt = runtime()?;
    rt.block_on(async {
        let mut socket =
            ProbeSocket::open(Family::V4).map_err(|e| format!("the raw socket: {e}"))?;
        let port = socket.port();
        let targets: Vec<SocketAddr> = (0..servers).map(server_address).collect();
        let source = socket::route_source(targets[0]).map_err(|e| format!("a route: {e}"))?;
        let per_tick = servers.div_ceil((Duration::from_secs(1).as_micros() / TICK.as_micros()) as usize);
        // Which servers answered, by the sequence number of their SYN.
        let mut answered = vec![false; servers];
        let mut next = 0;
        let mut ticks = tokio::time::interval(TICK);
        let mut segments = [[0u8; SYN_LEN]; BATCH];
        let mut ips = [source; BATCH];
        let warm_until = tokio::time::Instant::now() + WARMUP;
        let mut measure = None;
        let end = warm_until + Duration::from_secs(seconds);
        loop {
            tokio::select! {
                now = ticks.tick() => {
                    if now >= end {
                        break;
                    }
                    if now >= warm_until && measure.is_none() {
                        answered.fill(false);
                        measure = Some(Measure::start()?);
                    }
                    let mut left = per_tick;
                    while left > 0 {
                        let count = left.min(BATCH);
                        for (bytes, ip) in segments.iter_mut().zip(&mut ips).take(count) {
                            let target = targets[next];
                            let syn = Syn {
                                src_port: port,
                                dst_port: target.port(),
                                seq: next as u32,
                                mss: Family::V4.mss(),
                            };
                            syn.emit(&mut Segment::new_unchecked(&mut bytes[..]), Some((source, target.ip())));
                            *ip = target.ip();
                            next = (next + 1) % servers;
                        }
                        socket
                            .send_batch(source, &segments[..count], &ips[..count])
                            .map_err(|e| format!("sending SYNs: {e}"))?;
                        left -= count;
                    }
                }
                ready = socket.readable() => ready.map_err(|e| format!("the raw socket: {e}"))?,
            }
            loop {
                let read = socket.recv_batch(|_, tcp| {
                    if let Ok(answer) = Segment::new_checked(tcp).and_then(|s| Answer::parse(&s))
                        && answer.dst_port == port
                        && answer.verdict == Verdict::Listening
                        && let Some(slot) = answered.get_mut(answer.ack.wrapping_sub(1) as usize)
                    {
                        *slot = true;
                    }
                });
                match read {
                    Ok(read) if read == BATCH => {}
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("reading answers: {e}")),
                }
            }
        }
        let measured = measure.ok_or("no window")?.end()?;
        let up = answered.iter().filter(|a| **a).count();
        measured.print(up, 0, Duration::ZERO);
        if up != servers {
            return Err(format!("only {up} of {servers} servers answered"));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(checker: &str, placement: Placement, oldest: Option<f64>) -> Row {
        Row {
            checker: checker.to_owned(),
            probe: Probe::HalfOpen.name(),
            placement,
            rate: 9901.0,
            cpu: 19.75,
            user: 3.21,
            sys: 16.54,
            peak_rss: 47.9,
            rss: 35.0,
            up: 10_000,
            changes: 0,
            oldest,
            idle: 85.0,
            time_wait: 0,
        }
    }

    #[test]
    fn the_tables_fit_a_page() {
        use appliance_tests::bench::report::{MAX_COLUMNS, widest_table};
        let rows = [
            row(OURS, Placement::Shared, Some(1.01)),
            row(FLOOR, Placement::Steered, None),
        ];
        let text = tables(&rows, 10_000, 30);
        assert!(widest_table(&text) <= MAX_COLUMNS, "{text}");
        for line in [
            "| appliance, half-open SYN | checker's CPU | 19.75 | 3.21 | 16.54 | 20 | 9901 |",
            "| bare SYN loop (floor), half-open SYN | other CPU (RPS) | 47.9 | 35.0 | 0 | 85.0 |",
            "| appliance, half-open SYN | checker's CPU | 10000/10000 | 0 | 1.01 s |",
            "| bare SYN loop (floor), half-open SYN | other CPU (RPS) | 10000/10000 | 0 | n/a |",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        // Without steering, no column says where the receive work ran.
        let text = tables(&rows[..1], 500, 30);
        assert!(
            text.contains("| appliance, half-open SYN | 19.75 |"),
            "{text}"
        );
        assert_eq!(
            data::parse_checker(
                Path::new("checker.csv"),
                &data::checker_csv(&[rows[1].run(10_000)])
            )
            .unwrap()[0]
                .receive_work,
            "other CPU (RPS)"
        );
    }

    #[test]
    fn keepalived_gets_the_same_servers_as_ours() {
        let toml = config_text(250, Probe::Connect);
        let conf = keepalived_config(250);
        assert_eq!(conf.matches("virtual_server ").count(), 3);
        assert_eq!(conf.matches("TCP_CHECK").count(), 250);
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
        for i in [0, 99, 100, 249] {
            let rs = server_address(i);
            assert!(toml.contains(&format!("\"{rs}\"")));
            assert!(conf.contains(&format!("real_server {} {} {{", rs.ip(), rs.port())));
            let vs = virtual_address(i);
            assert!(toml.contains(&format!("\"{vs}:80\"")));
            assert!(conf.contains(&format!("virtual_server {vs} 80 {{")));
        }
    }
}
