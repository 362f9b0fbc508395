//! The file systems init mounts: the kernel's (proc, sysfs, devtmpfs) and
//! the tmpfs scratch space an initramfs system needs, the config partition,
//! and its unmount at shutdown. Also the console as standard input and
//! output, which the kernel may have failed to give PID 1.

use nix::errno::Errno;
use nix::mount::MsFlags;
use std::path::{Path, PathBuf};

/// What went wrong, naming the mount point.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    #[error("creating {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mounting {fstype} on {}: {source}", target.display())]
    Mount {
        fstype: String,
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("unmounting {}: {source}", target.display())]
    Unmount {
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("opening /dev/console: {0}")]
    Console(#[source] std::io::Error),
    #[error("making /dev/console the standard stream {fd}: {source}")]
    Dup {
        fd: i32,
        #[source]
        source: Errno,
    },
}

/// One mount: what, where, the flags and the file system's options.
struct Mount {
    fstype: &'static str,
    target: &'static str,
    flags: MsFlags,
    data: Option<&'static str>,
}

/// The kernel's file systems first (devtmpfs holds /dev/console), then
/// scratch space: /run for the daemon's state and socket, /tmp for scripts.
fn early_mounts() -> [Mount; 5] {
    let plain = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    [
        Mount {
            fstype: "proc",
            target: "/proc",
            flags: plain,
            data: None,
        },
        Mount {
            fstype: "sysfs",
            target: "/sys",
            flags: plain,
            data: None,
        },
        Mount {
            fstype: "devtmpfs",
            target: "/dev",
            flags: MsFlags::MS_NOSUID,
            data: Some("mode=0755"),
        },
        Mount {
            fstype: "tmpfs",
            target: "/run",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data: Some("mode=0755"),
        },
        Mount {
            fstype: "tmpfs",
            target: "/tmp",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data: Some("mode=1777"),
        },
    ]
}

fn mount(
    fstype: &str,
    source: &Path,
    target: &Path,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Error> {
    std::fs::create_dir_all(target).map_err(|source| Error::Create {
        path: target.to_path_buf(),
        source,
    })?;
    nix::mount::mount(Some(source), target, Some(fstype), flags, data).map_err(|source| {
        Error::Mount {
            fstype: fstype.to_string(),
            target: target.to_path_buf(),
            source,
        }
    })
}

/// Mounts proc, sysfs, devtmpfs and the tmpfs. One that fails does not
/// stop the others; one already mounted (the kernel may mount devtmpfs
/// itself) is fine.
pub(super) fn early() -> Vec<Error> {
    early_mounts()
        .iter()
        .filter_map(|m| {
            match mount(
                m.fstype,
                Path::new(m.fstype),
                Path::new(m.target),
                m.flags,
                m.data,
            ) {
                Err(Error::Mount {
                    source: Errno::EBUSY,
                    ..
                }) => None,
                other => other.err(),
            }
        })
        .collect()
}

/// Whether standard stream `fd` needs the console: closed, or on
/// /dev/null (where Rust's runtime puts a closed one before `main`).
fn needs_console(fd: i32) -> bool {
    match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
        Ok(target) => target == Path::new("/dev/null"),
        Err(_) => true,
    }
}

/// Opens /dev/console on whichever standard stream lacks it (the kernel
/// gives PID 1 the console only if the initramfs has the device node).
/// Needs /proc and /dev.
pub(super) fn console() -> Result<(), Error> {
    let missing: Vec<i32> = (0..=2).filter(|&fd| needs_console(fd)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let console = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
        .map_err(Error::Console)?;
    for fd in missing {
        let duped = match fd {
            0 => nix::unistd::dup2_stdin(&console),
            1 => nix::unistd::dup2_stdout(&console),
            _ => nix::unistd::dup2_stderr(&console),
        };
        duped.map_err(|source| Error::Dup { fd, source })?;
    }
    Ok(())
}

/// Mounts the config partition (FAT) at `target`. `flush` writes each
/// file out when it is closed, so that a power cut loses less of a log or
/// an edited config.
pub(super) fn config(device: &Path, target: &Path) -> Result<(), Error> {
    let flags = MsFlags::MS_NOATIME | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount("vfat", device, target, flags, Some("flush"))
}

/// Unmounts `target`; if something still holds it, remounts it read-only
/// so that at least nothing is left half written.
pub(super) fn unmount(target: &Path) -> Result<(), Error> {
    match nix::mount::umount(target) {
        Ok(()) => Ok(()),
        Err(Errno::EBUSY) => nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|source| Error::Unmount {
            target: target.to_path_buf(),
            source,
        }),
        Err(source) => Err(Error::Unmount {
            target: target.to_path_buf(),
            source,
        }),
    }
}
/// Dirty pages reach the disk within about two seconds instead of the
/// kernel's thirty: the only writes are the logs on the config partition,
/// and an appliance is often switched off at the plug.
pub(super) fn prompt_writeback() -> std::io::Result<()> {
    std::fs::write("/proc/sys/vm/dirty_expire_centisecs", "100")?;
    std::fs::write("/proc/sys/vm/dirty_writeback_centisecs", "100")
}
