//! keepalived.conf text for one VRRP instance, as both the appliance and
//! Debian's keepalived read it, and the RFC timers the tests expect of it
//! (computed here from the RFC formulas, independently of the appliance's
//! own code, so a wrong formula there fails the tests).

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
        }
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

    /// The config file's text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(text, "global_defs {{\n  router_id {}", self.router_id);
        // One gratuitous burst at takeover and one a second later, as in
        // keepalived's default; stated so both implementations agree.
        text.push_str("  vrrp_garp_master_delay 1\n}\n");
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
        text.push_str("  virtual_ipaddress {\n");
        for vip in &self.vips {
            let _ = writeln!(text, "    {vip}");
        }
        text.push_str("  }\n}\n");
        text
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
}
