//! The two config syntaxes as text: keepalived.conf (lexer, parser,
//! importer; includes refused, not read) and the native TOML, each then
//! validated. A config that loads converts to TOML (`appliance convert`)
//! and loads back equal.

use appliance::config::{self, Config, Format};
use std::path::Path;

pub fn keepalived_conf(data: &[u8]) {
    load(data, Path::new("fuzz.conf"), Format::Keepalived);
}

pub fn toml_config(data: &[u8]) {
    let path = Path::new("fuzz.toml");
    load(data, path, Format::Toml);
    // init applies the [network] table alone when the rest is invalid.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = config::load_network(path, text);
    }
}

/// Config files are UTF-8 (config::file refuses the rest).
fn load(data: &[u8], path: &Path, format: Format) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::load_text(path, text, format) {
        Ok(config) => converts_back(&config),
        Err(diagnostics) => drop(diagnostics.to_string()),
    }
}

fn converts_back(config: &Config) {
    let toml = config.to_toml().expect("a loaded config writes as TOML");
    let again = config::load_text(Path::new("converted.toml"), &toml, Format::Toml)
        .unwrap_or_else(|d| panic!("the converted config does not load:\n{d}\n{toml}"));
    assert_eq!(&again, config, "the converted config differs:\n{toml}");
}
