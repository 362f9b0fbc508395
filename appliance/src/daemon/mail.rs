//! Alert mail, as keepalived's smtp.c sends it: which events mail (VRRP
//! instances and sync groups changing state, real servers going down or
//! up, virtual servers gaining or losing their quorum), which flags allow
//! it (`smtp_alert` where the thing is configured, else `smtp_alert_vrrp`
//! / `smtp_alert_checker`, else `smtp_alert` of global_defs), and their
//! subjects and bodies, as pure functions ([`Policy`], [`instance`],
//! [`real_server`]...). The mail goes out from one task, one at a time
//! through the [`smtp`] client, off a bounded queue: whoever raises an
//! alert only queues it, never waits (a full queue drops the alert, which
//! is counted and logged), so a slow or dead relay never stalls VRRP or
//! the checker.

use crate::check::decision::Outcome;
use crate::config::model::{Config, Global, Protocol, Service, VirtualServer};
use crate::metrics::Metrics;
use crate::smtp::{self, Client};
use crate::vrrp::machine::State;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// Alerts waiting for the relay; more are dropped.
const QUEUE: usize = 64;

/// One mail: its subject (with the router's name) and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Alert {
    pub subject: String,
    pub body: String,
}

/// Where and as whom the mail goes (global_defs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Settings {
    host: String,
    port: u16,
    helo: String,
    from: String,
    to: Vec<String>,
    timeout: Duration,
    /// Upgrade to TLS with STARTTLS before the mail (TOML only).
    starttls: bool,
}

impl Settings {
    /// The settings of `global`, or none without a relay or recipients
    /// (keepalived then mails nothing). `host` stands in for the unset
    /// HELO name and the sender's domain, as keepalived's local name.
    pub(super) fn of(global: &Global, host: &str) -> Option<Self> {
        let server = global.smtp_server.as_ref()?;
        if global.notification_email.is_empty() {
            return None;
        }
        Some(Self {
            host: server.host.clone(),
            port: server.port,
            helo: global
                .smtp_helo_name
                .clone()
                .unwrap_or_else(|| host.to_string()),
            from: global
                .notification_email_from
                .clone()
                .unwrap_or_else(|| format!("{}@{host}", user())),
            to: global.notification_email.clone(),
            timeout: global.smtp_connect_timeout,
            starttls: global.smtp_starttls,
        })
    }
}

/// The user the daemon runs as, keepalived's default sender's name.
fn user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| "root".into(), |u| u.name)
}

/// Which things mail, with keepalived's defaults (vrrp.c, check_data.c).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Policy {
    instances: HashMap<String, bool>,
    groups: HashMap<String, bool>,
    /// By virtual server (`VsId` order): its own flag, and its real
    /// servers'.
    servers: Vec<(bool, HashMap<SocketAddr, bool>)>,
    no_email_faults: bool,
}

impl Policy {
    pub(super) fn of(config: &Config) -> Self {
        let g = &config.global;
        let vrrp = g.smtp_alert_vrrp.or(g.smtp_alert).unwrap_or(false);
        let checker = g.smtp_alert_checker.or(g.smtp_alert);
        Self {
            instances: config
                .vrrp_instance
                .iter()
                .map(|i| (i.name.clone(), i.smtp_alert.unwrap_or(vrrp)))
                .collect(),
            groups: config
                .vrrp_sync_group
                .iter()
                .map(|s| (s.name.clone(), s.smtp_alert.unwrap_or(vrrp)))
                .collect(),
            servers: config
                .virtual_server
                .iter()
                .map(|vs| {
                    let rs = vs
                        .real_server
                        .iter()
                        // Real servers mail unless told not to: keepalived's
                        // own "inconsistent" default.
                        .map(|rs| (rs.address, rs.smtp_alert.or(checker).unwrap_or(true)))
                        .collect();
                    (vs.smtp_alert.or(checker).unwrap_or(false), rs)
                })
                .collect(),
            no_email_faults: g.no_email_faults,
        }
    }

    /// Whether a VRRP unit (`group` or instance) mails on entering `state`.
    fn vrrp(&self, group: bool, name: &str, state: State) -> bool {
        let units = if group { &self.groups } else { &self.instances };
        units.get(name).copied().unwrap_or(false)
            && !(self.no_email_faults && state == State::Fault)
    }
}

/// The subject and body of a VRRP unit entering `state` (keepalived's
/// `vrrp_smtp_notifier` and `vrrp_sync_smtp_notifier`).
pub(super) fn vrrp(node: &str, group: bool, name: &str, state: State) -> Alert {
    let (what, members) = if group {
        ("Group", "All VRRP group instances are now")
    } else {
        ("Instance", "")
    };
    let (event, body) = match (state, group) {
        (State::Master, false) => (
            "Entering MASTER state",
            "=> VRRP Instance is now owning VRRP VIPs <=".to_string(),
        ),
        (State::Backup | State::Fault, false) => (
            if state == State::Backup {
                "Entering BACKUP state"
            } else {
                "Entering FAULT state"
            },
            "=> VRRP Instance is no longer owning VRRP VIPs <=".to_string(),
        ),
        (State::Initialize, false) => ("Stopping", "=> VRRP Instance stopping <=".to_string()),
        (State::Master, true) => (
            "Entering MASTER state",
            format!("=> {members} in MASTER state <="),
        ),
        (State::Backup, true) => (
            "Entering BACKUP state",
            format!("=> {members} in BACKUP state <="),
        ),
        (State::Fault, true) => (
            "Entering FAULT state",
            format!("=> {members} in FAULT state <="),
        ),
        (State::Initialize, true) => ("Stopping", format!("=> {members} stopping <=")),
    };
    Alert {
        subject: format!("[{node}] VRRP {what} {name} - {event}"),
        body,
    }
}

/// keepalived's `[address]:protocol:port`.
fn trio(address: SocketAddr, protocol: Protocol) -> String {
    let protocol = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    };
    format!("[{}]:{protocol}:{}", address.ip(), address.port())
}

/// keepalived's name of a virtual server (`format_vs`).
fn service(vs: &VirtualServer) -> String {
    match &vs.service {
        Service::Address(address) => trio(*address, vs.protocol),
        Service::Fwmark(mark) => format!("FWM {mark}"),
        // A group's virtual server has port 0.
        Service::Group(name) => format!("[{name}]:0"),
    }
}

/// A real server of `vs` taken down or up by its checks, `cause` being
/// the check's outcome that did it.
pub(super) fn real_server(
    node: &str,
    vs: &VirtualServer,
    address: SocketAddr,
    alive: bool,
    cause: &Outcome,
) -> Alert {
    let body = match cause {
        Outcome::Down(failure) => format!("=> CHECK failed on service : {failure} <="),
        _ => "=> CHECK succeed on service <=".to_string(),
    };
    Alert {
        subject: format!(
            "[{node}] Realserver {} of virtual server {} - {}",
            trio(address, vs.protocol),
            service(vs),
            if alive { "UP" } else { "DOWN" }
        ),
        body,
    }
}

/// A virtual server gaining or losing its quorum (ipwrapper.c's
/// `do_vs_notifies`).
pub(super) fn quorum(
    node: &str,
    vs: &VirtualServer,
    up: bool,
    weight_sum: u64,
    threshold: i64,
) -> Alert {
    Alert {
        subject: format!(
            "[{node}] Virtualserver {} - {}",
            service(vs),
            if up { "UP" } else { "DOWN" }
        ),
        body: format!(
            "=> {} {}+{}={threshold} <= {weight_sum} <=",
            if up { "Gained quorum" } else { "Lost quorum" },
            vs.quorum,
            vs.hysteresis
        ),
    }
}

/// The daemon's side of the mail: what to mail and the queue to the task
/// that sends it.
pub(super) struct Alerts {
    /// The router's name in subjects (`router_id`, else the host name).
    node: String,
    policy: Policy,
    settings: watch::Sender<Option<Arc<Settings>>>,
    queue: mpsc::Sender<Alert>,
    dropped: Arc<AtomicU64>,
    /// The state each VRRP unit last mailed (keepalived's
    /// `last_email_state`): a FAULT left unmailed is no new state.
    mailed: HashMap<(bool, String), State>,
    task: Option<tokio::task::JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl Alerts {
    /// Starts the sending task (idle until configured with a relay),
    /// counting the mails' outcomes in `metrics`.
    pub(super) fn start(metrics: Arc<Metrics>) -> Self {
        let (settings, watch) = watch::channel(None);
        let (queue, alerts) = mpsc::channel(QUEUE);
        Self {
            node: String::new(),
            policy: Policy::default(),
            settings,
            queue,
            dropped: Arc::default(),
            mailed: HashMap::new(),
            task: Some(tokio::spawn(send_all(alerts, watch, metrics.clone()))),
            metrics,
        }
    }

    /// Takes the mail settings of `config` (at start and on reload).
    pub(super) fn configure(&mut self, config: &Config, node: &str, host: &str) {
        self.node = node.to_string();
        self.policy = Policy::of(config);
        self.settings
            .send_replace(Settings::of(&config.global, host).map(Arc::new));
    }

    /// Queues `alert`, or drops it if the queue is full.
    fn queue(&self, alert: Alert) {
        if self.task.is_none() || self.settings.borrow().is_none() {
            return;
        }
        if let Err(e) = self.queue.try_send(alert) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            self.metrics.alert_mail("dropped");
            let alert = match e {
                mpsc::error::TrySendError::Full(a) | mpsc::error::TrySendError::Closed(a) => a,
            };
            warn!(subject = %alert.subject, dropped, "alert mail queue full: alert dropped");
        }
    }

    /// A VRRP instance (or sync `group`) entered `state`.
    pub(super) fn vrrp(&mut self, group: bool, name: &str, state: State) {
        if !self.policy.vrrp(group, name, state) {
            return;
        }
        let key = (group, name.to_string());
        if self.mailed.get(&key) == Some(&state) {
            return;
        }
        self.mailed.insert(key, state);
        self.queue(vrrp(&self.node, group, name, state));
    }

    /// A real server of virtual server `vs` (its index) went down or up.
    pub(super) fn real_server(
        &self,
        servers: &[VirtualServer],
        vs: usize,
        address: SocketAddr,
        alive: bool,
        cause: &Outcome,
    ) {
        let wanted = self
            .policy
            .servers
            .get(vs)
            .and_then(|(_, rs)| rs.get(&address))
            .copied()
            .unwrap_or(false);
        if let (true, Some(config)) = (wanted, servers.get(vs)) {
            self.queue(real_server(&self.node, config, address, alive, cause));
        }
    }

    /// Virtual server `vs` (its index) gained or lost its quorum.
    pub(super) fn quorum(
        &self,
        servers: &[VirtualServer],
        vs: usize,
        up: bool,
        weight_sum: u64,
        threshold: i64,
    ) {
        let wanted = self.policy.servers.get(vs).is_some_and(|(on, _)| *on);
        if let (true, Some(config)) = (wanted, servers.get(vs)) {
            self.queue(quorum(&self.node, config, up, weight_sum, threshold));
        }
    }

    /// Lets the queued mail go out, for at most `bound`, and stops the
    /// task; later alerts are dropped.
    pub(super) async fn finish(&mut self, bound: Duration) {
        let Some(task) = self.task.take() else {
            return;
        };
        // The task ends when the queue it reads is closed and empty.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.queue, closed));
        let abort = task.abort_handle();
        if tokio::time::timeout(bound, task).await.is_err() {
            abort.abort();
            warn!("alert mail still queued at the stop was dropped");
        }
    }
}

/// The sending task: one alert at a time, with the settings of the moment.
async fn send_all(
    mut alerts: mpsc::Receiver<Alert>,
    settings: watch::Receiver<Option<Arc<Settings>>>,
    metrics: Arc<Metrics>,
) {
    while let Some(alert) = alerts.recv().await {
        let Some(settings) = settings.borrow().clone() else {
            continue;
        };
        let relay = format!("{}:{}", settings.host, settings.port);
        match send(&settings, &alert, SystemTime::now()).await {
            Ok(()) => {
                metrics.alert_mail("sent");
                info!(%relay, subject = %alert.subject, "alert mail sent");
            }
            Err(error) => {
                metrics.alert_mail("failed");
                warn!(%relay, subject = %alert.subject, %error, "alert mail not sent");
            }
        }
    }
}

/// Sends one mail: keepalived's conversation (HELO, MAIL, one RCPT per
/// recipient, DATA, the message, QUIT), each step bounded by
/// `smtp_connect_timeout`.
async fn send(settings: &Settings, alert: &Alert, now: SystemTime) -> Result<(), smtp::Error> {
    let step = settings.timeout;
    let connect = async {
        let mut addresses =
            tokio::net::lookup_host((settings.host.as_str(), settings.port)).await?;
        let address = addresses
            .next()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        tokio::net::TcpStream::connect(address).await
    };
    let stream = tokio::time::timeout(step, connect)
        .await
        .map_err(|_| smtp::Error::Timeout)??;
    let mut client = Client::new(stream, step);
    if !settings.starttls {
        let result = async {
            client.expect("greeting", 220).await?;
            client
                .command("HELO", &smtp::helo(&settings.helo), 250)
                .await?;
            mail(&mut client, settings, alert, now).await
        }
        .await;
        return quit(client, result).await;
    }
    let upgrade = async {
        client.expect("greeting", 220).await?;
        client
            .command("EHLO", &smtp::ehlo(&settings.helo), 250)
            .await?;
        client.command("STARTTLS", smtp::STARTTLS, 220).await
    }
    .await;
    if upgrade.is_err() {
        return quit(client, upgrade).await;
    }
    let stream = client.into_inner()?;
    let tls = tls(&settings.host, stream, step).await?;
    let mut client = Client::new(tls, step);
    let result = async {
        // RFC 3207 4.2: what was said before TLS is forgotten.
        client
            .command("EHLO", &smtp::ehlo(&settings.helo), 250)
            .await?;
        mail(&mut client, settings, alert, now).await
    }
    .await;
    quit(client, result).await
}

/// The TLS client side of STARTTLS over `stream`, within `step`: any
/// certificate, as SSL_GET (the relay is named by `host`, a name or an
/// address).
async fn tls(
    host: &str,
    stream: tokio::net::TcpStream,
    step: Duration,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, smtp::Error> {
    let connector = crate::check::http::tls_connector()
        .map_err(|_| smtp::Error::Io(std::io::ErrorKind::InvalidInput))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| smtp::Error::Io(std::io::ErrorKind::InvalidInput))?;
    tokio::time::timeout(step, connector.connect(name, stream))
        .await
        .map_err(|_| smtp::Error::Timeout)?
        .map_err(smtp::Error::from)
}

/// Ends a conversation as keepalived does: QUIT after the mail, or after
/// a refusal; a server that timed out or spoke garbage is left.
async fn quit<S>(mut client: Client<S>, result: Result<(), smtp::Error>) -> Result<(), smtp::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if matches!(result, Ok(()) | Err(smtp::Error::Unexpected { .. })) {
        let _ = client.command("QUIT", smtp::QUIT, 221).await;
    }
    result
}

/// The envelope and the message, after the greeting and HELO (or EHLO).
async fn mail<S>(
    client: &mut Client<S>,
    settings: &Settings,
    alert: &Alert,
    now: SystemTime,
) -> Result<(), smtp::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    client
        .command("MAIL", &smtp::mail_from(&settings.from), 250)
        .await?;
    for to in &settings.to {
        client.command("RCPT", &smtp::rcpt_to(to), 250).await?;
    }
    client.command("DATA", smtp::DATA, 354).await?;
    let message = smtp::message(
        &smtp::date(now),
        &settings.from,
        &alert.subject,
        &settings.to,
        &alert.body,
    );
    client.command("message", &message, 250).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::decision::Failure;
    use crate::config::{Format, load_str};
    use std::path::Path;
    use std::sync::Arc;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    const CONF: &str = "global_defs {\n router_id lb1\n notification_email {\n ops@example.org\n }\n\
        smtp_server 127.0.0.1 2525\n}\n\
        vrrp_instance A {\n interface lo\n virtual_router_id 1\n priority 100\n smtp_alert\n}\n\
        vrrp_instance B {\n interface lo\n virtual_router_id 2\n priority 100\n}\n\
        virtual_server 192.0.2.1 25 {\n protocol TCP\n quorum 2\n hysteresis 1\n\
        real_server 10.0.0.1 25 {\n TCP_CHECK {\n }\n }\n\
        real_server 10.0.0.2 25 {\n smtp_alert off\n TCP_CHECK {\n }\n }\n}\n";

    fn config(text: &str) -> Config {
        load_str(Path::new("k.conf"), text, Format::Keepalived).unwrap_or_else(|d| panic!("{d}"))
    }

    #[test]
    fn flags_default_as_keepalived_s() {
        let policy = Policy::of(&config(CONF));
        assert!(policy.vrrp(false, "A", State::Master));
        assert!(
            !policy.vrrp(false, "B", State::Master),
            "instances: off by default"
        );
        let (vs, rs) = &policy.servers[0];
        assert!(!vs, "virtual servers: off by default");
        assert_eq!(
            rs.get(&"10.0.0.1:25".parse().unwrap()),
            Some(&true),
            "real servers: on"
        );
        assert_eq!(rs.get(&"10.0.0.2:25".parse().unwrap()), Some(&false));
        // The global flags, the specific one first.
        let text = CONF.replace(
            " router_id lb1\n",
            " router_id lb1\n smtp_alert\n smtp_alert_checker off\n no_email_faults\n",
        );
        let policy = Policy::of(&config(&text));
        assert!(policy.vrrp(false, "B", State::Backup));
        assert!(!policy.vrrp(false, "B", State::Fault), "no_email_faults");
        let (vs, rs) = &policy.servers[0];
        assert!(!vs);
        assert_eq!(rs.get(&"10.0.0.1:25".parse().unwrap()), Some(&false));
    }

    #[test]
    fn subjects_and_bodies_are_keepalived_s() {
        assert_eq!(
            vrrp("lb1", false, "VI_1", State::Master),
            Alert {
                subject: "[lb1] VRRP Instance VI_1 - Entering MASTER state".into(),
                body: "=> VRRP Instance is now owning VRRP VIPs <=".into(),
            }
        );
        assert_eq!(
            vrrp("lb1", false, "VI_1", State::Fault).body,
            "=> VRRP Instance is no longer owning VRRP VIPs <="
        );
        assert_eq!(
            vrrp("lb1", false, "VI_1", State::Initialize).subject,
            "[lb1] VRRP Instance VI_1 - Stopping"
        );
        assert_eq!(
            vrrp("lb1", true, "G", State::Backup),
            Alert {
                subject: "[lb1] VRRP Group G - Entering BACKUP state".into(),
                body: "=> All VRRP group instances are now in BACKUP state <=".into(),
            }
        );
        let config = config(CONF);
        let vs = &config.virtual_server[0];
        let rs = "10.0.0.1:25".parse().unwrap();
        assert_eq!(
            real_server("lb1", vs, rs, false, &Outcome::Down(Failure::Status(554))),
            Alert {
                subject:
                    "[lb1] Realserver [10.0.0.1]:tcp:25 of virtual server [192.0.2.1]:tcp:25 - DOWN"
                        .into(),
                body: "=> CHECK failed on service : unexpected status 554 <=".into(),
            }
        );
        assert_eq!(
            real_server("lb1", vs, rs, true, &Outcome::Up).body,
            "=> CHECK succeed on service <="
        );
        assert_eq!(
            quorum("lb1", vs, false, 1, 1),
            Alert {
                subject: "[lb1] Virtualserver [192.0.2.1]:tcp:25 - DOWN".into(),
                body: "=> Lost quorum 2+1=1 <= 1 <=".into(),
            }
        );
    }

    /// A relay on loopback records the conversation; a second one that
    /// refuses the recipient is QUIT politely.
    #[test]
    fn the_mail_conversation_is_keepalived_s() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for refuse in [false, true] {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                let relay = tokio::spawn(async move {
                    let (stream, _) = listener.accept().await.unwrap();
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 relay ESMTP\r\n").await.unwrap();
                    let mut heard = Vec::new();
                    let mut data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        heard.push(line.clone());
                        let reply: &[u8] = if data {
                            if line != "." {
                                continue;
                            }
                            data = false;
                            b"250 queued\r\n"
                        } else if line.starts_with("RCPT") && refuse {
                            b"550 no such user\r\n"
                        } else if line == "DATA" {
                            data = true;
                            b"354 go ahead\r\n"
                        } else if line == "QUIT" {
                            b"221 bye\r\n"
                        } else {
                            b"250-relay\r\n250 ok\r\n"
                        };
                        write.write_all(reply).await.unwrap();
                    }
                    heard
                });
                let settings = Settings {
                    host: "127.0.0.1".into(),
                    port,
                    helo: "lb1.example".into(),
                    from: "lb@example.org".into(),
                    to: vec!["a@example.org".into(), "b@example.org".into()],
                    timeout: Duration::from_secs(2),
                    starttls: false,
                };
                let alert = vrrp("lb1", false, "VI_1", State::Master);
                let result = send(&settings, &alert, std::time::UNIX_EPOCH).await;
                let heard = relay.await.unwrap();
                if refuse {
                    assert!(
                        matches!(result, Err(smtp::Error::Unexpected { code: 550, .. })),
                        "{result:?}"
                    );
                    assert_eq!(
                        heard,
                        [
                            "HELO lb1.example",
                            "MAIL FROM:<lb@example.org>",
                            "RCPT TO:<a@example.org>",
                            "QUIT"
                        ]
                    );
                    continue;
                }
                assert_eq!(result, Ok(()));
                assert_eq!(
                    heard,
                    [
                        "HELO lb1.example",
                        "MAIL FROM:<lb@example.org>",
                        "RCPT TO:<a@example.org>",
                        "RCPT TO:<b@example.org>",
                        "DATA",
                        "Date: Thu, 01 Jan 1970 00:00:00 +0000",
                        "From: lb@example.org",
                        "Subject: [lb1] VRRP Instance VI_1 - Entering MASTER state",
                        "X-Mailer: Keepalived",
                        "To: a@example.org, b@example.org",
                        "",
                        "=> VRRP Instance is now owning VRRP VIPs <=",
                        "",
                        ".",
                        "QUIT",
                    ]
                );
            }
        });
    }

    /// A relay's STARTTLS and TLS server side: `offer` or refuse it (502),
    /// and `inject` a line after its 220 (which must end the mail).
    /// Returns the lines heard before TLS and inside it.
    async fn tls_relay(
        listener: tokio::net::TcpListener,
        offer: bool,
        inject: bool,
    ) -> (Vec<String>, Vec<String>) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rcgen::generate_simple_self_signed(vec!["relay.test".into()]).unwrap();
        let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], private)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"220 relay ESMTP\r\n").await.unwrap();
        let mut plain = Vec::new();
        let mut reader = BufReader::new(&mut stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return (plain, Vec::new());
            }
            let line = line.trim_end().to_string();
            plain.push(line.clone());
            let reply: &[u8] = match line.as_str() {
                "STARTTLS" if !offer => b"502 not here\r\n",
                "STARTTLS" if inject => b"220 go ahead\r\n250 injected\r\n",
                "STARTTLS" => b"220 go ahead\r\n",
                "QUIT" => b"221 bye\r\n",
                _ => b"250-relay\r\n250 STARTTLS\r\n",
            };
            reader.get_mut().write_all(reply).await.unwrap();
            if line == "STARTTLS" && offer {
                break;
            }
            if line == "QUIT" {
                return (plain, Vec::new());
            }
        }
        let Ok(tls) = acceptor.accept(stream).await else {
            return (plain, Vec::new());
        };
        let (read, mut write) = tokio::io::split(tls);
        let mut lines = BufReader::new(read).lines();
        let mut secret = Vec::new();
        let mut data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            secret.push(line.clone());
            let reply: &[u8] = if data {
                if line != "." {
                    continue;
                }
                data = false;
                b"250 queued\r\n"
            } else if line == "DATA" {
                data = true;
                b"354 go ahead\r\n"
            } else if line == "QUIT" {
                b"221 bye\r\n"
            } else {
                b"250 ok\r\n"
            };
            if write.write_all(reply).await.is_err() || line == "QUIT" {
                break;
            }
        }
        (plain, secret)
    }

    /// With `smtp_starttls` the mail goes inside TLS after EHLO and
    /// STARTTLS; a relay that does not offer it, or that says more after
    /// its 220, gets none.
    #[test]
    fn starttls_sends_the_mail_inside_tls_or_not_at_all() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for (offer, inject) in [(true, false), (false, false), (true, true)] {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                let relay = tokio::spawn(tls_relay(listener, offer, inject));
                let settings = Settings {
                    host: "127.0.0.1".into(),
                    port,
                    helo: "lb1.example".into(),
                    from: "lb@example.org".into(),
                    to: vec!["a@example.org".into()],
                    timeout: Duration::from_secs(2),
                    starttls: true,
                };
                let alert = vrrp("lb1", false, "VI_1", State::Master);
                let result = send(&settings, &alert, std::time::UNIX_EPOCH).await;
                let (plain, secret) = relay.await.unwrap();
                match (offer, inject) {
                    (true, false) => {
                        assert_eq!(result, Ok(()));
                        assert_eq!(plain, ["EHLO lb1.example", "STARTTLS"]);
                        assert_eq!(
                            secret[..3],
                            [
                                "EHLO lb1.example",
                                "MAIL FROM:<lb@example.org>",
                                "RCPT TO:<a@example.org>"
                            ]
                        );
                        assert!(
                            secret.contains(
                                &"Subject: [lb1] VRRP Instance VI_1 - Entering MASTER state"
                                    .to_string()
                            ),
                            "{secret:?}"
                        );
                        assert_eq!(secret.last().map(String::as_str), Some("QUIT"));
                    }
                    (false, _) => {
                        assert!(
                            matches!(result, Err(smtp::Error::Unexpected { code: 502, .. })),
                            "{result:?}"
                        );
                        assert_eq!(
                            plain,
                            ["EHLO lb1.example", "STARTTLS", "QUIT"],
                            "no mail in the clear"
                        );
                    }
                    (true, true) => {
                        assert_eq!(result, Err(smtp::Error::Injected));
                        assert!(secret.is_empty());
                    }
                }
            }
        });
    }

    /// Nobody reads the queue: alerts beyond it are dropped and counted,
    /// and queuing never waits.
    #[test]
    fn a_full_queue_drops_without_waiting() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // A relay that accepts and never speaks: the task is stuck on
            // its first mail for the whole timeout.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let metrics = Arc::new(Metrics::new());
            let mut alerts = Alerts::start(metrics.clone());
            let text = CONF.replace(
                "smtp_server 127.0.0.1 2525",
                &format!("smtp_server 127.0.0.1 {port}\n smtp_connect_timeout 30"),
            );
            alerts.configure(&config(&text), "lb1", "host");
            let started = std::time::Instant::now();
            for i in 0..(QUEUE + 10) {
                let state = if i % 2 == 0 {
                    State::Master
                } else {
                    State::Backup
                };
                alerts.vrrp(false, "A", state);
            }
            assert!(started.elapsed() < Duration::from_secs(1));
            let dropped = alerts.dropped.load(Ordering::Relaxed);
            // The task may have taken one off the queue already.
            assert!((9..=10).contains(&dropped), "{dropped}");
            assert!(
                metrics.scrape(None).contains(&format!(
                    "appliance_alert_mails_total{{outcome=\"dropped\"}} {dropped}"
                )),
                "{}",
                metrics.scrape(None)
            );
            let started = std::time::Instant::now();
            alerts.finish(Duration::from_millis(200)).await;
            assert!(started.elapsed() < Duration::from_secs(2));
            drop(listener);
        });
    }
}
