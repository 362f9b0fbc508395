//! The daemon's failover timeline on disk: one JSON object per line,
//! appended, each the simulator's [`Event`] plus the wall-clock time
//! (`wall`, RFC 3339) beside the monotonic `at` (microseconds since the
//! daemon started), so runs on several nodes can be merged by wall clock
//! and measured by the monotonic clock. It also keeps the recent events
//! the status page draws ([`History`]).

use crate::rotating::RotatingFile;
use crate::status_page::history::History;
use crate::timeline::Event;
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

#[derive(Serialize)]
struct Line<'a> {
    wall: String,
    #[serde(flatten)]
    event: &'a Event,
}

/// Appends timeline events to a file (when one was given) and to the
/// status page's history.
pub(super) struct TimelineLog {
    file: Option<RotatingFile>,
    history: History,
}

impl TimelineLog {
    /// Appends to `path`, rotated at `max_size` bytes.
    pub(super) fn open(path: Option<&Path>, max_size: Option<u64>) -> std::io::Result<Self> {
        let file = match path {
            Some(path) => Some(RotatingFile::open(path, max_size)?),
            None => None,
        };
        Ok(Self {
            file,
            history: History::default(),
        })
    }

    /// The recent events, shared with the status page.
    pub(super) fn history(&self) -> History {
        self.history.clone()
    }

    /// Writes one event as a line; each line is one `write` so concurrent
    /// readers never see half an event.
    pub(super) fn append(&mut self, event: &Event) -> std::io::Result<()> {
        let now = SystemTime::now();
        self.history.record(event, now);
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let line = Line {
            wall: humantime::format_rfc3339_micros(now).to_string(),
            event,
        };
        let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        text.push('\n');
        file.write_all(text.as_bytes())
    }
}
