//! Configuration: the native model (serde, TOML on disk), the keepalived.conf
//! importer, validation, and the diagnostics that point at problems.
//!
//! Format detection is by file name: a path ending in `.toml` is the native
//! TOML format; anything else (`keepalived.conf`, `*.conf`, no extension) is
//! read as keepalived.conf.

pub mod diag;
pub mod keepalived;
pub mod model;
mod toml_load;
pub mod validate;

pub use diag::{Diagnostic, Diagnostics, Position, SourceMap};
pub use model::Config;

use std::path::Path;

/// The two config syntaxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The appliance's own TOML (see [`model`]).
    Toml,
    /// keepalived.conf, the subset the importer supports.
    Keepalived,
}

impl Format {
    /// `.toml` (any case) is TOML; everything else is keepalived.conf.
    pub fn detect(path: &Path) -> Self {
        match path.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Self::Toml,
            _ => Self::Keepalived,
        }
    }
}

/// Loads, parses and validates a config file in either format. On failure
/// the diagnostics list every problem found, in file order.
pub fn load_file(path: &Path) -> Result<Config, Diagnostics> {
    match Format::detect(path) {
        Format::Keepalived => {
            let (config, map, errors) = keepalived::load(path);
            finish(config, &map, errors)
        }
        Format::Toml => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Diagnostics::single(Position::start_of(path), format!("cannot read {}: {e}", path.display()))
            })?;
            load_str(path, &text, Format::Toml)
        }
    }
}

/// As [`load_file`] for `text` said to come from `path` (keepalived
/// includes are resolved relative to `path`'s directory).
pub fn load_str(path: &Path, text: &str, format: Format) -> Result<Config, Diagnostics> {
    match format {
        Format::Keepalived => {
            let (config, map, errors) = keepalived::load_str(path, text);
            finish(config, &map, errors)
        }
        Format::Toml => {
            let (config, map) = toml_load::load(path, text).map_err(Diagnostics::sorted)?;
            finish(config, &map, Vec::new())
        }
    }
}

fn finish(config: Config, map: &SourceMap, mut errors: Vec<Diagnostic>) -> Result<Config, Diagnostics> {
    errors.extend(validate::validate(&config, map));
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(Diagnostics::sorted(errors))
    }
}

impl Config {
    /// The configuration in the native TOML format; loading the output
    /// gives back an equal `Config`.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}
