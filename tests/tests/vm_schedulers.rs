//! Every IPVS scheduler keepalived.conf's `lb_algo` accepts, and LVS-TUN
//! with traffic, on a real kernel (Debian's, under qemu), in one boot:
//! `appliance dataplane apply` programs the services, `ipvsadm -Ln` is the
//! independent witness.
//!
//! The guest holds every IPVS module the kernel package ships
//! (`vm::kernel::MODULE_DIRS`), so a scheduler missing there is one this
//! kernel lacks.

use appliance::config::model::Scheduler;
use appliance_tests::vm::{Vm, VmOutput, scenario, section};
use std::collections::BTreeMap;
use std::time::Duration;

/// The schedulers docs/config.md lists for `lb_algo`, in its order.
const DOCUMENTED: [&str; 14] = [
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos",
];

/// The schedulers the guest's kernel does not have: Debian 12's kernel is
/// Linux 6.1, and `twos` (ip_vs_twos, "weighted random twos choice")
/// came with Linux 6.2. A newer kernel that has it fails the test until
/// this list says so.
const NOT_IN_KERNEL: [&str; 1] = ["twos"];

/// The real servers of each scheduler's service: (address, weight).
const SCHED_REAL_SERVERS: [(&str, u32); 2] = [("10.0.2.11:80", 1), ("10.0.2.12:80", 2)];

const APPLY_SCHED: &str =
    "ip netns exec sched appliance dataplane apply --state /run/appliance/sched.json --config";
const APPLY_TUN: &str =
    "ip netns exec dir appliance dataplane apply --state /run/appliance/tun.json --config";

/// The LVS-TUN service: on the client's LAN; its real servers on another.
const VIP: &str = "10.0.0.100";
const TUN_REAL_SERVERS: [(&str, &str); 2] = [("rs1", "10.0.2.11"), ("rs2", "10.0.2.12")];
/// GETs from the client through the VIP.
const REQUESTS: usize = 4;

/// The VIP (port 80) of scheduler `name`'s service: 10.0.3.N, N its
/// place in [`DOCUMENTED`] from 1.
fn sched_vip(name: &str) -> String {
    let index = DOCUMENTED
        .iter()
        .position(|d| *d == name)
        .unwrap_or(DOCUMENTED.len());
    format!("10.0.3.{}", index + 1)
}

/// The scheduler flags keepalived.conf gives a scheduler's service here,
/// as keepalived.conf and `ipvsadm -Ln` name them.
fn sched_flags(name: &str) -> &'static [&'static str] {
    match name {
        "sh" => &["sh-fallback", "sh-port"],
        "mh" => &["mh-port"],
        _ => &[],
    }
}

/// keepalived.conf with one NAT virtual server per scheduler of `names`,
/// each with [`SCHED_REAL_SERVERS`] and its [`sched_flags`].
fn scheduler_config(names: &[&str]) -> String {
    let mut conf = String::new();
    for name in names {
        conf += &format!(
            "virtual_server {} 80 {{\n  lb_algo {name}\n  lb_kind NAT\n  protocol TCP\n",
            sched_vip(name)
        );
        for flag in sched_flags(name) {
            conf += &format!("  {flag}\n");
        }
        for (addr, weight) in SCHED_REAL_SERVERS {
            let (ip, port) = addr.split_once(':').unwrap();
            conf += &format!("  real_server {ip} {port} {{\n    weight {weight}\n  }}\n");
        }
        conf += "}\n";
    }
    conf
}

/// The schedulers of [`DOCUMENTED`] the kernel has.
fn available() -> Vec<&'static str> {
    DOCUMENTED
        .into_iter()
        .filter(|s| !NOT_IN_KERNEL.contains(s))
        .collect()
}

/// `cat > path` of `text`, as a script line.
fn write_file(path: &str, text: &str) -> String {
    format!("cat > {path} <<'EOF'\n{text}EOF\n")
}

/// A virtual service as `ipvsadm -Ln` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    scheduler: String,
    /// What follows the scheduler (`persistent 300`, `ops`, …).
    flags: Vec<String>,
    /// (address:port, forwarding, weight), sorted.
    destinations: Vec<(String, String, u32)>,
}

/// `ipvsadm -Ln`'s services by "PROTOCOL ADDRESS:PORT"; an error names a
/// line it does not understand.
fn parse_ipvsadm(table: &[&str]) -> Result<BTreeMap<String, Listed>, String> {
    let mut services = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in table {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            []
            | ["IP", "Virtual", "Server", ..]
            | ["Prot", ..]
            | ["->", "RemoteAddress:Port", ..] => {}
            ["->", addr, forward, weight, _active, _inactive] => {
                let service: &mut Listed =
                    current
                        .as_ref()
                        .and_then(|key| services.get_mut(key))
                        .ok_or_else(|| format!("a destination before any service: {line:?}"))?;
                let weight = weight
                    .parse()
                    .map_err(|_| format!("weight {weight:?} in {line:?}"))?;
                service
                    .destinations
                    .push((addr.to_string(), forward.to_string(), weight));
                service.destinations.sort();
            }
            [
                protocol @ ("TCP" | "UDP" | "SCTP" | "FWM"),
                address,
                scheduler,
                flags @ ..,
            ] => {
                let key = format!("{protocol} {address}");
                let listed = Listed {
                    scheduler: scheduler.to_string(),
                    flags: flags.iter().map(|f| f.to_string()).collect(),
                    destinations: Vec::new(),
                };
                if services.insert(key.clone(), listed).is_some() {
                    return Err(format!("service {key} listed twice"));
                }
                current = Some(key);
            }
            _ => return Err(format!("not an ipvsadm -Ln line: {line:?}")),
        }
    }
    Ok(services)
}

/// The scenario: the schedulers in namespace `sched` (no links: the
/// services need none to exist), then LVS-TUN across a router.
///
/// ```text
/// client 10.0.0.2 ───┐                          ┌── rs1 10.0.2.11
///                    ├─ br-front ─ rt ─ br-back ┤
/// dir 10.0.0.1 + VIP ┘   10.0.0.254  10.0.2.254 └── rs2 10.0.2.12
/// ```
/// (each real server with the VIP on tunl0)
///
/// The real servers are not on the director's LAN, so nothing but IP-in-IP
/// reaches them with the VIP as destination; they answer the client
/// directly, through the router.
fn script() -> String {
    let mut script = String::from("set -e\n");
    script += &scenario::wait_for(
        "ip netns exec dir ipvsadm -Ln >&2 || true\nip -n rt route >&2 || true",
    );
    script += "echo '--- release'\nuname -r\n\
               echo '--- shipped'\nls -1 /lib/modules/$(uname -r)/kernel/net/netfilter/ipvs/\n";

    script += "ip netns add sched\nip -n sched link set lo up\n";
    script += &write_file("/root/available.conf", &scheduler_config(&available()));
    script += &write_file("/root/all.conf", &scheduler_config(&DOCUMENTED));
    script += &format!(
        "echo '--- apply available'\n{APPLY_SCHED} /root/available.conf || echo \"exit $?\"\n\
         echo '--- table available'\nip netns exec sched ipvsadm -Ln\n\
         echo '--- apply all'\n{APPLY_SCHED} /root/all.conf 2> /tmp/all.err || echo \"exit $?\"\n\
         echo '--- apply all error'\ngrep '^error' /tmp/all.err || true\n\
         echo '--- table all'\nip netns exec sched ipvsadm -Ln\n"
    );
    // After the applies: the kernel loaded what the services named itself.
    script += &format!(
        "echo '--- modprobe'\n\
         for s in {}; do\n\
         \x20 if modprobe ip_vs_$s 2>/dev/null; then echo \"$s loads\"; else echo \"$s missing\"; fi\n\
         done\n",
        DOCUMENTED.join(" ")
    );

    script += &scenario::bridge("br-front");
    script += &scenario::bridge("br-back");
    for (name, addr) in [
        ("client", "10.0.0.2"),
        ("dir", "10.0.0.1"),
        ("rt", "10.0.0.254"),
    ] {
        script += &scenario::host("br-front", name, addr);
    }
    script += "ip link add p-rt-back type veth peer name eth1 netns rt\n\
               ip link set p-rt-back master br-back up\n\
               ip -n rt addr add 10.0.2.254/24 dev eth1\n\
               ip -n rt link set eth1 up\n\
               ip netns exec rt sysctl -qw net.ipv4.ip_forward=1\n\
               for c in all eth1; do ip netns exec rt sysctl -qw net.ipv4.conf.$c.rp_filter=0; done\n\
               for ns in client dir; do ip -n $ns route add 10.0.2.0/24 via 10.0.0.254; done\n";
    script += &format!("ip -n dir addr add {VIP}/32 dev eth0\n");
    for (name, addr) in TUN_REAL_SERVERS {
        script += &scenario::host("br-back", name, addr);
        script += &format!("ip -n {name} route add default via 10.0.2.254\n");
        script += &scenario::tun_real_server(name, VIP);
        script += &scenario::httpd(name, addr, "rt");
    }
    let mut tun =
        format!("virtual_server {VIP} 80 {{\n  lb_algo rr\n  lb_kind TUN\n  protocol TCP\n");
    for (_, addr) in TUN_REAL_SERVERS {
        tun += &format!("  real_server {addr} 80\n");
    }
    tun += "}\n";
    script += &write_file("/root/tun.conf", &tun);
    script += &format!(
        "echo '--- apply tun'\n{APPLY_TUN} /root/tun.conf\n\
         echo '--- answers'\n\
         for i in $(seq {REQUESTS}); do\n\
         \x20 ip netns exec client timeout 5 wget -qO- http://{VIP}/ || echo \"no answer ($?)\"\n\
         done\n\
         echo '--- table tun'\nip netns exec dir ipvsadm -Ln\n\
         echo '--- tunnelled'\n"
    );
    for (name, _) in TUN_REAL_SERVERS {
        script += &format!(
            "echo \"{name} $(ip netns exec {name} cat /sys/class/net/tunl0/statistics/rx_packets)\"\n"
        );
    }
    script
}

fn run() -> VmOutput {
    let out = Vm::builder()
        .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
        .script(script())
        .timeout(Duration::from_secs(180))
        .run()
        .unwrap();
    println!(
        "boot to scenario {:.2?}, whole VM run {:.2?}",
        out.boot, out.elapsed
    );
    out.assert_success();
    out
}

/// Every scheduler `lb_algo` accepts is applied to the kernel (or, for
/// the one this kernel lacks, refused, naming its service), and an LVS-TUN service
/// carries a client's requests to real servers behind a router.
#[test]
fn every_scheduler_applies_and_lvs_tun_answers_through_the_vip() {
    let accepted: Vec<&str> = Scheduler::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(accepted, DOCUMENTED, "Scheduler::ALL against the docs");
    let docs = include_str!("../../docs/config.md");
    let listed = format!("`lb_algo`/`lvs_sched` ({})", DOCUMENTED.join(" "));
    assert!(docs.contains(&listed), "docs/config.md lists {listed}");

    let out = run();
    let stdout = &out.stdout;
    let release = section(stdout, "release").join("");

    // What the kernel package ships, seen from inside the guest.
    let shipped = section(stdout, "shipped");
    let has_module = |s: &str| {
        let stem = format!("ip_vs_{s}.ko");
        shipped
            .iter()
            .any(|f| *f == stem || f.starts_with(&format!("{stem}.")))
    };
    let missing: Vec<&str> = DOCUMENTED.into_iter().filter(|s| !has_module(s)).collect();
    assert_eq!(
        missing, NOT_IN_KERNEL,
        "kernel {release}: the schedulers without a module (ip_vs_<name>.ko*)\n{out}"
    );
    let modprobe = section(stdout, "modprobe");
    assert_eq!(modprobe.len(), DOCUMENTED.len(), "{out}");
    for line in modprobe {
        let (name, outcome) = line.split_once(' ').unwrap_or((line, ""));
        let expected = if NOT_IN_KERNEL.contains(&name) {
            "missing"
        } else {
            "loads"
        };
        assert_eq!(
            outcome, expected,
            "kernel {release}: modprobe ip_vs_{name}\n{out}"
        );
    }

    // Every scheduler the kernel has: one service each, with both real
    // servers, and nothing else.
    let changes = format!("ipvs: {} change(s)", 3 * available().len());
    assert_eq!(
        section(stdout, "apply available").first(),
        Some(&changes.as_str()),
        "{out}"
    );
    let table = section(stdout, "table available");
    let services = parse_ipvsadm(&table).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let destinations: Vec<(String, String, u32)> = SCHED_REAL_SERVERS
        .iter()
        .map(|(addr, weight)| (addr.to_string(), "Masq".to_string(), *weight))
        .collect();
    for name in available() {
        let key = format!("TCP {}:80", sched_vip(name));
        let listed = services
            .get(&key)
            .unwrap_or_else(|| panic!("lb_algo {name}: no {key} in the kernel\n{out}"));
        assert_eq!(
            (listed.scheduler.as_str(), &listed.destinations),
            (name, &destinations),
            "lb_algo {name}: {key} in the kernel\n{out}"
        );
        // ipvsadm names the flags the kernel holds, as keepalived.conf
        // does (`(sh-fallback,sh-port)`).
        let flags = listed.flags.join(" ");
        let wanted = sched_flags(name);
        assert!(
            wanted.iter().all(|f| flags.contains(f)) && wanted.is_empty() == flags.is_empty(),
            "lb_algo {name}: flags {wanted:?}, the kernel has {flags:?}\n{out}"
        );
    }
    assert_eq!(services.len(), available().len(), "{services:?}\n{out}");

    // A config that adds a scheduler the kernel lacks fails, naming the
    // service that asks for it, what the kernel said and what it means
    // (IPVS's ENOENT: no module ip_vs_<name>), and leaves the table as it
    // was.
    assert_eq!(section(stdout, "apply all"), ["exit 1"], "{out}");
    let error = section(stdout, "apply all error");
    let named = NOT_IN_KERNEL.iter().any(|name| {
        error
            == [format!(
                "error: add service TCP {}:80: IPVS: the kernel refused: No such file or directory (os error 2) \
                 (the kernel has no scheduler '{name}': module ip_vs_{name} is missing)",
                sched_vip(name)
            )]
    });
    assert!(named, "lb_algo {NOT_IN_KERNEL:?}: {error:?}\n{out}");
    assert_eq!(section(stdout, "table all"), table, "{out}");

    // LVS-TUN: the table, the answers, and the tunnel that carried them.
    let tun = parse_ipvsadm(&section(stdout, "table tun")).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let expected = Listed {
        scheduler: "rr".into(),
        flags: Vec::new(),
        destinations: TUN_REAL_SERVERS
            .iter()
            .map(|(_, addr)| (format!("{addr}:80"), "Tunnel".to_string(), 1))
            .collect(),
    };
    assert_eq!(
        tun.get(&format!("TCP {VIP}:80")),
        Some(&expected),
        "{tun:?}\n{out}"
    );
    assert_eq!(tun.len(), 1, "{tun:?}\n{out}");
    assert_eq!(
        section(stdout, "apply tun").first(),
        Some(&"ipvs: 3 change(s)"),
        "{out}"
    );
    let answers = section(stdout, "answers");
    assert!(
        answers.len() == REQUESTS
            && answers.iter().all(|a| *a == "rs1" || *a == "rs2")
            && answers.windows(2).all(|w| w[0] != w[1]),
        "round robin through the VIP should alternate, got {answers:?}\n{out}"
    );
    // Each connection brought at least its SYN, its request and its FIN in
    // through tunl0.
    let tunnelled = section(stdout, "tunnelled");
    assert_eq!(tunnelled.len(), TUN_REAL_SERVERS.len(), "{out}");
    for line in tunnelled {
        let (name, packets) = line.split_once(' ').unwrap_or((line, ""));
        let packets: usize = packets
            .parse()
            .unwrap_or_else(|_| panic!("{line:?}\n{out}"));
        let connections = answers.iter().filter(|a| **a == name).count();
        assert!(
            packets >= 3 * connections,
            "{name}: {packets} packets in on tunl0 for {connections} connections\n{out}"
        );
    }
}

#[test]
fn ipvsadm_listings_parse_into_services_and_destinations() {
    let table = [
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        "TCP  10.0.3.1:80 rr",
        "  -> 10.0.2.12:80                 Masq    2      0          0",
        "  -> 10.0.2.11:80                 Masq    1      0          0",
        "FWM  7 sh persistent 300",
        "  -> 10.0.2.11:80                 Tunnel  1      1          3",
    ];
    let services = parse_ipvsadm(&table).unwrap();
    assert_eq!(
        services["TCP 10.0.3.1:80"],
        Listed {
            scheduler: "rr".into(),
            flags: Vec::new(),
            destinations: vec![
                ("10.0.2.11:80".into(), "Masq".into(), 1),
                ("10.0.2.12:80".into(), "Masq".into(), 2),
            ],
        }
    );
    assert_eq!(services["FWM 7"].flags, ["persistent", "300"]);
    assert_eq!(services.len(), 2);
    assert!(parse_ipvsadm(&["  -> 10.0.2.11:80 Masq 1 0 0"]).is_err());
    assert!(parse_ipvsadm(&["garbage"]).is_err());
}
