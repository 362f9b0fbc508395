//! Whether a script is safe to run as the user it runs as: keepalived's
//! `check_script_secure`. Whoever can change the file, or a directory on
//! the way to it, can make the daemon run their code as that user. So every
//! entry the kernel walks to reach the file (each directory, each symbolic
//! link and what it points to, the file itself) must be owned by root or
//! by the script's user and be writable by no one else: neither by its
//! group (unless that is root's group 0) nor by everyone. A directory with
//! the sticky bit (/tmp) is exempt from the write rule, since no one may
//! replace another's entries in it.
//!
//! For a script run as root this is keepalived's rule exactly (the owner
//! must be root); keepalived checks non-root scripts not at all, we check
//! them with their user as a trusted owner.
//!
//! The file system is behind [`Fs`], so the rules are tested without one.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// What a walk needs to know of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits with set-user-id, set-group-id and sticky (07777).
    pub mode: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

const SET_UID: u32 = 0o4000;
const SET_GID: u32 = 0o2000;
const STICKY: u32 = 0o1000;
const GROUP_WRITE: u32 = 0o020;
const OTHER_WRITE: u32 = 0o002;
const USER_EXEC: u32 = 0o100;
const GROUP_EXEC: u32 = 0o010;
const ANY_EXEC: u32 = 0o111;

/// Linux's limit on symbolic links followed in one lookup (MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// The file system as the checks see it.
pub(crate) trait Fs {
    /// The entry itself (a link is not followed).
    fn lstat(&self, path: &Path) -> io::Result<Meta>;
    /// What the entry leads to (links followed).
    fn stat(&self, path: &Path) -> io::Result<Meta>;
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
}

/// The machine's file system.
pub(crate) struct RealFs;

fn meta(m: &std::fs::Metadata) -> Meta {
    use std::os::unix::fs::MetadataExt;
    let t = m.file_type();
    Meta {
        kind: if t.is_symlink() {
            Kind::Symlink
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else {
            Kind::Other
        },
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode() & 0o7777,
    }
}

impl Fs for RealFs {
    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        std::fs::symlink_metadata(path).map(|m| meta(&m))
    }

    fn stat(&self, path: &Path) -> io::Result<Meta> {
        std::fs::metadata(path).map(|m| meta(&m))
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }
}

/// Why an entry lets someone else change the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Why {
    /// Owned by neither root nor the script's user.
    Owner(u32),
    /// Writable by this group (not root's).
    Group(u32),
    /// Writable by everyone.
    Everyone,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Owner(uid) => write!(f, "owned by uid {uid}"),
            Why::Group(gid) => write!(f, "writable by group {gid}"),
            Why::Everyone => write!(f, "writable by everyone"),
        }
    }
}

/// Why a script failed the check.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Problem {
    #[error("{} is {why}", component.display())]
    Insecure { component: PathBuf, why: Why },
    #[error("{}: {error}", component.display())]
    Unreadable { component: PathBuf, error: String },
    #[error("{} is not a directory", component.display())]
    NotADirectory { component: PathBuf },
    #[error("{} is not a regular file", component.display())]
    NotAFile { component: PathBuf },
    #[error("{}: too many symbolic links", component.display())]
    Loop { component: PathBuf },
    #[error("{} is not an absolute path", path.display())]
    Relative { path: PathBuf },
}

/// Whether `meta` lets someone other than root and `user` change what it
/// names (an entry of a script run as `user`).
fn judge(meta: &Meta, user: u32) -> Option<Why> {
    if meta.uid != 0 && meta.uid != user {
        return Some(Why::Owner(meta.uid));
    }
    // A link's own mode means nothing: only its owner may change it, and
    // renaming it is the directory's business.
    let guarded = meta.kind == Kind::Symlink || (meta.kind == Kind::Dir && meta.mode & STICKY != 0);
    if guarded {
        None
    } else if meta.mode & OTHER_WRITE != 0 {
        Some(Why::Everyone)
    } else if meta.mode & GROUP_WRITE != 0 && meta.gid != 0 {
        Some(Why::Group(meta.gid))
    } else {
        None
    }
}

/// Whether the file gives whoever runs it root's user or group (set-id
/// root): keepalived protects such a script as one run as root.
pub(crate) fn raises_to_root(file: &Meta) -> bool {
    (file.uid == 0 && file.mode & SET_UID != 0 && file.mode & USER_EXEC != 0)
        || (file.gid == 0 && file.mode & SET_GID != 0 && file.mode & GROUP_EXEC != 0)
}

enum Step {
    Parent,
    Name(OsString),
}

fn steps(path: &Path) -> impl Iterator<Item = Step> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(Step::Name(name.to_os_string())),
        Component::ParentDir => Some(Step::Parent),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// Walks `path` as the kernel resolves it, judging every entry for a
/// script run as `user`; the first problem stops the walk.
pub(crate) fn check(path: &Path, user: u32, fs: &impl Fs) -> Result<(), Problem> {
    if !path.is_absolute() {
        return Err(Problem::Relative {
            path: path.to_path_buf(),
        });
    }
    let unreadable = |component: &Path, e: io::Error| Problem::Unreadable {
        component: component.to_path_buf(),
        error: e.to_string(),
    };
    let look = |entry: &Path| -> Result<Meta, Problem> {
        let meta = fs.lstat(entry).map_err(|e| unreadable(entry, e))?;
        match judge(&meta, user) {
            Some(why) => Err(Problem::Insecure {
                component: entry.to_path_buf(),
                why,
            }),
            None => Ok(meta),
        }
    };
    let mut at = PathBuf::from("/");
    let mut kind = look(&at)?.kind;
    let mut pending: VecDeque<Step> = steps(path).collect();
    let mut links = 0;
    while let Some(step) = pending.pop_front() {
        if kind != Kind::Dir {
            return Err(Problem::NotADirectory { component: at });
        }
        let name = match step {
            Step::Parent => {
                at.pop();
                continue;
            }
            Step::Name(name) => name,
        };
        let entry = at.join(name);
        let meta = look(&entry)?;
        if meta.kind == Kind::Symlink {
            links += 1;
            if links > MAX_LINKS {
                return Err(Problem::Loop { component: entry });
            }
            let target = fs.read_link(&entry).map_err(|e| unreadable(&entry, e))?;
            if target.is_absolute() {
                at = PathBuf::from("/");
            }
            for step in steps(&target).collect::<Vec<_>>().into_iter().rev() {
                pending.push_front(step);
            }
            // `at` is still the link's directory.
            continue;
        }
        at = entry;
        kind = meta.kind;
    }
    if kind == Kind::File {
        Ok(())
    } else {
        Err(Problem::NotAFile { component: at })
    }
}

/// The first executable regular file named `name` in the directories of
/// `path` (a `PATH` value), as execvp(3) would run it.
pub(crate) fn search(name: &str, path: &str, fs: &impl Fs) -> Option<PathBuf> {
    path.split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| {
            fs.stat(candidate)
                .is_ok_and(|m| m.kind == Kind::File && m.mode & ANY_EXEC != 0)
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A file system of entries given by hand.
    #[derive(Default)]
    pub(crate) struct FakeFs {
        entries: HashMap<PathBuf, (Meta, Option<PathBuf>)>,
    }

    impl FakeFs {
        /// A tree with the usual root-owned /, /usr, /usr/bin, /tmp (sticky).
        pub(crate) fn system() -> Self {
            let mut fs = Self::default();
            fs.dir("/", 0, 0o755)
                .dir("/usr", 0, 0o755)
                .dir("/usr/bin", 0, 0o755)
                .dir("/tmp", 0, 0o1777)
                .file("/usr/bin/true", 0, 0o755)
                .link("/bin", "usr/bin");
            fs
        }

        fn put(&mut self, path: &str, kind: Kind, uid: u32, mode: u32) -> &mut Self {
            let meta = Meta {
                kind,
                uid,
                gid: uid,
                mode,
            };
            self.entries.insert(path.into(), (meta, None));
            self
        }

        pub(crate) fn dir(&mut self, path: &str, uid: u32, mode: u32) -> &mut Self {
            self.put(path, Kind::Dir, uid, mode)
        }

        pub(crate) fn file(&mut self, path: &str, uid: u32, mode: u32) -> &mut Self {
            self.put(path, Kind::File, uid, mode)
        }

        pub(crate) fn link(&mut self, path: &str, target: &str) -> &mut Self {
            self.put(path, Kind::Symlink, 0, 0o777);
            if let Some(entry) = self.entries.get_mut(Path::new(path)) {
                entry.1 = Some(target.into());
            }
            self
        }

        /// Sets an entry's group and mode.
        pub(crate) fn group(&mut self, path: &str, gid: u32, mode: u32) -> &mut Self {
            if let Some((meta, _)) = self.entries.get_mut(Path::new(path)) {
                meta.gid = gid;
                meta.mode = mode;
            }
            self
        }
    }

    fn missing() -> io::Error {
        io::Error::from(io::ErrorKind::NotFound)
    }

    impl Fs for FakeFs {
        fn lstat(&self, path: &Path) -> io::Result<Meta> {
            self.entries.get(path).map(|e| e.0).ok_or_else(missing)
        }

        fn stat(&self, path: &Path) -> io::Result<Meta> {
            let mut at = PathBuf::from("/");
            let mut pending: VecDeque<Step> = steps(path).collect();
            let mut links = 0;
            while let Some(step) = pending.pop_front() {
                let Step::Name(name) = step else {
                    at.pop();
                    continue;
                };
                let entry = at.join(name);
                match &self.entries.get(&entry).ok_or_else(missing)?.1 {
                    Some(target) => {
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(missing());
                        }
                        if target.is_absolute() {
                            at = PathBuf::from("/");
                        }
                        for step in steps(target).collect::<Vec<_>>().into_iter().rev() {
                            pending.push_front(step);
                        }
                    }
                    None => at = entry,
                }
            }
            self.entries.get(&at).map(|e| e.0).ok_or_else(missing)
        }

        fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
            self.entries
                .get(path)
                .and_then(|e| e.1.clone())
                .ok_or_else(missing)
        }
    }

    fn insecure(component: &str, why: Why) -> Result<(), Problem> {
        Err(Problem::Insecure {
            component: component.into(),
            why,
        })
    }

    #[test]
    fn a_root_owned_path_is_safe_for_root_through_links() {
        let fs = FakeFs::system();
        assert_eq!(check(Path::new("/usr/bin/true"), 0, &fs), Ok(()));
        assert_eq!(check(Path::new("/bin/true"), 0, &fs), Ok(()));
        assert_eq!(check(Path::new("/usr/bin/../bin/true"), 0, &fs), Ok(()));
    }

    #[test]
    fn writable_files_and_directories_are_named() {
        let mut fs = FakeFs::system();
        fs.dir("/opt", 0, 0o777).file("/opt/notify", 0, 0o755);
        assert_eq!(
            check(Path::new("/opt/notify"), 0, &fs),
            insecure("/opt", Why::Everyone)
        );
        fs.dir("/opt", 0, 0o755).group("/opt/notify", 50, 0o775);
        assert_eq!(
            check(Path::new("/opt/notify"), 0, &fs),
            insecure("/opt/notify", Why::Group(50))
        );
        // Root's group may write.
        fs.group("/opt/notify", 0, 0o775);
        assert_eq!(check(Path::new("/opt/notify"), 0, &fs), Ok(()));
    }

    #[test]
    fn a_sticky_directory_is_safe_but_a_file_in_it_must_be_owned() {
        let mut fs = FakeFs::system();
        fs.file("/tmp/mine", 0, 0o755)
            .file("/tmp/theirs", 1000, 0o755);
        assert_eq!(check(Path::new("/tmp/mine"), 0, &fs), Ok(()));
        assert_eq!(
            check(Path::new("/tmp/theirs"), 0, &fs),
            insecure("/tmp/theirs", Why::Owner(1000))
        );
        // Its owner may run it.
        assert_eq!(check(Path::new("/tmp/theirs"), 1000, &fs), Ok(()));
        assert_eq!(
            check(Path::new("/tmp/theirs"), 1001, &fs),
            insecure("/tmp/theirs", Why::Owner(1000))
        );
    }

    #[test]
    fn a_link_into_a_writable_directory_is_followed() {
        let mut fs = FakeFs::system();
        fs.dir("/home", 0, 0o755)
            .dir("/home/u", 1000, 0o755)
            .file("/home/u/notify", 1000, 0o755)
            .link("/usr/bin/notify", "/home/u/notify");
        assert_eq!(
            check(Path::new("/usr/bin/notify"), 0, &fs),
            insecure("/home/u", Why::Owner(1000))
        );
    }

    #[test]
    fn missing_and_odd_paths_are_problems() {
        let mut fs = FakeFs::system();
        assert_eq!(
            check(Path::new("/usr/bin/missing"), 0, &fs),
            Err(Problem::Unreadable {
                component: "/usr/bin/missing".into(),
                error: missing().to_string()
            })
        );
        assert_eq!(
            check(Path::new("/usr/bin/true/x"), 0, &fs),
            Err(Problem::NotADirectory {
                component: "/usr/bin/true".into()
            })
        );
        assert_eq!(
            check(Path::new("/usr/bin"), 0, &fs),
            Err(Problem::NotAFile {
                component: "/usr/bin".into()
            })
        );
        assert_eq!(
            check(Path::new("bin/true"), 0, &fs),
            Err(Problem::Relative {
                path: "bin/true".into()
            })
        );
        fs.link("/usr/bin/a", "b").link("/usr/bin/b", "a");
        assert_eq!(
            check(Path::new("/usr/bin/a"), 0, &fs),
            Err(Problem::Loop {
                component: "/usr/bin/a".into()
            })
        );
    }

    #[test]
    fn set_id_root_files_count_as_root() {
        let file = |mode| Meta {
            kind: Kind::File,
            uid: 0,
            gid: 0,
            mode,
        };
        assert!(raises_to_root(&file(0o4755)));
        assert!(raises_to_root(&file(0o2755)));
        assert!(!raises_to_root(&file(0o755)));
        assert!(!raises_to_root(&Meta {
            uid: 1000,
            gid: 1000,
            ..file(0o6755)
        }));
    }

    #[test]
    fn search_finds_the_first_executable_file() {
        let mut fs = FakeFs::system();
        fs.dir("/usr/local", 0, 0o755)
            .dir("/usr/local/bin", 0, 0o755)
            .file("/usr/local/bin/true", 0, 0o644);
        assert_eq!(
            search("true", "relative:/usr/local/bin:/bin:/usr/bin", &fs),
            Some(PathBuf::from("/bin/true"))
        );
        assert_eq!(search("missing", "/usr/bin", &fs), None);
    }
}
