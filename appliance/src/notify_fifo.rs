//! keepalived's notify FIFOs (`notify_fifo`, `vrrp_notify_fifo`,
//! `lvs_notify_fifo`): every VRRP state change and every real server and
//! quorum change as one line on a named pipe, for a reader that wants them
//! all without a process per event. The lines are keepalived's, byte for
//! byte (`vrrp/vrrp_notify.c`, `check/ipwrapper.c`); the `*_line`
//! functions make them.
//!
//! Writing never waits, as in keepalived (`core/notify.c`): the FIFO is
//! opened read-write and non-blocking, so it opens with no reader, and a
//! line goes into the pipe's buffer (64 KiB by default) whether someone
//! reads or not. A line that does not fit (nobody has read for a long
//! while) is dropped: keepalived drops it silently, we count it
//! (`appliance_notify_fifo_dropped_total`) and log the first of a run.
//! VRRP adverts never wait for a reader.
//!
//! A FIFO's script is started once the FIFO is open, with the FIFO's path
//! as its last argument, and runs until the daemon stops; keepalived does
//! not restart one that ends, nor do we (its end is logged).

use crate::config::model::{Global, NotifyFifo, Protocol, Service};
use crate::config::validate::notify_fifos;
use crate::metrics::Metrics;
use crate::script::accounts::Accounts;
use crate::script::check::Scripts;
use crate::script::{self, RunAs};
use crate::vrrp::machine::State;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// How long a FIFO's script has to end by itself once the FIFO is closed
/// (it reads what is left, then end of file), and again after SIGTERM,
/// before it is killed.
const SCRIPT_GRACE: Duration = Duration::from_secs(1);

/// keepalived's line for an instance entering `state` at `priority`:
/// `INSTANCE "VI_1" MASTER 150`.
pub(crate) fn instance_line(name: &str, state: State, priority: u8) -> String {
    format!("INSTANCE \"{name}\" {} {priority}\n", state_word(state))
}

/// keepalived's line for an instance's effective priority changing to
/// `priority` (`notify_priority_changes`), as master or otherwise:
/// `INSTANCE "VI_1" MASTER_PRIORITY 90`, `INSTANCE "VI_1" BACKUP_PRIORITY 90`.
pub(crate) fn priority_line(name: &str, master: bool, priority: u8) -> String {
    let word = if master { "MASTER" } else { "BACKUP" };
    format!("INSTANCE \"{name}\" {word}_PRIORITY {priority}\n")
}

/// keepalived's line for a master hearing a lower priority's advert, with
/// its own priority: `INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150`.
pub(crate) fn rx_lower_pri_line(name: &str, priority: u8) -> String {
    format!("INSTANCE \"{name}\" MASTER_RX_LOWER_PRI {priority}\n")
}

/// keepalived's line for a sync group entering `state`; a group's
/// priority is always 0: `GROUP "G1" BACKUP 0`.
pub(crate) fn group_line(name: &str, state: State) -> String {
    format!("GROUP \"{name}\" {} 0\n", state_word(state))
}

/// keepalived's line for a virtual server's quorum:
/// `VS [10.0.0.1]:tcp:80 UP`, `VS FWM 7 DOWN`.
pub(crate) fn virtual_server_line(service: Service, protocol: Protocol, up: bool) -> String {
    format!("VS {} {}\n", virtual_server(service, protocol), up_down(up))
}

/// keepalived's line for a real server going up or down:
/// `RS [10.0.1.1]:tcp:8080 [10.0.0.1]:tcp:80 DOWN`.
pub(crate) fn real_server_line(
    address: SocketAddr,
    service: Service,
    protocol: Protocol,
    up: bool,
) -> String {
    format!(
        "RS {} {} {}\n",
        trio(address, protocol),
        virtual_server(service, protocol),
        up_down(up)
    )
}

/// keepalived's state words; our `Initialize` after running is its STOP.
fn state_word(state: State) -> &'static str {
    match state {
        State::Master => "MASTER",
        State::Backup => "BACKUP",
        State::Fault => "FAULT",
        State::Initialize => "STOP",
    }
}

fn up_down(up: bool) -> &'static str {
    if up { "UP" } else { "DOWN" }
}

/// keepalived's `format_vs`.
fn virtual_server(service: Service, protocol: Protocol) -> String {
    match service {
        Service::Address(address) => trio(address, protocol),
        Service::Fwmark(mark) => format!("FWM {mark}"),
        // keepalived's format_vs: a group's virtual server has port 0.
        Service::Group(name) => format!("[{name}]:0"),
    }
}

/// keepalived's `inet_sockaddrtotrio`: `[ADDRESS]:PROTOCOL:PORT`, IPv6
/// too in brackets.
fn trio(address: SocketAddr, protocol: Protocol) -> String {
    let protocol = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    };
    format!("[{}]:{protocol}:{}", address.ip(), address.port())
}

/// A FIFO could not be made ready; the daemon goes on without it, as
/// keepalived does.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot make the FIFO: {0}")]
    Make(Errno),
    #[error("cannot open the FIFO: {0}")]
    Open(Errno),
    #[error("it exists and is not a FIFO")]
    NotFifo,
}

/// One open FIFO.
pub(crate) struct Fifo {
    path: PathBuf,
    /// `None` once closed.
    fd: Mutex<Option<OwnedFd>>,
    /// The daemon made it, and removes it when it stops.
    created: bool,
    /// Lines are being dropped (logged once per run of drops).
    dropping: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Fifo {
    /// Makes the FIFO if it is missing (mode 0644, given to `owner`), and
    /// opens it read-write and non-blocking, never following a link.
    fn open(path: &Path, owner: Option<(u32, u32)>, metrics: Arc<Metrics>) -> Result<Self, Error> {
        let perm = Mode::S_IRUSR | Mode::S_IWUSR | Mode::S_IRGRP | Mode::S_IROTH;
        let created = match nix::unistd::mkfifo(path, perm) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(Error::Make(e)),
        };
        if created && let Some((uid, gid)) = owner {
            let ours = (nix::unistd::geteuid(), nix::unistd::getegid());
            let uid = nix::unistd::Uid::from_raw(uid);
            let gid = nix::unistd::Gid::from_raw(gid);
            if (uid, gid) != ours
                && let Err(e) = nix::unistd::chown(path, Some(uid), Some(gid))
            {
                warn!(fifo = %path.display(), error = %e, "cannot give the FIFO its owner");
            }
        }
        let flags = OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW;
        let opened = nix::fcntl::open(path, flags, Mode::empty()).map_err(Error::Open);
        // keepalived would write into a regular file of that name; a FIFO
        // it is, or nothing.
        let checked = opened.and_then(|fd| match nix::sys::stat::fstat(&fd) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFIFO => {
                Ok(fd)
            }
            Ok(_) => Err(Error::NotFifo),
            Err(e) => Err(Error::Open(e)),
        });
        match checked {
            Ok(fd) => Ok(Self {
                path: path.to_path_buf(),
                fd: Mutex::new(Some(fd)),
                created,
                dropping: AtomicBool::new(false),
                metrics,
            }),
            Err(e) => {
                if created {
                    let _ = std::fs::remove_file(path);
                }
                Err(e)
            }
        }
    }

    /// Writes `line` whole, or drops it if the pipe has no room for it.
    fn write(&self, line: &str) {
        let guard = self.fd.lock().unwrap_or_else(|e| e.into_inner());
        let Some(fd) = guard.as_ref() else {
            return;
        };
        // A line is shorter than PIPE_BUF: it goes in whole or not at all.
        match nix::unistd::write(fd, line.as_bytes()) {
            Ok(_) => {
                if self.dropping.swap(false, Ordering::Relaxed) {
                    info!(fifo = %self.path.display(), "notify FIFO read again; lines are written");
                }
            }
            Err(e) => {
                self.metrics
                    .notify_fifo_dropped(&self.path.to_string_lossy());
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    warn!(
                        fifo = %self.path.display(),
                        error = %e,
                        "notify FIFO full (nobody reads it?): dropping lines until it has room"
                    );
                }
            }
        }
    }

    /// Removes a FIFO the daemon made (first, so that a reader reopening
    /// it in a loop cannot), then closes it: its reader gets what is left,
    /// then end of file.
    fn close(&self) {
        if self.created
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            warn!(fifo = %self.path.display(), error = %e, "cannot remove the notify FIFO");
        }
        self.fd.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// The FIFOs one side of the daemon writes to: the global one and its
/// own (once, if they are the same file).
#[derive(Clone, Default)]
pub struct Sink(Vec<Arc<Fifo>>);

impl Sink {
    /// Whether a line would go anywhere (so none is made for nothing).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn write(&self, line: &str) {
        for fifo in &self.0 {
            fifo.write(line);
        }
    }
}

/// A FIFO's running script.
struct Reader {
    fifo: PathBuf,
    pid: Option<nix::unistd::Pid>,
    task: JoinHandle<()>,
}

/// The daemon's notify FIFOs and their scripts, from start to stop.
pub(crate) struct Fifos {
    /// What the VRRP driver writes to: `notify_fifo`, `vrrp_notify_fifo`.
    pub(crate) vrrp: Sink,
    /// What the checker writes to: `notify_fifo`, `lvs_notify_fifo`.
    pub(crate) lvs: Sink,
    /// The settings they were opened with.
    settings: [Option<NotifyFifo>; 3],
    open: Vec<Arc<Fifo>>,
    readers: Vec<Reader>,
}

impl Fifos {
    /// Opens the FIFOs `global` names and starts their scripts. A FIFO
    /// that cannot be opened is logged and left out; the daemon goes on.
    pub(crate) fn open(global: &Global, scripts: &Scripts, metrics: &Arc<Metrics>) -> Self {
        let mut fifos = Self {
            vrrp: Sink::default(),
            lvs: Sink::default(),
            settings: settings(global),
            open: Vec::new(),
            readers: Vec::new(),
        };
        let accounts = Accounts::read();
        for (keyword, settings) in notify_fifos(global) {
            // One file, one FIFO: keepalived ignores a second keyword
            // naming the same path (and its script), so no line is
            // written twice.
            let fifo = match fifos.open.iter().find(|f| f.path == settings.path) {
                Some(fifo) => {
                    if settings.script.is_some() {
                        warn!(fifo = %settings.path.display(), keyword, "another notify FIFO keyword names this FIFO; its script is not started");
                    }
                    fifo.clone()
                }
                None => {
                    let owner = owner(settings, scripts, &accounts);
                    match Fifo::open(&settings.path, owner, metrics.clone()) {
                        Ok(fifo) => {
                            let fifo = Arc::new(fifo);
                            fifos.open.push(fifo.clone());
                            if let Some(command) = &settings.script {
                                fifos.start_script(keyword, &settings.path, command, scripts);
                            }
                            fifo
                        }
                        Err(e) => {
                            error!(fifo = %settings.path.display(), keyword, error = %e, "notify FIFO not used");
                            continue;
                        }
                    }
                }
            };
            let vrrp = keyword != "lvs_notify_fifo";
            let lvs = keyword != "vrrp_notify_fifo";
            for (wanted, sink) in [(vrrp, &mut fifos.vrrp), (lvs, &mut fifos.lvs)] {
                if wanted && !sink.0.iter().any(|f| Arc::ptr_eq(f, &fifo)) {
                    sink.0.push(fifo.clone());
                }
            }
        }
        fifos
    }

    /// Whether `global` asks for the FIFOs these are (a reload cannot move
    /// them: the scripts would restart and lose lines).
    pub(crate) fn same_settings(&self, global: &Global) -> bool {
        self.settings == settings(global)
    }

    fn start_script(
        &mut self,
        keyword: &str,
        fifo: &Path,
        command: &crate::config::model::Command,
        scripts: &Scripts,
    ) {
        let program = match scripts.program(command) {
            Ok(program) => program,
            Err(e) => {
                error!(keyword, error = %e, "notify FIFO script not started");
                return;
            }
        };
        let arg = fifo.to_string_lossy().into_owned();
        match script::spawn(&program, &[arg]) {
            Ok(mut child) => {
                let pid = child
                    .id()
                    .and_then(|pid| i32::try_from(pid).ok())
                    .map(nix::unistd::Pid::from_raw);
                info!(keyword, program = %program.path.display(), pid = ?pid, "notify FIFO script started");
                let keyword = keyword.to_string();
                let task = tokio::spawn(async move {
                    match child.wait().await {
                        Ok(status) => info!(keyword, %status, "notify FIFO script ended"),
                        Err(e) => warn!(keyword, error = %e, "notify FIFO script lost"),
                    }
                });
                self.readers.push(Reader {
                    fifo: fifo.to_path_buf(),
                    pid,
                    task,
                });
            }
            Err(e) => {
                error!(keyword, program = %program.path.display(), error = %e, "notify FIFO script not started");
            }
        }
    }

    /// Closes the FIFOs (what was written stays for their readers), then
    /// ends the scripts: each gets [`SCRIPT_GRACE`] to end at end of file,
    /// then SIGTERM to its process group and as long again, then SIGKILL.
    pub(crate) async fn close(self) {
        for fifo in &self.open {
            fifo.close();
        }
        for mut reader in self.readers {
            if tokio::time::timeout(SCRIPT_GRACE, &mut reader.task)
                .await
                .is_ok()
            {
                continue;
            }
            let Some(pid) = reader.pid else {
                reader.task.abort();
                continue;
            };
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGTERM);
            if tokio::time::timeout(SCRIPT_GRACE, &mut reader.task)
                .await
                .is_err()
            {
                warn!(fifo = %reader.fifo.display(), "notify FIFO script still running; killed");
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = reader.task.await;
            }
        }
    }
}

fn settings(global: &Global) -> [Option<NotifyFifo>; 3] {
    [
        global.notify_fifo.clone(),
        global.vrrp_notify_fifo.clone(),
        global.lvs_notify_fifo.clone(),
    ]
}

/// Whom a FIFO the daemon makes belongs to: its `user [group]`, else the
/// scripts' default user (keepalived's `get_default_script_user`); `None`
/// leaves it the daemon's.
fn owner(fifo: &NotifyFifo, scripts: &Scripts, accounts: &Accounts) -> Option<(u32, u32)> {
    match &fifo.user {
        Some(name) => {
            // Validation found the user and the group.
            let user = accounts.user(name)?;
            let gid = match &fifo.group {
                Some(group) => accounts.group(group)?,
                None => user.gid,
            };
            Some((user.uid, gid))
        }
        None => match scripts.default_user() {
            RunAs::User(identity) => Some((identity.uid, identity.gid)),
            RunAs::Daemon => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vrrp_lines_are_keepalived_s() {
        assert_eq!(
            instance_line("VI_1", State::Master, 150),
            "INSTANCE \"VI_1\" MASTER 150\n"
        );
        assert_eq!(
            instance_line("VI_1", State::Backup, 100),
            "INSTANCE \"VI_1\" BACKUP 100\n"
        );
        assert_eq!(
            instance_line("VI 2", State::Fault, 1),
            "INSTANCE \"VI 2\" FAULT 1\n"
        );
        // Stopping: keepalived's STOP, with the priority it had.
        assert_eq!(
            instance_line("VI_1", State::Initialize, 150),
            "INSTANCE \"VI_1\" STOP 150\n"
        );
        assert_eq!(group_line("G1", State::Backup), "GROUP \"G1\" BACKUP 0\n");
        assert_eq!(group_line("G1", State::Initialize), "GROUP \"G1\" STOP 0\n");
    }

    /// keepalived's event lines (`vrrp_notify.c`'s `notify_fifo`): the
    /// priority changes of `notify_priority_changes`, and a master hearing
    /// a lower priority, each with the instance's own priority.
    #[test]
    fn event_lines_are_keepalived_s() {
        assert_eq!(
            priority_line("VI_1", true, 90),
            "INSTANCE \"VI_1\" MASTER_PRIORITY 90\n"
        );
        assert_eq!(
            priority_line("VI_1", false, 120),
            "INSTANCE \"VI_1\" BACKUP_PRIORITY 120\n"
        );
        assert_eq!(
            rx_lower_pri_line("VI_1", 150),
            "INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 150\n"
        );
    }

    #[test]
    fn checker_lines_are_keepalived_s() {
        let vs = Service::Address("10.0.0.1:80".parse().unwrap());
        assert_eq!(
            virtual_server_line(vs.clone(), Protocol::Tcp, true),
            "VS [10.0.0.1]:tcp:80 UP\n"
        );
        assert_eq!(
            real_server_line("10.0.1.1:8080".parse().unwrap(), vs, Protocol::Tcp, false),
            "RS [10.0.1.1]:tcp:8080 [10.0.0.1]:tcp:80 DOWN\n"
        );
        let v6 = Service::Address("[2001:db8::1]:53".parse().unwrap());
        assert_eq!(
            real_server_line("[2001:db8::a]:53".parse().unwrap(), v6, Protocol::Udp, true),
            "RS [2001:db8::a]:udp:53 [2001:db8::1]:udp:53 UP\n"
        );
        let mark = Service::Fwmark(7);
        assert_eq!(
            virtual_server_line(mark.clone(), Protocol::Sctp, false),
            "VS FWM 7 DOWN\n"
        );
        assert_eq!(
            real_server_line("10.0.1.2:0".parse().unwrap(), mark, Protocol::Tcp, true),
            "RS [10.0.1.2]:tcp:0 FWM 7 UP\n"
        );
        assert_eq!(
            virtual_server_line(Service::Group("web".into()), Protocol::Tcp, true),
            "VS [web]:0 UP\n"
        );
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("notify-fifo-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_fifo_with_no_reader_takes_lines_until_full_then_drops_without_blocking() {
        let dir = temp_dir("full");
        let path = dir.join("fifo");
        let metrics = Arc::new(Metrics::new());
        let fifo = Fifo::open(&path, None, metrics.clone()).unwrap();
        assert!(fifo.created);
        let line = instance_line("VI_1", State::Master, 150);
        // More than a default pipe holds (64 KiB); each write returns.
        let start = std::time::Instant::now();
        for _ in 0..10_000 {
            fifo.write(&line);
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(fifo.dropping.load(Ordering::Relaxed));
        assert!(metrics.notify_fifo_dropped_count(&path.to_string_lossy()) > 0);
        // What it took waits for a reader, whole lines first.
        let reader = std::fs::File::open(&path).unwrap();
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(reader), &mut first).unwrap();
        assert_eq!(first, line);
        fifo.close();
        assert!(!path.exists(), "the FIFO the daemon made is removed");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_existing_fifo_is_used_and_kept_and_a_regular_file_is_refused() {
        let dir = temp_dir("existing");
        let path = dir.join("fifo");
        nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
        let fifo = Fifo::open(&path, None, Arc::new(Metrics::new())).unwrap();
        assert!(!fifo.created);
        fifo.close();
        assert!(path.exists(), "a FIFO someone else made stays");
        let file = dir.join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            Fifo::open(&file, None, Arc::new(Metrics::new())),
            Err(Error::NotFifo)
        ));
        assert!(file.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
