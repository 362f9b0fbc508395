//! `only_when_master`: a virtual server held in the kernel only by the
//! director whose VRRP instance is MASTER. Two directors (nftables
//! dataplane) share a VIP; the master holds the service and the backup does
//! not; when the master stops, the backup takes the VIP and installs the
//! service, and the stopped director's service is gone. `nft list ruleset`
//! in each namespace is the witness.

use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use std::time::{Duration, Instant};

const VIP: &str = "10.111.0.100";

fn config(router: &str, priority: u8) -> String {
    format!(
        "[global]\nrouter_id = \"{router}\"\ndataplane = \"nftables\"\n\n\
         [[vrrp_instance]]\nname = \"VI_1\"\nstate = \"BACKUP\"\ninterface = \"eth0\"\n\
         virtual_router_id = 111\npriority = {priority}\nadvert_int = \"1s\"\n\n\
         [[vrrp_instance.virtual_ipaddress]]\naddress = \"{VIP}/24\"\n\n\
         [[virtual_server]]\nlb_algo = \"rr\"\nlb_kind = \"NAT\"\nprotocol = \"TCP\"\n\
         masquerade = true\nonly_when_master = \"VI_1\"\n\n\
         [virtual_server.service]\naddress = \"{VIP}:80\"\n\n\
         [[virtual_server.real_server]]\naddress = \"10.111.0.11:80\"\nweight = 1\n"
    )
}

/// Whether the host's nftables ruleset holds the appliance's table with the
/// service's map.
fn holds_service(host: &Host) -> bool {
    let out = host
        .run("nft", &["list", "ruleset"])
        .expect("nft list ruleset (Debian package nftables)");
    let rules = String::from_utf8_lossy(&out.stdout);
    rules.contains("table inet appliance") && rules.contains(VIP)
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn only_the_master_holds_the_service_and_the_backup_installs_it_on_takeover() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &["10.111.0.1/24"]).expect("host m");
    lan.add_host("b", &["10.111.0.2/24"]).expect("host b");
    let (m, b) = (lan.host("m"), lan.host("b"));
    let vip = VIP.parse().unwrap();

    let mut master = Daemon::start_toml(m, &config("m", 150)).expect("start m");
    m.wait_address(vip, true, Duration::from_secs(10))
        .expect("m takes the VIP");
    let backup = Daemon::start_toml(b, &config("b", 100)).expect("start b");
    wait_until("m installs the service", Duration::from_secs(5), || {
        holds_service(m)
    });
    // b has had time to start and hear m's adverts: as BACKUP it withholds.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !holds_service(b),
        "the backup withholds the service\n{}",
        backup.log()
    );
    assert!(!b.has_address(vip).unwrap(), "the backup has no VIP");

    master.stop().expect("m stops");
    b.wait_address(vip, true, Duration::from_secs(5))
        .expect("b takes the VIP");
    wait_until("b installs the service", Duration::from_secs(5), || {
        holds_service(b)
    });
    assert!(
        !m.has_address(vip).unwrap(),
        "the stopped master released the VIP"
    );
    assert!(!holds_service(m), "the stopped master withdrew the service");
}
