//! A TOML config beside a keepalived.conf: `keepalived_conf = "PATH"` at
//! the top of the TOML makes that keepalived.conf the source of everything
//! keepalived has words for (its globals, scripts, tracked files, sync
//! groups, instances, virtual servers), and the TOML the source of what
//! only the appliance has: [`APPLIANCE_GLOBALS`], `[network]`, `[bgp]`, and a
//! virtual server's [`APPLIANCE_VS_KEYS`] (in a `[[virtual_server]]` that
//! names the keepalived.conf's by its `service`, and `protocol` when two
//! share an address). A key set in the wrong file is an error naming where
//! it belongs, so neither file silently overrides the other.

use super::diag::{Diagnostic, SourceMap};
use super::model::{Config, Service};
use super::{Format, keepalived};
use std::path::{Path, PathBuf};

/// The `[global]` keys keepalived.conf has no words for.
pub(crate) const APPLIANCE_GLOBALS: &[&str] = &[
    "dataplane",
    "metrics_listen",
    "status_page",
    "status_group",
    "graceful_remove",
    "smtp_starttls",
    "lvs_sloppy_tcp",
];

/// A virtual server's keys keepalived.conf has no words for.
pub(crate) const APPLIANCE_VS_KEYS: &[&str] = &["masquerade", "only_when_master"];

/// The top-level parts that come from the keepalived.conf.
const FROM_KEEPALIVED: &[&str] = &[
    "vrrp_script",
    "track_file",
    "vrrp_sync_group",
    "vrrp_instance",
    "virtual_server_group",
];

/// The config of the TOML at `toml_path` (`toml`, `tmap`) that names a
/// keepalived.conf at `keepalived_conf`: that file's config with the
/// TOML's own settings, the positions of both, and the problems of both.
pub(super) fn merge(
    toml_path: &Path,
    keepalived_conf: &Path,
    toml: Config,
    tmap: SourceMap,
) -> (Config, SourceMap, Vec<Diagnostic>) {
    let path = resolve(toml_path, keepalived_conf);
    let shown = path.display();
    let mut errors = Vec::new();
    for part in FROM_KEEPALIVED {
        if tmap.has(part) {
            errors.push(Diagnostic::new(
                tmap.lookup(part),
                format!("{part} comes from keepalived_conf ({shown}): write it there"),
            ));
        }
    }
    let mut keys: Vec<&str> = tmap
        .keys()
        .filter_map(|k| k.strip_prefix("global."))
        .filter(|k| !k.contains(['.', '[']))
        .filter(|k| !APPLIANCE_GLOBALS.contains(k))
        .collect();
    keys.sort_unstable();
    for (i, _) in toml.virtual_server.iter().enumerate() {
        let base = format!("virtual_server[{i}].");
        let mut keys: Vec<&str> = tmap
            .keys()
            .filter_map(|k| k.strip_prefix(base.as_str()))
            .filter(|k| !k.contains(['.', '[']))
            .filter(|k| !["service", "protocol"].contains(k) && !APPLIANCE_VS_KEYS.contains(k))
            .collect();
        keys.sort_unstable();
        for key in keys {
            errors.push(Diagnostic::new(
                tmap.lookup(&format!("{base}{key}")),
                format!(
                    "{key} comes from keepalived_conf ({shown}): write it in its virtual_server \
                     block; beside a keepalived.conf, a [[virtual_server]] holds only service \
                     (and protocol) to name one, and {}",
                    APPLIANCE_VS_KEYS.join(", ")
                ),
            ));
        }
    }
    for key in keys {
        errors.push(Diagnostic::new(
            tmap.lookup(&format!("global.{key}")),
            format!(
                "global.{key} comes from keepalived_conf ({shown}): write it in its global_defs; \
                 beside a keepalived.conf, [global] holds only {}",
                APPLIANCE_GLOBALS.join(", ")
            ),
        ));
    }
    if Format::detect(&path) == Format::Toml {
        errors.push(Diagnostic::new(
            tmap.lookup("keepalived_conf"),
            format!("keepalived_conf names {shown}, a TOML file: it must name a keepalived.conf"),
        ));
        return (toml, tmap, errors);
    }
    let (mut config, mut map, kerrors) = keepalived::load(&path);
    errors.extend(kerrors);
    config.global.dataplane = toml.global.dataplane;
    config.global.metrics_listen = toml.global.metrics_listen;
    config.global.status_page = toml.global.status_page;
    config.global.status_group = toml.global.status_group;
    config.global.graceful_remove = toml.global.graceful_remove;
    config.global.smtp_starttls = toml.global.smtp_starttls;
    config.global.lvs_sloppy_tcp = toml.global.lvs_sloppy_tcp;
    config.network = toml.network;
    config.bgp = toml.bgp;
    for (i, wanted) in toml.virtual_server.iter().enumerate() {
        let at = |key: &str| tmap.lookup(&format!("virtual_server[{i}].{key}"));
        let by_protocol = tmap.has(&format!("virtual_server[{i}].protocol"));
        let found: Vec<usize> = config
            .virtual_server
            .iter()
            .enumerate()
            .filter(|(_, vs)| {
                vs.service == wanted.service && (!by_protocol || vs.protocol == wanted.protocol)
            })
            .map(|(j, _)| j)
            .collect();
        let name = match &wanted.service {
            _ if by_protocol => wanted.name(),
            Service::Address(a) => a.to_string(),
            Service::Fwmark(m) => format!("fwmark {m}"),
            Service::Group(g) => format!("group {g}"),
        };
        let j = match found.as_slice() {
            [j] => *j,
            [] => {
                errors.push(Diagnostic::new(
                    at("service"),
                    format!("keepalived_conf ({shown}) has no virtual_server {name}"),
                ));
                continue;
            }
            _ => {
                errors.push(Diagnostic::new(
                    at("service"),
                    format!(
                        "keepalived_conf ({shown}) has virtual_server {name} for more than one \
                         protocol: say which with protocol"
                    ),
                ));
                continue;
            }
        };
        let vs = &mut config.virtual_server[j];
        vs.masquerade = wanted.masquerade;
        vs.only_when_master.clone_from(&wanted.only_when_master);
        for key in APPLIANCE_VS_KEYS {
            if tmap.has(&format!("virtual_server[{i}].{key}")) {
                map.insert(format!("virtual_server[{j}].{key}"), at(key));
            }
        }
    }
    map.absorb(tmap, |k| {
        k == "keepalived_conf" || k.starts_with("global.") || k.starts_with("network")
    });
    (config, map, errors)
}

/// A relative `keepalived_conf` is relative to the TOML's directory, as
/// keepalived's `include` is to the including file's.
fn resolve(toml_path: &Path, keepalived_conf: &Path) -> PathBuf {
    match toml_path.parent() {
        Some(dir) if keepalived_conf.is_relative() => dir.join(keepalived_conf),
        _ => keepalived_conf.to_path_buf(),
    }
}
