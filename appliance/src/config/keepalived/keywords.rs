//! keepalived's keywords, as its v2.2.7 parsers install them (global,
//! vrrp, check, bfd, trackers), and what the appliance does with each:
//! supported (read into the model), accepted as a documented no-op, or
//! refused with what to do instead. The importer asks this table before
//! its own `match`es, so nothing it accepts is missing here; the coverage
//! table in docs/config.md is printed from it.

use super::parser::Statement;
use crate::config::diag::{Diagnostic, SourceMap};
use Support::{NoOp, Refused, Yes};

/// What the appliance does with a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Support {
    /// Read into the model and acted on.
    Yes,
    /// Read and without effect, for the reason given; loading warns.
    NoOp(&'static str),
    /// An error saying what to do instead.
    Refused(&'static str),
}

/// One keyword in one block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Keyword {
    /// The enclosing blocks, outermost first, as `virtual_server >
    /// real_server > TCP_CHECK`; empty at top level.
    pub(crate) block: &'static str,
    pub(crate) name: &'static str,
    pub(crate) support: Support,
}

const fn k(block: &'static str, name: &'static str, support: Support) -> Keyword {
    Keyword {
        block,
        name,
        support,
    }
}

const ADVTUNE: Support = Refused("the appliance follows RFC 5798's timers");
const BFD: Support =
    Refused("a VRRP instance's advert timeout or a real server's check detects the failure");
const BIND: Support = Refused("the check binds its source address only (`bindto`)");
const CHKALPHA: Support = Refused("set `alpha` on the virtual server");
const CHKDELAY: Support = Refused("set `delay_loop` on the virtual server");
const CHKMARK: Support = Refused("checks connect to the real server's address directly");
const FLUSH: Support = Refused(
    "the appliance removes only what it programmed and keeps its table across restarts (see `graceful_remove`)",
);
const GARPGROUP: Support =
    Refused("the appliance sends gratuitous ARPs per instance (`garp_master_*`)");
const GARPX: Support =
    Refused("gratuitous ARPs and NAs go out on the instance's interface (and each VIP's `dev`)");
const HTTPX: Support =
    Refused("the check sends an HTTP/1.0 GET (with SNI for SSL_GET) and retries on `retry`");
const IFACE: Support = Refused(
    "name the interface in each `vrrp_instance`; interfaces that come and go are followed by netlink without the option",
);
const INITFAIL: Support = Refused("a tracked script's first result decides its state");
const LINKBEAT: Support = NoOp(
    "the appliance follows links by netlink, keepalived's default, which sees the carrier changes that polling would",
);
const LOGFAIL: Support = Refused("every failure is logged and recorded in the timeline already");
const LOGVRID: Support = Refused(
    "adverts for unknown VRIDs are always counted (`appliance_vrrp_adverts_dropped_total`)",
);
const MISCCONN: Support = Refused(
    "a MISC_CHECK opens no connection of its own: give the address to `misc_path`'s arguments",
);
const NETNS: Support =
    Refused("run the appliance inside the namespace instead (`ip netns exec NS appliance run`)");
const NFT: Support = Refused(
    "the appliance manages its own nftables table (`dataplane = \"nftables\"`); keepalived's iptables/nftables rules for VIPs are not made",
);
const NOACCEPT: Support =
    Refused("the appliance always accepts traffic to its VIPs (see vrrp_strict in docs/config.md)");
const NOTIFYX: Support = Refused(
    "a deleted instance is notified as FAULT, as keepalived does by default; `notify_stop` runs as it goes",
);
const PINGPORT: Support = NoOp("ICMP has no port: a PING_CHECK pings `connect_ip`");
const PERSIST: Support = Refused("only IPVS's default persistence engine is supported");
const PROC: Support = Refused(
    "the appliance is one process; set its scheduling and limits in its service unit (`Nice=`, `CPUAffinity=`, `LimitRTTIME=`)",
);
const REGEXX: Support = Refused("`regex` uses Rust regex syntax on the first MiB of the body");
const RELOAD: Support =
    Refused("reload with `appliance reload` (or SIGHUP); it checks the file before applying it");
const ROUTES: Support =
    Refused("configure routes and rules with the system's network setup (TOML `[network]`)");
const RSINIT: Support = Refused("notify_up/notify_down run on changes after start only");
const RSMETHOD: Support =
    Refused("every real server is forwarded its virtual server's way (`lb_kind`)");
const FLAG3: Support =
    Refused("no scheduler of the kernel gives it a meaning: sh and mh use flag-1 and flag-2");
const SNMP: Support =
    Refused("read the Prometheus metrics (`metrics_listen`) or `appliance status --json`");
const SORRYX: Support = Refused(
    "the sorry server is forwarded the virtual server's way and taken out when a real server comes back",
);
const SRCTRACK: Support =
    Refused("the instance's source address is `unicast_src_ip` or its interface's first address");
const SSL: Support = Refused("SSL_GET presents no client certificate");
const STARTDELAY: Support =
    Refused("start the service later (systemd `ExecStartPre=/bin/sleep N`)");
const STARTUP: Support =
    Refused("run it from the service unit instead (`ExecStartPre=`, `ExecStopPost=`)");
const SYNCLEGACY: Support = Refused("use `lvs_sync_daemon IF INSTANCE` in global_defs");
const TRACKGROUP: Support =
    Refused("list the tracked scripts and interfaces in each `vrrp_instance`");
const TTL: Support =
    Refused("unicast adverts go out with TTL 255 and are checked for it (RFC 5798)");
const UNICAST: Support = Refused(
    "the appliance accepts unicast adverts only from the listed `unicast_peer`s, with the RFC's TTL check",
);
const UPDOWN: Support = Refused("a tracked interface's change is acted on at once");
const VMACADDR: Support = Refused(
    "not yet; VIPs on another interface (`dev`) or of the other family keep that interface's MAC: give them an instance of their own with `use_vmac`",
);
const VMACGARP: Support = Refused(
    "the master's adverts go out from the virtual MAC and keep the switches' tables; for periodic gratuitous ARPs use `garp_master_refresh`",
);
const IPVLAN: Support = Refused("not yet; `use_vmac` makes a macvlan with the virtual MAC");
const VRF: Support = Refused("run the appliance in the VRF's context (`ip vrf exec`)");
const VSFAMILY: Support = Refused(
    "not needed: a virtual server's family follows its address (a fwmark service's, its real servers')",
);
const VSHOST: Support = Refused("set `virtualhost` on the virtual server or in the check's `url`");
const NOOP_SYNCWEIGHT: Support = NoOp(
    "the appliance always keeps the weights of a sync group member's tracked objects, as keepalived does with this option",
);
const NOOP_UNICAST_SRC: Support =
    NoOp("the appliance always takes unicast adverts only from the instance's `unicast_peer`s");
const NOOP_ACCEPT: Support =
    NoOp("the appliance always accepts traffic to its VIPs (see vrrp_strict in docs/config.md)");
const NOOP_BUFS: Support = NoOp("the appliance sizes its netlink and socket buffers itself");
const NOOP_DEBUG: Support = NoOp("log detail is set by `RUST_LOG`");
const NOOP_FAMILY: Support = NoOp("an instance's address family follows its addresses");
const NOOP_CHKMAIL: Support = NoOp(
    "the appliance mails only when a real server itself goes up or down, which is what it asks",
);
const NOOP_HASHED: Support =
    NoOp("keepalived 2.2.7 reads it and sets nothing: the kernel hashes every service itself");
const NOOP_PROCNAME: Support = NoOp("the appliance is one process; its name is `appliance`");

/// Every keyword of keepalived v2.2.7, block by block, and a few older
/// names the importer still reads.
pub(crate) const KEYWORDS: &[Keyword] = &[
    k("", "linkbeat_use_polling", LINKBEAT),
    k("", "net_namespace", NETNS),
    k("", "net_namespace_ipvs", NETNS),
    k("", "namespace_with_ipsets", NETNS),
    k("", "use_pid_dir", NETNS),
    k("", "instance", NETNS),
    k("", "child_wait_time", PROC),
    k("", "global_defs", Yes),
    k("global_defs", "process_names", NOOP_PROCNAME),
    k("global_defs", "process_name", NOOP_PROCNAME),
    k("global_defs", "vrrp_process_name", NOOP_PROCNAME),
    k("global_defs", "checker_process_name", NOOP_PROCNAME),
    k("global_defs", "lvs_process_name", NOOP_PROCNAME),
    k("global_defs", "bfd_process_name", NOOP_PROCNAME),
    k("global_defs", "router_id", Yes),
    k("global_defs", "notification_email_from", Yes),
    k("global_defs", "smtp_server", Yes),
    k("global_defs", "smtp_helo_name", Yes),
    k("global_defs", "smtp_connect_timeout", Yes),
    k("global_defs", "notification_email", Yes),
    k("global_defs", "smtp_alert", Yes),
    k("global_defs", "startup_script", STARTUP),
    k("global_defs", "startup_script_timeout", STARTUP),
    k("global_defs", "shutdown_script", STARTUP),
    k("global_defs", "shutdown_script_timeout", STARTUP),
    k("global_defs", "max_auto_priority", PROC),
    k("global_defs", "min_auto_priority_delay", PROC),
    k("global_defs", "smtp_alert_vrrp", Yes),
    k("global_defs", "smtp_alert_checker", Yes),
    k("global_defs", "checker_log_all_failures", LOGFAIL),
    k("global_defs", "dynamic_interfaces", IFACE),
    k("global_defs", "no_email_faults", Yes),
    k("global_defs", "default_interface", IFACE),
    k(
        "global_defs",
        "disable_local_igmp",
        NoOp(
            "implied where it matters: link-local IGMP reports are off while a `use_vmac` interface exists",
        ),
    ),
    k("global_defs", "lvs_timeouts", Yes),
    k("global_defs", "lvs_flush", FLUSH),
    k("global_defs", "lvs_flush_on_stop", FLUSH),
    k("global_defs", "lvs_flush_onstop", FLUSH),
    k("global_defs", "lvs_sync_daemon", Yes),
    k("global_defs", "vrrp_mcast_group4", Yes),
    k("global_defs", "vrrp_mcast_group6", Yes),
    k("global_defs", "vrrp_garp_master_delay", Yes),
    k("global_defs", "vrrp_garp_master_repeat", Yes),
    k("global_defs", "vrrp_garp_master_refresh", Yes),
    k("global_defs", "vrrp_garp_master_refresh_repeat", Yes),
    k("global_defs", "vrrp_garp_lower_prio_delay", Yes),
    k("global_defs", "vrrp_garp_lower_prio_repeat", Yes),
    k("global_defs", "vrrp_down_timer_adverts", ADVTUNE),
    k("global_defs", "vrrp_garp_interval", Yes),
    k("global_defs", "vrrp_gna_interval", Yes),
    k("global_defs", "vrrp_min_garp", GARPGROUP),
    k("global_defs", "vrrp_garp_extra_if", GARPX),
    k("global_defs", "vrrp_vmac_garp_intvl", VMACGARP),
    k("global_defs", "vrrp_lower_prio_no_advert", ADVTUNE),
    k("global_defs", "vrrp_higher_prio_send_advert", ADVTUNE),
    k("global_defs", "vrrp_version", Yes),
    k("global_defs", "vrrp_iptables", NFT),
    k("global_defs", "vrrp_ipsets", NFT),
    k("global_defs", "nftables", NFT),
    k("global_defs", "nftables_priority", NFT),
    k("global_defs", "nftables_ifindex", NFT),
    k("global_defs", "nftables_ipvs", NFT),
    k("global_defs", "nftables_ipvs_priority", NFT),
    k("global_defs", "nftables_ipvs_start_fwmark", NFT),
    k("global_defs", "nftables_counters", NFT),
    k("global_defs", "vrrp_check_unicast_src", NOOP_UNICAST_SRC),
    k("global_defs", "vrrp_skip_check_adv_addr", Yes),
    k("global_defs", "vrrp_strict", Yes),
    k("global_defs", "vrrp_priority", PROC),
    k("global_defs", "vrrp_no_swap", PROC),
    k("global_defs", "vrrp_rt_priority", PROC),
    k("global_defs", "vrrp_cpu_affinity", PROC),
    k("global_defs", "vrrp_rlimit_rttime", PROC),
    k("global_defs", "vrrp_rlimit_rtime", PROC),
    k("global_defs", "notify_fifo", Yes),
    k("global_defs", "notify_fifo_script", Yes),
    k("global_defs", "vrrp_notify_fifo", Yes),
    k("global_defs", "vrrp_notify_fifo_script", Yes),
    k("global_defs", "vrrp_notify_priority_changes", Yes),
    k("global_defs", "fifo_write_vrrp_states_on_reload", Yes),
    k("global_defs", "lvs_notify_fifo", Yes),
    k("global_defs", "lvs_notify_fifo_script", Yes),
    k("global_defs", "checker_priority", PROC),
    k("global_defs", "checker_no_swap", PROC),
    k("global_defs", "checker_rt_priority", PROC),
    k("global_defs", "checker_cpu_affinity", PROC),
    k("global_defs", "checker_rlimit_rttime", PROC),
    k("global_defs", "checker_rlimit_rtime", PROC),
    k("global_defs", "bfd_priority", BFD),
    k("global_defs", "bfd_no_swap", BFD),
    k("global_defs", "bfd_rt_priority", BFD),
    k("global_defs", "bfd_cpu_affinity", BFD),
    k("global_defs", "bfd_rlimit_rttime", BFD),
    k("global_defs", "bfd_rlimit_rtime", BFD),
    k("global_defs", "snmp_socket", SNMP),
    k("global_defs", "enable_traps", SNMP),
    k("global_defs", "enable_snmp_vrrp", SNMP),
    k("global_defs", "enable_snmp_keepalived", SNMP),
    k("global_defs", "enable_snmp_rfc", SNMP),
    k("global_defs", "enable_snmp_rfcv2", SNMP),
    k("global_defs", "enable_snmp_rfcv3", SNMP),
    k("global_defs", "enable_snmp_checker", SNMP),
    k("global_defs", "enable_dbus", SNMP),
    k("global_defs", "dbus_service_name", SNMP),
    k("global_defs", "script_user", Yes),
    k("global_defs", "enable_script_security", Yes),
    k("global_defs", "vrrp_netlink_cmd_rcv_bufs", NOOP_BUFS),
    k("global_defs", "vrrp_netlink_cmd_rcv_bufs_force", NOOP_BUFS),
    k("global_defs", "vrrp_netlink_monitor_rcv_bufs", NOOP_BUFS),
    k(
        "global_defs",
        "vrrp_netlink_monitor_rcv_bufs_force",
        NOOP_BUFS,
    ),
    k("global_defs", "process_monitor_rcv_bufs", NOOP_BUFS),
    k("global_defs", "process_monitor_rcv_bufs_force", NOOP_BUFS),
    k("global_defs", "lvs_netlink_cmd_rcv_bufs", NOOP_BUFS),
    k("global_defs", "lvs_netlink_cmd_rcv_bufs_force", NOOP_BUFS),
    k("global_defs", "lvs_netlink_monitor_rcv_bufs", NOOP_BUFS),
    k(
        "global_defs",
        "lvs_netlink_monitor_rcv_bufs_force",
        NOOP_BUFS,
    ),
    k("global_defs", "rs_init_notifies", RSINIT),
    k("global_defs", "no_checker_emails", NOOP_CHKMAIL),
    k("global_defs", "vrrp_rx_bufs_policy", NOOP_BUFS),
    k("global_defs", "vrrp_rx_bufs_multiplier", NOOP_BUFS),
    k("global_defs", "vrrp_startup_delay", STARTDELAY),
    k("global_defs", "log_unknown_vrids", LOGVRID),
    k("global_defs", "vmac_prefix", Yes),
    k("global_defs", "vmac_addr_prefix", VMACADDR),
    k("global_defs", "umask", PROC),
    k("global_defs", "random_seed", PROC),
    k("global_defs", "reload_check_config", RELOAD),
    k("global_defs", "reload_time_file", RELOAD),
    k("global_defs", "reload_repeat", RELOAD),
    k("global_defs", "reload_file", RELOAD),
    k("global_defs", "include_check", RELOAD),
    k("global_defs", "config_save_dir", RELOAD),
    k("global_defs", "tmp_config_directory", RELOAD),
    k("global_defs", "data_use_instance", NETNS),
    k("", "track_group", TRACKGROUP),
    k("track_group", "group", TRACKGROUP),
    k("", "static_ipaddress", ROUTES),
    k("", "static_routes", ROUTES),
    k("", "static_rules", ROUTES),
    k("", "vrrp_sync_group", Yes),
    k("vrrp_sync_group", "group", Yes),
    k("vrrp_sync_group", "track_interface", Yes),
    k("vrrp_sync_group", "track_script", Yes),
    k("vrrp_sync_group", "track_file", Yes),
    k("vrrp_sync_group", "track_process", Yes),
    k("vrrp_sync_group", "track_bfd", BFD),
    k("vrrp_sync_group", "notify_backup", Yes),
    k("vrrp_sync_group", "notify_master", Yes),
    k("vrrp_sync_group", "notify_fault", Yes),
    k("vrrp_sync_group", "notify_stop", Yes),
    k("vrrp_sync_group", "notify", Yes),
    k("vrrp_sync_group", "smtp_alert", Yes),
    k("vrrp_sync_group", "global_tracking", NOOP_SYNCWEIGHT),
    k(
        "vrrp_sync_group",
        "sync_group_tracking_weight",
        NOOP_SYNCWEIGHT,
    ),
    k("vrrp_sync_group", "notify_priority_changes", Yes),
    k("", "garp_group", GARPGROUP),
    k("garp_group", "garp_interval", GARPGROUP),
    k("garp_group", "gna_interval", GARPGROUP),
    k("garp_group", "interface", GARPGROUP),
    k("garp_group", "interfaces", GARPGROUP),
    k("", "linkbeat_interfaces", LINKBEAT),
    k("", "vrrp_instance", Yes),
    k("vrrp_instance", "use_vmac", Yes),
    k("vrrp_instance", "use_vmac_addr", VMACADDR),
    k("vrrp_instance", "vmac_xmit_base", Yes),
    k("vrrp_instance", "use_ipvlan", IPVLAN),
    k("vrrp_instance", "unicast_peer", Yes),
    k("vrrp_instance", "unicast_fault_no_peer", UNICAST),
    k("vrrp_instance", "check_unicast_src", NOOP_UNICAST_SRC),
    k("vrrp_instance", "old_unicast_checksum", UNICAST),
    k("vrrp_instance", "native_ipv6", NOOP_FAMILY),
    k("vrrp_instance", "state", Yes),
    k("vrrp_instance", "interface", Yes),
    k("vrrp_instance", "vrf", VRF),
    k("vrrp_instance", "dont_track_primary", Yes),
    k("vrrp_instance", "track_interface", Yes),
    k("vrrp_instance", "track_script", Yes),
    k("vrrp_instance", "track_file", Yes),
    k("vrrp_instance", "track_process", Yes),
    k("vrrp_instance", "track_bfd", BFD),
    k("vrrp_instance", "mcast_src_ip", Yes),
    k("vrrp_instance", "unicast_src_ip", Yes),
    k("vrrp_instance", "mcast_dst_ip", Yes),
    k("vrrp_instance", "track_src_ip", SRCTRACK),
    k("vrrp_instance", "virtual_router_id", Yes),
    k("vrrp_instance", "unicast_ttl", TTL),
    k("vrrp_instance", "version", Yes),
    k("vrrp_instance", "priority", Yes),
    k("vrrp_instance", "advert_int", Yes),
    k("vrrp_instance", "virtual_ipaddress", Yes),
    k("vrrp_instance", "virtual_ipaddress_excluded", Yes),
    k("vrrp_instance", "promote_secondaries", Yes),
    k("vrrp_instance", "linkbeat_use_polling", LINKBEAT),
    k("vrrp_instance", "virtual_routes", ROUTES),
    k("vrrp_instance", "virtual_rules", ROUTES),
    k("vrrp_instance", "accept", NOOP_ACCEPT),
    k("vrrp_instance", "no_accept", NOACCEPT),
    k("vrrp_instance", "skip_check_adv_addr", Yes),
    k("vrrp_instance", "strict_mode", Yes),
    k("vrrp_instance", "preempt", Yes),
    k("vrrp_instance", "nopreempt", Yes),
    k("vrrp_instance", "preempt_delay", Yes),
    k("vrrp_instance", "debug", NOOP_DEBUG),
    k("vrrp_instance", "notify_backup", Yes),
    k("vrrp_instance", "notify_master", Yes),
    k("vrrp_instance", "notify_fault", Yes),
    k("vrrp_instance", "notify_stop", Yes),
    k("vrrp_instance", "notify_deleted", NOTIFYX),
    k("vrrp_instance", "notify", Yes),
    k("vrrp_instance", "notify_master_rx_lower_pri", Yes),
    k("vrrp_instance", "smtp_alert", Yes),
    k("vrrp_instance", "notify_priority_changes", Yes),
    k("vrrp_instance", "lvs_sync_daemon_interface", SYNCLEGACY),
    k("vrrp_instance", "garp_master_delay", Yes),
    k("vrrp_instance", "garp_master_refresh", Yes),
    k("vrrp_instance", "garp_master_repeat", Yes),
    k("vrrp_instance", "garp_master_refresh_repeat", Yes),
    k("vrrp_instance", "garp_lower_prio_delay", Yes),
    k("vrrp_instance", "garp_lower_prio_repeat", Yes),
    k("vrrp_instance", "down_timer_adverts", ADVTUNE),
    k("vrrp_instance", "garp_extra_if", GARPX),
    k("vrrp_instance", "vmac_garp_intvl", VMACGARP),
    k("vrrp_instance", "lower_prio_no_advert", ADVTUNE),
    k("vrrp_instance", "higher_prio_send_advert", ADVTUNE),
    k("vrrp_instance", "kernel_rx_buf_size", NOOP_BUFS),
    k("vrrp_instance", "authentication", Yes),
    k("vrrp_instance > authentication", "auth_type", Yes),
    k("vrrp_instance > authentication", "auth_pass", Yes),
    k("", "vrrp_script", Yes),
    k("vrrp_script", "script", Yes),
    k("vrrp_script", "interval", Yes),
    k("vrrp_script", "timeout", Yes),
    k("vrrp_script", "weight", Yes),
    k("vrrp_script", "rise", Yes),
    k("vrrp_script", "fall", Yes),
    k("vrrp_script", "user", Yes),
    k("vrrp_script", "init_fail", INITFAIL),
    k("", "vrrp_track_process", Yes),
    k("vrrp_track_process", "process", Yes),
    k("vrrp_track_process", "param_match", Yes),
    k("vrrp_track_process", "weight", Yes),
    k("vrrp_track_process", "quorum", Yes),
    k("vrrp_track_process", "quorum_max", Yes),
    k("vrrp_track_process", "delay", Yes),
    k("vrrp_track_process", "terminate_delay", Yes),
    k("vrrp_track_process", "fork_delay", Yes),
    k("vrrp_track_process", "full_command", Yes),
    k("", "interface_up_down_delays", UPDOWN),
    k("", "SSL", SSL),
    k("SSL", "password", SSL),
    k("SSL", "ca", SSL),
    k("SSL", "certificate", SSL),
    k("SSL", "key", SSL),
    k("", "virtual_server_group", Yes),
    k("virtual_server_group", "fwmark", Yes),
    k("", "virtual_server", Yes),
    k("virtual_server", "ip_family", VSFAMILY),
    k("virtual_server", "retry", Yes),
    k("virtual_server", "delay_before_retry", Yes),
    k("virtual_server", "warmup", Yes),
    k("virtual_server", "connect_timeout", Yes),
    k("virtual_server", "delay_loop", Yes),
    k("virtual_server", "inhibit_on_failure", Yes),
    k("virtual_server", "lb_algo", Yes),
    k("virtual_server", "lvs_sched", Yes),
    k("virtual_server", "hashed", NOOP_HASHED),
    k("virtual_server", "ops", Yes),
    k("virtual_server", "flag-1", Yes),
    k("virtual_server", "flag-2", Yes),
    k("virtual_server", "flag-3", FLAG3),
    k("virtual_server", "sh-port", Yes),
    k("virtual_server", "sh-fallback", Yes),
    k("virtual_server", "mh-port", Yes),
    k("virtual_server", "mh-fallback", Yes),
    k("virtual_server", "lb_kind", Yes),
    k("virtual_server", "lvs_method", Yes),
    k("virtual_server", "persistence_engine", PERSIST),
    k("virtual_server", "persistence_timeout", Yes),
    k("virtual_server", "persistence_granularity", Yes),
    k("virtual_server", "protocol", Yes),
    k("virtual_server", "ha_suspend", Yes),
    k("virtual_server", "smtp_alert", Yes),
    k("virtual_server", "virtualhost", Yes),
    k("virtual_server", "snmp_name", SNMP),
    k("virtual_server", "alpha", Yes),
    k("virtual_server", "omega", Yes),
    k("virtual_server", "quorum_up", Yes),
    k("virtual_server", "quorum_down", Yes),
    k("virtual_server", "quorum", Yes),
    k("virtual_server", "hysteresis", Yes),
    k("virtual_server", "weight", Yes),
    k("virtual_server", "sorry_server", Yes),
    k("virtual_server", "sorry_server_inhibit", SORRYX),
    k("virtual_server", "sorry_server_lvs_method", SORRYX),
    k("virtual_server", "real_server", Yes),
    k("virtual_server > real_server", "weight", Yes),
    k("virtual_server > real_server", "lvs_method", RSMETHOD),
    k("virtual_server > real_server", "uthreshold", Yes),
    k("virtual_server > real_server", "lthreshold", Yes),
    k("virtual_server > real_server", "inhibit_on_failure", Yes),
    k("virtual_server > real_server", "notify_up", Yes),
    k("virtual_server > real_server", "notify_down", Yes),
    k("virtual_server > real_server", "alpha", CHKALPHA),
    k("virtual_server > real_server", "retry", Yes),
    k("virtual_server > real_server", "delay_before_retry", Yes),
    k("virtual_server > real_server", "warmup", Yes),
    k("virtual_server > real_server", "connect_timeout", Yes),
    k("virtual_server > real_server", "delay_loop", CHKDELAY),
    k("virtual_server > real_server", "smtp_alert", Yes),
    k("virtual_server > real_server", "virtualhost", VSHOST),
    k("virtual_server > real_server", "snmp_name", SNMP),
    k("virtual_server > real_server", "MISC_CHECK", Yes),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "connect_ip",
        MISCCONN,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "connect_port",
        MISCCONN,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "bindto",
        MISCCONN,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "bind_port",
        MISCCONN,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "bind_if",
        MISCCONN,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "connect_timeout",
        MISCCONN,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "fwmark",
        MISCCONN,
    ),
    k("virtual_server > real_server > MISC_CHECK", "retry", Yes),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "delay_before_retry",
        Yes,
    ),
    k("virtual_server > real_server > MISC_CHECK", "warmup", Yes),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "delay_loop",
        CHKDELAY,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "alpha",
        CHKALPHA,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "log_all_failures",
        LOGFAIL,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "misc_path",
        Yes,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "misc_timeout",
        Yes,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "misc_dynamic",
        Yes,
    ),
    k("virtual_server > real_server > MISC_CHECK", "user", Yes),
    k("virtual_server > real_server", "SMTP_CHECK", Yes),
    k(
        "virtual_server > real_server > SMTP_CHECK",
        "helo_name",
        Yes,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK",
        "connect_ip",
        Yes,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK",
        "connect_port",
        Yes,
    ),
    k("virtual_server > real_server > SMTP_CHECK", "bindto", Yes),
    k(
        "virtual_server > real_server > SMTP_CHECK",
        "bind_port",
        Yes,
    ),
    k("virtual_server > real_server > SMTP_CHECK", "bind_if", BIND),
    k(
        "virtual_server > real_server > SMTP_CHECK",
        "connect_timeout",
        Yes,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK",
        "fwmark",
        CHKMARK,
    ),
    k("virtual_server > real_server > SMTP_CHECK", "retry", Yes),
    k(
        "virtual_server > real_server > SMTP_CHECK",
        "delay_before_retry",
        Yes,
    ),
    k("virtual_server > real_server > SMTP_CHECK", "warmup", Yes),
    k(
        "virtual_server > real_server > SMTP_CHECK",
        "delay_loop",
        CHKDELAY,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK",
        "alpha",
        CHKALPHA,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK",
        "log_all_failures",
        LOGFAIL,
    ),
    k("virtual_server > real_server > SMTP_CHECK", "host", Yes),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "connect_ip",
        Yes,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "connect_port",
        Yes,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "bindto",
        Yes,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "bind_port",
        Yes,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "bind_if",
        BIND,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "connect_timeout",
        Yes,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "fwmark",
        CHKMARK,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "retry",
        Yes,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "delay_before_retry",
        Yes,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "warmup",
        Yes,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "delay_loop",
        CHKDELAY,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "alpha",
        CHKALPHA,
    ),
    k(
        "virtual_server > real_server > SMTP_CHECK > host",
        "log_all_failures",
        LOGFAIL,
    ),
    k("virtual_server > real_server", "TCP_CHECK", Yes),
    k(
        "virtual_server > real_server > TCP_CHECK",
        "connect_ip",
        Yes,
    ),
    k(
        "virtual_server > real_server > TCP_CHECK",
        "connect_port",
        Yes,
    ),
    k("virtual_server > real_server > TCP_CHECK", "bindto", Yes),
    k(
        "virtual_server > real_server > TCP_CHECK",
        "bind_port",
        BIND,
    ),
    k("virtual_server > real_server > TCP_CHECK", "bind_if", BIND),
    k(
        "virtual_server > real_server > TCP_CHECK",
        "connect_timeout",
        Yes,
    ),
    k(
        "virtual_server > real_server > TCP_CHECK",
        "fwmark",
        CHKMARK,
    ),
    k("virtual_server > real_server > TCP_CHECK", "retry", Yes),
    k(
        "virtual_server > real_server > TCP_CHECK",
        "delay_before_retry",
        Yes,
    ),
    k("virtual_server > real_server > TCP_CHECK", "warmup", Yes),
    k(
        "virtual_server > real_server > TCP_CHECK",
        "delay_loop",
        CHKDELAY,
    ),
    k(
        "virtual_server > real_server > TCP_CHECK",
        "alpha",
        CHKALPHA,
    ),
    k(
        "virtual_server > real_server > TCP_CHECK",
        "log_all_failures",
        LOGFAIL,
    ),
    k("virtual_server > real_server", "PING_CHECK", Yes),
    k(
        "virtual_server > real_server > PING_CHECK",
        "connect_ip",
        Yes,
    ),
    k(
        "virtual_server > real_server > PING_CHECK",
        "connect_port",
        PINGPORT,
    ),
    k("virtual_server > real_server > PING_CHECK", "bindto", Yes),
    k(
        "virtual_server > real_server > PING_CHECK",
        "bind_port",
        BIND,
    ),
    k("virtual_server > real_server > PING_CHECK", "bind_if", BIND),
    k(
        "virtual_server > real_server > PING_CHECK",
        "connect_timeout",
        Yes,
    ),
    k(
        "virtual_server > real_server > PING_CHECK",
        "fwmark",
        CHKMARK,
    ),
    k("virtual_server > real_server > PING_CHECK", "retry", Yes),
    k(
        "virtual_server > real_server > PING_CHECK",
        "delay_before_retry",
        Yes,
    ),
    k("virtual_server > real_server > PING_CHECK", "warmup", Yes),
    k(
        "virtual_server > real_server > PING_CHECK",
        "delay_loop",
        CHKDELAY,
    ),
    k(
        "virtual_server > real_server > PING_CHECK",
        "alpha",
        CHKALPHA,
    ),
    k(
        "virtual_server > real_server > PING_CHECK",
        "log_all_failures",
        LOGFAIL,
    ),
    k("virtual_server > real_server", "UDP_CHECK", Yes),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "connect_ip",
        Yes,
    ),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "connect_port",
        Yes,
    ),
    k("virtual_server > real_server > UDP_CHECK", "bindto", Yes),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "bind_port",
        BIND,
    ),
    k("virtual_server > real_server > UDP_CHECK", "bind_if", BIND),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "connect_timeout",
        Yes,
    ),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "fwmark",
        CHKMARK,
    ),
    k("virtual_server > real_server > UDP_CHECK", "retry", Yes),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "delay_before_retry",
        Yes,
    ),
    k("virtual_server > real_server > UDP_CHECK", "warmup", Yes),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "delay_loop",
        CHKDELAY,
    ),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "alpha",
        CHKALPHA,
    ),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "log_all_failures",
        LOGFAIL,
    ),
    k("virtual_server > real_server > UDP_CHECK", "payload", Yes),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "require_reply",
        Yes,
    ),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "min_reply_length",
        Yes,
    ),
    k(
        "virtual_server > real_server > UDP_CHECK",
        "max_reply_length",
        Yes,
    ),
    k("virtual_server > real_server", "HTTP_GET", Yes),
    k("virtual_server > real_server > HTTP_GET", "connect_ip", Yes),
    k(
        "virtual_server > real_server > HTTP_GET",
        "connect_port",
        Yes,
    ),
    k("virtual_server > real_server > HTTP_GET", "bindto", Yes),
    k("virtual_server > real_server > HTTP_GET", "bind_port", BIND),
    k("virtual_server > real_server > HTTP_GET", "bind_if", BIND),
    k(
        "virtual_server > real_server > HTTP_GET",
        "connect_timeout",
        Yes,
    ),
    k("virtual_server > real_server > HTTP_GET", "fwmark", CHKMARK),
    k("virtual_server > real_server > HTTP_GET", "retry", Yes),
    k(
        "virtual_server > real_server > HTTP_GET",
        "delay_before_retry",
        Yes,
    ),
    k("virtual_server > real_server > HTTP_GET", "warmup", Yes),
    k(
        "virtual_server > real_server > HTTP_GET",
        "delay_loop",
        CHKDELAY,
    ),
    k("virtual_server > real_server > HTTP_GET", "alpha", CHKALPHA),
    k(
        "virtual_server > real_server > HTTP_GET",
        "log_all_failures",
        LOGFAIL,
    ),
    k(
        "virtual_server > real_server > HTTP_GET",
        "nb_get_retry",
        Yes,
    ),
    k(
        "virtual_server > real_server > HTTP_GET",
        "virtualhost",
        VSHOST,
    ),
    k(
        "virtual_server > real_server > HTTP_GET",
        "http_protocol",
        HTTPX,
    ),
    k(
        "virtual_server > real_server > HTTP_GET",
        "enable_sni",
        HTTPX,
    ),
    k(
        "virtual_server > real_server > HTTP_GET",
        "fast_recovery",
        HTTPX,
    ),
    k("virtual_server > real_server > HTTP_GET", "url", Yes),
    k("virtual_server > real_server > HTTP_GET > url", "path", Yes),
    k(
        "virtual_server > real_server > HTTP_GET > url",
        "digest",
        Yes,
    ),
    k(
        "virtual_server > real_server > HTTP_GET > url",
        "status_code",
        Yes,
    ),
    k(
        "virtual_server > real_server > HTTP_GET > url",
        "virtualhost",
        Yes,
    ),
    k(
        "virtual_server > real_server > HTTP_GET > url",
        "regex",
        Yes,
    ),
    k(
        "virtual_server > real_server > HTTP_GET > url",
        "regex_no_match",
        Yes,
    ),
    k(
        "virtual_server > real_server > HTTP_GET > url",
        "regex_options",
        REGEXX,
    ),
    k(
        "virtual_server > real_server > HTTP_GET > url",
        "regex_min_offset",
        REGEXX,
    ),
    k(
        "virtual_server > real_server > HTTP_GET > url",
        "regex_max_offset",
        REGEXX,
    ),
    k(
        "virtual_server > real_server > HTTP_GET > url",
        "regex_stack",
        REGEXX,
    ),
    k("virtual_server > real_server", "SSL_GET", Yes),
    k("virtual_server > real_server > SSL_GET", "connect_ip", Yes),
    k(
        "virtual_server > real_server > SSL_GET",
        "connect_port",
        Yes,
    ),
    k("virtual_server > real_server > SSL_GET", "bindto", Yes),
    k("virtual_server > real_server > SSL_GET", "bind_port", BIND),
    k("virtual_server > real_server > SSL_GET", "bind_if", BIND),
    k(
        "virtual_server > real_server > SSL_GET",
        "connect_timeout",
        Yes,
    ),
    k("virtual_server > real_server > SSL_GET", "fwmark", CHKMARK),
    k("virtual_server > real_server > SSL_GET", "retry", Yes),
    k(
        "virtual_server > real_server > SSL_GET",
        "delay_before_retry",
        Yes,
    ),
    k("virtual_server > real_server > SSL_GET", "warmup", Yes),
    k(
        "virtual_server > real_server > SSL_GET",
        "delay_loop",
        CHKDELAY,
    ),
    k("virtual_server > real_server > SSL_GET", "alpha", CHKALPHA),
    k(
        "virtual_server > real_server > SSL_GET",
        "log_all_failures",
        LOGFAIL,
    ),
    k(
        "virtual_server > real_server > SSL_GET",
        "nb_get_retry",
        Yes,
    ),
    k(
        "virtual_server > real_server > SSL_GET",
        "virtualhost",
        VSHOST,
    ),
    k(
        "virtual_server > real_server > SSL_GET",
        "http_protocol",
        HTTPX,
    ),
    k(
        "virtual_server > real_server > SSL_GET",
        "enable_sni",
        HTTPX,
    ),
    k(
        "virtual_server > real_server > SSL_GET",
        "fast_recovery",
        HTTPX,
    ),
    k("virtual_server > real_server > SSL_GET", "url", Yes),
    k("virtual_server > real_server > SSL_GET > url", "path", Yes),
    k(
        "virtual_server > real_server > SSL_GET > url",
        "digest",
        Yes,
    ),
    k(
        "virtual_server > real_server > SSL_GET > url",
        "status_code",
        Yes,
    ),
    k(
        "virtual_server > real_server > SSL_GET > url",
        "virtualhost",
        Yes,
    ),
    k("virtual_server > real_server > SSL_GET > url", "regex", Yes),
    k(
        "virtual_server > real_server > SSL_GET > url",
        "regex_no_match",
        Yes,
    ),
    k(
        "virtual_server > real_server > SSL_GET > url",
        "regex_options",
        REGEXX,
    ),
    k(
        "virtual_server > real_server > SSL_GET > url",
        "regex_min_offset",
        REGEXX,
    ),
    k(
        "virtual_server > real_server > SSL_GET > url",
        "regex_max_offset",
        REGEXX,
    ),
    k(
        "virtual_server > real_server > SSL_GET > url",
        "regex_stack",
        REGEXX,
    ),
    k("virtual_server > real_server", "DNS_CHECK", Yes),
    k(
        "virtual_server > real_server > DNS_CHECK",
        "connect_ip",
        Yes,
    ),
    k(
        "virtual_server > real_server > DNS_CHECK",
        "connect_port",
        Yes,
    ),
    k("virtual_server > real_server > DNS_CHECK", "bindto", Yes),
    k(
        "virtual_server > real_server > DNS_CHECK",
        "bind_port",
        BIND,
    ),
    k("virtual_server > real_server > DNS_CHECK", "bind_if", BIND),
    k(
        "virtual_server > real_server > DNS_CHECK",
        "connect_timeout",
        Yes,
    ),
    k(
        "virtual_server > real_server > DNS_CHECK",
        "fwmark",
        CHKMARK,
    ),
    k("virtual_server > real_server > DNS_CHECK", "retry", Yes),
    k(
        "virtual_server > real_server > DNS_CHECK",
        "delay_before_retry",
        Yes,
    ),
    k("virtual_server > real_server > DNS_CHECK", "warmup", Yes),
    k(
        "virtual_server > real_server > DNS_CHECK",
        "delay_loop",
        CHKDELAY,
    ),
    k(
        "virtual_server > real_server > DNS_CHECK",
        "alpha",
        CHKALPHA,
    ),
    k(
        "virtual_server > real_server > DNS_CHECK",
        "log_all_failures",
        LOGFAIL,
    ),
    k("virtual_server > real_server > DNS_CHECK", "type", Yes),
    k("virtual_server > real_server > DNS_CHECK", "name", Yes),
    k("virtual_server > real_server", "FILE_CHECK", Yes),
    k(
        "virtual_server > real_server > FILE_CHECK",
        "track_file",
        Yes,
    ),
    k("virtual_server > real_server > FILE_CHECK", "weight", Yes),
    k("virtual_server > real_server", "BFD_CHECK", BFD),
    k("virtual_server > real_server > BFD_CHECK", "name", BFD),
    k("virtual_server > real_server > BFD_CHECK", "alpha", BFD),
    k("", "bfd_instance", BFD),
    k("bfd_instance", "source_ip", BFD),
    k("bfd_instance", "neighbor_ip", BFD),
    k("bfd_instance", "neighbour_ip", BFD),
    k("bfd_instance", "min_rx", BFD),
    k("bfd_instance", "min_tx", BFD),
    k("bfd_instance", "idle_tx", BFD),
    k("bfd_instance", "multiplier", BFD),
    k("bfd_instance", "passive", BFD),
    k("bfd_instance", "ttl", BFD),
    k("bfd_instance", "hoplimit", BFD),
    k("bfd_instance", "max_hops", BFD),
    k("bfd_instance", "weight", BFD),
    k("bfd_instance", "vrrp", BFD),
    k("bfd_instance", "checker", BFD),
    k(
        "virtual_server > real_server > TCP_CHECK",
        "nb_get_retry",
        Yes,
    ),
    k(
        "virtual_server > real_server > MISC_CHECK",
        "nb_get_retry",
        Yes,
    ),
    k("", "include", Yes),
    k("", "track_file", Yes),
    k("track_file", "file", Yes),
    k("track_file", "weight", Yes),
    k("track_file", "init_file", Yes),
    k("", "vrrp_track_file", Yes),
    k("vrrp_track_file", "file", Yes),
    k("vrrp_track_file", "weight", Yes),
    k("vrrp_track_file", "init_file", Yes),
];

/// What the table says of `name` in `block`.
pub(crate) fn lookup(block: &str, name: &str) -> Option<Support> {
    KEYWORDS
        .iter()
        .find(|k| k.block == block && k.name == name)
        .map(|k| k.support)
}

/// Whether statements inside `path` are keywords (rather than a list of
/// addresses or names, as in `virtual_ipaddress`).
fn is_block(path: &str) -> bool {
    KEYWORDS.iter().any(|k| k.block == path)
}

/// `in TCP_CHECK`, `at top level`.
fn context(block: &str) -> String {
    match block.rsplit(" > ").next() {
        Some(last) if !last.is_empty() => format!("in {last}"),
        _ => "at top level".to_string(),
    }
}

/// The error for `name` in `block` when the importer did not read it, or
/// `None` for a documented no-op.
pub(crate) fn refusal(block: &str, name: &str) -> Option<String> {
    let ctx = context(block);
    match lookup(block, name) {
        Some(NoOp(_)) => None,
        Some(Refused(instead)) => Some(format!(
            "keepalived's '{name}' {ctx} is not supported: {instead}"
        )),
        Some(Yes) => Some(format!(
            "'{name}' {ctx} is listed as supported but was not read (a bug in the importer)"
        )),
        None => Some(match suggestion(block, name) {
            Some(Hint::Spelling(meant)) => {
                format!("unknown keyword '{name}' {ctx}; did you mean '{meant}'?")
            }
            Some(Hint::Elsewhere(block)) => format!(
                "unknown keyword '{name}' {ctx}; it belongs {}",
                context(block)
            ),
            None => format!("unknown keyword '{name}' {ctx}"),
        }),
    }
}

enum Hint {
    /// A keyword of the same block, spelt alike.
    Spelling(&'static str),
    /// The block where a keyword of this name is read.
    Elsewhere(&'static str),
}

/// The keyword of `block` nearest to `name` (case aside, or at most a
/// third of its letters apart), else the block where `name` itself is
/// read. Refused keywords are suggested too: their error says what to do.
fn suggestion(block: &str, name: &str) -> Option<Hint> {
    let lower = name.to_ascii_lowercase();
    let limit = (name.chars().count() / 3).max(1);
    let near = KEYWORDS
        .iter()
        .filter(|k| k.block == block)
        .map(|k| {
            let distance = strsim::damerau_levenshtein(&lower, &k.name.to_ascii_lowercase());
            (distance, k.name)
        })
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance);
    if let Some((_, meant)) = near {
        return Some(Hint::Spelling(meant));
    }
    KEYWORDS
        .iter()
        .find(|k| k.name == name && k.support == Yes)
        .map(|k| Hint::Elsewhere(k.block))
}

/// A warning for each documented no-op in `statements` (inside `block`),
/// at any depth.
pub(crate) fn warn_no_ops(statements: &[Statement], block: &str, map: &mut SourceMap) {
    for st in statements {
        let name = st.keyword.text.as_str();
        if let Some(NoOp(why)) = lookup(block, name) {
            map.warn(Diagnostic::new(
                st.keyword.pos.clone(),
                format!("'{name}' {} has no effect: {why}", context(block)),
            ));
        }
        let path = if block.is_empty() {
            name.to_string()
        } else {
            format!("{block} > {name}")
        };
        if let Some(children) = &st.block
            && is_block(&path)
        {
            warn_no_ops(children, &path, map);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keepalived::load_text;
    use std::path::Path;

    /// The coverage table for docs/config.md: counts, then one row per
    /// keyword, block by block in keepalived's order.
    fn coverage_markdown() -> String {
        let count = |f: fn(&Support) -> bool| KEYWORDS.iter().filter(|k| f(&k.support)).count();
        let mut out = format!(
            "Of the {} keywords that keepalived 2.2.7's parsers install (counted \
         per block, with the few older names the importer also reads), \
         {} are supported, {} are accepted with no effect (loading warns, \
         and says why), and {} are refused with an error that says what to \
         do instead. A keyword in none of these is an error that names the \
         nearest keyword of its block, or the block it belongs in.\n\n\
         | block | keyword | support |\n|---|---|---|\n",
            KEYWORDS.len(),
            count(|s| *s == Yes),
            count(|s| matches!(s, NoOp(_))),
            count(|s| matches!(s, Refused(_))),
        );
        for k in KEYWORDS {
            let block = if k.block.is_empty() {
                "top level".to_string()
            } else {
                format!("`{}`", k.block)
            };
            let support = match k.support {
                Yes => "yes".to_string(),
                NoOp(why) => format!("no-op: {why}"),
                Refused(instead) => format!("refused: {instead}"),
            };
            out.push_str(&format!(
                "| {block} | `{}` | {} |\n",
                k.name,
                support.replace('|', "\\|")
            ));
        }
        out
    }

    /// Every (block, keyword) written in `statements`, inside `block`.
    fn written(statements: &[Statement], block: &str, out: &mut Vec<(String, String)>) {
        for st in statements {
            let name = st.keyword.text.clone();
            out.push((block.to_string(), name.clone()));
            let path = if block.is_empty() {
                name
            } else {
                format!("{block} > {name}")
            };
            if let Some(children) = &st.block
                && is_block(&path)
            {
                written(children, &path, out);
            }
        }
    }

    /// The project's own fixtures (tests/fixtures/keepalived) write every
    /// supported keyword, each the way keepalived's documentation does,
    /// and load (config_fixtures and config_cli load and convert them).
    #[test]
    fn every_supported_keyword_is_in_a_fixture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/keepalived");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                continue;
            }
            let (statements, errors) = super::super::parser::parse_file(&path);
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            written(&statements, "", &mut seen);
            // The parser reads the included files in place of the line.
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().any(|l| l.trim_start().starts_with("include ")) {
                seen.push((String::new(), "include".into()));
            }
        }
        let missing: Vec<String> = KEYWORDS
            .iter()
            .filter(|k| k.support == Yes)
            .filter(|k| !seen.iter().any(|(b, n)| b == k.block && n == k.name))
            .map(|k| format!("{} > {}", k.block, k.name))
            .collect();
        assert!(
            missing.is_empty(),
            "{} supported keywords in no fixture:\n{}",
            missing.len(),
            missing.join("\n")
        );
    }

    /// keepalived.conf text that puts `name` alone on a line inside
    /// `block`, and that line's number.
    fn placed(block: &str, name: &str) -> (String, u32) {
        let mut text = String::new();
        let mut depth = 0;
        for segment in block.split(" > ").filter(|s| !s.is_empty()) {
            let opener = match segment {
                "vrrp_script" | "vrrp_sync_group" | "vrrp_instance" => format!("{segment} N"),
                "virtual_server" => "virtual_server 10.0.0.1 80".to_string(),
                "real_server" => "real_server 10.0.0.2 80".to_string(),
                other => other.to_string(),
            };
            text.push_str(&format!("{opener} {{\n"));
            depth += 1;
        }
        let line = u32::try_from(text.lines().count() + 1).unwrap_or(u32::MAX);
        text.push_str(&format!("{name}\n"));
        text.push_str(&"}\n".repeat(depth));
        (text, line)
    }

    /// The block's enclosing blocks that keepalived has but the appliance
    /// refuses: their insides are never read.
    fn refused_ancestor(block: &str) -> Option<String> {
        let mut parent = String::new();
        for segment in block.split(" > ").filter(|s| !s.is_empty()) {
            if let Some(Refused(_)) = lookup(&parent, segment) {
                return Some(format!("{parent} > {segment}"));
            }
            parent = if parent.is_empty() {
                segment.to_string()
            } else {
                format!("{parent} > {segment}")
            };
        }
        None
    }

    /// Every row of the table holds in the importer: a supported keyword
    /// is read (whatever else is wrong with the bare line), a no-op passes
    /// with a warning, a refused one is an error saying what to do
    /// instead. Together with the importer's asking the table for every
    /// keyword its `match`es do not take, nothing is accepted unlisted.
    #[test]
    fn the_importer_does_what_the_table_says() {
        let mut wrong = Vec::new();
        for k in KEYWORDS.iter().filter(|k| k.name != "include") {
            if let Some(ancestor) = refused_ancestor(k.block) {
                // Checked by the ancestor's own row.
                assert!(k.support != Yes, "{} under refused {ancestor}", k.name);
                continue;
            }
            let (text, line) = placed(k.block, k.name);
            let (_, map, errors) = load_text(Path::new("k.conf"), &text);
            let at = |list: &[Diagnostic]| {
                list.iter()
                    .filter(|d| d.pos.line == line)
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
            };
            let errors = at(&errors);
            let warnings = at(&map.warnings());
            let unread = |m: &String| {
                m.contains("unknown keyword")
                    || m.contains("not supported")
                    || m.contains("was not read")
            };
            let ok = match k.support {
                Yes => !errors.iter().any(unread) && warnings.is_empty(),
                NoOp(why) => !errors.iter().any(unread) && warnings.iter().any(|w| w.contains(why)),
                Refused(instead) => errors.iter().any(|e| e.contains(instead)),
            };
            if !ok {
                wrong.push(format!(
                    "{:?} {} in '{}': errors {errors:?}, warnings {warnings:?}",
                    k.support, k.name, k.block
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn each_keyword_is_listed_once_per_block() {
        let mut seen = std::collections::HashSet::new();
        for k in KEYWORDS {
            assert!(
                seen.insert((k.block, k.name)),
                "{} in '{}' twice",
                k.name,
                k.block
            );
        }
    }

    #[test]
    fn unknown_keywords_name_the_nearest_or_the_right_block() {
        for (block, name, expected) in [
            (
                "vrrp_instance",
                "priorty",
                "unknown keyword 'priorty' in vrrp_instance; did you mean 'priority'?",
            ),
            (
                "virtual_server > real_server",
                "tcp_check",
                "unknown keyword 'tcp_check' in real_server; did you mean 'TCP_CHECK'?",
            ),
            (
                "virtual_server",
                "advert_int",
                "unknown keyword 'advert_int' in virtual_server; it belongs in vrrp_instance",
            ),
            (
                "",
                "frobnicate",
                "unknown keyword 'frobnicate' at top level",
            ),
            (
                "global_defs",
                "lvs_flush",
                "keepalived's 'lvs_flush' in global_defs is not supported: the appliance removes only what it programmed",
            ),
        ] {
            let message = refusal(block, name).unwrap_or_default();
            assert!(message.starts_with(expected), "{message}");
        }
    }

    /// docs/config.md carries the table as printed here;
    /// `UPDATE_DOCS=1 cargo test -p appliance coverage` rewrites it.
    #[test]
    fn the_coverage_table_in_the_docs_is_current() {
        const BEGIN: &str = "<!-- keyword coverage: generated, see keywords.rs -->\n";
        const END: &str = "<!-- end of keyword coverage -->\n";
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md");
        let docs = std::fs::read_to_string(&path).unwrap_or_default();
        let (Some(start), Some(end)) = (docs.find(BEGIN), docs.find(END)) else {
            panic!("{} lacks the coverage markers", path.display());
        };
        let current = &docs[start + BEGIN.len()..end];
        let table = coverage_markdown();
        if current != table && std::env::var_os("UPDATE_DOCS").is_some() {
            let updated = format!("{}{BEGIN}{table}{}", &docs[..start], &docs[end..]);
            std::fs::write(&path, updated).unwrap_or_else(|e| panic!("{e}"));
            return;
        }
        assert!(
            current == table,
            "docs/config.md's coverage table is out of date: run \
             UPDATE_DOCS=1 cargo test -p appliance coverage"
        );
    }
}
