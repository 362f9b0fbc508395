//! `convert`'s TOML: the config with every key left out whose absence
//! reads back as the same value, so the file says what its source said
//! and not the defaults besides. Each part is pruned as its own type, one
//! key at a time, innermost first: a key goes only if the part without it
//! deserializes equal to the part with it, which holds whatever the
//! importer's defaults are (keepalived's UDP for a `virtual_server`
//! without `protocol` stays written, for one).

use super::model::{
    Config, Global, Network, SyncGroup, TrackedFile, TrackedProcess, VirtualServer, VrrpInstance,
    VrrpScript,
};
use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// The config as TOML, defaults left out.
pub(super) fn to_toml(config: &Config) -> Result<String, toml::ser::Error> {
    let mut table = Table::try_from(config)?;
    prune_part::<Global>(&mut table, "global");
    prune_part::<Network>(&mut table, "network");
    prune_items::<VrrpScript>(&mut table, "vrrp_script");
    prune_items::<TrackedFile>(&mut table, "track_file");
    prune_items::<TrackedProcess>(&mut table, "vrrp_track_process");
    prune_items::<SyncGroup>(&mut table, "vrrp_sync_group");
    prune_items::<VrrpInstance>(&mut table, "vrrp_instance");
    prune_items::<VirtualServer>(&mut table, "virtual_server");
    toml::to_string_pretty(&table)
}

fn prune_part<T: DeserializeOwned + PartialEq>(table: &mut Table, key: &str) {
    let Some(value) = table.get_mut(key) else {
        return;
    };
    prune::<T>(value);
    if value.as_table().is_some_and(Table::is_empty) {
        table.remove(key);
    }
}

fn prune_items<T: DeserializeOwned + PartialEq>(table: &mut Table, key: &str) {
    if let Some(Value::Array(items)) = table.get_mut(key) {
        items.iter_mut().for_each(prune::<T>);
    }
}

/// One step into a value: a table's key or an array's item.
#[derive(Clone)]
enum Step {
    Key(String),
    Item(usize),
}

/// Leaves `value` without the keys whose removal leaves it equal as a `T`.
fn prune<T: DeserializeOwned + PartialEq>(value: &mut Value) {
    let Ok(original) = value.clone().try_into::<T>() else {
        return;
    };
    let mut keys = Vec::new();
    key_paths(value, &mut Vec::new(), &mut keys);
    for path in keys {
        let mut trial = value.clone();
        if remove(&mut trial, &path)
            && trial
                .clone()
                .try_into::<T>()
                .is_ok_and(|pruned| pruned == original)
        {
            *value = trial;
        }
    }
}

/// Every table key under `value`, children before their parent (so a
/// table emptied of its defaults can go too); array items are data and
/// stay, their keys are pruned.
fn key_paths(value: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match value {
        Value::Table(table) => {
            for (key, child) in table {
                at.push(Step::Key(key.clone()));
                key_paths(child, at, out);
                out.push(at.clone());
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Step::Item(i));
                key_paths(item, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Removes the key at `path`; whether it was there.
fn remove(value: &mut Value, path: &[Step]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = value;
    for step in parents {
        let next = match (step, current) {
            (Step::Key(k), Value::Table(t)) => t.get_mut(k),
            (Step::Item(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        current = next;
    }
    match (last, current) {
        (Step::Key(k), Value::Table(t)) => t.remove(k).is_some(),
        _ => false,
    }
}
