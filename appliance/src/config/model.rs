//! The appliance's native configuration model: what a config file means,
//! independent of the syntax it was written in. Serialised as TOML on disk;
//! the keepalived.conf importer builds the same structures.
//!
//! Every default is a named function citing keepalived's own default, so a
//! keepalived.conf without the keyword and a TOML file without the field
//! behave alike.

/// Track weights and the initial state are the state machine's own types.
pub use crate::vrrp::machine::{InitialState, Weight as TrackWeight};
use crate::vrrp::packet::{MULTICAST_V4, MULTICAST_V6};
use crate::vrrp::{Priority, Version, Vrid};
use appliance_core::dataplane::SchedFlags;
pub use appliance_core::dataplane::{Choice, Scheduler, Weight};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// A whole configuration: global settings, VRRP and IPVS (LVS) parts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A keepalived.conf that gives everything keepalived has words for;
    /// this TOML then holds only the appliance's own settings (TOML only,
    /// see `config::beside`). A loaded config never has it: it is the
    /// keepalived.conf's, merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalived_conf: Option<std::path::PathBuf>,
    /// keepalived's `global_defs`.
    #[serde(default)]
    pub global: Global,
    /// `vrrp_script` blocks: health scripts that VRRP instances track.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_script: Vec<VrrpScript>,
    /// `track_file` (or `vrrp_track_file`) blocks: files holding a number
    /// that VRRP instances track.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_file: Vec<TrackedFile>,
    /// `vrrp_track_process` blocks: processes whose running VRRP instances
    /// track.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_track_process: Vec<TrackedProcess>,
    /// `vrrp_sync_group` blocks: instances that change state together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_sync_group: Vec<SyncGroup>,
    /// `vrrp_instance` blocks: one virtual router each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_instance: Vec<VrrpInstance>,
    /// `virtual_server_group` blocks: sets of services that one
    /// `virtual_server group NAME` serves alike.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_server_group: Vec<VirtualServerGroup>,
    /// `virtual_server` blocks: IPVS services with their real servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_server: Vec<VirtualServer>,
    /// The host's own network settings (an appliance extension, TOML only):
    /// what a dedicated director would otherwise set with shell scripts.
    #[serde(default, skip_serializing_if = "Network::is_empty")]
    pub network: Network,
    /// `[bgp]`: anycast VIPs announced to routers (an appliance
    /// extension, TOML only), for several active directors behind ECMP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<Bgp>,
}

/// `[network]`: interfaces brought up with their addresses, routes and
/// sysctls, applied by `appliance run` before anything else, and again on
/// reload (additions only: what leaves the config stays until reboot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Kernel parameters by their dotted name (`net.ipv4.ip_forward`),
    /// written to /proc/sys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interface: Vec<NetworkInterface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<NetworkRoute>,
}

impl Network {
    pub fn is_empty(&self) -> bool {
        self.sysctl.is_empty() && self.interface.is_empty() && self.route.is_empty()
    }
}

/// `[bgp]`: the director announces each of `announce` to every peer while
/// it can serve it (the dataplane holds its services, at least one of
/// them has a real server to send to, the daemon is not stopping), and
/// withdraws it otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bgp {
    pub local_as: u32,
    /// The BGP identifier: an IPv4 address of this director.
    pub router_id: Ipv4Addr,
    /// The hold time offered (seconds; the session uses the lower of it
    /// and the peer's). Short by default: a dead director is withdrawn
    /// within it, as fast as the routers allow without BFD.
    #[serde(default = "default_bgp_hold_time")]
    pub hold_time: u16,
    /// The wait before connecting again after a failure.
    #[serde(default = "default_bgp_connect_retry", with = "humantime_serde")]
    pub connect_retry: Duration,
    /// The prefixes announced: the anycast VIPs, host routes (`/32`,
    /// `/128`) as a rule, each covering the address of a virtual server.
    pub announce: Vec<IpNet>,
    /// The next hops announced, per family; a session's own local
    /// address when not given (an IPv6 VIP over an IPv4 session needs
    /// `next_hop_ipv6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_ipv4: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_ipv6: Option<Ipv6Addr>,
    pub peer: Vec<BgpPeer>,
}

fn default_bgp_hold_time() -> u16 {
    9
}

fn default_bgp_connect_retry() -> Duration {
    Duration::from_secs(5)
}

/// A router the director peers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpPeer {
    pub address: IpAddr,
    pub remote_as: u32,
    #[serde(default = "default_bgp_port")]
    pub port: u16,
    /// The local address the session is made from (the kernel's choice
    /// when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
}

fn default_bgp_port() -> u16 {
    179
}

/// An interface to bring up, with its own (not virtual) addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInterface {
    pub name: String,
    /// Addresses with their prefix length (`10.0.0.2/24`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// A static route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkRoute {
    /// The destination prefix; `0.0.0.0/0` or `::/0` for a default route.
    pub destination: IpNet,
    /// The next hop; none for a route straight out of `interface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

/// Global settings (`global_defs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    /// Name of this machine in notifications; keepalived defaults to the
    /// host name, so `None` means "the host name".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// Recipients of e-mail alerts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notification_email: Vec<String>,
    /// Sender of e-mail alerts; keepalived defaults to `keepalived@<host>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_email_from: Option<String>,
    /// SMTP relay for e-mail alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_server: Option<SmtpServer>,
    /// How long to wait for the SMTP relay to answer, each step.
    #[serde(default = "default_smtp_connect_timeout", with = "humantime_serde")]
    pub smtp_connect_timeout: Duration,
    /// The name given in HELO to the relay; keepalived defaults to the
    /// host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_helo_name: Option<String>,
    /// Whether VRRP instances, sync groups, virtual and real servers that
    /// do not say send mail (keepalived's `smtp_alert`); unset, only real
    /// servers do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert: Option<bool>,
    /// The same for VRRP instances and sync groups, before `smtp_alert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert_vrrp: Option<bool>,
    /// The same for virtual and real servers, before `smtp_alert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert_checker: Option<bool>,
    /// No mail when a VRRP instance or sync group enters FAULT.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_email_faults: bool,
    /// Send the alert mail over TLS, upgraded with STARTTLS (RFC 3207)
    /// after EHLO; a relay that does not offer it gets no mail. An
    /// appliance extension (TOML only; keepalived speaks plain SMTP), off
    /// by default. Like SSL_GET, it accepts any certificate: it keeps the
    /// mail from passive eavesdroppers, not from a relay impersonated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub smtp_starttls: bool,
    /// VRRP version for instances that do not set `version`.
    #[serde(default = "default_vrrp_version")]
    pub vrrp_version: Version,
    /// The IPv4 multicast group of instances that do not set
    /// `mcast_dst_ip`; `None` means RFC 3768's 224.0.0.18.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_mcast_group4: Option<Ipv4Addr>,
    /// The IPv6 multicast group of instances that do not set
    /// `mcast_dst_ip`; `None` means RFC 5798's ff02::12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_mcast_group6: Option<Ipv6Addr>,
    /// keepalived's `vmac_prefix`: the virtual MAC interfaces of
    /// instances that do not name theirs are `<prefix>.<VRID>`; `None`
    /// means keepalived's "vrrp".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmac_prefix: Option<String>,
    /// Delay before the second burst of gratuitous ARPs / unsolicited NAs
    /// after becoming master (zero: no second burst).
    #[serde(default = "default_garp_master_delay", with = "humantime_serde")]
    pub vrrp_garp_master_delay: Duration,
    /// Gratuitous ARPs sent per burst after becoming master.
    #[serde(default = "default_garp_master_repeat")]
    pub vrrp_garp_master_repeat: u32,
    /// Interval of gratuitous ARP refreshes while master (zero: none).
    #[serde(default = "default_garp_master_refresh", with = "humantime_serde")]
    pub vrrp_garp_master_refresh: Duration,
    /// Gratuitous ARPs sent per refresh.
    #[serde(default = "default_garp_master_refresh_repeat")]
    pub vrrp_garp_master_refresh_repeat: u32,
    /// Delay before the second burst after a lower-priority advert was seen
    /// while master; `None` means `vrrp_garp_master_delay` (keepalived's
    /// behaviour).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub vrrp_garp_lower_prio_delay: Option<Duration>,
    /// Burst size after a lower-priority advert; `None` means
    /// `vrrp_garp_master_repeat` (keepalived's behaviour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_lower_prio_repeat: Option<u32>,
    /// Pause between gratuitous ARPs on one interface.
    #[serde(default = "default_garp_interval", with = "humantime_serde")]
    pub vrrp_garp_interval: Duration,
    /// Pause between unsolicited neighbour adverts on one interface.
    #[serde(default = "default_garp_interval", with = "humantime_serde")]
    pub vrrp_gna_interval: Duration,
    /// IPVS's connection sync daemon, its role following a VRRP instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    /// IPVS connection timeouts; unset ones stay as the kernel has them.
    #[serde(default, skip_serializing_if = "LvsTimeouts::is_unset")]
    pub lvs_timeouts: LvsTimeouts,
    /// The user scripts without a `user` of their own run as; keepalived's
    /// default without it: `keepalived_script` if that user exists, else
    /// the daemon's own (root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_user: Option<ScriptUser>,
    /// Refuse a script that someone other than root or its user could
    /// change, and one with no user but the daemon's own to fall back on
    /// (keepalived's default: off; an unsafe script only draws a warning).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_script_security: bool,
    /// The kernel load balancer to program (an appliance extension, TOML
    /// only); `None`: IPVS when the kernel has it, else nftables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<Choice>,
    /// Where to serve Prometheus metrics (`GET /metrics`), as
    /// `"address:port"` (an appliance extension, TOML only); `None`: no
    /// metrics endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Serve a read-only status page at `/` of `metrics_listen` (an
    /// appliance extension, TOML only): the instances, the virtual and real
    /// servers with their traffic, and the failover timeline as a chart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub status_page: bool,
    /// IPVS's `sloppy_tcp` (an appliance extension, TOML only): IPVS
    /// takes any TCP packet, not only a SYN, as the start of a connection
    /// it has no entry for. What a director of a scale-out group needs
    /// (README, "Scale out"): a flow the router moves to it from another
    /// director goes on, to the real server `mh` picks. Set once IPVS is
    /// up, at start and on reload; off by default (the kernel's default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lvs_sloppy_tcp: bool,
    /// A group whose members may read `appliance status` (an appliance
    /// extension, TOML only); `None`: only root and the daemon's user may
    /// use the status socket (mode 0600). Reloads stay theirs either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_group: Option<String>,
    /// A real server a reload removes from a virtual server that stays is
    /// drained first (an appliance extension, TOML only): kept at weight
    /// 0 until it has no active connection, at most this long, then
    /// removed. `None`: removed at once, as keepalived does.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub graceful_remove: Option<Duration>,
    /// keepalived's `notify_fifo`: a FIFO both the VRRP and the checker
    /// events are written to, one line each (see "Notify FIFOs" in
    /// docs/config.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fifo: Option<NotifyFifo>,
    /// keepalived's `vrrp_notify_fifo`: a FIFO for the VRRP events only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_notify_fifo: Option<NotifyFifo>,
    /// keepalived's `lvs_notify_fifo`: a FIFO for the checker events only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lvs_notify_fifo: Option<NotifyFifo>,
    /// keepalived's `fifo_write_vrrp_states_on_reload`: a reload writes
    /// every instance's and sync group's state to the VRRP FIFOs, changed
    /// or not (keepalived's default: off, only changes are written).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fifo_write_vrrp_states_on_reload: bool,
    /// keepalived's `vrrp_notify_priority_changes`: every instance (unless
    /// it or its sync group says otherwise) writes `INSTANCE "NAME"
    /// MASTER_PRIORITY P` (or `BACKUP_PRIORITY`) to the VRRP FIFOs when
    /// its effective priority changes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vrrp_notify_priority_changes: bool,
}

/// A notify FIFO: `notify_fifo PATH [USER [GROUP]]` with its
/// `notify_fifo_script SCRIPT [USER [GROUP]]` (and the same for `vrrp_`
/// and `lvs_`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFifo {
    /// The FIFO. The daemon makes it (mode 0644) when it does not exist
    /// and removes the one it made when it stops; an existing FIFO is
    /// used as it is.
    pub path: std::path::PathBuf,
    /// Owner of a FIFO the daemon makes; the scripts' default user
    /// (`script_user`, else `keepalived_script` if it exists, else the
    /// daemon's) when unset, as keepalived does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Group of a FIFO the daemon makes (with `user` only); the user's
    /// primary group when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A program started with the daemon, the FIFO's path appended to its
    /// arguments, to read the lines; it runs until the daemon stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<Command>,
}

impl Default for Global {
    fn default() -> Self {
        Self {
            router_id: None,
            notification_email: Vec::new(),
            notification_email_from: None,
            smtp_server: None,
            smtp_connect_timeout: default_smtp_connect_timeout(),
            smtp_helo_name: None,
            smtp_alert: None,
            smtp_alert_vrrp: None,
            smtp_alert_checker: None,
            no_email_faults: false,
            smtp_starttls: false,
            vrrp_version: default_vrrp_version(),
            vrrp_mcast_group4: None,
            vrrp_mcast_group6: None,
            vmac_prefix: None,
            vrrp_garp_master_delay: default_garp_master_delay(),
            vrrp_garp_master_repeat: default_garp_master_repeat(),
            vrrp_garp_master_refresh: default_garp_master_refresh(),
            vrrp_garp_master_refresh_repeat: default_garp_master_refresh_repeat(),
            vrrp_garp_lower_prio_delay: None,
            vrrp_garp_lower_prio_repeat: None,
            vrrp_garp_interval: default_garp_interval(),
            vrrp_gna_interval: default_garp_interval(),
            lvs_sync_daemon: None,
            lvs_timeouts: LvsTimeouts::default(),
            script_user: None,
            enable_script_security: false,
            dataplane: None,
            metrics_listen: None,
            status_page: false,
            lvs_sloppy_tcp: false,
            status_group: None,
            graceful_remove: None,
            notify_fifo: None,
            vrrp_notify_fifo: None,
            lvs_notify_fifo: None,
            fifo_write_vrrp_states_on_reload: false,
            vrrp_notify_priority_changes: false,
        }
    }
}

/// `script_user USER [GROUP]`: the default user of scripts. A GROUP
/// starting with `:` also gives the scripts the user's supplementary groups
/// (`:` alone: its primary group and those).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptUser {
    pub user: String,
    /// The user's primary group when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// `lvs_sync_daemon`: IPVS's connection sync daemon, run in the role the
/// named VRRP instance's state picks (as keepalived does): master while the
/// instance is MASTER, sending this director's connections; backup while
/// it is BACKUP or FAULT, receiving them, so that a takeover keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvsSyncDaemon {
    /// Interface the sync messages go out of and come in on.
    pub interface: String,
    /// The VRRP instance whose state picks the role.
    pub vrrp_instance: String,
    /// Sync id, the same on both directors; `None` means the instance's
    /// virtual router id (keepalived's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u8>,
    /// Largest sync message payload, 1..=65507 bytes; the kernel's default
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxlen: Option<u16>,
    /// UDP port, 1..=65535; the kernel's 8848 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Multicast TTL, 1..=255; the kernel's 1 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    /// Multicast group (IPv4 or IPv6); the kernel's 224.0.0.81 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<IpAddr>,
}

/// `lvs_timeouts tcp N tcpfin N udp N`: IPVS connection timeouts, whole
/// seconds up to 31 days (keepalived's LVS_MAX_TIMEOUT). Unset (or zero)
/// leaves the kernel's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvsTimeouts {
    /// Established TCP connections.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub tcp: Option<Duration>,
    /// TCP connections after a FIN.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub tcpfin: Option<Duration>,
    /// UDP flows.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub udp: Option<Duration>,
}

impl LvsTimeouts {
    /// keepalived's LVS_MAX_TIMEOUT: 31 days.
    pub const MAX: Duration = Duration::from_secs(86400 * 31);

    pub fn is_unset(&self) -> bool {
        self.tcp.is_none() && self.tcpfin.is_none() && self.udp.is_none()
    }
}

/// An SMTP relay: `smtp_server HOST [PORT]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpServer {
    /// IP address or host name.
    pub host: String,
    /// TCP port.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
}

/// A program to run: notify scripts, tracking scripts, MISC_CHECK. Never a
/// shell string: keepalived splits the configured text into words itself
/// (quotes and backslash escapes honoured) and execs them directly, and so
/// do we.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// The program (path or name searched in `PATH`).
    pub program: String,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// User to run it as; `global.script_user` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Group to run it as (with `user` only); defaults to the user's
    /// group. A leading `:` adds the user's supplementary groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A `vrrp_script`: a program run periodically whose exit status a VRRP
/// instance tracks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpScript {
    /// Name that `track_script` entries refer to.
    pub name: String,
    /// What to run (`script`, plus `user` for its user and group).
    pub script: Command,
    /// Time between runs.
    #[serde(default = "default_script_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Time after which a run counts as failed; `None` means the interval
    /// (keepalived's VRRP_SCRIPT_DT of 0 means "use the interval").
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub timeout: Option<Duration>,
    /// Priority adjustment while the script succeeds (positive) or fails
    /// (negative); 0 means a failure puts the instance in FAULT.
    #[serde(default)]
    pub weight: TrackWeight,
    /// Consecutive successes needed to count as up.
    #[serde(default = "default_rise_fall")]
    pub rise: u32,
    /// Consecutive failures needed to count as down.
    #[serde(default = "default_rise_fall")]
    pub fall: u32,
}

/// keepalived's `track_file` (`vrrp_track_file` before 2.1): a file
/// holding an integer, watched for changes. Each instance tracking it adds
/// value × weight to its priority (see `track_file` in docs/config.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackedFile {
    /// Name that `track_file` entries refer to.
    pub name: String,
    /// The file. A missing, empty or non-numeric file reads as 0, as in
    /// keepalived; its directory must exist.
    pub file: std::path::PathBuf,
    /// Multiplies the value (keepalived default 1); 0 means a non-zero
    /// value puts the instance in FAULT.
    #[serde(default = "default_file_weight")]
    pub weight: FileWeight,
    /// Negates the product (a zero value faults with weight 0).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reverse: bool,
    /// Write a value to the file at startup (keepalived's `init_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_file: Option<InitFile>,
}

/// `init_file [VALUE] [overwrite]`: the value written when the daemon
/// starts, if the file does not exist yet (or always, with `overwrite`;
/// a reload never overwrites).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitFile {
    /// keepalived's default: 0.
    #[serde(default)]
    pub value: i32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overwrite: bool,
}

/// A tracked file's or process's weight: keepalived's −254..=254 (one
/// more than a script's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i32", into = "i32")]
pub struct FileWeight(pub TrackWeight);

impl TryFrom<i32> for FileWeight {
    type Error = crate::vrrp::machine::WeightError;
    fn try_from(value: i32) -> Result<Self, Self::Error> {
        TrackWeight::for_file(value).map(Self)
    }
}

impl From<FileWeight> for i32 {
    fn from(w: FileWeight) -> i32 {
        i32::from(w.0)
    }
}

/// keepalived's `track_file` `weight` default: 1.
pub fn default_file_weight() -> FileWeight {
    FileWeight(TrackWeight::for_file(1).unwrap_or_default())
}

/// keepalived's `vrrp_track_process`: how many processes of a kind run.
/// The quorum holds while `quorum..=quorum_max` of them run (see
/// `vrrp_track_process` in docs/config.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackedProcess {
    /// Name that `track_process` entries refer to.
    pub name: String,
    /// The process name (`/proc/PID/comm`, at most 15 bytes), or with
    /// `full_command` or parameters the command's first word (`argv[0]`).
    pub process: String,
    /// Parameters the command line must have after `process`; any makes the
    /// match a full-command one, exact unless `param_match` says otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    /// How the parameters are compared; set, it makes the match a
    /// full-command one (with no `params`: the command has no parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_match: Option<ParamMatch>,
    /// Match the command line rather than the process name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full_command: bool,
    /// Added to the priority while the quorum holds (positive) or while it
    /// does not (negative); 0, keepalived's default, puts the instance in
    /// FAULT without the quorum.
    #[serde(default = "default_process_weight")]
    pub weight: FileWeight,
    /// Applies the weight the other way (with weight 0: FAULT while the
    /// quorum holds).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reverse: bool,
    /// Fewest matching processes (keepalived default 1, as a virtual
    /// server's `quorum`; range 1..=65535).
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    /// Most matching processes (0..=65535; keepalived's default: no
    /// bound). 0 means the quorum holds while none runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_max: Option<u32>,
    /// How long a quorum gained by a process starting waits before it
    /// counts (keepalived default 0, range 0.000001..=3600 s).
    #[serde(default = "zero", with = "humantime_serde")]
    pub fork_delay: Duration,
    /// How long a quorum lost by a process ending waits before it counts.
    #[serde(default = "zero", with = "humantime_serde")]
    pub terminate_delay: Duration,
}

/// keepalived's `param_match` (alone: `exact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamMatch {
    /// The parameters given and no more.
    Exact,
    /// The parameters given, the last one possibly longer in the process.
    Initial,
    /// The parameters given, possibly followed by more.
    Partial,
}

/// keepalived's `vrrp_track_process` `weight` default: 0 (its manual says
/// 1, its code leaves 0).
pub fn default_process_weight() -> FileWeight {
    FileWeight(TrackWeight::default())
}

/// VRRP authentication (VRRPv2 only). Only simple password authentication
/// is supported; IPsec AH is rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// The method: only `PASS`.
    pub auth_type: AuthType,
    /// The password as written. Only its first 8 bytes go on the wire
    /// (keepalived truncates longer ones the same way): see
    /// [`Authentication::wire_password`].
    pub auth_pass: String,
}

impl Authentication {
    /// The 8 authentication bytes of a VRRPv2 advert: the password's first
    /// 8 bytes, zero padded.
    pub fn wire_password(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        for (slot, byte) in out.iter_mut().zip(self.auth_pass.bytes()) {
            *slot = byte;
        }
        out
    }
}

/// VRRP authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthType {
    /// Simple text password (RFC 2338 type 1).
    #[serde(rename = "PASS")]
    Pass,
}

/// Address scope, as `ip address add ... scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Global,
    Site,
    Link,
    Host,
    Nowhere,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "global" | "0" => Some(Self::Global),
            "site" | "200" => Some(Self::Site),
            "link" | "253" => Some(Self::Link),
            "host" | "254" => Some(Self::Host),
            "nowhere" | "255" => Some(Self::Nowhere),
            _ => None,
        }
    }
}

/// A virtual (or excluded) address: `ADDR[/PREFIX] [dev IF] [scope S]
/// [label L]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualAddress {
    /// The address with its prefix length; keepalived defaults the prefix
    /// to /32 (IPv4) or /128 (IPv6) when none is written, and so does TOML.
    #[serde(with = "prefixed")]
    pub address: IpNet,
    /// Interface to add it to; defaults to the instance's interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Address label (`eth0:1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Address scope; the kernel's default (global) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// `ADDR[/PREFIX]` in TOML: the prefix may be omitted, as in
/// keepalived.conf.
mod prefixed {
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::net::IpAddr;

    pub(super) fn serialize<S: Serializer>(net: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text)
            .ok_or_else(|| D::Error::custom(format!("bad address '{text}': expected IP[/PREFIX]")))
    }

    /// `10.0.0.1`, `10.0.0.1/24`, `fe80::1/64`; no prefix means a host
    /// address.
    pub fn parse(text: &str) -> Option<IpNet> {
        match text.split_once('/') {
            Some((addr, prefix)) => IpNet::new(addr.parse().ok()?, prefix.parse().ok()?).ok(),
            None => text.parse::<IpAddr>().ok().map(IpNet::from),
        }
    }
}

pub use prefixed::parse as parse_prefixed;

/// A tracked `vrrp_script` reference, optionally overriding its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackScript {
    /// Name of a `vrrp_script`.
    pub name: String,
    /// Overrides the script's own weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<TrackWeight>,
}

/// A tracked `track_file` reference, optionally overriding its weight and
/// direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackFile {
    /// Name of a `track_file`.
    pub name: String,
    /// Overrides the file's own weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<FileWeight>,
    /// Overrides the file's own `reverse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<bool>,
}

/// A tracked `vrrp_track_process` reference, optionally overriding its
/// weight and direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackProcess {
    /// Name of a `vrrp_track_process`.
    pub name: String,
    /// Overrides the process's own weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<FileWeight>,
    /// Overrides the process's own `reverse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<bool>,
}

/// A tracked interface: its link going down affects the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackInterface {
    /// Interface name.
    pub name: String,
    /// Priority change while the link is down; `None` (keepalived's
    /// default of 0) means link down puts the instance in FAULT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<TrackWeight>,
}

/// A VRRP instance (`vrrp_instance`): one virtual router on one interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstance {
    /// Instance name, used by sync groups and in notifications.
    pub name: String,
    /// Initial state.
    #[serde(default)]
    pub state: InitialState,
    /// Interface the instance runs on.
    pub interface: String,
    /// Virtual router id, 1..=255.
    pub virtual_router_id: Vrid,
    /// Configured priority, 1..=255 (255 only for the address owner).
    #[serde(default = "default_priority")]
    pub priority: Priority,
    /// Advertisement interval.
    #[serde(default = "default_advert_int", with = "humantime_serde")]
    pub advert_int: Duration,
    /// VRRP version; `None` means the global `vrrp_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// VRRPv2 authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    /// Addresses the master holds and advertises.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_ipaddress: Vec<VirtualAddress>,
    /// Addresses the master holds but does not advertise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_ipaddress_excluded: Vec<VirtualAddress>,
    /// Tracked `vrrp_script`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_script: Vec<TrackScript>,
    /// Tracked interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_interface: Vec<TrackInterface>,
    /// Tracked files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_file: Vec<TrackFile>,
    /// Tracked processes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_process: Vec<TrackProcess>,
    /// Do not take over from a lower-priority master.
    #[serde(default)]
    pub nopreempt: bool,
    /// Wait this long after startup before preempting (keepalived default 0,
    /// range 0..=1000 s).
    #[serde(default = "zero", with = "humantime_serde")]
    pub preempt_delay: Duration,
    /// Source address of adverts (unicast or multicast).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unicast_src_ip: Option<IpAddr>,
    /// Send adverts to these peers by unicast instead of multicast.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peer: Vec<IpAddr>,
    /// The multicast group adverts go to and are taken from, instead of
    /// the global `vrrp_mcast_group4`/`vrrp_mcast_group6` (an IPv6 one
    /// must be link-local scoped, ff02::/16, as keepalived requires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_dst_ip: Option<IpAddr>,
    /// Force an IPv6 instance (deprecated in keepalived: the addresses
    /// decide the family).
    #[serde(default)]
    pub native_ipv6: bool,
    /// Ignore faults of the instance's own interface.
    #[serde(default)]
    pub dont_track_primary: bool,
    /// keepalived's `skip_check_adv_addr` (or the global
    /// `vrrp_skip_check_adv_addr`): adverts from a router already heard
    /// from are not checked for our VIPs, so a master reloaded with other
    /// VIPs keeps its backups until they are reloaded too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_check_adv_addr: bool,
    /// keepalived's `use_vmac`: the VIPs of the instance's family that go
    /// on its interface go instead on a macvlan interface made on it with
    /// the VRRP virtual MAC (00:00:5e:00:01:VRID), from which the adverts
    /// and gratuitous ARPs are sent too: hosts keep one MAC for the VIPs
    /// across a failover.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_vmac: bool,
    /// The name of the `use_vmac` interface (keepalived's `use_vmac NAME`);
    /// `None` means `<vmac_prefix>.<VRID>` (`vrrp.51`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmac_interface: Option<String>,
    /// keepalived's `vmac_xmit_base`: adverts go out and are taken on the
    /// instance's interface (with its own MAC), the VIPs stay on the
    /// virtual MAC interface.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vmac_xmit_base: bool,
    /// keepalived's `promote_secondaries`: the interface's
    /// `net.ipv4.conf.IF.promote_secondaries` is 1 while the instance runs
    /// (a virtual MAC interface has it always).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promote_secondaries: bool,
    /// Per-instance `garp_master_delay`; `None` means the global value.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub garp_master_delay: Option<Duration>,
    /// Per-instance `garp_master_repeat`; `None` means the global value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_repeat: Option<u32>,
    /// Per-instance `garp_master_refresh`; `None` means the global value.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub garp_master_refresh: Option<Duration>,
    /// Per-instance `garp_master_refresh_repeat`; `None` means the global.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_refresh_repeat: Option<u32>,
    /// Per-instance `garp_lower_prio_delay`; `None` means the global value.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub garp_lower_prio_delay: Option<Duration>,
    /// Per-instance `garp_lower_prio_repeat`; `None` means the global value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_lower_prio_repeat: Option<u32>,
    /// Run on becoming master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<Command>,
    /// Run on becoming backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<Command>,
    /// Run on entering FAULT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<Command>,
    /// Run when the instance stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_stop: Option<Command>,
    /// Run on any transition, with `INSTANCE NAME STATE PRIORITY` appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Command>,
    /// Run when, as master, it hears a lower priority's advert (a split
    /// brain healing); at most once per advert interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master_rx_lower_pri: Option<Command>,
    /// Write priority changes to the VRRP FIFOs; unset, the sync group's
    /// or else global `vrrp_notify_priority_changes` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_priority_changes: Option<bool>,
    /// Send e-mail on transitions; unset, `smtp_alert_vrrp` or else
    /// `smtp_alert` of global_defs decides (keepalived's default: no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert: Option<bool>,
}

impl VrrpInstance {
    /// The version this instance runs, given the global default.
    pub fn effective_version(&self, global: &Global) -> Version {
        self.version.unwrap_or(global.vrrp_version)
    }

    /// True if the instance is IPv6: its first virtual address is IPv6, or
    /// `native_ipv6` is set.
    pub fn is_ipv6(&self) -> bool {
        self.native_ipv6
            || self
                .virtual_ipaddress
                .first()
                .is_some_and(|v| matches!(v.address, IpNet::V6(_)))
    }

    /// The multicast group of its adverts: its own `mcast_dst_ip`, else the
    /// global group of its family, else the RFCs' (224.0.0.18, ff02::12).
    pub fn multicast_group(&self, global: &Global) -> IpAddr {
        self.mcast_dst_ip.unwrap_or(if self.is_ipv6() {
            IpAddr::V6(global.vrrp_mcast_group6.unwrap_or(MULTICAST_V6))
        } else {
            IpAddr::V4(global.vrrp_mcast_group4.unwrap_or(MULTICAST_V4))
        })
    }
}

/// keepalived's default `vmac_prefix`.
pub const DEFAULT_VMAC_PREFIX: &str = "vrrp";
/// The longest interface name the kernel takes (IFNAMSIZ less the NUL).
pub const MAX_IFNAME: usize = 15;

/// The name of each instance's `use_vmac` interface (`None` without
/// `use_vmac`), as keepalived's `create_vmac_name` makes them: the given
/// name, else `<prefix>.<VRID>`, else, when an earlier instance took that,
/// `<prefix>1.<VRID>`, `<prefix>2.<VRID>`...; the prefix is cut so the
/// name fits the kernel's 15 bytes.
pub fn vmac_names(config: &Config) -> Vec<Option<String>> {
    let prefix = config
        .global
        .vmac_prefix
        .as_deref()
        .unwrap_or(DEFAULT_VMAC_PREFIX);
    let given: Vec<&str> = config
        .vrrp_instance
        .iter()
        .filter_map(|i| i.vmac_interface.as_deref())
        .collect();
    let mut taken: Vec<String> = Vec::new();
    let mut names = Vec::new();
    for inst in &config.vrrp_instance {
        if !inst.use_vmac {
            names.push(None);
            continue;
        }
        let name = match &inst.vmac_interface {
            Some(name) => name.clone(),
            None => {
                let vrid = inst.virtual_router_id.get();
                let fit = |num: String| {
                    let tail = format!("{num}.{vrid}");
                    let keep = MAX_IFNAME.saturating_sub(tail.len());
                    let cut: String = prefix.chars().take(keep).collect();
                    format!("{cut}{tail}")
                };
                (0u32..)
                    .map(|n| fit(if n == 0 { String::new() } else { n.to_string() }))
                    .find(|n| !taken.contains(n) && !given.contains(&n.as_str()))
                    .unwrap_or_default()
            }
        };
        taken.push(name.clone());
        names.push(Some(name));
    }
    names
}

/// A `vrrp_sync_group`: instances that change state together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncGroup {
    /// Group name.
    pub name: String,
    /// Names of member `vrrp_instance`s.
    pub group: Vec<String>,
    /// Run when the group becomes master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<Command>,
    /// Run when the group becomes backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<Command>,
    /// Run when the group enters FAULT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<Command>,
    /// Run when the group stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_stop: Option<Command>,
    /// Run on any transition, with `GROUP NAME STATE PRIORITY` appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Command>,
    /// Its members' `notify_priority_changes` where they set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_priority_changes: Option<bool>,
    /// Send e-mail on transitions; unset as for an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert: Option<bool>,
}

/// IPVS forwarding method (`lb_kind` / `lvs_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LbKind {
    /// Masquerading: keepalived's default.
    #[default]
    #[serde(rename = "NAT")]
    Nat,
    /// Direct routing.
    #[serde(rename = "DR")]
    Dr,
    /// IP-in-IP tunnelling.
    #[serde(rename = "TUN")]
    Tun,
}

impl LbKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "NAT" => Some(Self::Nat),
            "DR" => Some(Self::Dr),
            "TUN" => Some(Self::Tun),
            _ => None,
        }
    }
}

/// Transport protocol of a virtual server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Protocol {
    /// The TOML default. keepalived.conf's is UDP (keepalived's own, with a
    /// warning), for a virtual server given by address.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }
}

/// What a virtual server listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Service {
    /// `virtual_server IP PORT`.
    Address(SocketAddr),
    /// `virtual_server fwmark MARK`.
    Fwmark(u32),
    /// `virtual_server group NAME`: every service of the
    /// [`VirtualServerGroup`] of that name, with the same settings and real
    /// servers, checked once.
    Group(String),
}

impl VirtualServer {
    /// The block as messages name it: `TCP 10.0.0.1:80`, `fwmark 5`,
    /// `group NAME`.
    pub fn name(&self) -> String {
        match &self.service {
            Service::Address(a) => format!("{} {a}", self.protocol.name()),
            Service::Fwmark(m) => format!("fwmark {m}"),
            Service::Group(name) => format!("group {name}"),
        }
    }
}

/// `virtual_server_group NAME { ... }`: kernel services that a
/// `virtual_server group NAME` programs alike (keepalived's "VSG").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualServerGroup {
    pub name: String,
    /// Address ranges and firewall marks, one kernel service per address
    /// (per mark).
    pub entries: Vec<GroupEntry>,
}

/// One line of a `virtual_server_group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GroupEntry {
    /// `IP PORT`, `IP-LAST PORT`, `IP-IP PORT` or `IP/PREFIX PORT`: a
    /// service on each address from `address` to `last`.
    Range(GroupRange),
    /// `fwmark MARK [inet|inet6]`.
    Fwmark(GroupFwmark),
}

/// Addresses `address..=last` on `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRange {
    pub address: IpAddr,
    /// The range's last address; `address` alone when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<IpAddr>,
    pub port: u16,
}

/// The most addresses one range may span: each is a kernel service.
pub const GROUP_RANGE_MAX: u128 = 65536;

impl GroupRange {
    /// The range's addresses in order; empty if it is not a valid range
    /// (validation says why).
    pub fn addresses(&self) -> Vec<IpAddr> {
        let last = self.last.unwrap_or(self.address);
        match (self.address, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let (a, b) = (u32::from(a), u32::from(b));
                if a > b || u128::from(b - a) >= GROUP_RANGE_MAX {
                    return Vec::new();
                }
                (a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect()
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let (a, b) = (u128::from(a), u128::from(b));
                if a > b || b - a >= GROUP_RANGE_MAX {
                    return Vec::new();
                }
                (a..=b).map(|n| IpAddr::V6(Ipv6Addr::from(n))).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// A firewall mark entry; its family, when unset, is the virtual
/// server's (its real servers').
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFwmark {
    pub fwmark: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<MarkFamily>,
}

/// `inet` or `inet6` after a group's `fwmark N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkFamily {
    Inet,
    Inet6,
}

/// An IPVS virtual service (`virtual_server`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualServer {
    /// Address and port, or firewall mark.
    pub service: Service,
    /// Interval between health checks.
    #[serde(default = "default_delay_loop", with = "humantime_serde")]
    pub delay_loop: Duration,
    /// Scheduler.
    #[serde(default = "default_lb_algo")]
    pub lb_algo: Scheduler,
    /// Forwarding method.
    #[serde(default)]
    pub lb_kind: LbKind,
    /// Client persistence; `None` or zero: no persistence.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub persistence_timeout: Option<Duration>,
    /// Persistence granularity as a prefix length (keepalived.conf writes
    /// an IPv4 netmask); `None`: per client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_granularity: Option<u8>,
    /// Transport protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// Server used while the quorum is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SocketAddr>,
    /// Minimum total weight of live real servers.
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    /// Tolerance around the quorum (flap damping).
    #[serde(default)]
    pub hysteresis: u32,
    /// Run when the quorum is gained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_up: Option<Command>,
    /// Run when the quorum is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_down: Option<Command>,
    /// Consider real servers down until a check succeeds.
    #[serde(default)]
    pub alpha: bool,
    /// Run quorum and down notifiers on shutdown.
    #[serde(default)]
    pub omega: bool,
    /// Default `Host:` for HTTP_GET / SSL_GET checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
    /// Suspend checks while the virtual address is absent.
    #[serde(default)]
    pub ha_suspend: bool,
    /// One-packet scheduling (UDP).
    #[serde(default)]
    pub ops: bool,
    /// The scheduler's flags (IPVS only; `sh` and `mh` give them a
    /// meaning): `port` (keepalived's `sh-port`/`mh-port`, `flag-2`)
    /// hashes the client's port too, `fallback` (`sh-fallback`/
    /// `mh-fallback`, `flag-1`) picks another real server when the
    /// hashed one is unavailable.
    #[serde(default, skip_serializing_if = "SchedFlags::is_none")]
    pub sched_flags: SchedFlags,
    /// Rewrite the client's address to the director's on the way to the
    /// real servers (SNAT/masquerade), for real servers that do not route
    /// back through the director. An appliance extension of the nftables
    /// dataplane (TOML only), off by default as in LVS-NAT.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub masquerade: bool,
    /// Hold this virtual server in the kernel only while the named VRRP
    /// instance is MASTER (removed on BACKUP and FAULT). By default (`None`)
    /// both directors keep their services whatever their VRRP state, as
    /// keepalived does, so a takeover needs no dataplane work. An appliance
    /// extension (TOML only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_when_master: Option<String>,
    /// Mail when it gains or loses its quorum; unset, `smtp_alert_checker`
    /// or else `smtp_alert` of global_defs decides (keepalived's default:
    /// no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert: Option<bool>,
    /// Real servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub real_server: Vec<RealServer>,
}

/// An IPVS destination (`real_server`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    /// Address and port.
    pub address: SocketAddr,
    /// IPVS weight.
    #[serde(default)]
    pub weight: Weight,
    /// On check failure set the weight to 0 instead of removing the server.
    #[serde(default)]
    pub inhibit_on_failure: bool,
    /// Upper connection threshold (IPVS `-x`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uthreshold: Option<u32>,
    /// Lower connection threshold (IPVS `-y`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lthreshold: Option<u32>,
    /// Run when checks declare the server up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_up: Option<Command>,
    /// Run when checks declare the server down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_down: Option<Command>,
    /// Health checks; all must pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check: Vec<Check>,
    /// keepalived's `FILE_CHECK`s: tracked files that take the server
    /// down or change its weight (they count among its checks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_check: Vec<FileCheck>,
    /// Mail when its checks take it down or up; unset,
    /// `smtp_alert_checker` or else `smtp_alert` of global_defs decides,
    /// and without either, yes (keepalived's default, unlike the others').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_alert: Option<bool>,
}

/// `FILE_CHECK { track_file NAME; weight W [reverse] }`: the real server
/// follows a `track_file`. With weight 0 a non-zero value (a zero one with
/// `reverse`) fails the check; otherwise value × weight (negated with
/// `reverse`) is added to the server's weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheck {
    /// Name of a `track_file`.
    pub track_file: String,
    /// keepalived's −2147483647..=2147483647; without it the file's own
    /// weight and `reverse` apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// With `weight`: negate the product.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reverse: bool,
}

/// A health check of a real server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Check {
    /// Connect over TCP.
    #[serde(rename = "TCP_CHECK")]
    Tcp(TcpCheck),
    /// HTTP GET of one or more URLs.
    #[serde(rename = "HTTP_GET")]
    HttpGet(HttpCheck),
    /// HTTPS GET of one or more URLs.
    #[serde(rename = "SSL_GET")]
    SslGet(HttpCheck),
    /// Run a program.
    #[serde(rename = "MISC_CHECK")]
    Misc(MiscCheck),
    /// ICMP or ICMPv6 echo.
    #[serde(rename = "PING_CHECK")]
    Ping(PingCheck),
    /// A UDP datagram, answered or at least not refused.
    #[serde(rename = "UDP_CHECK")]
    Udp(UdpCheck),
    /// A DNS query over UDP.
    #[serde(rename = "DNS_CHECK")]
    Dns(DnsCheck),
    /// An SMTP greeting and HELO.
    #[serde(rename = "SMTP_CHECK")]
    Smtp(SmtpCheck),
}

/// `SMTP_CHECK`: over TCP, the server's greeting must be 220 and its
/// answer to `HELO helo_name` 250; then QUIT (keepalived's check_smtp.c).
/// keepalived's deprecated `host { }` blocks are more SMTP_CHECKs of the
/// same real server (which keepalived makes of them too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpCheck {
    /// Address to connect to; default the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ip: Option<IpAddr>,
    /// Port to connect to; default the real server's (keepalived 2.2.7's;
    /// its older manual said 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    /// Source address of the check connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindto: Option<IpAddr>,
    /// Source port of the check connection; default any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_port: Option<u16>,
    /// Bound on the connection and on each reply.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Retries before a failure counts.
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause between retries.
    #[serde(default = "default_delay_before_retry", with = "humantime_serde")]
    pub delay_before_retry: Duration,
    /// Random delay before the first check; see [`TcpCheck::warmup`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub warmup: Option<Duration>,
    /// The name given in HELO.
    #[serde(default = "default_smtp_helo")]
    pub helo_name: String,
}

/// `TCP_CHECK`: a TCP connection must succeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// Address to connect to; default the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ip: Option<IpAddr>,
    /// Port to connect to; default the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    /// Source address of the check connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindto: Option<IpAddr>,
    /// Connection timeout.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Retries before a failure counts (`retry`, formerly `nb_get_retry`).
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause between retries.
    #[serde(default = "default_delay_before_retry", with = "humantime_serde")]
    pub delay_before_retry: Duration,
    /// Random delay before the first check, at most this long; `None` means
    /// up to `delay_loop` (keepalived's default), zero disables.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub warmup: Option<Duration>,
    /// Appliance extension (keepalived has no such keyword): check with a
    /// bare SYN instead of a connection. Up on the SYN-ACK (which the
    /// kernel then resets), down on a RST or when nothing answers within
    /// `connect_timeout`; the server never accepts a connection. Off by
    /// default: a full connect, as keepalived.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub half_open: bool,
}

/// `HTTP_GET` / `SSL_GET`: GET requests whose answers must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// Address to connect to; default the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ip: Option<IpAddr>,
    /// Port to connect to; default the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    /// Source address of the check connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindto: Option<IpAddr>,
    /// Connection timeout.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Retries before a failure counts (`retry`, formerly `nb_get_retry`).
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause between retries.
    #[serde(default = "default_http_delay_before_retry", with = "humantime_serde")]
    pub delay_before_retry: Duration,
    /// Random delay before the first check; see [`TcpCheck::warmup`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub warmup: Option<Duration>,
    /// URLs to fetch; all must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub url: Vec<Url>,
}

/// One URL of an HTTP check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Url {
    /// Request path.
    pub path: String,
    /// Expected statuses; `None` accepts any 2xx (keepalived's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<StatusCodes>,
    /// Expected MD5 of the body, 32 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A regular expression the body must match (Rust `regex` syntax,
    /// which keepalived's PCRE2 patterns mostly share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The body must *not* match `regex` (keepalived's `regex_no_match`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regex_no_match: bool,
    /// `Host:` header; default the virtual server's `virtualhost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
}

/// `MISC_CHECK`: a program must exit 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiscCheck {
    /// What to run (`misc_path`, plus `user`).
    pub misc_path: Command,
    /// Time after which the run counts as failed; `None` means the virtual
    /// server's `delay_loop` (keepalived's default).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub misc_timeout: Option<Duration>,
    /// Exit status 2..=255 sets the weight to status - 2.
    #[serde(default)]
    pub misc_dynamic: bool,
    /// Retries before a failure counts.
    #[serde(default = "default_misc_retry")]
    pub retry: u32,
    /// Pause between retries.
    #[serde(default = "default_delay_before_retry", with = "humantime_serde")]
    pub delay_before_retry: Duration,
    /// Random delay before the first check; see [`TcpCheck::warmup`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub warmup: Option<Duration>,
}

/// `PING_CHECK`: an ICMP (ICMPv6) echo request must be answered within
/// `connect_timeout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingCheck {
    /// Address to ping; default the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ip: Option<IpAddr>,
    /// Source address of the echo request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindto: Option<IpAddr>,
    /// How long to wait for the echo reply.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Retries before a failure counts.
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause between retries.
    #[serde(default = "default_delay_before_retry", with = "humantime_serde")]
    pub delay_before_retry: Duration,
    /// Random delay before the first check; see [`TcpCheck::warmup`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub warmup: Option<Duration>,
}

/// `UDP_CHECK`: a datagram is sent to the real server. Without
/// `require_reply` the server is up unless the send fails or an ICMP
/// error (port unreachable) comes back within `connect_timeout`; with it,
/// a reply must come in time and match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpCheck {
    /// Address to send to; default the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ip: Option<IpAddr>,
    /// Port to send to; default the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    /// Source address of the datagram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindto: Option<IpAddr>,
    /// How long to wait for a reply or an ICMP error.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Retries before a failure counts.
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause between retries.
    #[serde(default = "default_delay_before_retry", with = "humantime_serde")]
    pub delay_before_retry: Duration,
    /// Random delay before the first check; see [`TcpCheck::warmup`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub warmup: Option<Duration>,
    /// What to send, in hex (`"0a 1b2c"`); `None` sends keepalived's
    /// 32-byte filler (`default_udp_payload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Hex>,
    /// A reply is required; it must start with these bytes (hex, `X` a
    /// wildcard nibble) as far as both go. An empty pattern (keepalived's
    /// `require_reply` without argument) accepts any reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_reply: Option<ReplyPattern>,
    /// Shortest reply that matches `require_reply`'s bytes.
    #[serde(default)]
    pub min_reply_length: u16,
    /// Longest reply that matches `require_reply`'s bytes.
    #[serde(default = "default_max_reply_length")]
    pub max_reply_length: u16,
}

/// `DNS_CHECK`: a query for `name`'s `type` records, with recursion
/// desired, must be answered (with the query's id) with rcode NOERROR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsCheck {
    /// Address to query; default the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ip: Option<IpAddr>,
    /// Port to query; default the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    /// Source address of the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindto: Option<IpAddr>,
    /// How long to wait for the answer.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Retries before a failure counts.
    #[serde(default = "default_dns_retry")]
    pub retry: u32,
    /// Pause between retries; `None` means the virtual server's
    /// `delay_loop` (keepalived's default for DNS_CHECK).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub delay_before_retry: Option<Duration>,
    /// Random delay before the first check; see [`TcpCheck::warmup`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub warmup: Option<Duration>,
    /// The record type asked for (keepalived's `type`, which in TOML is
    /// the check's own tag).
    #[serde(default)]
    pub record_type: DnsType,
    /// The name asked about.
    #[serde(default)]
    pub name: DnsName,
}

/// The record types keepalived's DNS_CHECK asks for (check_dns.c).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsType {
    A,
    Ns,
    Cname,
    /// keepalived's default (DNS_DEFAULT_TYPE).
    #[default]
    Soa,
    Mx,
    Txt,
    Aaaa,
    Rrsig,
    Dnskey,
}

impl DnsType {
    /// Every type, for lookups by name.
    pub const ALL: [DnsType; 9] = [
        DnsType::A,
        DnsType::Ns,
        DnsType::Cname,
        DnsType::Soa,
        DnsType::Mx,
        DnsType::Txt,
        DnsType::Aaaa,
        DnsType::Rrsig,
        DnsType::Dnskey,
    ];

    /// The type's number in a query (RFC 1035, 3596, 4034).
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
            DnsType::Rrsig => 46,
            DnsType::Dnskey => 48,
        }
    }

    /// The type's mnemonic, as keepalived spells it.
    pub fn name(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Ns => "NS",
            DnsType::Cname => "CNAME",
            DnsType::Soa => "SOA",
            DnsType::Mx => "MX",
            DnsType::Txt => "TXT",
            DnsType::Aaaa => "AAAA",
            DnsType::Rrsig => "RRSIG",
            DnsType::Dnskey => "DNSKEY",
        }
    }

    /// The type named `text`, in any case (keepalived compares without).
    pub fn from_name(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(text))
    }
}

/// The statuses an HTTP check accepts, as keepalived's `status_code`
/// writes them: codes and ranges, `200-299 404`. In TOML an integer (one
/// code) or that text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StatusCodesRepr", into = "StatusCodesRepr")]
pub struct StatusCodes(Vec<(u16, u16)>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StatusCodesRepr {
    One(u16),
    Text(String),
}

/// Why a text is not [`StatusCodes`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP status '{0}' is not a code or a range (LOW-HIGH) within 100..=599")]
pub struct StatusCodesError(String);

impl StatusCodes {
    /// One code.
    pub fn one(code: u16) -> Self {
        Self(vec![(code, code)])
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&status))
    }

    /// These codes and `other`'s.
    pub fn merge(&mut self, other: Self) {
        self.0.extend(other.0);
    }
}

impl std::str::FromStr for StatusCodes {
    type Err = StatusCodesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |word: &str| StatusCodesError(word.to_string());
        let code = |word: &str, part: &str| {
            part.parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| bad(word))
        };
        let ranges = text
            .split_whitespace()
            .map(|word| {
                let (low, high) = match word.split_once('-') {
                    Some((low, high)) => (code(word, low)?, code(word, high)?),
                    None => (code(word, word)?, code(word, word)?),
                };
                if low > high {
                    return Err(bad(word));
                }
                Ok((low, high))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if ranges.is_empty() {
            return Err(bad(text));
        }
        Ok(Self(ranges))
    }
}

impl std::fmt::Display for StatusCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (low, high)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

impl TryFrom<StatusCodesRepr> for StatusCodes {
    type Error = StatusCodesError;

    fn try_from(repr: StatusCodesRepr) -> Result<Self, Self::Error> {
        match repr {
            StatusCodesRepr::One(code) => code.to_string().parse(),
            StatusCodesRepr::Text(text) => text.parse(),
        }
    }
}

impl From<StatusCodes> for StatusCodesRepr {
    fn from(codes: StatusCodes) -> Self {
        match codes.0.as_slice() {
            [(low, high)] if low == high => Self::One(*low),
            _ => Self::Text(codes.to_string()),
        }
    }
}

/// A domain name a DNS_CHECK asks about: dot-separated labels of 1 to 63
/// bytes, at most 255 bytes on the wire; `.` (the default, as keepalived's
/// empty DNS_DEFAULT_NAME) is the root. A trailing dot changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsName(String);

impl Default for DnsName {
    fn default() -> Self {
        Self(".".into())
    }
}

/// Why a text is not a [`DnsName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsNameError {
    #[error("DNS name '{0}' has an empty label")]
    EmptyLabel(String),
    #[error("DNS name '{0}' has a label longer than 63 bytes")]
    LongLabel(String),
    #[error("DNS name '{0}' is longer than 255 bytes")]
    TooLong(String),
}

impl DnsName {
    /// The labels, outermost last (none for the root).
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.split('.').filter(|label| !label.is_empty())
    }
}

impl TryFrom<String> for DnsName {
    type Error = DnsNameError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.is_empty() || text == "." {
            return Ok(Self::default());
        }
        let body = text.strip_suffix('.').unwrap_or(&text);
        let mut wire = 1;
        for label in body.split('.') {
            if label.is_empty() {
                return Err(DnsNameError::EmptyLabel(text));
            }
            if label.len() > 63 {
                return Err(DnsNameError::LongLabel(text));
            }
            wire += 1 + label.len();
        }
        if wire > 255 {
            return Err(DnsNameError::TooLong(text));
        }
        Ok(Self(text))
    }
}

impl From<DnsName> for String {
    fn from(name: DnsName) -> Self {
        name.0
    }
}

impl std::fmt::Display for DnsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Bytes written in hex as keepalived reads them (`read_hex_str`): pairs of
/// digits, spaces between bytes allowed, a lone digit before a space a
/// byte of its own. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hex(Vec<u8>);

impl Hex {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Why a text is not hex bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("'{0}' is not a hex digit")]
    Digit(char),
    #[error("no hex bytes given")]
    Empty,
}

/// Reads `text` as hex bytes, each with the mask of its wildcard bits
/// (an `X` or `x` nibble, where `wildcard` allows it).
fn parse_hex(text: &str, wildcard: bool) -> Result<Vec<(u8, u8)>, HexError> {
    let nibble = |c: char| match c.to_digit(16) {
        Some(v) => Ok((v as u8, 0)),
        None if wildcard && c.eq_ignore_ascii_case(&'x') => Ok((0, 0x0f)),
        None => Err(HexError::Digit(c)),
    };
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' || c == '\t' {
            continue;
        }
        let (mut value, mut mask) = nibble(c)?;
        if let Some(&next) = chars.peek()
            && next != ' '
            && next != '\t'
        {
            chars.next();
            let (low, low_mask) = nibble(next)?;
            value = value << 4 | low;
            mask = mask << 4 | low_mask;
        }
        out.push((value, mask));
    }
    Ok(out)
}

/// Writes bytes back as hex pairs separated by spaces.
fn write_hex(bytes: impl Iterator<Item = (u8, u8)>) -> String {
    let nibble = |value: u8, mask: u8| {
        if mask != 0 {
            'X'
        } else {
            char::from_digit(u32::from(value), 16).unwrap_or('0')
        }
    };
    let pairs: Vec<String> = bytes
        .map(|(v, m)| {
            [nibble(v >> 4, m >> 4), nibble(v & 0x0f, m & 0x0f)]
                .into_iter()
                .collect()
        })
        .collect();
    pairs.join(" ")
}

impl std::str::FromStr for Hex {
    type Err = HexError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes: Vec<u8> = parse_hex(text, false)?
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        if bytes.is_empty() {
            return Err(HexError::Empty);
        }
        Ok(Self(bytes))
    }
}

impl TryFrom<String> for Hex {
    type Error = HexError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Hex> for String {
    fn from(hex: Hex) -> Self {
        write_hex(hex.0.into_iter().map(|b| (b, 0)))
    }
}

/// What a UDP_CHECK reply must start with: bytes, each with a mask of
/// the bits that may be anything (hex `X` nibbles). Empty: any reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReplyPattern(Vec<(u8, u8)>);

impl ReplyPattern {
    /// Whether `reply` matches: every byte that both have agrees outside
    /// the wildcard bits (keepalived compares only the shorter length).
    /// A pattern with bytes also bounds the reply's length to
    /// `min..=max`, as keepalived's does.
    pub fn matches(&self, reply: &[u8], min: u16, max: u16) -> bool {
        if self.0.is_empty() {
            return true;
        }
        if reply.len() < usize::from(min) || reply.len() > usize::from(max) {
            return false;
        }
        self.0
            .iter()
            .zip(reply)
            .all(|(&(value, wild), &got)| (value ^ got) & !wild == 0)
    }

    /// Whether the pattern has bytes to compare (else any reply does).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::str::FromStr for ReplyPattern {
    type Err = HexError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_hex(text, true).map(Self)
    }
}

impl TryFrom<String> for ReplyPattern {
    type Error = HexError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<ReplyPattern> for String {
    fn from(pattern: ReplyPattern) -> Self {
        write_hex(pattern.0.into_iter())
    }
}

/// keepalived `smtp_connect_timeout` default: 30 s.
pub fn default_smtp_connect_timeout() -> Duration {
    Duration::from_secs(30)
}

/// keepalived `smtp_server` port default: 25.
pub fn default_smtp_port() -> u16 {
    25
}

/// keepalived `vrrp_version` default: 2.
pub fn default_vrrp_version() -> Version {
    Version::V2
}

/// keepalived `vrrp_garp_master_delay` default: 5 s.
pub fn default_garp_master_delay() -> Duration {
    Duration::from_secs(5)
}

/// keepalived `vrrp_garp_master_repeat` default: 5.
pub fn default_garp_master_repeat() -> u32 {
    5
}

/// keepalived `vrrp_garp_master_refresh` default: 0 (no refresh).
pub fn default_garp_master_refresh() -> Duration {
    Duration::ZERO
}

/// keepalived `vrrp_garp_master_refresh_repeat` default: 1.
pub fn default_garp_master_refresh_repeat() -> u32 {
    1
}

/// keepalived `vrrp_garp_interval` and `vrrp_gna_interval` default: 0.
pub fn default_garp_interval() -> Duration {
    Duration::ZERO
}

/// keepalived `vrrp_script` `interval` default: 1 s (VRRP_SCRIPT_DI).
pub fn default_script_interval() -> Duration {
    Duration::from_secs(1)
}

/// keepalived `vrrp_script` `rise` and `fall` default: 1.
pub fn default_rise_fall() -> u32 {
    1
}

/// keepalived `priority` default: 100.
pub fn default_priority() -> Priority {
    Priority::DEFAULT
}

/// keepalived `advert_int` default: 1 s.
pub fn default_advert_int() -> Duration {
    Duration::from_secs(1)
}

/// keepalived `preempt_delay` default: 0.
pub fn zero() -> Duration {
    Duration::ZERO
}

/// keepalived `delay_loop` default: 60 s.
pub fn default_delay_loop() -> Duration {
    Duration::from_secs(60)
}

/// keepalived's scheduler when `lb_algo` is absent: wlc (IPVS_DEF_SCHED).
pub fn default_lb_algo() -> Scheduler {
    Scheduler::KEEPALIVED_DEFAULT
}

/// keepalived `quorum` default: 1.
pub fn default_quorum() -> u32 {
    1
}

/// keepalived's SMTP_CHECK `helo_name` default (`SMTP_DEFAULT_HELO`).
pub fn default_smtp_helo() -> String {
    "smtpchecker.keepalived.org".into()
}

/// keepalived checker `connect_timeout` default: 5 s.
pub fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

/// keepalived checker `retry` default: 1 (TCP_CHECK, HTTP_GET, SSL_GET).
pub fn default_retry() -> u32 {
    1
}

/// keepalived MISC_CHECK `retry` default: 0 (its checker->default_retry).
pub fn default_misc_retry() -> u32 {
    0
}

/// keepalived DNS_CHECK `retry` default: 3 (DNS_DEFAULT_RETRY).
pub fn default_dns_retry() -> u32 {
    3
}

/// keepalived UDP_CHECK `max_reply_length` default: 255.
pub fn default_max_reply_length() -> u16 {
    255
}

/// keepalived checker `delay_before_retry` default: 1 s.
pub fn default_delay_before_retry() -> Duration {
    Duration::from_secs(1)
}

/// keepalived's HTTP_GET and SSL_GET `delay_before_retry` default: 3 s
/// (check_http.c sets it on the checker it allocates).
pub fn default_http_delay_before_retry() -> Duration {
    Duration::from_secs(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keepalived's status_code_handler: codes and LOW-HIGH ranges within
    /// 100..=599; one code is an integer in TOML, more are text.
    #[test]
    fn status_codes_read_as_keepalived_does_and_round_trip() {
        let codes: StatusCodes = "200-299 404".parse().unwrap();
        assert!(codes.contains(200) && codes.contains(299) && codes.contains(404));
        assert!(!codes.contains(300) && !codes.contains(403));
        for bad in [
            "",
            "600",
            "99",
            "300-200",
            "2xx",
            "200-",
            "-200",
            "200-300-400",
        ] {
            assert!(bad.parse::<StatusCodes>().is_err(), "{bad:?}");
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct T {
            s: StatusCodes,
        }
        let one: T = toml::from_str("s = 204").unwrap();
        assert_eq!(one.s, StatusCodes::one(204));
        assert_eq!(toml::to_string(&one).unwrap(), "s = 204\n");
        let more: T = toml::from_str("s = \"200-299 404\"").unwrap();
        assert_eq!(more.s, codes);
        assert_eq!(toml::to_string(&more).unwrap(), "s = \"200-299 404\"\n");
        let err = toml::from_str::<T>("s = 700").unwrap_err().to_string();
        assert!(err.contains("HTTP status '700'"), "{err}");
    }

    /// keepalived's read_hex_str: pairs of digits, spaces between bytes,
    /// a lone digit (before a space or at the end) a byte of its own.
    #[test]
    fn hex_reads_as_keepalived_does() {
        let bytes = |text: &str| text.parse::<Hex>().map(|h| h.bytes().to_vec());
        assert_eq!(bytes("0a1B2"), Ok(vec![0x0a, 0x1b, 0x02]));
        assert_eq!(bytes("1 23\t4"), Ok(vec![0x01, 0x23, 0x04]));
        assert_eq!(bytes("  "), Err(HexError::Empty));
        assert_eq!(bytes("0x01"), Err(HexError::Digit('x')));
        assert_eq!(String::from(Hex(vec![0x0a, 0xff])), "0a ff");

        let pattern: ReplyPattern = "cA X1 2x".parse().unwrap();
        assert_eq!(String::from(pattern.clone()), "ca X1 2X");
        assert!(pattern.matches(&[0xca, 0x71, 0x2f], 0, 255));
        assert!(!pattern.matches(&[0xca, 0x72, 0x2f], 0, 255));
        assert!(pattern.matches(&[0xca], 0, 255), "as far as both go");
        assert!(!pattern.matches(&[0xca], 2, 255), "shorter than min");
        assert!(
            ReplyPattern::default().matches(&[], 9, 1),
            "empty: any reply"
        );
    }

    #[test]
    fn dns_names_have_no_empty_or_long_labels() {
        let name = |text: &str| DnsName::try_from(text.to_string());
        assert_eq!(name("").unwrap(), DnsName::default());
        assert_eq!(name(".").unwrap().labels().count(), 0);
        let labels = |text: &str| {
            name(text)
                .unwrap()
                .labels()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(labels("www.example.com."), ["www", "example", "com"]);
        assert!(matches!(name(".com"), Err(DnsNameError::EmptyLabel(_))));
        assert!(matches!(name("a..b"), Err(DnsNameError::EmptyLabel(_))));
        assert!(matches!(
            name(&"a".repeat(64)),
            Err(DnsNameError::LongLabel(_))
        ));
        let long = vec!["a".repeat(63); 4].join(".");
        assert!(matches!(name(&long), Err(DnsNameError::TooLong(_))));
        assert_eq!(DnsType::from_name("aaaa"), Some(DnsType::Aaaa));
        assert_eq!(DnsType::from_name("PTR"), None);
    }
}
