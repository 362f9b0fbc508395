//! Service across a failover: nginx on both directors answers with its
//! host's name, a client curls the VIP throughout. When the master's link
//! is cut the answers switch from m to b after a bounded outage (the
//! Master_Down_Interval), and back to m when it preempts, with at most a
//! request or two lost then.

use appliance::timeline::EventKind;
use appliance::vrrp::machine::State;
use appliance_tests::pair::{Net, Pair, Side};
use appliance_tests::timeline::Entry;
use appliance_tests::vrrp_conf::Instance;
use appliance_tests::web::{Nginx, curl};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// curl's whole-request timeout: a request to a vanished VIP fails after
/// this long.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// After the new master adds the VIP, time for its gratuitous ARPs to reach
/// the client and for a request stuck on the old path to time out.
const SETTLE: Duration = Duration::from_millis(1500);
const SLACK: Duration = Duration::from_secs(3);

/// One request: when it started and ended, and the answer if any.
struct Request {
    start: SystemTime,
    end: SystemTime,
    answer: Option<String>,
}

fn in_window(t: SystemTime, from: SystemTime, to: SystemTime) -> bool {
    t >= from && t <= to
}

#[test]
fn answers_keep_coming_across_a_failover_and_switch_directors() {
    let net = Net(94);
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 94, 150, &vip).initial_master();
    let b = Instance::new("b", 94, 100, &vip);
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
    let _m_web = Nginx::start(p.host(Side::M)).expect("nginx on m");
    let _b_web = Nginx::start(p.host(Side::B)).expect("nginx on b");
    let url = format!("http://{}/", net.vip());
    assert_eq!(
        curl(p.lan.host("c"), &url, Duration::from_secs(2))
            .unwrap()
            .as_deref(),
        Some("m\n"),
        "the VIP answers from m"
    );

    let stop = AtomicBool::new(false);
    let client = p.lan.host("c");
    let (requests, events) = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let mut requests = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = SystemTime::now();
                let answer = curl(client, &url, REQUEST_TIMEOUT).expect("running curl");
                requests.push(Request {
                    start,
                    end: SystemTime::now(),
                    answer,
                });
                // Paced, so the client does not load the machine.
                std::thread::sleep(Duration::from_millis(50));
            }
            requests
        });
        // Let the client run against m for a while, then pull m's cable
        // right after an advert.
        std::thread::sleep(Duration::from_secs(1));
        let last = p.m.next_advert(SLACK).expect("m advertises");
        let cut = Entry::mark("cut m's link");
        p.lan.host("m").cut_link().unwrap();
        let b_added =
            p.b.wait_event(
                "b adding the VIP",
                p.b_conf.master_down_interval() + SLACK,
                |e| e.after(&last) && e.event.kind == EventKind::VipsAdded,
            )
            .expect("b takes over");
        std::thread::sleep(SETTLE + Duration::from_secs(1));

        let restore = Entry::mark("restore m's link");
        p.lan.host("m").restore_link().unwrap();
        let m_master =
            p.m.wait_event(
                "m preempting",
                p.m_conf.master_down_interval() + SLACK,
                |e| e.after(&restore) && e.entered() == Some(State::Master),
            )
            .expect("m preempts");
        std::thread::sleep(SETTLE + Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let requests = load.join().expect("the client thread");
        (requests, (cut, b_added, restore, m_master))
    });
    let (cut, b_added, restore, m_master) = events;

    let failed = |from: SystemTime, to: SystemTime| {
        requests
            .iter()
            .filter(|r| r.answer.is_none() && in_window(r.start, from, to))
            .count()
    };
    let answers = |from: SystemTime, to: SystemTime| -> Vec<Option<&str>> {
        requests
            .iter()
            .filter(|r| in_window(r.start, from, to))
            .map(|r| r.answer.as_deref())
            .collect()
    };
    let epoch = SystemTime::UNIX_EPOCH;
    let long_after = SystemTime::now() + Duration::from_secs(3600);
    let failover_end = b_added.wall + SETTLE;
    // A request started up to its timeout (plus curl's start-up) before
    // the switch may be in flight across it.
    let in_flight = REQUEST_TIMEOUT + Duration::from_millis(500);
    let preempt_from = m_master.wall - in_flight;
    let preempt_end = m_master.wall + SETTLE;

    // Before the cut, m answers every request that ended before it.
    let before: Vec<_> = requests
        .iter()
        .filter(|r| r.end < cut.wall)
        .map(|r| r.answer.as_deref())
        .collect();
    assert!(before.len() >= 3, "few requests before the cut: {before:?}");
    assert!(
        before.iter().all(|a| *a == Some("m\n")),
        "before the cut: {before:?}"
    );
    // Once b holds the VIP and announced it, b answers everything.
    let on_b = answers(failover_end, preempt_from);
    assert!(on_b.len() >= 3, "few requests while b is master: {on_b:?}");
    assert!(
        on_b.iter().all(|a| *a == Some("b\n")),
        "while b is master: {on_b:?}"
    );
    // After m preempted, m answers everything.
    let on_m = answers(preempt_end, long_after);
    assert!(on_m.len() >= 3, "few requests after the preempt: {on_m:?}");
    assert!(
        on_m.iter().all(|a| *a == Some("m\n")),
        "after m preempted: {on_m:?}"
    );
    // Failures only in the two switch windows, and few at the preempt.
    let outage = failed(cut.wall - in_flight, failover_end);
    let at_preempt = failed(preempt_from, preempt_end);
    let total = failed(epoch, long_after);
    let first_b = requests
        .iter()
        .find(|r| r.start > cut.wall && r.answer.as_deref() == Some("b\n"))
        .expect("b answered");
    eprintln!(
        "MEASURED http: {outage} failed requests during the failover, first answer from b {:?} after the cut; {at_preempt} failed at the preempt; {} requests",
        first_b.end.duration_since(cut.wall).unwrap_or_default(),
        requests.len()
    );
    assert_eq!(
        total,
        outage + at_preempt,
        "requests failed outside the switch windows (cut {:?}, b up {:?}, restore {:?}, m up {:?})",
        cut.wall,
        b_added.wall,
        restore.wall,
        m_master.wall
    );
    let window = failover_end
        .duration_since(cut.wall - in_flight)
        .unwrap_or_default();
    let bound = (window.as_millis() / REQUEST_TIMEOUT.as_millis() + 1) as usize;
    assert!(
        outage <= bound,
        "{outage} failures during the failover, at most {bound} fit in {window:?}"
    );
    assert!(at_preempt <= 2, "{at_preempt} failures when m preempted");
    assert!(
        first_b.end.duration_since(cut.wall).unwrap_or_default()
            <= p.b_conf.master_down_interval() + SETTLE,
        "b answered late"
    );
}

/// Waits for a moment when b's next advert goes out (well) before m's,
/// both advertising every second on their own side of a split: from
/// their phases, read from their timelines.
fn wait_until_b_advertises_first(p: &Pair) {
    let last_advert = |timeline: Vec<Entry>| {
        timeline
            .iter()
            .rev()
            .find(|e| e.advert().is_some_and(|pr| pr.get() > 0))
            .map(|e| e.wall)
            .expect("an advert")
    };
    let interval = Duration::from_secs(1);
    let next_after = |last: SystemTime, t: SystemTime| {
        let mut next = last;
        while next <= t {
            next += interval;
        }
        next
    };
    let give_up = SystemTime::now() + Duration::from_secs(3);
    while SystemTime::now() < give_up {
        let (m_last, b_last) = (
            last_advert(p.m.timeline().unwrap()),
            last_advert(p.b.timeline().unwrap()),
        );
        // The heal takes a few milliseconds; b's advert must be out before
        // m's arrives.
        let at = SystemTime::now() + Duration::from_millis(20);
        let (m_next, b_next) = (next_after(m_last, at), next_after(b_last, at));
        if b_next + Duration::from_millis(5) < m_next {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("b's adverts go out just after m's: healing anyway");
}

/// Curls `url` from `client` every 100 ms for `period`: when each request
/// ended, and its answer.
fn answers_for(
    client: &appliance_tests::netns::Host,
    url: &str,
    period: Duration,
) -> Vec<(SystemTime, Option<String>)> {
    let until = SystemTime::now() + period;
    let mut out = Vec::new();
    while SystemTime::now() < until {
        let answer = curl(client, url, REQUEST_TIMEOUT).expect("running curl");
        out.push((SystemTime::now(), answer));
        std::thread::sleep(Duration::from_millis(100));
    }
    out
}

/// A split brain healed with a client on the side that moved: the LAN
/// splits into {m} and {b, c}; b becomes master too and its gratuitous
/// ARPs point c at b. The LAN heals just before one of b's adverts, so it
/// crosses before m's: m hears it, a lower priority, and re-announces the
/// VIP (`garp_lower_prio_repeat`, as keepalived): c's requests reach m
/// within a second (an advert interval) of the heal. With
/// `garp_lower_prio_repeat 0`, c keeps b's MAC, which no longer holds the
/// VIP, and nothing answers for as long as c's ARP entry lasts (seconds:
/// reachable, then stale, then probed). When m's advert crosses first, b
/// steps down without a word and m re-announces nothing, in keepalived
/// too: that order is not tested here.
#[test]
fn after_a_partition_heals_the_vip_answers_from_one_director_within_a_second() {
    for reannounce in [true, false] {
        let n = if reannounce { 138 } else { 139 };
        let net = Net(n);
        let vip = Net::cidr(&net.vip());
        let setting = |i: Instance| {
            if reannounce {
                i
            } else {
                i.global("vrrp_garp_lower_prio_repeat 0")
            }
        };
        let m = setting(Instance::new("m", n, 150, &vip).initial_master());
        let b = setting(Instance::new("b", n, 100, &vip));
        // b does not forward (a DR director need not): a forwarding b
        // would relay c's requests to m and redirect c there, which hides
        // c's stale ARP entry, with or without the re-announcement.
        let mut p = Pair::start_with(net, m, b, &net.vip(), |lan| {
            Ok(lan.host("b").sysctl("net.ipv4.ip_forward", "0")?)
        })
        .expect("m and b elect m");
        let _m_web = Nginx::start(p.host(Side::M)).expect("nginx on m");
        let _b_web = Nginx::start(p.host(Side::B)).expect("nginx on b");
        let url = format!("http://{}/", net.vip());
        let before = answers_for(p.lan.host("c"), &url, Duration::from_millis(500));
        assert!(
            before.iter().all(|(_, a)| a.as_deref() == Some("m\n")),
            "{before:?}"
        );

        p.mark("partition: {m} | {b, c}");
        p.lan.partition(&[&["m"], &["b", "c"]]).unwrap();
        p.host(Side::B)
            .wait_address(p.vip, true, p.b_conf.master_down_interval() + SLACK)
            .expect("b takes the VIP too");
        let split = answers_for(p.lan.host("c"), &url, SETTLE);
        assert_eq!(
            split.last().and_then(|(_, a)| a.as_deref()),
            Some("b\n"),
            "c reaches b during the split: {split:?}"
        );
        assert!(
            p.host(Side::M).has_address(p.vip).unwrap(),
            "m, alone, stays master"
        );

        wait_until_b_advertises_first(&p);
        let heal = p.mark("heal the LAN");
        p.lan.heal().unwrap();
        let after = answers_for(p.lan.host("c"), &url, Duration::from_secs(4));
        let first_m = after
            .iter()
            .find(|(_, a)| a.as_deref() == Some("m\n"))
            .map(|(t, _)| t.duration_since(heal.wall).unwrap_or_default());
        let reannounced =
            p.m.timeline()
                .unwrap()
                .into_iter()
                .any(|e| e.after(&heal) && e.event.detail == "lower priority advert");
        if reannounce {
            // An advert interval for one of b's adverts to reach m, and a
            // request's time.
            let bound = Duration::from_secs(1) + REQUEST_TIMEOUT;
            assert!(
                first_m.is_some_and(|t| t <= bound),
                "m answers within {bound:?} of the heal: first after {first_m:?}: {after:?}"
            );
            let settled = heal.wall + bound;
            let late: Vec<_> = after
                .iter()
                .filter(|(t, a)| *t > settled && a.as_deref() != Some("m\n"))
                .collect();
            assert!(late.is_empty(), "only m answers afterwards: {late:?}");
            assert!(reannounced, "m re-announced the VIP on b's advert");
        } else {
            assert_eq!(
                first_m, None,
                "without the re-announcement c keeps b's MAC: {after:?}"
            );
            assert!(!reannounced, "garp_lower_prio_repeat 0 sends nothing");
        }
        p.host(Side::B)
            .wait_address(p.vip, false, SLACK)
            .expect("b gives the VIP up");
    }
}
