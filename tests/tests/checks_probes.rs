//! The checker's probes against local servers on 127.0.0.0/8: TCP connect
//! (up, refused, hung, source address), HTTP and HTTPS GET (status, digest,
//! Host header, a server that never answers) and MISC_CHECK scripts (exit
//! codes, misc_dynamic, a script that hangs). Each failure must be the
//! right one and a hang must cost its timeout, not more.

use appliance::check::decision::{DynamicWeight, Failure, Outcome};
use appliance::check::http::{self, Endpoint, UrlCheck};
use appliance::check::{misc, tcp};
use appliance::config::model::StatusCodes;
use appliance::script::{Program, RunAs};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_millis(500);

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

#[tokio::test]
async fn tcp_up_refused_and_bound_to_a_source_address() {
    let (l, addr) = listener().await;
    assert_eq!(tcp::probe(addr, None, TIMEOUT).await, Outcome::Up);
    let (_first, peer) = l.accept().await.unwrap();
    assert_eq!(peer.ip(), "127.0.0.1".parse::<std::net::IpAddr>().unwrap());

    let bound = tcp::connect(addr, Some("127.0.0.2".parse().unwrap()), TIMEOUT)
        .await
        .unwrap();
    let (_conn, peer) = l.accept().await.unwrap();
    assert_eq!(peer.ip(), "127.0.0.2".parse::<std::net::IpAddr>().unwrap());
    drop(bound);

    drop(l);
    assert_eq!(
        tcp::probe(addr, None, TIMEOUT).await,
        Outcome::Down(Failure::Connect(std::io::ErrorKind::ConnectionRefused))
    );
}

#[tokio::test]
async fn tcp_to_a_server_that_never_accepts_times_out() {
    // A listen backlog that is full makes Linux drop further SYNs: the
    // connect hangs as with a dead host.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let _l = socket.listen(0).unwrap();
    let mut held = Vec::new();
    let start = Instant::now();
    let outcome = loop {
        let outcome = tcp::connect(addr, None, TIMEOUT).await;
        match outcome {
            Ok(stream) => held.push(stream),
            Err(failure) => break failure,
        }
        assert!(held.len() < 64, "the backlog never filled");
    };
    assert_eq!(outcome, Failure::Timeout);
    assert!(start.elapsed() < TIMEOUT * 3, "took {:?}", start.elapsed());
}

/// An HTTP server answering every request with `answer`; records requests.
async fn http_server(answer: &'static [u8]) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let (l, addr) = listener().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = l.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(serve(conn, answer, log));
        }
    });
    (addr, seen)
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: S,
    answer: &'static [u8],
    log: Arc<Mutex<Vec<String>>>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    log.lock()
        .unwrap()
        .push(String::from_utf8_lossy(&request).into_owned());
    let _ = conn.write_all(answer).await;
    let _ = conn.shutdown().await;
}

fn url(path: &str, status: Option<u16>, digest: Option<&str>) -> UrlCheck {
    UrlCheck {
        path: path.into(),
        host: "www.example.test".into(),
        status: status.map(StatusCodes::one),
        digest: digest.map(Into::into),
        regex: None,
    }
}

fn url_regex(pattern: &str, no_match: bool) -> UrlCheck {
    UrlCheck {
        regex: Some(http::BodyRegex {
            regex: regex::bytes::Regex::new(pattern).unwrap(),
            no_match,
        }),
        ..url("/", None, None)
    }
}

fn endpoint(target: SocketAddr) -> Endpoint {
    Endpoint {
        target,
        bind: None,
        timeout: TIMEOUT,
        tls: None,
    }
}

const HELLO: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello";
/// MD5 of "hello".
const HELLO_MD5: &str = "5d41402abc4b2a76b9719d911017c592";

#[tokio::test]
async fn http_get_checks_status_digest_and_sends_the_host() {
    let (addr, seen) = http_server(HELLO).await;
    let ep = endpoint(addr);
    assert_eq!(
        http::probe(&ep, &[url("/", None, Some(HELLO_MD5))]).await,
        Outcome::Up
    );
    let request = seen.lock().unwrap()[0].clone();
    assert!(request.starts_with("GET / HTTP/1.0\r\n"), "{request}");
    assert!(
        request.contains("\r\nHost: www.example.test\r\n"),
        "{request}"
    );

    assert_eq!(
        http::probe(
            &ep,
            &[url("/", None, Some("00112233445566778899aabbccddeeff"))]
        )
        .await,
        Outcome::Down(Failure::Digest)
    );
    assert_eq!(
        http::probe(&ep, &[url("/", Some(201), None)]).await,
        Outcome::Down(Failure::Status(200))
    );
    // Every URL must match: the second one fails.
    assert_eq!(
        http::probe(
            &ep,
            &[
                url("/a", Some(200), None),
                url("/b", None, Some(HELLO_MD5.get(1..).unwrap()))
            ]
        )
        .await,
        Outcome::Down(Failure::Digest)
    );
}

#[tokio::test]
async fn http_get_matches_the_body_against_a_regex_or_its_negation() {
    let (addr, _) = http_server(HELLO).await;
    let ep = endpoint(addr);
    assert_eq!(
        http::probe(&ep, &[url_regex("^h.l+o$", false)]).await,
        Outcome::Up
    );
    assert_eq!(
        http::probe(&ep, &[url_regex("goodbye", false)]).await,
        Outcome::Down(Failure::Regex)
    );
    // regex_no_match: up when the body does not match.
    assert_eq!(
        http::probe(&ep, &[url_regex("error", true)]).await,
        Outcome::Up
    );
    assert_eq!(
        http::probe(&ep, &[url_regex("hel", true)]).await,
        Outcome::Down(Failure::Regex)
    );
}

#[tokio::test]
async fn http_get_refuses_a_wrong_status_unless_it_is_the_expected_one() {
    let (addr, _) = http_server(b"HTTP/1.1 500 Internal Server Error\r\n\r\noops").await;
    let ep = endpoint(addr);
    assert_eq!(
        http::probe(&ep, &[url("/", None, None)]).await,
        Outcome::Down(Failure::Status(500))
    );
    assert_eq!(
        http::probe(&ep, &[url("/", Some(500), None)]).await,
        Outcome::Up
    );
    let ranges = |codes: &str| UrlCheck {
        status: Some(codes.parse().unwrap()),
        ..url("/", None, None)
    };
    assert_eq!(
        http::probe(&ep, &[ranges("200-299 500-599")]).await,
        Outcome::Up
    );
    assert_eq!(
        http::probe(&ep, &[ranges("200-299 404")]).await,
        Outcome::Down(Failure::Status(500))
    );
}

#[tokio::test]
async fn http_get_to_a_server_that_accepts_and_never_answers_times_out() {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = l.accept().await {
            held.push(conn);
        }
    });
    let start = Instant::now();
    assert_eq!(
        http::probe(&endpoint(addr), &[url("/", None, None)]).await,
        Outcome::Down(Failure::Timeout)
    );
    let took = start.elapsed();
    assert!(took >= TIMEOUT && took < TIMEOUT * 3, "took {took:?}");
}

#[tokio::test]
async fn http_get_of_something_not_http_is_a_bad_response() {
    let (addr, _) = http_server(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
    assert_eq!(
        http::probe(&endpoint(addr), &[url("/", None, None)]).await,
        Outcome::Down(Failure::BadResponse)
    );
}

#[tokio::test]
async fn ssl_get_talks_tls_to_a_self_signed_server() {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rcgen::generate_simple_self_signed(vec!["www.example.test".into()]).unwrap();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()),
    );
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (l, addr) = listener().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = l.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(conn).await {
                    serve(tls, HELLO, log).await;
                }
            });
        }
    });
    let ep = Endpoint {
        tls: Some(http::tls_connector().unwrap()),
        ..endpoint(addr)
    };
    assert_eq!(
        http::probe(&ep, &[url("/", Some(200), Some(HELLO_MD5))]).await,
        Outcome::Up
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    // Plain HTTP to the TLS port is not an answer.
    let plain = http::probe(&endpoint(addr), &[url("/", None, None)]).await;
    assert!(!plain.is_up(), "{plain:?}");
}

fn sh(script: &str) -> Program {
    Program {
        path: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        run_as: RunAs::Daemon,
    }
}

#[tokio::test]
async fn misc_check_exit_codes_and_dynamic_weights() {
    let t = Duration::from_secs(5);
    assert_eq!(misc::probe(&sh("exit 0"), t, false).await, Outcome::Up);
    assert_eq!(
        misc::probe(&sh("exit 1"), t, true).await,
        Outcome::Down(Failure::Exit(1))
    );
    assert_eq!(
        misc::probe(&sh("exit 7"), t, true).await,
        Outcome::UpWeighted(DynamicWeight::Set(5))
    );
    assert_eq!(
        misc::probe(&sh("exit 7"), t, false).await,
        Outcome::Down(Failure::Exit(7))
    );
}

#[tokio::test]
async fn a_hanging_misc_check_costs_its_timeout() {
    let start = Instant::now();
    assert_eq!(
        misc::probe(&sh("sleep 30"), TIMEOUT, false).await,
        Outcome::Down(Failure::Timeout)
    );
    assert!(start.elapsed() < TIMEOUT * 4, "took {:?}", start.elapsed());
}
