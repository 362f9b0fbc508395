//! A tiny SMTP server for the tests, run inside a host's namespace: it
//! answers as a relay would (or refuses the greeting or HELO when told)
//! and records every conversation, client lines as sent (the message
//! included), for the tests to read the checks' HELOs and the alert
//! mails' envelope and headers. Stops (its port closed) when dropped.

use crate::error::{Error, Result};
use crate::netns::Host;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How the server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 220, 250s, 354 for DATA, 221 for QUIT.
    Relay = 0,
    /// 554 as the greeting, then the connection closes.
    RefuseGreeting = 1,
    /// 220, then 554 to HELO.
    RefuseHelo = 2,
}

/// One conversation: what the client sent, line by line.
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub lines: Vec<String>,
}

impl Session {
    /// The address of `MAIL FROM:<...>`.
    pub fn mail_from(&self) -> Option<&str> {
        self.lines.iter().find_map(|l| angle(l, "MAIL FROM:"))
    }

    /// The addresses of every `RCPT TO:<...>`.
    pub fn rcpt_to(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| angle(l, "RCPT TO:"))
            .collect()
    }

    /// A header of the message (after DATA, before the blank line).
    pub fn header(&self, name: &str) -> Option<&str> {
        let start = self.lines.iter().position(|l| l == "DATA")? + 1;
        self.lines[start..]
            .iter()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }

    /// The message's body lines (after the headers, before the dot).
    pub fn body(&self) -> Vec<&str> {
        let Some(data) = self.lines.iter().position(|l| l == "DATA") else {
            return Vec::new();
        };
        self.lines[data..]
            .iter()
            .skip_while(|l| !l.is_empty())
            .skip(1)
            .take_while(|l| *l != ".")
            .map(String::as_str)
            .collect()
    }
}

fn angle<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)?
        .strip_prefix('<')?
        .strip_suffix('>')
}

/// The running server.
pub struct SmtpServer {
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    sessions: Arc<Mutex<Vec<Session>>>,
    thread: Option<std::thread::JoinHandle<crate::netns::Result<()>>>,
}

impl SmtpServer {
    /// Listens on `address` in `host`'s namespace.
    pub fn start(host: &Host, address: SocketAddr) -> Result<Self> {
        let mode = Arc::new(AtomicU8::new(Mode::Relay as u8));
        let stop = Arc::new(AtomicBool::new(false));
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let (bound, bind_result) = mpsc::channel();
        let (m, s, r) = (mode.clone(), stop.clone(), sessions.clone());
        let thread = host.enter_background(move || {
            let listener = match TcpListener::bind(address) {
                Ok(listener) => listener,
                Err(e) => {
                    let _ = bound.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = listener.set_nonblocking(true);
            let _ = bound.send(Ok(()));
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (m, r) = (m.clone(), r.clone());
                        std::thread::spawn(move || converse(stream, &m, &r));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
        let ready = bind_result
            .recv_timeout(Duration::from_secs(5))
            .map_err(|e| Error::Check(format!("SMTP server on {address}: {e}")))?;
        ready.map_err(|e| Error::Check(format!("SMTP server on {address}: {e}")))?;
        Ok(Self {
            mode,
            stop,
            sessions,
            thread: Some(thread),
        })
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// The conversations that ended so far.
    pub fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until a conversation that ended matches `wanted`.
    pub fn wait_session(
        &self,
        within: Duration,
        wanted: impl Fn(&Session) -> bool,
    ) -> Result<Session> {
        let start = Instant::now();
        loop {
            if let Some(session) = self.sessions().into_iter().find(|s| wanted(s)) {
                return Ok(session);
            }
            if start.elapsed() > within {
                return Err(Error::Check(format!(
                    "no such SMTP session within {within:?}; had {:#?}",
                    self.sessions()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection, recorded when it ends.
fn converse(stream: TcpStream, mode: &AtomicU8, sessions: &Mutex<Vec<Session>>) {
    let mut session = Session::default();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mode = mode.load(Ordering::Relaxed);
    let greeting: &[u8] = if mode == Mode::RefuseGreeting as u8 {
        b"554 test: no service\r\n"
    } else {
        b"220 relay.test ESMTP\r\n"
    };
    if writer.write_all(greeting).is_ok() && mode != Mode::RefuseGreeting as u8 {
        let mut lines = BufReader::new(stream).lines();
        let mut data = false;
        while let Some(Ok(line)) = lines.next() {
            session.lines.push(line.clone());
            let reply: &[u8] = if data {
                if line != "." {
                    continue;
                }
                data = false;
                b"250 2.0.0 queued\r\n"
            } else if line.starts_with("HELO") || line.starts_with("EHLO") {
                if mode == Mode::RefuseHelo as u8 {
                    b"554 test: go away\r\n"
                } else {
                    b"250 relay.test\r\n"
                }
            } else if line == "DATA" {
                data = true;
                b"354 end with <CRLF>.<CRLF>\r\n"
            } else if line == "QUIT" {
                let _ = writer.write_all(b"221 bye\r\n");
                break;
            } else if line.starts_with("MAIL") || line.starts_with("RCPT") {
                b"250 ok\r\n"
            } else {
                b"500 what?\r\n"
            };
            if writer.write_all(reply).is_err() {
                break;
            }
        }
    }
    if let Ok(mut all) = sessions.lock() {
        all.push(session);
    }
}
