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
/// More VRIDs than a classic BPF jump reaches: the filter then checks the
/// version alone.
const MAX_FILTERED_VRIDS: usize = 200;

/// The classic BPF program of [`VrrpSocket::only_vrids`], as (code, jt, jf,
/// k). An IPv4 raw socket's packets start at the IP header (its length in
/// the first byte); an IPv6 one's at the VRRP header.
fn vrid_filter(ipv6: bool, vrids: &[u8]) -> Vec<(u16, u8, u8, u32)> {
    const LDX_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
    const LDX_IMM: u16 = (libc::BPF_LDX | libc::BPF_W | libc::BPF_IMM) as u16;
    const LDB_IND: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_IND) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let vrids: &[u8] = if vrids.len() > MAX_FILTERED_VRIDS {
        &[]
    } else {
        vrids
    };
    let n = u8::try_from(vrids.len()).unwrap_or(u8::MAX);
    let mut program = vec![
        // X: where the VRRP header starts.
        if ipv6 {
            (LDX_IMM, 0, 0, 0)
        } else {
            (LDX_MSH, 0, 0, 0)
        },
        // Version and type: a v2 or v3 advertisement.
        (LDB_IND, 0, 0, 0),
        (JEQ, 1, 0, 0x21),
        (JEQ, 0, n + 1, 0x31),
    ];
    if vrids.is_empty() {
        program.push((JA, 0, 0, 1));
    } else {
        program.push((LDB_IND, 0, 0, 1));
    }
    // Each VRID jumps to accept; the last falls through to reject.
    for (i, vrid) in vrids.iter().enumerate() {
        let to_accept = n - u8::try_from(i).unwrap_or(u8::MAX);
        program.push((JEQ, to_accept, 0, u32::from(*vrid)));
    }
    program.push((RET, 0, 0, 0));
    program.push((RET, 0, 0, u32::MAX));
    program
}

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
    /// Opens a socket on `ifname` for the family of `family_of`, joining
    /// `group` if given (of that family; without one only unicast peers
    /// are talked to).
    pub fn open(
        ifname: &str,
        ifindex: IfIndex,
        family_of: IpAddr,
        group: Option<IpAddr>,
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
                if let Some(IpAddr::V4(group)) = group {
                    s.join_multicast_v4_n(
                        &group,
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
                if let Some(IpAddr::V6(group)) = group {
                    s.join_multicast_v6(&group, ifindex.0).map_err(setup)?;
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

    /// Keeps only VRRP adverts (version 2 or 3) of `vrids` on this socket,
    /// filtered in the kernel: a flood of garbage or of other routers'
    /// adverts then never wakes the daemon, nor fills the socket's buffer
    /// ahead of the adverts that count. Replaces the previous filter (a
    /// reload changes the VRIDs).
    pub fn only_vrids(&self, vrids: &[u8]) -> Result<(), Error> {
        let ipv6 = self.io.get_ref().domain().is_ok_and(|d| d == Domain::IPV6);
        let program: Vec<socket2::SockFilter> = vrid_filter(ipv6, vrids)
            .into_iter()
            .map(|(code, jt, jf, k)| socket2::SockFilter::new(code, jt, jf, k))
            .collect();
        self.io
            .get_ref()
            .attach_filter(&program)
            .map_err(|source| Error::Setup {
                ifname: self.ifname.clone(),
                source,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a program of [`vrid_filter`]'s instructions over `packet`:
    /// how many bytes the kernel would keep (0: dropped).
    fn run_filter(program: &[(u16, u8, u8, u32)], packet: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |at: u32| packet.get(at as usize).copied().map(u32::from);
        loop {
            let (code, jt, jf, k) = program[pc];
            pc += 1;
            match u32::from(code) {
                c if c == libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH => {
                    x = 4 * (byte(k).unwrap_or(0) & 0xf);
                }
                c if c == libc::BPF_LDX | libc::BPF_W | libc::BPF_IMM => x = k,
                c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_IND => match byte(x + k) {
                    Some(b) => a = b,
                    // Past the end: the kernel drops the packet.
                    None => return 0,
                },
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if a == k { jt } else { jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += k as usize,
                c if c == libc::BPF_RET | libc::BPF_K => return k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_filter_keeps_adverts_of_our_vrids_only() {
        let ipv4 = |payload: &[u8]| {
            let mut packet = vec![
                0x45, 0, 0, 0, 0, 0, 0, 0, 255, 112, 0, 0, 10, 0, 0, 1, 224, 0, 0, 18,
            ];
            packet.extend_from_slice(payload);
            packet
        };
        let v4 = vrid_filter(false, &[51, 52]);
        assert_ne!(run_filter(&v4, &ipv4(&[0x31, 51, 100, 0])), 0);
        assert_ne!(run_filter(&v4, &ipv4(&[0x21, 52, 100, 0])), 0);
        assert_eq!(
            run_filter(&v4, &ipv4(&[0x31, 53, 100, 0])),
            0,
            "another VRID"
        );
        assert_eq!(
            run_filter(&v4, &ipv4(&[0x32, 51, 100, 0])),
            0,
            "not an advert"
        );
        assert_eq!(run_filter(&v4, &ipv4(&[0x41, 51, 100, 0])), 0, "version 4");
        assert_eq!(run_filter(&v4, &ipv4(&[])), 0, "no VRRP header");
        // IPv6 raw sockets hand over the VRRP header first.
        let v6 = vrid_filter(true, &[7]);
        assert_ne!(run_filter(&v6, &[0x31, 7, 100, 0]), 0);
        assert_eq!(run_filter(&v6, &[0x31, 8, 100, 0]), 0);
        // Too many VRIDs for the jumps: the version alone is checked.
        let all: Vec<u8> = (1..=255).collect();
        let wide = vrid_filter(false, &all);
        assert_ne!(run_filter(&wide, &ipv4(&[0x31, 200, 100, 0])), 0);
        assert_eq!(run_filter(&wide, &ipv4(&[0x11, 200, 100, 0])), 0);
        let none = vrid_filter(false, &[]);
        assert_ne!(run_filter(&none, &ipv4(&[0x31, 9, 100, 0])), 0);
    }

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
