//! The demo's director on a kernel with IPVS: `compose/master.toml`,
//! unchanged, in the demo's layout (one network; rs1 and rs2 route their
//! replies back through the VIP with the real-server image's own
//! `route-replies`; the director forwards with ICMP redirects off, as
//! compose/docker-compose.yml sets), under qemu. The dataplane is not
//! named in the config: the director must find IPVS, say so in `appliance
//! status`, and balance the client's requests round robin with LVS-NAT
//! (`Masq` in `ipvsadm -Ln`). The containers test the same layout on
//! nftables, since this host's kernel has no IPVS.

use appliance::daemon::status::Status;
use appliance_tests::vm::{Vm, VmOutput, scenario, section};
use std::path::Path;
use std::time::Duration;

const VIP: &str = "10.89.0.100";
const SOCKET: &str = "/tmp/director/appliance.sock";

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The compose file's hosts on a bridge: the master director (its peer,
/// the backup, is left out: the master takes over alone), rs1 and rs2
/// (busybox httpd saying its name), the client.
fn scenario() -> String {
    let mut s = String::from("set -e\n");
    s += &scenario::wait_for("cat /tmp/director.log >&2 || true");
    s += &"holds_vip() { ip -n master -4 addr show eth0 | grep -q \" $VIP/24\"; }\n\
         both_listed() { [ $(ip netns exec master ipvsadm -Ln | grep -c ' Masq ') = 2 ]; }\n"
        .replace("$VIP", VIP);
    s += &scenario::bridge("br0");
    for (name, addr) in [
        ("master", "10.89.0.2"),
        ("rs1", "10.89.0.11"),
        ("rs2", "10.89.0.12"),
        ("client", "10.89.0.20"),
    ] {
        s += &scenario::host("br0", name, addr);
    }
    // compose/docker-compose.yml's sysctls and environment.
    s += "for k in net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
          net.ipv4.conf.default.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0; do\n\
          \x20 ip netns exec master sysctl -qw $k\n\
          done\n";
    for (name, addr) in [("rs1", "10.89.0.11"), ("rs2", "10.89.0.12")] {
        s += &format!("ip netns exec {name} sh /usr/bin/route-replies {VIP} 10.89.0.2 10.89.0.3\n");
        s += &scenario::httpd(name, addr, "master");
    }
    s += &format!(
        "ip netns exec master appliance run --config /root/master.toml --state-dir /tmp/director \
         > /tmp/director.log 2>&1 &\n\
         wait_for 15 'the director to hold the VIP' holds_vip\n\
         wait_for 10 'both real servers in the table' both_listed\n\
         echo '--- status'\n\
         ip netns exec master appliance status --json --socket {SOCKET}\n\
         echo '--- table'\n\
         ip netns exec master ipvsadm -Ln\n\
         echo '--- answers'\n\
         for i in 1 2 3 4; do ip netns exec client timeout 5 wget -qO- http://{VIP}/; done\n\
         echo '--- log'\n\
         cat /tmp/director.log\n"
    );
    s
}

fn run() -> VmOutput {
    let out = Vm::builder()
        .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
        .file(repo("compose/master.toml"), "/root/master.toml")
        .file(repo("images/nginx/route-replies"), "/usr/bin/route-replies")
        .script(scenario())
        .timeout(Duration::from_secs(180))
        .run()
        .unwrap();
    out.assert_success();
    out
}

#[test]
fn the_demo_director_balances_with_ipvs_nat_where_the_kernel_has_it() {
    let out = run();
    let status: Status = serde_json::from_str(&section(&out.stdout, "status").join("\n"))
        .unwrap_or_else(|e| panic!("status is not a Status: {e}\n{out}"));
    assert_eq!(status.dataplane.as_deref(), Some("ipvs"), "{out}");
    let table = section(&out.stdout, "table");
    assert!(
        table.iter().any(|l| l
            .split_whitespace()
            .take(3)
            .eq(["TCP", "10.89.0.100:80", "rr"])),
        "no rr service on the VIP\n{out}"
    );
    for rs in ["10.89.0.11:80", "10.89.0.12:80"] {
        assert!(
            table
                .iter()
                .any(|l| l.split_whitespace().take(3).eq(["->", rs, "Masq"])),
            "{rs} is not a NAT (Masq) real server\n{out}"
        );
    }
    let answers = section(&out.stdout, "answers");
    assert_eq!(answers.len(), 4, "{out}");
    assert!(
        answers.contains(&"rs1") && answers.contains(&"rs2"),
        "answers through the VIP are not from rs1 and rs2\n{out}"
    );
    assert!(
        answers.windows(2).all(|w| w[0] != w[1]),
        "answers do not alternate: {answers:?}\n{out}"
    );
}
