//! Interoperation with Debian's keepalived: an appliance and a keepalived
//! share a VIP, each in turn as master (priority 150) and backup (100), for
//! VRRPv2 with PASS authentication and for VRRPv3. The backup hears the
//! master (it stays backup, the VIP on one side only), takes over when the
//! master stops (on its priority 0 advert, after Skew_Time), and the
//! master, started again, preempts (the backup, now master, hears its
//! higher priority and steps down).

use appliance::vrrp::Version;
use appliance::vrrp::machine::State;
use appliance_tests::daemon::Daemon;
use appliance_tests::keepalived::Keepalived;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::pair::{ELECTION, Net, assert_interval, hold};
use appliance_tests::timeline::{self, Entry};
use appliance_tests::vrrp_conf::Instance;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

const EARLY: Duration = Duration::from_millis(50);
/// Scheduling delays plus polling `ip addr` for the VIP.
const LATE: Duration = Duration::from_millis(600);
const SLACK: Duration = Duration::from_secs(3);

/// A director: the appliance or keepalived.
enum Node {
    Appliance(Daemon),
    Keepalived(Keepalived),
}

impl Node {
    fn start(appliance: bool, host: &Host, conf: &Instance) -> Node {
        if appliance {
            Node::Appliance(Daemon::start(host, &conf.render()).expect("appliance starts"))
        } else {
            Node::Keepalived(Keepalived::start(host, &conf.render()).expect("keepalived starts"))
        }
    }

    fn stop(&mut self) {
        match self {
            Node::Appliance(d) => d.stop().map(drop).expect("appliance stops"),
            Node::Keepalived(k) => k.stop().map(drop).expect("keepalived stops"),
        }
    }

    fn restart(&mut self, host: &Host) {
        match self {
            Node::Appliance(d) => d.restart(host).expect("appliance restarts"),
            Node::Keepalived(k) => k.restart(host).expect("keepalived restarts"),
        }
    }

    fn timeline(&self) -> Vec<Entry> {
        match self {
            Node::Appliance(d) => d.timeline().expect("the appliance's timeline"),
            Node::Keepalived(_) => Vec::new(),
        }
    }

    /// How many times this node became master (timeline or log).
    fn masterships(&self) -> usize {
        match self {
            Node::Appliance(d) => d
                .timeline()
                .expect("the appliance's timeline")
                .iter()
                .filter(|e| e.entered() == Some(State::Master))
                .count(),
            Node::Keepalived(k) => k.entered("MASTER"),
        }
    }
}

/// Runs the scenario with the appliance as master (`appliance_master`) or
/// as backup; returns the order snapshot of the appliance's timeline with
/// the test's marks.
fn interop(net: Net, version: Version, appliance_master: bool) -> String {
    let vip_cidr = Net::cidr(&net.vip());
    let vip: IpAddr = net.vip().parse().unwrap();
    let vrid = net.0;
    let mut m_conf = Instance::new("m", vrid, 150, &vip_cidr)
        .initial_master()
        .version(version);
    let mut b_conf = Instance::new("b", vrid, 100, &vip_cidr).version(version);
    if version == Version::V2 {
        m_conf = m_conf.auth_pass("interop");
        b_conf = b_conf.auth_pass("interop");
    }
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &[&Net::cidr(&net.m())]).expect("host m");
    lan.add_host("b", &[&Net::cidr(&net.b())]).expect("host b");
    let (m_host, b_host) = (lan.host("m"), lan.host("b"));

    let mut marks = vec![Entry::mark("start m")];
    let mut m = Node::start(appliance_master, m_host, &m_conf);
    marks.push(Entry::mark("start b"));
    let mut b = Node::start(!appliance_master, b_host, &b_conf);
    m_host
        .wait_address(vip, true, ELECTION)
        .expect("m becomes master");
    // b has been up for more than its Master_Down_Interval by the end: had
    // it not heard m's adverts, it would have become master.
    hold(m_host, b_host, vip, Duration::from_secs(3)).expect("m alone holds the VIP");
    assert_eq!(b.masterships(), 0, "b stayed backup while m lived");

    let stop = Entry::mark("stop m");
    marks.push(stop.clone());
    // Watch for the VIP on b while m stops (keepalived takes a second to
    // exit, long after b took over).
    let seen = std::thread::scope(|scope| {
        let watch = scope.spawn(|| appears(b_host, vip, SLACK));
        m.stop();
        watch.join().expect("the watching thread")
    })
    .expect("b takes over");
    assert!(!m_host.has_address(vip).unwrap(), "m removed the VIP");
    // The appliance as master stamps its priority 0 advert; keepalived
    // sends its own right after the signal.
    let resign = m
        .timeline()
        .into_iter()
        .rev()
        .find(|e| e.advert().is_some_and(|p| p.get() == 0));
    let (reference, from) = match &resign {
        Some(resign) => (resign.wall, "the appliance's priority 0 advert"),
        None => (stop.wall, "SIGTERM to keepalived"),
    };
    assert_interval(
        &format!("VRRPv{version}: {from} to the VIP on b"),
        seen.duration_since(reference).unwrap_or_default(),
        b_conf.skew(),
        EARLY,
        LATE,
    );
    if let Node::Appliance(d) = &mut b {
        let e = d
            .wait_event("b becoming master", SLACK, |e| {
                e.after(&stop) && e.entered() == Some(State::Master)
            })
            .expect("b's timeline");
        assert!(
            e.event.detail.contains("resigned"),
            "b took over on keepalived's priority 0 advert: {}",
            e.event.detail
        );
    }
    hold(b_host, m_host, vip, Duration::from_secs(1)).expect("b alone holds the VIP");

    marks.push(Entry::mark("start m again"));
    m.restart(m_host);
    m_host
        .wait_address(vip, true, m_conf.master_down_interval() + SLACK)
        .expect("m preempts");
    b_host
        .wait_address(vip, false, SLACK)
        .expect("b steps down when m preempts");
    hold(m_host, b_host, vip, Duration::from_secs(2)).expect("m alone holds the VIP again");
    assert_eq!(b.masterships(), 1, "b was master once, while m was stopped");

    let appliance = if appliance_master { &m } else { &b };
    timeline::render_order(&timeline::merge(&[&appliance.timeline(), &marks]))
}

/// Polls (every 5 ms) until `host` holds `vip`; when it first did.
fn appears(
    host: &Host,
    vip: IpAddr,
    within: Duration,
) -> appliance_tests::error::Result<SystemTime> {
    host.wait_address(vip, true, within)?;
    Ok(SystemTime::now())
}

#[test]
fn v2_pass_appliance_master_keepalived_backup() {
    insta::assert_snapshot!(interop(Net(101), Version::V2, true));
}

#[test]
fn v2_pass_keepalived_master_appliance_backup() {
    insta::assert_snapshot!(interop(Net(102), Version::V2, false));
}

#[test]
fn v3_appliance_master_keepalived_backup() {
    insta::assert_snapshot!(interop(Net(103), Version::V3, true));
}

#[test]
fn v3_keepalived_master_appliance_backup() {
    insta::assert_snapshot!(interop(Net(104), Version::V3, false));
}
