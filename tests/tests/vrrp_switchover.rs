//! `appliance switchover`: a planned handover, make-before-break. The
//! master resigns (priority 0) but keeps its VIP, and goes on answering,
//! until the backup's advert shows it has taken over; then it steps down
//! and does not preempt back. Witnesses: every 5 ms, that some director
//! holds the VIP (never neither); a client connecting to the VIP every 5
//! ms (a TCP listener on each director), none failing or stalling; both
//! timelines. The same against keepalived as the backup, which takes over
//! on the priority 0 advert as it would from any VRRP router.

use appliance::vrrp::machine::State;
use appliance_tests::adverts::AdvertLog;
use appliance_tests::appliance_bin;
use appliance_tests::daemon::Daemon;
use appliance_tests::keepalived::Keepalived;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::pair::{ELECTION, Net};
use appliance_tests::timeline::{self, Entry};
use appliance_tests::vrrp_conf::Instance;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PORT: u16 = 9000;
/// A connect slower than this was a lost SYN (retransmitted after 1 s).
const STALL: Duration = Duration::from_millis(300);

/// Accepts (and drops) connections on 0.0.0.0:PORT in `host`, forever.
fn listen(host: &Host) {
    let listener = host
        .enter(|| TcpListener::bind(("0.0.0.0", PORT)))
        .expect("enter")
        .expect("listen");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
}

/// What a client saw while connecting to the VIP every 5 ms until `stop`.
struct Probes {
    made: usize,
    /// Failed or slower than [`STALL`]: (how long after the start, what).
    lost: Vec<(Duration, String)>,
}

fn probe(
    client: &Host,
    vip: IpAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<appliance_tests::netns::Result<Probes>> {
    client
        .enter_background(move || {
            let target = SocketAddr::new(vip, PORT);
            let start = Instant::now();
            let mut probes = Probes {
                made: 0,
                lost: Vec::new(),
            };
            while !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                probes.made += 1;
                match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
                    Ok(_) if at.elapsed() < STALL => {}
                    Ok(_) => probes
                        .lost
                        .push((at - start, format!("stalled {:?}", at.elapsed()))),
                    Err(e) => probes.lost.push((at - start, e.to_string())),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            probes
        })
        .expect("enter client")
}

/// Watches, every 5 ms for `period`, whether `a` or `b` holds `vip`;
/// how long neither did.
fn unheld(a: &Host, b: &Host, vip: IpAddr, period: Duration) -> Duration {
    let start = Instant::now();
    let mut unheld = Duration::ZERO;
    let mut last = start;
    while start.elapsed() < period {
        let held = a.has_address(vip).unwrap() || b.has_address(vip).unwrap();
        let now = Instant::now();
        if !held {
            unheld += now - last;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(5));
    }
    unheld
}

/// `appliance switchover` against `d`'s socket, in `host`.
fn switchover(host: &Host, d: &Daemon) -> String {
    let (ok, text) = switchover_with(host, d, &[]);
    assert!(ok, "switchover: {text}");
    text
}

/// `appliance switchover ARGS…`: whether it succeeded, and what it said.
fn switchover_with(host: &Host, d: &Daemon, args: &[&str]) -> (bool, String) {
    let socket = d.socket_path();
    let out = host
        .command(appliance_bin())
        .arg("switchover")
        .args(args)
        .args(["--socket", socket.to_str().expect("utf-8 path")])
        .output()
        .expect("appliance switchover");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

struct Lab {
    lan: Lan,
    vip: IpAddr,
    m_conf: Instance,
    b_conf: Instance,
}

fn lab(net: Net) -> Lab {
    let vip_cidr = Net::cidr(&net.vip());
    let m_conf = Instance::new("m", net.0, 150, &vip_cidr)
        .initial_master()
        .auth_pass("handover");
    let b_conf = Instance::new("b", net.0, 100, &vip_cidr).auth_pass("handover");
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &[&Net::cidr(&net.m())]).expect("host m");
    lan.add_host("b", &[&Net::cidr(&net.b())]).expect("host b");
    lan.add_host("c", &[&Net::cidr(&format!("10.{}.0.10", net.0))])
        .expect("host c");
    for name in ["m", "b"] {
        listen(lan.host(name));
    }
    Lab {
        lan,
        vip: net.vip().parse().unwrap(),
        m_conf,
        b_conf,
    }
}

/// Runs the switchover on `m` with the client probing and the VIP
/// watched; returns what `appliance switchover` said.
fn hand_over(lab: &Lab, m: &Daemon) -> String {
    let (m_host, b_host) = (lab.lan.host("m"), lab.lan.host("b"));
    let stop = Arc::new(AtomicBool::new(false));
    let probes = probe(lab.lan.host("c"), lab.vip, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let said = std::thread::scope(|scope| {
        let watch = scope.spawn(|| unheld(m_host, b_host, lab.vip, Duration::from_secs(4)));
        let said = switchover(m_host, m);
        let unheld = watch.join().expect("the watching thread");
        assert_eq!(unheld, Duration::ZERO, "the VIP was held by neither");
        said
    });
    stop.store(true, Ordering::Relaxed);
    let probes = probes.join().expect("probe thread").expect("probes");
    assert!(probes.made > 100, "only {} probes", probes.made);
    assert!(
        probes.lost.is_empty(),
        "{} of {} connections to the VIP failed or stalled: {:?}",
        probes.lost.len(),
        probes.made,
        probes.lost
    );
    assert!(b_host.has_address(lab.vip).unwrap(), "b holds the VIP");
    assert!(!m_host.has_address(lab.vip).unwrap(), "m let it go");
    said
}

#[test]
fn a_switchover_hands_the_vip_over_without_a_lost_connection() {
    let lab = lab(Net(127));
    let (m_host, b_host) = (lab.lan.host("m"), lab.lan.host("b"));
    let mut marks = vec![Entry::mark("start m")];
    let mut m = Daemon::start(m_host, &lab.m_conf.render()).expect("m starts");
    m_host
        .wait_address(lab.vip, true, ELECTION)
        .expect("m becomes master");
    marks.push(Entry::mark("start b"));
    let b = Daemon::start(b_host, &lab.b_conf.render()).expect("b starts");
    // On the multicast group every backup hears a resignation: a chosen
    // peer is refused, saying why, and nothing changes.
    let (ok, said) = switchover_with(m_host, &m, &["--to", "10.127.0.2"]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("VI_A advertises to the multicast group")
            && said.contains("needs unicast_peer"),
        "{said}"
    );
    assert!(
        m_host.has_address(lab.vip).unwrap(),
        "m still holds the VIP"
    );
    let mark = Entry::mark("switchover");
    marks.push(mark.clone());
    let said = hand_over(&lab, &m);
    assert!(
        said.contains("VI_A BACKUP (switchover: 10.127.0.2 took over)"),
        "{said}"
    );
    let b_master = b
        .timeline()
        .unwrap()
        .into_iter()
        .find(|e| e.after(&mark) && e.entered() == Some(State::Master))
        .expect("b became master");
    assert!(
        b_master.event.detail.contains("resigned"),
        "{}",
        b_master.event.detail
    );
    // m, of higher priority, does not preempt back: b keeps the VIP well
    // past m's Master_Down_Interval.
    std::thread::sleep(lab.m_conf.master_down_interval() + Duration::from_secs(1));
    assert!(b_host.has_address(lab.vip).unwrap(), "m preempted back");
    // A second switchover asked of m, now backup, is refused, saying why.
    let socket = m.socket_path();
    let out = m_host
        .command(appliance_bin())
        .args([
            "switchover",
            "--socket",
            socket.to_str().expect("utf-8 path"),
        ])
        .output()
        .expect("appliance switchover");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no instance is MASTER here"),
        "{out:?}"
    );
    marks.push(Entry::mark("restart m"));
    // A restart makes m itself again: it preempts.
    m.stop().expect("m stops");
    m.restart(m_host).expect("m restarts");
    m_host
        .wait_address(lab.vip, true, ELECTION)
        .expect("m preempts after a restart");
    b_host
        .wait_address(lab.vip, false, ELECTION)
        .expect("b steps down");
    let merged = timeline::merge(&[&m.timeline().unwrap(), &b.timeline().unwrap(), &marks]);
    insta::assert_snapshot!(timeline::render_order(&merged));
}

#[test]
fn a_switchover_to_keepalived_loses_nothing_either() {
    let lab = lab(Net(128));
    let (m_host, b_host) = (lab.lan.host("m"), lab.lan.host("b"));
    let m = Daemon::start(m_host, &lab.m_conf.render()).expect("m starts");
    let _b = Keepalived::start(b_host, &lab.b_conf.render()).expect("keepalived starts");
    m_host
        .wait_address(lab.vip, true, ELECTION)
        .expect("m becomes master");
    let said = hand_over(&lab, &m);
    assert!(
        said.contains("VI_A BACKUP (switchover: 10.128.0.2 took over)"),
        "{said}"
    );
}

/// The witness can see an outage: a plain stop (priority 0, the VIP
/// removed at once) leaves the VIP held by neither for the backup's
/// Skew_Time.
#[test]
fn a_plain_stop_leaves_the_vip_unheld_for_the_backups_skew_time() {
    let lab = lab(Net(129));
    let (m_host, b_host) = (lab.lan.host("m"), lab.lan.host("b"));
    let mut m = Daemon::start(m_host, &lab.m_conf.render()).expect("m starts");
    let _b = Daemon::start(b_host, &lab.b_conf.render()).expect("b starts");
    m_host
        .wait_address(lab.vip, true, ELECTION)
        .expect("m becomes master");
    let gap = std::thread::scope(|scope| {
        let watch = scope.spawn(|| unheld(m_host, b_host, lab.vip, Duration::from_secs(3)));
        m.stop().expect("m stops");
        watch.join().expect("the watching thread")
    });
    let skew = lab.b_conf.skew();
    assert!(
        gap >= skew / 2,
        "held by neither for {gap:?} only, against a skew time of {skew:?}"
    );
}

/// Two backups of the same priority. `--to` one sends the resignations to
/// it alone: it takes over, and the other, which hears none (tcpdump on
/// it is the witness) and then hears the new master advertise at its own
/// priority, stays backup. The control, a switchover to every router:
/// the other hears a resignation too, and one of the two takes over
/// (which one is a race of their equal skew timers: the first to fire
/// advertises, and the other, hearing an equal priority, stays backup).
/// A peer that is not one of the instance's is refused, naming those it
/// has.
#[test]
fn a_switchover_goes_to_the_chosen_one_of_two_backups() {
    let net = Net(132);
    let (m_ip, b1_ip, b2_ip): (IpAddr, IpAddr, IpAddr) = (
        net.m().parse().unwrap(),
        net.b().parse().unwrap(),
        "10.132.0.3".parse().unwrap(),
    );
    let vip: IpAddr = net.vip().parse().unwrap();
    let vip_cidr = Net::cidr(&net.vip());
    let conf = |name: &str, priority: u8, me: IpAddr| {
        let peers: Vec<IpAddr> = [m_ip, b1_ip, b2_ip]
            .into_iter()
            .filter(|p| *p != me)
            .collect();
        Instance::new(name, net.0, priority, &vip_cidr)
            .auth_pass("handover")
            .unicast(me, &peers)
    };
    let mut lan = Lan::new().expect("lan");
    for (name, ip) in [("m", m_ip), ("b1", b1_ip), ("b2", b2_ip)] {
        lan.add_host(name, &[&Net::cidr(&ip.to_string())])
            .expect("host");
    }
    let (m_host, b1_host, b2_host) = (lan.host("m"), lan.host("b1"), lan.host("b2"));
    let mut m =
        Daemon::start(m_host, &conf("m", 150, m_ip).initial_master().render()).expect("m starts");
    m_host
        .wait_address(vip, true, ELECTION)
        .expect("m becomes master");
    let _b1 = Daemon::start(b1_host, &conf("b1", 100, b1_ip).render()).expect("b1 starts");
    let b2 = Daemon::start(b2_host, &conf("b2", 100, b2_ip).render()).expect("b2 starts");
    std::thread::sleep(Duration::from_secs(2));

    let (ok, said) = switchover_with(m_host, &m, &["--to", "10.132.0.9"]);
    assert!(!ok, "{said}");
    assert!(
        said.contains(
            "10.132.0.9 is not a unicast peer of VI_A; its peers are 10.132.0.2, 10.132.0.3"
        ),
        "{said}"
    );

    let heard = AdvertLog::resignations(b2_host, m_ip, b2_ip).expect("capture on b2");
    let (ok, said) = switchover_with(m_host, &m, &["--to", "10.132.0.2"]);
    assert!(ok, "{said}");
    assert!(
        said.contains("VI_A BACKUP (switchover: 10.132.0.2 took over)"),
        "{said}"
    );
    b1_host
        .wait_address(vip, true, ELECTION)
        .expect("b1 takes over");
    // Well past every Master_Down_Interval: b1 holds it, b2 never did.
    std::thread::sleep(conf("b2", 100, b2_ip).master_down_interval() + Duration::from_secs(1));
    assert!(b1_host.has_address(vip).unwrap(), "b1 keeps the VIP");
    assert!(!m_host.has_address(vip).unwrap(), "m let it go");
    let b2_masters = b2
        .timeline()
        .unwrap()
        .iter()
        .filter(|e| e.entered() == Some(State::Master))
        .count();
    assert_eq!(b2_masters, 0, "b2 stayed backup");
    let resignations = heard.stop().expect("the capture on b2");
    assert!(
        resignations.is_empty(),
        "b2 heard m resign: {resignations:?}"
    );

    // The control: m again, then a switchover to every router, which the
    // tie's winner, b2, takes.
    m.stop().expect("m stops");
    m.restart(m_host).expect("m restarts");
    m_host
        .wait_address(vip, true, ELECTION)
        .expect("m preempts after a restart");
    b1_host
        .wait_address(vip, false, ELECTION)
        .expect("b1 steps down");
    let heard = AdvertLog::resignations(b2_host, m_ip, b2_ip).expect("capture on b2");
    let said = switchover(m_host, &m);
    assert!(said.contains("took over"), "{said}");
    m_host
        .wait_address(vip, false, ELECTION)
        .expect("m lets the VIP go");
    std::thread::sleep(Duration::from_secs(2));
    let holders = [b1_host, b2_host]
        .iter()
        .filter(|h| h.has_address(vip).unwrap())
        .count();
    assert_eq!(holders, 1, "one of b1 and b2 holds the VIP");
    let resignations = heard.stop().expect("the capture on b2");
    assert!(
        !resignations.is_empty(),
        "without --to, b2 hears m resign too"
    );
}
