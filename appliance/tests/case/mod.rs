//! What the conformance-as-data tests share: reading a case file, whose
//! leading comment says what it shows.

use serde::de::DeserializeOwned;
use std::path::Path;

/// The case at `path`, parsed, and its leading comment joined into one
/// line (every case must start with one).
pub fn read<T: DeserializeOwned>(path: &Path) -> (T, String) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let case = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let what: Vec<&str> = text
        .lines()
        .map_while(|l| l.strip_prefix('#'))
        .map(str::trim)
        .collect();
    assert!(
        !what.is_empty(),
        "{}: a case starts with a comment saying what it shows",
        path.display()
    );
    (case, what.join(" "))
}
