//! Scenarios on a real Linux kernel with IPVS, booted under qemu (TCG: the
//! host kernel has no IPVS and no usable KVM). The guest runs Debian's
//! stock kernel ([`kernel`]: fetched once, cached in `.cache/vm/`) and an
//! initramfs built per run ([`initramfs`]); its `/init` loads the IPVS,
//! conntrack, veth, bridge and ipip modules, runs the test's shell script
//! (busybox ash) and powers off.
//!
//! ```no_run
//! use appliance_tests::vm::Vm;
//! let out = Vm::builder()
//!     .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
//!     .script("ipvsadm -Ln && appliance --version")
//!     .run()
//!     .unwrap();
//! out.assert_success();
//! assert!(out.stdout.contains("IP Virtual Server"));
//! ```
//!
//! In the guest: busybox (sh, wget, httpd, nc, …), iproute2's `ip` (with
//! `ip netns`), `ipvsadm`, and the files the test adds (a dynamically
//! linked executable brings its shared libraries). The qemu process is
//! killed if the run times out or the test panics.

mod cpio;
mod initramfs;
pub mod kernel;
pub mod scenario;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A failed VM run or preparation step.
#[derive(thiserror::Error)]
pub enum Error {
    #[error(
        "`{tool}` is missing: install the Debian package {package} (scripts/install-deps does)"
    )]
    MissingTool { tool: String, package: &'static str },
    #[error("{command}: {status}: {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kernel package: {0}")]
    Kernel(String),
    #[error("{}: shared library {library} not found", binary.display())]
    MissingLibrary { binary: PathBuf, library: String },
    #[error(
        "the VM did not finish within {after:?}\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}\n--- console (tail) ---\n{}",
        tail(stdout),
        tail(stderr),
        tail(console)
    )]
    Timeout {
        after: Duration,
        console: String,
        stdout: String,
        stderr: String,
    },
    #[error(
        "the VM stopped ({status}) without the scenario's end marker; qemu said: {qemu_log}\nconsole tail:\n{}",
        tail(console)
    )]
    NoExitMarker {
        status: String,
        console: String,
        qemu_log: String,
    },
}

/// `unwrap()` shows the message, console included, not an escaped struct.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a finished scenario left.
#[derive(Debug, Clone)]
pub struct VmOutput {
    /// The scenario script's exit status.
    pub exit_code: i32,
    /// What the scenario wrote to stdout, byte for byte.
    pub stdout: String,
    /// What the scenario wrote to stderr.
    pub stderr: String,
    /// The serial console: kernel messages and the init's markers.
    pub console: String,
    /// From starting qemu to the scenario's start.
    pub boot: Duration,
    /// From starting qemu to its exit.
    pub elapsed: Duration,
}

impl VmOutput {
    /// Panics, showing stdout, stderr and the console's tail, unless the
    /// scenario exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.exit_code == 0,
            "the VM scenario exited {}\n{self}",
            self.exit_code
        );
        self
    }
}

/// The lines of a scenario's output `out` between its marker line
/// `--- name` and the next `--- ` line: how scenarios hand results back.
pub fn section<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| *l != format!("--- {name}"))
        .skip(1)
        .take_while(|l| !l.starts_with("--- "))
        .collect()
}

impl fmt::Display for VmOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--- stdout ---\n{}\n--- stderr ---\n{}\n--- console (tail) ---\n{}",
            self.stdout,
            self.stderr,
            tail(&self.console)
        )
    }
}

/// The last lines of a console log, enough to show a failure's cause.
pub(crate) fn tail(console: &str) -> String {
    const LINES: usize = 60;
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

/// Entry point: `Vm::builder()`.
pub struct Vm;

impl Vm {
    pub fn builder() -> VmBuilder {
        VmBuilder {
            files: Vec::new(),
            script: String::new(),
            memory_mb: 512,
            timeout: Duration::from_secs(60),
        }
    }
}

/// One VM run: what to put in the guest and how long to wait.
#[derive(Debug, Clone)]
pub struct VmBuilder {
    files: Vec<(PathBuf, String)>,
    script: String,
    memory_mb: u32,
    timeout: Duration,
}

impl VmBuilder {
    /// Copies a host file to an absolute guest path (mode kept). A
    /// dynamically linked executable brings its shared libraries.
    pub fn file(mut self, host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        self.files.push((host.into(), guest.into()));
        self
    }

    /// The scenario: a busybox ash script, run as root in `/root` with
    /// stdin from /dev/null; its exit status is [`VmOutput::exit_code`].
    pub fn script(mut self, text: impl Into<String>) -> Self {
        self.script = text.into();
        self
    }

    /// Guest memory (default 512 MiB; the initramfs lives in it).
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// How long the whole run may take before qemu is killed (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Boots the VM, runs the scenario and waits for the guest to power off.
    pub fn run(self) -> Result<VmOutput> {
        let qemu = require_tool("qemu-system-x86_64", "qemu-system-x86")?;
        let kernel = kernel::kernel()?;
        sweep_stale_run_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{RUN_DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(io_err(&std::env::temp_dir()))?;
        let path = |name: &str| dir.path().join(name);
        initramfs::build(&kernel, &self.files, &self.script, &path("initrd.cpio"))?;

        let qemu_log = path("qemu.log");
        let log_file = fs::File::create(&qemu_log).map_err(io_err(&qemu_log))?;
        let serial = |name: &str| format!("file:{}", path(name).display());
        // Three serial ports to files, rather than -nographic's one muxed
        // stdio: the console (ttyS0), the scenario's stdout and stderr.
        let mut cmd = Command::new(&qemu);
        cmd.args(["-accel", "tcg", "-m"])
            .arg(self.memory_mb.to_string())
            .args([
                "-smp",
                "1",
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
            ])
            .args(["-no-reboot", "-serial"])
            .arg(serial("console.log"))
            .arg("-serial")
            .arg(serial("stdout.log"))
            .arg("-serial")
            .arg(serial("stderr.log"))
            .arg("-kernel")
            .arg(&kernel.vmlinux)
            .arg("-initrd")
            .arg(path("initrd.cpio"))
            .args(["-append", "console=ttyS0 quiet loglevel=4 panic=-1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);

        let started = Instant::now();
        let child = cmd.spawn().map_err(io_err(&qemu))?;
        let qemu_path = qemu;
        let mut qemu = QemuGuard(child);
        let console_path = path("console.log");
        let mut boot = None;
        let status = loop {
            if let Some(status) = qemu.0.try_wait().map_err(io_err(&qemu_path))? {
                break status;
            }
            if boot.is_none()
                && fs::read_to_string(&console_path)
                    .is_ok_and(|c| c.contains(initramfs::START_MARKER))
            {
                boot = Some(started.elapsed());
            }
            if started.elapsed() > self.timeout {
                qemu.kill();
                return Err(Error::Timeout {
                    after: self.timeout,
                    console: read_lossy(&console_path),
                    stdout: read_lossy(&path("stdout.log")),
                    stderr: read_lossy(&path("stderr.log")),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = started.elapsed();

        let console = read_lossy(&console_path);
        let Some(exit_code) = exit_code(&console) else {
            return Err(Error::NoExitMarker {
                status: status.to_string(),
                console,
                qemu_log: read_lossy(&qemu_log).trim().to_string(),
            });
        };
        Ok(VmOutput {
            exit_code,
            stdout: read_lossy(&path("stdout.log")),
            stderr: read_lossy(&path("stderr.log")),
            boot: boot.unwrap_or(elapsed),
            elapsed,
            console,
        })
    }
}

/// Per-run directories in the temp dir: `appliance-vm-<pid>-<random>`,
/// holding the initramfs (tens of MiB with a debug binary) and the logs.
const RUN_DIR_PREFIX: &str = "appliance-vm-";

/// Removes run directories of test processes that no longer exist (one
/// killed by a timeout runs no destructors).
fn sweep_stale_run_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(RUN_DIR_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // Another sweeper may have won the race; either way it is gone.
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Kills qemu when dropped (a timeout, a panicking test).
struct QemuGuard(Child);

impl QemuGuard {
    fn kill(&mut self) {
        // Already exited is the only error, and then there is nothing to do.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for QemuGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// The code in the init's `@@VM-SCENARIO-EXIT <code>@@` console line.
fn exit_code(console: &str) -> Option<i32> {
    console.lines().find_map(|line| {
        line.trim()
            .strip_prefix(initramfs::EXIT_MARKER)?
            .strip_suffix("@@")?
            .trim()
            .parse()
            .ok()
    })
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The executable `tool` from PATH or the sbin directories (not on a
/// non-root PATH), or an error naming the Debian package that ships it.
pub fn require_tool(tool: &str, package: &'static str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| {
            fs::metadata(p).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
        .ok_or_else(|| Error::MissingTool {
            tool: tool.to_string(),
            package,
        })
}

/// Runs a command; a non-zero exit is an error carrying its stderr.
fn command_output(cmd: &mut Command) -> Result<Output> {
    let command = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Io {
            path: PathBuf::from(cmd.get_program()),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_comes_from_the_marker_line() {
        let console = "[    1.0] reboot\r\n@@VM-SCENARIO-EXIT 3@@\r\n[    1.1] Power down\r\n";
        assert_eq!(exit_code(console), Some(3));
        assert_eq!(exit_code("@@VM-SCENARIO-START@@\r\n"), None);
        assert_eq!(exit_code("@@VM-SCENARIO-EXIT x@@\n"), None);
    }

    #[test]
    fn a_missing_tool_names_its_debian_package() {
        let err = require_tool("no-such-tool-for-vm-tests", "some-package").unwrap_err();
        assert!(
            err.to_string().contains("Debian package some-package"),
            "{err}"
        );
    }

    #[test]
    fn the_console_tail_keeps_the_last_lines() {
        let console: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(&console);
        assert!(t.starts_with("line 40\n") && t.ends_with("line 99"), "{t}");
    }
}
