//! Loading the native TOML format, with the position of every key so that
//! validation problems can point into the file.

use super::diag::{Diagnostic, Position, SourceMap};
use super::model::Config;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Parses `text` (the contents of `path`). A syntax or type error stops the
/// parse (serde reports the first one); its position comes from the TOML
/// parser's span.
pub fn load(path: &Path, text: &str) -> Result<(Config, SourceMap), Vec<Diagnostic>> {
    let file: Arc<Path> = Arc::from(path);
    let error = |e: toml::de::Error| {
        let pos = match e.span() {
            Some(span) => Position::from_offset(file.clone(), text, span.start),
            None => Position::start_of(path),
        };
        vec![Diagnostic::new(pos, e.message().trim().replace('\n', " "))]
    };
    let tree = DeTable::parse(text).map_err(error)?;
    let config: Config = toml::from_str(text).map_err(error)?;
    let mut map = SourceMap::new(path);
    walk_table(tree.get_ref(), "", &file, text, &mut map);
    Ok((config, map))
}

fn walk_table(
    table: &DeTable<'_>,
    prefix: &str,
    file: &Arc<Path>,
    text: &str,
    map: &mut SourceMap,
) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        let key_pos = Position::from_offset(file.clone(), text, key.span().start);
        map.insert(path.clone(), key_pos.clone());
        walk_value(value, &path, &key_pos, file, text, map);
    }
}

fn walk_value(
    value: &Spanned<DeValue<'_>>,
    path: &str,
    key_pos: &Position,
    file: &Arc<Path>,
    text: &str,
    map: &mut SourceMap,
) {
    match value.get_ref() {
        DeValue::Table(table) => walk_table(table, path, file, text, map),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let span = item.span();
                let pos = if span.is_empty() {
                    key_pos.clone()
                } else {
                    Position::from_offset(file.clone(), text, span.start)
                };
                let item_path = format!("{path}[{i}]");
                map.insert(item_path.clone(), pos.clone());
                walk_value(item, &item_path, &pos, file, text, map);
            }
        }
        _ => {}
    }
}
