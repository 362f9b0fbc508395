//! HTTP_GET and SSL_GET: for each `url` block, an HTTP/1.0 GET of its path
//! over a fresh connection (TLS for SSL_GET, through rustls), whose answer
//! must carry the expected status (any 2xx when `status_code` is unset, as
//! keepalived) and, if `digest` is set, a body whose MD5 matches. All URLs
//! must match. Each URL's whole exchange (connect, handshake, request,
//! answer to its end) is bounded by `connect_timeout`, so a server that
//! accepts and never answers costs a timeout. Like keepalived, SSL_GET does
//! not verify the server's certificate: it checks the service, not its
//! identity.

use super::decision::{Failure, Outcome};
use super::probe::{Probe, Start};
use super::tcp;
use crate::config::model::{HttpCheck, RealServer, StatusCodes, VirtualServer};
use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// Headers longer than this are refused as a bad answer.
const MAX_HEADER: usize = 16 * 1024;
/// A `regex` is matched against at most this much of the body: a check
/// must not hold an unbounded answer in memory.
pub const MAX_REGEX_BODY: usize = 1024 * 1024;

/// One `url` block, resolved against its virtual server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlCheck {
    /// Request path.
    pub path: String,
    /// `Host:` header value (and TLS server name).
    pub host: String,
    /// Expected statuses; `None` accepts 200..=299.
    pub status: Option<StatusCodes>,
    /// Expected MD5 of the body, lowercase hex.
    pub digest: Option<String>,
    /// A pattern the body (its first [`MAX_REGEX_BODY`] bytes) must match.
    pub regex: Option<BodyRegex>,
}

/// `regex` and `regex_no_match` of a `url` block.
#[derive(Clone, Debug)]
pub struct BodyRegex {
    pub regex: regex::bytes::Regex,
    /// The body must not match.
    pub no_match: bool,
}

impl PartialEq for BodyRegex {
    fn eq(&self, other: &Self) -> bool {
        self.regex.as_str() == other.regex.as_str() && self.no_match == other.no_match
    }
}

impl Eq for BodyRegex {}

impl BodyRegex {
    /// Whether `body` passes.
    pub fn passes(&self, body: &[u8]) -> bool {
        self.regex.is_match(body) != self.no_match
    }
}

/// How to reach the server.
#[derive(Clone)]
pub struct Endpoint {
    pub target: SocketAddr,
    pub bind: Option<IpAddr>,
    pub timeout: Duration,
    /// `Some` for SSL_GET.
    pub tls: Option<TlsConnector>,
}

/// An HTTP_GET or SSL_GET: every `url` fetched in turn.
pub struct HttpProbe {
    endpoint: Endpoint,
    urls: Arc<[UrlCheck]>,
}

impl HttpProbe {
    /// The probe of `check`; `tls` for SSL_GET.
    pub fn new(
        check: &HttpCheck,
        vs: &VirtualServer,
        rs: &RealServer,
        tls: Option<TlsConnector>,
    ) -> Result<Self, regex::Error> {
        let target = SocketAddr::new(
            check.connect_ip.unwrap_or(rs.address.ip()),
            check.connect_port.unwrap_or(rs.address.port()),
        );
        let urls = check
            .url
            .iter()
            .map(|url| {
                let regex = url
                    .regex
                    .as_deref()
                    .map(|pattern| {
                        regex::bytes::Regex::new(pattern).map(|regex| BodyRegex {
                            regex,
                            no_match: url.regex_no_match,
                        })
                    })
                    .transpose()?;
                Ok(UrlCheck {
                    path: url.path.clone(),
                    host: url
                        .virtualhost
                        .clone()
                        .or_else(|| vs.virtualhost.clone())
                        .unwrap_or_else(|| target.to_string()),
                    status: url.status_code.clone(),
                    digest: url.digest.as_ref().map(|d| d.to_ascii_lowercase()),
                    regex,
                })
            })
            .collect::<Result<_, regex::Error>>()?;
        Ok(Self {
            endpoint: Endpoint {
                target,
                bind: check.bindto,
                timeout: check.connect_timeout,
                tls,
            },
            urls,
        })
    }
}

impl Probe for HttpProbe {
    fn kind(&self) -> &'static str {
        if self.endpoint.tls.is_some() {
            "SSL_GET"
        } else {
            "HTTP_GET"
        }
    }

    fn start(&self) -> Start {
        let (endpoint, urls) = (self.endpoint.clone(), self.urls.clone());
        Start::Future(Box::pin(async move { probe(&endpoint, &urls).await }))
    }
}

/// A TLS client that accepts any certificate (keepalived's SSL_GET does
/// not verify either) but still checks handshake signatures. Built once
/// and shared by every SSL_GET probe.
pub fn tls_connector() -> Result<TlsConnector, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One HTTP_GET / SSL_GET run: every URL in turn; the first mismatch is
/// the verdict.
pub async fn probe(endpoint: &Endpoint, urls: &[UrlCheck]) -> Outcome {
    for url in urls {
        let fetch = fetch(endpoint, url);
        let verdict = match tokio::time::timeout(endpoint.timeout, fetch).await {
            Ok(verdict) => verdict,
            Err(_elapsed) => Err(Failure::Timeout),
        };
        if let Err(failure) = verdict {
            return Outcome::Down(failure);
        }
    }
    Outcome::Up
}

async fn fetch(endpoint: &Endpoint, url: &UrlCheck) -> Result<(), Failure> {
    let stream = tcp::connect(endpoint.target, endpoint.bind, endpoint.timeout).await?;
    match &endpoint.tls {
        None => exchange(stream, url).await,
        Some(connector) => {
            let name = ServerName::try_from(url.host.clone())
                .unwrap_or_else(|_| ServerName::IpAddress(endpoint.target.ip().into()));
            let tls = connector
                .connect(name, stream)
                .await
                .map_err(|_| Failure::Tls)?;
            exchange(tls, url).await
        }
    }
}

/// Sends the GET and judges the answer, read to its end (HTTP/1.0 with
/// `Connection: close`: the server closes when done). Public for the fuzz
/// harness, which answers from a scripted stream.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    url: &UrlCheck,
) -> Result<(), Failure> {
    let request = format!(
        "GET {} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {}\r\nConnection: close\r\n\r\n",
        url.path, url.host
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| Failure::Connect(e.kind()))?;
    stream
        .flush()
        .await
        .map_err(|e| Failure::Connect(e.kind()))?;

    let mut buf = vec![0u8; 4096];
    let mut head = Vec::new();
    let mut hasher = Md5::new();
    let mut status = None;
    // The body as far as the regex looks, only when there is one.
    let mut body = Vec::new();
    let keep = |chunk: &[u8], body: &mut Vec<u8>| {
        if url.regex.is_some() {
            let room = MAX_REGEX_BODY.saturating_sub(body.len());
            body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        }
    };
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            // A TLS peer closing without close_notify: the body ended.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && status.is_some() => 0,
            Err(_) => return Err(Failure::BadResponse),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        if n == 0 {
            break;
        }
        if status.is_some() {
            hasher.update(chunk);
            keep(chunk, &mut body);
            continue;
        }
        // Only the new bytes (and the three before, where a terminator may
        // have begun) are searched: a server sending a byte at a time must
        // not make each read scan the whole header again.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(chunk);
        let terminator = find(head.get(from..).unwrap_or_default(), b"\r\n\r\n");
        if let Some(end) = terminator.map(|at| from + at) {
            status = Some(parse_status(&head)?);
            let start = head.get(end + 4..).unwrap_or_default();
            hasher.update(start);
            keep(start, &mut body);
        } else if head.len() > MAX_HEADER {
            return Err(Failure::BadResponse);
        }
    }
    let status = status.ok_or(Failure::BadResponse)?;
    let status_ok = match &url.status {
        Some(expected) => expected.contains(status),
        None => (200..=299).contains(&status),
    };
    if !status_ok {
        return Err(Failure::Status(status));
    }
    if let Some(expected) = &url.digest {
        let got = hex(&hasher.finalize());
        if !got.eq_ignore_ascii_case(expected) {
            return Err(Failure::Digest);
        }
    }
    if let Some(regex) = &url.regex
        && !regex.passes(&body)
    {
        return Err(Failure::Regex);
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The status code of `HTTP/1.x NNN ...`.
fn parse_status(head: &[u8]) -> Result<u16, Failure> {
    let line_end = find(head, b"\r\n").ok_or(Failure::BadResponse)?;
    let line = std::str::from_utf8(head.get(..line_end).unwrap_or_default())
        .map_err(|_| Failure::BadResponse)?;
    let mut words = line.split_ascii_whitespace();
    let version = words.next().ok_or(Failure::BadResponse)?;
    if !version.starts_with("HTTP/") {
        return Err(Failure::BadResponse);
    }
    let code = words.next().ok_or(Failure::BadResponse)?;
    // Three digits (RFC 9112 §4): `parse` alone would take "+20" as 20.
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure::BadResponse);
    }
    code.parse().map_err(|_| Failure::BadResponse)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    /// A server that answers `answer` a byte per read.
    async fn byte_by_byte(
        answer: &'static [u8],
        url: &super::UrlCheck,
    ) -> Result<(), super::Failure> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(1);
        let (mut from_client, mut to_client) = tokio::io::split(server);
        // The request is read and ignored.
        let drain = tokio::spawn(async move {
            let mut sink = [0u8; 64];
            while from_client.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });
        let serve = tokio::spawn(async move {
            for byte in answer {
                if to_client
                    .write_all(std::slice::from_ref(byte))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // The answer's end: the check reads to the end of the stream.
            let _ = to_client.shutdown().await;
        });
        let outcome = super::exchange(client, url).await;
        serve.abort();
        drain.abort();
        outcome
    }

    #[tokio::test]
    async fn a_header_sent_a_byte_at_a_time_is_read_whole() {
        let url = super::UrlCheck {
            path: "/".into(),
            host: "rs".into(),
            status: Some(StatusCodes::one(204)),
            digest: None,
            regex: None,
        };
        assert_eq!(
            byte_by_byte(b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", &url).await,
            Ok(())
        );
        assert_eq!(
            byte_by_byte(b"HTTP/1.1 500 Oops\r\nServer: x\r\n\r\nbody", &url).await,
            Err(super::Failure::Status(500))
        );
    }

    #[test]
    fn a_status_code_is_three_digits() {
        assert_eq!(super::parse_status(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        for bad in [
            &b"HTTP/1.1 +20 x\r\n"[..],
            b"HTTP/1.1 -20 x\r\n",
            b"HTTP/1.1 20 x\r\n",
        ] {
            assert_eq!(super::parse_status(bad), Err(super::Failure::BadResponse));
        }
    }

    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n\r\n"), Ok(204));
        assert_eq!(parse_status(b"HTTP/1.0 500\r\n\r\n"), Ok(500));
        assert_eq!(
            parse_status(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(Failure::BadResponse)
        );
        assert_eq!(
            parse_status(b"HTTP/1.1 2000 x\r\n"),
            Err(Failure::BadResponse)
        );
        assert_eq!(parse_status(b"HTTP/1.1"), Err(Failure::BadResponse));
    }

    #[test]
    fn md5_renders_as_keepalived_genhash_does() {
        assert_eq!(hex(&Md5::digest(b"")), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
