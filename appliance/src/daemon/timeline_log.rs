//! The daemon's failover timeline on disk: one JSON object per line,
//! appended, each the simulator's [`Event`] plus the wall-clock time
//! (`wall`, RFC 3339) beside the monotonic `at` (microseconds since the
//! daemon started), so runs on several nodes can be merged by wall clock
//! and measured by the monotonic clock.

use crate::rotating::RotatingFile;
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

/// Appends timeline events to a file, or drops them when none was given.
pub(super) struct TimelineLog {
    file: Option<RotatingFile>,
}

impl TimelineLog {
    /// Appends to `path`, rotated at `max_size` bytes.
    pub(super) fn open(path: Option<&Path>, max_size: Option<u64>) -> std::io::Result<Self> {
        let file = match path {
            Some(path) => Some(RotatingFile::open(path, max_size)?),
            None => None,
        };
        Ok(Self { file })
    }

    /// Writes one event as a line; each line is one `write` so concurrent
    /// readers never see half an event.
    pub(super) fn append(&mut self, event: &Event) -> std::io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let line = Line {
            wall: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            event,
        };
        let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        text.push('\n');
        file.write_all(text.as_bytes())
    }
}
