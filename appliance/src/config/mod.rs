//! Configuration: the native model (serde, TOML on disk), the keepalived.conf
//! importer, validation, and the diagnostics that point at problems.
//!
//! Format detection is by file name: a path ending in `.toml` is the native
//! TOML format; anything else (`keepalived.conf`, `*.conf`, no extension) is
//! read as keepalived.conf.

pub(crate) mod diag;
pub(crate) mod file;
pub(crate) mod keepalived;
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
            finish(config, map, Vec::new())
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
    map: SourceMap,
    mut errors: Vec<Diagnostic>,
) -> Result<(Config, SourceMap), Diagnostics> {
    errors.extend(validate::validate(&config, &map));
    if errors.is_empty() {
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
        let text = config.to_toml().unwrap();
        let again = load_str(Path::new("converted.toml"), &text, Format::Toml)
            .unwrap_or_else(|d| panic!("{d}\n{text}"));
        assert_eq!(&again, config, "{text}");
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
        assert_eq!(files.len(), 6);
        for file in files {
            let config = load_file(&file).unwrap_or_else(|d| panic!("{}: {d}", file.display()));
            assert!(!config.vrrp_instance.is_empty(), "{}", file.display());
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
        round_trip(&config);
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
}
