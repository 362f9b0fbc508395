//! The crate's modules import each other in one direction: no module
//! reaches, through `crate::` or `super::` paths, a module that reaches it
//! back (a module and its own ancestors or descendants aside: a parent
//! re-exports its children, which use its types). A circle means two
//! concerns that cannot be understood, tested or moved apart, as
//! check/runner → metrics → daemon/status → check/runner once was.
//!
//! Read from the sources: every path outside comments and `mod tests`
//! blocks, resolved to the longest module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of the crate under `src` by its path (`check::runner`;
/// the root is ``), with its source.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path: PathBuf = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path
                .strip_prefix(src)
                .expect("under src")
                .with_extension("");
            let mut parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            // A `tests.rs` beside its module is that module's tests.
            if parts.last().is_some_and(|p| p == "tests") {
                continue;
            }
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.insert(parts.join("::"), source);
        }
    }
    out
}

/// The source without comments and without its `#[cfg(test)] mod tests`.
fn code(source: &str) -> String {
    let source = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or(source);
    source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `crate::a::b` and `super::c` paths of `code`.
fn paths(code: &str) -> Vec<Vec<String>> {
    let pattern = regex::Regex::new(r"\b(?:crate|super)(?:::(?:super|[a-z_][a-z0-9_]*))+")
        .expect("valid pattern");
    pattern
        .find_iter(code)
        .map(|m| m.as_str().split("::").map(str::to_owned).collect())
        .collect()
}

/// The module a path from `from` names: the longest module prefix.
fn resolve(from: &str, path: &[String], modules: &BTreeMap<String, String>) -> Option<String> {
    let mut base: Vec<String> = Vec::new();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => rest = &path[1..],
        Some("super") => {
            base = from
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    (0..=rest.len()).rev().find_map(|n| {
        let mut candidate = base.clone();
        candidate.extend(rest[..n].iter().cloned());
        let name = candidate.join("::");
        modules.contains_key(&name).then_some(name)
    })
}

fn related(a: &str, b: &str) -> bool {
    a.is_empty()
        || b.is_empty()
        || a.starts_with(&format!("{b}::"))
        || b.starts_with(&format!("{a}::"))
}

/// Every module reachable from `start` through `edges`.
fn reachable(start: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![start.to_owned()];
    while let Some(module) = todo.pop() {
        for next in edges.get(&module).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

fn circles(src: &Path) -> Vec<String> {
    let modules = modules(src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, source) in &modules {
        for path in paths(&code(source)) {
            if let Some(target) = resolve(name, &path, &modules)
                && target != *name
                && !related(name, &target)
            {
                edges.entry(name.clone()).or_default().insert(target);
            }
        }
    }
    let mut found = Vec::new();
    for (module, targets) in &edges {
        for target in targets {
            if reachable(target, &edges).contains(module) {
                found.push(format!("{module} → {target} → … → {module}"));
            }
        }
    }
    found
}

#[test]
fn no_module_reaches_a_module_that_reaches_it_back() {
    for krate in ["src", "core/src"] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(krate);
        assert!(
            modules(&src).len() > 10,
            "{}: too few modules read",
            src.display()
        );
        let found = circles(&src);
        assert!(
            found.is_empty(),
            "{}: import circles:\n{}",
            src.display(),
            found.join("\n")
        );
    }
}

#[test]
fn a_circle_is_found() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let src = dir.path();
    std::fs::create_dir(src.join("net")).expect("net/");
    for (file, text) in [
        ("lib.rs", "pub mod net;\n"),
        ("net/mod.rs", "pub mod link;\npub mod vip;\n"),
        (
            "net/link.rs",
            "// super::vip in a comment is no edge\nuse super::vip::Link;\n",
        ),
        (
            "net/vip.rs",
            "pub struct Link;\nfn up() -> bool { crate::net::link::is_up() }\n",
        ),
    ] {
        std::fs::write(src.join(file), text).expect("write");
    }
    assert_eq!(
        circles(src),
        [
            "net::link → net::vip → … → net::link",
            "net::vip → net::link → … → net::vip"
        ]
    );
    std::fs::write(src.join("net/link.rs"), "// super::vip\n").expect("write");
    assert!(circles(src).is_empty());
}
