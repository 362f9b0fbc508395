//! keepalived.conf text for one VRRP instance (with the `vrrp_script`s,
//! `track_file`s and `vrrp_track_process`es it tracks and, optionally, a
//! `vrrp_sync_group` it heads), as both the
//! appliance and Debian's keepalived read it, and the RFC timers the tests
//! expect of it (computed here from the RFC formulas, independently of the
//! appliance's own code, so a wrong formula there fails the tests).

use appliance::vrrp::Version;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

/// One node's config: `global_defs` and one `vrrp_instance` on `eth0`.
#[derive(Clone, Debug)]
pub struct Instance {
    /// `router_id`: the node's name in the appliance's timeline.
    pub router_id: String,
    pub name: String,
    /// `state MASTER` rather than `state BACKUP`.
    pub initial_master: bool,
    pub vrid: u8,
    pub priority: u8,
    /// `advert_int`, in milliseconds (whole seconds for VRRPv2).
    pub advert_ms: u64,
    pub version: Version,
    /// `authentication { auth_type PASS auth_pass … }` (VRRPv2 only).
    pub auth_pass: Option<String>,
    /// `virtual_ipaddress` entries, CIDR.
    pub vips: Vec<String>,
    pub unicast_src: Option<IpAddr>,
    pub unicast_peers: Vec<IpAddr>,
    pub native_ipv6: bool,
    /// `dont_track_primary`: stay out of FAULT while `eth0` is down.
    pub dont_track_primary: bool,
    /// More `global_defs` lines (`vrrp_mcast_group4 224.0.0.99`, say).
    pub globals: Vec<String>,
    /// `nopreempt`: a higher priority does not take over a working master.
    pub nopreempt: bool,
    /// `preempt_delay`, in milliseconds (0: none).
    pub preempt_delay_ms: u64,
    /// `vrrp_script`s, each in `track_script { … }`.
    pub scripts: Vec<Script>,
    /// `track_interface { … }` entries, without weight (a link down is a
    /// FAULT).
    pub track_interfaces: Vec<String>,
    /// `track_file`s, each in `track_file { … }`.
    pub files: Vec<TrackFile>,
    /// `vrrp_track_process`es, each in `track_process { … }`.
    pub processes: Vec<TrackProcess>,
    /// A `vrrp_sync_group` of this instance and others, in the same file.
    pub sync_group: Option<SyncGroup>,
    /// Blocks written after the instances (virtual servers, say).
    pub blocks: Vec<String>,
    /// `use_vmac [NAME]`: `Some(None)` for the bare keyword.
    pub use_vmac: Option<Option<String>>,
    /// `vmac_xmit_base`.
    pub vmac_xmit_base: bool,
    /// More lines of the `vrrp_instance` block (`notify_priority_changes`,
    /// say).
    pub lines: Vec<String>,
}

/// A `vrrp_script` block and its `track_script` entry.
#[derive(Clone, Debug)]
pub struct Script {
    pub name: String,
    /// `script`: the program and its arguments, split on blanks as
    /// keepalived does (no shell).
    pub command: String,
    /// `interval`, whole seconds.
    pub interval_s: u64,
    /// `weight`: none is keepalived's 0, a failure is a FAULT.
    pub weight: Option<i16>,
}

impl Script {
    /// `vrrp_script NAME { script "COMMAND"; interval 1 }`.
    pub fn new(name: &str, command: &str) -> Self {
        Self {
            name: name.to_string(),
            command: command.to_string(),
            interval_s: 1,
            weight: None,
        }
    }

    pub fn weight(mut self, weight: i16) -> Self {
        self.weight = Some(weight);
        self
    }

    fn render(&self, text: &mut String) {
        let _ = writeln!(
            text,
            "vrrp_script {} {{\n  script \"{}\"\n  interval {}",
            self.name, self.command, self.interval_s
        );
        if let Some(weight) = self.weight {
            let _ = writeln!(text, "  weight {weight}");
        }
        text.push_str("}\n");
    }
}

/// A `track_file` block and its entry in the instance's `track_file`.
#[derive(Clone, Debug)]
pub struct TrackFile {
    pub name: String,
    /// `file`: an absolute path.
    pub path: String,
    /// `weight`: none is keepalived's 1.
    pub weight: Option<i16>,
    /// `reverse` after the weight.
    pub reverse: bool,
}

impl TrackFile {
    /// `track_file NAME { file PATH }`.
    pub fn new(name: &str, path: &str) -> Self {
        Self {
            name: name.to_string(),
            path: path.to_string(),
            weight: None,
            reverse: false,
        }
    }

    pub fn weight(mut self, weight: i16) -> Self {
        self.weight = Some(weight);
        self
    }

    pub fn reverse(mut self) -> Self {
        self.reverse = true;
        self
    }

    fn render(&self, text: &mut String) {
        let _ = writeln!(
            text,
            "track_file {} {{\n  file \"{}\"",
            self.name, self.path
        );
        if let Some(weight) = self.weight {
            let reverse = if self.reverse { " reverse" } else { "" };
            let _ = writeln!(text, "  weight {weight}{reverse}");
        }
        text.push_str("}\n");
    }
}

/// A `vrrp_track_process` block and its entry in the instance's
/// `track_process`.
#[derive(Clone, Debug)]
pub struct TrackProcess {
    pub name: String,
    /// `process`: the name, then any parameters (which make keepalived
    /// match the full command).
    pub process: Vec<String>,
    /// `full_command`.
    pub full_command: bool,
    /// `weight`: none is keepalived's 0, a lost quorum is a FAULT.
    pub weight: Option<i16>,
    /// `quorum`: none is keepalived's 1.
    pub quorum: Option<u32>,
}

impl TrackProcess {
    /// `vrrp_track_process NAME { process WORDS… }`.
    pub fn new(name: &str, process: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            process: process.iter().map(|w| w.to_string()).collect(),
            full_command: false,
            weight: None,
            quorum: None,
        }
    }

    pub fn full_command(mut self) -> Self {
        self.full_command = true;
        self
    }

    pub fn weight(mut self, weight: i16) -> Self {
        self.weight = Some(weight);
        self
    }

    pub fn quorum(mut self, quorum: u32) -> Self {
        self.quorum = Some(quorum);
        self
    }

    fn render(&self, text: &mut String) {
        let words: Vec<String> = self.process.iter().map(|w| format!("\"{w}\"")).collect();
        let _ = writeln!(
            text,
            "vrrp_track_process {} {{\n  process {}",
            self.name,
            words.join(" ")
        );
        if self.full_command {
            text.push_str("  full_command\n");
        }
        if let Some(weight) = self.weight {
            let _ = writeln!(text, "  weight {weight}");
        }
        if let Some(quorum) = self.quorum {
            let _ = writeln!(text, "  quorum {quorum}");
        }
        text.push_str("}\n");
    }
}

/// A `vrrp_sync_group` of the instance that holds it (first) and `others`.
#[derive(Clone, Debug)]
pub struct SyncGroup {
    pub name: String,
    /// The other members, rendered after the first; their `router_id` is
    /// not used.
    pub others: Vec<Instance>,
    /// The group's own `notify_master`, `notify`, … lines: keyword and
    /// command.
    pub notifies: Vec<(String, String)>,
    /// The group's own `track_interface { … }` entries, without weight.
    pub track_interfaces: Vec<String>,
}

impl SyncGroup {
    pub fn new(name: &str, others: Vec<Instance>) -> Self {
        Self {
            name: name.to_string(),
            others,
            notifies: Vec::new(),
            track_interfaces: Vec::new(),
        }
    }

    /// The group's own `track_interface { IF }`: every member tracks it.
    pub fn track_interface(mut self, interface: &str) -> Self {
        self.track_interfaces.push(interface.to_string());
        self
    }

    /// `KEYWORD "COMMAND"` (`notify_master`, `notify_backup`,
    /// `notify_fault`, `notify_stop`, `notify`).
    pub fn notify(mut self, keyword: &str, command: &str) -> Self {
        self.notifies
            .push((keyword.to_string(), command.to_string()));
        self
    }
}

impl Instance {
    /// A VRRPv2 instance `VI_A` without authentication, advert_int 1.
    pub fn new(router_id: &str, vrid: u8, priority: u8, vip: &str) -> Self {
        Self {
            router_id: router_id.to_string(),
            name: "VI_A".to_string(),
            initial_master: false,
            vrid,
            priority,
            advert_ms: 1000,
            version: Version::V2,
            auth_pass: None,
            vips: vec![vip.to_string()],
            unicast_src: None,
            unicast_peers: Vec::new(),
            native_ipv6: false,
            dont_track_primary: false,
            globals: Vec::new(),
            nopreempt: false,
            preempt_delay_ms: 0,
            scripts: Vec::new(),
            track_interfaces: Vec::new(),
            files: Vec::new(),
            processes: Vec::new(),
            sync_group: None,
            blocks: Vec::new(),
            use_vmac: None,
            vmac_xmit_base: false,
            lines: Vec::new(),
        }
    }

    /// A block written after the instances, as given.
    pub fn block(mut self, text: &str) -> Self {
        self.blocks.push(text.to_string());
        self
    }

    /// One more line in the `vrrp_instance` block.
    pub fn line(mut self, line: &str) -> Self {
        self.lines.push(line.to_string());
        self
    }

    /// A `global_defs` line.
    pub fn global(mut self, line: &str) -> Self {
        self.globals.push(line.to_string());
        self
    }

    /// The `vrrp_instance` name (`VI_A` unless set).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    pub fn initial_master(mut self) -> Self {
        self.initial_master = true;
        self
    }

    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    pub fn auth_pass(mut self, pass: &str) -> Self {
        self.auth_pass = Some(pass.to_string());
        self
    }

    pub fn advert_ms(mut self, ms: u64) -> Self {
        self.advert_ms = ms;
        self
    }

    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    pub fn unicast(mut self, src: IpAddr, peers: &[IpAddr]) -> Self {
        self.unicast_src = Some(src);
        self.unicast_peers = peers.to_vec();
        self
    }

    pub fn native_ipv6(mut self) -> Self {
        self.native_ipv6 = true;
        self
    }

    pub fn dont_track_primary(mut self) -> Self {
        self.dont_track_primary = true;
        self
    }

    /// `nopreempt` (keepalived ignores it with `state MASTER`).
    pub fn nopreempt(mut self) -> Self {
        self.nopreempt = true;
        self
    }

    /// `preempt_delay`, in milliseconds (keepalived ignores it with `state
    /// MASTER`).
    pub fn preempt_delay_ms(mut self, ms: u64) -> Self {
        self.preempt_delay_ms = ms;
        self
    }

    /// Tracks `script` (its `vrrp_script` block goes in the file too).
    pub fn track_script(mut self, script: Script) -> Self {
        self.scripts.push(script);
        self
    }

    /// Tracks `file` (its `track_file` block goes in the file too).
    pub fn track_file(mut self, file: TrackFile) -> Self {
        self.files.push(file);
        self
    }

    /// Tracks `process` (its `vrrp_track_process` block goes in the file
    /// too).
    pub fn track_process(mut self, process: TrackProcess) -> Self {
        self.processes.push(process);
        self
    }

    /// `track_interface { IF }`.
    pub fn track_interface(mut self, interface: &str) -> Self {
        self.track_interfaces.push(interface.to_string());
        self
    }

    /// `use_vmac`, or `use_vmac NAME`: the VIPs go on a macvlan with the
    /// VRRP virtual MAC.
    pub fn use_vmac(mut self, name: Option<&str>) -> Self {
        self.use_vmac = Some(name.map(str::to_string));
        self
    }

    /// `vmac_xmit_base`: adverts use eth0 (and its MAC), not the macvlan.
    pub fn vmac_xmit_base(mut self) -> Self {
        self.vmac_xmit_base = true;
        self
    }

    /// Heads `group`: the file gets the group and its other members.
    pub fn sync_group(mut self, group: SyncGroup) -> Self {
        self.sync_group = Some(group);
        self
    }

    /// The config file's text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(text, "global_defs {{\n  router_id {}", self.router_id);
        // One gratuitous burst at takeover and one a second later, as in
        // keepalived's default; stated so both implementations agree.
        text.push_str("  vrrp_garp_master_delay 1\n");
        for line in &self.globals {
            let _ = writeln!(text, "  {line}");
        }
        text.push_str("}\n");
        let members: Vec<&Instance> = std::iter::once(self)
            .chain(self.sync_group.iter().flat_map(|g| &g.others))
            .collect();
        let mut scripts: Vec<&Script> = Vec::new();
        for script in members.iter().flat_map(|m| &m.scripts) {
            if !scripts.iter().any(|s| s.name == script.name) {
                scripts.push(script);
            }
        }
        for script in scripts {
            script.render(&mut text);
        }
        let mut files: Vec<&TrackFile> = Vec::new();
        for file in members.iter().flat_map(|m| &m.files) {
            if !files.iter().any(|f| f.name == file.name) {
                files.push(file);
            }
        }
        for file in files {
            file.render(&mut text);
        }
        let mut processes: Vec<&TrackProcess> = Vec::new();
        for process in members.iter().flat_map(|m| &m.processes) {
            if !processes.iter().any(|p| p.name == process.name) {
                processes.push(process);
            }
        }
        for process in processes {
            process.render(&mut text);
        }
        if let Some(group) = &self.sync_group {
            let _ = writeln!(text, "vrrp_sync_group {} {{\n  group {{", group.name);
            for member in &members {
                let _ = writeln!(text, "    {}", member.name);
            }
            text.push_str("  }\n");
            for (keyword, command) in &group.notifies {
                let _ = writeln!(text, "  {keyword} \"{command}\"");
            }
            if !group.track_interfaces.is_empty() {
                text.push_str("  track_interface {\n");
                for interface in &group.track_interfaces {
                    let _ = writeln!(text, "    {interface}");
                }
                text.push_str("  }\n");
            }
            text.push_str("}\n");
        }
        for member in members {
            member.render_instance(&mut text);
        }
        for block in &self.blocks {
            text.push_str(block);
        }
        text
    }

    /// The `vrrp_instance` block.
    fn render_instance(&self, text: &mut String) {
        let _ = writeln!(text, "vrrp_instance {} {{", self.name);
        let state = if self.initial_master {
            "MASTER"
        } else {
            "BACKUP"
        };
        let _ = writeln!(text, "  state {state}\n  interface eth0");
        let _ = writeln!(text, "  virtual_router_id {}", self.vrid);
        let _ = writeln!(text, "  priority {}", self.priority);
        let _ = writeln!(text, "  advert_int {}", seconds(self.advert_ms));
        if self.version == Version::V3 {
            text.push_str("  version 3\n");
        }
        if self.native_ipv6 {
            text.push_str("  native_ipv6\n");
        }
        if self.dont_track_primary {
            text.push_str("  dont_track_primary\n");
        }
        match &self.use_vmac {
            Some(Some(name)) => {
                let _ = writeln!(text, "  use_vmac {name}");
            }
            Some(None) => text.push_str("  use_vmac\n"),
            None => {}
        }
        if self.vmac_xmit_base {
            text.push_str("  vmac_xmit_base\n");
        }
        if self.nopreempt {
            text.push_str("  nopreempt\n");
        }
        if self.preempt_delay_ms > 0 {
            let _ = writeln!(text, "  preempt_delay {}", seconds(self.preempt_delay_ms));
        }
        if let Some(pass) = &self.auth_pass {
            let _ = writeln!(
                text,
                "  authentication {{\n    auth_type PASS\n    auth_pass {pass}\n  }}"
            );
        }
        if let Some(src) = self.unicast_src {
            let _ = writeln!(text, "  unicast_src_ip {src}");
        }
        if !self.unicast_peers.is_empty() {
            text.push_str("  unicast_peer {\n");
            for peer in &self.unicast_peers {
                let _ = writeln!(text, "    {peer}");
            }
            text.push_str("  }\n");
        }
        if !self.scripts.is_empty() {
            text.push_str("  track_script {\n");
            for script in &self.scripts {
                let _ = writeln!(text, "    {}", script.name);
            }
            text.push_str("  }\n");
        }
        if !self.processes.is_empty() {
            text.push_str("  track_process {\n");
            for process in &self.processes {
                let _ = writeln!(text, "    {}", process.name);
            }
            text.push_str("  }\n");
        }
        if !self.files.is_empty() {
            text.push_str("  track_file {\n");
            for file in &self.files {
                let _ = writeln!(text, "    {}", file.name);
            }
            text.push_str("  }\n");
        }
        if !self.track_interfaces.is_empty() {
            text.push_str("  track_interface {\n");
            for interface in &self.track_interfaces {
                let _ = writeln!(text, "    {interface}");
            }
            text.push_str("  }\n");
        }
        for line in &self.lines {
            let _ = writeln!(text, "  {line}");
        }
        text.push_str("  virtual_ipaddress {\n");
        for vip in &self.vips {
            let _ = writeln!(text, "    {vip}");
        }
        text.push_str("  }\n}\n");
    }

    fn advert(&self) -> Duration {
        Duration::from_millis(self.advert_ms)
    }

    /// RFC Skew_Time of this node as a backup of a master advertising
    /// every `advert_int` (RFC 3768 §6.1: (256 − priority) / 256 s for v2;
    /// RFC 5798 §6.1: ((256 − priority) × interval) / 256 for v3).
    pub fn skew(&self) -> Duration {
        let weight = 256 - u32::from(self.priority);
        match self.version {
            Version::V2 => Duration::from_secs(u64::from(weight)) / 256,
            Version::V3 => self.advert() * weight / 256,
        }
    }

    /// RFC Master_Down_Interval: 3 × advert interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        self.advert() * 3 + self.skew()
    }
}

/// advert_int as keepalived writes it: `1`, `0.5`.
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        let text = format!("{}.{:03}", ms / 1000, ms % 1000);
        text.trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_follow_the_rfcs() {
        let b = Instance::new("b", 51, 100, "10.99.0.100/24");
        assert_eq!(b.skew(), Duration::from_micros(609_375));
        assert_eq!(b.master_down_interval(), Duration::from_micros(3_609_375));
        let v3 = b.version(Version::V3).advert_ms(500);
        assert_eq!(
            v3.skew(),
            Duration::from_micros(304_687) + Duration::from_nanos(500)
        );
        assert_eq!(seconds(500), "0.5");
        assert_eq!(seconds(2000), "2");
    }

    #[test]
    fn renders_a_keepalived_instance() {
        let text = Instance::new("m", 51, 150, "10.99.0.100/24")
            .initial_master()
            .auth_pass("secret")
            .unicast(
                "10.99.0.1".parse().unwrap(),
                &["10.99.0.2".parse().unwrap()],
            )
            .render();
        appliance::config::load_str(
            std::path::Path::new("m.conf"),
            &text,
            appliance::config::Format::Keepalived,
        )
        .unwrap_or_else(|d| panic!("the appliance reads it: {d}"));
        insta::assert_snapshot!(text);
    }

    #[test]
    fn renders_tracking_preemption_and_a_sync_group() {
        let check = Script::new("chk_nginx", "test -e /run/nginx.ok").weight(-60);
        let other = Instance::new("m", 52, 150, "10.99.0.101/24")
            .named("VI_2")
            .track_script(check.clone())
            .track_script(Script::new("chk_gw", "/usr/local/sbin/chk_gw"));
        let text = Instance::new("m", 51, 150, "10.99.0.100/24")
            .nopreempt()
            .preempt_delay_ms(4500)
            .track_script(check)
            .track_interface("eth1")
            .sync_group(
                SyncGroup::new("G", vec![other])
                    .track_interface("eth2")
                    .notify("notify_master", "/bin/true master")
                    .notify("notify", "/bin/true"),
            )
            .render();
        appliance::config::load_str(
            std::path::Path::new("m.conf"),
            &text,
            appliance::config::Format::Keepalived,
        )
        .unwrap_or_else(|d| panic!("the appliance reads it: {d}"));
        insta::assert_snapshot!(text);
    }
}
