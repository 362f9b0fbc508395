//! The dataplane's diff as data: each case in `tests/dataplane/` gives the
//! desired table, the kernel's table and the services we own (the real
//! dataplane types, in TOML); its snapshot is the operations the diff
//! returns, in order, and the kernel services left alone as foreign. The
//! case's leading comment says what it shows and is kept in the snapshot.
//! Adding a case is adding a file.

use appliance::dataplane::diff::diff;
use appliance::dataplane::{ServiceKey, Table, VirtualService};
mod case;

use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    owned: Vec<ServiceKey>,
    #[serde(default)]
    kernel: Vec<VirtualService>,
    #[serde(default)]
    desired: Vec<VirtualService>,
}

fn table(services: Vec<VirtualService>, path: &Path) -> Table {
    let mut table = Table::new();
    for service in services {
        let key = service.key;
        assert!(
            table.insert(key, service).is_none(),
            "{}: {key} appears twice",
            path.display()
        );
    }
    table
}

/// The case's operations, and what it says it shows.
fn run(path: &Path) -> String {
    let (case, what): (Case, String) = case::read(path);
    let owned: BTreeSet<ServiceKey> = case.owned.into_iter().collect();
    let kernel = table(case.kernel, path);
    let desired = table(case.desired, path);
    let ops = diff(&desired, &kernel, &owned);
    let foreign: Vec<String> = kernel
        .keys()
        .filter(|k| !desired.contains_key(k) && !owned.contains(k))
        .map(ToString::to_string)
        .collect();
    let mut out = format!("{what}\n\n");
    if ops.is_empty() {
        out.push_str("(no operation)\n");
    }
    for op in &ops {
        let _ = writeln!(out, "{op}");
    }
    for key in foreign {
        let _ = writeln!(out, "foreign, left alone: {key}");
    }
    out
}

#[test]
fn dataplane_cases() {
    insta::glob!("dataplane/*.toml", |path| {
        insta::assert_snapshot!(run(path));
    });
}
