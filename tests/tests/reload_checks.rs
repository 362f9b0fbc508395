//! A reload that changes one virtual server leaves the others alone: their
//! checks go on where they were (no restart, no new first check), and a
//! real server their checks took out stays out. Before, any change to the
//! virtual servers restarted every check and programmed the configured
//! table, so a failed server of an untouched virtual server was back in
//! the kernel's table until its check failed again.

use appliance_tests::appliance_bin;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::toml_conf::{Director, virtual_server};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const NET: u8 = 124;

const CHECK: &str = r#"check = [{ type = "TCP_CHECK", connect_timeout = "1s", retry = 0 }]"#;

fn config(weight_c: u32) -> String {
    let real_server = |port: u16| format!("10.{NET}.0.1:{port}");
    let (a, b, c) = (real_server(8081), real_server(8082), real_server(8083));
    let weighted = format!("weight = {weight_c}\n{CHECK}");
    format!(
        "{}{}{}",
        Director::new("d", NET).render(),
        virtual_server(
            &format!("10.{NET}.0.100:80"),
            "rr",
            &[(&a, CHECK), (&b, CHECK)]
        ),
        virtual_server(&format!("10.{NET}.0.100:81"), "wrr", &[(&c, &weighted)]),
    )
}

fn ruleset(host: &Host) -> String {
    let out = host
        .run("nft", &["list", "ruleset"])
        .expect("nft (Debian package nftables)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `pred` holds of the daemon's log, at most `within`.
fn wait_log(d: &Daemon, what: &str, within: Duration, pred: impl Fn(&str) -> bool) {
    let start = Instant::now();
    while !pred(&d.log()) {
        assert!(
            start.elapsed() < within,
            "{what} within {within:?}:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reload_leaves_the_checks_of_unchanged_virtual_servers_alone() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("d", &[&format!("10.{NET}.0.1/24")])
        .expect("host d");
    let host = lan.host("d");
    let listen = |port: u16| {
        host.enter(move || TcpListener::bind(format!("10.{NET}.0.1:{port}")))
            .unwrap()
            .expect("real server listens")
    };
    let (_a, b, _c) = (listen(8081), listen(8082), listen(8083));
    let d = Daemon::start_toml(host, &config(1)).expect("d starts");
    let b_down = format!("address=10.{NET}.0.1:8082 alive=false");
    drop(b);
    wait_log(
        &d,
        "b's check takes it out",
        Duration::from_secs(15),
        |log| log.contains(&b_down),
    );
    wait_log(&d, "b leaves the table", Duration::from_secs(5), |_| {
        !ruleset(host).contains("8082")
    });
    let changes_before = d.log().matches("real server changed").count();

    // Only the second virtual server changes.
    d.write_config(&config(2)).expect("config written");
    let socket = d.socket_path();
    let out = host
        .run(
            appliance_bin(),
            &["reload", "--socket", socket.to_str().expect("utf-8 path")],
        )
        .expect("appliance reload");
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "the reload applies: {out:?}");
    // The reload is answered once its table is in the kernel: b is not.
    let table = ruleset(host);
    assert!(
        !table.contains("8082"),
        "the failed real server stays out across the reload:\n{table}"
    );
    assert!(
        table.contains("8081") && table.contains("8083"),
        "the live real servers are in:\n{table}"
    );
    assert!(
        answer.contains("1 unchanged kept their checks"),
        "the reload says the first virtual server kept its checks: {answer}"
    );
    // Past the new checker's first runs (1 s bootstrap plus a warmup of up
    // to the 1 s delay_loop): nothing about the first virtual server was
    // announced again, b stayed out.
    std::thread::sleep(Duration::from_secs(3));
    let log = d.log();
    let after: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("real server changed"))
        .skip(changes_before)
        .collect();
    assert!(
        after
            .iter()
            .all(|l| !l.contains(":8081") && !l.contains(":8082")),
        "no check of the unchanged virtual server started over:\n{}",
        after.join("\n")
    );
    let table = ruleset(host);
    assert!(!table.contains("8082"), "b is still out:\n{table}");
}
