//! `init` mode: the binary as PID 1 of the appliance's initramfs (the
//! kernel runs `/init`, a link to it). No shell, no udev, no systemd: init
//! mounts the kernel's file systems, loads the kernel modules the image
//! lists and those its devices need, brings `lo` up, mounts the config
//! partition, then runs and supervises `appliance run` with the config
//! found there, and offers a small prompt on the console. With
//! `appliance.rescue` on the kernel command line a shell runs on the
//! console first, and booting goes on when it exits.
//!
//! PID 1 must never exit or panic (either is a kernel panic): every error
//! is logged and the boot goes on without what failed, or retries.

mod console;
mod logging;
mod modules;
mod mounts;
mod network;
mod partition;
mod power;
mod signals;
mod supervise;

use logging::LogFile;
use modules::{Loader, Report};
use signals::Signals;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use supervise::Supervisor;
use tracing::{error, info, warn};

/// The image's layout, as its build script makes it.
mod paths {
    pub(super) const APPLIANCE: &str = "/bin/appliance";
    pub(super) const SHELL: &str = "/bin/sh";
    pub(super) const MODULES_ROOT: &str = "/lib/modules";
    /// Modules loaded at every boot, one name per line.
    pub(super) const MODULES_LIST: &str = "/etc/appliance/modules";
    /// One line naming the image, for the boot banner.
    pub(super) const RELEASE: &str = "/etc/appliance/release";
    pub(super) const SYS: &str = "/sys";
    /// The GPT partition name of the config partition.
    pub(super) const PARTITION_NAME: &str = "appliance-config";
    pub(super) const CONFIG_DIR: &str = "/config";
    pub(super) const LOG_DIR: &str = "/config/log";
    pub(super) const LOG_FILE: &str = "/config/log/appliance.log";
    pub(super) const TIMELINE_FILE: &str = "/config/log/timeline.jsonl";
}

/// The host name: an initramfs has none, and the daemon takes its default
/// router_id from it.
const HOSTNAME: &str = "appliance";
/// The kernel command line flag that runs the rescue shell.
const RESCUE_FLAG: &str = "appliance.rescue";
/// How long to wait for the config partition: USB disks show up late.
const PARTITION_WAIT: Duration = Duration::from_secs(15);

/// What init does when asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Off,
    Reboot,
}

/// What the console or a signal asks of the main loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The daemon rereads its config; without a daemon, init checks the
    /// config again.
    Reload,
    /// Stop the daemon and start it again.
    Restart,
    Power(Power),
}

/// What the console shows of init, kept by the supervisor.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Where the config partition is mounted, if it is.
    pub config_dir: Option<PathBuf>,
    /// The daemon, in words: `running (pid 42)`, `not running: ...`.
    pub daemon: String,
}

/// Whether the kernel command line has `flag` as a word of its own.
fn has_flag(cmdline: &str, flag: &str) -> bool {
    cmdline.split_whitespace().any(|word| word == flag)
}

/// Runs init: boots, supervises the daemon, and shuts down on request.
pub fn run() -> ! {
    let log = LogFile::default();
    logging::install(&log);
    // Before any thread starts: threads inherit the blocked signals.
    let signals = Signals::block();
    for e in mounts::early() {
        error!(error = %e, "mount failed");
    }
    if let Err(e) = mounts::console() {
        error!(error = %e, "no console");
    }
    if let Err(e) = mounts::prompt_writeback() {
        warn!(error = %e, "the kernel's writeback delays stay");
    }
    // The daemon's default router_id and the notify scripts' view of the
    // host: an initramfs has no name of its own.
    if let Err(e) = nix::unistd::sethostname(HOSTNAME) {
        warn!(error = %e, "setting the host name failed");
    }
    let release = std::fs::read_to_string(paths::RELEASE)
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|_| "unknown release".into());
    info!(version = %env!("CARGO_PKG_VERSION"), release = %release, "appliance");
    // Ctrl-Alt-Del then comes as SIGINT: a clean reboot, not a reset.
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        warn!(error = %e, "Ctrl-Alt-Del stays a hard reset");
    }

    let mut loader = load_modules();
    network::all_links_up();
    let config_dir = config_partition(loader.as_mut());

    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if has_flag(&cmdline, RESCUE_FLAG) {
        info!(flag = RESCUE_FLAG, "rescue shell; exit it to boot on");
        if let Some(power) = supervise::rescue(Path::new(paths::SHELL), &signals) {
            power::shutdown(power, None, &log, config_dir.as_deref());
        }
    }
    // After the rescue shell, so that it can unmount the partition.
    if config_dir.is_some() {
        open_log(&log);
    }

    let state = Arc::new(Mutex::new(State {
        config_dir: config_dir.clone(),
        daemon: "starting".into(),
    }));
    let mut supervisor = Supervisor::new(config_dir.clone(), log.clone(), state.clone());
    // The first check's output (the config's problems) before the prompt,
    // so that the prompt does not split its lines.
    supervisor.start();
    let (requests, received) = mpsc::channel();
    console::spawn(state, requests);
    let power = supervisor.run(&signals, &received);
    power::shutdown(power, supervisor.daemon(), &log, config_dir.as_deref())
}

/// Logs what a pass of module loading did.
fn log_report(pass: &str, report: &Report) {
    if !report.loaded.is_empty() {
        info!(pass, count = report.loaded.len(), modules = %report.loaded.join(","), "modules loaded");
    }
    for (module, reason) in &report.failed {
        error!(pass, module, error = %reason, "module failed to load");
    }
    if !report.unknown.is_empty() {
        info!(pass, modules = %report.unknown.join(","), "modules not in modules.dep (built in?)");
    }
}

/// Loads the image's module list, then the drivers of the devices found.
/// Returns the loader for later coldplugs, if the module index is there.
fn load_modules() -> Option<Loader> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_default();
    let dir = Path::new(paths::MODULES_ROOT).join(&release);
    let (mut loader, invalid) = match Loader::open(&dir) {
        Ok(opened) => opened,
        Err(e) => {
            error!(error = %e, "no module index; no module loaded");
            return None;
        }
    };
    if let Some(first) = invalid.first() {
        warn!(lines = invalid.len(), first = %first, "modules.alias: invalid patterns skipped");
    }
    let list = match std::fs::read_to_string(paths::MODULES_LIST) {
        Ok(text) => modules::parse_list(&text),
        Err(e) => {
            warn!(file = paths::MODULES_LIST, error = %e, "no module list");
            Vec::new()
        }
    };
    let mut report = Report::default();
    for (name, params) in &list {
        loader.load(name, params, &mut modules::finit, &mut report);
    }
    log_report("boot", &report);
    log_report(
        "coldplug",
        &loader.coldplug(Path::new(paths::SYS), &mut modules::finit),
    );
    Some(loader)
}

/// Finds the config partition (waiting for late disks, loading their
/// drivers meanwhile) and mounts it. `None` without one.
fn config_partition(mut loader: Option<&mut Loader>) -> Option<PathBuf> {
    let deadline = Instant::now() + PARTITION_WAIT;
    let mut waiting = false;
    let device = loop {
        let found = partition::find(Path::new(paths::SYS), paths::PARTITION_NAME);
        if let Some(first) = found.first() {
            if found.len() > 1 {
                let all: Vec<String> = found.iter().map(|d| d.display().to_string()).collect();
                warn!(devices = %all.join(","), "several partitions named appliance-config; using the first");
            }
            break first.clone();
        }
        if Instant::now() >= deadline {
            warn!(name = paths::PARTITION_NAME, waited = ?PARTITION_WAIT, "no config partition; going on without a config");
            return None;
        }
        if !waiting {
            info!(
                name = paths::PARTITION_NAME,
                "waiting for the config partition"
            );
            waiting = true;
        }
        std::thread::sleep(Duration::from_secs(1));
        if let Some(loader) = loader.as_deref_mut() {
            log_report(
                "coldplug",
                &loader.coldplug(Path::new(paths::SYS), &mut modules::finit),
            );
        }
    };
    let dir = PathBuf::from(paths::CONFIG_DIR);
    match mounts::config(&device, &dir) {
        Ok(()) => {
            info!(device = %device.display(), mountpoint = paths::CONFIG_DIR, "config partition mounted");
            Some(dir)
        }
        Err(e) => {
            error!(device = %device.display(), error = %e, "mounting the config partition failed");
            None
        }
    }
}

/// Appends init's own lines to the appliance's log file.
fn open_log(log: &LogFile) {
    if let Err(e) = std::fs::create_dir_all(paths::LOG_DIR) {
        warn!(dir = paths::LOG_DIR, error = %e, "creating the log directory failed");
    }
    if let Err(e) = log.open(Path::new(paths::LOG_FILE)) {
        warn!(file = paths::LOG_FILE, error = %e, "opening the log file failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rescue_flag_is_a_word_of_the_command_line() {
        let cmdline =
            "BOOT_IMAGE=/vmlinuz console=tty0 console=ttyS0,115200n8 quiet appliance.rescue\n";
        assert!(has_flag(cmdline, RESCUE_FLAG));
        assert!(!has_flag("console=ttyS0 quiet", RESCUE_FLAG));
        assert!(!has_flag(
            "appliance.rescue=0 xappliance.rescue",
            RESCUE_FLAG
        ));
    }
}
