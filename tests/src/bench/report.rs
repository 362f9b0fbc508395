//! The benchmark's results: per-scenario statistics and the markdown page
//! (`docs/benchmarks.md`) they are written to.

use std::fmt::Write;
use std::time::Duration;

/// How far over the protocol's bound the appliance may be.
pub const BOUND_SLACK: Duration = Duration::from_millis(10);

/// The median of `samples` (the mean of the two middle ones for an even
/// count); `None` when empty.
pub fn median(samples: &[Duration]) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => Some((*sorted.get(n / 2 - 1)? + *sorted.get(n / 2)?) / 2),
    }
}

/// The median and the worst of `values` (0 and 0 for none): a bench
/// cell's "median (worst)".
pub fn median_and_worst<T: Ord + Copy + Default>(mut values: Vec<T>) -> (T, T) {
    values.sort_unstable();
    let median = values.get(values.len() / 2).copied().unwrap_or_default();
    (median, values.last().copied().unwrap_or_default())
}

/// The 95th percentile by nearest rank: the smallest sample with at least
/// 95 % of the samples at or below it (the maximum for fewer than 20).
pub fn p95(samples: &[Duration]) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (sorted.len() * 95).div_ceil(100);
    sorted.get(rank.checked_sub(1)?).copied()
}

/// The outages of one implementation in one scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Samples {
    pub outages: Vec<Duration>,
    /// Trials in which the new master never answered.
    pub lost: usize,
}

impl Samples {
    fn median(&self) -> Option<Duration> {
        median(&self.outages)
    }

    fn p95(&self) -> Option<Duration> {
        p95(&self.outages)
    }
}

/// One scenario: a VRRP version and interval, a fault, both implementations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// E.g. "v2, 1 s".
    pub protocol: String,
    /// E.g. "link cut".
    pub fault: String,
    /// The protocol's own bound on the outage for this fault.
    pub bound: Duration,
    /// How the bound is computed, e.g. "3 × 1 s + 609.375 ms".
    pub bound_formula: String,
    pub appliance: Samples,
    pub keepalived: Samples,
}

impl Row {
    /// Whether the appliance met the goal: median and p95 no longer than
    /// keepalived's (within the probe interval, the resolution of the
    /// measure), p95 within [`BOUND_SLACK`] of the bound, no trial lost.
    pub fn meets_goal(&self) -> bool {
        let (a, k) = (&self.appliance, &self.keepalived);
        let (Some(am), Some(ap), Some(km), Some(kp)) = (a.median(), a.p95(), k.median(), k.p95())
        else {
            return false;
        };
        let resolution = super::probe::PROBE_INTERVAL;
        a.lost == 0
            && am <= km + resolution
            && ap <= kp + resolution
            && ap <= self.bound + BOUND_SLACK
    }
}

/// Where and how the run happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// RFC 3339 date, e.g. "2025-01-31".
    pub date: String,
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub keepalived: String,
    pub appliance: String,
    pub trials: usize,
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".into(), ms)
}

fn ratio(a: Option<Duration>, k: Option<Duration>) -> String {
    match (a, k) {
        (Some(a), Some(k)) if !k.is_zero() => format!("{:.3}", a.as_secs_f64() / k.as_secs_f64()),
        _ => "–".into(),
    }
}

/// The most columns a table of docs/benchmarks.md has: more do not fit a
/// page.
pub const MAX_COLUMNS: usize = 7;

/// How many columns the widest Markdown table in `text` has.
pub fn widest_table(text: &str) -> usize {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|') && l.ends_with('|') && l.len() > 1)
        .map(|l| l.matches('|').count() - 1)
        .max()
        .unwrap_or(0)
}

/// The results, one line per scenario: the outages (ms, median / p95),
/// then their ratios in a table of their own.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| protocol | fault | bound | appliance | keepalived | goal met |\n\
         |---|---|---:|---:|---:|:---:|\n",
    );
    let cell = |s: &Samples| {
        let lost = if s.lost > 0 {
            format!(" ({} lost)", s.lost)
        } else {
            String::new()
        };
        format!("{} / {}{lost}", opt_ms(s.median()), opt_ms(s.p95()))
    };
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.protocol,
            row.fault,
            ms(row.bound),
            cell(&row.appliance),
            cell(&row.keepalived),
            if row.meets_goal() { "yes" } else { "no" },
        );
    }
    out.push_str(
        "\nThe same as ratios, appliance ÷ keepalived (under 1: the appliance's \
         outage is the shorter):\n\n\
         | protocol | fault | median | p95 |\n\
         |---|---|---:|---:|\n",
    );
    for row in rows {
        let (a, k) = (&row.appliance, &row.keepalived);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.protocol,
            row.fault,
            ratio(a.median(), k.median()),
            ratio(a.p95(), k.p95()),
        );
    }
    out
}

/// Every trial's outage, for who wants more than two statistics.
fn raw(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        for (name, samples) in [
            ("appliance", &row.appliance),
            ("keepalived", &row.keepalived),
        ] {
            let mut sorted = samples.outages.clone();
            sorted.sort();
            let list: Vec<String> = sorted.into_iter().map(ms).collect();
            let _ = writeln!(
                out,
                "- {}, {}, {name}: {}{}",
                row.protocol,
                row.fault,
                list.join(", "),
                if samples.lost > 0 {
                    format!("; {} trial(s) without recovery", samples.lost)
                } else {
                    String::new()
                }
            );
        }
    }
    out
}

/// Signed difference `a − b` in milliseconds, e.g. "+3.2" or "-10.0".
fn delta_ms(a: Duration, b: Duration) -> String {
    if a >= b {
        format!("+{}", ms(a - b))
    } else {
        format!("-{}", ms(b - a))
    }
}

/// One sentence per scenario: how the appliance compares with keepalived
/// and with the bound.
fn findings(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        let (a, k) = (&row.appliance, &row.keepalived);
        let (Some(am), Some(ap), Some(km)) = (a.median(), a.p95(), k.median()) else {
            let _ = writeln!(
                out,
                "- {}, {}: not enough trials recovered to compare.",
                row.protocol, row.fault
            );
            continue;
        };
        let _ = writeln!(
            out,
            "- {}, {}: appliance median {} ms vs keepalived {} ms ({} ms); appliance p95 {} ms is {} ms from the bound ({} ms): {}.",
            row.protocol,
            row.fault,
            ms(am),
            ms(km),
            delta_ms(am, km),
            ms(ap),
            delta_ms(ap, row.bound),
            ms(row.bound),
            if row.meets_goal() {
                "goal met"
            } else {
                "goal missed"
            },
        );
    }
    out
}

/// The whole `docs/benchmarks.md` page.
pub fn page(machine: &Machine, rows: &[Row]) -> String {
    let bounds: String = rows
        .iter()
        .map(|r| {
            format!(
                "- {}, {}: {} = {} ms\n",
                r.protocol,
                r.fault,
                r.bound_formula,
                ms(r.bound)
            )
        })
        .collect();
    format!(
        r#"# Failover benchmark

Generated by `make bench` (tests/src/bin/failover_bench.rs); do not edit by
hand, run it again.

## Goal

When the master fails, the client-visible outage with the appliance is never
longer than with keepalived, and within {slack} ms of the protocol's own bound
(RFC 3768 / RFC 5798 timers; see below).

## Run

- date: {date}
- machine: {nproc} CPUs (nproc), {cpu}, Linux {kernel}
- keepalived: {keepalived} (Debian's package)
- appliance: {appliance} (release build)
- trials per implementation and scenario: {trials}

## Results

Client-visible outage in milliseconds, median / p95 over the trials, and
the protocol's bound (below). "goal met": the appliance's median and p95
are no longer than keepalived's (give or take the {interval} ms probe
resolution), its p95 is within {slack} ms of the bound, and no trial lost the
service.

{table}
![Every trial's outage, appliance and keepalived, beside the protocol's bound: a panel per scenario](img/failover.svg)

Every trial's outage, sorted in each panel: a point per trial, the line the
protocol's bound. [bench-data/failover.csv](bench-data/failover.csv) holds
them; `make bench` draws the plot from it.

Probe resolution: {interval} ms (every outage is a multiple of it, ± a
scheduling jitter), so differences under {interval} ms are noise.

IPv4 forwarding is off in every namespace. With it on (a namespace inherits
the host's setting), a director that has just dropped the VIP routes the
client's packets to the new master as soon as its gratuitous ARP arrives,
and probes sent up to one probe timeout earlier then succeed late: the
outage looks shorter than the VRRP failover is.

## What is measured

Topology: three network namespaces on one bridge (`appliance_tests::netns::Lan`):
`master` (10.0.0.1, priority 150), `backup` (10.0.0.2, priority 100) and
`client` (10.0.0.3); VIP 10.0.0.100/24, virtual router 51, IPv4. Both
implementations run the same keepalived.conf: the appliance as
`appliance run --config FILE`, keepalived as
`keepalived -n -l -D -f FILE -p … -r … -c …`. Each director runs a TCP server
on 0.0.0.0:80 that answers every connection with its name (one byte), so
whichever director holds the VIP answers, and the client knows which.

Probes: the client starts a probe every {interval} ms: a TCP connect to
10.0.0.100:80 and a one-byte read, which succeeds when the handshake and the
read complete within {timeout} ms (a lost SYN is only retransmitted after
1 s, so a lost probe always times out). This measures real reachability,
including the client's ARP cache: after a failover the client reaches the
new master only once its gratuitous ARP has replaced the old master's MAC.

**Outage** (client-visible) = send time of the first probe answered by the
new master − send time of the first probe that failed, both counted from
a steady state of 20 probes in a row answered by the master. (Zero if the
backup answered with no probe failing.)

Faults, each trial starting from a fresh topology (both daemons restarted,
the client's ARP cache flushed, the master holding the VIP, the backup in
BACKUP, the probes steady):

- **link cut**: right after the client receives an advert from the master,
  the master's switch port is set down (the master loses carrier and can
  reach no one). The backup takes over when its Master_Down_Timer expires,
  so cutting just after an advert is the worst case: the outage is then
  close to the full Master_Down_Interval.
- **clean stop**: SIGTERM to the master daemon; it resigns (an advert with
  priority 0) and removes the VIP; the backup takes over after Skew_Time.

Protocol bounds (backup priority 100; Skew_Time = (256 − 100) / 256 s for
v2 (RFC 3768), (256 − 100) × Master_Adver_Interval / 256 for v3 (RFC 5798);
Master_Down_Interval = 3 × advert interval + Skew_Time):

{bounds}
Every outage (ms, sorted):

{raw}
## Findings

{findings}

## How to run

```
make bench              # {trials_default} trials per implementation and scenario (~15 min)
TRIALS=2 make bench     # a quick run
```

As root (network namespaces), with keepalived installed (Debian package
`keepalived`; `scripts/install-deps` installs it). `make bench` builds the
release binaries and runs `failover_bench`, which prints the table and
writes this page and bench-data/failover.csv, then the other benches, then
`plots`, which draws img/*.svg from bench-data/*.csv
(`cargo run -p appliance-tests --bin plots` draws them again).
"#,
        slack = BOUND_SLACK.as_millis(),
        date = machine.date,
        nproc = machine.nproc,
        cpu = machine.cpu,
        kernel = machine.kernel,
        keepalived = machine.keepalived,
        appliance = machine.appliance,
        trials = machine.trials,
        table = table(rows),
        interval = super::probe::PROBE_INTERVAL.as_millis(),
        timeout = super::probe::PROBE_TIMEOUT.as_millis(),
        bounds = bounds,
        raw = raw(rows),
        findings = findings(rows).trim_end(),
        trials_default = super::DEFAULT_TRIALS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_cell_is_the_median_and_the_worst() {
        assert_eq!(median_and_worst(vec![3, 0, 122, 0, 1]), (1, 122));
        assert_eq!(median_and_worst(Vec::new()), (0, 0));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[ms(3), ms(1), ms(2)]), Some(ms(2)));
        assert_eq!(
            median(&[ms(4), ms(1), ms(2), ms(3)]),
            Some(Duration::from_micros(2500))
        );
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let ten: Vec<Duration> = (1..=10).map(ms).collect();
        assert_eq!(p95(&ten), Some(ms(10)));
        let forty: Vec<Duration> = (1..=40).map(ms).collect();
        assert_eq!(p95(&forty), Some(ms(38)));
        assert_eq!(p95(&[]), None);
    }

    fn row(appliance: &[u64], keepalived: &[u64], bound: u64) -> Row {
        Row {
            protocol: "v3, 100 ms".into(),
            fault: "clean stop".into(),
            bound: ms(bound),
            bound_formula: "Skew_Time".into(),
            appliance: Samples {
                outages: appliance.iter().copied().map(ms).collect(),
                lost: 0,
            },
            keepalived: Samples {
                outages: keepalived.iter().copied().map(ms).collect(),
                lost: 0,
            },
        }
    }

    #[test]
    fn the_goal_needs_no_worse_than_keepalived_and_the_bound() {
        assert!(row(&[60, 65], &[60, 70], 61).meets_goal());
        assert!(
            !row(&[60, 75], &[60, 70], 61).meets_goal(),
            "p95 over keepalived's"
        );
        assert!(
            !row(&[60, 80], &[60, 90], 61).meets_goal(),
            "p95 over the bound + 10 ms"
        );
        let mut lost = row(&[60], &[60], 61);
        lost.appliance.lost = 1;
        assert!(!lost.meets_goal());
    }

    #[test]
    fn table_shows_ms_and_ratios() {
        let mut lost = row(&[50, 60], &[100, 120], 61);
        lost.keepalived.lost = 2;
        let t = table(&[lost]);
        assert!(
            t.contains(
                "| v3, 100 ms | clean stop | 61.0 | 55.0 / 60.0 | 110.0 / 120.0 (2 lost) | yes |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| v3, 100 ms | clean stop | 0.500 | 0.500 |"),
            "{t}"
        );
        assert!(widest_table(&t) <= MAX_COLUMNS, "{t}");
    }

    #[test]
    fn every_table_of_the_committed_pages_fits() {
        for page in ["docs/benchmarks.md", "docs/benchmarks-checker.md"] {
            let path = super::super::data::workspace(page);
            let text = std::fs::read_to_string(&path).unwrap();
            for section in text.split("\n## ") {
                let title = section.lines().next().unwrap_or_default();
                assert!(
                    widest_table(section) <= MAX_COLUMNS,
                    "{}, {title}: a table of {} columns",
                    path.display(),
                    widest_table(section)
                );
            }
        }
    }

    #[test]
    fn the_page_fits_too() {
        let machine = Machine {
            date: "2025-01-31".into(),
            nproc: 2,
            cpu: "a CPU".into(),
            kernel: "6.1".into(),
            keepalived: "Keepalived v2.2.7".into(),
            appliance: "appliance 0.1.0".into(),
            trials: 2,
        };
        let page = page(&machine, &[row(&[50, 60], &[100, 120], 61)]);
        assert!(widest_table(&page) <= MAX_COLUMNS, "{page}");
        assert!(page.contains("](img/failover.svg)"), "{page}");
    }
}
