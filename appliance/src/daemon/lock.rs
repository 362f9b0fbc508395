//! One daemon per state directory. Two daemons sharing one would both
//! program the kernel's table from the same ownership record, each
//! removing what the other added; the second is refused at start, naming
//! the first. The lock is flock(2) on `STATE_DIR/lock`, held for the
//! daemon's life and released by the kernel however it ends; the file
//! holds the holder's pid, to name it.

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Held while the daemon runs.
#[derive(Debug)]
pub(super) struct StateLock {
    _file: Flock<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "another appliance daemon{} runs with the state directory {}: one daemon per state directory",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        .dir.display()
    )]
    Held { dir: PathBuf, pid: Option<u32> },
    #[error("locking {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Takes the lock of `dir` (created if missing) for this process.
pub(super) fn acquire(dir: &Path) -> Result<StateLock, Error> {
    let path = dir.join("lock");
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    // Not through a symlink: the directory may be shared with others.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(io)?;
    let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => locked,
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(Error::Held {
                dir: dir.to_path_buf(),
                pid,
            });
        }
        Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
    };
    locked.set_len(0).map_err(io)?;
    locked.rewind().map_err(io)?;
    write!(locked, "{}", std::process::id()).map_err(io)?;
    Ok(StateLock { _file: locked })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path()).unwrap();
        let e = acquire(dir.path()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "another appliance daemon (pid {}) runs with the state directory {}: one daemon per state directory",
                std::process::id(),
                dir.path().display()
            )
        );
        drop(first);
        assert!(acquire(dir.path()).is_ok(), "free again once released");
    }

    #[test]
    fn the_lock_file_is_not_opened_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("lock")).unwrap();
        assert!(acquire(dir.path()).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }
}
