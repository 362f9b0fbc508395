//! Files the appliance appends to for as long as it runs (its log, the
//! failover timeline), kept under a size: when a write would take the file
//! past the limit it is renamed to `FILE.1` (replacing the previous one)
//! and a new `FILE` begins. On the image's small config partition this is
//! what keeps a director that runs for months from filling it with adverts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `path` with `.1` appended: the previous generation.
pub(crate) fn previous(path: &Path) -> PathBuf {
    let mut old = path.as_os_str().to_owned();
    old.push(".1");
    PathBuf::from(old)
}

/// A file opened for appending, rotated at `limit` bytes (never, without
/// one). Each `write` lands whole in one generation, so a line written in
/// one call is never split across the two files.
#[derive(Debug)]
pub(crate) struct RotatingFile {
    path: PathBuf,
    limit: Option<u64>,
    file: File,
    len: u64,
}

impl RotatingFile {
    /// Opens `path` for appending; a symlink there is refused (ELOOP), so
    /// a link planted in a shared directory cannot make the daemon append
    /// to another file.
    pub(crate) fn open(path: &Path, limit: Option<u64>) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            limit,
            file,
            len,
        })
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(limit) = self.limit
            && self.len > 0
            && self.len + buf.len() as u64 > limit
        {
            std::fs::rename(&self.path, previous(&self.path))?;
            *self = Self::open(&self.path, self.limit)?;
        }
        self.file.write_all(buf)?;
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn a_symlink_in_place_of_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("appliance.log");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let e = RotatingFile::open(&path, None).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert_eq!(read(&victim), "keep");
    }

    #[test]
    fn a_write_that_would_pass_the_limit_starts_a_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        let mut file = RotatingFile::open(&path, Some(10)).unwrap();
        file.write_all(b"one\n").unwrap();
        assert_eq!(read(&path), "old\none\n", "8 bytes: under the limit");
        file.write_all(b"two\n").unwrap();
        assert_eq!(read(&path), "two\n");
        assert_eq!(read(&previous(&path)), "old\none\n");
        file.write_all(b"three\n").unwrap();
        file.write_all(b"four\n").unwrap();
        assert_eq!(read(&path), "four\n", "the oldest generation is dropped");
        assert_eq!(read(&previous(&path)), "two\nthree\n");
    }

    #[test]
    fn a_line_longer_than_the_limit_still_lands_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut file = RotatingFile::open(&path, Some(4)).unwrap();
        file.write_all(b"a long line\n").unwrap();
        assert_eq!(read(&path), "a long line\n");
    }

    #[test]
    fn without_a_limit_nothing_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut file = RotatingFile::open(&path, None).unwrap();
        for _ in 0..100 {
            file.write_all(b"0123456789\n").unwrap();
        }
        assert_eq!(read(&path).len(), 1100);
        assert!(!previous(&path).exists());
    }
}
