//! Virtual MAC interfaces (keepalived's `use_vmac`, its `vrrp_vmac.c` and
//! `vrrp_if_config.c`): a private-mode macvlan on an instance's interface
//! with the VRRP virtual MAC, made over rtnetlink, with the kernel
//! parameters that make it work, and removed again with them restored.
//!
//! The kernel parameters, as keepalived sets them for an IPv4 instance:
//! - on the macvlan: `arp_ignore=1` (answer ARP only for its own
//!   addresses, the VIPs), `accept_local=1`, `rp_filter=0` (the peers'
//!   adverts and the clients' traffic come in on it while the routes back
//!   go out of the base interface), `promote_secondaries=1`, and IPv6 off
//!   (`disable_ipv6=1`): nothing but our own adverts and announcements may
//!   leave from the virtual MAC, or a backup's router solicitations, DAD and
//!   MLD reports would teach the switches that the virtual MAC lives on the
//!   backup;
//! - on the base interface: `arp_ignore=1` and `arp_filter=1`, so that it
//!   does not answer ARP for the VIPs with its own MAC, and, beyond
//!   keepalived, `arp_announce=2`: replies from a VIP go out of the base
//!   interface (its route is the subnet's), and the ARP requests they need
//!   would otherwise name the VIP as their sender with the base's own MAC,
//!   which hosts take as the VIP's new address (keepalived lets that
//!   happen, and hosts then follow the master's own MAC, not the virtual
//!   one, until the next failover). All saved first and restored when the
//!   base's last macvlan goes;
//! - `net.ipv4.conf.all.rp_filter`, which overrides the macvlan's own when
//!   higher: when it is set, `default` and every interface whose own value
//!   is lower are raised to it and `all` is set to 0 (which changes no
//!   interface's filtering), then restored when the last macvlan goes;
//! - `net.ipv4.igmp_link_local_mcast_reports=0` (keepalived's
//!   `disable_local_igmp`), restored likewise: joining the VRRP group on a
//!   backup's macvlan would otherwise send IGMP reports from the virtual
//!   MAC. keepalived drops those with a firewall rule instead; reports
//!   for 224.0.0.0/24 are pointless anyway (RFC 4541 floods that range).

use super::IfIndex;
use super::link::{Link, link_from};
use super::sysctl::Sysctls;
use futures::TryStreamExt;
use rtnetlink::LinkMacVlan;
use rtnetlink::LinkUnspec;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode,
};
use std::collections::HashMap;
use tracing::{info, warn};

/// What a virtual MAC interface is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub mac: [u8; 6],
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening an rtnetlink socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("virtual MAC interface {name}: {what}: {source}")]
    Link {
        name: String,
        what: &'static str,
        #[source]
        source: rtnetlink::Error,
    },
    #[error(
        "virtual MAC interface {0}: an interface of that name exists and is not a macvlan; it is left alone"
    )]
    NotMacvlan(String),
    #[error("virtual MAC interface {0}: made, but the kernel does not list it")]
    Vanished(String),
    #[error(transparent)]
    Sysctl(#[from] super::sysctl::Error),
}

/// What a base interface gets (`net.ipv4.conf.BASE.*`).
const BASE: [(&str, &str); 3] = [
    ("arp_ignore", "1"),
    ("arp_filter", "1"),
    ("arp_announce", "2"),
];

/// The kernel parameters this module changes, and what to put back.
#[derive(Debug)]
struct Settings {
    sysctls: Sysctls,
    /// Per base interface: its settings of [`BASE`] before us.
    bases: HashMap<String, Vec<String>>,
    /// `all.rp_filter` before us, `default`'s if raised, and each
    /// interface raised with its value before.
    rp_filter: Option<RpFilter>,
    /// `igmp_link_local_mcast_reports` before us.
    igmp_reports: Option<String>,
}

#[derive(Debug)]
struct RpFilter {
    all: String,
    default: Option<String>,
    raised: Vec<(String, String)>,
}

impl Settings {
    fn read(&self, key: &[&str]) -> Result<String, Error> {
        Ok(self.sysctls.read(key)?)
    }

    fn write(&self, key: &[&str], value: &str) -> Result<(), Error> {
        Ok(self.sysctls.write(key, value)?)
    }

    fn level(value: &str) -> u32 {
        value.parse().unwrap_or(0)
    }

    /// The macvlan's own parameters.
    fn vmac(&self, name: &str) -> Result<(), Error> {
        for (key, value) in [
            ("arp_ignore", "1"),
            ("accept_local", "1"),
            ("rp_filter", "0"),
            ("promote_secondaries", "1"),
        ] {
            self.write(&["net", "ipv4", "conf", name, key], value)?;
        }
        self.write(&["net", "ipv6", "conf", name, "disable_ipv6"], "1")
    }

    /// The base interface's, saved the first time.
    fn base(&mut self, name: &str) -> Result<(), Error> {
        if !self.bases.contains_key(name) {
            let saved = BASE
                .iter()
                .map(|(key, _)| self.read(&["net", "ipv4", "conf", name, key]))
                .collect::<Result<Vec<_>, _>>()?;
            self.bases.insert(name.to_string(), saved);
        }
        for (key, value) in BASE {
            self.write(&["net", "ipv4", "conf", name, key], value)?;
        }
        Ok(())
    }

    fn restore_base(&mut self, name: &str) {
        let Some(saved) = self.bases.remove(name) else {
            return;
        };
        for ((key, _), value) in BASE.iter().zip(saved) {
            if let Err(e) = self.write(&["net", "ipv4", "conf", name, key], &value) {
                warn!(interface = name, error = %e, "restoring a base interface's ARP setting failed");
            }
        }
    }

    /// keepalived's `clear_rp_filter`, and `disable_local_igmp`.
    fn global(&mut self) -> Result<(), Error> {
        if self.igmp_reports.is_none() {
            let key = ["net", "ipv4", "igmp_link_local_mcast_reports"];
            let before = self.read(&key)?;
            self.write(&key, "0")?;
            self.igmp_reports = Some(before);
        }
        if self.rp_filter.is_some() {
            return Ok(());
        }
        let all = self.read(&["net", "ipv4", "conf", "all", "rp_filter"])?;
        let level = Self::level(&all);
        if level == 0 {
            return Ok(());
        }
        let mut saved = RpFilter {
            all: all.clone(),
            default: None,
            raised: Vec::new(),
        };
        let default = self.read(&["net", "ipv4", "conf", "default", "rp_filter"])?;
        if Self::level(&default) < level {
            self.write(&["net", "ipv4", "conf", "default", "rp_filter"], &all)?;
            saved.default = Some(default);
        }
        let conf = self.sysctls.path(&["net", "ipv4", "conf"]);
        let entries = std::fs::read_dir(&conf).map_err(|source| super::sysctl::Error {
            path: conf.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "all" || name == "default" {
                continue;
            }
            let Ok(own) = self.read(&["net", "ipv4", "conf", &name, "rp_filter"]) else {
                continue;
            };
            if Self::level(&own) < level {
                self.write(&["net", "ipv4", "conf", &name, "rp_filter"], &all)?;
                saved.raised.push((name, own));
            }
        }
        info!(from = %all, "setting net.ipv4.conf.all.rp_filter to 0 for the virtual MAC interfaces, each interface keeping its filtering");
        self.write(&["net", "ipv4", "conf", "all", "rp_filter"], "0")?;
        self.rp_filter = Some(saved);
        Ok(())
    }

    /// keepalived's `restore_rp_filter`: only what is still as we set it.
    fn restore_global(&mut self) {
        if let Some(before) = self.igmp_reports.take()
            && let Err(e) = self.write(&["net", "ipv4", "igmp_link_local_mcast_reports"], &before)
        {
            warn!(error = %e, "restoring igmp_link_local_mcast_reports failed");
        }
        let Some(saved) = self.rp_filter.take() else {
            return;
        };
        let restore = |key: [&str; 5], ours: &str, before: &str| {
            if self.read(&key).is_ok_and(|now| now == ours)
                && let Err(e) = self.write(&key, before)
            {
                warn!(error = %e, "restoring an rp_filter failed");
            }
        };
        restore(["net", "ipv4", "conf", "all", "rp_filter"], "0", &saved.all);
        if let Some(default) = &saved.default {
            restore(
                ["net", "ipv4", "conf", "default", "rp_filter"],
                &saved.all,
                default,
            );
        }
        for (name, before) in &saved.raised {
            restore(
                ["net", "ipv4", "conf", name, "rp_filter"],
                &saved.all,
                before,
            );
        }
    }
}

/// The virtual MAC interfaces made here, and the kernel parameters they
/// needed.
pub struct Vmacs {
    handle: rtnetlink::Handle,
    /// Each macvlan made (or taken over), by name: its base interface.
    made: HashMap<String, String>,
    settings: Settings,
}

impl Vmacs {
    /// Opens an rtnetlink connection in the current network namespace; its
    /// I/O runs as a task on the current tokio runtime.
    pub fn connect() -> Result<Self, Error> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Connect)?;
        tokio::spawn(connection);
        Ok(Self {
            handle,
            made: HashMap::new(),
            settings: Settings {
                sysctls: Sysctls::default(),
                bases: HashMap::new(),
                rp_filter: None,
                igmp_reports: None,
            },
        })
    }

    /// Makes the macvlan of `spec` on `base`, set up and up, and returns
    /// it. One left by an earlier run that matches (a macvlan on `base`,
    /// private, with the MAC) is taken over, as keepalived does; another
    /// macvlan of the name is replaced; any other interface of the name is
    /// an error. On an error nothing of the macvlan is left.
    pub async fn ensure(&mut self, spec: &Spec, base: &Link) -> Result<Link, Error> {
        let failed = |what| {
            let name = spec.name.clone();
            move |source| Error::Link { name, what, source }
        };
        if let Some(existing) = self.get(&spec.name).await? {
            if matches(&existing, spec, base.index) {
                info!(interface = %spec.name, "taking over the virtual MAC interface left by an earlier run");
            } else if is_macvlan(&existing) {
                info!(interface = %spec.name, "replacing a virtual MAC interface that does not match");
                self.handle
                    .link()
                    .del(existing.header.index)
                    .execute()
                    .await
                    .map_err(failed("deleting the old one"))?;
            } else {
                return Err(Error::NotMacvlan(spec.name.clone()));
            }
        }
        let outcome = match self.create(spec, base).await {
            Ok(()) => self.set_up(spec, base).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(link) => {
                self.made.insert(spec.name.clone(), base.name.clone());
                info!(interface = %spec.name, base = %base.name, mac = %mac_text(&spec.mac), "virtual MAC interface up");
                Ok(link)
            }
            Err(e) => {
                self.delete(&spec.name).await;
                self.release(&base.name);
                Err(e)
            }
        }
    }

    /// Creates the macvlan, down, unless it is there already.
    async fn create(&self, spec: &Spec, base: &Link) -> Result<(), Error> {
        if self.get(&spec.name).await?.is_some() {
            return Ok(());
        }
        let message = LinkMacVlan::new(&spec.name, base.index.0, MacVlanMode::Private)
            .address(spec.mac.to_vec())
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|source| Error::Link {
                name: spec.name.clone(),
                what: "creating it",
                source,
            })
    }

    /// The kernel parameters, then up; the macvlan as it is then.
    async fn set_up(&mut self, spec: &Spec, base: &Link) -> Result<Link, Error> {
        self.settings.vmac(&spec.name)?;
        self.settings.base(&base.name)?;
        self.settings.global()?;
        let index = self
            .get(&spec.name)
            .await?
            .ok_or_else(|| Error::Vanished(spec.name.clone()))?
            .header
            .index;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|source| Error::Link {
                name: spec.name.clone(),
                what: "bringing it up",
                source,
            })?;
        let message = self
            .get(&spec.name)
            .await?
            .ok_or_else(|| Error::Vanished(spec.name.clone()))?;
        Ok(link_from(&message))
    }

    /// Deletes the macvlan `name` if it was made here, and restores what
    /// it needed once nothing else needs it.
    pub async fn remove(&mut self, name: &str) {
        let Some(base) = self.made.remove(name) else {
            return;
        };
        self.delete(name).await;
        info!(interface = name, "virtual MAC interface removed");
        self.release(&base);
    }

    /// Deletes every macvlan made here and restores the kernel parameters.
    pub async fn remove_all(&mut self) {
        let names: Vec<String> = self.made.keys().cloned().collect();
        for name in names {
            self.remove(&name).await;
        }
    }

    fn release(&mut self, base: &str) {
        if !self.made.values().any(|b| b == base) {
            self.settings.restore_base(base);
        }
        if self.made.is_empty() {
            self.settings.restore_global();
        }
    }

    async fn delete(&self, name: &str) {
        if let Err(e) = delete(&self.handle, name).await {
            warn!(interface = name, error = %e, "deleting the virtual MAC interface failed");
        }
    }

    async fn get(&self, name: &str) -> Result<Option<LinkMessage>, Error> {
        get(&self.handle, name).await
    }
}

/// Deletes the macvlan `name` (but any other kind of interface) if it
/// exists: what a daemon whose VRRP thread died leaves.
pub async fn delete_leftover(name: &str) -> Result<(), Error> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Connect)?;
    let task = tokio::spawn(connection);
    let result = delete(&handle, name).await;
    task.abort();
    result
}

async fn delete(handle: &rtnetlink::Handle, name: &str) -> Result<(), Error> {
    let Some(link) = get(handle, name).await? else {
        return Ok(());
    };
    if !is_macvlan(&link) {
        return Err(Error::NotMacvlan(name.to_string()));
    }
    match handle.link().del(link.header.index).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
        Err(source) => Err(Error::Link {
            name: name.to_string(),
            what: "deleting it",
            source,
        }),
    }
}

async fn get(handle: &rtnetlink::Handle, name: &str) -> Result<Option<LinkMessage>, Error> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(found) => Ok(found),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(source) => Err(Error::Link {
            name: name.to_string(),
            what: "looking it up",
            source,
        }),
    }
}

fn is_macvlan(link: &LinkMessage) -> bool {
    link.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|i| matches!(i, LinkInfo::Kind(InfoKind::MacVlan))),
        _ => false,
    })
}

/// Whether `link` is the macvlan `spec` describes on the base `base`.
fn matches(link: &LinkMessage, spec: &Spec, base: IfIndex) -> bool {
    let private = link.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|i| match i {
            LinkInfo::Data(InfoData::MacVlan(data)) => data
                .iter()
                .any(|d| matches!(d, InfoMacVlan::Mode(MacVlanMode::Private))),
            _ => false,
        }),
        _ => false,
    });
    let on_base = link
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Link(index) if *index == base.0));
    let found = link_from(link);
    is_macvlan(link) && private && on_base && found.mac.as_deref() == Some(&spec.mac[..])
}

/// `00:00:5e:00:01:33`.
pub fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::net::sysctl::fake::{get as value, set as sysctl};

    fn settings(root: &Path) -> Settings {
        Settings {
            sysctls: Sysctls::under(root.to_path_buf()),
            bases: HashMap::new(),
            rp_filter: None,
            igmp_reports: None,
        }
    }

    #[test]
    fn the_base_is_set_and_put_back_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        sysctl(root, "net/ipv4/conf/eth0/arp_ignore", "0");
        sysctl(root, "net/ipv4/conf/eth0/arp_filter", "0");
        sysctl(root, "net/ipv4/conf/eth0/arp_announce", "1");
        let mut s = settings(root);
        s.base("eth0").unwrap();
        assert_eq!(value(root, "net/ipv4/conf/eth0/arp_ignore"), "1");
        assert_eq!(value(root, "net/ipv4/conf/eth0/arp_filter"), "1");
        assert_eq!(value(root, "net/ipv4/conf/eth0/arp_announce"), "2");
        // A second macvlan on it keeps the values saved first.
        s.base("eth0").unwrap();
        s.restore_base("eth0");
        assert_eq!(value(root, "net/ipv4/conf/eth0/arp_ignore"), "0");
        assert_eq!(value(root, "net/ipv4/conf/eth0/arp_filter"), "0");
        assert_eq!(value(root, "net/ipv4/conf/eth0/arp_announce"), "1");
    }

    #[test]
    fn the_macvlan_gets_keepaliveds_settings_and_no_ipv6() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for key in [
            "arp_ignore",
            "accept_local",
            "rp_filter",
            "promote_secondaries",
        ] {
            sysctl(root, &format!("net/ipv4/conf/vrrp.51/{key}"), "7");
        }
        sysctl(root, "net/ipv6/conf/vrrp.51/disable_ipv6", "0");
        settings(root).vmac("vrrp.51").unwrap();
        assert_eq!(value(root, "net/ipv4/conf/vrrp.51/arp_ignore"), "1");
        assert_eq!(value(root, "net/ipv4/conf/vrrp.51/accept_local"), "1");
        assert_eq!(value(root, "net/ipv4/conf/vrrp.51/rp_filter"), "0");
        assert_eq!(
            value(root, "net/ipv4/conf/vrrp.51/promote_secondaries"),
            "1"
        );
        assert_eq!(value(root, "net/ipv6/conf/vrrp.51/disable_ipv6"), "1");
    }

    #[test]
    fn a_strict_all_rp_filter_moves_to_each_interface_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        sysctl(root, "net/ipv4/igmp_link_local_mcast_reports", "1");
        sysctl(root, "net/ipv4/conf/all/rp_filter", "1");
        sysctl(root, "net/ipv4/conf/default/rp_filter", "0");
        sysctl(root, "net/ipv4/conf/eth0/rp_filter", "0");
        sysctl(root, "net/ipv4/conf/eth1/rp_filter", "2");
        let mut s = settings(root);
        s.global().unwrap();
        assert_eq!(value(root, "net/ipv4/igmp_link_local_mcast_reports"), "0");
        assert_eq!(value(root, "net/ipv4/conf/all/rp_filter"), "0");
        assert_eq!(value(root, "net/ipv4/conf/default/rp_filter"), "1");
        assert_eq!(value(root, "net/ipv4/conf/eth0/rp_filter"), "1");
        assert_eq!(
            value(root, "net/ipv4/conf/eth1/rp_filter"),
            "2",
            "already stricter"
        );
        s.restore_global();
        assert_eq!(value(root, "net/ipv4/igmp_link_local_mcast_reports"), "1");
        assert_eq!(value(root, "net/ipv4/conf/all/rp_filter"), "1");
        assert_eq!(value(root, "net/ipv4/conf/default/rp_filter"), "0");
        assert_eq!(value(root, "net/ipv4/conf/eth0/rp_filter"), "0");
        assert_eq!(value(root, "net/ipv4/conf/eth1/rp_filter"), "2");
    }

    #[test]
    fn an_unset_all_rp_filter_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        sysctl(root, "net/ipv4/igmp_link_local_mcast_reports", "1");
        sysctl(root, "net/ipv4/conf/all/rp_filter", "0");
        sysctl(root, "net/ipv4/conf/eth0/rp_filter", "0");
        let mut s = settings(root);
        s.global().unwrap();
        assert!(s.rp_filter.is_none());
        assert_eq!(value(root, "net/ipv4/conf/all/rp_filter"), "0");
    }

    #[test]
    fn macs_read_as_ip_link_shows_them() {
        assert_eq!(mac_text(&[0, 0, 0x5e, 0, 1, 0x33]), "00:00:5e:00:01:33");
    }
}
