//! keepalived.conf keywords whose effect is on the kernel, as keepalived's
//! documentation writes them, through `appliance run` in network
//! namespaces: the kernel's own view (`ip addr`) is the witness.

use appliance_tests::pair::{Net, Pair, Side};
use appliance_tests::vrrp_conf::Instance;
use std::net::IpAddr;
use std::time::Duration;

/// Waits for something expected within a protocol interval get this much
/// slack before the test gives up.
const SLACK: Duration = Duration::from_secs(3);

/// `virtual_ipaddress { ADDR/LEN scope link label eth0:lk }`: the VIP is
/// added with the scope and label given, beside one with neither (scope
/// global, the kernel's default).
#[test]
fn a_vips_scope_and_label_reach_the_kernel() {
    let net = Net(134);
    let vip = Net::cidr(&net.vip());
    let mut m = Instance::new("m", 134, 150, &vip).initial_master();
    m.vips
        .push("10.134.0.101/32 scope link label eth0:lk".into());
    let b = Instance::new("b", 134, 100, &vip);
    let p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
    let out = p
        .host(Side::M)
        .ip(&["-o", "-4", "addr", "show", "dev", "eth0"])
        .expect("ip addr");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |addr: &str| {
        shown
            .lines()
            .find(|l| l.contains(&format!("inet {addr} ")))
            .unwrap_or_else(|| panic!("{addr} not on m:\n{shown}"))
            .to_string()
    };
    let scoped = line("10.134.0.101/32");
    assert!(
        scoped.contains("scope link") && scoped.contains("eth0:lk"),
        "{scoped}"
    );
    assert!(line(&vip).contains("scope global"), "{shown}");
}

/// keepalived's rolling reload: the master is reloaded with one more VIP
/// first. It keeps MASTER and adds the VIP in place (no failover), and its
/// adverts now list two VIPs where the backup expects one. A backup with
/// `vrrp_skip_check_adv_addr` goes on taking them (it checked that
/// master's addresses when it first heard it); one without drops them as
/// an address mismatch and takes the VIP after Master_Down_Interval,
/// which is why keepalived's sample config sets the option.
#[test]
fn a_master_reloaded_with_a_new_vip_keeps_a_backup_that_skips_the_address_check() {
    for skip in [true, false] {
        let n = if skip { 135 } else { 136 };
        let net = Net(n);
        let vip = Net::cidr(&net.vip());
        let skipping = |text: String| {
            if skip {
                text.replace(
                    "global_defs {\n",
                    "global_defs {\n  vrrp_skip_check_adv_addr\n",
                )
            } else {
                text
            }
        };
        let m = Instance::new("m", n, 150, &vip).initial_master();
        let b = Instance::new("b", n, 100, &vip);
        let p = Pair::start(net, m.clone(), b.clone(), &net.vip()).expect("m and b elect m");
        p.m.write_config(&skipping(m.render())).unwrap();
        p.m.signal("HUP").unwrap();
        p.b.write_config(&skipping(b.render())).unwrap();
        p.b.signal("HUP").unwrap();
        // The option restarts both instances (m resigns and preempts back).
        p.wait_holder(Side::M, Duration::from_secs(15))
            .expect("m holds the VIP again");
        p.hold(Side::M, Duration::from_secs(2))
            .expect("m alone holds the VIP");

        let mut more = m.clone();
        let second: IpAddr = format!("10.{n}.0.101").parse().unwrap();
        more.vips.push(format!("{second}/24"));
        p.m.write_config(&skipping(more.render())).unwrap();
        let reload = p.mark("reload m with a second VIP");
        p.m.signal("HUP").unwrap();
        p.host(Side::M)
            .wait_address(second, true, SLACK)
            .expect("m adds the new VIP");
        let mdi = p.b_conf.master_down_interval();
        if skip {
            p.hold(Side::M, mdi + Duration::from_secs(2))
                .expect("b stays backup: m alone holds the VIP");
        } else {
            p.host(Side::B)
                .wait_address(p.vip, true, mdi + SLACK)
                .expect("b, dropping m's adverts, takes the VIP");
        }
        let m_changes: Vec<_> =
            p.m.timeline()
                .unwrap()
                .into_iter()
                .filter(|e| e.after(&reload) && e.entered().is_some())
                .collect();
        assert!(m_changes.is_empty(), "m left MASTER: {m_changes:?}");
    }
}

/// The first `count` VRRP packets `host` sees on its eth0, as tcpdump
/// prints them (`SRC > DST: VRRPv2, Advertisement, ...`).
fn vrrp_seen(host: &appliance_tests::netns::Host, count: usize) -> Vec<String> {
    let count = count.to_string();
    let out = host
        .run(
            "timeout",
            &[
                "10",
                "tcpdump",
                "-i",
                "eth0",
                "-n",
                "-l",
                "-c",
                &count,
                "ip proto 112",
            ],
        )
        .expect("tcpdump sees the adverts (install the Debian package tcpdump)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `vrrp_mcast_group4` in both directors' global_defs: m's adverts go to
/// that group and b, joined to it, hears them and stays backup. Reloaded
/// with the RFC's group, b no longer hears m (m's adverts are not sent to
/// 224.0.0.18, and b's socket refuses adverts to another group) and takes
/// the VIP after its Master_Down_Interval: the group is what carries the
/// election.
#[test]
fn a_configured_multicast_group_carries_the_adverts_and_only_it() {
    let net = Net(137);
    let vip = Net::cidr(&net.vip());
    let group = "224.0.0.99";
    let m = Instance::new("m", 137, 150, &vip)
        .initial_master()
        .global(&format!("vrrp_mcast_group4 {group}"));
    let b = Instance::new("b", 137, 100, &vip).global(&format!("vrrp_mcast_group4 {group}"));
    let p = Pair::start(net, m, b.clone(), &net.vip()).expect("m and b elect m");
    let mdi = p.b_conf.master_down_interval();
    p.hold(Side::M, mdi + Duration::from_secs(1))
        .expect("b hears m on the group and stays backup");
    let seen = vrrp_seen(p.lan.host("c"), 3);
    let from_m = format!("{} > {group}: VRRPv2", net.m());
    assert!(
        seen.len() == 3 && seen.iter().all(|l| l.contains(&from_m)),
        "only m's adverts, to {group}: {seen:?}"
    );

    let mut rfc = b;
    rfc.globals.clear();
    p.b.write_config(&rfc.render()).unwrap();
    p.b.signal("HUP").unwrap();
    p.host(Side::B)
        .wait_address(p.vip, true, mdi + SLACK)
        .expect("b, deaf to m's group, takes the VIP");
    assert!(
        p.host(Side::M).has_address(p.vip).expect("m's addresses"),
        "m, hearing nothing on its group from b, keeps the VIP"
    );
}

/// The gratuitous ARPs `host` sees on its eth0 until `count` or 15 s, as
/// (kernel timestamp in seconds, VIP), from tcpdump started before `act`
/// runs: ARP requests whose sender and target address are the same.
fn gratuitous_arps(
    host: &appliance_tests::netns::Host,
    count: usize,
    act: impl FnOnce(),
) -> Vec<(f64, String)> {
    use std::io::{BufRead, BufReader};
    let count = count.to_string();
    let mut cmd = host.command("timeout");
    cmd.args([
        "15",
        "tcpdump",
        "-i",
        "eth0",
        "-n",
        "-l",
        "-tt",
        "-c",
        &count,
        "arp[6:2] = 1 and arp[14:4] = arp[24:4]",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut tcpdump = host
        .spawn(&mut cmd)
        .expect("tcpdump starts (install the Debian package tcpdump)");
    let mut stderr = BufReader::new(tcpdump.take_stderr().expect("tcpdump's stderr"));
    let mut said = String::new();
    while !said.contains("listening on") {
        let read = stderr.read_line(&mut said).expect("tcpdump's stderr");
        assert!(read > 0, "tcpdump stopped before listening: {said}");
    }
    act();
    let stdout = BufReader::new(tcpdump.take_stdout().expect("tcpdump's stdout"));
    stdout
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            // "1733512345.123456 ARP, Request who-has 10.158.0.100 tell 10.158.0.100, length 28"
            let mut words = l.split_whitespace();
            let at: f64 = words.next()?.parse().ok()?;
            let vip = l.split("who-has ").nth(1)?.split_whitespace().next()?;
            Some((at, vip.to_string()))
        })
        .collect()
}

/// `vrrp_garp_interval 0.2` on b: taking over with three VIPs and
/// `vrrp_garp_master_repeat 2`, b's six gratuitous ARPs go out one at least
/// 200 ms after the other, in the order of the burst, every VIP announced
/// twice; without the option the same burst leaves at once.
#[test]
fn vrrp_garp_interval_spaces_a_new_masters_gratuitous_arps() {
    for (n, interval) in [(158, Some(0.2)), (159, None)] {
        let net = Net(n);
        let vip = Net::cidr(&net.vip());
        let extra = [format!("10.{n}.0.101/24"), format!("10.{n}.0.102/24")];
        let mut m = Instance::new("m", n, 150, &vip).initial_master();
        m.vips.extend(extra.iter().cloned());
        let mut b = Instance::new("b", n, 100, &vip).global("vrrp_garp_master_repeat 2");
        if let Some(interval) = interval {
            b = b.global(&format!("vrrp_garp_interval {interval}"));
        }
        b.vips.extend(extra.iter().cloned());
        let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
        let seen = gratuitous_arps(p.lan.host("c"), 6, || {
            p.m.stop().expect("m stops");
        });
        assert_eq!(seen.len(), 6, "b's burst: {seen:?}");
        for vip in [net.vip(), format!("10.{n}.0.101"), format!("10.{n}.0.102")] {
            let times = seen.iter().filter(|(_, v)| *v == vip).count();
            assert_eq!(times, 2, "{vip} announced twice: {seen:?}");
        }
        let gaps: Vec<f64> = seen.windows(2).map(|w| w[1].0 - w[0].0).collect();
        match interval {
            // The pacing's timer can only be late, never early; but the
            // capture stamps each ARP when it reaches c, a few ms after b
            // sent it on a loaded machine (one gap came out 196.8 ms): each
            // gap may lose that delivery jitter, the whole burst only the
            // first packet's.
            Some(interval) => {
                assert!(
                    gaps.iter().all(|g| *g >= interval - 0.02),
                    "paced {interval} s apart: gaps {gaps:?}"
                );
                assert!(
                    seen[5].0 - seen[0].0 >= 5.0 * interval - 0.01,
                    "paced {interval} s apart: gaps {gaps:?}"
                );
            }
            None => assert!(
                seen[5].0 - seen[0].0 < 0.1,
                "unpaced, the burst leaves together: gaps {gaps:?}"
            ),
        }
    }
}

/// Reads `/proc/sys/net/ipv4/conf/eth0/promote_secondaries` on `side`.
fn promote_secondaries(p: &Pair, side: Side) -> String {
    let out = p
        .host(side)
        .run("cat", &["/proc/sys/net/ipv4/conf/eth0/promote_secondaries"])
        .expect("read the sysctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `promote_secondaries` on m's instance (both interfaces start at 0):
/// while m runs its eth0 has it, so deleting m's own address, the
/// primary of the VIP's subnet, promotes the VIP instead of deleting it
/// with it; m's stop puts the 0 back. The control: b, without it, loses
/// the VIP with its own address, as the kernel does by default.
#[test]
fn promote_secondaries_keeps_the_vip_when_the_primary_address_goes() {
    let net = Net(166);
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 166, 150, &vip)
        .initial_master()
        .line("promote_secondaries");
    let b = Instance::new("b", 166, 100, &vip);
    let mut p = Pair::start_with(net, m, b, &net.vip(), |lan| {
        for host in ["m", "b"] {
            lan.host(host)
                .sysctl("net.ipv4.conf.eth0.promote_secondaries", "0")?;
        }
        Ok(())
    })
    .expect("m and b elect m");
    p.wait_holder(Side::M, SLACK).expect("the VIP on m");
    assert_eq!(promote_secondaries(&p, Side::M), "1", "set while m runs");
    assert_eq!(
        promote_secondaries(&p, Side::B),
        "0",
        "b does not ask for it"
    );
    let vip_addr: IpAddr = net.vip().parse().unwrap();
    let own = format!("{}/24", net.m());
    p.host(Side::M)
        .ip(&["addr", "del", &own, "dev", "eth0"])
        .expect("delete m's own address");
    assert!(
        p.host(Side::M).has_address(vip_addr).unwrap(),
        "the VIP was promoted to primary, not deleted with m's address"
    );

    p.m.stop().expect("m stops");
    assert_eq!(
        promote_secondaries(&p, Side::M),
        "0",
        "m's stop puts the 0 back"
    );
    // m's resignation may not have gone out without its address.
    let within = p.b_conf.master_down_interval() + SLACK;
    p.host(Side::B)
        .wait_address(vip_addr, true, within)
        .expect("b takes the VIP over");
    let own = format!("{}/24", net.b());
    p.host(Side::B)
        .ip(&["addr", "del", &own, "dev", "eth0"])
        .expect("delete b's own address");
    assert!(
        !p.host(Side::B).has_address(vip_addr).unwrap(),
        "without promote_secondaries the VIP goes with b's address"
    );
}
