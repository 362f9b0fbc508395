//! The failover timeline: what happened, when, on which node and instance.
//! Shared by the simulator, the daemon and the tests. Serialises as JSON
//! lines and renders as compact, stable text for snapshots:
//!
//! ```text
//!   3.609375s  b  VI_1  BACKUP -> MASTER  (master down: no advert for 3.609375s)
//! ```

use crate::clock::Instant;
use crate::vrrp::Priority;
use crate::vrrp::machine::{Action, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;

/// What kind of thing happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventKind {
    State {
        from: State,
        to: State,
    },
    Advert {
        priority: Priority,
    },
    VipsAdded,
    VipsRemoved,
    Gratuitous {
        repeat: u32,
    },
    Notify {
        state: State,
    },
    Priority {
        from: Priority,
        to: Priority,
    },
    /// As master, an advert of a lower priority came in (the detail
    /// names its sender).
    LowerPriority {
        priority: Priority,
    },
    /// A fault or operator action injected by a test or scenario.
    Injected,
    /// A real server went up or down, or its weight changed (the instance
    /// field names the virtual service; the detail, the check's result).
    RealServer {
        address: SocketAddr,
        alive: bool,
        weight: u32,
    },
    /// A virtual server gained or lost its quorum: the live weight against
    /// the threshold crossed.
    Quorum {
        up: bool,
        weight_sum: u64,
        threshold: i64,
    },
    /// A virtual server's sorry server entered or left its pool.
    SorryServer {
        active: bool,
    },
    /// A received advert failed a receive rule (the detail says which).
    Dropped {
        reason: String,
    },
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::State { from, to } => write!(f, "{from} -> {to}"),
            EventKind::Advert { priority } => write!(f, "advert priority {priority}"),
            EventKind::VipsAdded => f.write_str("VIPs added"),
            EventKind::VipsRemoved => f.write_str("VIPs removed"),
            EventKind::Gratuitous { repeat } => write!(f, "gratuitous x{repeat}"),
            // keepalived's word for the programs run as an instance stops.
            EventKind::Notify {
                state: State::Initialize,
            } => f.write_str("notify stop"),
            EventKind::Notify { state } => {
                write!(f, "notify {}", format!("{state}").to_lowercase())
            }
            EventKind::Priority { from, to } => write!(f, "priority {from} -> {to}"),
            EventKind::LowerPriority { priority } => write!(f, "heard lower priority {priority}"),
            EventKind::Injected => f.write_str("INJECT"),
            EventKind::RealServer {
                address,
                alive,
                weight,
            } => {
                let health = if *alive { "UP" } else { "DOWN" };
                write!(f, "real server {address} {health} weight {weight}")
            }
            EventKind::Quorum {
                up,
                weight_sum,
                threshold,
            } => {
                let (word, cmp) = if *up { ("UP", ">=") } else { ("DOWN", "<") };
                write!(f, "quorum {word} (weight {weight_sum} {cmp} {threshold})")
            }
            EventKind::SorryServer { active } => {
                write!(f, "sorry server {}", if *active { "ON" } else { "OFF" })
            }
            EventKind::Dropped { reason } => write!(f, "advert dropped: {reason}"),
        }
    }
}

impl EventKind {
    /// The timeline entry for a machine action: its kind and detail.
    pub fn of_action(action: &Action) -> (EventKind, String) {
        match action {
            Action::SendAdvert { priority, .. } => (
                EventKind::Advert {
                    priority: *priority,
                },
                String::new(),
            ),
            Action::ResignTo { to, .. } => (
                EventKind::Advert {
                    priority: Priority::RESIGN,
                },
                format!("to {to}"),
            ),
            Action::AddVips => (EventKind::VipsAdded, String::new()),
            Action::RemoveVips => (EventKind::VipsRemoved, String::new()),
            Action::SendGratuitous { repeat, reason } => (
                EventKind::Gratuitous { repeat: *repeat },
                reason.to_string(),
            ),
            Action::Notify { state } => (EventKind::Notify { state: *state }, String::new()),
            Action::StateChanged { from, to, reason } => (
                EventKind::State {
                    from: *from,
                    to: *to,
                },
                reason.to_string(),
            ),
            Action::PriorityChanged { from, to } => (
                EventKind::Priority {
                    from: *from,
                    to: *to,
                },
                String::new(),
            ),
            Action::HeardLowerPriority { from, priority } => (
                EventKind::LowerPriority {
                    priority: *priority,
                },
                format!("from {from}"),
            ),
        }
    }
}

/// One timeline entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: Instant,
    pub node: String,
    /// The VRRP instance, if the event concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// An ordered record of events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timeline {
    events: Vec<Event>,
}

impl Timeline {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// One JSON object per line.
    pub fn to_json_lines(&self) -> Result<String, serde_json::Error> {
        let mut text = String::new();
        for e in &self.events {
            text.push_str(&serde_json::to_string(e)?);
            text.push('\n');
        }
        Ok(text)
    }

    /// Reads what [`Timeline::to_json_lines`] wrote; blank lines are skipped.
    pub fn from_json_lines(text: &str) -> Result<Self, serde_json::Error> {
        let events = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        Ok(Self { events })
    }

    /// State changes of one instance on one node, in order.
    pub fn transitions<'a>(
        &'a self,
        node: &'a str,
        instance: &'a str,
    ) -> impl Iterator<Item = (Instant, State, State)> + 'a {
        self.events.iter().filter_map(move |e| match e.kind {
            EventKind::State { from, to }
                if e.node == node && e.instance.as_deref() == Some(instance) =>
            {
                Some((e.at, from, to))
            }
            _ => None,
        })
    }

    /// The compact text rendering. Runs of ordinary adverts (same node,
    /// instance and priority, not interrupted by another event of that
    /// instance or by an injected event) collapse into one line giving the
    /// count and the last time; priority 0 adverts and adverts with a detail
    /// are shown one by one.
    pub fn render(&self) -> String {
        let mut lines: Vec<String> = Vec::new();
        // Open advert runs: (node, instance) -> (line index, first, last, count, priority).
        type Run = (usize, Instant, Instant, u32, Priority);
        let mut runs: BTreeMap<(String, String), Run> = BTreeMap::new();
        let width = self.events.iter().map(|e| e.node.len()).max().unwrap_or(0);
        let iwidth = self
            .events
            .iter()
            .map(|e| e.instance.as_deref().map_or(1, str::len))
            .max()
            .unwrap_or(0);
        let line = |e: &Event, what: &str| {
            let mut text = format!(
                "{:>11}  {:<width$}  {:<iwidth$}  {what}",
                e.at,
                e.node,
                e.instance.as_deref().unwrap_or("-"),
            );
            if !e.detail.is_empty() {
                let _ = write!(text, "  ({})", e.detail);
            }
            text
        };
        for e in &self.events {
            let key = (e.node.clone(), e.instance.clone().unwrap_or_default());
            match e.kind {
                EventKind::Advert { priority }
                    if priority != Priority::RESIGN && e.detail.is_empty() =>
                {
                    if let Some(run) = runs.get_mut(&key).filter(|r| r.4 == priority) {
                        run.2 = e.at;
                        run.3 += 1;
                        if let Some(slot) = lines.get_mut(run.0) {
                            *slot = advert_run_line(e, run, width, iwidth);
                        }
                    } else {
                        let run = (lines.len(), e.at, e.at, 1, priority);
                        lines.push(advert_run_line(e, &run, width, iwidth));
                        runs.insert(key, run);
                    }
                }
                EventKind::Injected => {
                    runs.clear();
                    lines.push(line(e, &e.kind.to_string()));
                }
                _ => {
                    runs.remove(&key);
                    lines.push(line(e, &e.kind.to_string()));
                }
            }
        }
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

fn advert_run_line(
    e: &Event,
    run: &(usize, Instant, Instant, u32, Priority),
    width: usize,
    iwidth: usize,
) -> String {
    let (_, first, last, count, priority) = *run;
    let instance = e.instance.as_deref().unwrap_or("-");
    if count == 1 {
        format!(
            "{first:>11}  {:<width$}  {instance:<iwidth$}  advert priority {priority}",
            e.node
        )
    } else {
        format!(
            "{first:>11}  {:<width$}  {instance:<iwidth$}  adverts x{count} priority {priority} (last {last})",
            e.node
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(micros: u64, node: &str, kind: EventKind, detail: &str) -> Event {
        Event {
            at: Instant::from_micros(micros),
            node: node.into(),
            instance: Some("VI_1".into()),
            kind,
            detail: detail.into(),
        }
    }

    fn sample() -> Timeline {
        let p = Priority::from_u8;
        let mut t = Timeline::new();
        t.push(ev(0, "a", EventKind::Advert { priority: p(150) }, ""));
        t.push(ev(
            1_000_000,
            "a",
            EventKind::Advert { priority: p(150) },
            "",
        ));
        t.push(ev(
            2_000_000,
            "a",
            EventKind::Advert { priority: p(150) },
            "",
        ));
        t.push(Event {
            at: Instant::from_micros(2_500_000),
            node: "a".into(),
            instance: None,
            kind: EventKind::Injected,
            detail: "crash".into(),
        });
        t.push(ev(
            6_109_375,
            "b",
            EventKind::State {
                from: State::Backup,
                to: State::Master,
            },
            "master down: no advert for 3.609375s",
        ));
        t.push(ev(
            6_109_375,
            "b",
            EventKind::Advert { priority: p(100) },
            "",
        ));
        t
    }

    #[test]
    fn renders_compactly_and_summarises_adverts() {
        let text = sample().render();
        assert_eq!(
            text,
            "  0.000000s  a  VI_1  adverts x3 priority 150 (last 2.000000s)\n\
             \x20 2.500000s  a  -     INJECT  (crash)\n\
             \x20 6.109375s  b  VI_1  BACKUP -> MASTER  (master down: no advert for 3.609375s)\n\
             \x20 6.109375s  b  VI_1  advert priority 100\n"
        );
    }

    #[test]
    fn json_lines_round_trip() {
        let t = sample();
        let text = t.to_json_lines().unwrap();
        assert_eq!(text.lines().count(), 6);
        assert!(
            text.contains(r#""kind":"state","from":"BACKUP","to":"MASTER""#),
            "{text}"
        );
        assert_eq!(Timeline::from_json_lines(&text).unwrap(), t);
    }

    #[test]
    fn checker_events_render_and_round_trip() {
        let mut t = Timeline::new();
        let service = |kind, detail: &str| Event {
            at: Instant::from_micros(1_500_000),
            node: "d".into(),
            instance: Some("TCP 10.0.1.100:80".into()),
            kind,
            detail: detail.into(),
        };
        t.push(service(
            EventKind::RealServer {
                address: "10.0.2.11:8080".parse().unwrap(),
                alive: false,
                weight: 0,
            },
            "connect failed: connection refused",
        ));
        t.push(service(
            EventKind::Quorum {
                up: false,
                weight_sum: 0,
                threshold: 1,
            },
            "",
        ));
        t.push(service(EventKind::SorryServer { active: true }, ""));
        assert_eq!(
            t.render(),
            "  1.500000s  d  TCP 10.0.1.100:80  real server 10.0.2.11:8080 DOWN weight 0  (connect failed: connection refused)\n\
             \x20 1.500000s  d  TCP 10.0.1.100:80  quorum DOWN (weight 0 < 1)\n\
             \x20 1.500000s  d  TCP 10.0.1.100:80  sorry server ON\n"
        );
        let text = t.to_json_lines().unwrap();
        assert!(
            text.contains(r#""kind":"real_server","address":"10.0.2.11:8080","alive":false"#),
            "{text}"
        );
        assert_eq!(Timeline::from_json_lines(&text).unwrap(), t);
    }

    #[test]
    fn transitions_filter_by_node_and_instance() {
        let t = sample();
        let got: Vec<_> = t.transitions("b", "VI_1").collect();
        assert_eq!(
            got,
            vec![(
                Instant::from_micros(6_109_375),
                State::Backup,
                State::Master
            )]
        );
        assert_eq!(t.transitions("a", "VI_1").count(), 0);
    }
}
