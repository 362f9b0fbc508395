//! Debian's keepalived in a netns host, as the appliance's peer in interop
//! tests: `keepalived -n -l -D -P -f CONF` (foreground, VRRP only, logging
//! to the console) with its config and pid files in a temporary directory
//! of its own, so several run at once. Its state is read from its log
//! ("(VI_A) Entering MASTER STATE") and from the VIPs on the host.

use crate::error::{Error, Result, io};
use crate::netns::{Host, Process};
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/sbin/keepalived";
/// keepalived takes about a second to stop (it resigns, removes VIPs and
/// reaps its VRRP child); on a loaded machine more.
const START_STOP: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

/// One keepalived.
pub struct Keepalived {
    host: String,
    dir: tempfile::TempDir,
    process: Option<Process>,
}

impl Keepalived {
    /// Writes `config` and starts keepalived in `host`; returns once its
    /// VRRP instances have started.
    pub fn start(host: &Host, config: &str) -> Result<Self> {
        if !std::path::Path::new(BINARY).exists() {
            return Err(Error::Check(format!(
                "{BINARY} is missing: install the Debian package keepalived"
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("keepalived-{}-", host.name()))
            .tempdir()
            .map_err(io("creating keepalived's directory"))?;
        std::fs::write(dir.path().join("keepalived.conf"), config)
            .map_err(io("writing keepalived's config"))?;
        let mut keepalived = Self {
            host: host.name().to_string(),
            dir,
            process: None,
        };
        keepalived.spawn(host)?;
        Ok(keepalived)
    }

    /// Starts keepalived again after it stopped.
    pub fn restart(&mut self, host: &Host) -> Result<()> {
        self.spawn(host)
    }

    fn spawn(&mut self, host: &Host) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io("opening keepalived's log"))?;
        let starts_before = self.log().matches("Startup complete").count();
        let file = |name: &str| self.dir.path().join(name);
        let mut cmd = host.command(BINARY);
        cmd.args(["-n", "-l", "-D", "-P", "-G", "-f"])
            .arg(file("keepalived.conf"))
            .arg("-p")
            .arg(file("keepalived.pid"))
            .arg("-r")
            .arg(file("vrrp.pid"))
            .arg("-c")
            .arg(file("checkers.pid"))
            .stdout(log.try_clone().map_err(io("sharing the log file"))?)
            .stderr(log);
        self.process = Some(host.spawn(&mut cmd)?);
        self.wait_log("startup", START_STOP, |log| {
            log.matches("Startup complete").count() > starts_before
        })?;
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("keepalived.log")
    }

    /// What keepalived logged so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// How many times the log says an instance entered `state` ("MASTER",
    /// "BACKUP", "FAULT").
    pub fn entered(&self, state: &str) -> usize {
        self.log()
            .matches(&format!("Entering {state} STATE"))
            .count()
    }

    /// Polls the log until `pred` holds, at most `within`; fails at once
    /// if keepalived exits.
    pub fn wait_log(
        &mut self,
        what: &str,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            if pred(&self.log()) {
                return Ok(());
            }
            if let Some(process) = &mut self.process
                && let Some(status) = process.try_wait()?
            {
                return Err(Error::Exited {
                    service: format!("keepalived in {}", self.host),
                    what: format!("waiting for {what}"),
                    status,
                    output: self.log(),
                });
            }
            if start.elapsed() > within {
                return Err(Error::Timeout {
                    service: format!("keepalived in {}", self.host),
                    what: what.to_string(),
                    within,
                    output: self.log(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM (keepalived resigns with a priority 0 advert and removes its
    /// VIPs), and waits for it to exit.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let host = self.host.clone();
        let process = self.process.as_mut().ok_or_else(|| {
            Error::Check(format!(
                "stopping keepalived in {host}: it was never started"
            ))
        })?;
        process.signal("TERM")?;
        Ok(process.wait(START_STOP)?)
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- keepalived in {}: log ---\n{}", self.host, self.log());
        }
    }
}
