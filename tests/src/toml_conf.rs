//! The appliance's own TOML config for the netns tests' directors: one
//! node on `10.NET.0.0/24` with one VRRP instance (`VI_1` on `eth0`, VRID
//! NET, holding `10.NET.0.100/24`) and the nftables dataplane, to which a
//! test appends its virtual servers ([`virtual_server`]).

use std::fmt::Write as _;

/// One director's `[global]` and `[[vrrp_instance]]`.
#[derive(Clone, Debug)]
pub struct Director {
    /// `router_id`: the node's name in the timeline.
    pub name: String,
    /// The third octet of the LAN, also the VRID.
    pub net: u8,
    /// `"MASTER"` or `"BACKUP"`.
    pub state: &'static str,
    pub priority: u8,
    /// More `[global]` lines (`metrics_listen = "…"`).
    pub global: Vec<String>,
}

impl Director {
    /// A BACKUP of priority 100.
    pub fn new(name: &str, net: u8) -> Self {
        Self {
            name: name.to_string(),
            net,
            state: "BACKUP",
            priority: 100,
            global: Vec::new(),
        }
    }

    /// The same with `state` and `priority`.
    pub fn with(mut self, state: &'static str, priority: u8) -> Self {
        self.state = state;
        self.priority = priority;
        self
    }

    /// The config's text.
    pub fn render(&self) -> String {
        let Self {
            name,
            net,
            state,
            priority,
            global,
        } = self;
        let mut text = format!("[global]\nrouter_id = \"{name}\"\ndataplane = \"nftables\"\n");
        for line in global {
            let _ = writeln!(text, "{line}");
        }
        let _ = write!(
            text,
            r#"
[[vrrp_instance]]
name = "VI_1"
state = "{state}"
interface = "eth0"
virtual_router_id = {net}
priority = {priority}
advert_int = "1s"

[[vrrp_instance.virtual_ipaddress]]
address = "10.{net}.0.100/24"
"#
        );
        text
    }
}

/// A `virtual_server` on `service` (`10.NET.0.100:80`), `lb_kind NAT`,
/// `delay_loop 1s`, with `real_servers`: each an address and the TOML
/// lines of its `[[virtual_server.real_server]]` after `address`.
pub fn virtual_server(service: &str, lb_algo: &str, real_servers: &[(&str, &str)]) -> String {
    let mut text = format!(
        r#"
[[virtual_server]]
lb_algo = "{lb_algo}"
lb_kind = "NAT"
protocol = "TCP"
delay_loop = "1s"

[virtual_server.service]
address = "{service}"
"#
    );
    for (address, lines) in real_servers {
        let _ = write!(
            text,
            "\n[[virtual_server.real_server]]\naddress = \"{address}\"\n{lines}\n"
        );
    }
    text
}
