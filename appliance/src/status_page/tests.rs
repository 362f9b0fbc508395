use super::*;
use crate::daemon::status::RealServerStatus;
use crate::daemon::status::tests::sample;
use crate::dataplane::ipvs::listing::Traffic;
use crate::timeline::{Event, EventKind};
use crate::vrrp::machine::State;
use history::History;
use std::time::Duration;

fn now() -> SystemTime {
    humantime::parse_rfc3339("2026-12-04T17:10:00Z").unwrap()
}

fn failover() -> History {
    let h = History::default();
    let event = |instance: &str, kind, detail: &str| Event {
        at: crate::clock::Instant::from_micros(0),
        node: "director".into(),
        instance: Some(instance.into()),
        kind,
        detail: detail.into(),
    };
    h.record(
        &event(
            "VI_1",
            EventKind::State {
                from: State::Initialize,
                to: State::Backup,
            },
            "start",
        ),
        now() - Duration::from_secs(220),
    );
    h.record(
        &event(
            "VI_1",
            EventKind::State {
                from: State::Backup,
                to: State::Master,
            },
            "master down: no advert for 3.414967s",
        ),
        now() - Duration::from_secs(216),
    );
    h.record(
        &event(
            "TCP 10.0.0.100:80",
            EventKind::RealServer {
                address: "10.0.0.11:8080".parse().unwrap(),
                alive: false,
                weight: 1,
            },
            "timed out",
        ),
        now() - Duration::from_secs(100),
    );
    h
}

#[test]
fn the_page_holds_the_tables_the_chart_and_the_events_without_script() {
    let page = render(Some(&sample()), &failover().recent(), now());
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Instances, with their state for scripts and tests.
    assert!(page.contains(r#"<tr data-instance="VI_1" data-state="MASTER">"#));
    assert!(page.contains("master down: no advert for 3.414967s"));
    assert!(page.contains("3m 12s"), "time in state");
    // The real server: health, last check with its latency, connections.
    assert!(page.contains(r#"<tr data-real-server="10.0.0.11:8080" data-health="down">"#));
    assert!(page.contains(r#"<span class="latency">3.00 s</span>"#));
    assert!(page.contains(r#"<td class="num active">2</td>"#));
    // The fault and the rejected reload.
    assert!(page.contains("VRRP unit VI_2: no interface named eth9"));
    assert!(page.contains("REJECTED"));
    // The chart: the instance's lane init → backup → master, the real
    // server's up → down, one mark per change.
    assert!(page.contains(r#"data-lane="vrrp VI_1""#));
    assert!(page.contains(r#"data-lane="TCP 10.0.0.100:80 10.0.0.11:8080""#));
    for class in ["seg backup", "seg master", "seg up", "seg down"] {
        assert!(
            page.contains(&format!(r#"<rect class="{class}""#)),
            "{class}"
        );
    }
    assert_eq!(page.matches(r#"<line class="mark""#).count(), 3);
    // The events, newest first.
    let listed = page.find("<table id=\"events\">").unwrap();
    let down = page[listed..].find("DOWN weight 1").unwrap();
    let master = page[listed..].find("BACKUP -&gt; MASTER").unwrap();
    assert!(down < master);
    // Nothing from elsewhere; the refresh works without the script.
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(page.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#));
    assert!(page.contains(r#"<script src="status.js" defer></script>"#));
}

#[test]
fn traffic_reads_in_short_units_with_the_exact_figure_on_hover() {
    let mut status = sample();
    let rs = &mut status.virtual_servers[0].real_servers[0];
    rs.connections = Some(crate::daemon::status::ConnectionStatus {
        active: 1,
        inactive: 0,
        traffic: Some(Traffic {
            conns: 6,
            in_packets: 12_345,
            out_packets: 40,
            in_bytes: 1_234_567,
            out_bytes: 987,
            conns_per_second: 2,
            in_bytes_per_second: 52_000,
            ..Traffic::default()
        }),
    });
    let page = render(Some(&status), &Recent::default(), now());
    assert!(
        page.contains(r#"title="12345 / 40">12K / 40</td>"#),
        "{page}"
    );
    assert!(page.contains(">1.2MB / 987B</td>"));
    assert!(page.contains("2 conn/s · 52KB/s in · 0B/s out"));
    assert_eq!(si(9_999), "9999");
    assert_eq!(si(10_000), "10K");
    assert_eq!(si(1_500_000_000), "1.5G");
}

#[test]
fn hostile_names_and_results_are_escaped() {
    let mut status = sample();
    status.node = "<img src=x onerror=alert(1)>".into();
    status.instances[0].name = "</td><script>alert(1)</script>".into();
    status.virtual_servers[0].real_servers[0].checks[0]
        .last
        .as_mut()
        .unwrap()
        .result = "HTTP 500 \"<b>\" & '<i>'".into();
    let page = render(Some(&status), &Recent::default(), now());
    assert!(!page.contains("<script>alert"));
    assert!(!page.contains("<img"));
    assert!(page.contains("&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("HTTP 500 &quot;&lt;b&gt;&quot; &amp; '&lt;i&gt;'"));
    assert_eq!(page.matches("<script").count(), 1, "only the page's own");
}

#[test]
fn a_daemon_that_does_not_answer_gives_a_page_that_says_so() {
    let page = render(None, &Recent::default(), now());
    assert!(page.contains("did not answer"));
    assert!(page.contains(r#"<main id="live">"#));
}

#[test]
fn the_chart_draws_the_servers_that_changed_first_and_a_bounded_number() {
    let mut status = sample();
    let template = status.virtual_servers[0].real_servers[0].clone();
    status.virtual_servers[0].real_servers = (0..1000u16)
        .map(|i| RealServerStatus {
            address: std::net::SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8], 80)),
            ..template.clone()
        })
        .collect();
    let h = History::default();
    h.record(
        &Event {
            at: crate::clock::Instant::from_micros(0),
            node: "director".into(),
            instance: Some("TCP 10.0.0.100:80".into()),
            kind: EventKind::RealServer {
                address: "10.0.3.200:80".parse().unwrap(),
                alive: false,
                weight: 1,
            },
            detail: "timed out".into(),
        },
        now() - Duration::from_secs(30),
    );
    let page = render(Some(&status), &h.recent(), now());
    let lanes = page.matches("<g class=\"lane\"").count();
    assert_eq!(
        lanes,
        1 + MAX_SERVER_LANES,
        "the instance and the servers drawn"
    );
    assert!(
        page.contains(r#"data-lane="TCP 10.0.0.100:80 10.0.3.200:80""#),
        "the one that changed"
    );
    assert!(page.contains(&format!(
        "{} real servers with no change",
        1000 - MAX_SERVER_LANES
    )));
    assert_eq!(
        page.matches("<tr data-real-server=").count(),
        1000,
        "the table has them all"
    );
}
