//! The host's own network settings from the config's `[network]`: links
//! brought up (with their MTU), their addresses, static routes and kernel
//! parameters. What a director's shell scripts used to do, applied by
//! `appliance run` before VRRP or the dataplane start. Every step is
//! idempotent (an address or route already there is kept), so applying the
//! same settings again changes nothing.

use crate::config::model::{Network, NetworkRoute};
use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{LinkUnspec, RouteMessageBuilder};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// What went wrong, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening an rtnetlink socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("interface {0}: no such interface")]
    NoSuchInterface(String),
    #[error("interface {interface}: {what}: {source}")]
    Interface {
        interface: String,
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("route to {destination}: {source}")]
    Route {
        destination: IpNet,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("sysctl {key} = {value}: writing {}: {source}", path.display())]
    Sysctl {
        key: String,
        value: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Applies `network` in the current network namespace, in order: links
/// up, addresses, routes (which need both), sysctls (some name links).
pub(crate) async fn apply(network: &Network) -> Result<(), Error> {
    if network.is_empty() {
        return Ok(());
    }
    let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Connect)?;
    let task = tokio::spawn(connection);
    let result = apply_with(&handle, network).await;
    task.abort();
    result?;
    for (key, value) in &network.sysctl {
        write_sysctl(Path::new("/proc/sys"), key, value)?;
    }
    Ok(())
}

async fn apply_with(handle: &rtnetlink::Handle, network: &Network) -> Result<(), Error> {
    for interface in &network.interface {
        let index = index(handle, &interface.name).await?;
        let failed = |what: String| {
            let interface = interface.name.clone();
            move |source| Error::Interface {
                interface,
                what,
                source,
            }
        };
        let mut link = LinkUnspec::new_with_index(index).up();
        if let Some(mtu) = interface.mtu {
            link = link.mtu(mtu);
        }
        handle
            .link()
            .set(link.build())
            .execute()
            .await
            .map_err(failed("bringing it up".into()))?;
        for address in &interface.address {
            match handle
                .address()
                .add(index, address.addr(), address.prefix_len())
                .execute()
                .await
            {
                Ok(()) => {}
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => {}
                Err(e) => return Err(failed(format!("adding {address}"))(e)),
            }
        }
    }
    for route in &network.route {
        add_route(handle, route).await?;
    }
    Ok(())
}

async fn index(handle: &rtnetlink::Handle, name: &str) -> Result<u32, Error> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(message)) => Ok(message.header.index),
        Ok(None) => Err(Error::NoSuchInterface(name.to_string())),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
            Err(Error::NoSuchInterface(name.to_string()))
        }
        Err(source) => Err(Error::Interface {
            interface: name.to_string(),
            what: "looking it up".into(),
            source,
        }),
    }
}

/// Adds (or replaces, so a changed gateway takes effect) `route`.
async fn add_route(handle: &rtnetlink::Handle, route: &NetworkRoute) -> Result<(), Error> {
    let interface = match &route.interface {
        Some(name) => Some(index(handle, name).await?),
        None => None,
    };
    let message = match (route.destination, route.gateway) {
        (IpNet::V4(destination), gateway) => {
            let mut builder = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(destination.addr(), destination.prefix_len());
            if let Some(IpAddr::V4(gateway)) = gateway {
                builder = builder.gateway(gateway);
            }
            if let Some(index) = interface {
                builder = builder.output_interface(index);
            }
            builder.build()
        }
        (IpNet::V6(destination), gateway) => {
            let mut builder = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(destination.addr(), destination.prefix_len());
            if let Some(IpAddr::V6(gateway)) = gateway {
                builder = builder.gateway(gateway);
            }
            if let Some(index) = interface {
                builder = builder.output_interface(index);
            }
            builder.build()
        }
    };
    handle
        .route()
        .add(message)
        .replace()
        .execute()
        .await
        .map_err(|source| Error::Route {
            destination: route.destination,
            source,
        })
}

/// Brings every link up, without addresses: what keeps a box reachable
/// (IPv6 link-local at least) when it has no usable `[network]`. Returns
/// each link's name, in index order, with how bringing it up went: one
/// that fails does not keep the others down.
pub(crate) async fn all_links_up() -> Result<Vec<(String, Result<(), Error>)>, Error> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Connect)?;
    let task = tokio::spawn(connection);
    let result = all_links_up_with(&handle).await;
    task.abort();
    result
}

async fn all_links_up_with(
    handle: &rtnetlink::Handle,
) -> Result<Vec<(String, Result<(), Error>)>, Error> {
    let listed: Vec<_> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|source| Error::Interface {
            interface: "*".into(),
            what: "listing the links".into(),
            source,
        })?;
    let mut links = Vec::new();
    for message in listed {
        let index = message.header.index;
        let name = message
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::IfName(name) => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_else(|| format!("#{index}"));
        let up = handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|source| Error::Interface {
                interface: name.clone(),
                what: "bringing it up".into(),
                source,
            });
        links.push((name, up));
    }
    Ok(links)
}

/// Writes `value` to the file of `key` (dotted) under `root` (/proc/sys).
fn write_sysctl(root: &Path, key: &str, value: &str) -> Result<(), Error> {
    let parts: Vec<&str> = key.split('.').collect();
    super::sysctl::Sysctls::under(root.to_path_buf())
        .write(&parts, value)
        .map_err(|e| Error::Sysctl {
            key: key.to_string(),
            value: value.to_string(),
            path: e.path,
            source: e.source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sysctl_is_written_to_its_file_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net/ipv4")).unwrap();
        std::fs::write(dir.path().join("net/ipv4/ip_forward"), "0").unwrap();
        write_sysctl(dir.path(), "net.ipv4.ip_forward", "1").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("net/ipv4/ip_forward")).unwrap(),
            "1"
        );
        let e = write_sysctl(dir.path(), "net.ipv4.nope.x", "1").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("sysctl net.ipv4.nope.x = 1: writing "),
            "{e}"
        );
    }
}
