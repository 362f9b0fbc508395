//! Init's own log: short `init: ...` lines on the console (no time stamp,
//! the console is read live), and the same events time-stamped in the
//! appliance's log file on the config partition once it is mounted, beside
//! the daemon's lines. Each line opens the file, appends and closes it:
//! the daemon rotates the file under init's feet, and the partition must
//! be unmountable at any time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The log file, when there is one; a cheap handle shared by the tracing
/// layer and init's code.
#[derive(Clone, Default)]
pub(super) struct LogFile(Arc<Mutex<Option<PathBuf>>>);

impl LogFile {
    fn path(&self) -> std::sync::MutexGuard<'_, Option<PathBuf>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends to `path` from now on (creating it now, so that a file that
    /// cannot be written is known at once), instead of any file before.
    pub(super) fn open(&self, path: &Path) -> std::io::Result<()> {
        append(path, b"")?;
        *self.path() = Some(path.to_path_buf());
        Ok(())
    }

    pub(super) fn close(&self) {
        *self.path() = None;
    }

    /// Writes `text` as it is to the console and to the file: lines that
    /// must read exactly as other tools print them (config problems).
    pub(super) fn echo(&self, text: &str) {
        let _ = std::io::stderr().write_all(text.as_bytes());
        if let Some(path) = self.path().as_deref() {
            let _ = append(path, text.as_bytes());
        }
    }
}

fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(bytes)
}

/// A write to the log file; dropped when there is none.
pub(super) struct FileWriter(LogFile);

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(path) = self.0.path().as_deref() {
            append(path, buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = FileWriter;

    fn make_writer(&'a self) -> Self::Writer {
        FileWriter(self.clone())
    }
}

/// The console's line: `init: [warning: |error: ]message key=value ...`.
struct ConsoleFormat;

impl<S, N> FormatEvent<S, N> for ConsoleFormat
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
        write!(writer, "init: ")?;
        match *event.metadata().level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            _ => {}
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs init's subscriber: the console lines on stderr, and the log
/// file's. `RUST_LOG` filters (the kernel passes `RUST_LOG=debug` from its
/// command line to init's environment); `info` by default.
pub(super) fn install(file: &LogFile) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let console = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .event_format(ConsoleFormat);
    let to_file = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(file.clone());
    // Only fails if a subscriber is already set, which then logs instead.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(console)
        .with(to_file)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_gets_writes_only_while_open_and_follows_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::default();
        let mut writer = log.make_writer();
        writer.write_all(b"before\n").unwrap();
        let first = dir.path().join("a.log");
        log.open(&first).unwrap();
        writer.write_all(b"one\n").unwrap();
        let second = dir.path().join("b.log");
        log.open(&second).unwrap();
        writer.write_all(b"two\n").unwrap();
        log.close();
        writer.write_all(b"after\n").unwrap();
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "one\n");
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "two\n");
    }
}
