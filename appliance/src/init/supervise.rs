//! The daemon as init's child: checked before each start, started with its
//! log and timeline on the config partition, restarted after a backoff
//! whenever it exits, and stopped on request. Meanwhile every other child
//! is reaped, since PID 1 inherits the orphans.
//!
//! While the config is invalid (or missing) nothing starts: the problems
//! are printed, the network is kept up ([`super::network::fallback`]), and
//! the file is polled until it changes or the console asks for a reload.

use super::logging::LogFile;
use super::signals::Signals;
use super::{Power, Request, State, paths};
use crate::config::Format;
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// The main loop's period: how soon a signal, a console request or the
/// daemon's exit is acted on.
const TICK: Duration = Duration::from_millis(100);
/// How often the config file is read while it is invalid.
const CONFIG_POLL: Duration = Duration::from_secs(2);
/// How long the daemon may take to resign and remove its addresses after
/// SIGTERM before it is killed.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(5);
/// The daemon keeps its log and timeline files under this size each (plus
/// one previous generation), so that the small config partition never
/// fills.
const MAX_FILE_SIZE: u64 = 1024 * 1024;
/// Beside a keepalived.conf: the box's own `[network]`.
const NETWORK_FILE: &str = "network.toml";

/// The delay before restarting the daemon: 1 s after an exit, doubling
/// with each quick exit up to 30 s; a run of a minute or more starts over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);
    /// A run this long was a success: the next failure is a new one.
    const STABLE: Duration = Duration::from_secs(60);

    pub(super) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The delay before the next start, after a run that lasted `ran`.
    pub(super) fn after_exit(&mut self, ran: Duration) -> Duration {
        if ran >= Self::STABLE {
            self.next = Self::FIRST;
        }
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        delay
    }

    /// Starts over: a start the operator asked for is not a failure.
    pub(super) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Starts `command` with the signal mask emptied (init blocks the signals
/// it reads from its signalfd, and a mask survives exec); with `session`,
/// in a new session whose controlling terminal is its standard input, so
/// that a shell has job control and Ctrl-C.
pub(super) fn spawn(mut command: Command, session: bool) -> std::io::Result<Pid> {
    // SAFETY: between fork and exec the closure makes only async-signal-
    // safe system calls (sigprocmask, setsid, ioctl) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            if session {
                nix::unistd::setsid()?;
                // A shell without a controlling terminal still works (no
                // job control), so a refusal is not worth failing over.
                libc::ioctl(0, libc::TIOCSCTTY, 1);
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    // A pid always fits: the kernel's pid_max is at most 2^22.
    Ok(Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX)))
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    Status(i32),
    Signal(Signal),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(code) => write!(f, "status {code}"),
            Self::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// Collects every child that has ended, without waiting.
pub(super) fn reap() -> Vec<(Pid, Exit)> {
    let mut ended = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => ended.push((pid, Exit::Status(code))),
            Ok(WaitStatus::Signaled(pid, signal, _)) => ended.push((pid, Exit::Signal(signal))),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return ended,
            Err(Errno::EINTR) | Ok(_) => continue,
            Err(e) => {
                warn!(error = %e, "waitpid failed");
                return ended;
            }
        }
    }
}

/// Waits up to `timeout` for `pid` to end, reaping whatever else ends.
fn wait_for(pid: Pid, timeout: Duration) -> Option<Exit> {
    let deadline = Instant::now() + timeout;
    loop {
        for (ended, exit) in reap() {
            if ended == pid {
                return Some(exit);
            }
            debug!(pid = ended.as_raw(), exit = %exit, "reaped");
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asks `pid` to stop (SIGTERM), kills it after `grace`, and returns how it
/// ended (`None` if even SIGKILL did not end it within a second).
pub(super) fn stop(pid: Pid, grace: Duration) -> Option<Exit> {
    if let Err(e) = kill(pid, Signal::SIGTERM) {
        debug!(pid = pid.as_raw(), error = %e, "SIGTERM not delivered");
    }
    if let Some(exit) = wait_for(pid, grace) {
        return Some(exit);
    }
    warn!(pid = pid.as_raw(), grace = ?grace, "no exit after SIGTERM; killing");
    let _ = kill(pid, Signal::SIGKILL);
    wait_for(pid, Duration::from_secs(1))
}

/// Runs `shell` on the console until it exits, reaping what else ends.
/// Returns the power request if one came meanwhile (the shell is then
/// left to the shutdown, which ends every process).
pub(super) fn rescue(shell: &Path, signals: &Signals) -> Option<Power> {
    let mut command = Command::new(shell);
    command.env("PATH", "/bin").env("HOME", "/");
    let pid = match spawn(command, true) {
        Ok(pid) => pid,
        Err(e) => {
            error!(shell = %shell.display(), error = %e, "rescue shell did not start");
            return None;
        }
    };
    loop {
        if let Some(Request::Power(power)) = signals.poll() {
            return Some(power);
        }
        for (ended, exit) in reap() {
            if ended == pid {
                info!(exit = %exit, "rescue shell exited; booting on");
                return None;
            }
        }
        std::thread::sleep(TICK);
    }
}

/// The config file in `dir`: `appliance.toml`, else `keepalived.conf`.
pub(super) fn config_file(dir: &Path) -> Option<PathBuf> {
    ["appliance.toml", "keepalived.conf"]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// The config file and its content, to tell when it changes.
fn snapshot(dir: &Path) -> Option<(PathBuf, Vec<u8>)> {
    let file = config_file(dir)?;
    let content = std::fs::read(&file).ok()?;
    Some((file, content))
}

/// What the supervisor is doing.
enum Phase {
    /// No config partition: nothing to run.
    NoConfig,
    /// The config is invalid or missing; `seen` is what was checked.
    Waiting {
        seen: Option<(PathBuf, Vec<u8>)>,
        next_poll: Instant,
    },
    Running {
        pid: Pid,
        started: Instant,
    },
    /// The daemon exited; it starts again at `until`.
    Backoff {
        until: Instant,
    },
}

/// The main loop once the system is up.
pub(super) struct Supervisor {
    /// Where the config partition is mounted; `None` without one.
    config_dir: Option<PathBuf>,
    log: LogFile,
    state: Arc<Mutex<State>>,
    phase: Phase,
    backoff: Backoff,
}

impl Supervisor {
    pub(super) fn new(config_dir: Option<PathBuf>, log: LogFile, state: Arc<Mutex<State>>) -> Self {
        Self {
            config_dir,
            log,
            state,
            phase: Phase::NoConfig,
            backoff: Backoff::new(),
        }
    }

    /// The running daemon, for the shutdown to stop.
    pub(super) fn daemon(&self) -> Option<Pid> {
        match self.phase {
            Phase::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// Keeps the daemon running (once [`Self::start`]ed) until a power
    /// request, which it returns.
    pub(super) fn run(&mut self, signals: &Signals, requests: &Receiver<Request>) -> Power {
        loop {
            let pending = signals.poll().or_else(|| requests.try_recv().ok());
            if let Some(request) = pending {
                match request {
                    Request::Power(power) => return power,
                    Request::Reload => self.reload(),
                    Request::Restart => self.restart(),
                }
                continue;
            }
            for (pid, exit) in reap() {
                self.on_exit(pid, exit);
            }
            let now = Instant::now();
            match &self.phase {
                Phase::Backoff { until } if now >= *until => self.start(),
                Phase::Waiting { seen, next_poll } if now >= *next_poll => {
                    let current = self.config_dir.as_deref().and_then(snapshot);
                    if current == *seen {
                        self.phase = Phase::Waiting {
                            seen: current,
                            next_poll: now + CONFIG_POLL,
                        };
                    } else {
                        info!("config file changed; checking it again");
                        self.start();
                    }
                }
                _ => {}
            }
            std::thread::sleep(TICK);
        }
    }

    fn set_state(&self, daemon: String) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .daemon = daemon;
    }

    /// Checks the config and starts the daemon with it, or waits.
    pub(super) fn start(&mut self) {
        let Some(dir) = self.config_dir.clone() else {
            self.set_state("not running: no config partition".into());
            super::network::fallback(None);
            self.phase = Phase::NoConfig;
            return;
        };
        let Some(file) = config_file(&dir) else {
            error!(dir = %dir.display(), "no config file (appliance.toml or keepalived.conf)");
            super::network::fallback(None);
            self.wait(&dir);
            return;
        };
        if let Err(e) = crate::daemon::check_config(&file) {
            let lines = e.lines();
            error!(file = %file.display(), problems = lines.len(), "config invalid");
            self.log.echo(&(lines.join("\n") + "\n"));
            super::network::fallback(Some(&file));
            self.wait(&dir);
            return;
        }
        info!(file = %file.display(), "config valid");
        if Format::detect(&file) == Format::Keepalived && !self.network_beside_keepalived(&dir) {
            self.wait(&dir);
            return;
        }
        let mut command = Command::new(
            std::env::current_exe().unwrap_or_else(|_| PathBuf::from(paths::APPLIANCE)),
        );
        command
            .arg("run")
            .arg("--config")
            .arg(&file)
            .arg("--log-file")
            .arg(paths::LOG_FILE)
            .arg("--timeline")
            .arg(paths::TIMELINE_FILE)
            .arg("--max-file-size")
            .arg(MAX_FILE_SIZE.to_string())
            .env("PATH", "/bin")
            // Plain lines on the serial console: escapes help neither a
            // reader nor a grep.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        match spawn(command, false) {
            Ok(pid) => {
                info!(pid = pid.as_raw(), "appliance started");
                self.set_state(format!("running (pid {pid})"));
                self.phase = Phase::Running {
                    pid,
                    started: Instant::now(),
                };
            }
            Err(e) => {
                let delay = self.backoff.after_exit(Duration::ZERO);
                error!(error = %e, restart_in = ?delay, "appliance did not start");
                self.backoff_for(delay);
            }
        }
    }

    /// keepalived.conf has no syntax for the box's own addresses, routes
    /// and sysctls: `network.toml` beside it holds them (`[network]`, as in
    /// appliance.toml), applied before the daemon starts; without one every
    /// link is brought up. False if network.toml is invalid (its problems
    /// are printed as the config's are).
    fn network_beside_keepalived(&self, dir: &Path) -> bool {
        let file = dir.join(NETWORK_FILE);
        if !file.exists() {
            super::network::fallback(None);
            return true;
        }
        match crate::config::load_file(&file) {
            Ok(config) => {
                super::network::apply_from(&config.network, &file);
                true
            }
            Err(problems) => {
                error!(file = %file.display(), problems = problems.0.len(), "config invalid");
                self.log.echo(&problems.to_string());
                super::network::fallback(None);
                false
            }
        }
    }

    fn wait(&mut self, dir: &Path) {
        info!(every = ?CONFIG_POLL, "waiting for the config file to change, or 'reload' at the console");
        self.set_state("not running: waiting for a valid config".into());
        self.phase = Phase::Waiting {
            seen: snapshot(dir),
            next_poll: Instant::now() + CONFIG_POLL,
        };
    }

    fn backoff_for(&mut self, delay: Duration) {
        self.set_state(format!(
            "not running: restarting in {}",
            humantime::format_duration(delay)
        ));
        self.phase = Phase::Backoff {
            until: Instant::now() + delay,
        };
    }

    fn on_exit(&mut self, pid: Pid, exit: Exit) {
        let Phase::Running {
            pid: daemon,
            started,
        } = self.phase
        else {
            debug!(pid = pid.as_raw(), exit = %exit, "reaped");
            return;
        };
        if pid != daemon {
            debug!(pid = pid.as_raw(), exit = %exit, "reaped");
            return;
        }
        let delay = self.backoff.after_exit(started.elapsed());
        warn!(exit = %exit, restart_in = ?delay, "appliance exited");
        self.backoff_for(delay);
    }

    fn reload(&mut self) {
        match self.phase {
            Phase::Running { pid, .. } => {
                info!("reload: SIGHUP to the appliance");
                if let Err(e) = kill(pid, Signal::SIGHUP) {
                    warn!(error = %e, "reload: SIGHUP not delivered");
                }
            }
            Phase::NoConfig => warn!("reload: no config partition"),
            Phase::Waiting { .. } | Phase::Backoff { .. } => self.start(),
        }
    }

    fn restart(&mut self) {
        if let Phase::Running { pid, .. } = self.phase {
            info!("restart: stopping the appliance");
            match stop(pid, STOP_GRACE) {
                Some(exit) => info!(exit = %exit, "appliance stopped"),
                None => warn!("appliance did not end, even killed"),
            }
        }
        self.backoff.reset();
        self.start();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn quick_exits_double_the_delay_up_to_30_s() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..8).map(|_| b.after_exit(secs(2)).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_run_of_a_minute_starts_the_delays_over() {
        let mut b = Backoff::new();
        for _ in 0..4 {
            b.after_exit(secs(1));
        }
        assert_eq!(b.after_exit(secs(59)), secs(16));
        assert_eq!(b.after_exit(secs(60)), secs(1));
        assert_eq!(b.after_exit(secs(3)), secs(2));
        b.reset();
        assert_eq!(b.after_exit(Duration::ZERO), secs(1));
    }

    #[test]
    fn appliance_toml_is_preferred_to_keepalived_conf() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(config_file(dir.path()), None);
        std::fs::write(dir.path().join("keepalived.conf"), "").unwrap();
        assert_eq!(
            config_file(dir.path()),
            Some(dir.path().join("keepalived.conf"))
        );
        std::fs::write(dir.path().join("appliance.toml"), "").unwrap();
        assert_eq!(
            config_file(dir.path()),
            Some(dir.path().join("appliance.toml"))
        );
    }

    #[test]
    fn a_child_gets_an_empty_signal_mask_and_its_exit_is_told() {
        // The test thread blocks a signal the way init does.
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGUSR2);
        mask.thread_block().unwrap();
        // grep itself: a shell would clear its children's mask on its own.
        let mut command = Command::new("grep");
        command.args(["-q", "^SigBlk:[[:space:]]*0*$", "/proc/self/status"]);
        let pid = spawn(command, false).unwrap();
        mask.thread_unblock().unwrap();
        let mut status = None;
        for _ in 0..100 {
            if let Ok(WaitStatus::Exited(_, code)) = waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                status = Some(code);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(status, Some(0), "the child's mask is not empty");
        assert_eq!(Exit::Status(1).to_string(), "status 1");
        assert_eq!(Exit::Signal(Signal::SIGKILL).to_string(), "signal SIGKILL");
    }
}
