//! Sync groups (keepalived's `vrrp_sync_group`): instances that change state
//! together, sans-IO. A [`SyncGroup`] owns its member [`Machine`]s; the
//! driver feeds inputs to one member and gets back every member's actions.
//!
//! The rules follow keepalived's `vrrp_sync.c`:
//! - FAULT: while any member is faulty by itself, every other member is held
//!   in FAULT too (a master among them resigns with priority 0); when none
//!   is, they all leave FAULT for BACKUP.
//! - MASTER: a member whose master-down timer expires only *wants* master;
//!   the group goes master when every member that is not already master
//!   wants it ("prefer backup to avoid thrashing"), and once one member is
//!   master (by any path) the others follow.
//! - BACKUP: a member that leaves MASTER for BACKUP (a better master
//!   appeared) takes the other masters with it, without a priority 0.
//!
//! The group has a state of its own, which its notify programs
//! (`notify_master` on the group...) follow: FAULT while any member is
//! faulty, MASTER once every member is master, STOP once every member has
//! stopped, BACKUP otherwise. The driver asks for its changes with
//! [`SyncGroup::poll_state`]; each member still emits its own
//! [`Action::Notify`].

use crate::clock::Instant;
use crate::vrrp::machine::{Action, GroupCommand, Input, Machine, State};

/// A set of instances that move together.
#[derive(Clone, Debug)]
pub struct SyncGroup {
    name: String,
    members: Vec<Machine>,
    /// The group state last given out by [`SyncGroup::poll_state`].
    reported: State,
}

/// An action of one member (its index in [`SyncGroup::members`]).
pub type MemberAction = (usize, Action);

/// `handle` was given a member index the group does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sync group {group} has no member #{index}")]
pub struct NoSuchMember {
    pub group: String,
    pub index: usize,
}

impl SyncGroup {
    pub fn new(name: impl Into<String>, members: Vec<Machine>) -> Self {
        let mut members = members;
        for m in &mut members {
            m.set_sync_member(true);
        }
        Self {
            name: name.into(),
            members,
            reported: State::Initialize,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn members(&self) -> &[Machine] {
        &self.members
    }

    /// The group's state, from its members' (keepalived's
    /// `vrrp_sync.c`): `Initialize` stands for stopped.
    pub fn state(&self) -> State {
        let all = |state| self.members.iter().all(|m| m.state() == state);
        if self.members.iter().any(|m| m.state() == State::Fault) {
            State::Fault
        } else if all(State::Master) {
            State::Master
        } else if all(State::Initialize) {
            State::Initialize
        } else {
            State::Backup
        }
    }

    /// The group's new state, once per change since the last call (none
    /// before the first start: the group begins stopped).
    pub fn poll_state(&mut self) -> Option<State> {
        let state = self.state();
        (state != self.reported).then(|| {
            self.reported = state;
            state
        })
    }

    /// The earliest timer of any member.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.members.iter().filter_map(Machine::poll_timeout).min()
    }

    /// Delivers `input` to every member (e.g. Startup, Shutdown, Link).
    pub fn handle_all(&mut self, now: Instant, input: &Input) -> Vec<MemberAction> {
        let mut out = Vec::new();
        for index in 0..self.members.len() {
            out.extend(self.deliver(now, index, input.clone()));
        }
        self.reconcile(now, &mut out);
        out
    }

    /// Delivers the timer to every member whose timer is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<MemberAction> {
        let mut out = Vec::new();
        for index in 0..self.members.len() {
            let due = self
                .members
                .get(index)
                .and_then(Machine::poll_timeout)
                .is_some_and(|t| t <= now);
            if due {
                out.extend(self.deliver(now, index, Input::Timer));
            }
        }
        self.reconcile(now, &mut out);
        out
    }

    /// Delivers `input` to one member, then applies the group's rules.
    pub fn handle(
        &mut self,
        now: Instant,
        member: usize,
        input: Input,
    ) -> Result<Vec<MemberAction>, NoSuchMember> {
        if member >= self.members.len() {
            return Err(NoSuchMember {
                group: self.name.clone(),
                index: member,
            });
        }
        let mut out = self.deliver(now, member, input);
        self.reconcile(now, &mut out);
        Ok(out)
    }

    fn deliver(&mut self, now: Instant, index: usize, input: Input) -> Vec<MemberAction> {
        match self.members.get_mut(index) {
            Some(m) => m
                .handle(now, input)
                .into_iter()
                .map(|a| (index, a))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Applies the sync rules until nothing more changes. Each pass either
    /// changes some member's state or stops, and states only move towards
    /// agreement, so a few passes suffice; the bound is a safety net.
    fn reconcile(&mut self, now: Instant, out: &mut Vec<MemberAction>) {
        let mut seen = 0;
        for _ in 0..=2 * self.members.len() + 2 {
            let fresh: Vec<(usize, State, State)> = out
                .get(seen..)
                .unwrap_or_default()
                .iter()
                .filter_map(|(i, a)| match a {
                    Action::StateChanged { from, to, .. } => Some((*i, *from, *to)),
                    _ => None,
                })
                .collect();
            seen = out.len();
            let before = out.len();
            self.sync_faults(now, out);
            for (index, from, to) in fresh {
                if to == State::Master {
                    self.command_others(now, index, GroupCommand::Master, out);
                } else if from == State::Master && to == State::Backup {
                    self.command_others(now, index, GroupCommand::Backup, out);
                }
            }
            self.sync_wanting_master(now, out);
            if out.len() == before {
                return;
            }
        }
    }

    fn sync_faults(&mut self, now: Instant, out: &mut Vec<MemberAction>) {
        let faulty: Vec<bool> = self.members.iter().map(Machine::own_fault).collect();
        for index in 0..self.members.len() {
            let others = faulty.iter().enumerate().any(|(j, f)| j != index && *f);
            out.extend(self.deliver(
                now,
                index,
                Input::Group(GroupCommand::Fault { active: others }),
            ));
        }
    }

    fn command_others(
        &mut self,
        now: Instant,
        origin: usize,
        cmd: GroupCommand,
        out: &mut Vec<MemberAction>,
    ) {
        for index in (0..self.members.len()).filter(|i| *i != origin) {
            out.extend(self.deliver(now, index, Input::Group(cmd)));
        }
    }

    fn sync_wanting_master(&mut self, now: Instant, out: &mut Vec<MemberAction>) {
        let any_wants = self.members.iter().any(Machine::wants_master);
        let all_ready = self
            .members
            .iter()
            .all(|m| m.wants_master() || m.state() == State::Master);
        if any_wants && all_ready {
            for index in 0..self.members.len() {
                out.extend(self.deliver(now, index, Input::Group(GroupCommand::Master)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::machine::{Advert, InstanceConfig, Track, TrackKind, TrackName, Weight};
    use crate::vrrp::{Centiseconds, Priority, Vrid};
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const US: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn member(name: &str, vrid: u32) -> Machine {
        let mut c = InstanceConfig::new(name, Vrid::new(vrid).unwrap(), US);
        c.tracks.push(Track {
            name: TrackName(format!("chk_{name}")),
            kind: TrackKind::Script { rise: 1, fall: 1 },
            weight: Weight::new(0).unwrap(),
        });
        Machine::new(c)
    }

    fn group() -> SyncGroup {
        let mut g = SyncGroup::new("G1", vec![member("VI_1", 1), member("VI_2", 2)]);
        g.handle_all(Instant::ZERO, &Input::Startup);
        g
    }

    fn states(g: &SyncGroup) -> Vec<State> {
        g.members().iter().map(Machine::state).collect()
    }

    fn advert(priority: u8) -> Input {
        Input::Advert(Advert {
            from: PEER,
            priority: Priority::from_u8(priority),
            adver_int: Centiseconds(100),
        })
    }

    #[test]
    fn members_go_master_together_only_when_all_want_to() {
        let mut g = group();
        // VI_2 keeps hearing a master; VI_1's timer expires alone.
        let t1 = Instant::from_micros(3_000_000);
        g.handle(t1, 1, advert(150)).unwrap();
        let expiry = Instant::from_micros(3_609_375);
        g.handle_timeout(expiry);
        assert_eq!(states(&g), vec![State::Backup, State::Backup]);
        assert!(g.members()[0].wants_master());
        // The master dies: VI_2 expires too, and both go master at once.
        let due = g.poll_timeout().unwrap();
        assert_eq!(due, t1 + Duration::from_micros(3_609_375));
        let actions = g.handle_timeout(due);
        assert_eq!(states(&g), vec![State::Master, State::Master]);
        let masters: Vec<usize> = actions
            .iter()
            .filter(|(_, a)| {
                matches!(
                    a,
                    Action::StateChanged {
                        to: State::Master,
                        ..
                    }
                )
            })
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(masters.len(), 2, "each member changes once: {masters:?}");
    }

    #[test]
    fn one_member_leaving_master_takes_the_others_to_backup() {
        let mut g = group();
        g.handle_timeout(Instant::from_micros(3_609_375));
        assert_eq!(states(&g), vec![State::Master, State::Master]);
        let actions = g
            .handle(Instant::from_micros(5_000_000), 0, advert(200))
            .unwrap();
        assert_eq!(states(&g), vec![State::Backup, State::Backup]);
        // The follower leaves without a priority 0 advert.
        assert!(!actions.iter().any(|(i, a)| *i == 1
            && matches!(a, Action::SendAdvert { priority, .. } if *priority == Priority::RESIGN)));
    }

    #[test]
    fn one_member_fault_holds_all_in_fault() {
        let mut g = group();
        g.handle_timeout(Instant::from_micros(3_609_375));
        let script = |success| Input::Script {
            name: TrackName("chk_VI_1".into()),
            success,
        };
        let actions = g
            .handle(Instant::from_micros(5_000_000), 0, script(false))
            .unwrap();
        assert_eq!(states(&g), vec![State::Fault, State::Fault]);
        // Both masters resign with priority 0.
        let resigned = actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::SendAdvert { priority, .. } if *priority == Priority::RESIGN))
            .count();
        assert_eq!(resigned, 2);
        g.handle(Instant::from_micros(6_000_000), 0, script(true))
            .unwrap();
        assert_eq!(states(&g), vec![State::Backup, State::Backup]);
    }

    fn polled(g: &mut SyncGroup) -> Option<State> {
        let state = g.poll_state();
        assert_eq!(g.poll_state(), None, "a change is given out once");
        state
    }

    #[test]
    fn the_group_state_changes_once_its_members_agree() {
        let mut g = SyncGroup::new("G1", vec![member("VI_1", 1), member("VI_2", 2)]);
        assert_eq!(g.poll_state(), None);
        g.handle_all(Instant::ZERO, &Input::Startup);
        assert_eq!(polled(&mut g), Some(State::Backup));
        // VI_1 alone wants master: still backup.
        let t1 = Instant::from_micros(3_000_000);
        g.handle(t1, 1, advert(150)).unwrap();
        g.handle_timeout(Instant::from_micros(3_609_375));
        assert_eq!(g.poll_state(), None);
        g.handle_timeout(g.poll_timeout().unwrap());
        assert_eq!(polled(&mut g), Some(State::Master));
        let script = |success| Input::Script {
            name: TrackName("chk_VI_2".into()),
            success,
        };
        g.handle(Instant::from_micros(8_000_000), 1, script(false))
            .unwrap();
        assert_eq!(polled(&mut g), Some(State::Fault));
        g.handle(Instant::from_micros(9_000_000), 1, script(true))
            .unwrap();
        assert_eq!(polled(&mut g), Some(State::Backup));
        g.handle_all(Instant::from_micros(10_000_000), &Input::Shutdown);
        assert_eq!(polled(&mut g), Some(State::Initialize));
    }

    #[test]
    fn unknown_member_is_an_error() {
        let mut g = group();
        let err = g.handle(Instant::ZERO, 7, Input::Timer).unwrap_err();
        assert_eq!(err.to_string(), "sync group G1 has no member #7");
    }
}
