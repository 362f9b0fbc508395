//! The daemon's timeline as tests see it: reading the JSON lines a running
//! `appliance run --timeline FILE` appends, the test's own marks ("cut m's
//! link"), merging nodes by wall clock, and rendering the ORDER of what
//! happened for snapshots, without times, so the snapshot holds on a slow
//! or noisy machine (tests assert the intervals that matter numerically).

use crate::error::{Error, Result};
use appliance::clock::Instant;
use appliance::timeline::{Event, EventKind};
use appliance::vrrp::Priority;
use appliance::vrrp::machine::State;
use serde::Deserialize;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The node name of the test's own marks.
pub const TEST_NODE: &str = "test";

/// Events closer than this on different nodes form a burst: their
/// interleaving is a race (one node's VIPs added vs the other's reaction
/// to its advert), so the rendering groups a burst by node, nodes in the
/// order of their first event there, which is causal (a node's state
/// change is written before the advert the other reacts to is sent).
/// Causally distinct phases are hundreds of milliseconds apart (skew time,
/// Master_Down_Interval), and the test's marks separate the rest.
const BURST_GAP: Duration = Duration::from_millis(150);

/// One timeline line: an event with the wall-clock time it was written.
#[derive(Clone, Debug)]
pub struct Entry {
    pub wall: SystemTime,
    pub event: Event,
}

#[derive(Deserialize)]
struct Line {
    wall: String,
    #[serde(flatten)]
    event: Event,
}

impl Entry {
    /// A mark of something the test did, stamped now.
    pub fn mark(what: &str) -> Self {
        Self {
            wall: SystemTime::now(),
            event: Event {
                at: Instant::ZERO,
                node: TEST_NODE.to_string(),
                instance: None,
                kind: EventKind::Injected,
                detail: what.to_string(),
            },
        }
    }

    /// A mark of something the test did after every entry of `before`
    /// was written (and before any written later): stamped just after the
    /// latest of them, for a scenario whose clock the test cannot read.
    pub fn mark_after(what: &str, before: &[Entry]) -> Self {
        let latest = before
            .iter()
            .map(|e| e.wall)
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Self {
            wall: latest + Duration::from_nanos(1),
            ..Self::mark(what)
        }
    }

    pub fn node(&self) -> &str {
        &self.event.node
    }

    /// The state this event entered, if it is a state change.
    pub fn entered(&self) -> Option<State> {
        match self.event.kind {
            EventKind::State { to, .. } => Some(to),
            _ => None,
        }
    }

    /// The advertised priority, if this is an advert sent.
    pub fn advert(&self) -> Option<Priority> {
        match self.event.kind {
            EventKind::Advert { priority } => Some(priority),
            _ => None,
        }
    }

    /// How long after `earlier` this happened (negative spans are zero).
    pub fn since(&self, earlier: &Entry) -> Duration {
        self.wall
            .duration_since(earlier.wall)
            .unwrap_or(Duration::ZERO)
    }

    /// Whether this happened after `earlier`.
    pub fn after(&self, earlier: &Entry) -> bool {
        self.wall > earlier.wall
    }
}

/// Reads a timeline file; a missing file is an empty timeline (the daemon
/// has written nothing yet), a last line without its newline is still
/// being written and is left out.
pub fn read(path: &Path) -> Result<Vec<Entry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::error::io(format!("reading {}", path.display()))(e)),
    };
    parse(&text, path)
}

/// Timeline lines as [`read`] takes them, from `text` (a VM scenario's
/// copy of the file at `path`, which errors name).
pub fn parse(text: &str, path: &Path) -> Result<Vec<Entry>> {
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(index, l)| {
            let line: Line = serde_json::from_str(l).map_err(|source| Error::Timeline {
                path: path.to_path_buf(),
                line: index + 1,
                source,
            })?;
            let wall = humantime::parse_rfc3339(&line.wall).map_err(|source| Error::Wall {
                path: path.to_path_buf(),
                line: index + 1,
                wall: line.wall.clone(),
                source,
            })?;
            Ok(Entry {
                wall,
                event: line.event,
            })
        })
        .collect()
}

/// The marks a VM scenario wrote ([`crate::vm::scenario::mark`]), one per
/// line, `WHAT N1 N2 …`: what the test did after the first N1 lines of
/// `timelines[0]` were written, N2 of `timelines[1]`, and so on. A line
/// not of that form is an error naming it.
pub fn marks(text: &str, timelines: &[&[Entry]]) -> std::result::Result<Vec<Entry>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut fields = line.split_whitespace();
            let what = fields.next().ok_or_else(|| format!("mark {line:?}"))?;
            let counts: Vec<usize> = fields
                .map(|n| {
                    n.parse()
                        .map_err(|_| format!("mark {line:?}: {n} is no count"))
                })
                .collect::<std::result::Result<_, _>>()?;
            if counts.len() != timelines.len() {
                return Err(format!("mark {line:?}: {} timelines", timelines.len()));
            }
            let written: Vec<Entry> = timelines
                .iter()
                .zip(counts)
                .flat_map(|(t, n)| t[..n.min(t.len())].iter().cloned())
                .collect();
            Ok(Entry::mark_after(what, &written))
        })
        .collect()
}

/// Several timelines (and marks) as one, ordered by wall clock; entries of
/// one timeline keep their order.
pub fn merge(timelines: &[&[Entry]]) -> Vec<Entry> {
    let mut all: Vec<Entry> = timelines.iter().flat_map(|t| t.iter().cloned()).collect();
    all.sort_by_key(|e| e.wall);
    all
}

/// Whether an entry belongs in the order snapshot: state and priority
/// changes, VIPs, notifies, the first gratuitous burst of a takeover,
/// resignations (priority 0 adverts) and the test's marks. Ordinary
/// adverts and the delayed gratuitous repeats are periodic, so how many
/// fall between two events depends on the machine's speed.
fn shown(e: &Entry) -> bool {
    match &e.event.kind {
        EventKind::Advert { priority } => *priority == Priority::RESIGN,
        EventKind::Gratuitous { .. } => e.event.detail == "became master",
        // Once per advert interval while a lower-priority master lasts.
        EventKind::LowerPriority { .. } => false,
        _ => true,
    }
}

/// The order of events, one per line, without times: `node  instance  what
/// (detail)`, times and link-local addresses in details redacted. Marks
/// begin a section; within a section, events of several nodes closer than
/// [`BURST_GAP`] are grouped by node, each node's own order kept.
pub fn render_order(entries: &[Entry]) -> String {
    let entries: Vec<&Entry> = entries.iter().filter(|e| shown(e)).collect();
    let mut bursts: Vec<Vec<&Entry>> = Vec::new();
    for e in entries {
        let joins = bursts.last().and_then(|b| b.last()).is_some_and(|last| {
            e.node() != TEST_NODE
                && last.node() != TEST_NODE
                && e.wall.duration_since(last.wall).unwrap_or_default() < BURST_GAP
        });
        match bursts.last_mut() {
            Some(burst) if joins => burst.push(e),
            _ => bursts.push(vec![e]),
        }
    }
    let mut text = String::new();
    for burst in bursts {
        let mut nodes: Vec<&str> = Vec::new();
        for e in &burst {
            if !nodes.contains(&e.node()) {
                nodes.push(e.node());
            }
        }
        let grouped = nodes
            .iter()
            .flat_map(|node| burst.iter().filter(move |e| e.node() == *node));
        for e in grouped {
            text.push_str(&line(e));
            text.push('\n');
        }
    }
    text
}

fn line(e: &Entry) -> String {
    if e.node() == TEST_NODE {
        return format!("== {}", e.event.detail);
    }
    let mut text = format!(
        "{}  {}  {}",
        e.event.node,
        e.event.instance.as_deref().unwrap_or("-"),
        e.event.kind
    );
    if !e.event.detail.is_empty() {
        text.push_str(&format!("  ({})", redact(&e.event.detail)));
    }
    text
}

/// Redacts what changes from run to run: times (`no advert for 3.609375s`
/// -> `no advert for <t>`) and IPv6 link-local addresses, which derive
/// from random MAC addresses (`from fe80::1c2f:…,` -> `from <link-local>,`).
fn redact(detail: &str) -> String {
    detail
        .split(' ')
        .map(|word| {
            let (bare, comma) = match word.strip_suffix(',') {
                Some(bare) => (bare, ","),
                None => (word, ""),
            };
            let number = bare.strip_suffix('s').unwrap_or("");
            if !number.is_empty() && number.parse::<f64>().is_ok() {
                format!("<t>{comma}")
            } else if bare
                .parse::<std::net::Ipv6Addr>()
                .is_ok_and(|a| a.is_unicast_link_local())
            {
                format!("<link-local>{comma}")
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, node: &str, kind: EventKind, detail: &str) -> Entry {
        Entry {
            wall: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
            event: Event {
                at: Instant::from_micros(ms * 1000),
                node: node.into(),
                instance: Some("VI_A".into()),
                kind,
                detail: detail.into(),
            },
        }
    }

    fn state(from: State, to: State) -> EventKind {
        EventKind::State { from, to }
    }

    #[test]
    fn a_mark_comes_after_what_was_written_before_it_and_before_the_rest() {
        let a = vec![
            at(100, "a", state(State::Backup, State::Master), "x"),
            at(900, "a", state(State::Master, State::Backup), "y"),
        ];
        let b = vec![at(300, "b", state(State::Backup, State::Master), "z")];
        let placed = marks("start 1 1\nlater 2 1\n", &[&a, &b]).unwrap();
        let merged = merge(&[&a, &b, &placed]);
        let order: Vec<&str> = merged
            .iter()
            .map(|e| match e.node() {
                TEST_NODE => e.event.detail.as_str(),
                node => node,
            })
            .collect();
        assert_eq!(order, ["a", "b", "start", "a", "later"]);
        assert_eq!(
            marks("start 1\n", &[&a, &b]).unwrap_err(),
            "mark \"start 1\": 2 timelines"
        );
        assert!(
            marks("start x 1\n", &[&a, &b])
                .unwrap_err()
                .contains("x is no count")
        );
    }

    #[test]
    fn redacts_times_and_link_local_addresses() {
        assert_eq!(
            redact(
                "preempt: ignored priority 100 from fe80::10bf:7aff:fe8a:fcc4, no better advert for 3.415s"
            ),
            "preempt: ignored priority 100 from <link-local>, no better advert for <t>"
        );
        assert_eq!(
            redact("higher priority 150 from 10.9.0.1"),
            "higher priority 150 from 10.9.0.1"
        );
    }

    #[test]
    fn render_groups_races_by_node_and_drops_periodic_events() {
        let p = Priority::from_u8;
        let mut kill = Entry::mark("kill -9 m");
        kill.wall = SystemTime::UNIX_EPOCH + Duration::from_millis(1500);
        let m = vec![
            at(1000, "m", EventKind::Advert { priority: p(150) }, ""),
            at(6000, "m", state(State::Backup, State::Master), "preempt"),
            at(6001, "m", EventKind::Advert { priority: p(150) }, ""),
            at(6003, "m", EventKind::VipsAdded, ""),
        ];
        let b = vec![
            at(
                5100,
                "b",
                state(State::Backup, State::Master),
                "master down: no advert for 3.609375s",
            ),
            at(5101, "b", EventKind::VipsAdded, ""),
            at(
                5101,
                "b",
                EventKind::Gratuitous { repeat: 5 },
                "became master",
            ),
            at(
                6100,
                "b",
                EventKind::Gratuitous { repeat: 5 },
                "garp_master_delay",
            ),
            // Races with m's VIPs added: shown after them, m's state change
            // came first.
            at(6002, "b", state(State::Master, State::Backup), "higher"),
            at(6003, "b", EventKind::VipsRemoved, ""),
        ];
        let text = render_order(&merge(&[&m, &b, &[kill]]));
        assert_eq!(
            text,
            "== kill -9 m\n\
             b  VI_A  BACKUP -> MASTER  (master down: no advert for <t>)\n\
             b  VI_A  VIPs added\n\
             b  VI_A  gratuitous x5  (became master)\n\
             m  VI_A  BACKUP -> MASTER  (preempt)\n\
             m  VI_A  VIPs added\n\
             b  VI_A  MASTER -> BACKUP  (higher)\n\
             b  VI_A  VIPs removed\n"
        );
    }
}
