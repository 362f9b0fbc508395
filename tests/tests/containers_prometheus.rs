//! Prometheus as the demo runs it (the prometheus image with
//! compose/prometheus.yml, the directors with the demo's configs, moved to
//! a lab's subnet): it scrapes both directors' metrics, each target
//! labelled with its director, and what it stores says which is MASTER;
//! the directors' status pages, which the demo prints beside it, answer.

use appliance_tests::containers::{Container, Lab, images};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CLIENT: u8 = 20;
/// Prometheus's host number in the demo (compose/docker-compose.yml).
const PROMETHEUS: u8 = 30;
/// Startup takes master_down_interval (3 adverts + skew) before MASTER.
const START: Duration = Duration::from_secs(10);
/// Prometheus's own start, then a first scrape of each target within its
/// 5s interval.
const SCRAPED: Duration = Duration::from_secs(60);

/// Prometheus's HTTP API at `path`, asked by curl in the client with
/// `params` (URL-encoded): the answer's `data`.
fn api(
    lab: &Lab,
    client: &Container,
    prometheus: &Container,
    path: &str,
    params: &[&str],
) -> Result<Value, String> {
    let url = format!("http://{}:9090{path}", prometheus.address);
    let mut cmd = vec!["curl", "-fsS", "--max-time", "5", "-G", url.as_str()];
    for param in params {
        cmd.extend(["--data-urlencode", param]);
    }
    let out = lab.exec(client, &cmd).map_err(|e| e.to_string())?;
    if out.code != 0 {
        return Err(format!("curl {url}: {}", out.stderr.trim()));
    }
    let body: Value =
        serde_json::from_str(&out.stdout).map_err(|e| format!("{url}: {e}: {}", out.stdout))?;
    if body["status"] != "success" {
        return Err(format!("{url}: {body}"));
    }
    Ok(body["data"].clone())
}

/// The label `name` of a target's or a series' `labels`.
fn label(labels: &Value, name: &str) -> String {
    labels[name].as_str().unwrap_or_default().to_string()
}

/// The port of `[global] metrics_listen` in a director's TOML config.
fn metrics_port(config: &str) -> u16 {
    let table: toml::Table = toml::from_str(config).expect("a TOML config");
    let listen = table["global"]["metrics_listen"]
        .as_str()
        .expect("the demo's directors set metrics_listen");
    listen
        .parse::<std::net::SocketAddr>()
        .expect("metrics_listen is ADDR:PORT")
        .port()
}

#[test]
fn prometheus_scrapes_both_directors_whose_status_pages_answer() {
    let images = images().expect("images");
    let lab = Lab::new("prometheus").expect("lab");
    let port = metrics_port(&lab.demo_config("master").expect("master config"));
    assert_eq!(
        metrics_port(&lab.demo_config("backup").expect("backup config")),
        port,
        "one port for both"
    );
    let (master, backup) = lab
        .demo_directors(images, START)
        .expect("master MASTER, backup BACKUP");
    let config = lab.demo_prometheus_config().expect("prometheus.yml");
    let prometheus = lab
        .prometheus(images, PROMETHEUS, &config)
        .expect("prometheus");
    let client = lab.client(images, CLIENT).expect("client");

    // Each director a target of its own, scraped at its address.
    let want: BTreeMap<String, (String, String)> = [&master, &backup]
        .map(|d| {
            (
                d.role.clone(),
                (format!("{}:{port}", d.address), "up".to_string()),
            )
        })
        .into_iter()
        .collect();
    let start = Instant::now();
    loop {
        let data = api(&lab, &client, &prometheus, "/api/v1/targets", &[]);
        let seen: Option<BTreeMap<String, (String, String)>> = data.as_ref().ok().map(|data| {
            data["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        label(&t["labels"], "director"),
                        (label(&t["labels"], "instance"), label(t, "health")),
                    )
                })
                .collect()
        });
        if seen.as_ref() == Some(&want) {
            break;
        }
        assert!(
            start.elapsed() < SCRAPED,
            "Prometheus does not report {want:?} within {SCRAPED:?}; its targets: {data:?}\n\
             its logs:\n{}",
            lab.logs(&prometheus).unwrap_or_else(|e| e.to_string())
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    // What it stored: each director's VRRP state under its director label;
    // the VRRP instance's name as exported_instance, beside the target's
    // instance (compose/prometheus.yml says so).
    let data = api(
        &lab,
        &client,
        &prometheus,
        "/api/v1/query",
        &["query=appliance_vrrp_state == 1"],
    )
    .expect("query");
    let states: BTreeMap<String, (String, String)> = data["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .map(|series| {
            let m = &series["metric"];
            (
                label(m, "director"),
                (label(m, "state"), label(m, "exported_instance")),
            )
        })
        .collect();
    let vrrp = |state: &str| (state.to_string(), "VI_1".to_string());
    assert_eq!(
        states,
        BTreeMap::from([
            ("master".to_string(), vrrp("MASTER")),
            ("backup".to_string(), vrrp("BACKUP")),
        ]),
        "{data}"
    );

    // The status page at / of the same listener.
    for d in [&master, &backup] {
        let url = format!("http://{}:{port}/", d.address);
        let out = lab
            .exec(
                &client,
                &[
                    "curl",
                    "-fsS",
                    "--max-time",
                    "5",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{content_type}",
                    &url,
                ],
            )
            .expect("curl");
        assert_eq!(out.code, 0, "{url}: {out:?}");
        assert!(out.stdout.starts_with("text/html"), "{url}: {out:?}");
    }
}
