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

    /// Position of byte `offset` in `text`.
    pub fn from_offset(file: Arc<Path>, text: &str, offset: usize) -> Self {
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Self {
            file,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
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
}

impl SourceMap {
    pub fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            positions: HashMap::new(),
        }
    }

    /// Records where `path` was set; a repeated keyword overrides the
    /// earlier one, as its value does.
    pub fn insert(&mut self, path: impl Into<String>, pos: Position) {
        self.positions.insert(path.into(), pos);
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
        assert_eq!(
            Position::from_offset(file.clone(), text, 0).to_string(),
            "f.toml:1:1"
        );
        let at = text.find("= 2").unwrap_or_default();
        assert_eq!(
            Position::from_offset(file, text, at).to_string(),
            "f.toml:2:4"
        );
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
