//! Configuration: the native model (serde, TOML on disk), the keepalived.conf
//! importer, validation, and the diagnostics that point at problems.
//!
//! Format detection is by file name: a path ending in `.toml` is the native
//! TOML format; anything else (`keepalived.conf`, `*.conf`, no extension) is
//! read as keepalived.conf.

mod beside;
pub(crate) mod diag;
pub(crate) mod file;
pub(crate) mod keepalived;
mod minimal;
pub mod model;
mod toml_load;
pub(crate) mod validate;

pub use diag::{Diagnostic, Diagnostics, Position, SourceMap};
pub use model::Config;

use std::path::Path;

/// The two config syntaxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The appliance's own TOML (see [`model`]).
    Toml,
    /// keepalived.conf, the subset the importer supports.
    Keepalived,
}

impl Format {
    /// `.toml` (any case) is TOML; everything else is keepalived.conf.
    pub fn detect(path: &Path) -> Self {
        match path.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Self::Toml,
            _ => Self::Keepalived,
        }
    }
}

/// Loads, parses and validates a config file in either format. On failure
/// the diagnostics list every problem found, in file order.
pub fn load_file(path: &Path) -> Result<Config, Diagnostics> {
    load_file_mapped(path).map(|(config, _)| config)
}

/// [`load_file`], with where each part of the config came from (for
/// checks after validation to point at).
pub fn load_file_mapped(path: &Path) -> Result<(Config, SourceMap), Diagnostics> {
    match Format::detect(path) {
        Format::Keepalived => {
            let (config, map, errors) = keepalived::load(path);
            finish(config, map, errors)
        }
        Format::Toml => {
            let text = file::read(path).map_err(|e| {
                Diagnostics::single(
                    Position::start_of(path),
                    format!("cannot read the file: {e}"),
                )
            })?;
            load_str_mapped(path, &text, Format::Toml)
        }
    }
}

/// As [`load_file`] for `text` said to come from `path` (keepalived
/// includes are resolved relative to `path`'s directory).
pub fn load_str(path: &Path, text: &str, format: Format) -> Result<Config, Diagnostics> {
    load_str_mapped(path, text, format).map(|(config, _)| config)
}

/// [`load_str`] with the source map, as [`load_file_mapped`].
pub fn load_str_mapped(
    path: &Path,
    text: &str,
    format: Format,
) -> Result<(Config, SourceMap), Diagnostics> {
    match format {
        Format::Keepalived => {
            let (config, map, errors) = keepalived::load_str(path, text);
            finish(config, map, errors)
        }
        Format::Toml => {
            let (config, map) = toml_load::load(path, text).map_err(Diagnostics::sorted)?;
            match config.keepalived_conf.clone() {
                Some(keepalived_conf) => {
                    let (config, map, errors) = beside::merge(path, &keepalived_conf, config, map);
                    finish(config, map, errors)
                }
                None => finish(config, map, Vec::new()),
            }
        }
    }
}

/// As [`load_str`], without reaching the file system: keepalived includes
/// are refused rather than read. `path` only labels the diagnostics.
pub fn load_text(path: &Path, text: &str, format: Format) -> Result<Config, Diagnostics> {
    match format {
        Format::Keepalived => {
            let (config, map, errors) = keepalived::load_text(path, text);
            finish(config, map, errors).map(|(config, _)| config)
        }
        Format::Toml => load_str(path, text, Format::Toml),
    }
}

/// The `[network]` table of a TOML config (`text`, from `path`) on its own,
/// parsed and validated as if the file held nothing else: init applies it
/// to keep the box reachable at its address while the rest of the config
/// is invalid. A file without the table gives empty settings; one that is
/// not TOML at all, or whose table is invalid, gives the problems (their
/// positions are in the table alone, not in the file).
pub fn load_network(path: &Path, text: &str) -> Result<model::Network, Diagnostics> {
    let problem = |message: String| Diagnostics::single(Position::start_of(path), message);
    let table: toml::Table =
        toml::from_str(text).map_err(|e| problem(e.message().trim().to_string()))?;
    let mut alone = toml::Table::new();
    if let Some(network) = table.get("network") {
        alone.insert("network".into(), network.clone());
    }
    let alone = toml::to_string(&alone).map_err(|e| problem(e.to_string()))?;
    load_str(path, &alone, Format::Toml).map(|config| config.network)
}

fn finish(
    config: Config,
    mut map: SourceMap,
    mut errors: Vec<Diagnostic>,
) -> Result<(Config, SourceMap), Diagnostics> {
    errors.extend(validate::validate(&config, &map));
    if errors.is_empty() {
        validate::advise(&config, &mut map);
        Ok((config, map))
    } else {
        Err(Diagnostics::sorted(errors))
    }
}

impl Config {
    /// The configuration in the native TOML format; loading the output
    /// gives back an equal `Config`.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// [`Config::to_toml`] without the keys whose value is the default
    /// (`appliance convert`); it loads back equal too.
    pub fn to_toml_minimal(&self) -> Result<String, toml::ser::Error> {
        minimal::to_toml(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/keepalived");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        files.sort();
        files
    }

    fn round_trip(config: &Config) {
        for text in [config.to_toml().unwrap(), config.to_toml_minimal().unwrap()] {
            let again = load_str(Path::new("converted.toml"), &text, Format::Toml)
                .unwrap_or_else(|d| panic!("{d}\n{text}"));
            assert_eq!(&again, config, "{text}");
        }
    }

    #[test]
    fn the_network_table_loads_alone_when_the_rest_is_invalid() {
        let path = Path::new("/config/appliance.toml");
        let text = "[[vrrp_instance]]\nname = \"VI_1\"\nbogus = 1\n\n\
                    [[network.interface]]\nname = \"eth0\"\naddress = [\"10.0.0.2/24\"]\n\n\
                    [[network.route]]\ndestination = \"0.0.0.0/0\"\ngateway = \"10.0.0.1\"\n";
        assert!(load_str(path, text, Format::Toml).is_err());
        let network = load_network(path, text).unwrap();
        assert_eq!(network.interface.len(), 1);
        assert_eq!(network.interface[0].name, "eth0");
        assert_eq!(network.route.len(), 1);
        // Without the table: nothing to apply.
        assert!(
            load_network(path, "[global]\nrouter_id = 3\n")
                .unwrap()
                .is_empty()
        );
        // Not TOML, or an invalid table: problems.
        assert!(load_network(path, "vrrp_instance VI_1 {\n}\n").is_err());
        let invalid = "[[network.route]]\ndestination = \"10.1.0.0/16\"\n";
        let problems = load_network(path, invalid).unwrap_err().to_string();
        assert!(
            problems.contains("needs a gateway or an interface"),
            "{problems}"
        );
        assert!(load_network(path, "[network]\nspeed = 1\n").is_err());
    }

    #[test]
    fn detection_is_by_extension() {
        assert_eq!(
            Format::detect(Path::new("/etc/appliance/lb.toml")),
            Format::Toml
        );
        assert_eq!(Format::detect(Path::new("LB.TOML")), Format::Toml);
        assert_eq!(
            Format::detect(Path::new("/etc/keepalived/keepalived.conf")),
            Format::Keepalived
        );
        assert_eq!(Format::detect(Path::new("keepalived")), Format::Keepalived);
    }

    #[test]
    fn every_fixture_loads_and_round_trips_through_toml() {
        let files = fixtures();
        assert_eq!(files.len(), 9);
        for file in files {
            let config = load_file(&file).unwrap_or_else(|d| panic!("{}: {d}", file.display()));
            assert!(
                !config.vrrp_instance.is_empty() || !config.virtual_server.is_empty(),
                "{}",
                file.display()
            );
            round_trip(&config);
        }
    }

    const RICH: &str = r#"
! A config using every supported keyword.
global_defs {
    router_id lb1
    notification_email {
        ops@example.com
        noc@example.com
    }
    notification_email_from lb1@example.com
    smtp_server 192.0.2.25 2525
    smtp_connect_timeout 10
    vrrp_version 3
    vrrp_garp_master_delay 2
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 60
    vrrp_garp_master_refresh_repeat 2
    vrrp_garp_lower_prio_delay 4
    vrrp_garp_lower_prio_repeat 6
    vrrp_garp_interval 0.001
    vrrp_gna_interval 0.000002
    script_user keepalived_script :wheel
    enable_script_security
    notify_fifo /run/keepalived.fifo
    notify_fifo_script "/usr/local/bin/fifo-reader --all"
    vrrp_notify_fifo /run/vrrp.fifo root
    lvs_notify_fifo /run/lvs.fifo
    fifo_write_vrrp_states_on_reload
}
vrrp_script chk_web {
    script "/usr/local/bin/check web --fast"
    interval 2
    timeout 3
    weight -30
    rise 2
    fall 3
}
track_file maintenance {
    file /run/appliance/maintenance
    weight -254 reverse
    init_file 0 overwrite
}
vrrp_track_file drain {
    file /run/appliance/drain
}
vrrp_track_process web {
    process /usr/sbin/nginx -g "daemon off;"
    param_match partial
    weight -20 reverse
    quorum 2
    quorum_max 8
    delay 1.5
    fork_delay 0.25
}
vrrp_track_process sshd {
    process sshd
}
vrrp_sync_group VG {
    group {
        V4
        V6
    }
    notify_master "/bin/vg master" root
    notify_backup /bin/vg-backup
    notify_fault "/bin/vg fault"
    notify_stop /bin/vg-stop
    notify /bin/vg-any
    smtp_alert
}
vrrp_instance V4 {
    state MASTER
    interface eth0
    virtual_router_id 10
    priority 200
    advert_int 0.5
    version 3
    virtual_ipaddress {
        192.0.2.10/24 dev eth0 label eth0:vip scope global
        192.0.2.11
    }
    virtual_ipaddress_excluded {
        2001:db8::10/64 dev eth1
    }
    track_script {
        chk_web
        chk_web weight 5
    }
    track_interface {
        eth1
        eth2 weight -10
    }
    track_file {
        maintenance weight 3 noreverse
        drain
    }
    track_process {
        web weight 10 noreverse
        sshd
    }
    nopreempt
    preempt_delay 30.5
    unicast_src_ip 192.0.2.1
    unicast_peer {
        192.0.2.2
        192.0.2.3
    }
    dont_track_primary
    garp_master_delay 1
    garp_master_repeat 2
    garp_master_refresh 30
    garp_master_refresh_repeat 3
    garp_lower_prio_delay 4
    garp_lower_prio_repeat 5
    notify_master /bin/m
    notify_backup "/bin/b 'two words'"
    notify_fault /bin/f
    notify_stop /bin/s
    notify /bin/n
    smtp_alert off
}
vrrp_instance V6 {
    interface eth0
    virtual_router_id 10
    native_ipv6
    virtual_ipaddress {
        2001:db8::1/64
    }
}
vrrp_instance V2 {
    interface eth3
    virtual_router_id 11
    version 2
    preempt
    authentication {
        auth_type PASS
        auth_pass longer-than-eight
    }
    virtual_ipaddress {
        198.51.100.1/24
    }
}
virtual_server 192.0.2.10 443 {
    delay_loop 6.5
    lb_algo mh
    lb_kind NAT
    persistence_timeout 600
    persistence_granularity 255.255.0.0
    protocol TCP
    sorry_server 192.0.2.99 443
    quorum 2
    hysteresis 1
    quorum_up "/bin/q up"
    quorum_down /bin/qdown
    alpha
    omega
    virtualhost www.example.com
    ha_suspend
    real_server 10.1.0.1 8443 {
        weight 3
        inhibit_on_failure
        uthreshold 1000
        lthreshold 10
        notify_up /bin/up
        notify_down "/bin/down now"
        SSL_GET {
            url {
                path /health
                status_code 200
                digest 9b3a0c85a887a256d6939da88aabd8cd
                virtualhost health.example.com
            }
            url {
                path /ready
            }
            connect_ip 10.1.0.100
            connect_port 9443
            bindto 10.1.0.254
            connect_timeout 3
            retry 2
            delay_before_retry 2
            warmup 5
        }
        TCP_CHECK {
            connect_timeout 1.5
        }
    }
    real_server 10.1.0.2 8443 {
        MISC_CHECK {
            misc_path "/bin/check-backend 10.1.0.2"
            misc_timeout 4
            misc_dynamic
            user checker
            nb_get_retry 1
            delay_before_retry 0.5
            warmup 0
        }
        HTTP_GET {
            url {
                path /
            }
        }
    }
}
virtual_server fwmark 7 {
    protocol UDP
    lvs_sched rr
    lvs_method DR
    ops
}
"#;

    #[test]
    fn a_rich_config_round_trips_through_toml() {
        let config = load_str(Path::new("rich.conf"), RICH, Format::Keepalived)
            .unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(config.vrrp_instance.len(), 3);
        assert_eq!(config.track_file.len(), 2);
        assert_eq!(config.vrrp_instance[0].track_file.len(), 2);
        assert_eq!(config.vrrp_track_process.len(), 2);
        assert_eq!(config.vrrp_instance[0].track_process.len(), 2);
        assert_eq!(config.virtual_server[0].real_server[0].check.len(), 2);
        assert_eq!(
            config.global.vrrp_gna_interval,
            std::time::Duration::from_micros(2)
        );
        assert_eq!(
            config.global.script_user,
            Some(model::ScriptUser {
                user: "keepalived_script".into(),
                group: Some(":wheel".into())
            })
        );
        assert!(config.global.enable_script_security);
        assert_eq!(
            config.global.notify_fifo.as_ref().map(|f| &f.path),
            Some(&PathBuf::from("/run/keepalived.fifo"))
        );
        assert!(config.global.fifo_write_vrrp_states_on_reload);
        round_trip(&config);
    }

    /// The notify FIFOs from TOML, and their mistakes at their TOML lines.
    #[test]
    fn notify_fifos_load_from_toml() {
        let path = Path::new("a.toml");
        let text = "[global]\nfifo_write_vrrp_states_on_reload = true\n\n\
                    [global.notify_fifo]\npath = \"/run/a.fifo\"\n\
                    script = { program = \"/usr/bin/reader\", args = [\"-q\"] }\n\n\
                    [global.lvs_notify_fifo]\npath = \"/run/lvs.fifo\"\nuser = \"root\"\n";
        let global = load_str(path, text, Format::Toml).unwrap().global;
        let fifo = global.notify_fifo.unwrap();
        assert_eq!(fifo.path, PathBuf::from("/run/a.fifo"));
        assert_eq!(fifo.script.unwrap().args, ["-q"]);
        assert_eq!(
            global.lvs_notify_fifo.unwrap().user.as_deref(),
            Some("root")
        );
        assert!(global.vrrp_notify_fifo.is_none());
        assert!(global.fifo_write_vrrp_states_on_reload);
        let relative = "[global.vrrp_notify_fifo]\npath = \"x.fifo\"\ngroup = \"root\"\n";
        let problems = load_str(path, relative, Format::Toml)
            .unwrap_err()
            .to_string();
        assert!(
            problems.contains("a.toml:2:")
                && problems.contains("vrrp_notify_fifo 'x.fifo': give an absolute path"),
            "{problems}"
        );
        assert!(
            problems.contains("a.toml:3:")
                && problems.contains("vrrp_notify_fifo: group 'root' needs a user to go with it"),
            "{problems}"
        );
        assert!(
            load_str(
                path,
                "[global.notify_fifo]\npath = \"/a\"\nmode = 1\n",
                Format::Toml
            )
            .is_err()
        );
    }

    /// PING_CHECK, UDP_CHECK and DNS_CHECK read from keepalived.conf with
    /// keepalived's defaults, and the same from TOML, round trip.
    #[test]
    fn ping_udp_and_dns_checks_import_and_round_trip() {
        use model::{Check, DnsType};
        use std::time::Duration;
        let conf = "virtual_server 192.0.2.10 53 {\n  protocol UDP\n  delay_loop 7\n\
                    real_server 10.150.0.2 53 {\n\
                    PING_CHECK {\n connect_ip 10.150.0.3\n connect_port 9\n retry 2\n }\n\
                    UDP_CHECK {\n payload 0a 1B2c 3\n require_reply ca fe X0\n max_reply_length 100\n }\n\
                    UDP_CHECK {\n require_reply\n }\n\
                    DNS_CHECK {\n type aaaa\n name example.com.\n connect_timeout 2\n }\n\
                    DNS_CHECK {\n delay_before_retry 4\n }\n\
                    }\n}\n";
        let config = load_str(Path::new("a.conf"), conf, Format::Keepalived)
            .unwrap_or_else(|d| panic!("{d}"));
        let checks = &config.virtual_server[0].real_server[0].check;
        let Check::Ping(ping) = &checks[0] else {
            panic!("{checks:?}")
        };
        assert_eq!(ping.connect_ip, Some("10.150.0.3".parse().unwrap()));
        assert_eq!(
            (ping.retry, ping.delay_before_retry),
            (2, Duration::from_secs(1))
        );
        let Check::Udp(udp) = &checks[1] else {
            panic!("{checks:?}")
        };
        assert_eq!(
            udp.payload.as_ref().unwrap().bytes(),
            [0x0a, 0x1b, 0x2c, 0x03]
        );
        let pattern = udp.require_reply.as_ref().unwrap();
        assert!(pattern.matches(&[0xca, 0xfe, 0x70, 9], 0, 100));
        assert!(
            pattern.matches(&[0xca, 0xfe], 0, 100),
            "only the shorter length"
        );
        assert!(!pattern.matches(&[0xca, 0xfe, 0x71], 0, 100));
        assert!(!pattern.matches(&[0xca; 101], 0, 100));
        assert_eq!(
            (udp.retry, udp.min_reply_length, udp.max_reply_length),
            (1, 0, 100)
        );
        let Check::Udp(any) = &checks[2] else {
            panic!("{checks:?}")
        };
        assert!(any.payload.is_none());
        assert!(any.require_reply.as_ref().is_some_and(|p| p.is_empty()));
        let Check::Dns(dns) = &checks[3] else {
            panic!("{checks:?}")
        };
        assert_eq!(dns.record_type, DnsType::Aaaa);
        assert_eq!(dns.name.labels().collect::<Vec<_>>(), ["example", "com"]);
        assert_eq!((dns.retry, dns.delay_before_retry), (3, None));
        let Check::Dns(default) = &checks[4] else {
            panic!("{checks:?}")
        };
        assert_eq!(
            default.record_type,
            DnsType::Soa,
            "keepalived's DNS_DEFAULT_TYPE"
        );
        assert_eq!(default.name.labels().count(), 0, "the root");
        assert_eq!(default.delay_before_retry, Some(Duration::from_secs(4)));
        // DNS_CHECK's retries wait the delay_loop unless told otherwise.
        let vs = &config.virtual_server[0];
        assert_eq!(
            crate::check::plan::timing(&checks[3], vs).delay_before_retry,
            Duration::from_secs(7)
        );
        round_trip(&config);

        let toml = "[[virtual_server]]\nservice = { address = \"192.0.2.10:53\" }\nprotocol = \"UDP\"\n\
                    [[virtual_server.real_server]]\naddress = \"10.150.0.2:53\"\n\
                    check = [{ type = \"PING_CHECK\", connect_timeout = \"2s\" }, \
                    { type = \"UDP_CHECK\", payload = \"0102\", require_reply = \"01XX\" }, \
                    { type = \"DNS_CHECK\", record_type = \"MX\", name = \"example.org\" }]\n";
        let config =
            load_str(Path::new("a.toml"), toml, Format::Toml).unwrap_or_else(|d| panic!("{d}"));
        let checks = &config.virtual_server[0].real_server[0].check;
        assert!(
            matches!(&checks[0], Check::Ping(p) if p.connect_timeout == Duration::from_secs(2))
        );
        assert!(
            matches!(&checks[1], Check::Udp(u) if u.require_reply.as_ref().is_some_and(|p| p.matches(&[1, 0xff], 0, 255)))
        );
        assert!(matches!(&checks[2], Check::Dns(d) if d.record_type == DnsType::Mx));
        round_trip(&config);

        // Bad hex and bad names are errors where they are written.
        for (check, expected) in [
            (
                "{ type = \"UDP_CHECK\", payload = \"0g\" }",
                "'g' is not a hex digit",
            ),
            (
                "{ type = \"UDP_CHECK\", payload = \"XX\" }",
                "'X' is not a hex digit",
            ),
            ("{ type = \"DNS_CHECK\", name = \"a..b\" }", "empty label"),
            (
                "{ type = \"DNS_CHECK\", record_type = \"PTR\" }",
                "unknown variant",
            ),
        ] {
            let text = toml.replace("{ type = \"PING_CHECK\", connect_timeout = \"2s\" }", check);
            let error = load_str(Path::new("a.toml"), &text, Format::Toml).unwrap_err();
            assert!(error.to_string().contains(expected), "{check}: {error}");
        }
        for (check, expected) in [
            (
                "UDP_CHECK {\n payload zz\n }",
                "payload: 'z' is not a hex digit",
            ),
            (
                "UDP_CHECK {\n min_reply_length 9\n max_reply_length 8\n }",
                "always fail",
            ),
            ("UDP_CHECK {\n payload\n }", "'payload' needs a value"),
            ("DNS_CHECK {\n type PTR\n }", "bad value 'PTR' for 'type'"),
            ("DNS_CHECK {\n name .com\n }", "empty label"),
        ] {
            let text = format!(
                "virtual_server 192.0.2.10 53 {{\n protocol UDP\n real_server 10.150.0.2 53 {{\n{check}\n }}\n}}\n"
            );
            let error = load_str(Path::new("a.conf"), &text, Format::Keepalived).unwrap_err();
            assert!(error.to_string().contains(expected), "{check}: {error}");
        }
    }

    /// SMTP_CHECK with keepalived's defaults and its deprecated `host`
    /// blocks (one check each, and one for the block's own connection
    /// when it has one), and the alert mail settings, from keepalived.conf
    /// and from TOML, round trip.
    #[test]
    fn smtp_checks_and_alert_mail_import_and_round_trip() {
        use model::Check;
        use std::time::Duration;
        let conf = "global_defs {\n router_id lb1\n notification_email {\n a@x\n b@x\n }\n\
                    notification_email_from lb@x\n smtp_server 10.151.0.9 2525\n smtp_helo_name lb1.x\n\
                    smtp_connect_timeout 7\n smtp_alert off\n smtp_alert_vrrp\n smtp_alert_checker on\n\
                    no_email_faults\n}\n\
                    virtual_server 192.0.2.10 25 {\n  protocol TCP\n  smtp_alert\n\
                    real_server 10.151.0.2 25 {\n smtp_alert no\n\
                    SMTP_CHECK {\n }\n\
                    SMTP_CHECK {\n helo_name foo.bar\n retry 2\n delay_before_retry 5\n\
                    host {\n connect_ip 10.151.0.3\n }\n\
                    host {\n connect_ip 10.151.0.4\n connect_port 587\n bindto 10.151.0.1\n bind_port 2000\n connect_timeout 3\n warmup 0\n }\n }\n\
                    SMTP_CHECK {\n connect_timeout 10\n host {\n connect_port 26\n }\n }\n\
                    }\n}\n";
        let config = load_str(Path::new("a.conf"), conf, Format::Keepalived)
            .unwrap_or_else(|d| panic!("{d}"));
        let g = &config.global;
        assert_eq!(g.notification_email, ["a@x", "b@x"]);
        assert_eq!(g.smtp_server.as_ref().map(|s| s.port), Some(2525));
        assert_eq!(g.smtp_helo_name.as_deref(), Some("lb1.x"));
        assert_eq!(g.smtp_connect_timeout, Duration::from_secs(7));
        assert_eq!(
            (g.smtp_alert, g.smtp_alert_vrrp, g.smtp_alert_checker),
            (Some(false), Some(true), Some(true))
        );
        assert!(g.no_email_faults);
        let vs = &config.virtual_server[0];
        assert_eq!(vs.smtp_alert, Some(true));
        assert_eq!(vs.real_server[0].smtp_alert, Some(false));
        let smtp: Vec<&model::SmtpCheck> = vs.real_server[0]
            .check
            .iter()
            .map(|c| match c {
                Check::Smtp(s) => s,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(smtp.len(), 5, "{smtp:#?}");
        // The defaults: the real server's address and port, keepalived's
        // HELO name, retry 1 after 1 s.
        assert_eq!(
            (smtp[0].connect_ip, smtp[0].connect_port, smtp[0].bindto),
            (None, None, None)
        );
        assert_eq!(smtp[0].helo_name, "smtpchecker.keepalived.org");
        assert_eq!(
            (smtp[0].retry, smtp[0].delay_before_retry),
            (1, Duration::from_secs(1))
        );
        // Hosts only: one check per host, with the block's HELO and timing.
        assert_eq!(smtp[1].connect_ip, Some("10.151.0.3".parse().unwrap()));
        assert_eq!((smtp[1].helo_name.as_str(), smtp[1].retry), ("foo.bar", 2));
        assert_eq!(smtp[1].delay_before_retry, Duration::from_secs(5));
        assert_eq!(smtp[2].connect_ip, Some("10.151.0.4".parse().unwrap()));
        assert_eq!(
            (smtp[2].connect_port, smtp[2].bind_port),
            (Some(587), Some(2000))
        );
        assert_eq!(smtp[2].bindto, Some("10.151.0.1".parse().unwrap()));
        assert_eq!(smtp[2].connect_timeout, Duration::from_secs(3));
        assert_eq!(
            smtp[2].warmup,
            Some(Duration::ZERO),
            "the block's, set in a host"
        );
        assert_eq!(smtp[1].warmup, Some(Duration::ZERO));
        // A connection keyword in the block: its own check first, then the
        // host's.
        assert_eq!(
            (smtp[3].connect_port, smtp[3].connect_timeout),
            (None, Duration::from_secs(10))
        );
        assert_eq!(smtp[4].connect_port, Some(26));
        round_trip(&config);

        let toml = "[global]\nnotification_email = [\"ops@x\"]\nsmtp_server = { host = \"mail.x\" }\n\
                    smtp_alert = true\nsmtp_starttls = true\n\
                    [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n\
                    smtp_alert = false\n\
                    [[virtual_server]]\nservice = { address = \"192.0.2.10:25\" }\n\
                    [[virtual_server.real_server]]\naddress = \"10.151.0.2:25\"\n\
                    check = [{ type = \"SMTP_CHECK\", helo_name = \"me\", connect_port = 587 }]\n";
        let config =
            load_str(Path::new("a.toml"), toml, Format::Toml).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(config.global.smtp_server.as_ref().map(|s| s.port), Some(25));
        assert_eq!(config.vrrp_instance[0].smtp_alert, Some(false));
        assert!(config.global.smtp_starttls, "TOML only");
        assert!(matches!(
            &config.virtual_server[0].real_server[0].check[0],
            Check::Smtp(s) if s.helo_name == "me" && s.connect_port == Some(587)
                && s.connect_timeout == Duration::from_secs(5)
        ));
        round_trip(&config);

        for (check, expected) in [
            ("SMTP_CHECK {\n helo_name\n }", "'helo_name' needs a value"),
            (
                "SMTP_CHECK {\n bind_if eth0\n }",
                "binds its source address",
            ),
            ("SMTP_CHECK {\n host {\n delay_loop 3\n }\n }", "delay_loop"),
            ("SMTP_CHECK {\n host {\n helo_name x\n }\n }", "'helo_name'"),
            (
                "SMTP_CHECK {\n connect_port x\n }",
                "bad value 'x' for 'connect_port'",
            ),
        ] {
            let text = format!(
                "virtual_server 192.0.2.10 25 {{\n protocol TCP\n real_server 10.151.0.2 25 {{\n{check}\n }}\n}}\n"
            );
            let error = load_str(Path::new("a.conf"), &text, Format::Keepalived).unwrap_err();
            assert!(error.to_string().contains(expected), "{check}: {error}");
        }
    }

    #[test]
    fn half_open_is_a_toml_only_tcp_check_option() {
        let toml = "[[virtual_server]]\nservice = { address = \"192.0.2.10:80\" }\n\
                    [[virtual_server.real_server]]\naddress = \"10.1.0.1:80\"\n\
                    check = [{ type = \"TCP_CHECK\", half_open = true }, { type = \"TCP_CHECK\" }]\n";
        let config =
            load_str(Path::new("a.toml"), toml, Format::Toml).unwrap_or_else(|d| panic!("{d}"));
        let half_open = |check: &model::Check| matches!(check, model::Check::Tcp(c) if c.half_open);
        let checks = &config.virtual_server[0].real_server[0].check;
        assert!(half_open(&checks[0]) && !half_open(&checks[1]));
        round_trip(&config);

        // keepalived.conf keeps keepalived's keywords: a full connect, and
        // the option spelled there is refused.
        let conf = |check: &str| {
            format!(
                "virtual_server 192.0.2.10 80 {{\n  protocol TCP\n real_server 10.1.0.1 80 {{\n  TCP_CHECK {{\n{check}  }}\n }}\n}}\n"
            )
        };
        let imported = load_str(
            Path::new("a.conf"),
            &conf("   connect_timeout 2\n"),
            Format::Keepalived,
        )
        .unwrap_or_else(|d| panic!("{d}"));
        assert!(!half_open(
            &imported.virtual_server[0].real_server[0].check[0]
        ));
        assert!(!imported.to_toml().unwrap().contains("half_open"));
        let refused = load_str(
            Path::new("a.conf"),
            &conf("   half_open\n"),
            Format::Keepalived,
        )
        .unwrap_err()
        .to_string();
        assert!(refused.contains("half_open"), "{refused}");
    }

    fn toml_problems(text: &str) -> Vec<String> {
        match load_str(Path::new("a.toml"), text, Format::Toml) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn toml_unknown_field_points_at_the_key() {
        let text = "[[vrrp_instance]]\nname = \"A\"\ninterface = \"eth0\"\nvirtual_router_id = 1\nuse_ipvlan = true\n";
        let problems = toml_problems(text);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("a.toml:5:1: unknown field `use_ipvlan`"),
            "{problems:?}"
        );
    }

    #[test]
    fn toml_bad_value_names_it() {
        let text = "[[vrrp_instance]]\nname = \"A\"\ninterface = \"eth0\"\nvirtual_router_id = 1\npriority = 300\n";
        assert_eq!(
            toml_problems(text),
            ["a.toml:5:12: priority 300 is out of range 0..=255"]
        );
    }

    #[test]
    fn toml_validation_problems_point_at_keys() {
        let inst = |name: &str, vip: &str| {
            format!(
                "[[vrrp_instance]]\nname = \"{name}\"\ninterface = \"eth0\"\nvirtual_router_id = 1\npriority = 0\nvirtual_ipaddress = [{{ address = \"{vip}\" }}]\n"
            )
        };
        let text = format!(
            "{}{}[[vrrp_sync_group]]\nname = \"G\"\ngroup = [\"A\", \"C\"]\n",
            inst("A", "10.0.0.1/24"),
            inst("B", "10.0.0.1/32")
        );
        assert_eq!(
            toml_problems(&text),
            [
                "a.toml:5:1: vrrp_instance 'A': priority 0 is out of range 1..=255 (0 is reserved for a resigning master)",
                "a.toml:10:1: vrrp_instance 'B': virtual_router_id 1 on interface eth0 (IPv4) is already used by vrrp_instance 'A'",
                "a.toml:11:1: vrrp_instance 'B': priority 0 is out of range 1..=255 (0 is reserved for a resigning master)",
                "a.toml:12:22: vrrp_instance 'B': virtual address 10.0.0.1 is already held by vrrp_instance 'A'",
                "a.toml:15:15: vrrp_sync_group 'G' names unknown vrrp_instance 'C'",
            ]
        );
    }

    #[test]
    fn toml_missing_interface_is_reported() {
        let problems = toml_problems("[[vrrp_instance]]\nname = \"A\"\nvirtual_router_id = 1\n");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("a.toml:1:1: missing field `interface`"),
            "{problems:?}"
        );
    }

    #[test]
    fn unreadable_files_are_reported() {
        let err = load_file(Path::new("/nonexistent/x.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/x.toml:1:1: cannot read the file: "),
            "{err}"
        );
        let err = load_file(Path::new("/nonexistent/keepalived.conf")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/keepalived.conf:1:1: cannot read the file: "),
            "{err}"
        );
    }

    const BESIDE_KEEPALIVED: &str = "global_defs {\n  router_id lb1\n}\nvrrp_instance VI_1 {\n  \
        interface eth0\n  virtual_router_id 51\n  priority 100\n  virtual_ipaddress {\n    \
        10.0.0.100\n  }\n}\nvirtual_server 10.0.0.100 80 {\n  protocol TCP\n  lb_algo rr\n  \
        real_server 10.0.1.1 80 {\n  }\n}\n";

    /// A directory holding keepalived.conf and the TOML `toml`.
    fn beside(toml: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keepalived.conf"), BESIDE_KEEPALIVED).unwrap();
        let path = dir.path().join("appliance.toml");
        std::fs::write(&path, toml).unwrap();
        (dir, path)
    }

    #[test]
    fn a_toml_beside_a_keepalived_conf_adds_the_appliances_own_settings() {
        let (_dir, path) = beside(
            "keepalived_conf = \"keepalived.conf\"\n\n[global]\n\
             metrics_listen = \"127.0.0.1:9100\"\nstatus_page = true\ndataplane = \"nftables\"\n\
             graceful_remove = \"30s\"\n\n[network.sysctl]\n\"net.ipv4.ip_forward\" = \"1\"\n\n\
             [bgp]\nlocal_as = 65001\nrouter_id = \"10.0.0.2\"\nannounce = [\"10.0.0.100/32\"]\n\n\
             [[bgp.peer]]\naddress = \"10.0.0.1\"\nremote_as = 65000\n",
        );
        let config = load_file(&path).unwrap();
        let alone = load_file(&path.with_file_name("keepalived.conf")).unwrap();
        assert_eq!(config.global.router_id.as_deref(), Some("lb1"));
        assert_eq!(config.vrrp_instance, alone.vrrp_instance);
        assert_eq!(config.virtual_server, alone.virtual_server);
        assert_eq!(
            config.global.metrics_listen,
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert!(config.global.status_page);
        assert_eq!(config.global.dataplane, Some(model::Choice::Nftables));
        assert_eq!(
            config.global.graceful_remove,
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(config.network.sysctl["net.ipv4.ip_forward"], "1");
        let bgp = config.bgp.as_ref().expect("[bgp] from the TOML");
        assert_eq!(bgp.announce, ["10.0.0.100/32".parse().unwrap()]);
        assert_eq!(bgp.peer[0].remote_as, 65000);
        assert_eq!(config.keepalived_conf, None, "merged, it stands alone");
        // `convert` prints it whole, and that loads back the same.
        let whole = load_str(&path, &config.to_toml().unwrap(), Format::Toml).unwrap();
        assert_eq!(whole, config);
    }

    #[test]
    fn beside_a_keepalived_conf_a_setting_in_the_wrong_file_is_refused_where_it_is() {
        let (_dir, path) = beside(
            "keepalived_conf = \"keepalived.conf\"\n[global]\nrouter_id = \"x\"\n\
             metrics_listen = \"127.0.0.1:9100\"\n[[vrrp_instance]]\nname = \"VI_2\"\n\
             interface = \"eth0\"\nvirtual_router_id = 52\n",
        );
        let shown = path.with_file_name("keepalived.conf");
        let got: Vec<String> = load_file(&path)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        let at = path.display();
        assert_eq!(
            got,
            [
                format!(
                    "{at}:3:1: global.router_id comes from keepalived_conf ({}): write it in its \
                     global_defs; beside a keepalived.conf, [global] holds only dataplane, \
                     metrics_listen, status_page, status_group, graceful_remove, smtp_starttls, \
                     lvs_sloppy_tcp",
                    shown.display()
                ),
                format!(
                    "{at}:5:3: vrrp_instance comes from keepalived_conf ({}): write it there",
                    shown.display()
                ),
            ]
        );
        let (_dir, path) = beside("keepalived_conf = \"other.toml\"\n");
        let err = load_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("a TOML file: it must name a keepalived.conf"),
            "{err}"
        );
        let (_dir, path) = beside("keepalived_conf = \"missing.conf\"\n");
        let err = load_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("missing.conf:1:1: cannot read the file"),
            "{err}"
        );
    }

    /// A keepalived.conf's groups convert to TOML and read back equal.
    #[test]
    fn convert_keeps_virtual_server_groups() {
        let text = "virtual_server_group web {\n  10.0.0.1-3 80\n  2001:db8::1 443\n  fwmark 5 inet\n}\n\
            virtual_server group web {\n  protocol TCP\n  lb_kind TUN\n  real_server 10.0.1.1 80\n}\n";
        let config = load_str(Path::new("k.conf"), text, Format::Keepalived).unwrap();
        let minimal = config.to_toml_minimal().unwrap();
        assert_eq!(
            load_str(Path::new("x.toml"), &minimal, Format::Toml).unwrap(),
            config,
            "{minimal}"
        );
        for kept in [
            "group = \"web\"",
            "last = \"10.0.0.3\"",
            "family = \"inet\"",
        ] {
            assert!(minimal.contains(kept), "{kept} missing in:\n{minimal}");
        }
    }

    #[test]
    fn convert_writes_only_what_differs_from_the_defaults() {
        let text = "vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  \
            virtual_router_id 51\n  priority 100\n  advert_int 1\n  nopreempt\n  \
            virtual_ipaddress {\n    10.0.0.100\n  }\n}\n\
            virtual_server 10.0.0.100 53 {\n  delay_loop 6\n  lb_algo rr\n  \
            real_server 10.0.1.1 53 {\n    weight 1\n    MISC_CHECK {\n      misc_path /bin/true\n    }\n  }\n}\n";
        let config = load_str(Path::new("k.conf"), text, Format::Keepalived).unwrap();
        let minimal = config.to_toml_minimal().unwrap();
        assert_eq!(
            load_str(Path::new("x.toml"), &minimal, Format::Toml).unwrap(),
            config,
            "{minimal}"
        );
        // The defaults written in the source (state BACKUP, priority 100,
        // advert_int 1, weight 1) go; what differs stays, keepalived's
        // UDP for a virtual server without protocol among it.
        for gone in ["state", "priority", "advert_int", "weight", "[global]"] {
            assert!(!minimal.contains(gone), "{gone} in:\n{minimal}");
        }
        for kept in [
            "nopreempt = true",
            "delay_loop = \"6s\"",
            "lb_algo = \"rr\"",
            "protocol = \"UDP\"",
            "program = \"/bin/true\"",
        ] {
            assert!(minimal.contains(kept), "{kept} missing in:\n{minimal}");
        }
        assert!(
            minimal.len() < config.to_toml().unwrap().len() / 2,
            "{minimal}"
        );
    }

    #[test]
    fn convert_leaves_a_tracked_processs_defaults_out() {
        let text = "vrrp_track_process sshd {\n  process sshd\n  quorum 1\n  weight 0\n  delay 2\n}\n\
            vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  \
            track_process {\n    sshd\n  }\n}\n";
        let config = load_str(Path::new("k.conf"), text, Format::Keepalived).unwrap();
        let minimal = config.to_toml_minimal().unwrap();
        assert_eq!(
            load_str(Path::new("x.toml"), &minimal, Format::Toml).unwrap(),
            config,
            "{minimal}"
        );
        for gone in ["quorum", "weight = 0"] {
            assert!(!minimal.contains(gone), "{gone} in:\n{minimal}");
        }
        for kept in [
            "process = \"sshd\"",
            "fork_delay = \"2s\"",
            "terminate_delay = \"2s\"",
        ] {
            assert!(minimal.contains(kept), "{kept} missing in:\n{minimal}");
        }
    }

    #[test]
    fn beside_a_keepalived_conf_a_virtual_server_takes_the_appliances_own_keys() {
        let (_dir, path) = beside(
            "keepalived_conf = \"keepalived.conf\"\n[global]\ndataplane = \"nftables\"\n\
             [[virtual_server]]\nservice = { address = \"10.0.0.100:80\" }\nmasquerade = true\n\
             only_when_master = \"VI_1\"\n",
        );
        let config = load_file(&path).unwrap();
        let vs = &config.virtual_server[0];
        assert!(vs.masquerade);
        assert_eq!(vs.only_when_master.as_deref(), Some("VI_1"));
        assert_eq!(vs.real_server.len(), 1, "the rest is the keepalived.conf's");
        // A key keepalived has, a service it lacks, an instance it lacks.
        let (_dir, path) = beside(
            "keepalived_conf = \"keepalived.conf\"\n[global]\ndataplane = \"nftables\"\n\
             [[virtual_server]]\nservice = { address = \"10.0.0.100:80\" }\nlb_algo = \"wrr\"\n\
             only_when_master = \"VI_9\"\n\
             [[virtual_server]]\nservice = { address = \"10.0.0.101:80\" }\nmasquerade = true\n",
        );
        let got = load_file(&path).unwrap_err().to_string();
        let at = path.display();
        for expected in [
            format!("{at}:6:1: lb_algo comes from keepalived_conf"),
            format!("{at}:9:1: keepalived_conf ("),
            "has no virtual_server 10.0.0.101:80".to_string(),
            "VI_9".to_string(),
        ] {
            assert!(got.contains(&expected), "{expected} in:\n{got}");
        }
    }
}
