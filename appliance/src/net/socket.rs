//! Raw IP protocol 112 sockets for VRRP adverts, one per instance family
//! and interface.
//!
//! Sends go out with TTL / hop limit 255 (receivers drop anything else, RFC
//! 5798 §5.1.1.3), to the multicast group (224.0.0.18 or ff02::12) or to
//! unicast peers, from a chosen source address. Receives hand back the
//! payload with the IP header's source, destination and TTL / hop limit, so
//! the packet layer can apply the RFC's checks; what the header alone makes
//! unusable is an error naming why.

use super::IfIndex;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn6, SockaddrStorage,
};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use tokio::io::unix::AsyncFd;

/// IANA protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;
pub use crate::vrrp::packet::{MULTICAST_V4, MULTICAST_V6};
/// Large enough for any VRRP packet on an Ethernet MTU.
const RECV_BUFFER: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting up the VRRP socket on {ifname}: {source}")]
    Setup {
        ifname: String,
        #[source]
        source: std::io::Error,
    },
    #[error("receiving on {ifname}: {source}")]
    Recv {
        ifname: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sending to {dst} on {ifname}: {source}")]
    Send {
        ifname: String,
        dst: IpAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("received an IPv4 packet whose header is unusable: {0}")]
    BadIpv4Header(&'static str),
    #[error("received an IPv6 packet without its hop limit or destination")]
    MissingAncillary,
}

/// A received VRRP packet: the payload and what the IP header said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    pub payload: Vec<u8>,
}

/// A VRRP socket bound to one interface, for one address family.
pub struct VrrpSocket {
    io: AsyncFd<Socket>,
    ifname: String,
    ifindex: IfIndex,
}

impl VrrpSocket {
    /// Opens a socket on `ifname` for the family of `family_of`, joining the
    /// VRRP multicast group unless `unicast` (then only peers are talked to).
    pub fn open(
        ifname: &str,
        ifindex: IfIndex,
        family_of: IpAddr,
        unicast: bool,
    ) -> Result<Self, Error> {
        let setup = |source| Error::Setup {
            ifname: ifname.to_string(),
            source,
        };
        let socket = match family_of {
            IpAddr::V4(_) => {
                let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))
                    .map_err(setup)?;
                s.set_ttl_v4(255).map_err(setup)?;
                s.set_multicast_ttl_v4(255).map_err(setup)?;
                s.set_multicast_loop_v4(false).map_err(setup)?;
                // Without this a raw socket also gets groups joined on other
                // interfaces by other sockets.
                s.set_multicast_all_v4(false).map_err(setup)?;
                if !unicast {
                    s.join_multicast_v4_n(
                        &MULTICAST_V4,
                        &socket2::InterfaceIndexOrAddress::Index(ifindex.0),
                    )
                    .map_err(setup)?;
                }
                s
            }
            IpAddr::V6(_) => {
                let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))
                    .map_err(setup)?;
                s.set_unicast_hops_v6(255).map_err(setup)?;
                s.set_multicast_hops_v6(255).map_err(setup)?;
                s.set_multicast_loop_v6(false).map_err(setup)?;
                s.set_multicast_if_v6(ifindex.0).map_err(setup)?;
                s.set_recv_hoplimit_v6(true).map_err(setup)?;
                nix::sys::socket::setsockopt(
                    &s,
                    nix::sys::socket::sockopt::Ipv6RecvPacketInfo,
                    &true,
                )
                .map_err(|e| setup(e.into()))?;
                if !unicast {
                    s.join_multicast_v6(&MULTICAST_V6, ifindex.0)
                        .map_err(setup)?;
                }
                s
            }
        };
        socket.bind_device(Some(ifname.as_bytes())).map_err(setup)?;
        socket.set_nonblocking(true).map_err(setup)?;
        // SAFETY: the Socket owns its descriptor and keeps it open, unchanged,
        // for as long as the AsyncFd that owns the Socket.
        let io = unsafe { AsyncFd::register(socket) }.map_err(|e| setup(e.into()))?;
        Ok(Self {
            io,
            ifname: ifname.to_string(),
            ifindex,
        })
    }

    /// Receives the next packet.
    pub async fn recv(&self) -> Result<Received, Error> {
        loop {
            let mut guard = self
                .io
                .readable()
                .await
                .map_err(|source| self.recv_error(source))?;
            match guard.try_io(|fd| recv_one(fd.get_ref())) {
                Ok(result) => return result.map_err(|source| self.recv_error(source))?,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one VRRP payload from `src` to `dst` (the multicast group or a
    /// peer). The source is explicit because the v3 checksum covers it; an
    /// unspecified one lets the kernel choose.
    pub async fn send(&self, src: IpAddr, dst: IpAddr, payload: &[u8]) -> Result<(), Error> {
        loop {
            let mut guard = self
                .io
                .writable()
                .await
                .map_err(|source| self.send_error(dst, source))?;
            match guard.try_io(|fd| send_one(fd.get_ref(), self.ifindex, src, dst, payload)) {
                Ok(result) => return result.map_err(|source| self.send_error(dst, source)),
                Err(_would_block) => continue,
            }
        }
    }

    fn recv_error(&self, source: std::io::Error) -> Error {
        Error::Recv {
            ifname: self.ifname.clone(),
            source,
        }
    }

    fn send_error(&self, dst: IpAddr, source: std::io::Error) -> Error {
        Error::Send {
            ifname: self.ifname.clone(),
            dst,
            source,
        }
    }
}

/// One `recvmsg`. The outer result is the socket's, the inner one says
/// whether the packet's IP layer was usable.
fn recv_one(socket: &Socket) -> std::io::Result<Result<Received, Error>> {
    let mut buf = [0u8; RECV_BUFFER];
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = nix::sys::socket::recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let len = msg.bytes;
    let mut hop_limit = None;
    let mut dst6 = None;
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::Ipv6HopLimit(h) => hop_limit = u8::try_from(h).ok(),
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                dst6 = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr))
            }
            _ => {}
        }
    }
    let src6 = msg
        .address
        .and_then(|a| a.as_sockaddr_in6().map(SockaddrIn6::ip));
    let data = buf.get(..len).unwrap_or_default();
    Ok(match src6 {
        Some(src) => match (hop_limit, dst6) {
            (Some(ttl), Some(dst)) => Ok(Received {
                src: src.into(),
                dst: dst.into(),
                ttl,
                payload: data.to_vec(),
            }),
            _ => Err(Error::MissingAncillary),
        },
        // IPv4 raw sockets deliver the IP header with the payload.
        None => parse_ipv4(data),
    })
}

fn parse_ipv4(data: &[u8]) -> Result<Received, Error> {
    let header: &[u8; 20] = data
        .get(..20)
        .and_then(|h| h.try_into().ok())
        .ok_or(Error::BadIpv4Header("shorter than 20 bytes"))?;
    if header[0] >> 4 != 4 {
        return Err(Error::BadIpv4Header("version is not 4"));
    }
    let header_len = usize::from(header[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if header_len < 20 || total_len < header_len {
        return Err(Error::BadIpv4Header("header or total length too small"));
    }
    let payload = data
        .get(header_len..total_len.min(data.len()))
        .ok_or(Error::BadIpv4Header("header longer than the packet"))?;
    Ok(Received {
        src: Ipv4Addr::new(header[12], header[13], header[14], header[15]).into(),
        dst: Ipv4Addr::new(header[16], header[17], header[18], header[19]).into(),
        ttl: header[8],
        payload: payload.to_vec(),
    })
}

fn send_one(
    socket: &Socket,
    ifindex: IfIndex,
    src: IpAddr,
    dst: IpAddr,
    payload: &[u8],
) -> std::io::Result<()> {
    let iov = [IoSlice::new(payload)];
    let fd = socket.as_raw_fd();
    match (dst, src) {
        (IpAddr::V4(dst), src) => {
            let to = nix::sys::socket::SockaddrIn::from(SocketAddrV4::new(dst, 0));
            let info = libc::in_pktinfo {
                ipi_ifindex: ifindex.0 as i32,
                ipi_spec_dst: libc::in_addr {
                    s_addr: match src {
                        IpAddr::V4(a) => u32::from(a).to_be(),
                        _ => 0,
                    },
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let cmsgs = [ControlMessage::Ipv4PacketInfo(&info)];
            nix::sys::socket::sendmsg(fd, &iov, &cmsgs, MsgFlags::empty(), Some(&to))?;
        }
        (IpAddr::V6(dst), src) => {
            let to = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, ifindex.0));
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: match src {
                        IpAddr::V6(a) => a.octets(),
                        _ => [0; 16],
                    },
                },
                ipi6_ifindex: ifindex.0,
            };
            let cmsgs = [ControlMessage::Ipv6PacketInfo(&info)];
            nix::sys::socket::sendmsg(fd, &iov, &cmsgs, MsgFlags::empty(), Some(&to))?;
        }
    }
    Ok(())
}

/// The multicast group for `family_of`'s family.
pub fn multicast_group(family_of: IpAddr) -> IpAddr {
    match family_of {
        IpAddr::V4(_) => MULTICAST_V4.into(),
        IpAddr::V6(_) => MULTICAST_V6.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_gives_addresses_ttl_and_payload() {
        let mut p = vec![
            0x45, 0xc0, 0, 28, 0, 0, 0, 0, 255, 112, 0, 0, 10, 99, 0, 1, 224, 0, 0, 18,
        ];
        p.extend_from_slice(&[0x21, 51, 150, 1, 0, 1, 0, 0]);
        p.extend_from_slice(&[0xee; 4]); // link padding past total length
        let r = parse_ipv4(&p).unwrap();
        assert_eq!(r.src, IpAddr::from([10, 99, 0, 1]));
        assert_eq!(r.dst, IpAddr::from([224, 0, 0, 18]));
        assert_eq!(r.ttl, 255);
        assert_eq!(r.payload, vec![0x21, 51, 150, 1, 0, 1, 0, 0]);
    }

    #[test]
    fn unusable_ipv4_headers_are_errors() {
        assert!(matches!(
            parse_ipv4(&[0x45; 10]),
            Err(Error::BadIpv4Header(_))
        ));
        let mut v6ish = vec![0x65; 20];
        v6ish[2] = 0;
        assert!(matches!(
            parse_ipv4(&v6ish),
            Err(Error::BadIpv4Header("version is not 4"))
        ));
        let mut long_ihl = vec![0u8; 20];
        long_ihl[0] = 0x4f;
        long_ihl[3] = 20;
        assert!(matches!(
            parse_ipv4(&long_ihl),
            Err(Error::BadIpv4Header(_))
        ));
    }
}
