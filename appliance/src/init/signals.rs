//! The signals PID 1 acts on, read from a signalfd that the main loop
//! polls: SIGTERM powers off, SIGINT (Ctrl-Alt-Del once the kernel is told
//! not to reboot on it) reboots, SIGHUP reloads.
//!
//! The kernel drops a signal sent to PID 1 that has neither a handler nor
//! a block on it; blocked ones wait in the signalfd instead. Every thread
//! must block them, so [`Signals::block`] comes before any thread starts
//! (threads inherit the mask), and children get an empty mask back before
//! exec ([`super::supervise::spawn`]).

use super::{Power, Request};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tracing::error;

/// The signalfd; without one (the kernel refused it) init still runs, and
/// the console's `poweroff` and `reboot` still work.
pub(super) struct Signals(Option<SignalFd>);

impl Signals {
    /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and opens a
    /// non-blocking signalfd for them.
    pub(super) fn block() -> Self {
        let open = || -> Result<SignalFd, Errno> {
            let mut mask = SigSet::empty();
            for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
                mask.add(signal);
            }
            mask.thread_block()?;
            SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        };
        match open() {
            Ok(fd) => Self(Some(fd)),
            Err(e) => {
                error!(error = %e, "signals: no signalfd; SIGTERM and Ctrl-Alt-Del do nothing");
                Self(None)
            }
        }
    }

    /// The request of the next pending signal, if any.
    pub(super) fn poll(&self) -> Option<Request> {
        let fd = self.0.as_ref()?;
        loop {
            let info = fd.read_signal().ok()??;
            match Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) {
                Ok(Signal::SIGTERM) => return Some(Request::Power(Power::Off)),
                Ok(Signal::SIGINT) => return Some(Request::Power(Power::Reboot)),
                Ok(Signal::SIGHUP) => return Some(Request::Reload),
                _ => continue,
            }
        }
    }
}
