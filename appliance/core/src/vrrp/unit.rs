//! What owns VRRP machines on a router: a lone instance or a sync group.
//! Drivers (the daemon, the simulator) hold a list of units and talk to
//! instances through them, so a sync group's rules apply wherever an
//! instance is a member, and actions come back tagged with the instance.

use crate::clock::Instant;
use crate::vrrp::group::SyncGroup;
use crate::vrrp::machine::{Action, Input, Machine, State};

/// A lone instance or a sync group.
#[derive(Debug)]
pub enum Unit {
    Solo(Box<Machine>),
    Group(SyncGroup),
}

impl Unit {
    pub fn machines(&self) -> &[Machine] {
        match self {
            Unit::Solo(m) => std::slice::from_ref(m.as_ref()),
            Unit::Group(g) => g.members(),
        }
    }

    /// A sync group's new state and its name, once per change
    /// ([`SyncGroup::poll_state`]); never for a lone instance.
    pub fn poll_group_state(&mut self) -> Option<(&str, State)> {
        match self {
            Unit::Solo(_) => None,
            Unit::Group(g) => {
                let state = g.poll_state()?;
                Some((g.name(), state))
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Unit::Solo(m) => m.poll_timeout(),
            Unit::Group(g) => g.poll_timeout(),
        }
    }

    /// Actions tagged with the instance name.
    fn name_actions(&self, actions: Vec<(usize, Action)>) -> Vec<(String, Action)> {
        let machines = self.machines();
        actions
            .into_iter()
            .map(|(i, a)| {
                (
                    machines
                        .get(i)
                        .map_or_else(String::new, |m| m.name().to_owned()),
                    a,
                )
            })
            .collect()
    }

    pub fn handle_all(&mut self, now: Instant, input: &Input) -> Vec<(String, Action)> {
        let actions = match self {
            Unit::Solo(m) => m
                .handle(now, input.clone())
                .into_iter()
                .map(|a| (0, a))
                .collect(),
            Unit::Group(g) => g.handle_all(now, input),
        };
        self.name_actions(actions)
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(String, Action)> {
        let actions = match self {
            Unit::Solo(m) => m
                .handle(now, Input::Timer)
                .into_iter()
                .map(|a| (0, a))
                .collect(),
            Unit::Group(g) => g.handle_timeout(now),
        };
        self.name_actions(actions)
    }

    pub fn handle_instance(
        &mut self,
        now: Instant,
        index: usize,
        input: Input,
    ) -> Vec<(String, Action)> {
        let actions = match self {
            Unit::Solo(m) if index == 0 => {
                m.handle(now, input).into_iter().map(|a| (0, a)).collect()
            }
            Unit::Solo(_) => Vec::new(),
            Unit::Group(g) => g.handle(now, index, input).unwrap_or_default(),
        };
        self.name_actions(actions)
    }
}
