//! The `appliance` command line: its commands and flags, shared by the
//! binary and by what is generated from them (man pages, completions).

pub mod docs;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "appliance",
    version,
    about = "Highly available LVS director",
    long_about = DESCRIPTION
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What `appliance --help` and appliance(8) say the program is.
const DESCRIPTION: &str = "\
Highly available LVS director: holds virtual IPs with VRRP (v2 and v3, IPv4 \
and IPv6, multicast and unicast), programs the kernel's IPVS load balancer \
(or nftables where the kernel has no IPVS) with the configured virtual \
servers, and health-checks their real servers (TCP, HTTP, HTTPS, scripts), \
taking a failed one out of the pool and back. It reads its own TOML config \
or an existing keepalived.conf.

'appliance run' is the daemon, which the systemd unit appliance.service \
runs; the other commands check and convert configs, ask the running daemon \
for its state and show or set the kernel's IPVS tables.";

#[derive(Subcommand)]
pub enum Command {
    /// Run the director: hold the VIPs of the configured VRRP instances.
    Run {
        /// Config file (appliance TOML or keepalived.conf, detected).
        #[arg(long, short)]
        config: PathBuf,
        /// Append the failover timeline to this file as JSON lines.
        #[arg(long)]
        timeline: Option<PathBuf>,
        /// Directory of the dataplane's record of the services it created.
        #[arg(long, default_value = "/run/appliance")]
        state_dir: PathBuf,
        /// The status socket (`appliance status`); STATE_DIR/appliance.sock
        /// by default.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Also append the log to this file (it always goes to stderr).
        #[arg(long)]
        log_file: Option<PathBuf>,
        /// Keep the log file and the timeline under BYTES each: a full one
        /// becomes FILE.1 (replacing the previous) and starts anew.
        #[arg(long, value_name = "BYTES", value_parser = parse_size)]
        max_file_size: Option<u64>,
        /// How log lines are written: `text` for people (plain under
        /// journald and in pipes, coloured on a terminal) or `json`, one
        /// object per event, for log collectors.
        #[arg(long, value_enum, default_value_t)]
        log_format: crate::logging::LogFormat,
    },
    /// Show the running daemon's VRRP instances (state, VIPs, time in
    /// state, last transition and why), virtual servers and real servers.
    Status {
        /// The daemon's status socket.
        #[arg(long, default_value = crate::daemon::status::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// As JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Make the running daemon read its config again and wait until it is
    /// applied; exit 1 with the reason when the daemon rejects it (it then
    /// keeps the running config). As SIGHUP, but synchronous; root only.
    Reload {
        /// The daemon's status socket.
        #[arg(long, default_value = crate::daemon::status::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// How long to wait for the outcome.
        #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Hand this director's MASTER instances (or INSTANCE, or the sync
    /// group of that name) over to their backups without a lost packet:
    /// they resign but keep the VIPs until a new master advertises, then
    /// step down (and do not preempt it back). Works with any VRRP peer,
    /// keepalived included. Waits for the outcome; root only.
    Switchover {
        /// A VRRP instance or sync group; all MASTER ones without it.
        instance: Option<String>,
        /// Hand over to this peer among several backups: the resignations
        /// go to it alone (it must be a `unicast_peer` of each instance),
        /// and another router taking over is an error.
        #[arg(long, value_name = "PEER")]
        to: Option<std::net::IpAddr>,
        /// The daemon's status socket.
        #[arg(long, default_value = crate::daemon::status::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Take this director out of its scale-out group: withdraw its BGP
    /// routes at once, wait until its announced services have no active
    /// connection or have seen no packet for 2 s (the routers moved their
    /// flows to the other directors), at most TIMEOUT, then stop the
    /// daemon. Waits for the end. Needs [bgp]. Root only.
    DrainDirector {
        /// The longest the drain waits for the traffic to end or move.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// The daemon's status socket.
        #[arg(long, default_value = crate::daemon::status::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Put a real server back in its pools (while its checks pass), ending
    /// a drain or a disable; an operator's weight stays. Root only.
    Enable {
        #[command(flatten)]
        target: RealServerArgs,
    },
    /// Take a real server out of its pools at once, whatever its checks
    /// find (they go on). Held across reloads until the config changes the
    /// server, and across restarts. Root only.
    Disable {
        #[command(flatten)]
        target: RealServerArgs,
    },
    /// Drain a real server: weight 0 (no new connections, its own go on),
    /// then out of its pools once it has no active connection left, or
    /// when TIMEOUT runs out. Waits for the end. Root only.
    Drain {
        #[command(flatten)]
        target: RealServerArgs,
        /// The longest a drain waits for the connections to end.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Give a real server a weight in place of the configured one, or
    /// `configured` to go back to it. Root only.
    Weight {
        #[command(flatten)]
        target: RealServerArgs,
        /// The weight (0 sends it no new connections), or `configured`.
        #[arg(value_parser = parse_weight)]
        weight: WeightArg,
    },
    /// Check a config file (appliance TOML or keepalived.conf, detected).
    /// Prints `FILE:LINE:COL: message` for each problem.
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
    /// Print a config file (TOML or keepalived.conf) as the appliance's TOML.
    Convert {
        /// The config file.
        file: PathBuf,
    },
    /// Print each VRRP packet in a pcap file as one JSON object per line.
    Decode {
        /// A capture, `tcpdump -w FILE vrrp` say.
        file: PathBuf,
    },
    /// The kernel's IPVS table, timeouts and sync daemons.
    Ipvs {
        #[command(subcommand)]
        command: IpvsCommand,
    },
    /// Program the kernel's load balancer from a config.
    Dataplane {
        #[command(subcommand)]
        command: DataplaneCommand,
    },
    /// Print the shell completion script for bash, zsh or fish.
    ///
    /// Load it into the running shell with
    /// `source <(appliance completions bash)`, or save it where the shell
    /// looks for completions (`make install` and the Debian package do).
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write the man pages: appliance.8 and one per command (`make install`
    /// runs it).
    #[command(hide = true)]
    Man {
        /// Directory to write them into (made if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// The real server an operator's command names.
#[derive(clap::Args)]
pub struct RealServerArgs {
    /// The real server, `ADDRESS:PORT` (`[ADDRESS]:PORT` for IPv6), in
    /// every virtual server that has it.
    pub real_server: std::net::SocketAddr,
    /// Only in this virtual server: `TCP 10.0.0.100:80`, `10.0.0.100:80`,
    /// `fwmark 5` or `group NAME` (any service of a group names the group).
    #[arg(long)]
    pub service: Option<String>,
    /// The daemon's status socket.
    #[arg(long, default_value = crate::daemon::status::DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

/// A weight an operator sets: a number, or the configured one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightArg(pub Option<u32>);

fn parse_weight(text: &str) -> Result<WeightArg, String> {
    if text == "configured" {
        return Ok(WeightArg(None));
    }
    text.parse::<u32>()
        .map(|w| WeightArg(Some(w)))
        .map_err(|_| format!("{text:?} is neither a weight (0 or more) nor `configured`"))
}

/// A shell `appliance completions` writes a script for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Subcommand)]
pub enum IpvsCommand {
    /// Print the table as `ipvsadm -Ln` does.
    List {
        /// As JSON instead (with every counter and rate).
        #[arg(long, conflicts_with_all = ["stats", "rate"])]
        json: bool,
        /// The counters, as `ipvsadm -Ln --stats`: connections, packets
        /// and bytes in and out since each service and real server was
        /// added.
        #[arg(long, conflicts_with = "rate")]
        stats: bool,
        /// The rates, as `ipvsadm -Ln --rate`: connections, packets and
        /// bytes per second, the kernel's estimate over a few seconds.
        #[arg(long)]
        rate: bool,
        /// Numbers in full, as `ipvsadm --exact` (else above 99,999,999
        /// in K, M, G or T).
        #[arg(long)]
        exact: bool,
    },
    /// Print the connection timeouts, or set those given.
    Timeout {
        /// Seconds an established TCP connection may stay idle.
        #[arg(long)]
        tcp: Option<u32>,
        /// Seconds a TCP connection is kept after its FIN.
        #[arg(long)]
        tcpfin: Option<u32>,
        /// Seconds a UDP flow may stay idle.
        #[arg(long)]
        udp: Option<u32>,
    },
    /// The connection sync daemon (keepalived's `lvs_sync_daemon`).
    SyncDaemon {
        #[command(subcommand)]
        command: SyncCommand,
    },
}

#[derive(Subcommand)]
pub enum SyncCommand {
    /// Print the running daemons as `ipvsadm -L --daemon` does.
    List,
    /// Start a daemon.
    Start {
        /// A master sends its connections, a backup receives them.
        #[arg(long, value_enum)]
        role: Role,
        /// Interface the sync messages use.
        #[arg(long)]
        interface: String,
        /// Sync id; master and backup must agree.
        #[arg(long, default_value_t = 0)]
        syncid: u8,
    },
    /// Stop the daemon of a role.
    Stop {
        /// The role whose daemon stops.
        #[arg(long, value_enum)]
        role: Role,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Role {
    Master,
    Backup,
}

impl From<Role> for crate::dataplane::ipvs::SyncRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Master => Self::Master,
            Role::Backup => Self::Backup,
        }
    }
}

#[derive(Subcommand)]
pub enum DataplaneCommand {
    /// Reconcile the kernel with the config's virtual servers once (IPVS,
    /// or nftables per the config's `dataplane` or when the kernel has no
    /// IPVS), print what changed, and exit.
    Apply {
        /// Config file (appliance TOML or keepalived.conf, detected).
        #[arg(long, short)]
        config: PathBuf,
        /// The record of the services the appliance owns.
        #[arg(long, default_value = crate::dataplane::reconcile::DEFAULT_STATE_PATH)]
        state: PathBuf,
    },
}

/// A size in bytes, with an optional binary suffix: `1048576`, `512K`,
/// `16M`, `1G`.
fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        other => return Err(format!("unknown unit '{other}': use K, M or G")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size (bytes, or a number with K, M or G)"))?;
    n.checked_mul(1 << shift)
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| format!("'{text}' is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("16T").unwrap_err().contains("'T'"));
        assert!(parse_size("M").is_err());
        assert!(parse_size("-1").is_err());
        assert!(
            parse_size("99999999999G")
                .unwrap_err()
                .contains("out of range")
        );
    }
}
