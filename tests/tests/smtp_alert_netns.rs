//! Alert mail through the running daemons, in network namespaces on
//! 10.152.0.0/24: appliances `m` (priority 150) and `b` (100) with
//! keepalived's global_defs mail settings (`smtp_alert` on for all), a
//! relay on the client host `c` that this test runs and records
//! (tests/src/smtp_server.rs), and a virtual server whose two real
//! servers are SMTP servers on `c` too, checked by SMTP_CHECK: `rs1`
//! mails (a real server's default), `rs2` says `smtp_alert off`.
//!
//! The relay receives, as keepalived sends them: each director's
//! instance entering BACKUP at start and m's entering MASTER; nothing
//! when rs2 goes down (the control); when rs1 goes down, its DOWN mail
//! from both directors and the virtual server's lost quorum; and on m's
//! stop, m's "Stopping" and b's MASTER. Every mail has the envelope and
//! the headers of keepalived's (HELO name, MAIL FROM, one RCPT TO per
//! recipient, Date, From, Subject, X-Mailer, To).

use appliance::timeline::EventKind;
use appliance_tests::pair::{Net, Pair, Side};
use appliance_tests::smtp_server::{Session, SmtpServer};
use appliance_tests::vrrp_conf::Instance;
use std::net::SocketAddr;
use std::time::Duration;

const NET: Net = Net(152);
const RELAY: &str = "10.152.0.10:25";
const RS1: &str = "10.152.0.10:2525";
const RS2: &str = "10.152.0.10:2526";
const TO: [&str; 2] = ["ops@example.test", "oncall@example.test"];
/// An election, a check's failure (delay_loop 1 s, connect_timeout 1 s,
/// no retry) and a mail, with slack for a loaded machine.
const WITHIN: Duration = Duration::from_secs(20);
/// How long the relay is watched for a mail that must not come.
const QUIET: Duration = Duration::from_secs(3);

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

fn director(name: &str, priority: u8) -> Instance {
    let vs = "virtual_server 10.152.0.100 25 {\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  \
              protocol TCP\n  real_server 10.152.0.10 2525 {\n    SMTP_CHECK {\n      \
              connect_timeout 1\n      retry 0\n    }\n  }\n  real_server 10.152.0.10 2526 {\n    \
              smtp_alert off\n    SMTP_CHECK {\n      connect_timeout 1\n      retry 0\n    }\n  }\n}\n";
    Instance::new(name, 152, priority, &Net::cidr(&NET.vip()))
        .global(&format!(
            "notification_email {{\n    {}\n    {}\n  }}",
            TO[0], TO[1]
        ))
        .global("notification_email_from lb@example.test")
        .global("smtp_server 10.152.0.10 25")
        .global("smtp_helo_name lb.test")
        .global("smtp_connect_timeout 5")
        .global("smtp_alert")
        .block(vs)
}

/// The mail whose subject is `subject`, once the relay has it.
fn mail(relay: &SmtpServer, subject: &str) -> Session {
    relay
        .wait_session(WITHIN, |s| s.header("Subject") == Some(subject))
        .unwrap_or_else(|e| panic!("{subject}: {e}"))
}

/// keepalived's envelope and headers.
fn assert_keepalived_mail(session: &Session, subject: &str, body: &str) {
    assert_eq!(
        session.lines.first().map(String::as_str),
        Some("HELO lb.test")
    );
    assert_eq!(session.mail_from(), Some("lb@example.test"));
    assert_eq!(session.rcpt_to(), TO);
    assert_eq!(session.header("From"), Some("lb@example.test"));
    assert_eq!(
        session.header("To"),
        Some("ops@example.test, oncall@example.test")
    );
    assert_eq!(session.header("Subject"), Some(subject));
    assert_eq!(session.header("X-Mailer"), Some("Keepalived"));
    let date = session.header("Date").expect("a Date header");
    assert!(date.ends_with(" +0000") && date.len() == 31, "{date}");
    // keepalived ends the body with an empty line before the dot.
    assert_eq!(session.body(), [body, ""]);
    assert_eq!(session.lines.last().map(String::as_str), Some("QUIT"));
}

fn real_server_down(pair: &mut Pair, side: Side, address: SocketAddr) {
    let daemon = match side {
        Side::M => &mut pair.m,
        Side::B => &mut pair.b,
    };
    daemon
        .wait_event("the real server down", WITHIN, |e| {
            matches!(e.event.kind, EventKind::RealServer { address: a, alive: false, .. }
                if a == address)
        })
        .expect("the real server goes down");
}

#[test]
fn vrrp_changes_and_a_real_server_down_mail_the_relay_as_keepalived_does() {
    let mut relay = None;
    let mut rs1 = None;
    let mut rs2 = None;
    let mut pair = Pair::start_with(
        NET,
        director("m", 150),
        director("b", 100),
        &NET.vip(),
        |lan| {
            let c = lan.host("c");
            relay = Some(SmtpServer::start(c, addr(RELAY))?);
            rs1 = Some(SmtpServer::start(c, addr(RS1))?);
            rs2 = Some(SmtpServer::start(c, addr(RS2))?);
            Ok(())
        },
    )
    .expect("m and b elect m");
    let relay = relay.expect("the relay runs");

    // The start: both enter BACKUP, m then MASTER.
    let backup = "=> VRRP Instance is no longer owning VRRP VIPs <=";
    for node in ["m", "b"] {
        let subject = format!("[{node}] VRRP Instance VI_A - Entering BACKUP state");
        assert_keepalived_mail(&mail(&relay, &subject), &subject, backup);
    }
    let subject = "[m] VRRP Instance VI_A - Entering MASTER state";
    assert_keepalived_mail(
        &mail(&relay, subject),
        subject,
        "=> VRRP Instance is now owning VRRP VIPs <=",
    );

    // The control: rs2 (smtp_alert off) goes down on both, and nobody
    // mails about it.
    drop(rs2.take());
    real_server_down(&mut pair, Side::M, addr(RS2));
    real_server_down(&mut pair, Side::B, addr(RS2));
    std::thread::sleep(QUIET);
    let about_rs2: Vec<Session> = relay
        .sessions()
        .into_iter()
        .filter(|s| s.header("Subject").is_some_and(|t| t.contains(":2526")))
        .collect();
    assert!(about_rs2.is_empty(), "{about_rs2:#?}");

    // rs1 goes down: both directors mail it, and the lost quorum.
    drop(rs1.take());
    for node in ["m", "b"] {
        let subject = format!(
            "[{node}] Realserver [10.152.0.10]:tcp:2525 of virtual server [10.152.0.100]:tcp:25 - DOWN"
        );
        // The failure as the check saw it: refused, or reset when the
        // server stopped with the check's connection in its queue.
        let session = mail(&relay, &subject);
        let body = session
            .body()
            .first()
            .map(|b| b.to_string())
            .unwrap_or_default();
        assert!(
            [
                "=> CHECK failed on service : connect failed: connection refused <=",
                "=> CHECK failed on service : connect failed: connection reset <=",
            ]
            .contains(&body.as_str()),
            "{body}"
        );
        assert_keepalived_mail(&session, &subject, &body);
        let subject = format!("[{node}] Virtualserver [10.152.0.100]:tcp:25 - DOWN");
        assert_keepalived_mail(
            &mail(&relay, &subject),
            &subject,
            "=> Lost quorum 1+0=1 <= 0 <=",
        );
    }

    // The failover: m stops (mailing so), b takes over (mailing so).
    pair.m.stop().expect("m stops");
    let subject = "[m] VRRP Instance VI_A - Stopping";
    assert_keepalived_mail(
        &mail(&relay, subject),
        subject,
        "=> VRRP Instance stopping <=",
    );
    pair.wait_holder(Side::B, WITHIN).expect("b takes the VIP");
    let subject = "[b] VRRP Instance VI_A - Entering MASTER state";
    assert_keepalived_mail(
        &mail(&relay, subject),
        subject,
        "=> VRRP Instance is now owning VRRP VIPs <=",
    );
    // Each change mailed once per director.
    let subjects: Vec<String> = relay
        .sessions()
        .iter()
        .filter_map(|s| s.header("Subject").map(str::to_string))
        .collect();
    for subject in &subjects {
        assert_eq!(
            subjects.iter().filter(|s| *s == subject).count(),
            1,
            "{subject} mailed twice: {subjects:#?}"
        );
    }
}
