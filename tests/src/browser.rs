//! A real browser for the tests: Debian's headless Chromium, run in a
//! network namespace and driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages ended by a NUL byte, the
//! browser reading fd 3 and writing fd 4), so the test needs no route into
//! the namespace. Tabs load pages, evaluate JavaScript to read the DOM,
//! and take screenshots.

use crate::netns::Host;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long one protocol call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("chromium (package chromium; make test installs it): {0}")]
    Launch(std::io::Error),
    #[error("talking to chromium: {0}")]
    Pipe(#[from] std::io::Error),
    #[error("chromium gave no answer to {method} within {within:?}{stderr}")]
    NoAnswer {
        method: String,
        within: Duration,
        stderr: String,
    },
    #[error("chromium: {method}: {error}")]
    Protocol { method: String, error: Value },
    #[error("in the page, {expression}: {exception}")]
    Script {
        expression: String,
        exception: Value,
    },
    #[error("{what} did not hold within {within:?}; last value: {last}")]
    Timeout {
        what: String,
        within: Duration,
        last: Value,
    },
    #[error("the screenshot: {0}")]
    Screenshot(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A headless Chromium, closed (then killed) on drop.
pub struct Browser {
    child: Child,
    to: std::fs::File,
    from: Receiver<Value>,
    next: u64,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    viewport: (u32, u32),
    _profile: tempfile::TempDir,
}

/// A tab: its DevTools session.
#[derive(Clone, Debug)]
pub struct Tab(String);

impl Browser {
    /// Starts Chromium in `host`'s namespace; its tabs show `width`×`height`
    /// CSS pixels.
    pub fn launch(host: &Host, width: u32, height: u32) -> Result<Browser> {
        let profile = tempfile::tempdir().map_err(Error::Launch)?;
        let (browser_reads, to) = pipe()?;
        let (from, browser_writes) = pipe()?;
        let (read_fd, write_fd) = (browser_reads.as_raw_fd(), browser_writes.as_raw_fd());
        let mut cmd = host.command("chromium");
        cmd.args([
            "--headless",
            // Root in a test namespace: Chromium's sandbox wants a user
            // namespace of its own, which it cannot have here.
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--mute-audio",
            &format!("--window-size={width},{height}"),
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        // SAFETY: only dup2, async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Copies first (either end may sit at 3 or 4 now), without
                // close-on-exec, then into place.
                let (r, w) = (libc::dup(read_fd), libc::dup(write_fd));
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(Error::Launch)?;
        drop((browser_reads, browser_writes));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if let Some(pipe) = child.stderr.take() {
            let lines = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(|l| l.ok()) {
                    if let Ok(mut kept) = lines.lock() {
                        kept.push(line);
                    }
                }
            });
        }
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(std::fs::File::from(from));
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice::<Value>(&message)
                    && tx.send(value).is_err()
                {
                    return;
                }
                message.clear();
            }
        });
        Ok(Browser {
            child,
            to: std::fs::File::from(to),
            from: rx,
            next: 0,
            stderr,
            viewport: (width, height),
            _profile: profile,
        })
    }

    /// Calls `method` (in `tab`'s session, or the browser's) and returns
    /// its result.
    pub fn call(&mut self, tab: Option<&Tab>, method: &str, params: Value) -> Result<Value> {
        self.next += 1;
        let id = self.next;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(Tab(session)) = tab {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap_or_default();
        bytes.push(0);
        self.to.write_all(&bytes)?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from.recv_timeout(left) {
                Ok(reply) if reply["id"] == json!(id) => {
                    if let Some(error) = reply.get("error") {
                        return Err(Error::Protocol {
                            method: method.into(),
                            error: error.clone(),
                        });
                    }
                    return Ok(reply["result"].clone());
                }
                // Events, and answers to calls given up on.
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return Err(Error::NoAnswer {
                        method: method.into(),
                        within: CALL_TIMEOUT,
                        stderr: self.stderr_tail(),
                    });
                }
            }
        }
    }

    /// A new blank tab.
    pub fn new_tab(&mut self) -> Result<Tab> {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }))?;
        let session = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        )?;
        let tab = Tab(session["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_string());
        // The window's size includes what a headed browser would draw
        // around the page; this is the page's own.
        let (width, height) = self.viewport;
        self.call(
            Some(&tab),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )?;
        Ok(tab)
    }

    /// A new tab at `url`, once the page has loaded.
    pub fn open(&mut self, url: &str) -> Result<Tab> {
        let tab = self.new_tab()?;
        self.navigate(&tab, url)?;
        Ok(tab)
    }

    /// Loads `url` in `tab` and waits until the document is complete.
    pub fn navigate(&mut self, tab: &Tab, url: &str) -> Result<()> {
        self.call(Some(tab), "Page.navigate", json!({ "url": url }))?;
        self.wait_for(
            tab,
            &format!("{url} loaded"),
            "document.readyState === 'complete' && location.href !== 'about:blank'",
            Duration::from_secs(20),
        )
        .map(drop)
    }

    /// Turns the tab's scripts off (the page's own; evaluation from here
    /// still works) or on again.
    pub fn set_scripts(&mut self, tab: &Tab, on: bool) -> Result<()> {
        self.call(
            Some(tab),
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": !on }),
        )
        .map(drop)
    }

    /// The value of `expression` in the page (JSON-able values only).
    pub fn eval(&mut self, tab: &Tab, expression: &str) -> Result<Value> {
        let reply = self.call(
            Some(tab),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        )?;
        if let Some(exception) = reply.get("exceptionDetails") {
            return Err(Error::Script {
                expression: expression.into(),
                exception: exception.clone(),
            });
        }
        Ok(reply["result"]["value"].clone())
    }

    /// Evaluates `expression` until it is truthy, every 100 ms, at most
    /// `within`; its value.
    pub fn wait_for(
        &mut self,
        tab: &Tab,
        what: &str,
        expression: &str,
        within: Duration,
    ) -> Result<Value> {
        let start = Instant::now();
        loop {
            let value = self.eval(tab, expression)?;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return Ok(value);
            }
            if start.elapsed() > within {
                return Err(Error::Timeout {
                    what: what.into(),
                    within,
                    last: value,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Writes a PNG of what `tab` shows to `path`; its width and height.
    pub fn screenshot(&mut self, tab: &Tab, path: &Path) -> Result<(u32, u32)> {
        use base64::Engine as _;
        let reply = self.call(
            Some(tab),
            "Page.captureScreenshot",
            json!({ "format": "png" }),
        )?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(reply["data"].as_str().unwrap_or_default())
            .map_err(|e| Error::Screenshot(format!("not base64: {e}")))?;
        let size = png_size(&png).ok_or_else(|| Error::Screenshot("not a PNG".into()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, &png)?;
        Ok(size)
    }

    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().map(|l| l.clone()).unwrap_or_default();
        let tail: Vec<&String> = lines.iter().rev().take(20).rev().collect();
        if tail.is_empty() {
            String::new()
        } else {
            format!(
                "\n--- chromium's stderr ---\n{}",
                tail.iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let closed = self.call(None, "Browser.close", json!({})).is_ok();
        let deadline = Instant::now() + Duration::from_secs(5);
        while closed && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::Pipe(e.into()))
}

/// A PNG's width and height, from its header.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !png.starts_with(MAGIC) || png.get(12..16) != Some(b"IHDR") {
        return None;
    }
    let word = |at: usize| {
        png.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    };
    Some((word(16)?, word(20)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_png_header_and_refuses_anything_else() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(1280u32.to_be_bytes());
        png.extend(900u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((1280, 900)));
        assert_eq!(png_size(b"GIF89a"), None);
        assert_eq!(png_size(&png[..18]), None);
    }
}
