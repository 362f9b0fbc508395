//! An `appliance run` in a netns host: its config, timeline and log in a
//! temporary directory of its own, started, signalled, killed and started
//! again, and its timeline read and waited on. When a test panics, the
//! daemon's log and timeline go to stderr, so the failure explains itself.

use crate::error::{Error, Result, io};
use crate::netns::{Host, Process};
use crate::timeline::{self, Entry};
use appliance::timeline::EventKind;
use appliance::vrrp::machine::State;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

/// How often waits poll the timeline file.
const POLL: Duration = Duration::from_millis(5);
/// How long a daemon may take to start, or to exit after SIGTERM, on a
/// loaded machine.
const START_STOP: Duration = Duration::from_secs(10);

/// One appliance daemon.
pub struct Daemon {
    /// The host's name, in messages.
    host: String,
    dir: tempfile::TempDir,
    /// The config's file name: its extension tells the format.
    config_name: &'static str,
    /// Extra environment of the daemon (FAILPOINTS, say).
    env: Vec<(String, String)>,
    /// A daemon without VRRP instances notifies nothing: its start ends
    /// when it tells the service manager it is ready.
    without_vrrp: bool,
    process: Option<Process>,
}

/// Why `appliance run` refused to start.
#[derive(Debug)]
pub struct Refusal {
    pub stderr: String,
    /// Its `--log-file`.
    pub log: String,
}

/// Runs `appliance run --log-file ...` in `host` with the TOML `config`,
/// which must make it refuse to start; returns what it said.
pub fn refused_start(host: &Host, config: &str) -> Result<Refusal> {
    let dir = tempfile::tempdir().map_err(io("creating a directory for the daemon"))?;
    let path = dir.path().join("appliance.toml");
    std::fs::write(&path, config).map_err(io("writing the config"))?;
    let out = host
        .command(crate::appliance_bin())
        .arg("run")
        .arg("--config")
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.path())
        .arg("--socket")
        .arg(dir.path().join("appliance.sock"))
        .arg("--log-file")
        .arg(dir.path().join("appliance.log"))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(io("running appliance run"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return Err(Error::Check(format!(
            "appliance run started and ended cleanly instead of refusing:\n{stderr}"
        )));
    }
    let log = std::fs::read_to_string(dir.path().join("appliance.log"))
        .map_err(io("reading the log file"))?;
    Ok(Refusal { stderr, log })
}

impl Daemon {
    /// Writes `config` (keepalived.conf text) and starts the daemon in
    /// `host`; returns once it has started its instances.
    pub fn start(host: &Host, config: &str) -> Result<Self> {
        Self::start_as(host, config, "keepalived.conf", &[])
    }

    /// [`Daemon::start`] with an appliance TOML config.
    pub fn start_toml(host: &Host, config: &str) -> Result<Self> {
        Self::start_as(host, config, "appliance.toml", &[])
    }

    /// [`Daemon::start_toml`] with extra environment variables.
    pub fn start_toml_env(host: &Host, config: &str, env: &[(&str, &str)]) -> Result<Self> {
        Self::start_as(host, config, "appliance.toml", env)
    }

    /// [`Daemon::start_toml`] for a config without VRRP instances (a
    /// BGP director): returns once the daemon is ready.
    pub fn start_toml_without_vrrp(host: &Host, config: &str) -> Result<Self> {
        Self::start_with(host, config, "appliance.toml", &[], true)
    }

    fn start_as(
        host: &Host,
        config: &str,
        config_name: &'static str,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        Self::start_with(host, config, config_name, env, false)
    }

    fn start_with(
        host: &Host,
        config: &str,
        config_name: &'static str,
        env: &[(&str, &str)],
        without_vrrp: bool,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("appliance-{}-", host.name()))
            .tempdir()
            .map_err(io("creating the daemon's directory"))?;
        let daemon = Self {
            host: host.name().to_string(),
            dir,
            config_name,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            without_vrrp,
            process: None,
        };
        daemon.write_config(config)?;
        let mut daemon = daemon;
        daemon.spawn(host)?;
        Ok(daemon)
    }

    /// Starts the daemon again after it stopped, with the same files (the
    /// timeline goes on in the same file).
    pub fn restart(&mut self, host: &Host) -> Result<()> {
        if self.running()? {
            return Err(Error::Check(format!(
                "restarting the daemon in {}: it is still running",
                self.host
            )));
        }
        self.spawn(host)
    }

    fn spawn(&mut self, host: &Host) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io("opening the daemon's log"))?;
        let since = SystemTime::now();
        let mut cmd = host.command(crate::appliance_bin());
        cmd.arg("run")
            .arg("--config")
            .arg(self.config_path())
            .arg("--timeline")
            .arg(self.timeline_path())
            // Its own dataplane record and status socket: daemons of
            // several hosts share the file system.
            .arg("--state-dir")
            .arg(self.dir.path())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,appliance=debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().map_err(io("sharing the log file"))?)
            .stderr(log);
        let ready = self.log().matches("states=[Ready").count() + 1;
        self.process = Some(host.spawn(&mut cmd)?);
        if self.without_vrrp {
            let start = Instant::now();
            while self.log().matches("states=[Ready").count() < ready {
                if start.elapsed() > START_STOP {
                    return Err(Error::Timeout {
                        service: format!("appliance in {}", self.host),
                        what: "becoming ready".into(),
                        within: START_STOP,
                        output: self.log(),
                    });
                }
                std::thread::sleep(POLL);
            }
            return Ok(());
        }
        // A start-up, like every state change, ends with its notify.
        self.wait_event("starting its instances", START_STOP, |e| {
            e.wall >= since && matches!(e.event.kind, EventKind::Notify { .. })
        })?;
        Ok(())
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(self.config_name)
    }

    /// The status socket (`appliance status --socket`).
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("appliance.sock")
    }

    /// `appliance status --json`, run in `host` (the daemon's), parsed.
    pub fn status(&self, host: &Host) -> Result<appliance::daemon::status::Status> {
        let socket = self.socket_path();
        let out = host
            .run(
                crate::appliance_bin(),
                &["status", "--json", "--socket", &socket.to_string_lossy()],
            )
            .map_err(|e| Error::Check(format!("appliance status: {e}")))?;
        serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::Check(format!("appliance status --json is not a Status: {e}")))
    }

    pub fn timeline_path(&self) -> PathBuf {
        self.dir.path().join("timeline.jsonl")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("appliance.log")
    }

    /// Replaces the config file (the daemon reads it again on SIGHUP).
    pub fn write_config(&self, text: &str) -> Result<()> {
        std::fs::write(self.config_path(), text).map_err(io("writing the daemon's config"))
    }

    /// The daemon's process id.
    pub fn pid(&self) -> Result<u32> {
        Ok(self.process()?.id())
    }

    fn process(&self) -> Result<&Process> {
        self.process.as_ref().ok_or_else(|| {
            Error::Check(format!(
                "signalling the daemon in {}: it was never started",
                self.host
            ))
        })
    }

    /// Sends a signal ("HUP", "TERM", …).
    pub fn signal(&self, signal: &str) -> Result<()> {
        Ok(self.process()?.signal(signal)?)
    }

    /// SIGTERM, and waits for the daemon to exit.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.signal("TERM")?;
        self.wait_exit()
    }

    /// SIGKILL (a crash: no resignation, VIPs left behind), and waits for
    /// the daemon to exit.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        self.signal("KILL")?;
        self.wait_exit()
    }

    /// Waits for the daemon to exit by itself (START_STOP at most).
    pub fn wait_exit(&mut self) -> Result<ExitStatus> {
        let host = self.host.clone();
        let process = self.process.as_mut().ok_or_else(|| {
            Error::Check(format!(
                "waiting for the daemon in {host}: it was never started"
            ))
        })?;
        Ok(process.wait(START_STOP)?)
    }

    /// Whether the daemon still runs.
    pub fn running(&mut self) -> Result<bool> {
        match &mut self.process {
            Some(p) => Ok(p.try_wait()?.is_none()),
            None => Ok(false),
        }
    }

    /// The timeline so far.
    pub fn timeline(&self) -> Result<Vec<Entry>> {
        timeline::read(&self.timeline_path())
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Polls the timeline until an entry matches `pred` (`what` describes
    /// it in the error), at most `within`; fails at once if the daemon
    /// exits.
    pub fn wait_event(
        &mut self,
        what: &str,
        within: Duration,
        pred: impl Fn(&Entry) -> bool,
    ) -> Result<Entry> {
        let start = Instant::now();
        loop {
            if let Some(found) = self.timeline()?.into_iter().find(|e| pred(e)) {
                return Ok(found);
            }
            if let Some(process) = &mut self.process
                && let Some(status) = process.try_wait()?
            {
                return Err(Error::Exited {
                    service: format!("appliance in {}", self.host),
                    what: format!("waiting for {what}"),
                    status,
                    output: self.log(),
                });
            }
            if start.elapsed() > within {
                return Err(Error::Timeout {
                    service: format!("appliance in {}", self.host),
                    what: what.to_string(),
                    within,
                    output: self.log(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for the notify of `state` after `after`: the last event of a
    /// state change, so what the test does next comes after all of it in
    /// the timeline.
    pub fn wait_notify(&mut self, state: State, after: &Entry, within: Duration) -> Result<Entry> {
        self.wait_event(&format!("the notify of {state}"), within, |e| {
            e.after(after) && e.event.kind == EventKind::Notify { state }
        })
    }

    /// Polls the log until it contains `needle`, at most `within`.
    pub fn wait_log(&mut self, needle: &str, within: Duration) -> Result<()> {
        let start = Instant::now();
        while !self.log().contains(needle) {
            if start.elapsed() > within {
                return Err(Error::Timeout {
                    service: format!("appliance in {}", self.host),
                    what: format!("logging {needle:?}"),
                    within,
                    output: self.log(),
                });
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    /// The last advert (priority above 0) this daemon sent before `before`:
    /// with `before` taken once a fault stopped its adverts reaching the
    /// peer, the last one the peer heard (an advert is stamped after it
    /// left).
    pub fn last_advert(&self, before: SystemTime) -> Result<Entry> {
        self.timeline()?
            .into_iter()
            .rev()
            .find(|e| e.wall < before && e.advert().is_some_and(|p| p.get() > 0))
            .ok_or_else(|| Error::Check(format!("the daemon in {} sent no advert", self.host)))
    }

    /// Waits for the next advert this daemon sends (after now) and returns
    /// it: a fault injected right after it has the whole advert interval
    /// before the next, so the peer's last advert is known exactly.
    pub fn next_advert(&mut self, within: Duration) -> Result<Entry> {
        let since = SystemTime::now();
        self.wait_event("an advert", within, |e| {
            e.wall > since && e.advert().is_some_and(|p| p.get() > 0)
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let timeline = std::fs::read_to_string(self.timeline_path()).unwrap_or_default();
            eprintln!(
                "--- appliance in {}: log ---\n{}--- timeline ---\n{timeline}",
                self.host,
                self.log()
            );
        }
    }
}
