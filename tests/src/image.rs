//! The flashable image (`make image`: target/image/appliance.img and
//! .qcow2) booted from its disk under qemu (TCG), the way a user boots it:
//! firmware (SeaBIOS, or OVMF for UEFI), the bootloader on the disk, the
//! kernel, the appliance as PID 1. A test copies the image, writes its
//! config into the copy's config partition with mtools (no mount), boots
//! it with its NIC on a [`Lan`](crate::netns::Lan)'s bridge, and talks to
//! it over the serial console as an operator would.

use crate::vm::tail;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A failed step, saying which.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Missing(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {what}", disk.display())]
    Gpt { what: String, disk: PathBuf },
    #[error("{command}: {status}: {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error(
        "{machine}: no {wanted:?} on the console within {within:?}\n--- console (tail) ---\n{tail}"
    )]
    Timeout {
        machine: String,
        wanted: String,
        within: Duration,
        tail: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `target/image/`, where `make image` leaves the image.
pub fn image_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")))
        .join("target/image")
}

/// An image file `make image` built (`appliance.img`, `appliance.qcow2`).
pub fn built(name: &str) -> Result<PathBuf> {
    let path = image_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Missing(format!(
            "{} is missing: build the image with `make image` (make test does)",
            path.display()
        )))
    }
}

/// The VM harness's lookup, its error as this module's.
fn require_tool(tool: &str, package: &'static str) -> Result<()> {
    crate::vm::require_tool(tool, package)
        .map(drop)
        .map_err(|e| Error::Missing(e.to_string()))
}

fn run(cmd: &mut Command) -> Result<std::process::Output> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: shown.clone(),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// Byte offset of the GPT partition named `name` in the disk image `disk`
/// (512-byte sectors, as the image has).
pub fn partition_offset(disk: &Path, name: &str) -> Result<u64> {
    const SECTOR: u64 = 512;
    let bytes = fs::read(disk).map_err(io_err(disk))?;
    let gpt = |what: &str| Error::Gpt {
        what: what.to_string(),
        disk: disk.to_path_buf(),
    };
    let header = bytes
        .get(SECTOR as usize..2 * SECTOR as usize)
        .ok_or_else(|| gpt("shorter than a GPT header"))?;
    if &header[..8] != b"EFI PART" {
        return Err(gpt("no GPT header at LBA 1"));
    }
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let entries = u64_at(header, 72) * SECTOR;
    let count = u32_at(header, 80) as usize;
    let size = u32_at(header, 84) as usize;
    if size < 128 {
        return Err(gpt("GPT entries shorter than 128 bytes"));
    }
    for i in 0..count {
        let at = entries as usize + i * size;
        let entry = bytes
            .get(at..at + 128)
            .ok_or_else(|| gpt("GPT entries run past the end"))?;
        let units: Vec<u16> = entry[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        if String::from_utf16_lossy(&units) == name {
            return Ok(u64_at(entry, 32) * SECTOR);
        }
    }
    Err(gpt(&format!("no partition named {name}")))
}

/// The GPT name of the partition the appliance reads its config from.
pub const CONFIG_PARTITION: &str = "appliance-config";

/// A private, writable copy of the raw image.
pub struct Disk {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Disk {
    /// Copies `appliance.img`.
    pub fn copy_of_image() -> Result<Self> {
        let image = built("appliance.img")?;
        let dir = tempfile::Builder::new()
            .prefix("appliance-disk-")
            .tempdir_in("/var/tmp")
            .map_err(io_err(Path::new("/var/tmp")))?;
        let path = dir.path().join("appliance.img");
        fs::copy(&image, &path).map_err(io_err(&image))?;
        Ok(Self { _dir: dir, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// mtools' image argument for the config partition: `FILE@@OFFSET`.
    fn config_fs(&self) -> Result<String> {
        require_tool("mcopy", "mtools")?;
        let offset = partition_offset(&self.path, CONFIG_PARTITION)?;
        Ok(format!("{}@@{offset}", self.path.display()))
    }

    /// Writes `text` as `name` at the root of the config partition.
    pub fn write_config(&self, name: &str, text: &str) -> Result<()> {
        let fs_arg = self.config_fs()?;
        let local = self.path.with_file_name(name);
        fs::write(&local, text).map_err(io_err(&local))?;
        run(Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-o", "-i", &fs_arg])
            .arg(&local)
            .arg(format!("::/{name}")))?;
        Ok(())
    }

    /// A file of the config partition (e.g. `log/appliance.log`), read
    /// while no machine runs from this disk.
    pub fn read_config_file(&self, name: &str) -> Result<String> {
        let fs_arg = self.config_fs()?;
        let out = run(Command::new("mtype")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-i", &fs_arg])
            .arg(format!("::/{name}")))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The firmware a machine boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS: the disk's protective MBR boot code and syslinux.
    Bios,
    /// OVMF: the EFI system partition's GRUB.
    Uefi,
}

/// Where a machine's NIC is plugged: a tap on a LAN's bridge.
#[derive(Debug, Clone)]
pub struct Nic {
    /// The namespace that holds the tap (qemu runs in it).
    pub netns: String,
    pub tap: String,
    pub mac: String,
}

/// A machine booting or booted from a disk image.
pub struct Machine {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<Mutex<Vec<u8>>>,
    started: Instant,
}

/// OVMF as Debian's ovmf package installs it.
const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

impl Machine {
    /// Powers on a machine named `name` (for messages) with `disk`
    /// (`format`: raw or qcow2; writes go to a throw-away overlay when
    /// `snapshot`), 512 MiB (OVMF and GRUB need more than 256) and `nic`, its serial console on a pipe.
    pub fn boot(
        name: &str,
        disk: &Path,
        format: &str,
        firmware: Firmware,
        nic: Option<&Nic>,
        snapshot: bool,
    ) -> Result<Self> {
        require_tool("qemu-system-x86_64", "qemu-system-x86")?;
        let mut cmd = match nic {
            Some(nic) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &nic.netns, "qemu-system-x86_64"]);
                cmd
            }
            None => Command::new("qemu-system-x86_64"),
        };
        cmd.args(["-m", "512", "-display", "none", "-serial", "stdio"])
            .args(["-monitor", "none", "-no-reboot"])
            .arg("-drive")
            .arg(format!(
                "file={},format={format},if=virtio{}",
                disk.display(),
                if snapshot { ",snapshot=on" } else { "" }
            ));
        if firmware == Firmware::Uefi {
            if !Path::new(OVMF).is_file() {
                return Err(Error::Missing(format!(
                    "{OVMF} is missing: install the Debian package ovmf"
                )));
            }
            cmd.args(["-bios", OVMF]);
        }
        match nic {
            Some(nic) => cmd
                .arg("-netdev")
                .arg(format!(
                    "tap,id=n0,ifname={},script=no,downscript=no",
                    nic.tap
                ))
                .arg("-device")
                .arg(format!("virtio-net-pci,netdev=n0,mac={}", nic.mac)),
            None => cmd.args(["-nic", "none"]),
        };
        let started = Instant::now();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err(Path::new("qemu-system-x86_64")))?;
        let console = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let console = Arc::clone(&console);
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    console.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        Ok(Self {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            console,
            started,
        })
    }

    /// The console so far, as text: carriage returns and terminal escape
    /// sequences (colours, cursor moves) removed.
    pub fn console(&self) -> String {
        plain(&String::from_utf8_lossy(&self.console.lock().unwrap()))
    }

    /// Waits until the console holds `needle` after byte `from` of
    /// [`Machine::console`]; returns the time since power-on and the end
    /// of the match.
    pub fn wait_for_from(
        &self,
        needle: &str,
        from: usize,
        within: Duration,
    ) -> Result<(Duration, usize)> {
        let deadline = Instant::now() + within;
        loop {
            let console = self.console();
            if let Some(at) = console.get(from..).and_then(|rest| rest.find(needle)) {
                return Ok((self.started.elapsed(), from + at + needle.len()));
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    machine: self.name.clone(),
                    wanted: needle.to_string(),
                    within,
                    tail: tail(&console),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Machine::wait_for_from`] the start of the console.
    pub fn wait_for(&self, needle: &str, within: Duration) -> Result<Duration> {
        self.wait_for_from(needle, 0, within).map(|(at, _)| at)
    }

    /// Types `line` and Enter on the serial console.
    pub fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            Error::Missing(format!("{}: the console's input is closed", self.name))
        })?;
        stdin
            .write_all(format!("{line}\r").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(io_err(Path::new("qemu's serial console")))
    }

    /// Types `command` at the appliance's prompt and returns what the
    /// console printed up to the next prompt.
    pub fn command(&mut self, command: &str, within: Duration) -> Result<String> {
        const PROMPT: &str = "appliance> ";
        let from = self.console().len();
        self.send(command)?;
        let (_, echoed) = self.wait_for_from(command, from, within)?;
        let (_, end) = self.wait_for_from(PROMPT, echoed, within)?;
        Ok(self.console()[echoed..end - PROMPT.len()].to_string())
    }

    /// Pulls the plug: qemu is killed, the guest gets no chance to react.
    pub fn power_off(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.power_off();
    }
}

/// Text without carriage returns and ANSI escape sequences.
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\x1b' => {
                // CSI: ESC [ parameters... final byte in @..~; a charset
                // choice: ESC ( X or ESC ) X; other escapes: ESC X.
                match chars.next() {
                    Some('[') => {
                        for c in chars.by_ref() {
                            if ('@'..='~').contains(&c) {
                                break;
                            }
                        }
                    }
                    Some('(' | ')') => {
                        chars.next();
                    }
                    _ => {}
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_carriage_returns_are_removed() {
        assert_eq!(
            plain("\x1b[2mstate\x1b[0m \x1b[3mto\x1b[0m\x1b[2m=\x1b[0mMASTER\r\n\x1b(B"),
            "state to=MASTER\n"
        );
    }

    #[test]
    fn a_partition_is_found_by_its_gpt_name() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.img");
        let mut bytes = vec![0u8; 512 * 34];
        bytes[512..520].copy_from_slice(b"EFI PART");
        bytes[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        bytes[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        bytes[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        let entry = |i: usize, first: u64, name: &str, bytes: &mut Vec<u8>| {
            let at = 1024 + i * 128;
            bytes[at + 32..at + 40].copy_from_slice(&first.to_le_bytes());
            for (j, unit) in name.encode_utf16().enumerate() {
                bytes[at + 56 + 2 * j..at + 58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
            }
        };
        entry(0, 2048, "appliance-boot", &mut bytes);
        entry(1, 67584, "appliance-config", &mut bytes);
        fs::write(&disk, &bytes).unwrap();
        assert_eq!(
            partition_offset(&disk, "appliance-config").unwrap(),
            67584 * 512
        );
        assert!(
            partition_offset(&disk, "data")
                .unwrap_err()
                .to_string()
                .contains("no partition named data")
        );
        fs::write(&disk, vec![0u8; 1024]).unwrap();
        assert!(
            partition_offset(&disk, "data")
                .unwrap_err()
                .to_string()
                .contains("no GPT header")
        );
    }
}
