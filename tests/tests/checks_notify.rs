//! A health check's notify program that fails is logged in the span of
//! its virtual server, naming the real server and which notify it was: a
//! log line an operator can act on, where it used to say only that some
//! notify program failed.

use appliance_tests::daemon::Daemon;
use appliance_tests::netns::Lan;
use appliance_tests::toml_conf::{Director, virtual_server};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const NET: u8 = 122;

#[test]
fn a_failing_notify_down_is_logged_with_its_virtual_and_real_server() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("d", &[&format!("10.{NET}.0.1/24")])
        .expect("host d");
    let host = lan.host("d");
    let listener = host
        .enter(|| TcpListener::bind(format!("10.{NET}.0.1:8080")))
        .unwrap()
        .expect("real server listens");
    let config = format!(
        "{}{}",
        Director::new("d", NET).render(),
        virtual_server(
            &format!("10.{NET}.0.100:80"),
            "rr",
            &[(
                &format!("10.{NET}.0.1:8080"),
                r#"weight = 1
notify_down = { program = "/bin/false" }
check = [{ type = "TCP_CHECK", connect_timeout = "1s", retry = 0 }]"#
            )]
        )
    );
    let d = Daemon::start_toml(host, &config).expect("d starts");
    std::thread::sleep(Duration::from_secs(2));
    drop(listener);
    let start = Instant::now();
    let line = loop {
        if let Some(line) = d
            .log()
            .lines()
            .find(|l| l.contains("notify program failed"))
        {
            break line.to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no failed notify logged:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for part in [
        format!("service=10.{NET}.0.100:80"),
        format!("real_server=\"10.{NET}.0.1:8080\""),
        "notify=\"notify_down\"".to_string(),
        "program=/bin/false".to_string(),
    ] {
        assert!(line.contains(&part), "the line names {part}: {line}");
    }
}
