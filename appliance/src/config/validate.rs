//! Validation of a loaded model, whatever format it came from: the rules
//! keepalived enforces (or that would make the appliance misbehave), each
//! reported at the position of the offending keyword.

use super::diag::{Diagnostic, SourceMap};
use super::model::{
    Choice, Command, Config, Global, LvsTimeouts, NotifyFifo, VirtualAddress, VrrpInstance,
};
use crate::vrrp::Version;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Every problem found in `config`; `map` locates them.
pub(crate) fn validate(config: &Config, map: &SourceMap) -> Vec<Diagnostic> {
    let mut v = Validator {
        map,
        out: Vec::new(),
    };
    v.unique_names(config);
    v.multicast_groups(&config.global);
    v.instances(config);
    v.tracked_processes(config);
    v.vmac_names(config);
    v.sync_groups(config);
    v.virtual_servers(config);
    v.lvs(config);
    v.script_users(config);
    v.periods(config);
    v.dataplane(config);
    v.status_group(config);
    v.status_page(&config.global);
    v.master_only(config);
    v.network(config);
    v.bgp(config);
    v.notify_fifos(config);
    v.mail(&config.global);
    v.out
}

/// Warnings on a valid config: what works but is likely not what its
/// author wants. A virtual server announced over BGP is reached through
/// whichever director the router picks, so a flow the router moves must
/// find the same real server there: `lb_algo = "mh"`; and on IPVS, whose
/// Maglev table depends on the order it holds the servers in (newest
/// first), a failed server removed and re-added reorders that director's
/// table, unless failed servers keep their place at weight 0
/// (`inhibit_on_failure`) and the `fallback` flag sends their flows on.
pub(crate) fn advise(config: &Config, map: &mut SourceMap) {
    let Some(bgp) = &config.bgp else {
        return;
    };
    for (i, vs) in config.virtual_server.iter().enumerate() {
        let Ok(services) = crate::dataplane::build::services(vs, &config.virtual_server_group)
        else {
            continue;
        };
        let Some(address) = services
            .iter()
            .filter_map(|service| match service.key {
                crate::dataplane::ServiceKey::Socket { address, .. } => Some(address),
                crate::dataplane::ServiceKey::Fwmark { .. } => None,
            })
            .find(|address| bgp.announce.iter().any(|p| p.contains(&address.ip())))
        else {
            continue;
        };
        let warn = |map: &mut SourceMap, path: &str, message: String| {
            let pos = map.lookup(path);
            map.warn(Diagnostic::new(pos, message));
        };
        if vs.lb_algo != crate::dataplane::Scheduler::Mh {
            warn(
                map,
                &format!("virtual_server[{i}].lb_algo"),
                format!(
                    "virtual_server {address} is announced over BGP with lb_algo {}: a flow \
                     the router moves to another director reaches another real server there \
                     and breaks; lb_algo \"mh\" sends it to the same one from every director",
                    vs.lb_algo.name()
                ),
            );
        } else if config.global.dataplane != Some(Choice::Nftables)
            && (!vs.sched_flags.fallback || vs.real_server.iter().any(|rs| !rs.inhibit_on_failure))
        {
            warn(
                map,
                &format!("virtual_server[{i}]"),
                format!(
                    "virtual_server {address} is announced over BGP with mh, which on IPVS \
                     wants sched_flags fallback and inhibit_on_failure on its real servers: \
                     otherwise a real server that fails and comes back goes to the head of \
                     IPVS's list and this director's Maglev table drifts from the others'"
                ),
            );
        }
    }
}

/// Why `text` cannot go into an SMTP command or header: empty, or with a
/// control character (a line break would end the command early), or, for
/// an `address`, with spaces or angle brackets.
fn smtp_word_problem(text: &str, address: bool) -> Option<&'static str> {
    if text.is_empty() {
        Some("is empty")
    } else if text.chars().any(char::is_control) {
        Some("holds a control character")
    } else if address
        && text
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>')
    {
        Some("holds a space or an angle bracket")
    } else {
        None
    }
}

/// Whether `key` names a kernel parameter: dotted words of lowercase
/// letters, digits, `_` and `-` (interface names may hold `-`), nothing
/// that could leave /proc/sys.
pub(crate) fn is_sysctl_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

struct Validator<'m> {
    map: &'m SourceMap,
    out: Vec<Diagnostic>,
}

/// How messages name a virtual server: "TCP 10.0.0.1:80", "fwmark 1".
fn range_reversed(first: std::net::IpAddr, last: std::net::IpAddr) -> bool {
    match (first, last) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => a > b,
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => a > b,
        _ => false,
    }
}

/// A program of a config: what runs it and where it is.
pub(crate) struct CommandSite<'c> {
    pub command: &'c Command,
    /// What it is, for messages: "vrrp_instance 'VI_1' notify_master".
    pub owner: String,
    /// Its model path (`vrrp_instance[0].notify_master`).
    pub path: String,
    /// Where keepalived.conf gives its user when not on the same line
    /// (`user` in `vrrp_script` and `MISC_CHECK`).
    pub user_path: Option<String>,
}

/// Every program of `config`, in file order within each kind.
pub(crate) fn commands(config: &Config) -> Vec<CommandSite<'_>> {
    let mut out = Vec::new();
    for (i, script) in config.vrrp_script.iter().enumerate() {
        out.push(CommandSite {
            command: &script.script,
            owner: format!("vrrp_script '{}'", script.name),
            path: format!("vrrp_script[{i}].script"),
            user_path: Some(format!("vrrp_script[{i}].user")),
        });
    }
    fn notifies<'c>(
        kind: &str,
        i: usize,
        name: &str,
        list: &[(&str, &'c Option<Command>)],
    ) -> Vec<CommandSite<'c>> {
        list.iter()
            .filter_map(|&(keyword, command)| {
                Some(CommandSite {
                    command: command.as_ref()?,
                    owner: format!("{kind} '{name}' {keyword}"),
                    path: format!("{kind}[{i}].{keyword}"),
                    user_path: None,
                })
            })
            .collect()
    }
    for (i, group) in config.vrrp_sync_group.iter().enumerate() {
        out.extend(notifies(
            "vrrp_sync_group",
            i,
            &group.name,
            &[
                ("notify_master", &group.notify_master),
                ("notify_backup", &group.notify_backup),
                ("notify_fault", &group.notify_fault),
                ("notify_stop", &group.notify_stop),
                ("notify", &group.notify),
            ],
        ));
    }
    for (i, inst) in config.vrrp_instance.iter().enumerate() {
        out.extend(notifies(
            "vrrp_instance",
            i,
            &inst.name,
            &[
                ("notify_master", &inst.notify_master),
                ("notify_backup", &inst.notify_backup),
                ("notify_fault", &inst.notify_fault),
                ("notify_stop", &inst.notify_stop),
                ("notify", &inst.notify),
                (
                    "notify_master_rx_lower_pri",
                    &inst.notify_master_rx_lower_pri,
                ),
            ],
        ));
    }
    for (keyword, fifo) in notify_fifos(&config.global) {
        if let Some(command) = &fifo.script {
            out.push(CommandSite {
                command,
                owner: format!("{keyword}_script"),
                path: format!("global.{keyword}.script"),
                user_path: None,
            });
        }
    }
    for (i, vs) in config.virtual_server.iter().enumerate() {
        let name = vs.name();
        for (keyword, command) in [
            ("quorum_up", &vs.quorum_up),
            ("quorum_down", &vs.quorum_down),
        ] {
            if let Some(command) = command {
                out.push(CommandSite {
                    command,
                    owner: format!("virtual_server {name} {keyword}"),
                    path: format!("virtual_server[{i}].{keyword}"),
                    user_path: None,
                });
            }
        }
        for (j, rs) in vs.real_server.iter().enumerate() {
            let base = format!("virtual_server[{i}].real_server[{j}]");
            for (keyword, command) in [
                ("notify_up", &rs.notify_up),
                ("notify_down", &rs.notify_down),
            ] {
                if let Some(command) = command {
                    out.push(CommandSite {
                        command,
                        owner: format!("real_server {} {keyword}", rs.address),
                        path: format!("{base}.{keyword}"),
                        user_path: None,
                    });
                }
            }
            for (k, check) in rs.check.iter().enumerate() {
                if let super::model::Check::Misc(misc) = check {
                    out.push(CommandSite {
                        command: &misc.misc_path,
                        owner: format!("real_server {} MISC_CHECK", rs.address),
                        path: format!("{base}.check[{k}].misc_path"),
                        user_path: Some(format!("{base}.check[{k}].user")),
                    });
                }
            }
        }
    }
    out
}

/// The notify FIFOs configured, each with its keyword, in keepalived's
/// order of precedence (a script of an earlier one wins on a shared path).
pub(crate) fn notify_fifos(global: &Global) -> impl Iterator<Item = (&'static str, &NotifyFifo)> {
    [
        ("notify_fifo", &global.notify_fifo),
        ("vrrp_notify_fifo", &global.vrrp_notify_fifo),
        ("lvs_notify_fifo", &global.lvs_notify_fifo),
    ]
    .into_iter()
    .filter_map(|(keyword, fifo)| Some((keyword, fifo.as_ref()?)))
}

/// Whether the kernel takes `name` for an interface (its
/// `dev_valid_name`, as keepalived checks `use_vmac NAME`).
fn interface_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name == "." || name == ".." {
        Err("is not a name")
    } else if name.len() > super::model::MAX_IFNAME {
        Err("is longer than 15 bytes")
    } else if name.contains(['/', ':']) || name.chars().any(char::is_whitespace) {
        Err("has a '/', ':' or a space")
    } else {
        Ok(())
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

impl Validator<'_> {
    fn report(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.map.lookup(path);
        self.out.push(Diagnostic::new(pos, message));
    }

    /// What runs periodically needs a period: a zero one would spin (and
    /// tokio's interval panics on it).
    fn periods(&mut self, config: &Config) {
        for (i, script) in config.vrrp_script.iter().enumerate() {
            if script.interval.is_zero() {
                self.report(
                    &format!("vrrp_script[{i}].interval"),
                    format!(
                        "vrrp_script '{}': interval must be more than 0",
                        script.name
                    ),
                );
            }
        }
        for (i, vs) in config.virtual_server.iter().enumerate() {
            if vs.delay_loop.is_zero() && !vs.real_server.is_empty() {
                self.report(
                    &format!("virtual_server[{i}].delay_loop"),
                    format!(
                        "virtual_server {}: delay_loop must be more than 0",
                        vs.name()
                    ),
                );
            }
        }
    }

    /// A group goes with a user, as in keepalived's `USER [GROUP]`: a TOML
    /// command with a group alone is refused rather than guessed at.
    fn script_users(&mut self, config: &Config) {
        for site in commands(config) {
            if let (None, Some(group)) = (&site.command.user, &site.command.group) {
                let at = format!("{}.group", site.path);
                self.report(
                    &at,
                    format!("{}: group '{group}' needs a user to go with it", site.owner),
                );
            }
        }
    }

    fn unique_names(&mut self, config: &Config) {
        let lists: [(&str, Vec<&str>); 5] = [
            (
                "vrrp_script",
                config.vrrp_script.iter().map(|s| s.name.as_str()).collect(),
            ),
            (
                "track_file",
                config.track_file.iter().map(|f| f.name.as_str()).collect(),
            ),
            (
                "vrrp_track_process",
                config
                    .vrrp_track_process
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect(),
            ),
            (
                "vrrp_sync_group",
                config
                    .vrrp_sync_group
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect(),
            ),
            (
                "vrrp_instance",
                config
                    .vrrp_instance
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect(),
            ),
        ];
        for (kind, names) in lists {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (i, name) in names.into_iter().enumerate() {
                if name.is_empty() {
                    continue;
                }
                if let Some(first) = seen.get(name) {
                    let first_pos = self.map.lookup(&format!("{kind}[{first}]"));
                    self.report(
                        &format!("{kind}[{i}]"),
                        format!("duplicate {kind} name '{name}' (first defined at {first_pos})"),
                    );
                } else {
                    seen.insert(name, i);
                }
            }
        }
    }

    fn instances(&mut self, config: &Config) {
        let mut vrids: HashMap<(&str, u8, bool), &str> = HashMap::new();
        let mut vips: HashMap<IpAddr, &str> = HashMap::new();
        for (i, inst) in config.vrrp_instance.iter().enumerate() {
            let base = format!("vrrp_instance[{i}]");
            let name = &inst.name;
            if inst.interface.is_empty() {
                self.report(
                    &format!("{base}.interface"),
                    format!("vrrp_instance '{name}' has no interface"),
                );
            }
            if inst.priority.get() == 0 {
                self.report(
                    &format!("{base}.priority"),
                    format!("vrrp_instance '{name}': priority 0 is out of range 1..=255 (0 is reserved for a resigning master)"),
                );
            }
            let version = inst.effective_version(&config.global);
            self.advert_int(inst, &base, version);
            if version == Version::V3 && inst.authentication.is_some() {
                self.report(
                    &format!("{base}.authentication"),
                    format!(
                        "vrrp_instance '{name}': authentication is not allowed with VRRP version 3"
                    ),
                );
            }
            self.address_families(inst, &base, version);
            self.vmac(inst, &base);
            self.multicast_group(inst, &base);
            if !inst.interface.is_empty() {
                let key = (
                    inst.interface.as_str(),
                    inst.virtual_router_id.get(),
                    inst.is_ipv6(),
                );
                if let Some(other) = vrids.get(&key) {
                    self.report(
                        &format!("{base}.virtual_router_id"),
                        format!(
                            "vrrp_instance '{name}': virtual_router_id {} on interface {} ({}) is already used by vrrp_instance '{other}'",
                            inst.virtual_router_id,
                            inst.interface,
                            if inst.is_ipv6() { "IPv6" } else { "IPv4" },
                        ),
                    );
                } else {
                    vrids.insert(key, name);
                }
            }
            let lists = [
                ("virtual_ipaddress", &inst.virtual_ipaddress),
                (
                    "virtual_ipaddress_excluded",
                    &inst.virtual_ipaddress_excluded,
                ),
            ];
            for (list, addresses) in lists {
                for (j, vip) in addresses.iter().enumerate() {
                    let addr = vip.address.addr();
                    match vips.get(&addr) {
                        Some(other) => self.report(
                            &format!("{base}.{list}[{j}]"),
                            format!("vrrp_instance '{name}': virtual address {addr} is already held by vrrp_instance '{other}'"),
                        ),
                        None => {
                            vips.insert(addr, name);
                        }
                    }
                }
            }
            for (j, track) in inst.track_script.iter().enumerate() {
                if !config.vrrp_script.iter().any(|s| s.name == track.name) {
                    self.report(
                        &format!("{base}.track_script[{j}]"),
                        format!(
                            "vrrp_instance '{name}' tracks unknown vrrp_script '{}'",
                            track.name
                        ),
                    );
                }
            }
            let files: Vec<&str> = inst.track_file.iter().map(|t| t.name.as_str()).collect();
            self.tracked_names(&base, name, "track_file", &files, |n| {
                config.track_file.iter().any(|f| f.name == n)
            });
            let processes: Vec<&str> = inst.track_process.iter().map(|t| t.name.as_str()).collect();
            self.tracked_names(&base, name, "track_process", &processes, |n| {
                config.vrrp_track_process.iter().any(|p| p.name == n)
            });
        }
    }

    /// An instance's `list` of tracked names (`track_file`,
    /// `track_process`): each defined, none twice.
    fn tracked_names(
        &mut self,
        base: &str,
        instance: &str,
        list: &str,
        names: &[&str],
        defined: impl Fn(&str) -> bool,
    ) {
        // The blocks that define them: `track_file`, `vrrp_track_process`.
        let kind = if list == "track_process" {
            "vrrp_track_process"
        } else {
            list
        };
        for (j, track) in names.iter().enumerate() {
            let path = format!("{base}.{list}[{j}]");
            if !defined(track) {
                self.report(
                    &path,
                    format!("vrrp_instance '{instance}' tracks unknown {kind} '{track}'"),
                );
            } else if names[..j].contains(track) {
                self.report(
                    &path,
                    format!("vrrp_instance '{instance}' tracks {kind} '{track}' twice"),
                );
            }
        }
    }

    /// `vrrp_track_process` settings keepalived would ignore or that can
    /// never match.
    fn tracked_processes(&mut self, config: &Config) {
        for (i, p) in config.vrrp_track_process.iter().enumerate() {
            let base = format!("vrrp_track_process[{i}]");
            let name = &p.name;
            if p.process.is_empty() {
                self.report(
                    &format!("{base}.process"),
                    format!("vrrp_track_process '{name}' has no 'process'"),
                );
            }
            // keepalived accepts a longer name and never matches it: the
            // kernel keeps 15 bytes of a process name.
            let full = p.full_command || !p.params.is_empty() || p.param_match.is_some();
            if !full && p.process.len() > 15 {
                self.report(
                    &format!("{base}.process"),
                    format!(
                        "vrrp_track_process '{name}': process name '{}' is longer than the 15 bytes the kernel keeps of a process name, so it never matches; add 'full_command' to match the command",
                        p.process
                    ),
                );
            }
            if !(1..=65535).contains(&p.quorum) {
                self.report(
                    &format!("{base}.quorum"),
                    format!(
                        "vrrp_track_process '{name}': quorum {} is out of range 1..=65535",
                        p.quorum
                    ),
                );
            }
            if let Some(max) = p.quorum_max {
                // keepalived: quorum_max 0 ("none may run") takes the
                // default quorum down to 0.
                if max > 65535 {
                    self.report(
                        &format!("{base}.quorum_max"),
                        format!(
                            "vrrp_track_process '{name}': quorum_max {max} is out of range 0..=65535"
                        ),
                    );
                } else if max < p.quorum && !(max == 0 && p.quorum == 1) {
                    self.report(
                        &format!("{base}.quorum_max"),
                        format!(
                            "vrrp_track_process '{name}': quorum_max {max} is less than quorum {}",
                            p.quorum
                        ),
                    );
                }
            }
            for (what, delay) in [
                ("fork_delay", p.fork_delay),
                ("terminate_delay", p.terminate_delay),
            ] {
                if delay > Duration::from_secs(3600) {
                    self.report(
                        &format!("{base}.{what}"),
                        format!(
                            "vrrp_track_process '{name}': {what} {delay:?} is longer than keepalived's 3600 s"
                        ),
                    );
                }
            }
        }
    }

    /// keepalived's checks of `vrrp_mcast_group4/6` and `mcast_dst_ip`,
    /// as errors (keepalived skips the line and sends to the RFC's group,
    /// which its peers configured alike would not hear).
    fn multicast_groups(&mut self, global: &Global) {
        if let Some(group) = global.vrrp_mcast_group4
            && !group.is_multicast()
        {
            self.report(
                "global.vrrp_mcast_group4",
                format!("vrrp_mcast_group4 {group} is not a multicast address (224.0.0.0/4)"),
            );
        }
        if let Some(group) = global.vrrp_mcast_group6
            && !group.is_multicast()
        {
            self.report(
                "global.vrrp_mcast_group6",
                format!("vrrp_mcast_group6 {group} is not a multicast address (ff00::/8)"),
            );
        }
    }

    fn multicast_group(&mut self, inst: &VrrpInstance, base: &str) {
        let Some(group) = inst.mcast_dst_ip else {
            return;
        };
        let problem = match group {
            _ if group.is_ipv6() != inst.is_ipv6() => {
                Some(format!("is {} but the instance is not", family(group)))
            }
            IpAddr::V4(v4) if !v4.is_multicast() => {
                Some("is not a multicast address (224.0.0.0/4)".to_string())
            }
            // The adverts' link-local source and hop limit 255 keep them
            // on the link: a wider scope would promise what they cannot.
            IpAddr::V6(v6) if !v6.is_multicast() || v6.segments()[0] & 0xff0f != 0xff02 => {
                Some("is not a link-local multicast address (ff02::/16)".to_string())
            }
            _ => None,
        };
        if let Some(problem) = problem {
            self.report(
                &format!("{base}.mcast_dst_ip"),
                format!(
                    "vrrp_instance '{}': mcast_dst_ip {group} {problem}",
                    inst.name
                ),
            );
        }
    }

    fn advert_int(&mut self, inst: &VrrpInstance, base: &str, version: Version) {
        let interval = inst.advert_int;
        let ok = match version {
            // Whole seconds, 8-bit field (RFC 3768 §5.3.7).
            Version::V2 => interval.subsec_nanos() == 0 && (1..=255).contains(&interval.as_secs()),
            // Centiseconds, 12-bit field (RFC 5798 §5.2.7).
            Version::V3 => {
                interval.subsec_nanos().is_multiple_of(10_000_000)
                    && interval >= Duration::from_millis(10)
                    && interval <= Duration::from_millis(40_950)
            }
        };
        if !ok {
            let allowed = match version {
                Version::V2 => "whole seconds in 1..=255 with VRRP version 2",
                Version::V3 => "a multiple of 10ms in 10ms..=40.95s with VRRP version 3",
            };
            self.report(
                &format!("{base}.advert_int"),
                format!(
                    "vrrp_instance '{}': advert_int {} is not allowed: must be {allowed}",
                    inst.name,
                    humantime_serde::re::humantime::format_duration(interval)
                ),
            );
        }
    }

    fn address_families(&mut self, inst: &VrrpInstance, base: &str, version: Version) {
        let first_family = inst
            .virtual_ipaddress
            .first()
            .map(|v: &VirtualAddress| v.address.addr().is_ipv6());
        for (j, vip) in inst.virtual_ipaddress.iter().enumerate() {
            let path = format!("{base}.virtual_ipaddress[{j}]");
            let is_v6 = matches!(vip.address, IpNet::V6(_));
            if is_v6 && version == Version::V2 {
                self.report(
                    &path,
                    format!(
                        "vrrp_instance '{}': IPv6 virtual address {} needs VRRP version 3 (the instance uses version 2)",
                        inst.name,
                        vip.address.addr()
                    ),
                );
            } else if Some(is_v6) != first_family {
                self.report(
                    &path,
                    format!(
                        "vrrp_instance '{}': virtual address {} is {} but the instance's first one is not; put it in virtual_ipaddress_excluded",
                        inst.name,
                        vip.address.addr(),
                        family(vip.address.addr())
                    ),
                );
            }
        }
    }

    /// `use_vmac` and what goes with it, as keepalived's parser and
    /// `vrrp_complete_instance` check them (as errors: keepalived drops
    /// the setting and runs without it, which a peer configured alike
    /// would not).
    fn vmac(&mut self, inst: &VrrpInstance, base: &str) {
        let name = &inst.name;
        if !inst.use_vmac {
            for (field, set) in [
                ("vmac_interface", inst.vmac_interface.is_some()),
                ("vmac_xmit_base", inst.vmac_xmit_base),
            ] {
                if set {
                    self.report(
                        &format!("{base}.{field}"),
                        format!("vrrp_instance '{name}': {field} is only valid with use_vmac"),
                    );
                }
            }
            return;
        }
        let at = format!("{base}.use_vmac");
        if inst.is_ipv6() {
            self.report(
                &at,
                format!("vrrp_instance '{name}': use_vmac on an IPv6 instance is not supported yet (only IPv4 instances get a virtual MAC interface)"),
            );
        }
        if !inst.unicast_peer.is_empty() && !inst.vmac_xmit_base {
            self.report(
                &at,
                format!("vrrp_instance '{name}': unicast peers with use_vmac need vmac_xmit_base (unicast adverts go out of the base interface)"),
            );
        }
    }

    /// The `use_vmac` interfaces' names: valid kernel names, none taken
    /// twice, none an instance's own interface.
    fn vmac_names(&mut self, config: &Config) {
        let names = super::model::vmac_names(config);
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (i, (inst, vmac)) in config.vrrp_instance.iter().zip(&names).enumerate() {
            let Some(vmac) = vmac else { continue };
            let base = format!("vrrp_instance[{i}]");
            let at = if inst.vmac_interface.is_some() {
                format!("{base}.vmac_interface")
            } else {
                format!("{base}.use_vmac")
            };
            let name = &inst.name;
            if let Err(why) = interface_name(vmac) {
                self.report(
                    &at,
                    format!("vrrp_instance '{name}': virtual MAC interface name '{vmac}' {why}"),
                );
            } else if let Some(other) = seen.get(vmac.as_str()) {
                self.report(
                    &at,
                    format!("vrrp_instance '{name}': virtual MAC interface {vmac} is already used by vrrp_instance '{other}'"),
                );
            } else if let Some(other) = config.vrrp_instance.iter().find(|o| o.interface == *vmac) {
                self.report(
                    &at,
                    format!("vrrp_instance '{name}': virtual MAC interface {vmac} is the interface of vrrp_instance '{}'", other.name),
                );
            } else {
                seen.insert(vmac, name);
            }
        }
    }

    fn sync_groups(&mut self, config: &Config) {
        let mut member_of: HashMap<&str, &str> = HashMap::new();
        for (i, group) in config.vrrp_sync_group.iter().enumerate() {
            for (j, member) in group.group.iter().enumerate() {
                let path = format!("vrrp_sync_group[{i}].group[{j}]");
                if !config.vrrp_instance.iter().any(|inst| &inst.name == member) {
                    self.report(
                        &path,
                        format!(
                            "vrrp_sync_group '{}' names unknown vrrp_instance '{member}'",
                            group.name
                        ),
                    );
                } else if let Some(other) = member_of.get(member.as_str()) {
                    self.report(
                        &path,
                        format!(
                            "vrrp_instance '{member}' is already in vrrp_sync_group '{other}'; an instance can be in one group only"
                        ),
                    );
                } else {
                    member_of.insert(member, &group.name);
                }
            }
        }
    }

    /// `[bgp]`: usable AS numbers and identifier, a hold time BGP
    /// allows, peers listed once, and prefixes that a virtual server's
    /// address falls in (or they would never be announced) with a next hop
    /// of their family for every peer.
    fn bgp(&mut self, config: &Config) {
        let Some(bgp) = &config.bgp else {
            return;
        };
        if bgp.local_as == 0 {
            self.report("bgp.local_as", "bgp.local_as 0 is reserved");
        }
        if bgp.router_id.is_unspecified() || bgp.router_id.is_broadcast() {
            self.report(
                "bgp.router_id",
                format!("bgp.router_id {} is not a usable identifier", bgp.router_id),
            );
        }
        if matches!(bgp.hold_time, 1 | 2) {
            self.report(
                "bgp.hold_time",
                format!(
                    "bgp.hold_time {} s: BGP allows 0 or at least 3",
                    bgp.hold_time
                ),
            );
        }
        if bgp.connect_retry.is_zero() {
            self.report("bgp.connect_retry", "bgp.connect_retry must not be zero");
        }
        if bgp.peer.is_empty() {
            self.report("bgp", "[bgp] has no peer: add a [[bgp.peer]]");
        }
        let served: Vec<IpAddr> = config
            .virtual_server
            .iter()
            .filter_map(|vs| {
                crate::dataplane::build::services(vs, &config.virtual_server_group).ok()
            })
            .flatten()
            .filter_map(|service| match service.key {
                crate::dataplane::ServiceKey::Socket { address, .. } => Some(address.ip()),
                crate::dataplane::ServiceKey::Fwmark { .. } => None,
            })
            .collect();
        if bgp.announce.is_empty() {
            self.report("bgp.announce", "bgp.announce lists no prefix");
        }
        for (i, prefix) in bgp.announce.iter().enumerate() {
            let path = format!("bgp.announce[{i}]");
            if prefix.trunc() != *prefix {
                self.report(
                    &path,
                    format!(
                        "bgp.announce {prefix} has host bits set (the prefix is {})",
                        prefix.trunc()
                    ),
                );
            }
            if !served.iter().any(|address| prefix.contains(address)) {
                self.report(
                    &path,
                    format!(
                        "bgp.announce {prefix} holds no virtual_server's address: it would never be announced"
                    ),
                );
            }
            let (family, next_hop) = match prefix {
                IpNet::V4(_) => ("IPv4", bgp.next_hop_ipv4.is_some()),
                IpNet::V6(_) => ("IPv6", bgp.next_hop_ipv6.is_some()),
            };
            for peer in &bgp.peer {
                if !next_hop && peer.address.is_ipv4() != prefix.addr().is_ipv4() {
                    self.report(
                        &path,
                        format!(
                            "bgp.announce {prefix}: peer {} has no {family} next hop to give; set bgp.next_hop_{}",
                            peer.address,
                            family.to_lowercase()
                        ),
                    );
                }
            }
        }
        let mut seen = HashMap::new();
        for (i, peer) in bgp.peer.iter().enumerate() {
            let path = format!("bgp.peer[{i}]");
            if peer.remote_as == 0 {
                self.report(&format!("{path}.remote_as"), "remote_as 0 is reserved");
            }
            if let Some(source) = peer.source
                && source.is_ipv4() != peer.address.is_ipv4()
            {
                self.report(
                    &format!("{path}.source"),
                    format!(
                        "peer {}: source {source} is of the other address family",
                        peer.address
                    ),
                );
            }
            if let Some(first) = seen.insert(peer.address, i) {
                let first_pos = self.map.lookup(&format!("bgp.peer[{first}]"));
                self.report(
                    &path,
                    format!(
                        "bgp peer {} is listed twice (first at {first_pos})",
                        peer.address
                    ),
                );
            }
        }
    }

    /// `[network]`: sysctl names, one entry per interface, routes whose
    /// gateway is of the destination's family.
    fn network(&mut self, config: &Config) {
        let net = &config.network;
        for key in net.sysctl.keys() {
            if !is_sysctl_key(key) {
                self.report(
                    &format!("network.sysctl.{key}"),
                    format!("sysctl '{key}' is not a kernel parameter name (dotted words: net.ipv4.ip_forward)"),
                );
            }
        }
        let mut seen = HashMap::new();
        for (i, interface) in net.interface.iter().enumerate() {
            let path = format!("network.interface[{i}]");
            if interface.name.is_empty()
                || interface.name.len() > 15
                || interface.name.contains('/')
            {
                self.report(
                    &path,
                    format!(
                        "interface name '{}' is not a Linux interface name",
                        interface.name
                    ),
                );
            }
            if let Some(first) = seen.insert(interface.name.as_str(), i) {
                let first_pos = self.map.lookup(&format!("network.interface[{first}]"));
                self.report(
                    &path,
                    format!(
                        "interface {} is listed twice (first at {first_pos})",
                        interface.name
                    ),
                );
            }
        }
        for (i, route) in net.route.iter().enumerate() {
            let path = format!("network.route[{i}]");
            if let Some(gateway) = route.gateway
                && gateway.is_ipv4() != route.destination.addr().is_ipv4()
            {
                self.report(
                    &path,
                    format!(
                        "route to {}: gateway {gateway} is of the other address family",
                        route.destination
                    ),
                );
            }
            if route.gateway.is_none() && route.interface.is_none() {
                self.report(
                    &path,
                    format!(
                        "route to {} needs a gateway or an interface",
                        route.destination
                    ),
                );
            }
        }
    }

    /// `lvs_sync_daemon` and `lvs_timeouts`, with the limits keepalived
    /// and the kernel set.
    fn lvs(&mut self, config: &Config) {
        let global = &config.global;
        if let Some(sync) = &global.lvs_sync_daemon {
            let base = "global.lvs_sync_daemon";
            if !config
                .vrrp_instance
                .iter()
                .any(|i| i.name == sync.vrrp_instance)
            {
                self.report(
                    &format!("{base}.vrrp_instance"),
                    format!(
                        "lvs_sync_daemon names unknown vrrp_instance '{}'",
                        sync.vrrp_instance
                    ),
                );
            }
            // The kernel's IP_VS_IFNAME_MAXLEN (16) holds the terminating NUL.
            if sync.interface.is_empty() || sync.interface.len() >= 16 {
                self.report(
                    &format!("{base}.interface"),
                    format!(
                        "lvs_sync_daemon interface '{}' is not an interface name (1..=15 bytes)",
                        sync.interface
                    ),
                );
            }
            let ranges = [
                ("maxlen", sync.maxlen.map(u32::from), 65507),
                ("port", sync.port.map(u32::from), 65535),
                ("ttl", sync.ttl.map(u32::from), 255),
            ];
            for (option, value, max) in ranges {
                if let Some(value) = value.filter(|v| !(1..=max).contains(v)) {
                    self.report(
                        &format!("{base}.{option}"),
                        format!("lvs_sync_daemon {option} {value} is out of range 1..={max}"),
                    );
                }
            }
            if let Some(group) = sync.group.filter(|g| !g.is_multicast()) {
                self.report(
                    &format!("{base}.group"),
                    format!("lvs_sync_daemon group {group} is not a multicast address"),
                );
            }
        }
        // Both are IPVS's own; nftables has nothing that could stand in.
        if global.dataplane == Some(Choice::Nftables) {
            for (keyword, set) in [
                ("lvs_sync_daemon", global.lvs_sync_daemon.is_some()),
                ("lvs_timeouts", !global.lvs_timeouts.is_unset()),
            ] {
                if set {
                    self.report(
                        &format!("global.{keyword}"),
                        format!("{keyword} needs the IPVS dataplane, not dataplane = \"nftables\""),
                    );
                }
            }
        }
        let timeouts = &global.lvs_timeouts;
        for (option, value) in [
            ("tcp", timeouts.tcp),
            ("tcpfin", timeouts.tcpfin),
            ("udp", timeouts.udp),
        ] {
            if let Some(value) = value.filter(|v| v.subsec_nanos() != 0 || *v > LvsTimeouts::MAX) {
                self.report(
                    &format!("global.lvs_timeouts.{option}"),
                    format!("lvs_timeouts {option} {value:?} is not whole seconds up to 31 days"),
                );
            }
        }
    }

    /// `virtual_server_group`s: named once, not empty, each range one
    /// family, in order and not too long; and every `virtual_server group
    /// NAME` names one.
    fn virtual_server_groups(&mut self, config: &Config) {
        let mut names = HashMap::new();
        for (i, group) in config.virtual_server_group.iter().enumerate() {
            let base = format!("virtual_server_group[{i}]");
            if let Some(first) = names.insert(group.name.as_str(), i) {
                let first_pos = self.map.lookup(&format!("virtual_server_group[{first}]"));
                self.report(
                    &base,
                    format!(
                        "virtual_server_group '{}' is defined twice (first at {first_pos})",
                        group.name
                    ),
                );
            }
            if group.entries.is_empty() {
                self.report(
                    &base,
                    format!("virtual_server_group '{}' has no entries", group.name),
                );
            }
            for (j, entry) in group.entries.iter().enumerate() {
                let super::model::GroupEntry::Range(range) = entry else {
                    continue;
                };
                let Some(last) = range.last else {
                    continue;
                };
                let problem = if range.address.is_ipv4() != last.is_ipv4() {
                    Some("its ends are of different families")
                } else if range.addresses().is_empty() {
                    Some(if range_reversed(range.address, last) {
                        "its end is before its start"
                    } else {
                        "it spans more than 65536 addresses (one kernel service each)"
                    })
                } else {
                    None
                };
                if let Some(problem) = problem {
                    self.report(
                        &format!("{base}.entries[{j}]"),
                        format!(
                            "virtual_server_group '{}': range {}-{last}: {problem}",
                            group.name, range.address
                        ),
                    );
                }
            }
        }
        for (i, vs) in config.virtual_server.iter().enumerate() {
            let super::model::Service::Group(name) = &vs.service else {
                continue;
            };
            if !names.contains_key(name.as_str()) {
                self.report(
                    &format!("virtual_server[{i}]"),
                    format!("virtual_server group {name}: no virtual_server_group '{name}'"),
                );
            }
        }
    }

    /// The alert mail's settings go into SMTP commands and headers.
    fn mail(&mut self, global: &Global) {
        let mut words: Vec<(String, &str, bool)> = global
            .notification_email
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("global.notification_email[{i}]"), a.as_str(), true))
            .collect();
        if let Some(from) = &global.notification_email_from {
            words.push(("global.notification_email_from".into(), from, true));
        }
        if let Some(helo) = &global.smtp_helo_name {
            words.push(("global.smtp_helo_name".into(), helo, false));
        }
        if let Some(server) = &global.smtp_server {
            words.push(("global.smtp_server".into(), &server.host, true));
        }
        for (path, text, address) in words {
            if let Some(problem) = smtp_word_problem(text, address) {
                let keyword = path.rsplit('.').next().unwrap_or_default();
                self.report(
                    &path,
                    format!("{keyword} '{}' {problem}", text.escape_default()),
                );
            }
        }
        if global.smtp_connect_timeout.is_zero() {
            self.report(
                "global.smtp_connect_timeout",
                "smtp_connect_timeout must be more than 0",
            );
        }
    }

    fn virtual_servers(&mut self, config: &Config) {
        self.virtual_server_groups(config);
        for (i, vs) in config.virtual_server.iter().enumerate() {
            let base = format!("virtual_server[{i}]");
            let vs_family = match vs.service {
                super::model::Service::Address(a) => Some(a.ip().is_ipv4()),
                super::model::Service::Fwmark(_) | super::model::Service::Group(_) => None,
            };
            if vs.ha_suspend && matches!(vs.service, super::model::Service::Group(_)) {
                // keepalived counts any of the group's addresses; this
                // checker waits for one address.
                self.report(
                    &format!("{base}.ha_suspend"),
                    "ha_suspend is not supported on a virtual_server group: write one virtual_server \
                     per address with ha_suspend, or drop it (the checks then run on the backup too)"
                        .to_string(),
                );
            } else if vs.ha_suspend && vs_family.is_none() {
                // keepalived clears it with an error; the file says
                // something that cannot be, so it is refused.
                self.report(
                    &format!("{base}.ha_suspend"),
                    "ha_suspend needs the virtual server's address: a fwmark service has none to wait for".to_string(),
                );
            }
            let mut seen = HashMap::new();
            for (j, rs) in vs.real_server.iter().enumerate() {
                let path = format!("{base}.real_server[{j}]");
                if let Some(first) = seen.insert(rs.address, j) {
                    let first_pos = self.map.lookup(&format!("{base}.real_server[{first}]"));
                    self.report(
                        &path,
                        format!(
                            "real_server {} is listed twice (first at {first_pos})",
                            rs.address
                        ),
                    );
                }
                let tunnelled = vs.lb_kind == super::model::LbKind::Tun;
                if !tunnelled && vs_family.is_some_and(|v4| v4 != rs.address.is_ipv4()) {
                    self.report(
                        &path,
                        format!(
                            "real_server {} is {} but the virtual server is not (only TUN may mix families)",
                            rs.address,
                            family(rs.address.ip())
                        ),
                    );
                }
                for (k, check) in rs.check.iter().enumerate() {
                    if let super::model::Check::Smtp(smtp) = check
                        && let Some(problem) = smtp_word_problem(&smtp.helo_name, false)
                    {
                        self.report(
                            &format!("{path}.check[{k}].helo_name"),
                            format!(
                                "real_server {}: SMTP_CHECK helo_name '{}' {problem}",
                                rs.address,
                                smtp.helo_name.escape_default()
                            ),
                        );
                    }
                    if let super::model::Check::Udp(udp) = check
                        && udp.min_reply_length > udp.max_reply_length
                    {
                        self.report(
                            &format!("{path}.check[{k}].min_reply_length"),
                            format!(
                                "real_server {}: UDP_CHECK min_reply_length {} is above max_reply_length {}: it would always fail",
                                rs.address, udp.min_reply_length, udp.max_reply_length
                            ),
                        );
                    }
                    let (super::model::Check::HttpGet(http) | super::model::Check::SslGet(http)) =
                        check
                    else {
                        continue;
                    };
                    for (u, url) in http.url.iter().enumerate() {
                        let at = format!("{path}.check[{k}].url[{u}]");
                        match &url.regex {
                            Some(pattern) => {
                                if let Err(e) = regex::bytes::Regex::new(pattern) {
                                    self.report(
                                        &format!("{at}.regex"),
                                        format!(
                                            "real_server {}: url {}: regex {pattern:?} is invalid: {e}",
                                            rs.address, url.path
                                        ),
                                    );
                                }
                            }
                            None if url.regex_no_match => self.report(
                                &format!("{at}.regex_no_match"),
                                format!(
                                    "real_server {}: url {}: regex_no_match without a regex",
                                    rs.address, url.path
                                ),
                            ),
                            None => {}
                        }
                    }
                }
                for (k, check) in rs.file_check.iter().enumerate() {
                    let at = format!("{path}.file_check[{k}]");
                    if !config.track_file.iter().any(|f| f.name == check.track_file) {
                        self.report(
                            &format!("{at}.track_file"),
                            format!(
                                "real_server {}: FILE_CHECK tracks unknown track_file '{}'",
                                rs.address, check.track_file
                            ),
                        );
                    }
                    if check.weight == Some(i32::MIN) {
                        self.report(
                            &format!("{at}.weight"),
                            format!(
                                "real_server {}: FILE_CHECK weight must be in -2147483647..=2147483647",
                                rs.address
                            ),
                        );
                    }
                }
                if let (Some(low), Some(high)) = (rs.lthreshold, rs.uthreshold)
                    && low > high
                {
                    self.report(
                        &format!("{path}.lthreshold"),
                        format!(
                            "real_server {}: lthreshold {low} is above uthreshold {high}",
                            rs.address
                        ),
                    );
                }
            }
        }
    }

    /// `only_when_master` must name a VRRP instance of this config.
    fn master_only(&mut self, config: &Config) {
        for (i, vs) in config.virtual_server.iter().enumerate() {
            if let Some(instance) = &vs.only_when_master
                && !config
                    .vrrp_instance
                    .iter()
                    .any(|inst| &inst.name == instance)
            {
                self.report(
                    &format!("virtual_server[{i}].only_when_master"),
                    format!(
                        "only_when_master names vrrp_instance '{instance}', which is not defined"
                    ),
                );
            }
        }
    }

    /// A FIFO's path is absolute (the daemon's working directory is no
    /// place to look for it), and its owner exists on this host.
    fn notify_fifos(&mut self, config: &Config) {
        // The tables only when an owner is named.
        let mut accounts = None;
        for (keyword, fifo) in notify_fifos(&config.global) {
            let base = format!("global.{keyword}");
            let at = self.map.lookup_first(&[&format!("{base}.path"), &base]);
            if !fifo.path.is_absolute() {
                self.out.push(Diagnostic::new(
                    at,
                    format!("{keyword} '{}': give an absolute path", fifo.path.display()),
                ));
            }
            let user_at = self.map.lookup_first(&[&format!("{base}.user"), &base]);
            match (&fifo.user, &fifo.group) {
                (None, Some(group)) => self.out.push(Diagnostic::new(
                    self.map.lookup_first(&[&format!("{base}.group"), &base]),
                    format!("{keyword}: group '{group}' needs a user to go with it"),
                )),
                (Some(user), group) => {
                    let accounts =
                        accounts.get_or_insert_with(crate::script::accounts::Accounts::read);
                    let problem = if accounts.user(user).is_none() {
                        Some(format!("{keyword}: no user '{user}' on this host"))
                    } else {
                        group
                            .as_ref()
                            .filter(|g| accounts.group(g).is_none())
                            .map(|g| format!("{keyword}: no group '{g}' on this host"))
                    };
                    if let Some(problem) = problem {
                        self.out.push(Diagnostic::new(user_at, problem));
                    }
                }
                (None, None) => {}
            }
        }
    }

    /// The status socket's group must exist here: the daemon gives the
    /// socket to it at start.
    fn status_group(&mut self, config: &Config) {
        let Some(name) = &config.global.status_group else {
            return;
        };
        if crate::script::accounts::Accounts::read()
            .group(name)
            .is_none()
        {
            self.report(
                "global.status_group",
                format!("status_group '{name}': no such group on this host"),
            );
        }
    }

    /// The status page is served on the metrics listener: asking for it
    /// without one would silently serve nothing.
    fn status_page(&mut self, global: &super::model::Global) {
        if global.status_page && global.metrics_listen.is_none() {
            self.report(
                "global.status_page",
                "status_page needs metrics_listen: the page is served on the metrics \
                 endpoint's address (set [global] metrics_listen = \"ADDRESS:PORT\")"
                    .to_string(),
            );
        }
    }

    /// What the chosen dataplane cannot do ([`crate::dataplane::capability`]):
    /// with `dataplane = "nftables"` everything the nftables backend
    /// refuses; otherwise (IPVS, or the kernel's choice) the nftables-only
    /// extensions.
    fn dataplane(&mut self, config: &Config) {
        let backend = config.global.dataplane.unwrap_or(Choice::Ipvs);
        if config.global.lvs_sloppy_tcp && backend == Choice::Nftables {
            self.report(
                "global.lvs_sloppy_tcp",
                "lvs_sloppy_tcp is an IPVS setting: with dataplane = \"nftables\" conntrack \
                 already takes up a connection from its middle",
            );
        }
        for (i, vs) in config.virtual_server.iter().enumerate() {
            let base = format!("virtual_server[{i}]");
            let name = vs.name();
            // A block the model refuses gets its error when it is applied.
            let Ok(services) = crate::dataplane::build::services(vs, &config.virtual_server_group)
            else {
                continue;
            };
            for service in &services {
                for refusal in crate::dataplane::capability::refusals(backend, service) {
                    let server = refusal
                        .real_server
                        .and_then(|a| vs.real_server.iter().position(|rs| rs.address == a));
                    let path = match server {
                        Some(j) if refusal.field == "real_server" => {
                            format!("{base}.real_server[{j}]")
                        }
                        _ => format!("{base}.{}", refusal.field),
                    };
                    self.report(&path, format!("virtual_server {name}: {}", refusal.reason));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Format, load_str};
    use std::net::IpAddr;
    use std::path::Path;

    /// The diagnostics for keepalived.conf `text`, one string per line.
    fn problems(text: &str) -> Vec<String> {
        match load_str(Path::new("k.conf"), text, Format::Keepalived) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    const TWO: &str = "\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.0.0.1/24
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    virtual_ipaddress {
        10.0.0.2/24
    }
}
";

    #[test]
    fn a_group_needs_a_user() {
        let text = "[[vrrp_script]]\nname = \"chk\"\nscript = { program = \"/bin/true\", group = \"nogroup\" }\n";
        assert_eq!(
            toml_problems(text),
            ["a.toml:3:35: vrrp_script 'chk': group 'nogroup' needs a user to go with it"]
        );
        // A user alone is the script check's to resolve.
        let text = "vrrp_script chk {\n    script \"/bin/true\"\n    user nobody\n}\n";
        assert_eq!(problems(text), Vec::<String>::new());
    }

    #[test]
    fn a_status_page_needs_the_metrics_listener() {
        assert_eq!(
            toml_problems("[global]\nstatus_page = true\n"),
            [
                "a.toml:2:1: status_page needs metrics_listen: the page is served on the metrics \
              endpoint's address (set [global] metrics_listen = \"ADDRESS:PORT\")"
            ]
        );
        let text = "[global]\nmetrics_listen = \"127.0.0.1:9100\"\nstatus_page = true\n";
        assert_eq!(toml_problems(text), Vec::<String>::new());
    }

    #[test]
    fn a_valid_config_has_no_problems() {
        assert_eq!(problems(TWO), Vec::<String>::new());
    }

    #[test]
    fn instance_without_interface() {
        assert_eq!(
            problems("vrrp_instance VI_1 {\n  virtual_router_id 1\n}\n"),
            ["k.conf:1:1: vrrp_instance 'VI_1' has no interface"]
        );
    }

    #[test]
    fn instance_without_vrid() {
        assert_eq!(
            problems("vrrp_instance VI_1 {\n  interface eth0\n}\n"),
            ["k.conf:1:1: vrrp_instance 'VI_1' has no virtual_router_id"]
        );
    }

    #[test]
    fn priority_zero() {
        assert_eq!(
            problems(
                "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  priority 0\n}\n"
            ),
            [
                "k.conf:4:3: vrrp_instance 'VI_1': priority 0 is out of range 1..=255 (0 is reserved for a resigning master)"
            ]
        );
    }

    #[test]
    fn priority_above_255() {
        assert_eq!(
            problems(
                "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  priority 256\n}\n"
            ),
            ["k.conf:4:12: bad value '256' for 'priority': expected an integer in 1..=255"]
        );
    }

    #[test]
    fn duplicate_vrid_on_one_interface() {
        let text = TWO.replace("virtual_router_id 52", "virtual_router_id 51");
        assert_eq!(
            problems(&text),
            [
                "k.conf:10:5: vrrp_instance 'VI_2': virtual_router_id 51 on interface eth0 (IPv4) is already used by vrrp_instance 'VI_1'"
            ]
        );
        // Another interface, or another family, may reuse the id.
        assert_eq!(
            problems(&text.replacen("interface eth0", "interface eth1", 1)),
            Vec::<String>::new()
        );
    }

    /// `use_vmac`'s interface names (keepalived's `dev_name_valid` and
    /// its check that no other instance uses the name), what needs
    /// `use_vmac`, and what is not supported with it.
    #[test]
    fn use_vmac_is_checked() {
        let vmac = |a: &str, b: &str| {
            TWO.replacen(
                "virtual_router_id 51\n",
                &format!("virtual_router_id 51\n    {a}\n"),
                1,
            )
            .replacen(
                "virtual_router_id 52\n",
                &format!("virtual_router_id 52\n    {b}\n"),
                1,
            )
        };
        assert_eq!(
            problems(&vmac("use_vmac", "use_vmac vrrp.52")),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(&vmac("use_vmac lan", "use_vmac lan")),
            [
                "k.conf:12:14: vrrp_instance 'VI_2': virtual MAC interface lan is already used by vrrp_instance 'VI_1'"
            ]
        );
        assert_eq!(
            problems(&vmac("use_vmac a/b", "use_vmac eth0")),
            [
                "k.conf:4:14: vrrp_instance 'VI_1': virtual MAC interface name 'a/b' has a '/', ':' or a space",
                "k.conf:12:14: vrrp_instance 'VI_2': virtual MAC interface eth0 is the interface of vrrp_instance 'VI_1'",
            ]
        );
        assert_eq!(
            problems(&vmac("use_vmac a_name_too_long_", "vmac_xmit_base")),
            [
                "k.conf:4:14: vrrp_instance 'VI_1': virtual MAC interface name 'a_name_too_long_' is longer than 15 bytes",
                "k.conf:12:5: vrrp_instance 'VI_2': vmac_xmit_base is only valid with use_vmac",
            ]
        );
        // The default names stay clear of a given one and fit 15 bytes.
        let long = format!(
            "global_defs {{\n    vmac_prefix a_long_prefix\n}}\n{}",
            vmac("use_vmac", "use_vmac")
        );
        let config = load_str(Path::new("k.conf"), &long, Format::Keepalived).unwrap();
        assert_eq!(
            crate::config::model::vmac_names(&config),
            [
                Some("a_long_prefi.51".to_string()),
                Some("a_long_prefi.52".to_string())
            ]
        );
        let same_vrid = vmac("use_vmac", "use_vmac").replace(
            "interface eth0\n    virtual_router_id 52",
            "interface eth1\n    virtual_router_id 51",
        );
        let config = load_str(Path::new("k.conf"), &same_vrid, Format::Keepalived).unwrap();
        assert_eq!(
            crate::config::model::vmac_names(&config),
            [Some("vrrp.51".to_string()), Some("vrrp1.51".to_string())]
        );
        let v6 = "[[vrrp_instance]]\nname = \"A\"\ninterface = \"eth0\"\nvirtual_router_id = 1\nversion = 3\nuse_vmac = true\nvirtual_ipaddress = [{ address = \"fd00::1/64\" }]\n\n\
                  [[vrrp_instance]]\nname = \"B\"\ninterface = \"eth0\"\nvirtual_router_id = 2\nuse_vmac = true\nunicast_peer = [\"10.0.0.2\"]\nvmac_interface = \"b\"\n";
        assert_eq!(
            toml_problems(v6),
            [
                "a.toml:6:1: vrrp_instance 'A': use_vmac on an IPv6 instance is not supported yet (only IPv4 instances get a virtual MAC interface)",
                "a.toml:13:1: vrrp_instance 'B': unicast peers with use_vmac need vmac_xmit_base (unicast adverts go out of the base interface)",
            ]
        );
    }

    #[test]
    fn vip_in_two_instances() {
        let text = TWO.replace("10.0.0.2/24", "10.0.0.1/32");
        assert_eq!(
            problems(&text),
            [
                "k.conf:12:9: vrrp_instance 'VI_2': virtual address 10.0.0.1 is already held by vrrp_instance 'VI_1'"
            ]
        );
    }

    #[test]
    fn unknown_track_script() {
        let text = TWO.replace(
            "virtual_router_id 52",
            "virtual_router_id 52\n    track_script {\n        chk_missing weight -20\n    }",
        );
        assert_eq!(
            problems(&text),
            ["k.conf:12:9: vrrp_instance 'VI_2' tracks unknown vrrp_script 'chk_missing'"]
        );
    }

    #[test]
    fn sync_group_with_unknown_instance() {
        let text = format!("{TWO}vrrp_sync_group G {{\n  group {{\n    VI_1\n    VI_9\n  }}\n}}\n");
        assert_eq!(
            problems(&text),
            ["k.conf:18:5: vrrp_sync_group 'G' names unknown vrrp_instance 'VI_9'"]
        );
    }

    #[test]
    fn ipv6_vip_needs_version_3() {
        let text = TWO.replace("10.0.0.2/24", "2001:db8::2/64");
        assert_eq!(
            problems(&text),
            [
                "k.conf:12:9: vrrp_instance 'VI_2': IPv6 virtual address 2001:db8::2 needs VRRP version 3 (the instance uses version 2)"
            ]
        );
        assert_eq!(
            problems(&text.replace(
                "virtual_router_id 52",
                "virtual_router_id 52\n    version 3"
            )),
            Vec::<String>::new()
        );
    }

    /// keepalived's checks of the groups, as errors where it skips the
    /// line; a v6 instance's group must be link-local in scope.
    #[test]
    fn multicast_groups_must_be_multicast_of_the_instances_family() {
        let text = format!(
            "global_defs {{\n  vrrp_mcast_group4 10.0.0.9\n  vrrp_mcast_group6 fd00::9\n}}\n{}",
            TWO.replace(
                "virtual_router_id 51",
                "virtual_router_id 51\n    mcast_dst_ip ff02::99"
            )
            .replace(
                "virtual_router_id 52",
                "virtual_router_id 52\n    mcast_dst_ip 239.1.1.1"
            )
        );
        assert_eq!(
            problems(&text),
            [
                "k.conf:2:3: vrrp_mcast_group4 10.0.0.9 is not a multicast address (224.0.0.0/4)",
                "k.conf:3:3: vrrp_mcast_group6 fd00::9 is not a multicast address (ff00::/8)",
                "k.conf:8:5: vrrp_instance 'VI_1': mcast_dst_ip ff02::99 is IPv6 but the instance is not",
            ]
        );
        let v6 = TWO.replace("10.0.0.1/24", "fe80::1/64").replace(
            "virtual_router_id 51",
            "virtual_router_id 51\n    version 3\n    mcast_dst_ip ff05::99",
        );
        assert_eq!(
            problems(&v6),
            [
                "k.conf:5:5: vrrp_instance 'VI_1': mcast_dst_ip ff05::99 is not a link-local multicast address (ff02::/16)"
            ]
        );
        let good = format!(
            "global_defs {{\n  vrrp_mcast_group4 224.0.0.99\n  vrrp_mcast_group6 ff05::99\n}}\n{}",
            v6.replace("ff05::99", "ff02::99")
        );
        assert_eq!(problems(&good), Vec::<String>::new());
        let config = load_str(Path::new("k.conf"), &good, Format::Keepalived).unwrap();
        let groups: Vec<IpAddr> = config
            .vrrp_instance
            .iter()
            .map(|i| i.multicast_group(&config.global))
            .collect();
        assert_eq!(
            groups,
            [
                "ff02::99".parse::<IpAddr>().unwrap(),
                "224.0.0.99".parse().unwrap()
            ],
            "an instance's own group, else the global one of its family"
        );
        let plain = load_str(Path::new("k.conf"), TWO, Format::Keepalived).unwrap();
        assert_eq!(
            plain.vrrp_instance[0].multicast_group(&plain.global),
            "224.0.0.18".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn authentication_with_version_3() {
        let text = TWO.replace(
            "virtual_router_id 52",
            "virtual_router_id 52\n    version 3\n    authentication {\n        auth_type PASS\n        auth_pass secret\n    }",
        );
        assert_eq!(
            problems(&text),
            [
                "k.conf:12:5: vrrp_instance 'VI_2': authentication is not allowed with VRRP version 3"
            ]
        );
    }

    #[test]
    fn fractional_advert_int_needs_version_3() {
        let text = TWO.replace(
            "virtual_router_id 52",
            "virtual_router_id 52\n    advert_int 0.5",
        );
        assert_eq!(
            problems(&text),
            [
                "k.conf:11:5: vrrp_instance 'VI_2': advert_int 500ms is not allowed: must be whole seconds in 1..=255 with VRRP version 2"
            ]
        );
        let v3 = text.replace("advert_int 0.5", "advert_int 0.5\n    version 3");
        assert_eq!(problems(&v3), Vec::<String>::new());
    }

    #[test]
    fn duplicate_instance_name() {
        let text = TWO.replace("VI_2", "VI_1");
        assert_eq!(
            problems(&text),
            ["k.conf:8:1: duplicate vrrp_instance name 'VI_1' (first defined at k.conf:1:1)"]
        );
    }

    fn toml_problems(text: &str) -> Vec<String> {
        match load_str(Path::new("a.toml"), text, Format::Toml) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn virtual_server_groups_are_checked_where_written() {
        let text = "virtual_server_group web {\n  10.0.0.1 80\n}\nvirtual_server_group web {\n  10.0.0.2 80\n}\n\
            virtual_server_group empty {\n}\n\
            virtual_server group nowhere {\n  protocol TCP\n}\n\
            virtual_server group web {\n  protocol TCP\n  ha_suspend\n}\n";
        assert_eq!(
            problems(text),
            [
                "k.conf:4:1: virtual_server_group 'web' is defined twice (first at k.conf:1:1)",
                "k.conf:7:1: virtual_server_group 'empty' has no entries",
                "k.conf:9:1: virtual_server group nowhere: no virtual_server_group 'nowhere'",
                "k.conf:14:3: ha_suspend is not supported on a virtual_server group: write one virtual_server per address with ha_suspend, or drop it (the checks then run on the backup too)",
            ]
        );
        // TOML ranges: in order, one family, not too long.
        let toml = "[[virtual_server_group]]\nname = \"web\"\nentries = [\n  \
            { address = \"10.0.0.9\", last = \"10.0.0.1\", port = 80 },\n  \
            { address = \"10.0.0.1\", last = \"2001:db8::1\", port = 80 },\n  \
            { address = \"10.0.0.0\", last = \"10.1.0.0\", port = 80 },\n  \
            { fwmark = 3, family = \"inet6\" },\n]\n\
            [[virtual_server]]\nservice = { group = \"web\" }\n";
        assert_eq!(
            toml_problems(toml),
            [
                "a.toml:4:3: virtual_server_group 'web': range 10.0.0.9-10.0.0.1: its end is before its start",
                "a.toml:5:3: virtual_server_group 'web': range 10.0.0.1-2001:db8::1: its ends are of different families",
                "a.toml:6:3: virtual_server_group 'web': range 10.0.0.0-10.1.0.0: it spans more than 65536 addresses (one kernel service each)",
            ]
        );
    }

    #[test]
    fn zero_periods_are_refused() {
        let text = "[[vrrp_script]]\nname = \"chk\"\nscript = { program = \"/bin/true\" }\ninterval = \"0s\"\n\n\
                    [[virtual_server]]\nservice = { address = \"10.0.0.1:80\" }\ndelay_loop = \"0s\"\n\n\
                    [[virtual_server.real_server]]\naddress = \"10.0.1.1:80\"\n";
        assert_eq!(
            toml_problems(text),
            [
                "a.toml:4:1: vrrp_script 'chk': interval must be more than 0",
                "a.toml:8:1: virtual_server TCP 10.0.0.1:80: delay_loop must be more than 0",
            ]
        );
    }

    #[test]
    fn tracked_processes_in_toml_are_checked_as_in_keepalived_conf() {
        let text = "[[vrrp_track_process]]\nname = \"p\"\nprocess = \"\"\nquorum = 0\nterminate_delay = \"2h\"\n\n\
                    [[vrrp_track_process]]\nname = \"q\"\nprocess = \"sleep\"\nparams = [\"300\"]\nparam_match = \"initial\"\nquorum = 2\nquorum_max = 1\nweight = -254\n\n\
                    [[vrrp_track_process]]\nname = \"none\"\nprocess = \"x\"\nquorum_max = 0\n";
        assert_eq!(
            toml_problems(text),
            [
                "a.toml:3:1: vrrp_track_process 'p' has no 'process'",
                "a.toml:4:1: vrrp_track_process 'p': quorum 0 is out of range 1..=65535",
                "a.toml:5:1: vrrp_track_process 'p': terminate_delay 7200s is longer than keepalived's 3600 s",
                "a.toml:13:1: vrrp_track_process 'q': quorum_max 1 is less than quorum 2",
            ]
        );
        assert!(
            toml_problems("[[vrrp_track_process]]\nname = \"w\"\nprocess = \"x\"\nweight = 255\n")
                [0]
            .contains("weight 255 is out of range -254..=254")
        );
    }

    #[test]
    fn mail_settings_must_fit_smtp_commands() {
        let text = "[global]\nnotification_email = [\"ops@x\", \"a b@x\"]\n\
                    notification_email_from = \"<lb@x>\"\nsmtp_helo_name = \"lb\\r\\nRSET\"\n\
                    smtp_connect_timeout = \"0s\"\n\n\
                    [[virtual_server]]\nservice = { address = \"10.0.0.1:25\" }\n\n\
                    [[virtual_server.real_server]]\naddress = \"10.0.1.1:25\"\n\
                    check = [{ type = \"SMTP_CHECK\", helo_name = \"\" }]\n";
        assert_eq!(
            toml_problems(text),
            [
                "a.toml:2:32: notification_email[1] 'a b@x' holds a space or an angle bracket",
                "a.toml:3:1: notification_email_from '<lb@x>' holds a space or an angle bracket",
                "a.toml:4:1: smtp_helo_name 'lb\\r\\nRSET' holds a control character",
                "a.toml:5:1: smtp_connect_timeout must be more than 0",
                "a.toml:12:33: real_server 10.0.1.1:25: SMTP_CHECK helo_name '' is empty",
            ]
        );
    }

    #[test]
    fn only_when_master_must_name_an_instance() {
        let text = "[[virtual_server]]\nservice = { address = \"10.0.0.1:80\" }\nonly_when_master = \"VI_9\"\n";
        assert_eq!(
            toml_problems(text),
            ["a.toml:3:1: only_when_master names vrrp_instance 'VI_9', which is not defined"]
        );
    }

    #[test]
    fn nftables_dataplane_refuses_what_it_cannot_do_naming_the_virtual_server() {
        let text = "[global]\ndataplane = \"nftables\"\n\n\
                    [[virtual_server]]\nservice = { address = \"10.0.0.1:80\" }\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n\n\
                    [[virtual_server.real_server]]\naddress = \"10.0.1.1:80\"\nuthreshold = 5\n\n\
                    [[virtual_server]]\nservice = { address = \"10.0.0.1:443\" }\n";
        assert_eq!(
            toml_problems(text),
            [
                "a.toml:7:1: virtual_server TCP 10.0.0.1:80: lb_kind DR is not available with the nftables dataplane (NAT only)",
                "a.toml:9:1: virtual_server TCP 10.0.0.1:80: real_server 10.0.1.1:80: uthreshold/lthreshold are not available with the nftables dataplane",
                "a.toml:13:1: virtual_server TCP 10.0.0.1:443: lb_algo wlc (keepalived's default when lb_algo is not written) is not available with the nftables dataplane: use rr, wrr, sh, dh, mh or random",
            ]
        );
        let fine = "[global]\ndataplane = \"nftables\"\n\n\
                    [[virtual_server]]\nservice = { address = \"10.0.0.1:80\" }\nlb_algo = \"random\"\nmasquerade = true\n";
        assert_eq!(toml_problems(fine), Vec::<String>::new());
    }

    #[test]
    fn nftables_extensions_need_the_nftables_dataplane() {
        let text = "[[virtual_server]]\nservice = { address = \"10.0.0.1:80\" }\nlb_algo = \"random\"\nmasquerade = true\n";
        assert_eq!(
            toml_problems(text),
            [
                "a.toml:3:1: virtual_server TCP 10.0.0.1:80: lb_algo random needs dataplane = \"nftables\" in [global] (IPVS has no weighted random scheduler)",
                "a.toml:4:1: virtual_server TCP 10.0.0.1:80: masquerade needs dataplane = \"nftables\" in [global]",
            ]
        );
        // keepalived.conf knows IPVS's schedulers only.
        assert_eq!(
            problems("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_algo random\n}\n").len(),
            1
        );
    }

    #[test]
    fn lvs_sync_daemon_needs_an_existing_instance() {
        let text = format!("global_defs {{\n  lvs_sync_daemon eth0 VI_9\n}}\n{TWO}");
        assert_eq!(
            problems(&text),
            ["k.conf:2:24: lvs_sync_daemon names unknown vrrp_instance 'VI_9'"]
        );
        let text = format!("global_defs {{\n  lvs_sync_daemon eth0 inst VI_2\n}}\n{TWO}");
        assert_eq!(problems(&text), Vec::<String>::new());
    }

    #[test]
    fn lvs_settings_need_ipvs() {
        let text = "[global]\ndataplane = \"nftables\"\n\
            lvs_sync_daemon = { interface = \"eth0\", vrrp_instance = \"VI_1\" }\n\
            lvs_timeouts = { tcp = \"10m\" }\n\
            [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n";
        assert_eq!(
            toml_problems(text),
            [
                "a.toml:3:1: lvs_sync_daemon needs the IPVS dataplane, not dataplane = \"nftables\"",
                "a.toml:4:1: lvs_timeouts needs the IPVS dataplane, not dataplane = \"nftables\"",
            ]
        );
    }

    #[test]
    fn lvs_limits_hold_in_toml_too() {
        let text = "[global]\n\
            lvs_sync_daemon = { interface = \"a-very-long-ifname\", vrrp_instance = \"VI_1\", port = 0, group = \"10.0.0.1\" }\n\
            lvs_timeouts = { tcp = \"1.5s\", udp = \"32days\" }\n\
            [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n";
        assert_eq!(
            toml_problems(text),
            [
                "a.toml:2:21: lvs_sync_daemon interface 'a-very-long-ifname' is not an interface name (1..=15 bytes)",
                "a.toml:2:79: lvs_sync_daemon port 0 is out of range 1..=65535",
                "a.toml:2:89: lvs_sync_daemon group 10.0.0.1 is not a multicast address",
                "a.toml:3:18: lvs_timeouts tcp 1.5s is not whole seconds up to 31 days",
                "a.toml:3:32: lvs_timeouts udp 2764800s is not whole seconds up to 31 days",
            ]
        );
    }

    #[test]
    fn an_invalid_url_regex_is_refused_where_it_is() {
        let text = "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80 {\n    HTTP_GET {\n      url {\n        path /\n        regex \"(unclosed\"\n      }\n      url {\n        path /b\n        regex_no_match\n      }\n    }\n  }\n}\n";
        let got = problems(text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with(
                "k.conf:7:9: real_server 10.0.1.1:80: url /: regex \"(unclosed\" is invalid:"
            ),
            "{got:?}"
        );
        assert_eq!(
            got[1],
            "k.conf:11:9: real_server 10.0.1.1:80: url /b: regex_no_match without a regex"
        );
    }

    #[test]
    fn udp_reply_lengths_that_always_fail_are_refused() {
        let text = "virtual_server 10.0.0.1 53 {\n  protocol UDP\n  real_server 10.0.1.1 53 {\n    UDP_CHECK {\n      require_reply 01\n      min_reply_length 9\n      max_reply_length 8\n    }\n  }\n}\n";
        assert_eq!(
            problems(text),
            [
                "k.conf:6:7: real_server 10.0.1.1:53: UDP_CHECK min_reply_length 9 is above max_reply_length 8: it would always fail"
            ]
        );
        let toml = "[[virtual_server]]\nservice = { address = \"10.0.0.1:53\" }\nprotocol = \"UDP\"\n\
                    [[virtual_server.real_server]]\naddress = \"10.0.1.1:53\"\n\
                    check = [{ type = \"UDP_CHECK\", min_reply_length = 9, max_reply_length = 8 }]\n";
        let got = toml_problems(toml);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("min_reply_length 9 is above"), "{got:?}");
    }

    #[test]
    fn ha_suspend_on_a_fwmark_service_is_refused_where_it_is() {
        let text = "virtual_server fwmark 5 {\n  protocol TCP\n  ha_suspend\n  real_server 10.0.1.1 80 {\n  }\n}\n";
        assert_eq!(
            problems(text),
            [
                "k.conf:3:3: ha_suspend needs the virtual server's address: a fwmark service has none to wait for"
            ]
        );
        let ok = "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  ha_suspend\n  real_server 10.0.1.1 80 {\n  }\n}\n";
        assert_eq!(problems(ok), Vec::<String>::new());
    }

    #[test]
    fn network_settings_are_checked() {
        let text = "[network.sysctl]\n\"net.ipv4.ip_forward\" = \"1\"\n\"../../etc/x\" = \"1\"\n\n\
                    [[network.interface]]\nname = \"eth0\"\naddress = [\"10.0.0.2/24\"]\n\n\
                    [[network.interface]]\nname = \"eth0\"\n\n\
                    [[network.route]]\ndestination = \"0.0.0.0/0\"\ngateway = \"fe80::1\"\n\n\
                    [[network.route]]\ndestination = \"10.1.0.0/16\"\n";
        let got = toml_problems(text);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(
            got[0].contains("sysctl '../../etc/x' is not a kernel parameter name"),
            "{got:?}"
        );
        assert!(got[1].contains("interface eth0 is listed twice"), "{got:?}");
        assert!(
            got[2].contains("gateway fe80::1 is of the other address family"),
            "{got:?}"
        );
        assert!(
            got[3].contains("route to 10.1.0.0/16 needs a gateway or an interface"),
            "{got:?}"
        );
    }

    #[test]
    fn sloppy_tcp_is_refused_on_the_nftables_dataplane() {
        let got = toml_problems("[global]\ndataplane = \"nftables\"\nlvs_sloppy_tcp = true\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("a.toml:3:1: lvs_sloppy_tcp is an IPVS setting"),
            "{got:?}"
        );
        assert_eq!(
            toml_problems("[global]\ndataplane = \"ipvs\"\nlvs_sloppy_tcp = true\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn bgp_settings_are_checked() {
        let text = "[[virtual_server]]\nservice = { address = \"10.0.0.100:80\" }\n\
                    [[virtual_server.real_server]]\naddress = \"10.0.2.11:80\"\n\n\
                    [bgp]\nlocal_as = 65001\nrouter_id = \"0.0.0.0\"\nhold_time = 2\n\
                    announce = [\"10.0.0.100/32\", \"10.0.0.200/32\", \"2001:db8::100/128\", \"10.0.0.101/24\"]\n\n\
                    [[bgp.peer]]\naddress = \"10.0.1.1\"\nremote_as = 65000\n\n\
                    [[bgp.peer]]\naddress = \"10.0.1.1\"\nremote_as = 0\nsource = \"2001:db8::1\"\n";
        let got = toml_problems(text);
        let want = [
            "bgp.router_id 0.0.0.0 is not a usable identifier",
            "bgp.hold_time 2 s: BGP allows 0 or at least 3",
            "bgp.announce 10.0.0.200/32 holds no virtual_server's address",
            "bgp.announce 2001:db8::100/128 holds no virtual_server's address",
            "bgp.announce 2001:db8::100/128: peer 10.0.1.1 has no IPv6 next hop to give; set bgp.next_hop_ipv6",
            "bgp.announce 10.0.0.101/24 has host bits set (the prefix is 10.0.0.0/24)",
            "remote_as 0 is reserved",
            "peer 10.0.1.1: source 2001:db8::1 is of the other address family",
            "bgp peer 10.0.1.1 is listed twice",
        ];
        for want in want {
            assert!(got.iter().any(|p| p.contains(want)), "{want}\n{got:#?}");
        }
        // The IPv6 next-hop complaint comes once per peer.
        assert_eq!(got.len(), want.len() + 1, "{got:#?}");
    }

    /// The warnings a valid TOML config loads with.
    fn toml_warnings(text: &str) -> Vec<String> {
        let (_, map) = crate::config::load_str_mapped(Path::new("a.toml"), text, Format::Toml)
            .unwrap_or_else(|d| panic!("{d}"));
        map.warnings().iter().map(ToString::to_string).collect()
    }

    /// A config announcing 10.0.0.100 over BGP, with `global` and the
    /// virtual server's `service` lines and its real servers' extra lines.
    fn announced(global: &str, service: &str, real_server: &str) -> String {
        format!(
            "[global]\n{global}\n\
             [[virtual_server]]\nservice = {{ address = \"10.0.0.100:80\" }}\n{service}\n\
             [[virtual_server.real_server]]\naddress = \"10.0.2.11:80\"\n{real_server}\n\
             [[virtual_server.real_server]]\naddress = \"10.0.2.12:80\"\n{real_server}\n\
             [bgp]\nlocal_as = 65001\nrouter_id = \"10.0.1.2\"\nannounce = [\"10.0.0.100/32\"]\n\n\
             [[bgp.peer]]\naddress = \"10.0.1.1\"\nremote_as = 65000\n"
        )
    }

    #[test]
    fn an_announced_service_is_advised_what_keeps_flows_on_their_real_server() {
        // Not mh: a moved flow reaches another real server.
        let got = toml_warnings(&announced("", "lb_algo = \"wlc\"", ""));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].starts_with("a.toml:5:1:"), "{got:#?}");
        assert!(
            got[0].contains("virtual_server 10.0.0.100:80 is announced over BGP with lb_algo wlc"),
            "{got:#?}"
        );
        // mh on IPVS (or the kernel's choice) without fallback or inhibit.
        for (global, service, real_server) in [
            ("", "lb_algo = \"mh\"", ""),
            (
                "dataplane = \"ipvs\"",
                "lb_algo = \"mh\"\nsched_flags = { fallback = true }",
                "",
            ),
            ("", "lb_algo = \"mh\"", "inhibit_on_failure = true"),
        ] {
            let got = toml_warnings(&announced(global, service, real_server));
            assert_eq!(got.len(), 1, "{got:#?}");
            assert!(
                got[0].contains(
                    "announced over BGP with mh, which on IPVS wants sched_flags fallback"
                ),
                "{got:#?}"
            );
        }
        // What scale-out wants: no warning.
        for (global, service, real_server) in [
            (
                "",
                "lb_algo = \"mh\"\nsched_flags = { port = true, fallback = true }",
                "inhibit_on_failure = true",
            ),
            ("dataplane = \"nftables\"", "lb_algo = \"mh\"", ""),
        ] {
            assert_eq!(
                toml_warnings(&announced(global, service, real_server)),
                Vec::<String>::new()
            );
        }
        // Not announced: no advice.
        let quiet = announced("", "lb_algo = \"wlc\"", "").replace(
            "[bgp]",
            "[[virtual_server]]\nservice = { address = \"10.0.0.101:80\" }\n\
             [[virtual_server.real_server]]\naddress = \"10.0.2.11:80\"\n\n[bgp]",
        );
        assert_eq!(toml_warnings(&quiet).len(), 1);
    }

    #[test]
    fn real_server_listed_twice() {
        let text = "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80\n  real_server 10.0.1.1 80\n}\n";
        assert_eq!(
            problems(text),
            ["k.conf:4:3: real_server 10.0.1.1:80 is listed twice (first at k.conf:3:3)"]
        );
    }

    #[test]
    fn every_problem_is_reported_in_file_order() {
        let text = TWO
            .replace(
                "virtual_router_id 52",
                "virtual_router_id 52\n    use_ipvlan\n    priority 0",
            )
            .replacen("interface eth0\n", "", 1);
        assert_eq!(
            problems(&text),
            [
                "k.conf:1:1: vrrp_instance 'VI_1' has no interface",
                "k.conf:10:5: keepalived's 'use_ipvlan' in vrrp_instance is not supported: not yet; `use_vmac` makes a macvlan with the virtual MAC",
                "k.conf:11:5: vrrp_instance 'VI_2': priority 0 is out of range 1..=255 (0 is reserved for a resigning master)",
            ]
        );
    }
}
