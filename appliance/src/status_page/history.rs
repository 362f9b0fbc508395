//! The recent timeline the status page draws: the last [`KEPT`] events
//! that change what an operator sees (state, priority, real servers,
//! quorum, sorry server), each with its wall-clock time. Adverts and the
//! like are left out: a master sends one a second, and they would push
//! the transitions out. An event pushed out leaves its lane's phase
//! behind, so the chart still knows each lane's state at the window's
//! start.

use crate::timeline::{Event, EventKind};
use crate::vrrp::machine::State;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// How many events are kept.
pub const KEPT: usize = 512;

/// A row of the chart: a VRRP instance, or a real server of a service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    Instance(String),
    RealServer {
        service: String,
        address: SocketAddr,
    },
}

/// What a lane shows for a span of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Vrrp(State),
    Server {
        alive: bool,
    },
    /// Not known: before a real server's first report that it is up (it
    /// was down, or up with another weight).
    Unknown,
}

/// An event and when it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped {
    pub wall: SystemTime,
    pub event: Event,
}

/// What the page draws from: the kept events, oldest first, and each
/// lane's phase before them when its earlier events were pushed out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recent {
    pub events: Vec<Stamped>,
    pub before: BTreeMap<Lane, Phase>,
}

impl Recent {
    /// `lane`'s phase changes in order: its phase before the first kept
    /// event (when known), then one entry per event of the lane.
    pub fn phases(&self, lane: &Lane) -> (Option<Phase>, Vec<(SystemTime, Phase, &Stamped)>) {
        let changes: Vec<_> = self
            .events
            .iter()
            .filter_map(|s| match lane_of(&s.event) {
                Some((l, phase)) if &l == lane => Some((s.wall, phase, s)),
                _ => None,
            })
            .collect();
        let start = self
            .before
            .get(lane)
            .copied()
            .or_else(|| changes.first().map(|(_, _, s)| phase_before(&s.event)));
        (start, changes)
    }
}

#[derive(Debug, Default)]
struct Ring {
    events: VecDeque<Stamped>,
    before: BTreeMap<Lane, Phase>,
}

/// The shared record: the daemon's timeline writes it, the page reads it.
#[derive(Clone, Debug, Default)]
pub struct History(Arc<Mutex<Ring>>);

impl History {
    /// Keeps `event` if the page shows its kind.
    pub fn record(&self, event: &Event, wall: SystemTime) {
        if !shown(&event.kind) {
            return;
        }
        let mut ring = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        ring.events.push_back(Stamped {
            wall,
            event: event.clone(),
        });
        while ring.events.len() > KEPT {
            if let Some(old) = ring.events.pop_front()
                && let Some((lane, phase)) = lane_of(&old.event)
            {
                ring.before.insert(lane, phase);
            }
        }
    }

    /// A copy of what is kept.
    pub fn recent(&self) -> Recent {
        let ring = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Recent {
            events: ring.events.iter().cloned().collect(),
            before: ring.before.clone(),
        }
    }
}

/// Whether the page shows events of this kind.
fn shown(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::State { .. }
            | EventKind::Priority { .. }
            | EventKind::RealServer { .. }
            | EventKind::Quorum { .. }
            | EventKind::SorryServer { .. }
    )
}

/// The lane an event moves, and its phase after it.
pub fn lane_of(event: &Event) -> Option<(Lane, Phase)> {
    match (&event.kind, &event.instance) {
        (EventKind::State { to, .. }, Some(instance)) => {
            Some((Lane::Instance(instance.clone()), Phase::Vrrp(*to)))
        }
        (EventKind::RealServer { address, alive, .. }, Some(service)) => Some((
            Lane::RealServer {
                service: service.clone(),
                address: *address,
            },
            Phase::Server { alive: *alive },
        )),
        _ => None,
    }
}

/// A lane's phase before its first event: a state change says where it
/// came from; a real server reported down was up (the checker reports a
/// down server only when it goes down); one reported up was down or up
/// with another weight, which the report does not say.
fn phase_before(event: &Event) -> Phase {
    match &event.kind {
        EventKind::State { from, .. } => Phase::Vrrp(*from),
        EventKind::RealServer { alive: false, .. } => Phase::Server { alive: true },
        _ => Phase::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Instant;
    use std::time::Duration;

    fn state(at: u64, instance: &str, from: State, to: State) -> Event {
        Event {
            at: Instant::from_micros(at),
            node: "m".into(),
            instance: Some(instance.into()),
            kind: EventKind::State { from, to },
            detail: String::new(),
        }
    }

    fn server(at: u64, alive: bool) -> Event {
        Event {
            at: Instant::from_micros(at),
            node: "m".into(),
            instance: Some("TCP 10.0.0.100:80".into()),
            kind: EventKind::RealServer {
                address: "10.0.0.11:80".parse().unwrap(),
                alive,
                weight: 1,
            },
            detail: String::new(),
        }
    }

    fn wall(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn keeps_what_the_page_shows_and_not_adverts() {
        let h = History::default();
        let advert = Event {
            kind: EventKind::Advert {
                priority: crate::vrrp::Priority::DEFAULT,
            },
            ..state(0, "VI_1", State::Backup, State::Master)
        };
        h.record(&advert, wall(1));
        h.record(&state(1, "VI_1", State::Backup, State::Master), wall(2));
        let recent = h.recent();
        assert_eq!(recent.events.len(), 1);
        assert_eq!(recent.events[0].wall, wall(2));
    }

    #[test]
    fn a_lane_knows_its_phase_before_its_first_kept_event() {
        let h = History::default();
        h.record(&state(0, "VI_1", State::Initialize, State::Backup), wall(0));
        h.record(&server(1, false), wall(1));
        let recent = h.recent();
        let vi = Lane::Instance("VI_1".into());
        let (start, changes) = recent.phases(&vi);
        assert_eq!(start, Some(Phase::Vrrp(State::Initialize)));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1, Phase::Vrrp(State::Backup));
        let rs = lane_of(&server(0, true)).unwrap().0;
        assert_eq!(
            recent.phases(&rs).0,
            Some(Phase::Server { alive: true }),
            "reported down: it was up"
        );
        let h = History::default();
        h.record(&server(1, true), wall(1));
        assert_eq!(h.recent().phases(&rs).0, Some(Phase::Unknown));
    }

    #[test]
    fn events_pushed_out_leave_their_lanes_phase() {
        let h = History::default();
        h.record(&state(0, "VI_1", State::Initialize, State::Backup), wall(0));
        h.record(&state(1, "VI_1", State::Backup, State::Master), wall(1));
        for i in 0..KEPT as u64 {
            h.record(&server(2 + i, i % 2 == 0), wall(2 + i));
        }
        let recent = h.recent();
        assert_eq!(recent.events.len(), KEPT);
        let (start, changes) = recent.phases(&Lane::Instance("VI_1".into()));
        assert_eq!(start, Some(Phase::Vrrp(State::Master)));
        assert!(changes.is_empty());
    }
}
