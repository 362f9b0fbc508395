//! keepalived.conf keywords whose effect is on the kernel, as keepalived's
//! documentation writes them, through `appliance run` in network
//! namespaces: the kernel's own view (`ip addr`) is the witness.

use appliance_tests::pair::{Net, Pair, Side};
use appliance_tests::vrrp_conf::Instance;

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
