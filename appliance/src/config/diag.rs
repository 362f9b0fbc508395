//! Diagnostics: source positions, `FILE:LINE:COL: message` problems, and the
//! source map from model field paths to the positions they came from.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A place in a config file: 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub file: Arc<Path>,
    pub line: u32,
    pub col: u32,
}

impl Position {
    pub fn new(file: Arc<Path>, line: u32, col: u32) -> Self {
        Self { file, line, col }
    }

    /// The start of a file, for problems with the file as a whole.
    pub fn start_of(file: &Path) -> Self {
        Self {
            file: Arc::from(file),
            line: 1,
            col: 1,
        }
    }
}

/// A text's line starts, to turn byte offsets into positions without
/// rescanning the text for each: a TOML config has a position per key, and
/// counting lines from the top for every key made a 2,000-service config
/// take half a minute to load.
pub(crate) struct Lines<'t> {
    file: Arc<Path>,
    text: &'t str,
    /// Byte offset of each line's first byte.
    starts: Vec<usize>,
    /// The last position asked for, as byte offset and column: positions
    /// come in file order, so a column is counted from the previous one on
    /// the same line rather than from the line's start (a config may be
    /// one long line).
    last: (usize, u32),
}

impl<'t> Lines<'t> {
    pub(crate) fn new(file: Arc<Path>, text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file,
            text,
            starts,
            last: (0, 1),
        }
    }

    /// Position of byte `offset` (of the text's end if `offset` is past it
    /// or inside a character).
    pub(crate) fn position(&mut self, offset: usize) -> Position {
        let offset = if self.text.is_char_boundary(offset) {
            offset
        } else {
            self.text.len()
        };
        // starts[0] is 0, so at least one start is at or before `offset`.
        let line = self.starts.partition_point(|&start| start <= offset);
        let line_start = self.starts.get(line - 1).copied().unwrap_or(0);
        let (from, col) = match self.last {
            (at, col) if (line_start..=offset).contains(&at) => (at, col),
            _ => (line_start, 1),
        };
        let counted = self.text.get(from..offset).map_or(0, |s| s.chars().count());
        let col = col.saturating_add(u32::try_from(counted).unwrap_or(u32::MAX));
        self.last = (offset, col);
        Position {
            file: self.file.clone(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Position,
    pub message: String,
}

impl Diagnostic {
    pub fn new(pos: Position, message: impl Into<String>) -> Self {
        Self {
            pos,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// Every problem found in a config file, in file order. Displayed as one
/// `FILE:LINE:COL: message` line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Sorts by position, keeping the discovery order of problems at the
    /// same place.
    pub fn sorted(mut list: Vec<Diagnostic>) -> Self {
        list.sort_by(|a, b| a.pos.cmp(&b.pos));
        Self(list)
    }

    pub fn single(pos: Position, message: impl Into<String>) -> Self {
        Self(vec![Diagnostic::new(pos, message)])
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Where each part of the model came from, keyed by field path
/// (`vrrp_instance[0].priority`, `virtual_server[1].real_server[0]`): the
/// keyword's position for keepalived.conf, the key's for TOML. Validation
/// asks for a path and falls back to its closest recorded ancestor, so a
/// missing field points at its enclosing block.
#[derive(Debug, Clone)]
pub struct SourceMap {
    file: PathBuf,
    positions: HashMap<String, Position>,
    /// What loading found worth saying that is not an error: a keyword
    /// accepted with no effect, a default that differs from what the
    /// file's reader may assume.
    warnings: Vec<Diagnostic>,
}

impl SourceMap {
    pub fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            positions: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    pub fn warn(&mut self, warning: Diagnostic) {
        self.warnings.push(warning);
    }

    /// The warnings, in file order.
    pub fn warnings(&self) -> Vec<Diagnostic> {
        let mut list = self.warnings.clone();
        list.sort_by(|a, b| a.pos.cmp(&b.pos));
        list
    }

    /// Records where `path` was set; a repeated keyword overrides the
    /// earlier one, as its value does.
    pub fn insert(&mut self, path: impl Into<String>, pos: Position) {
        self.positions.insert(path.into(), pos);
    }

    /// Whether `path` was set.
    pub fn has(&self, path: &str) -> bool {
        self.positions.contains_key(path)
    }

    /// Every path that was set.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.positions.keys().map(String::as_str)
    }

    /// Takes `other`'s positions of the paths `keep` selects, and all its
    /// warnings (a config loaded from two files).
    pub fn absorb(&mut self, other: SourceMap, keep: impl Fn(&str) -> bool) {
        self.positions
            .extend(other.positions.into_iter().filter(|(k, _)| keep(k)));
        self.warnings.extend(other.warnings);
    }

    /// The position of `path`, or of its nearest recorded ancestor, or the
    /// start of the file.
    pub fn lookup(&self, path: &str) -> Position {
        let mut current = path;
        loop {
            if let Some(pos) = self.positions.get(current) {
                return pos.clone();
            }
            match parent_path(current) {
                Some(parent) => current = parent,
                None => return Position::start_of(&self.file),
            }
        }
    }

    /// The position of the first of `paths` recorded exactly, else
    /// [`SourceMap::lookup`] of the last: a field the two syntaxes place
    /// differently (keepalived's `user` keyword beside `script`, TOML's
    /// `user` key inside it).
    pub fn lookup_first(&self, paths: &[&str]) -> Position {
        paths
            .iter()
            .find_map(|p| self.positions.get(*p).cloned())
            .unwrap_or_else(|| self.lookup(paths.last().copied().unwrap_or_default()))
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> None.
fn parent_path(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    path.get(..cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines_and_columns() {
        let file: Arc<Path> = Arc::from(Path::new("f.toml"));
        let text = "a = 1\nbé = 2\n";
        let mut lines = Lines::new(file, text);
        let at = text.find("= 2").unwrap_or_default();
        // In file order, then back, then past the end and inside 'é'.
        for (offset, expected) in [
            (0, "f.toml:1:1"),
            (2, "f.toml:1:3"),
            (6, "f.toml:2:1"),
            (at, "f.toml:2:4"),
            (at + 2, "f.toml:2:6"),
            (4, "f.toml:1:5"),
            (at, "f.toml:2:4"),
            (text.len(), "f.toml:3:1"),
            (100, "f.toml:3:1"),
            (8, "f.toml:3:1"),
        ] {
            assert_eq!(lines.position(offset).to_string(), expected, "{offset}");
        }
    }

    #[test]
    fn many_positions_cost_no_rescan_of_the_text() {
        // 200,000 keys on 100,000 lines and then on one line: counted from
        // the top (or the line's start) for each, this took minutes.
        let line = "key = 1\n".repeat(100_000);
        let one_line = "k = 1, ".repeat(100_000);
        for text in [line, one_line] {
            let mut lines = Lines::new(Arc::from(Path::new("f.toml")), &text);
            let start = std::time::Instant::now();
            for offset in (0..text.len()).step_by(4) {
                lines.position(offset);
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(5));
        }
    }

    #[test]
    fn lookup_falls_back_to_ancestors() {
        let mut map = SourceMap::new(Path::new("k.conf"));
        map.insert(
            "vrrp_instance[1]",
            Position::new(Arc::from(Path::new("k.conf")), 7, 1),
        );
        assert_eq!(
            map.lookup("vrrp_instance[1].interface").to_string(),
            "k.conf:7:1"
        );
        assert_eq!(map.lookup("virtual_server[0]").to_string(), "k.conf:1:1");
    }

    #[test]
    fn display_is_one_line_per_problem() {
        let pos = Position::start_of(Path::new("x"));
        let d = Diagnostics(vec![
            Diagnostic::new(pos.clone(), "one"),
            Diagnostic::new(pos, "two"),
        ]);
        assert_eq!(d.to_string(), "x:1:1: one\nx:1:1: two\n");
    }
}
