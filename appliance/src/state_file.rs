//! Files the daemon keeps its state in (the dataplane's ownership record,
//! the operator's real-server settings): written so that a crash leaves the
//! old file or the new one, never half of one, and never through a symlink
//! planted in the way.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a new temporary file beside it
/// (never one already there, nor through a symlink), synced, renamed over
/// `path`, the directory synced. Creates the directory if needed.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    // A leftover of this pid's earlier life (a crash between write and
    // rename) is ours to remove; anything else there is refused below.
    if std::fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_file()) {
        std::fs::remove_file(&tmp)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    file.write_all(bytes).and_then(|()| file.sync_all())?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}
