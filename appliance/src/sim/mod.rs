//! A deterministic simulator of VRRP routers on a virtual LAN: the real
//! sans-IO cores ([`Machine`], [`SyncGroup`]) driven by a virtual clock and
//! a discrete event queue. Events at the same instant run in the order they
//! were queued, so a scenario always produces the same [`Timeline`].
//! Scenarios are data ([`scenario::Scenario`]); `docs/simulator.md`
//! describes the file format.

pub(crate) mod scenario;

use crate::clock::Instant;
use crate::config::model::VrrpInstance;
use crate::timeline::{Event, EventKind, Timeline};
use crate::vrrp::group::SyncGroup;
use crate::vrrp::machine::{Action, Input, Machine, TrackName};
use crate::vrrp::packet::{
    Addresses, Auth, Expected, ExpectedVersion, IpContext, MULTICAST_V4, MULTICAST_V6, Packet,
    Rejection, Repr, Seconds, Variant,
};
use crate::vrrp::receive::{Delivery, Listener, Refused};
use crate::vrrp::router::Router;
use crate::vrrp::unit::Unit;
use crate::vrrp::{Centiseconds, Priority, Version, Vrid};
use scenario::{Fault, NodeSpec, Scenario, ScenarioError};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::IpAddr;
use std::time::Duration;

/// Runs a scenario to its end and returns what happened.
pub fn run(scenario: &Scenario) -> Result<Timeline, ScenarioError> {
    let mut sim = Simulator::new(scenario)?;
    sim.run_until(Instant::from_duration(scenario.duration.0));
    Ok(sim.into_timeline())
}

/// Parses a scenario file's text and runs it.
pub fn run_toml(text: &str) -> Result<Timeline, ScenarioError> {
    run(&Scenario::from_toml(text)?)
}

#[derive(Debug)]
struct Node {
    spec: NodeSpec,
    running: bool,
    link_up: bool,
    /// Bumped on crash/shutdown/restart so stale queued events are ignored.
    generation: u64,
    /// Its units and what their instances accept: the same receive path
    /// as the daemon's.
    router: Router<()>,
    /// The timer event queued for each unit, to skip superseded ones.
    scheduled: Vec<Option<Instant>>,
    scripts_ok: BTreeMap<String, bool>,
    interfaces_up: BTreeMap<String, bool>,
}

impl Node {
    fn build_units(&mut self) -> Result<(), ScenarioError> {
        let spec = &self.spec;
        let specs = &spec.config.vrrp_instance;
        let mut grouped: Vec<&str> = Vec::new();
        let mut units = Vec::new();
        for group in &spec.config.vrrp_sync_group {
            let mut members = Vec::new();
            for name in &group.group {
                if let Some(inst) = spec.config.vrrp_instance.iter().find(|i| &i.name == name) {
                    members.push(Machine::new(spec.instance_config(inst)?));
                    grouped.push(name);
                }
            }
            units.push(Unit::Group(SyncGroup::new(group.name.clone(), members)));
        }
        for inst in spec
            .config
            .vrrp_instance
            .iter()
            .filter(|i| !grouped.contains(&i.name.as_str()))
        {
            units.push(Unit::Solo(Box::new(Machine::new(
                spec.instance_config(inst)?,
            ))));
        }
        self.scheduled = vec![None; units.len()];
        let mut router = Router::default();
        for unit in units {
            let listeners = unit
                .machines()
                .iter()
                .map(|m| listener(m, peers(specs, m.name())))
                .collect();
            router.push(unit, listeners);
        }
        self.router = router;
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Happening {
    Inject(Fault),
    Boot {
        node: usize,
    },
    Timer {
        node: usize,
        unit: usize,
        generation: u64,
    },
    ScriptRun {
        node: usize,
        script: usize,
        generation: u64,
    },
    /// A datagram on the wire reaches `node`: from another node (which
    /// must still be heard), or forged (`from` is `None`).
    Deliver {
        node: usize,
        from: Option<usize>,
        ctx: IpContext,
        bytes: Vec<u8>,
    },
}

/// The simulator state; [`run`] is the usual entry point.
#[derive(Debug)]
pub struct Simulator {
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    pending: BTreeMap<u64, Happening>,
    nodes: Vec<Node>,
    default_delay: Duration,
    delays: BTreeMap<(usize, usize), Duration>,
    partition: Option<Vec<usize>>,
    loss: BTreeMap<(usize, usize), f64>,
    drops: BTreeMap<(usize, usize), u32>,
    rng: fastrand::Rng,
    timeline: Timeline,
}

impl Simulator {
    pub fn new(scenario: &Scenario) -> Result<Self, ScenarioError> {
        let index_of = |name: &str| scenario.nodes.iter().position(|n| n.name == name);
        let mut sim = Simulator {
            now: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            pending: BTreeMap::new(),
            nodes: Vec::new(),
            default_delay: scenario.network.delay.0,
            delays: BTreeMap::new(),
            partition: None,
            loss: BTreeMap::new(),
            drops: BTreeMap::new(),
            rng: fastrand::Rng::with_seed(scenario.network.seed),
            timeline: Timeline::new(),
        };
        for link in &scenario.network.links {
            if let (Some(f), Some(t)) = (index_of(&link.from), index_of(&link.to)) {
                sim.delays.insert((f, t), link.delay.0);
            }
        }
        for spec in &scenario.nodes {
            let mut node = Node {
                spec: spec.clone(),
                running: false,
                link_up: true,
                generation: 0,
                router: Router::default(),
                scheduled: Vec::new(),
                scripts_ok: spec
                    .config
                    .vrrp_script
                    .iter()
                    .map(|s| (s.name.clone(), true))
                    .collect(),
                interfaces_up: spec
                    .config
                    .vrrp_instance
                    .iter()
                    .flat_map(|i| i.track_interface.iter().map(|t| (t.name.clone(), true)))
                    .collect(),
            };
            node.build_units()?;
            sim.nodes.push(node);
        }
        for (index, spec) in scenario.nodes.iter().enumerate() {
            sim.schedule(
                Instant::from_duration(spec.start_time()),
                Happening::Boot { node: index },
            );
        }
        for event in &scenario.events {
            sim.schedule(
                Instant::from_duration(event.at.0),
                Happening::Inject(event.action.clone()),
            );
        }
        Ok(sim)
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    pub fn into_timeline(self) -> Timeline {
        self.timeline
    }

    /// Processes every event up to and including `end`.
    pub fn run_until(&mut self, end: Instant) {
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > end {
                break;
            }
            self.queue.pop();
            self.now = at;
            if let Some(happening) = self.pending.remove(&seq) {
                self.step(happening);
            }
        }
        self.now = end;
    }

    fn schedule(&mut self, at: Instant, happening: Happening) {
        let seq = self.seq;
        self.seq += 1;
        self.queue.push(Reverse((at, seq)));
        self.pending.insert(seq, happening);
    }

    fn step(&mut self, happening: Happening) {
        match happening {
            Happening::Inject(fault) => self.inject(fault),
            Happening::Boot { node } => self.boot(node),
            Happening::Timer {
                node,
                unit,
                generation,
            } => {
                let Some(n) = self.nodes.get_mut(node) else {
                    return;
                };
                let current = n.scheduled.get(unit).copied().flatten();
                if !n.running || n.generation != generation || current != Some(self.now) {
                    return;
                }
                if let Some(slot) = n.scheduled.get_mut(unit) {
                    *slot = None;
                }
                let actions = match n.router.units_mut().get_mut(unit) {
                    Some(u) => u.handle_timeout(self.now),
                    None => Vec::new(),
                };
                self.perform(node, actions);
            }
            Happening::ScriptRun {
                node,
                script,
                generation,
            } => {
                let Some(n) = self.nodes.get(node) else {
                    return;
                };
                if !n.running || n.generation != generation {
                    return;
                }
                let Some(spec) = n.spec.config.vrrp_script.get(script) else {
                    return;
                };
                let (name, interval) = (spec.name.clone(), spec.interval);
                let success = n.scripts_ok.get(&name).copied().unwrap_or(true);
                self.deliver_to_node(
                    node,
                    &Input::Script {
                        name: TrackName(name),
                        success,
                    },
                );
                if !interval.is_zero() {
                    self.schedule(
                        self.now + interval,
                        Happening::ScriptRun {
                            node,
                            script,
                            generation,
                        },
                    );
                }
            }
            Happening::Deliver {
                node,
                from,
                ctx,
                bytes,
            } => {
                let heard = match from {
                    Some(from) => self.hears(from, node),
                    None => self.nodes.get(node).is_some_and(|n| n.running && n.link_up),
                };
                if heard {
                    self.receive(node, &ctx, &bytes);
                }
            }
        }
    }

    /// The node's receive path: the same rules as the daemon's.
    fn receive(&mut self, node: usize, ctx: &IpContext, bytes: &[u8]) {
        let now = self.now;
        let Some(router) = self.nodes.get_mut(node).map(|n| &mut n.router) else {
            return;
        };
        let delivered = match router.receive(&(), ctx, bytes, now) {
            Ok(delivered) => delivered,
            // Adverts of other virtual routers are not for us: the LAN
            // carries them to everyone.
            Err(Refused {
                rejection: Rejection::UnknownVrid(_),
                ..
            }) => return,
            Err(Refused { rejection, .. }) => {
                let node_name = self
                    .nodes
                    .get(node)
                    .map(|n| n.spec.name.clone())
                    .unwrap_or_default();
                self.timeline.push(Event {
                    at: self.now,
                    node: node_name,
                    instance: None,
                    kind: EventKind::Dropped {
                        reason: rejection.name().to_owned(),
                    },
                    detail: format!("from {}: {rejection}", ctx.src()),
                });
                return;
            }
        };
        self.perform(node, delivered.actions);
    }

    fn inject(&mut self, fault: Fault) {
        let node = fault
            .node()
            .and_then(|name| self.nodes.iter().position(|n| n.spec.name == name));
        self.timeline.push(Event {
            at: self.now,
            node: fault.node().unwrap_or("*").to_owned(),
            instance: None,
            kind: EventKind::Injected,
            detail: fault.describe(),
        });
        let find = |sim: &Self, name: &str| sim.nodes.iter().position(|n| n.spec.name == name);
        match (fault, node) {
            (Fault::Crash { .. }, Some(n)) => {
                if let Some(node) = self.nodes.get_mut(n) {
                    node.running = false;
                    node.generation += 1;
                }
            }
            (Fault::Shutdown { .. }, Some(n)) => {
                if self.nodes.get(n).is_some_and(|x| x.running) {
                    self.deliver_to_node(n, &Input::Shutdown);
                }
                if let Some(node) = self.nodes.get_mut(n) {
                    node.running = false;
                    node.generation += 1;
                }
            }
            (Fault::Restart { .. }, Some(n)) => {
                let running = self.nodes.get(n).is_some_and(|x| x.running);
                if !running {
                    self.boot(n);
                }
            }
            (Fault::LinkDown { .. }, Some(n)) => self.set_link(n, false),
            (Fault::LinkUp { .. }, Some(n)) => self.set_link(n, true),
            (Fault::Interface { interface, up, .. }, Some(n)) => {
                if let Some(node) = self.nodes.get_mut(n) {
                    node.interfaces_up.insert(interface.clone(), up);
                }
                if self.nodes.get(n).is_some_and(|x| x.running) {
                    self.deliver_to_node(
                        n,
                        &Input::Interface {
                            name: TrackName(interface),
                            up,
                        },
                    );
                }
            }
            (
                Fault::Priority {
                    instance, priority, ..
                },
                Some(n),
            ) => {
                let now = self.now;
                let mut actions = Vec::new();
                if let Some(node) = self.nodes.get_mut(n).filter(|x| x.running) {
                    for unit in node.router.units_mut() {
                        if let Some(i) = unit.machines().iter().position(|m| m.name() == instance) {
                            actions.extend(unit.handle_instance(
                                now,
                                i,
                                Input::SetPriority(priority),
                            ));
                        }
                    }
                }
                self.perform(n, actions);
            }
            (Fault::Script { script, ok, .. }, Some(n)) => {
                if let Some(node) = self.nodes.get_mut(n) {
                    node.scripts_ok.insert(script, ok);
                }
            }
            (Fault::Partition { groups }, _) => {
                let mut side = vec![groups.len(); self.nodes.len()];
                for (g, members) in groups.iter().enumerate() {
                    for name in members {
                        if let Some(slot) = find(self, name).and_then(|i| side.get_mut(i)) {
                            *slot = g;
                        }
                    }
                }
                self.partition = Some(side);
            }
            (Fault::Heal, _) => self.partition = None,
            (Fault::Loss { from, to, rate }, _) => {
                let pick = |sim: &Self, name: &Option<String>| -> Vec<usize> {
                    match name {
                        Some(n) => find(sim, n).into_iter().collect(),
                        None => (0..sim.nodes.len()).collect(),
                    }
                };
                for f in pick(self, &from) {
                    for t in pick(self, &to) {
                        if rate > 0.0 {
                            self.loss.insert((f, t), rate);
                        } else {
                            self.loss.remove(&(f, t));
                        }
                    }
                }
            }
            (Fault::Drop { from, to, count }, _) => {
                if let (Some(f), Some(t)) = (find(self, &from), find(self, &to)) {
                    self.drops.insert((f, t), count);
                }
            }
            (
                Fault::Forge {
                    from,
                    dst,
                    ttl,
                    vrid,
                    version,
                    priority,
                    advert_int,
                    ..
                },
                Some(n),
            ) => {
                let Some(ctx) = context(from, dst.unwrap_or_else(|| group(from)), ttl) else {
                    return;
                };
                let centis = u16::try_from(advert_int.0.as_micros() / 10_000).unwrap_or(u16::MAX);
                let bytes = wire(vrid, version, priority, Centiseconds(centis), &ctx);
                self.schedule(
                    self.now,
                    Happening::Deliver {
                        node: n,
                        from: None,
                        ctx,
                        bytes,
                    },
                );
            }
            _ => {}
        }
    }

    fn set_link(&mut self, node: usize, up: bool) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.link_up = up;
        }
        if self.nodes.get(node).is_some_and(|x| x.running) {
            self.deliver_to_node(node, &Input::Link { up });
        }
    }

    fn boot(&mut self, index: usize) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(index) else {
            return;
        };
        node.generation += 1;
        node.running = true;
        if node.build_units().is_err() {
            // Validated when the simulator was built; cannot fail here.
            node.running = false;
            return;
        }
        let generation = node.generation;
        let mut inputs = Vec::new();
        if !node.link_up {
            inputs.push(Input::Link { up: false });
        }
        for (name, up) in &node.interfaces_up {
            inputs.push(Input::Interface {
                name: TrackName(name.clone()),
                up: *up,
            });
        }
        inputs.push(Input::Startup);
        let scripts = node.spec.config.vrrp_script.len();
        for input in inputs {
            self.deliver_to_node(index, &input);
        }
        for script in 0..scripts {
            self.schedule(
                now,
                Happening::ScriptRun {
                    node: index,
                    script,
                    generation,
                },
            );
        }
    }

    fn deliver_to_node(&mut self, node: usize, input: &Input) {
        let now = self.now;
        let mut actions = Vec::new();
        if let Some(n) = self.nodes.get_mut(node) {
            for unit in n.router.units_mut() {
                actions.extend(unit.handle_all(now, input));
            }
        }
        self.perform(node, actions);
    }

    /// Records and carries out actions, then re-arms the node's timers.
    fn perform(&mut self, node: usize, actions: Vec<(String, Action)>) {
        let Some(name) = self.nodes.get(node).map(|n| n.spec.name.clone()) else {
            return;
        };
        for (instance, action) in actions {
            let (kind, mut detail) = EventKind::of_action(&action);
            let sent = match &action {
                Action::SendAdvert {
                    priority,
                    adver_int,
                } => Some(self.send(node, &instance, *priority, *adver_int, None)),
                Action::ResignTo { adver_int, to } => {
                    Some(self.send(node, &instance, Priority::RESIGN, *adver_int, Some(*to)))
                }
                _ => None,
            };
            if sent == Some(false) {
                detail = "not sent: link down".to_owned();
            }
            self.timeline.push(Event {
                at: self.now,
                node: name.clone(),
                instance: Some(instance),
                kind,
                detail,
            });
        }
        self.arm(node);
    }

    fn arm(&mut self, node: usize) {
        let mut wanted = Vec::new();
        if let Some(n) = self.nodes.get_mut(node).filter(|n| n.running) {
            for (unit, (u, slot)) in n
                .router
                .units()
                .iter()
                .zip(n.scheduled.iter_mut())
                .enumerate()
            {
                let next = u.poll_timeout();
                if next.is_some() && next != *slot {
                    *slot = next;
                    if let Some(at) = next {
                        wanted.push((at, unit, n.generation));
                    }
                }
            }
        }
        for (at, unit, generation) in wanted {
            self.schedule(
                at,
                Happening::Timer {
                    node,
                    unit,
                    generation,
                },
            );
        }
    }

    /// Queues the advert for every node that hears it; false if our own
    /// link is down so nothing leaves.
    /// Sends an advert of `instance` from node `from` to every node that
    /// hears it, or to the node at `only` alone.
    fn send(
        &mut self,
        from: usize,
        instance: &str,
        priority: Priority,
        adver_int: Centiseconds,
        only: Option<IpAddr>,
    ) -> bool {
        let Some(sender) = self.nodes.get(from) else {
            return false;
        };
        if !sender.link_up {
            return false;
        }
        let address: IpAddr = sender.spec.address;
        let Some((vrid, version)) = sender
            .router
            .units()
            .iter()
            .flat_map(Unit::machines)
            .find(|m| m.name() == instance)
            .map(|m| (m.config().vrid, m.config().version))
        else {
            return false;
        };
        // To the group, which every node hears, or to each unicast peer
        // that is a node of the scenario.
        let peers = peers(&sender.spec.config.vrrp_instance, instance);
        let mut sends = Vec::new();
        for to in (0..self.nodes.len()).filter(|t| *t != from) {
            let node_address = self.nodes.get(to).map(|n| n.spec.address);
            let dst = if let Some(only) = only {
                match node_address {
                    Some(a) if a == only => a,
                    _ => continue,
                }
            } else if peers.is_empty() {
                group(address)
            } else {
                match self.nodes.get(to).map(|n| n.spec.address) {
                    Some(a) if peers.contains(&a) => a,
                    _ => continue,
                }
            };
            let Some(ctx) = context(address, dst, 255) else {
                continue;
            };
            sends.push((to, ctx));
        }
        for (to, ctx) in sends {
            if !self.hears(from, to) || self.lost(from, to) {
                continue;
            }
            let bytes = wire(vrid, version, priority, adver_int, &ctx);
            let delay = self
                .delays
                .get(&(from, to))
                .copied()
                .unwrap_or(self.default_delay);
            self.schedule(
                self.now + delay,
                Happening::Deliver {
                    node: to,
                    from: Some(from),
                    ctx,
                    bytes,
                },
            );
        }
        true
    }

    /// Whether `to` can currently hear `from` (both up, same partition side).
    fn hears(&self, from: usize, to: usize) -> bool {
        let up = |i: usize| self.nodes.get(i).is_some_and(|n| n.link_up);
        let running = self.nodes.get(to).is_some_and(|n| n.running);
        let same_side = match &self.partition {
            Some(side) => side.get(from) == side.get(to),
            None => true,
        };
        up(from) && up(to) && running && same_side
    }

    fn lost(&mut self, from: usize, to: usize) -> bool {
        if let Some(count) = self.drops.get_mut(&(from, to))
            && *count > 0
        {
            *count -= 1;
            return true;
        }
        match self.loss.get(&(from, to)) {
            Some(rate) => self.rng.f64() < *rate,
            None => false,
        }
    }
}

/// The VRRP group of `addr`'s family.
fn group(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => MULTICAST_V4.into(),
        IpAddr::V6(_) => MULTICAST_V6.into(),
    }
}

/// The IP header around an advert; `None` for addresses of two families
/// (scenario validation refuses them).
fn context(src: IpAddr, dst: IpAddr, ttl: u8) -> Option<IpContext> {
    match (src, dst) {
        (IpAddr::V6(src), IpAddr::V6(dst)) => Some(IpContext::V6 {
            src,
            dst,
            hop_limit: ttl,
        }),
        (IpAddr::V4(src), IpAddr::V4(dst)) => Some(IpContext::V4 { src, dst, ttl }),
        _ => None,
    }
}

/// Simulated routers carry no virtual addresses: adverts list none.
fn no_addresses(ctx: &IpContext) -> Addresses {
    match ctx {
        IpContext::V4 { .. } => Addresses::V4(Vec::new()),
        IpContext::V6 { .. } => Addresses::V6(Vec::new()),
    }
}

/// The advert as it goes on the wire.
fn wire(
    vrid: Vrid,
    version: Version,
    priority: Priority,
    adver_int: Centiseconds,
    ctx: &IpContext,
) -> Vec<u8> {
    let variant = match version {
        Version::V2 => Variant::V2 {
            adver_int: Seconds(u8::try_from(adver_int.0 / 100).unwrap_or(u8::MAX)),
            auth: Auth::None,
        },
        Version::V3 => Variant::V3 {
            max_adver_int: adver_int,
        },
    };
    let repr = Repr {
        vrid,
        priority,
        variant,
        addresses: no_addresses(ctx),
    };
    let mut bytes = vec![0; repr.buffer_len()];
    // Only a version 2 advert over IPv6 cannot be written, and scenario
    // validation refuses one; were it sent, the receiver would count an
    // empty datagram as truncated.
    if repr
        .emit(&mut Packet::new_unchecked(&mut bytes[..]), ctx)
        .is_err()
    {
        bytes.clear();
    }
    bytes
}

/// The unicast peers of the node's instance `name` (none: multicast).
fn peers(specs: &[VrrpInstance], name: &str) -> Vec<IpAddr> {
    specs
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.unicast_peer.clone())
        .unwrap_or_default()
}

/// What one simulated instance accepts: adverts of its VRID and version,
/// without addresses, to the group or, with `peers`, from them to us.
fn listener(machine: &Machine, peers: Vec<IpAddr>) -> Listener<()> {
    let cfg = machine.config();
    let protocol = match cfg.version {
        Version::V2 => ExpectedVersion::V2 {
            adver_int: Seconds(u8::try_from(cfg.adver_int.0 / 100).unwrap_or(u8::MAX)),
            auth: Auth::None,
        },
        Version::V3 => ExpectedVersion::V3,
    };
    let addresses = match cfg.primary_address {
        IpAddr::V4(_) => Addresses::V4(Vec::new()),
        IpAddr::V6(_) => Addresses::V6(Vec::new()),
    };
    Listener {
        socket: (),
        delivery: if peers.is_empty() {
            Delivery::Multicast {
                group: group(cfg.primary_address),
            }
        } else {
            Delivery::Unicast { peers }
        },
        expected: Expected {
            vrid: cfg.vrid,
            protocol,
            addresses: Some(addresses),
        },
        adver_int: cfg.adver_int,
        skip_known_addresses: false,
        known: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::machine::State;

    const PAIR: &str = r#"
        name = "pair"
        duration = "8s"
        [[node]]
        name = "a"
        address = "10.0.0.1"
        [[node.config.vrrp_instance]]
        name = "VI_1"
        interface = "eth0"
        virtual_router_id = 51
        priority = 150
        [[node]]
        name = "b"
        address = "10.0.0.2"
        [[node.config.vrrp_instance]]
        name = "VI_1"
        interface = "eth0"
        virtual_router_id = 51
    "#;

    #[test]
    fn higher_priority_wins_cold_start_at_its_master_down_interval() {
        let t = run_toml(PAIR).unwrap();
        // 3 s + (256 - 150) / 256 s = 3.4140625 s, floored to the microsecond.
        let a: Vec<_> = t.transitions("a", "VI_1").collect();
        let b: Vec<_> = t.transitions("b", "VI_1").collect();
        assert_eq!(
            a.last().map(|x| (x.0, x.2)),
            Some((Instant::from_micros(3_414_062), State::Master))
        );
        assert_eq!(b.len(), 1, "b only enters BACKUP: {b:?}");
    }

    #[test]
    fn total_loss_makes_the_backup_take_over() {
        let text = format!(
            "{PAIR}\n[[event]]\nat = \"4s\"\naction = \"loss\"\nfrom = \"a\"\nrate = 1.0\n"
        );
        let t = run_toml(&text).unwrap();
        // a's last advert to reach b left at 3.414062 s.
        let b: Vec<_> = t.transitions("b", "VI_1").map(|x| (x.0, x.2)).collect();
        assert_eq!(
            b.last(),
            Some(&(Instant::from_micros(3_414_062 + 3_609_375), State::Master))
        );
    }

    #[test]
    fn same_scenario_same_timeline() {
        assert_eq!(run_toml(PAIR).unwrap(), run_toml(PAIR).unwrap());
    }

    #[test]
    fn per_link_delay_delays_delivery() {
        let text = format!("{PAIR}\n[network]\ndelay = \"5ms\"\n");
        // b hears a's first advert 5 ms late, and a's cold-start timing is unchanged.
        let t = run_toml(&text).unwrap();
        assert_eq!(
            t.transitions("a", "VI_1").last().map(|x| x.0),
            Some(Instant::from_micros(3_414_062))
        );
    }
}
