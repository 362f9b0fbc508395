//! Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6),
//! sent by a new master so that hosts and switches learn at once that the
//! VIPs now live behind its MAC address.
//!
//! ARP goes out on an `AF_PACKET` datagram socket (the kernel writes the
//! Ethernet header for the broadcast address we give it); neighbour
//! advertisements on an ICMPv6 raw socket with hop limit 255 (RFC 4861
//! §7.1.2 makes receivers drop anything else), to all-nodes ff02::1.

use super::IfIndex;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETH_P_ARP: u16 = 0x0806;
const ARP_HTYPE_ETHERNET: u16 = 1;
const ARP_PTYPE_IPV4: u16 = 0x0800;
const ARP_OP_REQUEST: u16 = 1;
const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;
/// RFC 4861 §4.4: Override: replace cached link-layer addresses.
const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;
/// RFC 4861 §4.6.1: the Target Link-Layer Address option.
const ND_OPT_TARGET_LL_ADDR: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening a {what} socket: {source}")]
    Open {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("sending a {what} for {addr} on interface {ifindex}: {source}")]
    Send {
        what: &'static str,
        addr: std::net::IpAddr,
        ifindex: IfIndex,
        #[source]
        source: std::io::Error,
    },
}

/// A gratuitous ARP as keepalived sends it: an ARP request from the VIP for
/// the VIP (RFC 5227 §3 "ARP Announcement"), target hardware address zero.
pub fn arp_announcement(mac: [u8; 6], vip: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&ARP_HTYPE_ETHERNET.to_be_bytes());
    p[2..4].copy_from_slice(&ARP_PTYPE_IPV4.to_be_bytes());
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&ARP_OP_REQUEST.to_be_bytes());
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&vip.octets());
    p[24..28].copy_from_slice(&vip.octets());
    p
}

/// An unsolicited neighbour advertisement for `target` (RFC 4861 §7.2.6):
/// Override set, Solicited clear, with our link-layer address. The
/// checksum is left zero: the kernel fills it for ICMPv6 raw sockets.
pub fn neighbour_advertisement(mac: [u8; 6], target: Ipv6Addr) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = ICMPV6_NEIGHBOR_ADVERT;
    p[4..8].copy_from_slice(&NA_FLAG_OVERRIDE.to_be_bytes());
    p[8..24].copy_from_slice(&target.octets());
    p[24] = ND_OPT_TARGET_LL_ADDR;
    p[25] = 1; // length in units of 8 bytes
    p[26..32].copy_from_slice(&mac);
    p
}

/// Sends announcements for VIPs on one interface.
pub struct Announcer {
    ifindex: IfIndex,
    mac: [u8; 6],
    arp: OwnedFd,
    icmp6: Socket,
}

impl Announcer {
    pub fn new(ifindex: IfIndex, mac: [u8; 6]) -> Result<Self, Error> {
        // SAFETY: plain socket(2); the result is checked before being owned.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                i32::from(ETH_P_ARP.to_be()),
            )
        };
        if fd < 0 {
            return Err(Error::Open {
                what: "packet",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let arp = unsafe { OwnedFd::from_raw_fd(fd) };
        let icmp6 =
            Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).map_err(|source| {
                Error::Open {
                    what: "ICMPv6",
                    source,
                }
            })?;
        let setup = || -> std::io::Result<()> {
            icmp6.set_multicast_hops_v6(255)?;
            icmp6.set_unicast_hops_v6(255)?;
            icmp6.set_multicast_if_v6(ifindex.0)?;
            icmp6.set_nonblocking(true)
        };
        setup().map_err(|source| Error::Open {
            what: "ICMPv6",
            source,
        })?;
        Ok(Self {
            ifindex,
            mac,
            arp,
            icmp6,
        })
    }

    /// Broadcasts one gratuitous ARP for `vip`.
    pub fn arp(&self, vip: Ipv4Addr) -> Result<(), Error> {
        let packet = arp_announcement(self.mac, vip);
        // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = ETH_P_ARP.to_be();
        to.sll_ifindex = self.ifindex.0 as i32;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: the buffer and address outlive the call; lengths match.
        let sent = unsafe {
            libc::sendto(
                self.arp.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(Error::Send {
                what: "gratuitous ARP",
                addr: vip.into(),
                ifindex: self.ifindex,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Sends one unsolicited neighbour advertisement for `vip` to ff02::1.
    pub fn neighbour_advertisement(&self, vip: Ipv6Addr) -> Result<(), Error> {
        let packet = neighbour_advertisement(self.mac, vip);
        let all_nodes = SocketAddrV6::new(
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            0,
            0,
            self.ifindex.0,
        );
        self.icmp6
            .send_to(&packet, &all_nodes.into())
            .map(drop)
            .map_err(|source| Error::Send {
                what: "neighbour advertisement",
                addr: vip.into(),
                ifindex: self.ifindex,
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x01, 0x33];

    #[test]
    fn arp_announcement_is_a_request_from_and_for_the_vip() {
        let p = arp_announcement(MAC, Ipv4Addr::new(10, 99, 0, 100));
        assert_eq!(
            p,
            [
                0, 1, 8, 0, 6, 4, 0, 1, // Ethernet/IPv4, request
                2, 0, 0x5e, 0, 1, 0x33, 10, 99, 0, 100, // sender MAC, VIP
                0, 0, 0, 0, 0, 0, 10, 99, 0, 100, // target MAC zero, VIP
            ]
        );
    }

    #[test]
    fn neighbour_advertisement_overrides_with_our_mac() {
        let target: Ipv6Addr = "fd00::100".parse().unwrap();
        let p = neighbour_advertisement(MAC, target);
        assert_eq!(p[0], 136);
        assert_eq!(p[1], 0, "code");
        assert_eq!(&p[4..8], &[0x20, 0, 0, 0], "only Override set");
        assert_eq!(&p[8..24], &target.octets());
        assert_eq!(&p[24..32], &[2, 1, 2, 0, 0x5e, 0, 1, 0x33]);
    }
}
