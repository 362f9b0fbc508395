//! The guest's root filesystem, written as one uncompressed newc cpio
//! (the kernel unpacks it faster than it would inflate a compressed one
//! under TCG): Debian's dynamic busybox with its applets, iproute2's `ip`,
//! `ipvsadm`, each with the shared libraries `ldd` lists, the kernel's
//! modules, the test's extra files, the scenario, and an `/init` that runs
//! it between markers on the console.

use super::cpio::CpioWriter;
use super::kernel::{Kernel, MODULES};
use super::{Error, Result, command_output, io_err, require_tool};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Console line before the scenario starts.
pub const START_MARKER: &str = "@@VM-SCENARIO-START@@";
/// Console line after it: `@@VM-SCENARIO-EXIT <code>@@`.
pub const EXIT_MARKER: &str = "@@VM-SCENARIO-EXIT";

/// Where the scenario script lives in the guest.
const SCENARIO: &str = "scenario";

/// Real tools copied from the host: (program, where it goes, Debian
/// package). Busybox applets of the same name are left out, so the shell
/// finds these.
const TOOLS: &[(&str, &str, &str)] = &[
    ("ip", "usr/sbin/ip", "iproute2"),
    ("ipvsadm", "usr/sbin/ipvsadm", "ipvsadm"),
];

enum Source {
    Host(PathBuf),
    Bytes(Vec<u8>),
}

enum Entry {
    Dir,
    File { source: Source, perm: u32 },
    Symlink(String),
}

/// Guest paths (relative, no leading `/`) to what they hold; directories
/// are implied by their contents.
#[derive(Default)]
struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    fn put(&mut self, guest: &str, entry: Entry) {
        self.entries
            .insert(guest.trim_start_matches('/').to_string(), entry);
    }

    /// A host file; a dynamically linked ELF brings its shared libraries
    /// and loader (at their host paths) too.
    fn host_file(&mut self, host: &Path, guest: &str) -> Result<()> {
        let perm = fs::metadata(host).map_err(io_err(host))?.permissions();
        let perm = std::os::unix::fs::PermissionsExt::mode(&perm) & 0o7777;
        for lib in shared_libraries(host)? {
            let guest_lib = lib.to_string_lossy().into_owned();
            self.put(
                &guest_lib,
                Entry::File {
                    source: Source::Host(lib),
                    perm: 0o755,
                },
            );
        }
        self.put(
            guest,
            Entry::File {
                source: Source::Host(host.to_path_buf()),
                perm,
            },
        );
        Ok(())
    }

    fn bytes(&mut self, guest: &str, data: Vec<u8>, perm: u32) {
        self.put(
            guest,
            Entry::File {
                source: Source::Bytes(data),
                perm,
            },
        );
    }

    /// Every file under `host_dir`, at the same relative path under `guest_dir`.
    fn host_tree(&mut self, host_dir: &Path, guest_dir: &str) -> Result<()> {
        let entries = fs::read_dir(host_dir).map_err(io_err(host_dir))?;
        for entry in entries {
            let path = entry.map_err(io_err(host_dir))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let guest = format!("{guest_dir}/{name}");
            if path.is_dir() {
                self.host_tree(&path, &guest)?;
            } else {
                self.put(
                    &guest,
                    Entry::File {
                        source: Source::Host(path),
                        perm: 0o644,
                    },
                );
            }
        }
        Ok(())
    }

    /// Writes the archive: each directory before its contents (a path
    /// sorts before any path it prefixes).
    fn write(&self, out: &Path) -> Result<()> {
        let mut dirs = BTreeSet::new();
        for path in self.entries.keys() {
            let mut parent = Path::new(path).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                dirs.insert(p.to_string_lossy().into_owned());
                parent = p.parent();
            }
        }
        let file = fs::File::create(out).map_err(io_err(out))?;
        let mut cpio = CpioWriter::new(BufWriter::new(file));
        let mut all: BTreeMap<&str, Option<&Entry>> =
            dirs.iter().map(|d| (d.as_str(), None)).collect();
        all.extend(self.entries.iter().map(|(p, e)| (p.as_str(), Some(e))));
        // The kernel opens /dev/console for init before init mounts devtmpfs.
        cpio.dir("dev", 0o755).map_err(io_err(out))?;
        cpio.char_dev("dev/console", 0o600, 5, 1)
            .map_err(io_err(out))?;
        for (path, entry) in all {
            match entry {
                None | Some(Entry::Dir) => cpio.dir(path, 0o755).map_err(io_err(out))?,
                Some(Entry::Symlink(target)) => cpio.symlink(path, target).map_err(io_err(out))?,
                Some(Entry::File { source, perm }) => {
                    let data = match source {
                        Source::Host(host) => fs::read(host).map_err(io_err(host))?,
                        Source::Bytes(bytes) => bytes.clone(),
                    };
                    cpio.file(path, *perm, &data).map_err(io_err(out))?;
                }
            }
        }
        cpio.finish().map_err(io_err(out))?;
        Ok(())
    }
}

/// Builds the initramfs at `out`: the base system, `files` (host path,
/// absolute guest path) and `script` as the scenario.
pub fn build(kernel: &Kernel, files: &[(PathBuf, String)], script: &str, out: &Path) -> Result<()> {
    let mut tree = Tree::default();

    let busybox = require_tool("busybox", "busybox")?;
    tree.host_file(&busybox, "bin/busybox")?;
    let applets = command_output(Command::new(&busybox).arg("--list-full"))?;
    let shadowed: BTreeSet<&str> = TOOLS.iter().map(|(name, _, _)| *name).collect();
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        let name = applet.rsplit('/').next().unwrap_or(applet);
        if !applet.is_empty() && applet != "bin/busybox" && !shadowed.contains(name) {
            tree.put(applet, Entry::Symlink("/bin/busybox".into()));
        }
    }
    for (tool, guest, package) in TOOLS {
        tree.host_file(&require_tool(tool, package)?, guest)?;
    }
    // iproute2 keeps named netns under /var/run/netns.
    tree.put("var/run", Entry::Symlink("/run".into()));
    for dir in ["proc", "sys", "run", "tmp", "root"] {
        tree.put(dir, Entry::Dir);
    }

    let modules_guest = format!("lib/modules/{}", kernel.release);
    tree.host_tree(&kernel.modules_dir(), &modules_guest)?;

    for (host, guest) in files {
        if !host.is_file() {
            return Err(Error::Io {
                path: host.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "VM file is not a regular file",
                ),
            });
        }
        tree.host_file(host, guest)?;
    }
    tree.bytes(SCENARIO, script.as_bytes().to_vec(), 0o755);
    tree.bytes("init", init_script().into_bytes(), 0o755);
    tree.write(out)
}

/// PID 1. The scenario's stdout and stderr go to their own serial ports
/// (ttyS1, ttyS2) in raw mode, so they reach the host byte for byte and
/// apart from kernel messages. `stty` sets attributes with TCSADRAIN,
/// which waits until a port has sent what was written: without that,
/// `poweroff -f` can cut the last output off.
fn init_script() -> String {
    let modules = MODULES.join(" ");
    format!(
        r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
stty -F /dev/ttyS1 raw -echo
stty -F /dev/ttyS2 raw -echo
if ! modprobe -a {modules}; then
  echo "@@VM-INIT-FAILED modprobe@@"
  poweroff -f
fi
ip link set lo up
cd /root
echo "{START_MARKER}"
sh /{SCENARIO} </dev/null >/dev/ttyS1 2>/dev/ttyS2
rc=$?
stty -F /dev/ttyS1 raw
stty -F /dev/ttyS2 raw
echo "{EXIT_MARKER} $rc@@"
stty -F /dev/console -echo
poweroff -f
"#
    )
}

/// What `ldd` says `binary` loads: the shared libraries and the dynamic
/// loader, by absolute path; nothing for a static or non-ELF file.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let mut head = [0u8; 4];
    let is_elf = fs::File::open(binary)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && head == *b"\x7fELF";
    if !is_elf {
        return Ok(Vec::new());
    }
    let ldd = require_tool("ldd", "libc-bin")?;
    let out = Command::new(ldd)
        .arg(binary)
        .output()
        .map_err(io_err(binary))?;
    // ldd exits non-zero for a static executable ("not a dynamic executable").
    if !out.status.success() {
        return Ok(Vec::new());
    }
    parse_ldd(&String::from_utf8_lossy(&out.stdout)).map_err(|library| Error::MissingLibrary {
        binary: binary.to_path_buf(),
        library,
    })
}

/// Paths from `ldd` output; `Err(name)` for a library it could not find.
fn parse_ldd(text: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let target = rest.split_whitespace().next().unwrap_or("");
                if target == "not" {
                    return Err(name.trim().to_string());
                }
                target
            }
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_libraries_and_loader_but_not_the_vdso() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f00)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f01)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert_eq!(
            parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err(),
            "libfoo.so.1"
        );
    }

    #[test]
    fn init_loads_every_module_at_once_and_marks_the_scenario() {
        let init = init_script();
        assert_eq!(init.matches("modprobe ").count(), 1, "one modprobe run");
        assert!(init.contains(&format!("modprobe -a {}", MODULES.join(" "))));
        let start = init.find(START_MARKER).unwrap();
        let scenario = init.find("sh /scenario").unwrap();
        let exit = init.find(EXIT_MARKER).unwrap();
        assert!(start < scenario && scenario < exit);
        assert!(init.trim_end().ends_with("poweroff -f"));
    }
}
