//! keepalived's `use_vmac` and `vmac_xmit_base` through `appliance run`
//! in network namespaces: the kernel's links and addresses on the
//! directors, the client's neighbour table, and tcpdump on the LAN are the
//! witnesses.

use appliance_tests::daemon::{Daemon, refused_start};
use appliance_tests::netns::Host;
use appliance_tests::netns::Process;
use appliance_tests::pair::{ELECTION, Net, Pair, Side};
use appliance_tests::vrrp_conf::Instance;
use appliance_tests::web::{Httpd, curl};
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

const PORT: u16 = 8080;

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -d -o link show NAME` in `host`, or `None` if there is no such link.
fn link(host: &Host, name: &str) -> Option<String> {
    let out = host.ip(&["-d", "-o", "link", "show", "dev", name]).ok()?;
    out.status.success().then(|| text(&out))
}

/// The MAC of `host`'s eth0.
fn eth0_mac(host: &Host) -> String {
    let shown = link(host, "eth0").expect("eth0");
    let after = shown.split("link/ether ").nth(1).expect("an Ethernet link");
    after.split_whitespace().next().unwrap().to_string()
}

/// `ip -o -4 addr show dev DEV` in `host`.
fn addresses(host: &Host, dev: &str) -> String {
    text(
        &host
            .ip(&["-o", "-4", "addr", "show", "dev", dev])
            .expect("ip addr"),
    )
}

/// The link-layer address `host` has for `ip`, if any.
fn neighbour(host: &Host, ip: &str) -> Option<String> {
    let shown = text(&host.ip(&["neigh", "show", ip]).expect("ip neigh"));
    let after = shown.split("lladdr ").nth(1)?;
    after.split_whitespace().next().map(str::to_string)
}

/// Polls `ready` every 50 ms until it holds, at most `within`.
fn wait_for(what: &str, within: Duration, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < within, "{what}: not after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `host` has no link `name`.
fn wait_gone(host: &Host, name: &str, within: Duration) {
    let start = Instant::now();
    while link(host, name).is_some() {
        assert!(
            start.elapsed() < within,
            "{name} still on {} after {within:?}",
            host.name()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Ethernet source of the first `count` VRRP packets on `host`'s eth0
/// (tcpdump -e: `SRC > DST, ethertype IPv4 ...`).
fn advert_sources(host: &Host, count: usize) -> Vec<String> {
    let count = count.to_string();
    let out = host
        .run(
            "timeout",
            &[
                "10",
                "tcpdump",
                "-i",
                "eth0",
                "-e",
                "-n",
                "-l",
                "-c",
                &count,
                "ip proto 112",
            ],
        )
        .expect("tcpdump sees the adverts (install the Debian package tcpdump)");
    text(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// A tcpdump on a host's eth0 printing what matches a filter.
struct Capture(Process);

impl Capture {
    /// Starts it and waits until it listens.
    fn start(host: &Host, filter: &str) -> appliance_tests::error::Result<Self> {
        let mut cmd = host.command("tcpdump");
        cmd.args(["-i", "eth0", "-e", "-n", "-l", "-U", filter])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut tcpdump = host.spawn(&mut cmd)?;
        let stderr = tcpdump.take_stderr().expect("tcpdump's stderr");
        let listening = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("listening on"));
        assert!(listening, "tcpdump did not start (Debian package tcpdump)");
        Ok(Self(tcpdump))
    }

    /// Stops it; the lines it printed.
    fn stop(mut self) -> Vec<String> {
        self.0.signal("INT").expect("stopping tcpdump");
        let mut text = String::new();
        if let Some(mut out) = self.0.take_stdout() {
            out.read_to_string(&mut text).expect("tcpdump's output");
        }
        self.0.wait(Duration::from_secs(5)).expect("tcpdump ends");
        // tcpdump ends its output with a blank line when interrupted.
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// Fetches the page of whoever holds the VIP, from the client, retrying
/// while a takeover settles.
fn served_by(p: &Pair, within: Duration) -> Option<String> {
    let url = format!("http://{}:{PORT}/", p.vip);
    let start = Instant::now();
    loop {
        if let Some(body) = curl(p.lan.host("c"), &url, Duration::from_secs(2)).expect("curl") {
            return Some(body.trim().to_string());
        }
        if start.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `use_vmac`: the master makes `vrrp.153`, a private macvlan on eth0 with
/// the virtual MAC 00:00:5e:00:01:99 (VRID 153), and holds the VIP there,
/// not on eth0; its adverts leave from the virtual MAC. The client reaches
/// the VIP and knows it at the virtual MAC (control: not at m's own MAC).
/// After m stops, its macvlan is gone and eth0's ARP settings are back;
/// b answers for the VIP while the client's neighbour entry has kept the
/// same virtual MAC throughout. From the start on, nothing but adverts and
/// ARP left from the virtual MAC (b's macvlan, up all along, sent no IPv6
/// or IGMP that would move the switch's entry for the MAC to b).
#[test]
fn use_vmac_keeps_the_vips_mac_across_a_failover() {
    let net = Net(153);
    let vip = Net::cidr(&net.vip());
    let virtual_mac = "00:00:5e:00:01:99";
    let m = Instance::new("m", 153, 150, &vip)
        .initial_master()
        .use_vmac(None);
    let b = Instance::new("b", 153, 100, &vip).use_vmac(None);
    let mut spy = None;
    let mut p = Pair::start_with(net, m, b, &net.vip(), |lan| {
        let filter = format!("ether src {virtual_mac} and not (ip proto 112 or arp)");
        spy = Some(Capture::start(lan.host("c"), &filter)?);
        Ok(())
    })
    .expect("m and b elect m");
    let _m_web = Httpd::start(p.host(Side::M), PORT).expect("httpd on m");
    let _b_web = Httpd::start(p.host(Side::B), PORT).expect("httpd on b");

    for side in [Side::M, Side::B] {
        let host = p.host(side);
        let shown =
            link(host, "vrrp.153").unwrap_or_else(|| panic!("no vrrp.153 on {}", host.name()));
        assert!(
            shown.contains(&format!("link/ether {virtual_mac}"))
                && shown.contains("vrrp.153@eth0")
                && shown.contains("macvlan mode private"),
            "{shown}"
        );
    }
    let m_mac = eth0_mac(p.host(Side::M));
    assert!(
        addresses(p.host(Side::M), "vrrp.153").contains(&format!("inet {vip} ")),
        "the VIP is on m's vrrp.153"
    );
    assert!(
        !addresses(p.host(Side::M), "eth0").contains(&net.vip()),
        "the VIP is not on m's eth0"
    );
    let sources = advert_sources(p.lan.host("c"), 3);
    assert!(
        sources.len() == 3 && sources.iter().all(|s| s == virtual_mac),
        "m's adverts come from the virtual MAC: {sources:?}"
    );

    assert_eq!(
        served_by(&p, Duration::from_secs(5)).as_deref(),
        Some("m"),
        "the client reaches the VIP on m"
    );
    let c = p.lan.host("c");
    assert_eq!(neighbour(c, &net.vip()).as_deref(), Some(virtual_mac));
    assert_ne!(virtual_mac, m_mac, "control: m's own MAC is another one");

    let stop = p.mark("stop m");
    p.m.stop().expect("m stops");
    wait_gone(p.host(Side::M), "vrrp.153", Duration::from_secs(5));
    let arp = |key: &str| {
        let out = p
            .host(Side::M)
            .run("sysctl", &["-n", &format!("net.ipv4.conf.eth0.{key}")])
            .expect("sysctl");
        text(&out).trim().to_string()
    };
    assert_eq!(
        (arp("arp_ignore"), arp("arp_filter"), arp("arp_announce")),
        ("0".into(), "0".into(), "0".into()),
        "m's eth0 has its ARP settings back"
    );
    p.host(Side::B)
        .wait_address(p.vip, true, ELECTION)
        .expect("b takes the VIP");
    p.b.wait_notify(appliance::vrrp::machine::State::Master, &stop, ELECTION)
        .expect("b is master");
    assert!(
        addresses(p.host(Side::B), "vrrp.153").contains(&format!("inet {vip} ")),
        "the VIP is on b's vrrp.153"
    );
    assert_eq!(
        served_by(&p, Duration::from_secs(10)).as_deref(),
        Some("b"),
        "the VIP is answered by b"
    );
    assert_eq!(
        neighbour(p.lan.host("c"), &net.vip()).as_deref(),
        Some(virtual_mac),
        "the client still knows the VIP at the virtual MAC"
    );
    let leaked = spy.expect("the capture").stop();
    assert!(
        leaked.is_empty(),
        "only adverts and ARP come from the virtual MAC: {leaked:?}"
    );
}

/// `vmac_xmit_base`: the VIP is on the macvlan, but the adverts leave from
/// eth0 with its own MAC (control: the test above sees the virtual MAC),
/// and b, taking them on its eth0, stays backup (b replaced a macvlan of
/// the name it found, in another mode). A restart (SIGQUIT)
/// leaves the macvlan with the VIP, and m takes it over. Reloaded without
/// `use_vmac`, m deletes its macvlan and holds the VIP on eth0. A TOML
/// config whose macvlan name is an interface of another kind is refused
/// at start, and that interface is left alone. When an instance's
/// interface is deleted (its macvlan with it) and made again, the
/// instance makes its macvlan again on the new one.
#[test]
fn vmac_xmit_base_advertises_from_the_base_mac() {
    let net = Net(154);
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 154, 150, &vip)
        .initial_master()
        .use_vmac(Some("vm154"))
        .vmac_xmit_base();
    let b = Instance::new("b", 154, 100, &vip)
        .use_vmac(Some("vm154"))
        .vmac_xmit_base();
    // b finds a macvlan of the name that is not its (bridge mode, a
    // random MAC): it replaces it.
    let mut p = Pair::start_with(net, m.clone(), b, &net.vip(), |lan| {
        lan.host("b").ip(&[
            "link", "add", "vm154", "link", "eth0", "type", "macvlan", "mode", "bridge",
        ])?;
        Ok(())
    })
    .expect("m and b elect m");
    let shown = link(p.host(Side::M), "vm154").expect("m made vm154");
    assert!(shown.contains("link/ether 00:00:5e:00:01:9a"), "{shown}");
    let replaced = link(p.host(Side::B), "vm154").expect("b's vm154");
    assert!(
        replaced.contains("link/ether 00:00:5e:00:01:9a")
            && replaced.contains("macvlan mode private"),
        "{replaced}"
    );
    assert!(
        addresses(p.host(Side::M), "vm154").contains(&format!("inet {vip} ")),
        "the VIP is on m's vm154"
    );
    let m_mac = eth0_mac(p.host(Side::M));
    let sources = advert_sources(p.lan.host("c"), 3);
    assert!(
        sources.len() == 3 && sources.iter().all(|s| *s == m_mac),
        "m's adverts come from its eth0's MAC {m_mac}: {sources:?}"
    );
    p.hold(
        Side::M,
        p.b_conf.master_down_interval() + Duration::from_secs(1),
    )
    .expect("b hears m on eth0 and stays backup");

    // A restart (SIGQUIT) leaves the macvlan with the VIP, and the next
    // start takes it over as it is.
    p.mark("SIGQUIT m, start m");
    p.m.signal("QUIT").unwrap();
    assert!(
        p.m.wait_exit().unwrap().success(),
        "SIGQUIT is a clean exit"
    );
    // `7: vm154@eth0: ...`: the interface's index.
    let index = |line: &str| line.split(':').next().unwrap_or_default().to_string();
    let kept = link(p.host(Side::M), "vm154").expect("vm154 stays across a restart");
    assert_eq!(index(&kept), index(&shown), "the same macvlan");
    p.m.restart(p.lan.host("m")).unwrap();
    p.hold(Side::M, Duration::from_secs(3))
        .expect("m keeps the VIP through its restart");
    let taken = link(p.host(Side::M), "vm154").expect("vm154 after the restart");
    assert_eq!(index(&taken), index(&shown), "m took the macvlan over");

    // A reload that changes the instance starts it anew, with a new
    // macvlan, which gets the VIP back.
    let changed = m.clone().global("vrrp_garp_master_repeat 3");
    p.m.write_config(&changed.render()).unwrap();
    p.m.signal("HUP").unwrap();
    wait_for("a new vm154 on m", Duration::from_secs(10), || {
        link(p.host(Side::M), "vm154").is_some_and(|l| index(&l) != index(&shown))
    });
    wait_for("the VIP on m's new vm154", ELECTION, || {
        addresses(p.host(Side::M), "vm154").contains(&format!("inet {vip} "))
    });
    p.hold(Side::M, Duration::from_secs(2))
        .expect("m alone holds the VIP after the reload");

    let mut plain = m;
    plain.use_vmac = None;
    plain.vmac_xmit_base = false;
    p.m.write_config(&plain.render()).unwrap();
    p.m.signal("HUP").unwrap();
    wait_gone(p.host(Side::M), "vm154", Duration::from_secs(10));
    p.host(Side::M)
        .wait_address(p.vip, true, ELECTION)
        .expect("m holds the VIP again");
    assert!(
        addresses(p.host(Side::M), "eth0").contains(&format!("inet {vip} ")),
        "without use_vmac the VIP is on m's eth0"
    );

    let c = p.lan.host("c");
    // A veth (this kernel may have no dummy links) named like the macvlan.
    c.ip(&[
        "link", "add", "vrrp.154", "type", "veth", "peer", "name", "peer154",
    ])
    .expect("a veth named like the macvlan");
    let toml = "[global]\nrouter_id = \"c\"\n\n[[vrrp_instance]]\nname = \"VI_1\"\n\
                interface = \"eth0\"\nvirtual_router_id = 154\npriority = 50\nuse_vmac = true\n\n\
                [[vrrp_instance.virtual_ipaddress]]\naddress = \"10.154.0.100/24\"\n";
    let refusal = refused_start(c, toml).expect("a name taken by a veth is refused");
    assert!(
        refusal
            .stderr
            .contains("vrrp.154: an interface of that name exists and is not a macvlan"),
        "{}",
        refusal.stderr
    );
    let kept = link(c, "vrrp.154").expect("the veth is left alone");
    assert!(kept.contains("veth"), "{kept}");

    // A lone master on a link of c's own, lan2, away from the LAN.
    let lan2 = || {
        c.ip(&[
            "link", "add", "lan2", "type", "veth", "peer", "name", "lan2p",
        ])
        .expect("lan2");
        c.ip(&["addr", "add", "10.254.0.1/24", "dev", "lan2"])
            .expect("lan2's address");
        for dev in ["lan2p", "lan2"] {
            c.ip(&["link", "set", dev, "up"]).expect("lan2 up");
        }
    };
    lan2();
    let conf = Instance::new("c", 77, 150, "10.254.0.100/24")
        .initial_master()
        .use_vmac(None)
        .render()
        .replace("interface eth0", "interface lan2");
    let mut lone = Daemon::start(c, &conf).expect("c runs an instance on lan2");
    let on_lan2 = || {
        link(c, "vrrp.77").is_some_and(|l| l.contains("vrrp.77@lan2"))
            && addresses(c, "vrrp.77").contains("inet 10.254.0.100/24 ")
    };
    wait_for("the VIP on vrrp.77", ELECTION, on_lan2);
    c.ip(&["link", "del", "lan2"]).expect("lan2 deleted");
    wait_gone(c, "vrrp.77", Duration::from_secs(5));
    lan2();
    wait_for(
        "vrrp.77 made again on the new lan2, holding the VIP",
        Duration::from_secs(30),
        on_lan2,
    );
    lone.stop().expect("c stops");
    wait_gone(c, "vrrp.77", Duration::from_secs(5));
}
