//! The `appliance` command line: its commands and flags, shared by the
//! binary and by what is generated from them (man pages, completions).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "appliance", version, about = "Highly available LVS director")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

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
        #[arg(long, value_name = "BYTES")]
        max_file_size: Option<u64>,
    },
    /// Show the running daemon's virtual servers, real servers and VRRP
    /// instances.
    Status {
        /// The daemon's status socket.
        #[arg(long, default_value = crate::daemon::status::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// As JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Check a config file (appliance TOML or keepalived.conf, detected).
    /// Prints `FILE:LINE:COL: message` for each problem.
    CheckConfig { file: PathBuf },
    /// Print a config file (TOML or keepalived.conf) as the appliance's TOML.
    Convert { file: PathBuf },
    /// Print each VRRP packet in a pcap file as one JSON object per line.
    Decode { file: PathBuf },
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
}

#[derive(Subcommand)]
pub enum IpvsCommand {
    /// Print the table as `ipvsadm -Ln` does.
    List {
        /// As JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Print the connection timeouts, or set those given.
    Timeout {
        #[arg(long)]
        tcp: Option<u32>,
        #[arg(long)]
        tcpfin: Option<u32>,
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
