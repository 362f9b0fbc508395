//! Loading the native TOML format, with the position of every key so that
//! validation problems can point into the file.

use super::diag::{Diagnostic, Lines, Position, SourceMap};
use super::model::Config;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Parses `text` (the contents of `path`). A syntax or type error stops the
/// parse (serde reports the first one); its position comes from the TOML
/// parser's span.
pub(super) fn load(path: &Path, text: &str) -> Result<(Config, SourceMap), Vec<Diagnostic>> {
    let file: Arc<Path> = Arc::from(path);
    let error = |e: toml::de::Error| {
        let pos = match e.span() {
            Some(span) => Lines::new(file.clone(), text).position(span.start),
            None => Position::start_of(path),
        };
        vec![Diagnostic::new(pos, e.message().trim().replace('\n', " "))]
    };
    let tree = DeTable::parse(text).map_err(error)?;
    let config: Config = toml::from_str(text).map_err(error)?;
    let mut map = SourceMap::new(path);
    walk_table(tree.get_ref(), "", &mut Lines::new(file, text), &mut map);
    Ok((config, map))
}

fn walk_table(table: &DeTable<'_>, prefix: &str, lines: &mut Lines<'_>, map: &mut SourceMap) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        let key_pos = lines.position(key.span().start);
        map.insert(path.clone(), key_pos.clone());
        walk_value(value, &path, &key_pos, lines, map);
    }
}

fn walk_value(
    value: &Spanned<DeValue<'_>>,
    path: &str,
    key_pos: &Position,
    lines: &mut Lines<'_>,
    map: &mut SourceMap,
) {
    match value.get_ref() {
        DeValue::Table(table) => walk_table(table, path, lines, map),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let span = item.span();
                let pos = if span.is_empty() {
                    key_pos.clone()
                } else {
                    lines.position(span.start)
                };
                let item_path = format!("{path}[{i}]");
                map.insert(item_path.clone(), pos.clone());
                walk_value(item, &item_path, &pos, lines, map);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_config_loads_in_linear_time() {
        // 4,000 services of 4 real servers: a position per key, each
        // counted from the top of the file, took minutes.
        let mut text = String::new();
        for i in 0..4000 {
            let (a, b) = (i / 250, i % 250);
            text += &format!("[[virtual_server]]\nservice = {{ address = \"10.{a}.{b}.1:80\" }}\n");
            for r in 1..=4 {
                text += &format!(
                    "[[virtual_server.real_server]]\naddress = \"10.{}.{b}.{r}:80\"\n",
                    100 + a
                );
            }
        }
        let start = std::time::Instant::now();
        let (config, map) = load(Path::new("big.toml"), &text).unwrap();
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(config.virtual_server.len(), 4000);
        assert_eq!(
            map.lookup("virtual_server[3999].real_server[3].address")
                .to_string(),
            "big.toml:40000:1"
        );
    }
}
