//! Scenario files: the nodes of a simulated LAN, their VRRP instances, and
//! the faults injected over time, as TOML data (format in
//! `docs/simulator.md`). Parsing checks every cross-reference so a bad
//! scenario fails with an error naming the culprit.

use crate::clock::Span;
use crate::config::model::{Config, VrrpInstance};
use crate::config::{self, Format};
use crate::daemon::plan;
use crate::vrrp::machine::InstanceConfig;
use crate::vrrp::{Priority, Version, Vrid};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// A whole scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// How long to simulate.
    pub duration: Span,
    #[serde(default)]
    pub network: Network,
    #[serde(rename = "node")]
    pub nodes: Vec<NodeSpec>,
    #[serde(default, rename = "event")]
    pub events: Vec<TimedEvent>,
}

/// The virtual LAN.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// One-way delay of every link unless overridden.
    #[serde(default)]
    pub delay: Span,
    /// Seed of the packet-loss random generator.
    #[serde(default)]
    pub seed: u64,
    #[serde(default, rename = "link")]
    pub links: Vec<LinkSpec>,
}

/// A per-direction delay override.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub from: String,
    pub to: String,
    pub delay: Span,
}

/// One router.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    /// Primary address: the advert source and the tie-breaker.
    pub address: IpAddr,
    /// When the node boots; `None` (key absent) means at 0 s.
    #[serde(default)]
    pub start: Option<Span>,
    /// The node's config in the appliance's own TOML format (`[node.config]`):
    /// its `vrrp_instance`, `vrrp_script` and `vrrp_sync_group` blocks go
    /// through the daemon's validation and planner. Scripts are not run:
    /// each succeeds until a `script` event says otherwise.
    #[serde(default)]
    pub config: Config,
}

/// A fault or operator action at a given time.
#[derive(Clone, Debug, Deserialize)]
pub struct TimedEvent {
    pub at: Span,
    #[serde(flatten)]
    pub action: Fault,
}

/// What can be injected.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The node dies silently (no priority 0).
    Crash {
        node: String,
    },
    /// The node boots again (after a crash or a shutdown).
    Restart {
        node: String,
    },
    /// Clean stop: masters send priority 0.
    Shutdown {
        node: String,
    },
    /// The node's VRRP interface goes down.
    LinkDown {
        node: String,
    },
    LinkUp {
        node: String,
    },
    /// A tracked interface of the node changes state.
    Interface {
        node: String,
        interface: String,
        up: bool,
    },
    /// Only nodes in the same group hear each other; unlisted nodes form
    /// one more group.
    Partition {
        groups: Vec<Vec<String>>,
    },
    Heal,
    /// Each packet from `from` to `to` (any node if absent) is lost with
    /// probability `rate` (0 stops it), drawn from the seeded generator.
    Loss {
        #[serde(default)]
        from: Option<String>,
        #[serde(default)]
        to: Option<String>,
        rate: f64,
    },
    /// The next `count` packets from `from` to `to` are dropped.
    Drop {
        from: String,
        to: String,
        count: u32,
    },
    /// A new configured priority for one instance.
    Priority {
        node: String,
        instance: String,
        priority: Priority,
    },
    /// A check script starts failing (`ok = false`) or succeeding.
    Script {
        node: String,
        script: String,
        ok: bool,
    },
    /// A forged advert reaches `node` now, as a host that is not a router
    /// of the scenario would send it: from `from` to `dst` (the VRRP group
    /// when absent) with TTL / hop limit `ttl`.
    Forge {
        node: String,
        from: IpAddr,
        #[serde(default)]
        dst: Option<IpAddr>,
        #[serde(default = "max_ttl")]
        ttl: u8,
        vrid: Vrid,
        #[serde(default = "default_version")]
        version: Version,
        priority: Priority,
        #[serde(default = "default_advert_int")]
        advert_int: Span,
    },
}

fn max_ttl() -> u8 {
    255
}

impl Fault {
    /// Short text for the timeline.
    pub fn describe(&self) -> String {
        match self {
            Fault::Crash { .. } => "crash".into(),
            Fault::Restart { .. } => "restart".into(),
            Fault::Shutdown { .. } => "clean shutdown".into(),
            Fault::LinkDown { .. } => "link down".into(),
            Fault::LinkUp { .. } => "link up".into(),
            Fault::Interface { interface, up, .. } => {
                format!("interface {interface} {}", if *up { "up" } else { "down" })
            }
            Fault::Partition { groups } => {
                let parts: Vec<String> = groups
                    .iter()
                    .map(|g| format!("[{}]", g.join(" ")))
                    .collect();
                format!("partition {}", parts.join(" "))
            }
            Fault::Heal => "heal partition".into(),
            Fault::Loss { from, to, rate } => format!(
                "loss {} -> {} rate {rate}",
                from.as_deref().unwrap_or("*"),
                to.as_deref().unwrap_or("*")
            ),
            Fault::Drop { from, to, count } => format!("drop next {count} {from} -> {to}"),
            Fault::Priority {
                instance, priority, ..
            } => {
                format!("set priority {instance} {priority}")
            }
            Fault::Script { script, ok, .. } => {
                format!("script {script} {}", if *ok { "succeeds" } else { "fails" })
            }
            Fault::Forge {
                from,
                dst,
                ttl,
                vrid,
                version,
                priority,
                advert_int,
                ..
            } => format!(
                "forged v{version} advert from {from} to {} ttl {ttl}: vrid {vrid} priority {priority} interval {advert_int}",
                dst.map_or_else(|| "the group".to_owned(), |d| d.to_string())
            ),
        }
    }

    /// The node it concerns, if one.
    pub fn node(&self) -> Option<&str> {
        match self {
            Fault::Crash { node }
            | Fault::Restart { node }
            | Fault::Shutdown { node }
            | Fault::LinkDown { node }
            | Fault::LinkUp { node }
            | Fault::Interface { node, .. }
            | Fault::Priority { node, .. }
            | Fault::Script { node, .. }
            | Fault::Forge { node, .. } => Some(node),
            Fault::Partition { .. } | Fault::Heal | Fault::Loss { .. } | Fault::Drop { .. } => None,
        }
    }
}

/// A scenario that cannot be run, naming what and where.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario is not valid TOML for the scenario format: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("node {0:?} is defined twice")]
    DuplicateNode(String),
    #[error("{place}: unknown node {node:?}")]
    UnknownNode { place: String, node: String },
    #[error("{place}: node {node:?} has no instance {instance:?}")]
    UnknownInstance {
        place: String,
        node: String,
        instance: String,
    },
    #[error("{place}: node {node:?} has no script {script:?}")]
    UnknownScript {
        place: String,
        node: String,
        script: String,
    },
    #[error("node {node:?} instance {instance:?}: {problem}")]
    BadInstance {
        node: String,
        instance: String,
        problem: String,
    },
    #[error("event #{index}: {problem}")]
    BadEvent { index: usize, problem: String },
    #[error("node {node:?}: config: {problem}")]
    Config { node: String, problem: String },
}

impl Scenario {
    /// Parses and checks a scenario.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let mut names = BTreeSet::new();
        for node in &self.nodes {
            if !names.insert(node.name.as_str()) {
                return Err(ScenarioError::DuplicateNode(node.name.clone()));
            }
            node.validate()?;
        }
        let known = |place: &str, node: &str| {
            self.node(node).ok_or_else(|| ScenarioError::UnknownNode {
                place: place.to_owned(),
                node: node.to_owned(),
            })
        };
        for link in &self.network.links {
            known("network link", &link.from)?;
            known("network link", &link.to)?;
        }
        for (index, event) in self.events.iter().enumerate() {
            let place = format!("event #{index} ({})", event.action.describe());
            if let Some(name) = event.action.node() {
                let node = known(&place, name)?;
                match &event.action {
                    Fault::Priority { instance, .. }
                        if !node
                            .config
                            .vrrp_instance
                            .iter()
                            .any(|i| &i.name == instance) =>
                    {
                        return Err(ScenarioError::UnknownInstance {
                            place,
                            node: name.to_owned(),
                            instance: instance.clone(),
                        });
                    }
                    Fault::Script { script, .. }
                        if !node.config.vrrp_script.iter().any(|s| &s.name == script) =>
                    {
                        return Err(ScenarioError::UnknownScript {
                            place,
                            node: name.to_owned(),
                            script: script.clone(),
                        });
                    }
                    _ => {}
                }
            }
            match &event.action {
                Fault::Partition { groups } => {
                    for n in groups.iter().flatten() {
                        known(&place, n)?;
                    }
                }
                Fault::Loss { from, to, rate } => {
                    for n in [from, to].into_iter().flatten() {
                        known(&place, n)?;
                    }
                    if !(0.0..=1.0).contains(rate) {
                        return Err(ScenarioError::BadEvent {
                            index,
                            problem: format!("loss rate {rate} is not within 0..=1"),
                        });
                    }
                }
                Fault::Drop { from, to, .. } => {
                    known(&place, from)?;
                    known(&place, to)?;
                }
                Fault::Forge {
                    from,
                    dst,
                    version,
                    advert_int,
                    ..
                } => {
                    let bad = |problem: String| ScenarioError::BadEvent { index, problem };
                    if let Some(d) = dst.filter(|d| d.is_ipv4() != from.is_ipv4()) {
                        return Err(bad(format!("dst {d} is not of {from}'s family")));
                    }
                    if *version == Version::V2 && from.is_ipv6() {
                        return Err(bad("VRRP version 2 runs over IPv4 only".to_owned()));
                    }
                    let micros = advert_int.0.as_micros();
                    let fits = match version {
                        Version::V2 => micros.is_multiple_of(1_000_000) && micros <= 255_000_000,
                        Version::V3 => micros.is_multiple_of(10_000) && micros <= 40_950_000,
                    };
                    if !fits {
                        return Err(bad(format!(
                            "advert_int {advert_int} does not fit a version {version} advert"
                        )));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl NodeSpec {
    fn validate(&self) -> Result<(), ScenarioError> {
        // The daemon's own checks, on the config as the daemon would read
        // it (written out as TOML, so a problem is named by its line).
        let text = self.config.to_toml().map_err(|e| ScenarioError::Config {
            node: self.name.clone(),
            problem: e.to_string(),
        })?;
        let path = format!("node {:?} config", self.name);
        config::load_text(Path::new(&path), &text, Format::Toml).map_err(|d| {
            ScenarioError::Config {
                node: self.name.clone(),
                problem: format!("{d}\n{text}"),
            }
        })?;
        for inst in &self.config.vrrp_instance {
            self.instance_config(inst)?;
        }
        Ok(())
    }

    /// The machine configuration of one of this node's instances, through
    /// the daemon's planner.
    pub fn instance_config(&self, inst: &VrrpInstance) -> Result<InstanceConfig, ScenarioError> {
        let bad = |problem: String| ScenarioError::BadInstance {
            node: self.name.clone(),
            instance: inst.name.clone(),
            problem,
        };
        // The daemon learns its address from the interface; a node has one
        // address, of one family.
        if let Some(peer) = inst
            .unicast_peer
            .iter()
            .find(|p| p.is_ipv4() != self.address.is_ipv4())
        {
            return Err(bad(format!(
                "unicast_peer {peer} is not of the node's address family"
            )));
        }
        plan::machine(&self.config, inst, self.address).map_err(|e| bad(e.to_string()))
    }

    pub fn start_time(&self) -> Duration {
        self.start.map_or(Duration::ZERO, |s| s.0)
    }
}

fn default_version() -> Version {
    Version::V2
}
fn default_advert_int() -> Span {
    Span(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::Centiseconds;

    const PAIR: &str = r#"
        name = "pair"
        duration = "10s"
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
    fn parses_with_keepalived_defaults() {
        let s = Scenario::from_toml(PAIR).unwrap();
        let b = s.node("b").unwrap();
        let cfg = b.instance_config(&b.config.vrrp_instance[0]).unwrap();
        assert_eq!(cfg.priority, Priority::DEFAULT);
        assert_eq!(cfg.adver_int, Centiseconds(100));
        assert_eq!(cfg.version, Version::V2);
        assert_eq!(cfg.garp_master_delay, Duration::from_secs(5));
        assert!(cfg.preempt);
    }

    #[test]
    fn unknown_node_in_event_is_named() {
        let text = format!("{PAIR}\n[[event]]\nat = \"1s\"\naction = \"crash\"\nnode = \"z\"\n");
        let err = Scenario::from_toml(&text).unwrap_err().to_string();
        assert!(
            err.contains("unknown node \"z\"") && err.contains("event #0"),
            "{err}"
        );
    }

    #[test]
    fn v2_rejects_fractional_advert_interval() {
        let text = PAIR.replace("priority = 150", "priority = 150\nadvert_int = \"100ms\"");
        let err = Scenario::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("advert_int") && err.contains("\"a\""), "{err}");
    }

    #[test]
    fn a_unicast_peer_of_the_other_family_is_refused() {
        let text = PAIR.replace(
            "priority = 150",
            "priority = 150\nunicast_peer = [\"2001:db8::2\"]",
        );
        let err = Scenario::from_toml(&text).unwrap_err().to_string();
        assert!(
            err.contains("unicast_peer 2001:db8::2") && err.contains("\"a\""),
            "{err}"
        );
    }

    #[test]
    fn the_daemons_config_checks_apply_to_each_node() {
        let twice = PAIR.replace(
            "priority = 150",
            "priority = 150\n[[node.config.vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 52",
        );
        let err = Scenario::from_toml(&twice).unwrap_err().to_string();
        assert!(
            err.contains("node \"a\": config") && err.contains("VI_1"),
            "{err}"
        );
        let untracked = PAIR.replace(
            "priority = 150",
            "priority = 150\ntrack_script = [{ name = \"nowhere\" }]",
        );
        let err = Scenario::from_toml(&untracked).unwrap_err().to_string();
        assert!(
            err.contains("node \"a\": config") && err.contains("nowhere"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = PAIR.replace("priority = 150", "priorty = 150");
        assert!(Scenario::from_toml(&text).is_err());
    }
}
