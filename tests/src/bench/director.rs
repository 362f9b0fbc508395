//! The directors under test: the keepalived.conf both implementations run,
//! and a daemon process (the appliance or keepalived) whose VRRP state is
//! read from its log.

use super::Error;
use crate::netns::{Host, Process};
use appliance::vrrp::{Centiseconds, Priority, Version};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The instance name in the config, and in the daemons' logs.
const INSTANCE: &str = "VI_BENCH";
/// Log lines kept per daemon, shown when it misbehaves.
const TAIL_LINES: usize = 40;

/// Which VRRP daemon runs on the directors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// `appliance run --config FILE`, this binary.
    Appliance(PathBuf),
    /// Debian's keepalived.
    Keepalived,
}

impl Implementation {
    pub fn name(&self) -> &'static str {
        match self {
            Implementation::Appliance(_) => "appliance",
            Implementation::Keepalived => "keepalived",
        }
    }

    fn command(&self, host: &Host, config: &Path, run_dir: &Path) -> Command {
        match self {
            Implementation::Appliance(bin) => {
                let mut cmd = host.command(bin);
                // Two daemons on one machine: each its own state
                // directory (and status socket in it).
                cmd.arg("run")
                    .arg("--config")
                    .arg(config)
                    .arg("--state-dir")
                    .arg(run_dir.join(host.name()));
                cmd.env("RUST_LOG", "info");
                cmd
            }
            Implementation::Keepalived => {
                let pid = |what: &str| run_dir.join(format!("{}-{what}.pid", host.name()));
                let mut cmd = host.command("keepalived");
                cmd.args(["-n", "-l", "-D", "-f"])
                    .arg(config)
                    .arg("-p")
                    .arg(pid("keepalived"))
                    .arg("-r")
                    .arg(pid("vrrp"))
                    .arg("-c")
                    .arg(pid("checkers"));
                cmd
            }
        }
    }
}

/// One director's role in the bench topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    pub state: &'static str,
    pub priority: Priority,
}

pub const MASTER: Role = Role {
    state: "MASTER",
    priority: Priority::from_u8(150),
};
pub const BACKUP: Role = Role {
    state: "BACKUP",
    priority: Priority::from_u8(100),
};

/// The keepalived.conf a director runs, under both implementations.
pub fn keepalived_conf(
    role: Role,
    version: Version,
    advert: Centiseconds,
    vip: Ipv4Addr,
) -> String {
    let seconds = f64::from(advert.0) / 100.0;
    let version_line = match version {
        Version::V2 => String::new(),
        Version::V3 => "  vrrp_version 3\n".to_string(),
    };
    format!(
        "global_defs {{\n  router_id bench-{state}\n{version_line}}}\n\
         vrrp_instance {INSTANCE} {{\n  state {state}\n  interface eth0\n  \
         virtual_router_id 51\n  priority {priority}\n  advert_int {seconds}\n  \
         virtual_ipaddress {{\n    {vip}/24\n  }}\n}}\n",
        state = role.state,
        priority = role.priority,
    )
}

/// A VRRP state as a daemon's log reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Backup,
    Master,
    Fault,
}

/// The appliance's `state changed … to=STATE` event, or keepalived's
/// `(INSTANCE) Entering STATE STATE`.
fn state_in(line: &str) -> Option<State> {
    let word = if line.contains("state changed") {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("to="))?
    } else {
        let (_, rest) = line.split_once("Entering ")?;
        rest.split_whitespace().next()?
    };
    match word {
        "MASTER" => Some(State::Master),
        "BACKUP" => Some(State::Backup),
        "FAULT" => Some(State::Fault),
        _ => None,
    }
}

/// Drops ANSI escape sequences (`ESC [ … letter`), which colour tracing's
/// output.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Default)]
struct Log {
    state: Option<State>,
    /// State changes reported so far.
    changes: usize,
    tail: VecDeque<String>,
}

/// A running daemon on one director.
pub struct Daemon {
    process: Process,
    log: Arc<Mutex<Log>>,
    label: String,
}

impl Daemon {
    pub fn start(
        implementation: &Implementation,
        host: &Host,
        config: &Path,
        run_dir: &Path,
    ) -> Result<Self, Error> {
        Self::start_env(implementation, host, config, run_dir, &[])
    }

    /// [`Self::start`] with `env` added to the daemon's environment.
    pub fn start_env(
        implementation: &Implementation,
        host: &Host,
        config: &Path,
        run_dir: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self, Error> {
        let mut cmd = implementation.command(host, config, run_dir);
        cmd.envs(env.iter().copied());
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut process = host.spawn(&mut cmd)?;
        let log = Arc::new(Mutex::new(Log::default()));
        if let Some(out) = process.take_stdout() {
            follow(out, log.clone());
        }
        if let Some(err) = process.take_stderr() {
            follow(err, log.clone());
        }
        Ok(Self {
            process,
            log,
            label: format!("{} on {}", implementation.name(), host.name()),
        })
    }

    /// The state the log last reported.
    pub fn state(&self) -> Option<State> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state
    }

    /// State changes the log reported so far (the start's included).
    pub fn changes(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .changes
    }

    /// Sends SIGHUP (reload the config).
    pub fn reload(&self) -> Result<(), Error> {
        let pid = i32::try_from(self.process.id())
            .map_err(|_| self.failure("pid out of range".into()))?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGHUP,
        )
        .map_err(|e| self.failure(format!("SIGHUP: {e}")))
    }

    /// Waits until the log says the instance entered `state`.
    pub fn wait_state(&self, state: State, within: Duration) -> Result<(), Error> {
        let start = Instant::now();
        while self.state() != Some(state) {
            if start.elapsed() > within {
                return Err(self.failure(format!("not {state:?} after {within:?}")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Sends SIGTERM (a clean stop: resign and remove the VIP).
    pub fn terminate(&self) -> Result<(), Error> {
        let pid = i32::try_from(self.process.id())
            .map_err(|_| self.failure("pid out of range".into()))?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .map_err(|e| self.failure(format!("SIGTERM: {e}")))
    }

    /// SIGKILL, and waits for the daemon to exit.
    pub fn kill(mut self) -> Result<(), Error> {
        self.process.signal("KILL")?;
        match self.process.wait(Duration::from_secs(10)) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.failure(e.to_string())),
        }
    }

    /// Stops the daemon cleanly and waits for it to exit.
    pub fn stop(mut self) -> Result<(), Error> {
        self.terminate()?;
        match self.process.wait(Duration::from_secs(10)) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.failure(e.to_string())),
        }
    }

    /// An error naming the daemon and showing the end of its log.
    pub fn failure(&self, what: String) -> Error {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        Error::Daemon {
            daemon: self.label.clone(),
            what,
            tail: log.tail.iter().cloned().collect::<Vec<_>>().join("\n"),
        }
    }
}

/// Reads a daemon's output line by line on a thread of its own, keeping
/// the last state it reported and the last lines.
fn follow(output: impl Read + Send + 'static, log: Arc<Mutex<Log>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { return };
            let line = strip_ansi(&line);
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(state) = state_in(&line) {
                log.state = Some(state);
                log.changes += 1;
            }
            if log.tail.len() == TAIL_LINES {
                log.tail.pop_front();
            }
            log.tail.push_back(line);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_appliance_state_event() {
        let line = "\x1b[2m2025-01-01T00:00:00Z\x1b[0m \x1b[32m INFO\x1b[0m \
                    \x1b[1mvrrp\x1b[0m\x1b[1m{\x1b[0m\x1b[3minstance\x1b[0m\x1b[2m=\x1b[0mVI_BENCH \
                    \x1b[3mvrid\x1b[0m\x1b[2m=\x1b[0m51\x1b[1m}\x1b[0m\x1b[2m:\x1b[0m \
                    appliance::daemon::vrrp: state changed \
                    \x1b[3mfrom\x1b[0m\x1b[2m=\x1b[0mBACKUP \x1b[3mto\x1b[0m\x1b[2m=\x1b[0mMASTER";
        assert_eq!(state_in(&strip_ansi(line)), Some(State::Master));
        let plain = "2025-01-01T00:00:00.000000Z  INFO vrrp{instance=VI_BENCH vrid=51}: \
                     appliance::daemon::vrrp: state changed from=BACKUP to=MASTER reason=priority 0";
        assert_eq!(state_in(plain), Some(State::Master));
    }

    #[test]
    fn reads_keepalived_state_lines() {
        let line = "Mon Jan  1 00:00:00 2025: (VI_BENCH) Entering BACKUP STATE (init)";
        assert_eq!(state_in(line), Some(State::Backup));
        let line = "Mon Jan  1 00:00:00 2025: (VI_BENCH) Entering FAULT STATE";
        assert_eq!(state_in(line), Some(State::Fault));
        assert_eq!(state_in("(VI_BENCH) sent 0 priority"), None);
    }

    #[test]
    fn the_v3_conf_sets_the_version_and_a_fractional_interval() {
        let conf = keepalived_conf(
            BACKUP,
            Version::V3,
            Centiseconds(10),
            Ipv4Addr::new(10, 0, 0, 100),
        );
        assert!(conf.contains("vrrp_version 3\n"), "{conf}");
        assert!(conf.contains("advert_int 0.1\n"), "{conf}");
        assert!(conf.contains("priority 100\n"), "{conf}");
        let v2 = keepalived_conf(
            MASTER,
            Version::V2,
            Centiseconds(100),
            Ipv4Addr::new(10, 0, 0, 100),
        );
        assert!(
            v2.contains("advert_int 1\n") && !v2.contains("vrrp_version"),
            "{v2}"
        );
    }
}
