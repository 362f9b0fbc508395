//! keepalived.conf import: the lexer (tokens), the parser (statements,
//! blocks, includes) and the importer (statements to the native model).

pub(crate) mod importer;
pub(crate) mod keywords;
pub(crate) mod lexer;
pub(crate) mod parser;

use super::diag::{Diagnostic, SourceMap};
use super::model::Config;
use std::path::Path;

/// Reads keepalived.conf `path` (and its includes) into the model. The
/// model is complete even when problems were found, so that validation can
/// report its own findings alongside.
pub(crate) fn load(path: &Path) -> (Config, SourceMap, Vec<Diagnostic>) {
    let (statements, mut errors) = parser::parse_file(path);
    finish(path, &statements, &mut errors)
}

/// As [`load`], for keepalived.conf text said to come from `path`.
pub(crate) fn load_str(path: &Path, text: &str) -> (Config, SourceMap, Vec<Diagnostic>) {
    let (statements, mut errors) = parser::parse_str(path, text);
    finish(path, &statements, &mut errors)
}

/// As [`load_str`], reading no file: includes are refused (see
/// [`parser::parse_text`]).
pub(crate) fn load_text(path: &Path, text: &str) -> (Config, SourceMap, Vec<Diagnostic>) {
    let (statements, mut errors) = parser::parse_text(path, text);
    finish(path, &statements, &mut errors)
}

fn finish(
    path: &Path,
    statements: &[parser::Statement],
    errors: &mut Vec<Diagnostic>,
) -> (Config, SourceMap, Vec<Diagnostic>) {
    let mut map = SourceMap::new(path);
    let (config, import_errors) = importer::import(statements, &mut map);
    errors.extend(import_errors);
    (config, map, std::mem::take(errors))
}
