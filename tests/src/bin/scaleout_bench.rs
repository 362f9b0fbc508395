//! `make bench`: scale-out past one director, two sections printed and,
//! with `--append FILE`, added to FILE:
//! - one of three directors dies (appliance_tests::scale_out, in a VM:
//!   IPVS): the share of established connections broken, with IPVS's
//!   `sloppy_tcp` (the appliance's `lvs_sloppy_tcp`) and without, against
//!   the dead director's share and the theoretical 1/N; the share of the
//!   survivors' flows the router moved; the router's convergence when the
//!   box is cut off (BGP hold timer) and when only the daemon is killed;
//! - a real server removed: the share of flows that move, from the Maglev
//!   table IPVS builds (tests/vm_maglev.rs checks the model against the
//!   kernel, flow for flow) and the nftables dataplane's, against the
//!   server's own share; and how much two IPVS directors' tables differ
//!   once a server flapped on one of them (IPVS puts a re-added server at
//!   the head of its list, and the order decides a few slots).
//!
//! Usage: `scaleout_bench [--trials N] [--connections N] [--append FILE]`
//! (defaults: 3 trials per setting, 48 connections). Runs as root; the
//! release `appliance` is taken from beside this binary.

use appliance::dataplane::maglev::{self, Shape};
use appliance_tests::bench::report;
use appliance_tests::scale_out::{self, DIRECTORS, Options, Outcome};
use appliance_tests::vm;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scaleout_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    trials: usize,
    connections: usize,
    append: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut parsed = Args {
        trials: 3,
        connections: 48,
        append: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg}: a value is missing"))
        };
        let count = |text: String| {
            text.parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{arg} {text}: expected a positive integer"))
        };
        match arg.as_str() {
            "--trials" => parsed.trials = count(value()?)?,
            "--connections" => parsed.connections = count(value()?)?,
            "--append" => parsed.append = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(parsed)
}

fn run() -> Result<(), String> {
    let args = args()?;
    let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    let appliance = exe.with_file_name("appliance");
    if !appliance.is_file() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release -p appliance` (make bench does)",
            appliance.display()
        ));
    }
    let kernel = vm::kernel::kernel().map_err(|e| e.to_string())?;
    let mut runs: Vec<(bool, Outcome)> = Vec::new();
    for trial in 0..args.trials {
        for sloppy in [true, false] {
            let options = Options {
                sloppy,
                connections: args.connections,
                dead: trial,
            };
            let out = scale_out::vm(&appliance, options)
                .and_then(|vm| vm.run())
                .map_err(|e| e.to_string())?;
            if out.exit_code != 0 {
                return Err(format!("the VM scenario exited {}\n{out}", out.exit_code));
            }
            let outcome = Outcome::read(&out, options)?;
            eprintln!(
                "trial {trial}, sloppy_tcp {sloppy}: {} died carrying {}, {} broken, \
                 {} moved between survivors, converged in {:.2} s (cut off) and {:.2} s (killed)",
                outcome.dead,
                outcome.on_dead(),
                outcome.broken.len(),
                outcome.moved_between_survivors,
                outcome.cut_off.as_secs_f64(),
                outcome.killed.as_secs_f64()
            );
            for name in ["route before", "route after"] {
                eprintln!("  {name}: {}", vm::section(&out.stdout, name).join("; "));
            }
            if outcome.unsettled > 0 {
                eprintln!(
                    "  {} flows live on two directors in one listing; the router's events:\n{}",
                    outcome.unsettled,
                    vm::section(&out.stdout, "router events").join("\n")
                );
            }
            runs.push((sloppy, outcome));
        }
    }
    let mut section = directors(&args, &kernel.release, &runs);
    section += "\n";
    section += &removal()?;
    println!("{section}");
    if let Some(path) = args.append {
        appliance_tests::bench::append(&path, &format!("\n{section}"))?;
        eprintln!("appended to {}", path.display());
    }
    Ok(())
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "–".into();
    }
    format!("{part} ({:.1} %)", part as f64 * 100.0 / whole as f64)
}

/// Seconds, median / worst; a dash without samples.
fn median_and_worst(samples: Vec<Duration>) -> String {
    if samples.is_empty() {
        return "–".into();
    }
    let (median, worst) = report::median_and_worst(samples);
    format!("{:.2} / {:.2} s", median.as_secs_f64(), worst.as_secs_f64())
}

/// The first section: one of three directors dies.
fn directors(args: &Args, kernel: &str, runs: &[(bool, Outcome)]) -> String {
    let n = DIRECTORS.len();
    let mut out = format!(
        "## Scale-out: one of {n} directors dies (in a VM)\n\n\
         Generated by `make bench` (tests/src/bin/scaleout_bench.rs, the scenario in \
         tests/src/scale_out.rs): IPVS, so in a VM (Debian's kernel {kernel} under qemu TCG). \
         FRR's bgpd and zebra route a client's {} long-lived connections (a line every \
         {} ms each, echoed) over {n} directors by ECMP (layer-4 hash; Linux's multipath \
         is hash-threshold; the client's TCP never redraws its flow hash, `net.core.txrehash \
         = 0`, since on one kernel the router takes that hash instead of the ports'); each director's appliance announces the VIP over BGP (hold \
         time 3 s) and runs an `mh` (mh-port) LVS-DR service over the same four real \
         servers. In each trial one director's box dies (its link down, then its daemon \
         killed; each director in turn), {} trials per setting; a connection is broken when \
         its echo stops. Theoretical share of one director: 1/{n} = {:.1} %. Goal: with \
         `lvs_sloppy_tcp`, none broken; without, the dead director's share is the floor \
         (and the router's hash-threshold adds the survivors' flows it moves).\n\n",
        args.connections,
        Options {
            sloppy: true,
            connections: args.connections,
            dead: 0,
        }
        .interval()
        .as_millis(),
        args.trials,
        100.0 / n as f64
    );
    let settings = [true, false];
    let of = |sloppy: bool| {
        runs.iter()
            .filter(move |(s, _)| *s == sloppy)
            .map(|(_, o)| o)
    };
    // Shares of the connections the client opened.
    let cell = |sloppy: bool, f: &dyn Fn(&Outcome) -> usize| {
        percent(
            of(sloppy).map(f).sum(),
            of(sloppy).count() * args.connections,
        )
    };
    out += "| | with `lvs_sloppy_tcp` | without |\n|---|---:|---:|\n";
    let row = |label: &str, cells: Vec<String>| format!("| {label} | {} |\n", cells.join(" | "));
    out += &row(
        "connections",
        settings
            .iter()
            .map(|s| (of(*s).count() * args.connections).to_string())
            .collect(),
    );
    out += &row(
        "on the dead director",
        settings
            .iter()
            .map(|s| cell(*s, &|o| o.on_dead()))
            .collect(),
    );
    out += &row(
        "broken",
        settings
            .iter()
            .map(|s| cell(*s, &|o| o.broken.len()))
            .collect(),
    );
    out += &row(
        "survivors' flows the router moved",
        vec![
            cell(true, &|o| o.moved_between_survivors),
            "(broken, if any)".into(),
        ],
    );
    out += &row(
        "flows the router moved apart from the fault (left out above)",
        settings
            .iter()
            .map(|s| cell(*s, &|o| o.unsettled))
            .collect(),
    );
    let cut_off = |o: &Outcome| o.cut_off;
    let killed = |o: &Outcome| o.killed;
    for (fault, time) in [
        ("box cut off", &cut_off as &dyn Fn(&Outcome) -> Duration),
        ("daemon killed", &killed),
    ] {
        out += &row(
            &format!("router converged, {fault} (median / worst)"),
            settings
                .iter()
                .map(|s| median_and_worst(of(*s).map(time).collect()))
                .collect(),
        );
    }
    out += "\nA box cut off is dropped by the router's hold timer (3 s here; BFD would be \
            faster); a daemon killed on a live box closes its session at once. When the dead \
            director is at an end of the router's route (zebra's order of next hops, which \
            is not the address order), hash-threshold moves 1/6 of all flows between the \
            survivors too (the middle one's death moves none); a flow counts as moved when \
            its client port is live (a packet in the last 5 s) on one survivor's IPVS before \
            and on the other's after. With `sloppy_tcp` they go on, since every director's \
            `mh` table sends them to the same real server; without, they break like the \
            dead director's.\n";
    out
}

/// Four real servers of the given weights, as a director lists them.
fn servers(weights: &[u32]) -> Vec<(SocketAddr, u32)> {
    weights
        .iter()
        .zip(1u8..)
        .map(|(w, i)| (SocketAddr::from(([10, 0, 2, 10 + i], 80)), *w))
        .collect()
}

/// The share of `a`'s slots whose server differs in `b` (by address).
fn differ(
    a: &[Option<u32>],
    a_servers: &[(SocketAddr, u32)],
    b: &[Option<u32>],
    b_servers: &[(SocketAddr, u32)],
) -> f64 {
    let owner =
        |slot: Option<u32>, servers: &[(SocketAddr, u32)]| slot.map(|i| servers[i as usize].0);
    let moved = a
        .iter()
        .zip(b)
        .filter(|(x, y)| owner(**x, a_servers) != owner(**y, b_servers))
        .count();
    moved as f64 / a.len() as f64
}

/// The second section: flows moved by a real server's removal, and two
/// IPVS directors' tables after a server flapped on one of them.
fn removal() -> Result<String, String> {
    let mut out = String::from(
        "## Scale-out: flows moved when a real server is removed\n\n\
         Generated by `make bench` (tests/src/bin/scaleout_bench.rs) from the Maglev \
         tables the directors build (appliance-core dataplane/maglev.rs: IPVS's `mh` table, \
         which tests/vm_maglev.rs checks against the kernel flow for flow, and the nftables \
         dataplane's), over every slot, so over all flows alike: for four real servers, \
         each removed in turn, its share of the flows and the share that moved; the worst \
         of the four. Goal: no more than its own share + 1 %.\n\n\
         | table | weights | its share | moved | over its share |\n\
         |---|---|---:|---:|---:|\n",
    );
    let shapes: [(&str, Shape); 2] = [
        ("IPVS `mh` (4093 slots)", maglev::IPVS),
        ("nftables (65537 slots)", maglev::NFTABLES),
    ];
    let weightings: [&[u32]; 2] = [&[1, 1, 1, 1], &[1, 2, 1, 3]];
    for (name, shape) in shapes {
        for weights in weightings {
            let all = servers(weights);
            let before = maglev::table(shape, &all).map_err(|e| e.to_string())?;
            let mut worst = (0.0, 0.0);
            for removed in 0..all.len() {
                let rest: Vec<_> = all
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != removed)
                    .map(|(_, s)| *s)
                    .collect();
                let after = maglev::table(shape, &rest).map_err(|e| e.to_string())?;
                let share = before
                    .iter()
                    .filter(|s| **s == Some(removed as u32))
                    .count() as f64
                    / before.len() as f64;
                let moved = differ(&before, &all, &after, &rest);
                if moved - share > worst.1 - worst.0 {
                    worst = (share, moved);
                }
            }
            let weights: Vec<String> = weights.iter().map(u32::to_string).collect();
            let _ = writeln!(
                out,
                "| {name} | {} | {:.2} % | {:.2} % | {:.2} % |",
                weights.join(", "),
                worst.0 * 100.0,
                worst.1 * 100.0,
                (worst.1 - worst.0) * 100.0
            );
        }
    }
    // A server that fails and comes back on one IPVS director goes to the
    // head of that director's list; a director that never lost it keeps
    // the order it was configured in.
    let all = servers(&[1, 1, 1, 1]);
    let kernel = |list: &[(SocketAddr, u32)]| maglev::table(maglev::IPVS, list);
    let steady: Vec<_> = all.iter().rev().copied().collect();
    let steady_table = kernel(&steady).map_err(|e| e.to_string())?;
    let mut worst: f64 = 0.0;
    for flapped in &all {
        let mut list: Vec<_> = steady.iter().copied().filter(|s| s != flapped).collect();
        list.insert(0, *flapped);
        let table = kernel(&list).map_err(|e| e.to_string())?;
        worst = worst.max(differ(&steady_table, &steady, &table, &list));
    }
    let _ = write!(
        out,
        "\nTwo IPVS directors with the same four servers, one of which failed and came back \
         on one of them (IPVS adds a server at the head of its list, and the order decides \
         a few slots): their tables differ on {:.2} % of the flows at worst, for as long \
         as the kernel keeps that service (a restart of the appliance keeps it). The nftables \
         dataplane builds its table from the servers in address order every time, so its \
         directors never differ.\n\n\
         On IPVS both are avoided by giving a failed server weight 0 instead of removing it \
         (`inhibit_on_failure = true` on each real server) with the `mh` fallback flag \
         (`sched_flags = {{ port = true, fallback = true }}`): IPVS builds the table from \
         each server's last weight above 0, so it keeps the table, the flows of the failed \
         server's slots alone go to others, and the server is never re-added at the head \
         (tests/vm_maglev.rs checks it flow for flow).\n",
        worst * 100.0
    );
    Ok(out)
}
