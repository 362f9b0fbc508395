//! Shutdown: the daemon first (it resigns its VRRP mastership and removes
//! its addresses on SIGTERM, so the peer takes over at once), then every
//! other process, then the config partition is flushed and unmounted, and
//! the kernel powers off or reboots. PID 1 must not exit, so a refusal
//! leaves it waiting.

use super::Power;
use super::logging::LogFile;
use super::supervise::{self, STOP_GRACE};
use nix::errno::Errno;
use nix::sys::reboot::RebootMode;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// How long the other processes get between SIGTERM and SIGKILL.
const OTHERS_GRACE: Duration = Duration::from_secs(2);

impl std::fmt::Display for Power {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Power::Off => "power off",
            Power::Reboot => "reboot",
        })
    }
}

/// Reaps children until none is left or `timeout` passes.
fn wait_all(timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => return,
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(50)),
            _ => {}
        }
    }
}

/// Stops everything and powers off or reboots.
pub(super) fn shutdown(
    power: Power,
    daemon: Option<Pid>,
    log: &LogFile,
    config_dir: Option<&Path>,
) -> ! {
    info!(action = %power, "shutting down");
    if let Some(pid) = daemon {
        match supervise::stop(pid, STOP_GRACE) {
            Some(exit) => info!(exit = %exit, "appliance stopped"),
            None => warn!("appliance did not end, even killed"),
        }
    }
    // Orphans, a rescue shell's leftovers: asked, then made to end.
    let everyone = Pid::from_raw(-1);
    let _ = kill(everyone, Signal::SIGTERM);
    wait_all(OTHERS_GRACE);
    let _ = kill(everyone, Signal::SIGKILL);
    wait_all(Duration::from_secs(1));
    log.close();
    nix::unistd::sync();
    if let Some(dir) = config_dir {
        match super::mounts::unmount(dir) {
            Ok(()) => info!(dir = %dir.display(), "config partition unmounted"),
            Err(e) => error!(error = %e, "unmounting the config partition failed"),
        }
    }
    nix::unistd::sync();
    let mode = match power {
        Power::Off => RebootMode::RB_POWER_OFF,
        Power::Reboot => RebootMode::RB_AUTOBOOT,
    };
    let refused = match nix::sys::reboot::reboot(mode) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    error!(action = %power, error = %refused, "the kernel refused; halted here");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
