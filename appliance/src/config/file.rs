//! Reading a config file (either format, and each keepalived include) with
//! bounds: only a regular file, at most [`MAX_FILE_BYTES`], valid UTF-8.
//! A config path pointing at a FIFO would block a reload forever and one at
//! /dev/zero would fill memory; both are refused before a byte is read.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest config file read: ten times a keepalived.conf of 10,000
/// virtual servers with 4 real servers each.
pub(crate) const MAX_FILE_BYTES: u64 = 64 << 20;

/// Why a config file was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file (a {0}): configs are read from files only")]
    NotAFile(&'static str),
    #[error("{0} bytes, more than the {MAX_FILE_BYTES} a config file may hold")]
    TooLarge(u64),
    #[error("not valid UTF-8")]
    NotUtf8,
}

/// Reads `path` as a config file. The open does not block (a FIFO with no
/// writer would) and the type is checked on the opened file, so nothing
/// can swap it between the check and the read.
pub(crate) fn read(path: &Path) -> Result<String, Error> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "directory"
        } else if kind.is_fifo() {
            "FIFO"
        } else if kind.is_char_device() {
            "character device"
        } else if kind.is_block_device() {
            "block device"
        } else if kind.is_socket() {
            "socket"
        } else {
            "special file"
        };
        return Err(Error::NotAFile(what));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::TooLarge(meta.len()));
    }
    // A file may grow between the stat and the read: read no further.
    let mut bytes = Vec::new();
    File::take(file, MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > MAX_FILE_BYTES {
        return Err(Error::TooLarge(len));
    }
    String::from_utf8(bytes).map_err(|_| Error::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.conf");
        std::fs::write(&path, "global_defs {\n}\n").unwrap();
        assert_eq!(read(&path).unwrap(), "global_defs {\n}\n");
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for (path, what) in [
            (fifo.as_path(), "FIFO"),
            (Path::new("/dev/zero"), "character device"),
            (dir.path(), "directory"),
        ] {
            let e = read(path).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("not a regular file (a {what}): configs are read from files only"),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn an_oversized_file_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.conf");
        let file = File::create(&path).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert_eq!(
            read(&path).unwrap_err().to_string(),
            format!(
                "{} bytes, more than the {MAX_FILE_BYTES} a config file may hold",
                MAX_FILE_BYTES + 1
            )
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.conf");
        std::fs::write(&path, b"vrrp_instance \xff {\n").unwrap();
        assert_eq!(read(&path).unwrap_err().to_string(), "not valid UTF-8");
    }
}
