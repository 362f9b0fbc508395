//! Web service behind a VIP: nginx (or busybox httpd, lighter) in a netns
//! host serving a page that names the host (config, pid, logs and temp
//! files in a temporary directory of its own), and curl fetching a URL
//! from a client host.

use crate::error::{Error, Result, io};
use crate::netns::{Host, Process};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";
const CURL: &str = "/usr/bin/curl";
const START: Duration = Duration::from_secs(10);

/// One nginx, killed when dropped (its workers then live on until the
/// host's namespace goes: [`Nginx::stop`] ends them too).
pub struct Nginx {
    _dir: tempfile::TempDir,
    process: Process,
}

impl Nginx {
    /// Starts nginx in `host`, listening on 0.0.0.0:80 and answering every
    /// request with `<host name>\n`; returns once it accepts connections.
    pub fn start(host: &Host) -> Result<Self> {
        if !std::path::Path::new(NGINX).exists() {
            return Err(Error::Check(format!(
                "{NGINX} is missing: install the Debian package nginx-light"
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("nginx-{}-", host.name()))
            .tempdir()
            .map_err(io("creating nginx's directory"))?;
        let d = dir.path().display();
        let config = format!(
            "daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 0.0.0.0:80;
    default_type text/plain;
    location / {{ return 200 \"{name}\\n\"; }}
  }}
}}
",
            name = host.name()
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).map_err(io("writing nginx's config"))?;
        let mut process = host.spawn(
            host.command(NGINX)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&conf),
        )?;
        let log = dir.path().join("error.log");
        wait_accepting(host, 80, &mut process, "nginx", &|| {
            std::fs::read_to_string(&log).unwrap_or_default()
        })?;
        Ok(Self { _dir: dir, process })
    }

    /// Stops nginx as an operator would (SIGTERM: the master ends its
    /// workers, then itself); returns once it has exited.
    pub fn stop(mut self) -> Result<()> {
        self.process.signal("TERM")?;
        self.process.wait(START)?;
        Ok(())
    }
}

/// Waits until `process`, serving in `host`, accepts connections on
/// `port` (at most [`START`]); `output` tells what it said if it does not.
fn wait_accepting(
    host: &Host,
    port: u16,
    process: &mut Process,
    service: &str,
    output: &dyn Fn() -> String,
) -> Result<()> {
    let start = Instant::now();
    loop {
        let up = host.enter(move || {
            TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                Duration::from_millis(200),
            )
            .is_ok()
        })?;
        if up {
            return Ok(());
        }
        if let Some(status) = process.try_wait()? {
            return Err(Error::Exited {
                service: format!("{service} in {}", host.name()),
                what: "starting".into(),
                status,
                output: output(),
            });
        }
        if start.elapsed() > START {
            return Err(Error::Timeout {
                service: format!("{service} in {}", host.name()),
                what: format!("listening on port {port}"),
                within: START,
                output: output(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// busybox httpd: a real server light enough to start by the dozen,
/// answering `GET /` with `<host name>\n`; killed when dropped.
pub struct Httpd {
    _dir: tempfile::TempDir,
    _process: Process,
}

impl Httpd {
    /// Starts it in `host` on 0.0.0.0:`port`; returns once it accepts
    /// connections.
    pub fn start(host: &Host, port: u16) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("httpd-{}-", host.name()))
            .tempdir()
            .map_err(io("creating httpd's directory"))?;
        std::fs::write(dir.path().join("index.html"), format!("{}\n", host.name()))
            .map_err(io("writing index.html"))?;
        let root = dir.path().to_string_lossy().into_owned();
        let mut process = host
            .spawn(host.command("busybox").args([
                "httpd",
                "-f",
                "-p",
                &port.to_string(),
                "-h",
                &root,
            ]))
            .map_err(|e| Error::Check(format!("{e} (busybox: Debian package busybox)")))?;
        wait_accepting(host, port, &mut process, "busybox httpd", &String::new)?;
        Ok(Self {
            _dir: dir,
            _process: process,
        })
    }
}

/// The body of the HTTP answer on `stream`, read to its end.
pub fn body(mut stream: TcpStream) -> Result<String> {
    use std::io::Read as _;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(io("reading an HTTP answer"))?;
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_owned())
        .ok_or_else(|| Error::Check(format!("not an HTTP answer: {answer:?}")))
}

/// Fetches `url` with curl from `client`, giving up after `timeout`:
/// the body, or `None` if the request failed.
pub fn curl(client: &Host, url: &str, timeout: Duration) -> Result<Option<String>> {
    if !std::path::Path::new(CURL).exists() {
        return Err(Error::Check(format!(
            "{CURL} is missing: install the Debian package curl"
        )));
    }
    let out = client
        .command(CURL)
        .args([
            "-sS",
            "--max-time",
            &format!("{:.3}", timeout.as_secs_f64()),
        ])
        .arg(url)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(io(format!("running curl in {}", client.name())))?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}
