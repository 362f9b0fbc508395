//! A TOML config beside a keepalived.conf, through `appliance run` in a
//! network namespace: the TOML names the keepalived.conf
//! (`keepalived_conf`) and adds what keepalived has no words for, here
//! `metrics_listen`. The daemon runs the keepalived.conf's instance and
//! serves the metrics (a client's curl is the witness), and a reload reads
//! the keepalived.conf again: its new priority shows in the metrics.

use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::web::curl;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const VIP: &str = "10.161.0.100";
const METRICS: &str = "http://10.161.0.1:9100/metrics";

fn keepalived_conf(priority: u8) -> String {
    format!(
        "global_defs {{\n  router_id director\n}}\n\
         vrrp_instance VI_1 {{\n  state MASTER\n  interface eth0\n  virtual_router_id 161\n  \
         priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// Polls the metrics from `client` until they hold `line`.
fn wait_metric(client: &Host, line: &str) {
    let start = Instant::now();
    loop {
        let text = curl(client, METRICS, Duration::from_secs(2))
            .expect("running curl")
            .unwrap_or_default();
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no `{line}` in the metrics:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_toml_beside_a_keepalived_conf_serves_metrics_and_reloads_both() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("director", &["10.161.0.1/24"])
        .expect("director");
    lan.add_host("client", &["10.161.0.10/24"]).expect("client");
    let director = lan.host("director");
    let client = lan.host("client");
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("keepalived.conf");
    std::fs::write(&conf, keepalived_conf(100)).expect("writing keepalived.conf");
    let toml = format!(
        "keepalived_conf = \"{}\"\n\n[global]\nmetrics_listen = \"10.161.0.1:9100\"\n",
        conf.display()
    );
    let daemon = Daemon::start_toml(director, &toml).expect("appliance run");
    director
        .wait_address(
            VIP.parse::<IpAddr>().unwrap(),
            true,
            Duration::from_secs(10),
        )
        .expect("the keepalived.conf's VIP on the director");
    wait_metric(
        client,
        "appliance_vrrp_state{instance=\"VI_1\",state=\"MASTER\"} 1",
    );
    wait_metric(client, "appliance_vrrp_priority{instance=\"VI_1\"} 100");

    std::fs::write(&conf, keepalived_conf(120)).expect("rewriting keepalived.conf");
    daemon.signal("HUP").expect("SIGHUP");
    wait_metric(client, "appliance_vrrp_priority{instance=\"VI_1\"} 120");
    assert!(
        director
            .has_address(VIP.parse().unwrap())
            .expect("the director's addresses"),
        "still master after the reload"
    );
}
