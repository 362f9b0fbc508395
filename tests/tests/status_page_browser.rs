//! The status page in a real browser: Debian's headless Chromium, in the
//! client's namespace of a netns LAN, loads the page from each of two
//! directors (master and backup of one VRRP instance, in front of two
//! nginx real servers over the nftables dataplane) and the test reads the
//! DOM through the DevTools protocol, during a real-server outage and a
//! failover, and takes screenshots (target/status-page/*.png).
//!
//! What it shows: the tables carry the state the daemon has; the page
//! follows the director live (its script swaps in fresh content: the
//! document is never reloaded); the chart draws each change; a director
//! that is gone leaves a page that says it is stale; the style sheet and
//! script load under the page's own Content-Security-Policy; the traffic
//! through the VIP is counted in the real servers' rows; and with
//! scripts off the page still holds the tables and reloads itself.

use appliance::vrrp::machine::State;
use appliance_tests::browser::{Browser, Tab};
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::Lan;
use appliance_tests::web::{Nginx, curl};
use serde_json::json;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

const VIP: &str = "10.167.0.100";
const RS1: &str = "10.167.0.11:80";
const MASTER_PAGE: &str = "http://10.167.0.1:9650/";
const BACKUP_PAGE: &str = "http://10.167.0.2:9650/";
/// The browser's window, and so its screenshots.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1000;
/// Check timing below (delay_loop 1s, connect_timeout 1s, no retry) and
/// the page's refresh (2 s), with slack for a loaded machine.
const SEEN_WITHIN: Duration = Duration::from_secs(15);

fn config(name: &str, address: &str, priority: u8) -> String {
    let servers: String = ["10.167.0.11", "10.167.0.12"]
        .iter()
        .map(|ip| {
            format!(
                "[[virtual_server.real_server]]\naddress = \"{ip}:80\"\nweight = 1\n\n\
                 [[virtual_server.real_server.check]]\ntype = \"TCP_CHECK\"\n\
                 connect_timeout = \"1s\"\n\n"
            )
        })
        .collect();
    format!(
        "[global]\nrouter_id = \"{name}\"\ndataplane = \"nftables\"\n\
         metrics_listen = \"{address}:9650\"\nstatus_page = true\n\n\
         [[vrrp_instance]]\nname = \"VI_1\"\nstate = \"BACKUP\"\ninterface = \"eth0\"\n\
         virtual_router_id = 167\npriority = {priority}\nadvert_int = \"1s\"\n\n\
         [[vrrp_instance.virtual_ipaddress]]\naddress = \"{VIP}/24\"\n\n\
         [[virtual_server]]\ndelay_loop = \"1s\"\nlb_algo = \"rr\"\nlb_kind = \"NAT\"\n\
         protocol = \"TCP\"\nmasquerade = true\n\n\
         [virtual_server.service]\naddress = \"{VIP}:80\"\n\n{servers}"
    )
}

fn setup() -> Lan {
    let mut lan = Lan::new().expect("lan");
    for (name, ip) in [
        ("m", "10.167.0.1"),
        ("b", "10.167.0.2"),
        ("rs1", "10.167.0.11"),
        ("rs2", "10.167.0.12"),
        ("client", "10.167.0.50"),
    ] {
        lan.add_host(name, &[&format!("{ip}/24")]).expect(name);
    }
    for director in ["m", "b"] {
        lan.host(director)
            .sysctl("net.ipv4.ip_forward", "1")
            .expect("ip_forward");
    }
    lan
}

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/status-page")
}

fn state_of(instance: &str) -> String {
    format!("(document.querySelector('tr[data-instance=\"{instance}\"]')?.dataset.state ?? null)")
}

fn health_of(real_server: &str) -> String {
    format!(
        "(document.querySelector('tr[data-real-server=\"{real_server}\"]')?.dataset.health ?? null)"
    )
}

/// `n` requests from the client through the VIP, each answered.
fn get_through_vip(lan: &Lan, n: usize) {
    for _ in 0..n {
        let answer = curl(
            lan.host("client"),
            &format!("http://{VIP}/"),
            Duration::from_secs(5),
        )
        .expect("curl (Debian package curl)");
        assert!(answer.is_some(), "no answer through the VIP");
    }
}

/// Whether the rows `rows` selects counted `n` connections or more in all
/// (each Conns cell has the exact count in its title).
fn connections_at_least(rows: &str, n: u64) -> String {
    format!(
        "[...document.querySelectorAll('{rows} td.conns')]\
         .reduce((sum, td) => sum + Number(td.title), 0) >= {n}"
    )
}

/// Each lane of the chart and the phases drawn in it, in order.
const LANES: &str = "[...document.querySelectorAll('svg.chart g.lane')].map(g => \
     [g.dataset.lane, [...g.querySelectorAll('rect.seg')].map(r => r.classList[1])])";

fn lanes(browser: &mut Browser, tab: &Tab) -> Vec<(String, Vec<String>)> {
    serde_json::from_value(browser.eval(tab, LANES).expect("reading the chart"))
        .expect("lanes as [name, [phases]]")
}

fn screenshot(browser: &mut Browser, tab: &Tab, name: &str) {
    let path = shots().join(name);
    let (w, h) = browser.screenshot(tab, &path).expect("screenshot");
    let size = std::fs::metadata(&path)
        .expect("the screenshot's file")
        .len();
    // A blank page compresses to a few KB; this one has tables and a chart.
    assert!(
        (w, h) == (WIDTH, HEIGHT) && size > 20_000,
        "{}: {w}x{h}, {size} bytes",
        path.display()
    );
}

#[test]
fn the_status_page_follows_an_outage_and_a_failover_in_a_real_browser() {
    let lan = setup();
    let rs1 = Nginx::start(lan.host("rs1")).expect("nginx on rs1");
    let _rs2 = Nginx::start(lan.host("rs2")).expect("nginx on rs2");
    let mut master = Daemon::start_toml(lan.host("m"), &config("m", "10.167.0.1", 150)).expect("m");
    let _backup = Daemon::start_toml(lan.host("b"), &config("b", "10.167.0.2", 100)).expect("b");
    master
        .wait_event("m becoming master", Duration::from_secs(10), |e| {
            e.entered() == Some(State::Master)
        })
        .expect("m master");
    lan.host("m")
        .wait_address(VIP.parse::<IpAddr>().unwrap(), true, Duration::from_secs(5))
        .expect("the VIP on m");

    let mut browser = Browser::launch(lan.host("client"), WIDTH, HEIGHT).expect("chromium");
    let m = browser.open(MASTER_PAGE).expect("m's page");
    let b = browser.open(BACKUP_PAGE).expect("b's page");

    // What the daemons hold, in the tables.
    assert_eq!(
        browser.eval(&m, &state_of("VI_1")).unwrap(),
        json!("MASTER")
    );
    assert_eq!(
        browser.eval(&b, &state_of("VI_1")).unwrap(),
        json!("BACKUP")
    );
    browser
        .wait_for(
            &m,
            "both real servers up on m's page",
            "[...document.querySelectorAll('tr[data-real-server]')]\
             .filter(r => r.dataset.health === 'up').length === 2",
            SEEN_WITHIN,
        )
        .expect("real servers up");
    // Traffic through the VIP shows in the real servers' rows: the
    // connections nftables' counting sets counted, exact in the cell's
    // title.
    get_through_vip(&lan, 4);
    browser
        .wait_for(
            &m,
            "the four connections counted on m's page",
            &connections_at_least("tr[data-real-server]", 4),
            SEEN_WITHIN,
        )
        .expect("traffic counted");
    // The style sheet loaded under the page's policy: the MASTER badge has
    // its colour; and the script runs: the page has refreshed itself.
    assert_eq!(
        browser
            .eval(
                &m,
                "getComputedStyle(document.querySelector('tr[data-instance=\"VI_1\"] .badge'))\
                 .backgroundColor"
            )
            .unwrap(),
        json!("rgb(46, 125, 50)")
    );
    browser
        .wait_for(
            &m,
            "the page's script refreshing it",
            "Number(document.body.dataset.refreshes || 0) >= 1",
            SEEN_WITHIN,
        )
        .expect("live refresh");
    let loaded = |browser: &mut Browser, tab: &Tab| {
        browser
            .eval(tab, "performance.timeOrigin")
            .expect("timeOrigin")
    };
    let (m_loaded, b_loaded) = (loaded(&mut browser, &m), loaded(&mut browser, &b));
    let chart = lanes(&mut browser, &m);
    let names: Vec<&str> = chart.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "vrrp VI_1",
            "TCP 10.167.0.100:80 10.167.0.11:80",
            "TCP 10.167.0.100:80 10.167.0.12:80"
        ]
    );
    assert_eq!(
        chart[0].1.last().map(String::as_str),
        Some("master"),
        "{chart:?}"
    );
    assert!(chart[0].1.contains(&"backup".to_string()), "{chart:?}");

    // A real server's outage: m's page shows it down, without a reload.
    rs1.stop().expect("stopping nginx on rs1");
    browser
        .wait_for(
            &m,
            "rs1 down on m's page",
            &format!("{} === 'down'", health_of(RS1)),
            SEEN_WITHIN,
        )
        .expect("rs1 down");
    assert_eq!(
        loaded(&mut browser, &m),
        m_loaded,
        "the page was not reloaded"
    );
    // The status asks the checker itself; the timeline hears of the change
    // a moment later, through the daemon's loop.
    browser
        .wait_for(
            &m,
            "rs1's down in m's chart",
            "document.querySelector('g.lane[data-lane=\"TCP 10.167.0.100:80 10.167.0.11:80\"] \
             rect.seg.down') !== null",
            SEEN_WITHIN,
        )
        .expect("rs1 down in the chart");
    let chart = lanes(&mut browser, &m);
    let events = browser
        .eval(&m, "document.getElementById('events').innerText")
        .unwrap();
    assert_eq!(
        chart[1].1,
        ["up", "down"],
        "rs1's lane: up, then down: {chart:?}\n{events}"
    );
    assert!(
        events
            .as_str()
            .is_some_and(|t| t.contains("real server 10.167.0.11:80 DOWN")),
        "{events}"
    );
    screenshot(&mut browser, &m, "real-server-down.png");

    // The master dies: b's page shows it taking over, with the reason; m's
    // page says it is stale.
    master.kill().expect("killing m's daemon");
    browser
        .wait_for(
            &b,
            "b MASTER on b's page, with the transition's reason",
            &format!(
                "{} === 'MASTER' && document.querySelector('tr[data-instance=\"VI_1\"] .reason')\
                 ?.textContent.includes('no advert')",
                state_of("VI_1")
            ),
            SEEN_WITHIN,
        )
        .expect("b master");
    assert_eq!(
        loaded(&mut browser, &b),
        b_loaded,
        "the page was not reloaded"
    );
    let reason = browser
        .eval(
            &b,
            "document.querySelector('tr[data-instance=\"VI_1\"] .reason').textContent",
        )
        .unwrap();
    assert!(
        reason.as_str().is_some_and(|r| r.contains("no advert")),
        "{reason}"
    );
    let chart = lanes(&mut browser, &b);
    assert_eq!(
        chart[0].1.iter().rev().take(2).collect::<Vec<_>>(),
        ["master", "backup"],
        "b's lane ends backup, then master: {chart:?}"
    );
    // The clients' connections go through b now, and b counts them.
    get_through_vip(&lan, 3);
    browser
        .wait_for(
            &b,
            "three connections to rs2 counted on b's page",
            &connections_at_least("tr[data-real-server=\"10.167.0.12:80\"]", 3),
            SEEN_WITHIN,
        )
        .expect("traffic counted on b");
    browser
        .wait_for(
            &m,
            "m's page saying it is stale",
            "document.body.classList.contains('stale') && \
             getComputedStyle(document.getElementById('stale')).display !== 'none'",
            SEEN_WITHIN,
        )
        .expect("stale banner");
    screenshot(&mut browser, &b, "failover.png");
    screenshot(&mut browser, &m, "stale.png");

    // Without scripts: the tables are in the page the director sends, and
    // the page reloads itself (its <noscript> refresh).
    let plain = browser.new_tab().expect("a third tab");
    browser.set_scripts(&plain, false).expect("scripts off");
    browser
        .navigate(&plain, BACKUP_PAGE)
        .expect("b's page without scripts");
    assert_eq!(
        browser.eval(&plain, &state_of("VI_1")).unwrap(),
        json!("MASTER")
    );
    assert_eq!(
        browser
            .eval(
                &plain,
                "document.querySelectorAll('tr[data-real-server]').length"
            )
            .unwrap(),
        json!(2)
    );
    let first = loaded(&mut browser, &plain);
    browser
        .wait_for(
            &plain,
            "the page reloading itself without scripts",
            &format!("performance.timeOrigin !== {first} && document.readyState === 'complete'"),
            SEEN_WITHIN,
        )
        .expect("noscript refresh");
    assert_eq!(
        browser
            .eval(&plain, "document.body.dataset.refreshes ?? null")
            .unwrap(),
        json!(null),
        "the script did not run"
    );
}
