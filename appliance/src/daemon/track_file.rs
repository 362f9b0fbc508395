//! keepalived's `track_file` on the system side: writing a file's
//! `init_file` value, reading a tracked file's value the way keepalived
//! reads it, and watching the files for changes. What a value does to an
//! instance is the VRRP core's business ([`crate::vrrp::machine::TrackKind::File`]);
//! this module only turns files into numbers.
//!
//! Watching uses inotify on each file's directory, as keepalived does, not
//! polling: a change is seen as soon as the writer closes the file (or
//! renames a new one into place), and an idle watch costs nothing. The
//! directory, not the file, is watched so that a file created, replaced by
//! `mv` or deleted after the start is followed too (a deleted or moved away
//! file reads as 0). The `notify` crate would add a dependency tree for the
//! one Linux call we need, which nix already wraps.

use super::plan::FilePlan;
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tracing::{debug, info, warn};

/// keepalived reads at most this much of a tracked file.
const READ_LIMIT: u64 = 127;

/// A file's content that gives no value: keepalived logs it and keeps the
/// previous one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadValue {
    #[error("{0} is out of range {min}..={max}", min = i32::MIN, max = i64::from(i32::MAX) + 1)]
    OutOfRange(String),
}

/// What reading a tracked file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reading {
    /// The value, and whether the file held a number at all (keepalived
    /// reads a missing, empty or non-numeric file as 0).
    Value { value: i64, numeric: bool },
    /// Nothing to act on: the previous value stands.
    Ignored(BadValue),
}

/// keepalived's reading of a tracked file's content: C's `strtol` with base
/// 0 on its first 127 bytes. Leading white space and a sign are skipped,
/// `0x` starts hexadecimal and a leading `0` octal (so `08` reads as 0),
/// and whatever follows the digits is ignored. Values outside the range of
/// keepalived's check are refused.
pub(crate) fn parse(text: &[u8]) -> Result<(i64, bool), BadValue> {
    let text = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |start| &text[start..]);
    let (negative, rest) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = match rest {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => (16, &rest[2..]),
        [b'0', ..] => (8, rest),
        _ => (10, rest),
    };
    let digits: Vec<u32> = digits
        .iter()
        .map_while(|&b| char::from(b).to_digit(radix))
        .collect();
    if digits.is_empty() {
        return Ok((0, false));
    }
    let mut magnitude: i128 = 0;
    for d in digits {
        magnitude = magnitude * i128::from(radix) + i128::from(d);
        if magnitude > i128::from(i64::MAX) + 1 {
            break;
        }
    }
    let value = if negative { -magnitude } else { magnitude };
    let range = i128::from(i32::MIN)..=i128::from(i32::MAX) + 1;
    if !range.contains(&value) {
        let shown = String::from_utf8_lossy(text)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        return Err(BadValue::OutOfRange(shown));
    }
    Ok((i64::try_from(value).unwrap_or_default(), true))
}

/// Reads `path` as keepalived does: a file that cannot be opened or read
/// reads as 0.
pub(crate) fn read(path: &Path) -> Reading {
    let mut buf = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(READ_LIMIT).read_to_end(&mut buf));
    if let Err(e) = read {
        debug!(file = %path.display(), error = %e, "track file unreadable: value 0");
        buf.clear();
    }
    match parse(&buf) {
        Ok((value, numeric)) => Reading::Value { value, numeric },
        Err(e) => Reading::Ignored(e),
    }
}

/// keepalived's `init_file`: at the start, write the value to a file that
/// does not exist, or (with `overwrite`) to a regular file that does;
/// a reload only creates missing files.
pub(crate) fn init(file: &FilePlan, reload: bool) {
    let Some(init) = file.init else {
        return;
    };
    match std::fs::metadata(&file.path) {
        Ok(_) if !init.overwrite || reload => return,
        Ok(meta) if !meta.is_file() => {
            warn!(track_file = %file.name, file = %file.path.display(), "init_file: not a regular file, left as it is");
            return;
        }
        _ => {}
    }
    let written = std::fs::File::create(&file.path)
        .and_then(|mut f| writeln!(f, "{}", init.value).and_then(|()| f.flush()));
    match written {
        Ok(()) => {
            info!(track_file = %file.name, file = %file.path.display(), value = init.value, "init_file written");
        }
        Err(e) => {
            warn!(track_file = %file.name, file = %file.path.display(), error = %e, "init_file could not be written");
        }
    }
}

/// The inotify descriptor, as tokio's reactor wants it.
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A change seen by the watch: the tracked file `name` holds `value` now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub name: String,
    pub value: i64,
}

/// One watched file: its name and where it really is.
#[derive(Debug, Clone)]
struct Watched {
    name: String,
    path: PathBuf,
    wd: WatchDescriptor,
    file_name: OsString,
}

/// The inotify watch over the tracked files' directories.
pub(crate) struct Watch {
    fd: AsyncFd<Fd>,
    files: Vec<Watched>,
}

impl Watch {
    /// Watches `files`. A file whose directory does not exist is not
    /// tracked (keepalived removes it with a config error): its instances
    /// go on as if they did not track it. Returns the watch and the files
    /// that are tracked, by name, with their resolved paths.
    pub(crate) fn new(files: &[FilePlan]) -> std::io::Result<(Self, Vec<(String, PathBuf)>)> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let mut watched = Vec::new();
        for file in files {
            let Some((dir, file_name)) = resolve(&file.path) else {
                warn!(track_file = %file.name, file = %file.path.display(), "the track file's directory does not exist: not tracked");
                continue;
            };
            let mask = AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_MOVED_TO;
            match inotify.add_watch(&dir, mask) {
                Ok(wd) => watched.push(Watched {
                    name: file.name.clone(),
                    path: dir.join(&file_name),
                    wd,
                    file_name,
                }),
                Err(e) => {
                    warn!(track_file = %file.name, dir = %dir.display(), error = %e, "the track file's directory cannot be watched: not tracked");
                }
            }
        }
        let tracked = watched
            .iter()
            .map(|w| (w.name.clone(), w.path.clone()))
            .collect();
        // SAFETY: the Inotify owns its descriptor and keeps it open,
        // unchanged, for as long as the AsyncFd that owns it.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(inotify), Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok((Self { fd, files: watched }, tracked))
    }

    /// Waits for changes to the watched files and returns them (one per
    /// tracked file that an event concerns; a file read with an unusable
    /// value is left out, logged).
    pub(crate) async fn changes(&mut self) -> std::io::Result<Vec<Change>> {
        loop {
            let mut ready = self.fd.readable().await?;
            let events = match ready.get_inner().0.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => {
                    ready.clear_ready();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let mut gone: HashMap<&str, bool> = HashMap::new();
            for event in &events {
                if event.mask.contains(AddWatchFlags::IN_ISDIR) {
                    continue;
                }
                let removed = event
                    .mask
                    .intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM);
                for file in self
                    .files
                    .iter()
                    .filter(|f| f.wd == event.wd && event.name.as_ref() == Some(&f.file_name))
                {
                    // The last event for a file decides.
                    gone.insert(file.name.as_str(), removed);
                }
            }
            let mut changes = Vec::new();
            for file in &self.files {
                let Some(&removed) = gone.get(file.name.as_str()) else {
                    continue;
                };
                if removed {
                    changes.push(Change {
                        name: file.name.clone(),
                        value: 0,
                    });
                    continue;
                }
                if let Some(value) = value_of(&file.name, &file.path) {
                    changes.push(Change {
                        name: file.name.clone(),
                        value,
                    });
                }
            }
            if !changes.is_empty() {
                return Ok(changes);
            }
        }
    }
}

/// Reads a tracked file and logs what is not a plain number; `None` when
/// the previous value stands.
pub(crate) fn value_of(name: &str, path: &Path) -> Option<i64> {
    match read(path) {
        Reading::Value { value, numeric } => {
            if !numeric && path.exists() {
                warn!(track_file = name, file = %path.display(), "the track file holds no number: value 0");
            }
            Some(value)
        }
        Reading::Ignored(e) => {
            warn!(track_file = name, file = %path.display(), error = %e, "track file value ignored: the previous one stands");
            None
        }
    }
}

/// The real directory of `path` (symbolic links resolved, as keepalived's
/// `realpath`) and the file's name in it; `None` if the directory does not
/// exist.
fn resolve(path: &Path) -> Option<(PathBuf, OsString)> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let file_name = real.file_name()?.to_os_string();
    let parent = match real.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(parent).ok()?;
    dir.is_dir().then_some((dir, file_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::InitFile;

    #[test]
    fn values_read_as_keepalived_reads_them() {
        let ok = |text: &str| parse(text.as_bytes()).unwrap();
        assert_eq!(ok("5\n"), (5, true));
        assert_eq!(ok("  -20 apples"), (-20, true));
        assert_eq!(ok("+7"), (7, true));
        assert_eq!(ok("0x1f"), (31, true));
        assert_eq!(ok("010"), (8, true));
        // strtol with base 0: a leading 0 is octal, so 8 is not a digit.
        assert_eq!(ok("08"), (0, true));
        assert_eq!(ok("0x"), (0, true));
        assert_eq!(ok(""), (0, false));
        assert_eq!(ok("up"), (0, false));
        assert_eq!(ok("2147483648"), (2_147_483_648, true));
        assert_eq!(ok("-2147483648"), (-2_147_483_648, true));
        assert_eq!(
            parse(b"-2147483649"),
            Err(BadValue::OutOfRange("-2147483649".into()))
        );
        assert!(parse(b"99999999999999999999999999").is_err());
    }

    #[test]
    fn a_missing_file_reads_as_zero_and_init_file_writes_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(
            read(&path),
            Reading::Value {
                value: 0,
                numeric: false
            }
        );
        let mut plan = FilePlan {
            name: "f".into(),
            path: path.clone(),
            init: Some(InitFile {
                value: -3,
                overwrite: false,
            }),
        };
        init(&plan, false);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "-3\n");
        std::fs::write(&path, "9").unwrap();
        init(&plan, false);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "9");
        plan.init = Some(InitFile {
            value: 4,
            overwrite: true,
        });
        init(&plan, true);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "9",
            "a reload does not overwrite"
        );
        init(&plan, false);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "4\n");
    }

    #[tokio::test]
    async fn the_watch_sees_writes_renames_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let plans = [
            FilePlan {
                name: "a".into(),
                path: dir.path().join("a"),
                init: None,
            },
            FilePlan {
                name: "lost".into(),
                path: dir.path().join("no/such/dir/f"),
                init: None,
            },
        ];
        let (mut watch, tracked) = Watch::new(&plans).unwrap();
        assert_eq!(tracked.len(), 1, "a missing directory is not tracked");
        let change = |value| {
            vec![Change {
                name: "a".into(),
                value,
            }]
        };
        std::fs::write(dir.path().join("other"), "1").unwrap();
        std::fs::write(dir.path().join("a"), "12\n").unwrap();
        assert_eq!(watch.changes().await.unwrap(), change(12));
        std::fs::write(dir.path().join("tmp"), "-4").unwrap();
        std::fs::rename(dir.path().join("tmp"), dir.path().join("a")).unwrap();
        assert_eq!(watch.changes().await.unwrap(), change(-4));
        std::fs::remove_file(dir.path().join("a")).unwrap();
        assert_eq!(watch.changes().await.unwrap(), change(0));
    }
}
