//! Where the daemon's log goes and how it reads there. Stderr is the log;
//! its form depends on what reads it:
//!
//! - a terminal: time-stamped lines in colour;
//! - journald (stderr is the stream named in `JOURNAL_STREAM`): no time
//!   stamp (the journal adds its own), no colour, and each line prefixed
//!   with its syslog priority (`<3>` for errors, sd-daemon(3)), so
//!   `journalctl -p err` finds the errors;
//! - anything else (a pipe, a file, `docker logs`): time-stamped lines
//!   without colour;
//! - `--log-format json`: one JSON object per event, with its fields, for
//!   log collectors.
//!
//! `--log-file` appends the same events to a file (rotated, see
//! [`crate::rotating`]), time-stamped, never in colour.

use crate::rotating::RotatingFile;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// How events are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people (time stamps and colour as the reader needs).
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// Setting up the log failed.
#[derive(Debug, thiserror::Error)]
#[error("opening the log file {}: {source}", path.display())]
pub struct Error {
    path: PathBuf,
    source: std::io::Error,
}

/// What stderr is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stderr {
    Terminal,
    Journal,
    Other,
}

impl Stderr {
    /// Looks at file descriptor 2 and the environment.
    pub fn detect() -> Self {
        let stderr = std::io::stderr();
        if journal_stream(std::env::var("JOURNAL_STREAM").ok().as_deref(), &stderr) {
            Self::Journal
        } else if stderr.is_terminal() && std::env::var_os("NO_COLOR").is_none() {
            Self::Terminal
        } else {
            Self::Other
        }
    }
}

/// True when `value` (`JOURNAL_STREAM`, "DEVICE:INODE") names `fd`: systemd
/// sets it for a service whose output goes to the journal, and a process
/// whose stderr was redirected since must not take it as its own.
fn journal_stream(value: Option<&str>, fd: &impl std::os::fd::AsFd) -> bool {
    let Some((dev, ino)) = value.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

/// The syslog priority of a level: err, warning, info, debug.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Formats an event as the journal's stream protocol wants it: every line
/// of it (an error may span several, a config's problems one per line)
/// carries the event's priority, and there is no time stamp.
struct JournalLines {
    inner: Format<Full, ()>,
}

impl<S, N> FormatEvent<S, N> for JournalLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut text = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut text), event)?;
        let prefix = priority(*event.metadata().level());
        for line in text.trim_end_matches('\n').split('\n') {
            writeln!(writer, "<{prefix}>{line}")?;
        }
        Ok(())
    }
}

/// The layer that writes [`JournalLines`] to `writer`.
fn journal_layer<S, W>(
    writer: W,
) -> tracing_subscriber::fmt::Layer<S, DefaultFields, JournalLines, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .event_format(JournalLines {
            inner: tracing_subscriber::fmt::format()
                .without_time()
                .with_level(false),
        })
        .fmt_fields(DefaultFields::new())
        .with_writer(writer)
}

/// Installs the global subscriber: stderr as [`Stderr::detect`] finds it,
/// and `file` (rotated at `max_size`) when given. `RUST_LOG` filters,
/// `info` by default.
pub fn init(format: LogFormat, file: Option<&Path>, max_size: Option<u64>) -> Result<(), Error> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let file = match file {
        Some(path) => Some(std::sync::Mutex::new(
            RotatingFile::open(path, max_size).map_err(|source| Error {
                path: path.to_path_buf(),
                source,
            })?,
        )),
        None => None,
    };
    type Boxed<S> = Box<dyn Layer<S> + Send + Sync>;
    let (stderr, file): (Boxed<_>, Option<Boxed<_>>) = match format {
        LogFormat::Json => (
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .boxed(),
            file.map(|f| {
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(f)
                    .boxed()
            }),
        ),
        LogFormat::Text => {
            let stderr = match Stderr::detect() {
                Stderr::Journal => journal_layer(std::io::stderr).boxed(),
                Stderr::Terminal => tracing_subscriber::fmt::layer()
                    .with_ansi(true)
                    .with_writer(std::io::stderr)
                    .boxed(),
                Stderr::Other => tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::io::stderr)
                    .boxed(),
            };
            let file = file.map(|f| {
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(f)
                    .boxed()
            });
            (stderr, file)
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file)
        .init();
    Ok(())
}

/// An error and its causes as one line, each cause said once: error types
/// here name their cause in their own message (so a log's `error = %e` is
/// whole) and also return it as their `source()` (so it can be inspected),
/// so a cause already in the text is not repeated.
/// Makes a panic a log event (in the log file and the journal, with the
/// thread and place), not only a line on stderr. The task or thread that
/// panicked ends; whoever supervises it decides what follows.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            location = %info.location().map(ToString::to_string).unwrap_or_default(),
            %what,
            "panicked"
        );
    }));
}

pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let said = e.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = e.source();
    }
    text
}

/// Writes `message` to stderr, as [`init`]'s stderr would show an error,
/// for what happens before or without the subscriber (the command line's
/// own errors).
pub fn eprint_error(message: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = match Stderr::detect() {
        Stderr::Journal => message
            .lines()
            .try_for_each(|line| writeln!(stderr, "<{}>error: {line}", priority(Level::ERROR))),
        _ => writeln!(stderr, "error: {}", message.trim_end()),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_names_the_descriptor_it_was_set_for() {
        let file = tempfile::tempfile().unwrap();
        let st = nix::sys::stat::fstat(&file).unwrap();
        let value = format!("{}:{}", st.st_dev, st.st_ino);
        assert!(journal_stream(Some(&value), &file));
        let other = tempfile::tempfile().unwrap();
        assert!(!journal_stream(Some(&value), &other), "another file");
        assert!(!journal_stream(None, &file));
        assert!(!journal_stream(Some("garbage"), &file));
        assert!(!journal_stream(Some("1:x"), &file));
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("status socket /run/x.sock: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("opening the config")]
    struct Adds(#[source] std::io::Error);

    #[test]
    fn a_chain_says_each_cause_once() {
        let gone = || std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            chain(&Repeats(gone())),
            "status socket /run/x.sock: No such file or directory (os error 2)"
        );
        assert_eq!(
            chain(&Adds(gone())),
            "opening the config: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn journal_lines_prefix_every_line_with_the_priority() {
        use tracing_subscriber::prelude::*;
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let layer = journal_layer(move || SharedBuf(sink.clone()));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(error = %"line one\nline two", "reload rejected");
            tracing::info!(instance = "VI_1", "state changed");
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("<3>"), "{text}");
        assert!(lines[0].contains("reload rejected"), "{text}");
        assert_eq!(lines[1], "<3>line two", "{text}");
        assert!(lines[2].starts_with("<6>"), "{text}");
        assert!(lines[2].contains("instance=\"VI_1\""), "{text}");
        assert!(!text.contains('\x1b'), "no colour: {text}");
    }

    struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
