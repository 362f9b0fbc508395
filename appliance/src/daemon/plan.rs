//! From a validated [`Config`] to what the daemon runs: each VRRP instance's
//! machine parameters with the I/O facts the driver needs (interface, VIPs,
//! peers, authentication, notify programs), grouped into lone instances and
//! sync groups, plus the track scripts to run, the track files to watch,
//! the tracked processes to count and the IPVS settings beside
//! the service table (sync daemon, timeouts). Pure: nothing here touches
//! the system, so a reload can compare an old plan with a new one.

use crate::config::model::{
    Command, Config, InitFile, ParamMatch, TrackedProcess, VirtualAddress, VrrpInstance,
};
use crate::dataplane::ipvs::{SyncDaemon, SyncRole, Timeouts};
use crate::net::vip::Vip;
use crate::script::Program;
use crate::script::check::{Scripts, Unchecked};
use crate::vrrp::machine::{InstanceConfig, Track, TrackKind, TrackName, Weight};
use crate::vrrp::packet::{Auth, Password};
use crate::vrrp::process::{self, Pattern, QuorumConfig};
use crate::vrrp::{Centiseconds, Priority, Version};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

/// keepalived's default timeout for a `vrrp_script` without `timeout`: its
/// interval.
fn default_script_timeout(interval: Duration) -> Duration {
    interval
}

/// Everything the daemon runs for one config.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    /// This router's name in logs and the timeline (`router_id`, else the
    /// host name).
    pub node: String,
    pub units: Vec<UnitPlan>,
    pub scripts: Vec<ScriptPlan>,
    /// The `track_file`s some instance tracks (keepalived forgets the
    /// others).
    pub files: Vec<FilePlan>,
    /// The `vrrp_track_process`es some instance tracks.
    pub processes: Vec<ProcessPlan>,
    pub lvs: LvsPlan,
    /// `fifo_write_vrrp_states_on_reload`: a reload writes the states it
    /// left unchanged to the notify FIFOs too.
    pub fifo_states_on_reload: bool,
    /// The least time between two announcements on an interface.
    pub pacing: Pacing,
}

/// `vrrp_garp_interval` and `vrrp_gna_interval`: the least time between
/// two gratuitous ARPs, and between two unsolicited neighbour adverts, on
/// one interface (zero: no pacing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pacing {
    pub arp: Duration,
    pub na: Duration,
}

/// A `vrrp_track_process` the VRRP driver counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProcessPlan {
    pub name: String,
    pub pattern: Pattern,
    pub quorum: QuorumConfig,
}

/// A `track_file` the VRRP driver watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FilePlan {
    pub name: String,
    pub path: PathBuf,
    pub init: Option<InitFile>,
}

/// IPVS settings beside the service table.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LvsPlan {
    pub sync_daemon: Option<SyncPlan>,
    /// `lvs_timeouts` in seconds; `None` leaves the kernel's value.
    pub timeouts: Timeouts,
    /// `lvs_sloppy_tcp`.
    pub sloppy_tcp: bool,
}

/// `lvs_sync_daemon`: the connection sync daemon and the instance whose
/// state picks its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyncPlan {
    pub instance: String,
    pub interface: String,
    /// `id`, else the instance's virtual router id (keepalived's default).
    pub sync_id: u8,
    pub max_len: Option<u16>,
    pub group: Option<IpAddr>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
}

impl SyncPlan {
    /// The daemon to run in `role`.
    pub(crate) fn daemon(&self, role: SyncRole) -> SyncDaemon {
        SyncDaemon {
            role,
            interface: self.interface.clone(),
            sync_id: self.sync_id,
            max_len: self.max_len,
            group: self.group,
            port: self.port,
            ttl: self.ttl,
        }
    }
}

/// A lone instance or a sync group's members.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum UnitPlan {
    Solo(Box<InstancePlan>),
    Group {
        name: String,
        members: Vec<InstancePlan>,
        /// The group's own notify programs, run when its state changes.
        notify: Box<Notify>,
    },
}

impl UnitPlan {
    /// The instance's name, or the sync group's.
    pub(crate) fn name(&self) -> &str {
        match self {
            UnitPlan::Solo(i) => i.name(),
            UnitPlan::Group { name, .. } => name,
        }
    }

    pub(crate) fn instances(&self) -> &[InstancePlan] {
        match self {
            UnitPlan::Solo(i) => std::slice::from_ref(i),
            UnitPlan::Group { members, .. } => members,
        }
    }
}

/// One VRRP instance.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct InstancePlan {
    /// The machine's parameters. `primary_address` is a placeholder until
    /// the daemon reads the interface's address ([`InstancePlan::resolve`]).
    pub machine: InstanceConfig,
    /// The interface adverts go out on.
    pub interface: String,
    pub ipv6: bool,
    /// Advertised VIPs, each with the interface it goes on.
    pub vips: Vec<(String, Vip)>,
    /// `virtual_ipaddress_excluded`: held with the others, not advertised.
    pub excluded: Vec<(String, Vip)>,
    pub unicast_src: Option<IpAddr>,
    /// Empty for multicast.
    pub unicast_peers: Vec<IpAddr>,
    /// Where multicast adverts go (unused with unicast peers).
    pub multicast_group: IpAddr,
    /// keepalived's `skip_check_adv_addr`: adverts of a router already
    /// heard from are not checked for our VIPs.
    pub skip_check_adv_addr: bool,
    /// Whether the instance goes to FAULT while its interface is down
    /// (keepalived's default; `dont_track_primary` turns it off).
    pub track_primary: bool,
    pub auth: Auth,
    pub notify: Notify,
    /// `notify_master_rx_lower_pri`: run (without arguments) when, as
    /// master, the instance hears a lower priority.
    pub rx_lower_pri: Option<Program>,
    /// keepalived's `notify_priority_changes`, resolved: priority changes
    /// go to the VRRP FIFOs.
    pub priority_changes: bool,
    /// keepalived's `promote_secondaries` on the instance's interface
    /// (not with a virtual MAC interface, which has it).
    pub promote_secondaries: bool,
    /// keepalived's `use_vmac`: the interface the driver makes for the
    /// instance, which holds its VIPs (those of `vips` and `excluded`
    /// name it already).
    pub vmac: Option<VmacPlan>,
}

/// A virtual MAC interface: a private-mode macvlan on the instance's
/// interface with the VRRP virtual MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VmacPlan {
    pub name: String,
    pub mac: [u8; 6],
    /// `vmac_xmit_base`: adverts use the instance's interface, not this one.
    pub xmit_base: bool,
}

impl VmacPlan {
    /// The interface adverts go out of and come in on.
    fn advert_interface<'p>(&'p self, interface: &'p str) -> &'p str {
        if self.xmit_base {
            interface
        } else {
            &self.name
        }
    }
}

/// The VRRP virtual MAC of an IPv4 router (RFC 5798 §7.3).
pub(crate) fn virtual_mac(vrid: crate::vrrp::Vrid) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, 0x01, vrid.get()]
}

impl InstancePlan {
    /// The interface of the instance's VRRP socket: its own, or its
    /// virtual MAC interface unless that is to `vmac_xmit_base`.
    pub(crate) fn advert_interface(&self) -> &str {
        match &self.vmac {
            Some(vmac) => vmac.advert_interface(&self.interface),
            None => &self.interface,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.machine.name
    }

    pub(crate) fn version(&self) -> Version {
        self.machine.version
    }

    /// The machine's config with our primary address on the interface.
    pub(crate) fn resolve(&self, primary: IpAddr) -> InstanceConfig {
        InstanceConfig {
            primary_address: primary,
            ..self.machine.clone()
        }
    }

    /// Every VIP the instance holds as master.
    pub(crate) fn all_vips(&self) -> impl Iterator<Item = &(String, Vip)> {
        self.vips.iter().chain(&self.excluded)
    }
}

/// keepalived's notify programs of an instance or a sync group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Notify {
    pub master: Option<Program>,
    pub backup: Option<Program>,
    pub fault: Option<Program>,
    pub stop: Option<Program>,
    /// `notify`: run on every change with `INSTANCE <name> <STATE>
    /// <priority>` (`GROUP <name> <STATE> 0` for a group).
    pub any: Option<Program>,
}

/// A `vrrp_script` the daemon runs on its interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScriptPlan {
    pub name: String,
    pub program: Program,
    pub interval: Duration,
    pub timeout: Duration,
}

/// A config the daemon cannot run although it passed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "vrrp_instance '{instance}': advert_int {interval:?} is not a whole number of centiseconds in 1..=4095"
    )]
    AdvertInterval {
        instance: String,
        interval: Duration,
    },
    #[error("vrrp_instance '{instance}': track_script '{script}' is not defined")]
    UnknownScript { instance: String, script: String },
    #[error("vrrp_instance '{instance}': track_file '{file}' is not defined")]
    UnknownFile { instance: String, file: String },
    #[error("vrrp_instance '{instance}': track_process '{process}' is not defined")]
    UnknownProcess { instance: String, process: String },
    #[error("lvs_sync_daemon: vrrp_instance '{0}' is not defined")]
    UnknownSyncInstance(String),
    #[error(transparent)]
    Script(#[from] Unchecked),
}

/// keepalived treats a zero timeout as unset.
fn seconds(timeout: Option<Duration>) -> Option<u32> {
    timeout
        .map(|t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX))
        .filter(|&s| s != 0)
}

fn lvs_plan(config: &Config) -> Result<LvsPlan, Error> {
    let global = &config.global;
    let sync_daemon = match &global.lvs_sync_daemon {
        Some(sync) => {
            let instance = config
                .vrrp_instance
                .iter()
                .find(|i| i.name == sync.vrrp_instance)
                .ok_or_else(|| Error::UnknownSyncInstance(sync.vrrp_instance.clone()))?;
            Some(SyncPlan {
                instance: sync.vrrp_instance.clone(),
                interface: sync.interface.clone(),
                sync_id: sync.id.unwrap_or(instance.virtual_router_id.get()),
                max_len: sync.maxlen,
                group: sync.group,
                port: sync.port,
                ttl: sync.ttl,
            })
        }
        None => None,
    };
    let t = &global.lvs_timeouts;
    Ok(LvsPlan {
        sync_daemon,
        timeouts: Timeouts {
            tcp: seconds(t.tcp),
            tcp_fin: seconds(t.tcpfin),
            udp: seconds(t.udp),
        },
        sloppy_tcp: global.lvs_sloppy_tcp,
    })
}

/// keepalived's notify programs, as `scripts` runs them.
fn notify(scripts: &Scripts, commands: [&Option<Command>; 5]) -> Result<Notify, Error> {
    let [master, backup, fault, stop, any] = commands.map(|c| {
        c.as_ref()
            .map(|c| scripts.program(c))
            .transpose()
            .map_err(Error::from)
    });
    Ok(Notify {
        master: master?,
        backup: backup?,
        fault: fault?,
        stop: stop?,
        any: any?,
    })
}

fn vip(instance: &VrrpInstance, address: &VirtualAddress) -> (String, Vip) {
    let dev = address
        .dev
        .clone()
        .unwrap_or_else(|| instance.interface.clone());
    let vip = Vip {
        addr: address.address.addr(),
        prefix_len: address.address.prefix_len(),
        label: address.label.clone(),
        scope: address.scope,
    };
    (dev, vip)
}

/// keepalived's advert_int as the machine's centiseconds.
fn centiseconds(instance: &VrrpInstance) -> Result<Centiseconds, Error> {
    let cs = instance.advert_int.as_millis() / 10;
    match u16::try_from(cs) {
        Ok(cs @ 1..=4095) if instance.advert_int.as_millis().is_multiple_of(10) => {
            Ok(Centiseconds(cs))
        }
        _ => Err(Error::AdvertInterval {
            instance: instance.name.clone(),
            interval: instance.advert_int,
        }),
    }
}

/// The state machine's parameters for `instance` of `config`, with
/// `primary` as our address on its interface: the one translation from
/// the config to the VRRP core, which the daemon and the simulator share.
pub(crate) fn machine(
    config: &Config,
    instance: &VrrpInstance,
    primary: IpAddr,
) -> Result<InstanceConfig, Error> {
    let global = &config.global;
    let mut machine =
        InstanceConfig::new(instance.name.clone(), instance.virtual_router_id, primary);
    machine.version = instance.effective_version(global);
    machine.priority = instance.priority;
    machine.adver_int = centiseconds(instance)?;
    machine.initial_state = instance.state;
    machine.preempt = !instance.nopreempt;
    machine.preempt_delay = instance.preempt_delay;
    machine.garp_master_delay = instance
        .garp_master_delay
        .unwrap_or(global.vrrp_garp_master_delay);
    machine.garp_master_repeat = instance
        .garp_master_repeat
        .unwrap_or(global.vrrp_garp_master_repeat);
    machine.garp_master_refresh = instance
        .garp_master_refresh
        .unwrap_or(global.vrrp_garp_master_refresh);
    machine.garp_master_refresh_repeat = instance
        .garp_master_refresh_repeat
        .unwrap_or(global.vrrp_garp_master_refresh_repeat);
    // keepalived's defaults are the global garp_master ones.
    machine.garp_lower_prio_repeat = instance
        .garp_lower_prio_repeat
        .or(global.vrrp_garp_lower_prio_repeat)
        .unwrap_or(global.vrrp_garp_master_repeat);
    machine.garp_lower_prio_delay = instance
        .garp_lower_prio_delay
        .or(global.vrrp_garp_lower_prio_delay)
        .unwrap_or(global.vrrp_garp_master_delay);
    for track in &instance.track_script {
        let script = config
            .vrrp_script
            .iter()
            .find(|s| s.name == track.name)
            .ok_or_else(|| Error::UnknownScript {
                instance: instance.name.clone(),
                script: track.name.clone(),
            })?;
        machine.tracks.push(Track {
            name: TrackName(track.name.clone()),
            kind: TrackKind::Script {
                rise: script.rise,
                fall: script.fall,
            },
            weight: track.weight.unwrap_or(script.weight),
        });
    }
    for track in &instance.track_interface {
        machine.tracks.push(Track {
            name: TrackName(track.name.clone()),
            kind: TrackKind::Interface,
            weight: track.weight.unwrap_or(Weight::default()),
        });
    }
    for track in &instance.track_file {
        let file = config
            .track_file
            .iter()
            .find(|f| f.name == track.name)
            .ok_or_else(|| Error::UnknownFile {
                instance: instance.name.clone(),
                file: track.name.clone(),
            })?;
        let mut weight = track.weight.unwrap_or(file.weight).0;
        if instance.priority == Priority::OWNER {
            // keepalived (vrrp_complete_instance): the address owner's
            // priority never moves, so a file at the default weight 1 is
            // tracked unweighted (a non-zero value faults) and one with
            // any other weight is not tracked at all.
            match weight.get() {
                0 => {}
                1 => weight = Weight::default(),
                _ => continue,
            }
        }
        machine.tracks.push(Track {
            name: TrackName(track.name.clone()),
            kind: TrackKind::File {
                reverse: track.reverse.unwrap_or(file.reverse),
            },
            weight,
        });
    }
    for track in &instance.track_process {
        let process = config
            .vrrp_track_process
            .iter()
            .find(|p| p.name == track.name)
            .ok_or_else(|| Error::UnknownProcess {
                instance: instance.name.clone(),
                process: track.name.clone(),
            })?;
        // The address owner keeps its weighted processes: its priority
        // does not move (as keepalived's vrrp_set_effective_priority).
        machine.tracks.push(Track {
            name: TrackName(track.name.clone()),
            kind: TrackKind::Process {
                reverse: track.reverse.unwrap_or(process.reverse),
            },
            weight: track.weight.unwrap_or(process.weight).0,
        });
    }
    Ok(machine)
}

/// A `vrrp_track_process` as the driver counts it: with parameters or
/// `param_match` the full command is matched, and parameters without
/// `param_match` must match exactly (keepalived's parser).
fn process_plan(p: &TrackedProcess) -> ProcessPlan {
    let param_match = p
        .param_match
        .or((!p.params.is_empty()).then_some(ParamMatch::Exact));
    let params = param_match.map(|how| {
        let how = match how {
            ParamMatch::Exact => process::ParamMatch::Exact,
            ParamMatch::Initial => process::ParamMatch::Initial,
            ParamMatch::Partial => process::ParamMatch::Partial,
        };
        (how, p.params.clone())
    });
    let max = p.quorum_max.unwrap_or(u32::MAX);
    ProcessPlan {
        name: p.name.clone(),
        pattern: Pattern {
            name: p.process.clone(),
            full_command: p.full_command || params.is_some(),
            params,
        },
        quorum: QuorumConfig {
            // keepalived: quorum_max 0 takes the quorum to 0 too.
            min: if max == 0 { 0 } else { p.quorum },
            max,
            fork_delay: p.fork_delay,
            terminate_delay: p.terminate_delay,
        },
    }
}

fn instance_plan(
    config: &Config,
    scripts: &Scripts,
    instance: &VrrpInstance,
    vmac_name: Option<String>,
) -> Result<InstancePlan, Error> {
    let ipv6 = instance.is_ipv6();
    let placeholder = if ipv6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let machine = machine(config, instance, placeholder)?;
    let auth = match &instance.authentication {
        Some(a) => Auth::Pass(Password(a.wire_password())),
        None => Auth::None,
    };
    let vmac = vmac_name.map(|name| VmacPlan {
        name,
        mac: virtual_mac(instance.virtual_router_id),
        xmit_base: instance.vmac_xmit_base,
    });
    // keepalived's vrrp_complete_instance: the VIPs of the instance's
    // family on its own interface go on the virtual MAC interface; those
    // of the other family, or on another interface, stay where they are.
    let place = |address: &VirtualAddress| {
        let (dev, vip) = vip(instance, address);
        match &vmac {
            Some(vmac) if dev == instance.interface && vip.addr.is_ipv6() == ipv6 => {
                (vmac.name.clone(), vip)
            }
            _ => (dev, vip),
        }
    };
    Ok(InstancePlan {
        machine,
        interface: instance.interface.clone(),
        ipv6,
        vips: instance.virtual_ipaddress.iter().map(place).collect(),
        excluded: instance
            .virtual_ipaddress_excluded
            .iter()
            .map(place)
            .collect(),
        unicast_src: instance.unicast_src_ip,
        unicast_peers: instance.unicast_peer.clone(),
        multicast_group: instance.multicast_group(&config.global),
        track_primary: !instance.dont_track_primary,
        skip_check_adv_addr: instance.skip_check_adv_addr,
        auth,
        notify: notify(
            scripts,
            [
                &instance.notify_master,
                &instance.notify_backup,
                &instance.notify_fault,
                &instance.notify_stop,
                &instance.notify,
            ],
        )?,
        rx_lower_pri: instance
            .notify_master_rx_lower_pri
            .as_ref()
            .map(|c| scripts.program(c))
            .transpose()?,
        priority_changes: instance
            .notify_priority_changes
            .or_else(|| {
                config
                    .vrrp_sync_group
                    .iter()
                    .find(|g| g.group.contains(&instance.name))
                    .and_then(|g| g.notify_priority_changes)
            })
            .unwrap_or(config.global.vrrp_notify_priority_changes),
        promote_secondaries: instance.promote_secondaries && vmac.is_none(),
        vmac,
    })
}

/// The plan for `config`, its programs run as `scripts` says; `hostname`
/// names the node when `router_id` is not set.
pub(crate) fn plan(config: &Config, scripts: &Scripts, hostname: &str) -> Result<Plan, Error> {
    let mut instances = config
        .vrrp_instance
        .iter()
        .zip(crate::config::model::vmac_names(config))
        .map(|(i, vmac)| instance_plan(config, scripts, i, vmac))
        .collect::<Result<Vec<_>, _>>()?;
    let mut units = Vec::new();
    for group in &config.vrrp_sync_group {
        let mut members = Vec::new();
        for name in &group.group {
            if let Some(pos) = instances.iter().position(|i| i.name() == name) {
                members.push(instances.remove(pos));
            }
        }
        units.push(UnitPlan::Group {
            name: group.name.clone(),
            members,
            notify: Box::new(notify(
                scripts,
                [
                    &group.notify_master,
                    &group.notify_backup,
                    &group.notify_fault,
                    &group.notify_stop,
                    &group.notify,
                ],
            )?),
        });
    }
    units.extend(instances.into_iter().map(|i| UnitPlan::Solo(Box::new(i))));
    let tracked = config
        .vrrp_script
        .iter()
        .map(|s| {
            Ok(ScriptPlan {
                name: s.name.clone(),
                program: scripts.program(&s.script)?,
                interval: s.interval,
                timeout: s
                    .timeout
                    .unwrap_or_else(|| default_script_timeout(s.interval)),
            })
        })
        .collect::<Result<_, Error>>()?;
    let files = config
        .track_file
        .iter()
        .filter(|f| {
            config
                .vrrp_instance
                .iter()
                .any(|i| i.track_file.iter().any(|t| t.name == f.name))
        })
        .map(|f| FilePlan {
            name: f.name.clone(),
            path: f.file.clone(),
            init: f.init_file,
        })
        .collect();
    let processes = config
        .vrrp_track_process
        .iter()
        .filter(|p| {
            config
                .vrrp_instance
                .iter()
                .any(|i| i.track_process.iter().any(|t| t.name == p.name))
        })
        .map(process_plan)
        .collect();
    Ok(Plan {
        node: config
            .global
            .router_id
            .clone()
            .unwrap_or_else(|| hostname.to_string()),
        units,
        scripts: tracked,
        files,
        processes,
        lvs: lvs_plan(config)?,
        pacing: Pacing {
            arp: config.global.vrrp_garp_interval,
            na: config.global.vrrp_gna_interval,
        },
        fifo_states_on_reload: config.global.fifo_write_vrrp_states_on_reload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, load_str};
    use std::path::Path;

    fn load(text: &str) -> Config {
        load_str(Path::new("test.conf"), text, Format::Keepalived).unwrap_or_else(|d| panic!("{d}"))
    }

    /// keepalived's `vrrp_complete_instance`: with `use_vmac`, the VIPs of
    /// the instance's family on its interface (no `dev`, or `dev` the
    /// interface) go on the macvlan; another interface's, or the other
    /// family's, stay. Adverts use the macvlan unless `vmac_xmit_base`.
    #[test]
    fn use_vmac_moves_the_instances_own_vips_to_the_macvlan() {
        let config = load(
            "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  use_vmac\n  \
             virtual_ipaddress {\n    10.0.0.1/24\n    10.0.0.2 dev eth0\n    10.0.1.1 dev eth1\n  }\n  \
             virtual_ipaddress_excluded {\n    fd00::1/64\n    10.0.0.3\n  }\n}\n\
             vrrp_instance VI_2 {\n  interface eth0\n  virtual_router_id 52\n  use_vmac lan52\n  \
             vmac_xmit_base\n  virtual_ipaddress {\n    10.0.0.4\n  }\n}\n",
        );
        let plan = plan(&config, &Scripts::default(), "host").unwrap();
        let [UnitPlan::Solo(one), UnitPlan::Solo(two)] = plan.units.as_slice() else {
            panic!("two lone instances: {:?}", plan.units)
        };
        let devs = |vips: &[(String, Vip)]| -> Vec<(String, String)> {
            vips.iter()
                .map(|(dev, v)| (v.addr.to_string(), dev.clone()))
                .collect()
        };
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(a, d)| ((*a).to_string(), (*d).to_string()))
                .collect()
        };
        assert_eq!(
            devs(&one.vips),
            pairs(&[
                ("10.0.0.1", "vrrp.51"),
                ("10.0.0.2", "vrrp.51"),
                ("10.0.1.1", "eth1")
            ])
        );
        assert_eq!(
            devs(&one.excluded),
            pairs(&[("fd00::1", "eth0"), ("10.0.0.3", "vrrp.51")])
        );
        assert_eq!(
            one.vmac,
            Some(VmacPlan {
                name: "vrrp.51".into(),
                mac: [0, 0, 0x5e, 0, 1, 51],
                xmit_base: false
            })
        );
        assert_eq!(one.advert_interface(), "vrrp.51");
        assert_eq!(devs(&two.vips), pairs(&[("10.0.0.4", "lan52")]));
        assert_eq!(two.advert_interface(), "eth0", "vmac_xmit_base");
    }

    #[test]
    fn the_seed_master_becomes_one_instance_with_its_script() {
        let config = load(include_str!(
            "../../../tests/fixtures/keepalived/seed-master.conf"
        ));
        let plan = plan(&config, &Scripts::default(), "host").unwrap();
        assert_eq!(plan.node, "LVS_DEVEL");
        let [UnitPlan::Solo(i)] = plan.units.as_slice() else {
            panic!("one lone instance: {:?}", plan.units)
        };
        assert_eq!(i.interface, "ens33");
        assert_eq!(i.machine.vrid.get(), 51);
        assert_eq!(i.machine.priority.get(), 100);
        assert_eq!(i.machine.adver_int, Centiseconds(100));
        assert_eq!(i.auth, Auth::Pass(Password(*b"aminglin")));
        assert_eq!(
            i.vips,
            vec![(
                "ens33".into(),
                Vip {
                    addr: "192.168.188.100".parse().unwrap(),
                    prefix_len: 32,
                    label: None,
                    scope: None,
                }
            )]
        );
        assert_eq!(i.machine.tracks.len(), 1);
        assert_eq!(
            i.machine.tracks[0].kind,
            TrackKind::Script { rise: 1, fall: 1 }
        );
        assert_eq!(plan.scripts.len(), 1);
        assert_eq!(
            plan.scripts[0].program.path,
            Path::new("/usr/local/sbin/check_ng.sh")
        );
        assert_eq!(plan.scripts[0].interval, Duration::from_secs(3));
    }

    /// `notify_priority_changes`: the instance's own, else its sync
    /// group's, else global `vrrp_notify_priority_changes`; and
    /// `notify_master_rx_lower_pri`'s program.
    #[test]
    fn priority_change_lines_resolve_instance_then_group_then_global() {
        let config = load(
            "global_defs { vrrp_notify_priority_changes }
             vrrp_sync_group G { group { A\n B }\n notify_priority_changes off }
             vrrp_instance A { interface eth0\n virtual_router_id 1\n notify_priority_changes on }
             vrrp_instance B { interface eth0\n virtual_router_id 2 }
             vrrp_instance C { interface eth0\n virtual_router_id 3\n notify_master_rx_lower_pri \"/bin/heal now\" }",
        );
        let plan = plan(&config, &Scripts::default(), "host").unwrap();
        let instances: Vec<&InstancePlan> = plan
            .units
            .iter()
            .flat_map(|u| match u {
                UnitPlan::Group { members, .. } => members.iter().collect::<Vec<_>>(),
                UnitPlan::Solo(i) => vec![&**i],
            })
            .collect();
        assert_eq!(
            instances
                .iter()
                .map(|i| (i.name(), i.priority_changes))
                .collect::<Vec<_>>(),
            [("A", true), ("B", false), ("C", true)]
        );
        let heal = instances[2].rx_lower_pri.as_ref().unwrap();
        assert_eq!(
            (heal.path.to_str(), heal.args.as_slice()),
            (Some("/bin/heal"), ["now".to_string()].as_slice())
        );
        assert_eq!(instances[0].rx_lower_pri, None);
    }

    #[test]
    fn sync_groups_take_their_members_and_weights_override_the_script() {
        let config = load(
            "vrrp_script chk { script \"/bin/true\"\n weight -20\n }
             vrrp_sync_group G { group { A\n B }\n notify_master \"/bin/g master\"\n notify /bin/g-any }
             vrrp_instance A { interface eth0\n virtual_router_id 1\n advert_int 0.1\n version 3\n virtual_ipaddress { 10.0.0.1/24 dev eth1 label eth1:a }\n track_script { chk weight -30 } }
             vrrp_instance B { interface eth0\n virtual_router_id 2\n version 3\n virtual_ipaddress { fd00::1/64 } }
             vrrp_instance C { interface eth0\n virtual_router_id 3\n unicast_peer { 10.0.0.9 }\n virtual_ipaddress { 10.0.0.3 } }",
        );
        let plan = plan(&config, &Scripts::default(), "host").unwrap();
        assert_eq!(plan.node, "host");
        let [
            UnitPlan::Group {
                name,
                members,
                notify,
            },
            UnitPlan::Solo(c),
        ] = plan.units.as_slice()
        else {
            panic!("a group and a lone instance: {:?}", plan.units)
        };
        assert_eq!(name, "G");
        let master = notify.master.as_ref().unwrap();
        assert_eq!(
            (master.path.to_str(), master.args.as_slice()),
            (Some("/bin/g"), ["master".to_string()].as_slice())
        );
        assert_eq!(
            notify.any.as_ref().map(|p| p.path.clone()),
            Some("/bin/g-any".into())
        );
        assert_eq!(notify.backup, None);
        assert_eq!(
            members.iter().map(InstancePlan::name).collect::<Vec<_>>(),
            ["A", "B"]
        );
        assert_eq!(members[0].machine.adver_int, Centiseconds(10));
        assert_eq!(members[0].machine.tracks[0].weight.get(), -30);
        assert_eq!(members[0].vips[0].0, "eth1");
        assert_eq!(members[0].vips[0].1.label.as_deref(), Some("eth1:a"));
        assert!(members[1].ipv6);
        assert_eq!(c.unicast_peers, vec!["10.0.0.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(plan.lvs, LvsPlan::default());
    }

    #[test]
    fn track_files_take_their_weight_and_direction_from_the_file_unless_overridden() {
        let config = load(
            "track_file a { file /run/a\n weight -5 reverse\n init_file 3 }
             track_file b { file /run/b }
             track_file unused { file /run/unused }
             vrrp_instance V { interface eth0\n virtual_router_id 1\n track_file { a\n b weight 7 reverse } }
             vrrp_instance O { interface eth0\n virtual_router_id 2\n priority 255\n track_file { a weight 0\n b } }
             vrrp_instance P { interface eth0\n virtual_router_id 3\n priority 255\n track_file { a } }",
        );
        let plan = plan(&config, &Scripts::default(), "host").unwrap();
        assert_eq!(
            plan.files,
            [
                FilePlan {
                    name: "a".into(),
                    path: "/run/a".into(),
                    init: Some(InitFile {
                        value: 3,
                        overwrite: false
                    }),
                },
                FilePlan {
                    name: "b".into(),
                    path: "/run/b".into(),
                    init: None,
                },
            ],
            "only tracked files are watched"
        );
        let tracks = |unit: &UnitPlan| match unit {
            UnitPlan::Solo(i) => i
                .machine
                .tracks
                .iter()
                .map(|t| (t.name.0.clone(), t.kind, t.weight.get()))
                .collect::<Vec<_>>(),
            UnitPlan::Group { .. } => panic!("lone instances only"),
        };
        assert_eq!(
            tracks(&plan.units[0]),
            [
                ("a".into(), TrackKind::File { reverse: true }, -5),
                ("b".into(), TrackKind::File { reverse: true }, 7),
            ]
        );
        // The address owner: weight 0 stays, the default weight 1 becomes
        // 0 (keepalived's "specify weight 0"), any other weight is dropped.
        assert_eq!(
            tracks(&plan.units[1]),
            [
                ("a".into(), TrackKind::File { reverse: true }, 0),
                ("b".into(), TrackKind::File { reverse: false }, 0),
            ]
        );
        assert_eq!(tracks(&plan.units[2]), []);
    }

    #[test]
    fn tracked_processes_become_patterns_and_quorums_and_instance_tracks() {
        let config = load(
            "vrrp_track_process web { process nginx\n weight -5 reverse\n quorum 2\n terminate_delay 0.5 }
             vrrp_track_process cmd { process sleep 300\n quorum_max 0 }
             vrrp_track_process args { process /bin/x a\n param_match partial }
             vrrp_track_process unused { process nope }
             vrrp_instance V { interface eth0\n virtual_router_id 1\n track_process { web\n cmd weight 7\n args weight 1 noreverse } }",
        );
        let plan = plan(&config, &Scripts::default(), "host").unwrap();
        let quorum = |min, max, terminate_ms| QuorumConfig {
            min,
            max,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::from_millis(terminate_ms),
        };
        assert_eq!(
            plan.processes,
            [
                ProcessPlan {
                    name: "web".into(),
                    pattern: Pattern {
                        name: "nginx".into(),
                        params: None,
                        full_command: false,
                    },
                    quorum: quorum(2, u32::MAX, 500),
                },
                ProcessPlan {
                    name: "cmd".into(),
                    pattern: Pattern {
                        name: "sleep".into(),
                        params: Some((process::ParamMatch::Exact, vec!["300".into()])),
                        full_command: true,
                    },
                    quorum: quorum(0, 0, 0),
                },
                ProcessPlan {
                    name: "args".into(),
                    pattern: Pattern {
                        name: "/bin/x".into(),
                        params: Some((process::ParamMatch::Partial, vec!["a".into()])),
                        full_command: true,
                    },
                    quorum: quorum(1, u32::MAX, 0),
                },
            ],
            "only tracked processes are counted"
        );
        let UnitPlan::Solo(i) = &plan.units[0] else {
            panic!("a lone instance")
        };
        assert_eq!(
            i.machine
                .tracks
                .iter()
                .map(|t| (t.name.0.as_str(), t.kind, t.weight.get()))
                .collect::<Vec<_>>(),
            [
                ("web", TrackKind::Process { reverse: true }, -5),
                ("cmd", TrackKind::Process { reverse: false }, 7),
                ("args", TrackKind::Process { reverse: false }, 1),
            ]
        );
    }

    #[test]
    fn the_sync_id_defaults_to_the_instances_vrid_and_zero_timeouts_are_unset() {
        let config = load(
            "global_defs { lvs_sync_daemon eth1 VI_1 port 8849\n lvs_timeouts tcp 900 tcpfin 0 }
             vrrp_instance VI_1 { interface eth0\n virtual_router_id 51 }",
        );
        let lvs = plan(&config, &Scripts::default(), "host").unwrap().lvs;
        let sync = lvs.sync_daemon.unwrap();
        assert_eq!(
            sync.daemon(SyncRole::Backup),
            SyncDaemon {
                role: SyncRole::Backup,
                interface: "eth1".into(),
                sync_id: 51,
                max_len: None,
                group: None,
                port: Some(8849),
                ttl: None,
            }
        );
        assert_eq!(sync.instance, "VI_1");
        assert_eq!(
            lvs.timeouts,
            Timeouts {
                tcp: Some(900),
                tcp_fin: None,
                udp: None
            }
        );
    }
}
