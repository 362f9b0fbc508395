//! The half-open prober's sockets, I/O only. Per address family:
//!
//! - one raw TCP socket (CAP_NET_RAW) that sends every SYN and receives,
//!   through a classic BPF filter, only the SYN-ACKs and RSTs addressed to
//!   the probe port: the kernel runs the filter on each TCP segment it
//!   delivers locally, so the rest of the host's TCP traffic never wakes
//!   the prober;
//! - one ordinary TCP socket bound, never listening, to the probe port. It
//!   keeps the port from every other connection of the host, and since no
//!   socket owns the probe's connection, the kernel answers each SYN-ACK to
//!   it with a RST: the server's half-open connection ends at once and
//!   nothing is ever accepted.
//!
//! The raw socket also asks for ICMP errors (`IP_RECVERR`): an unreachable
//! that quotes one of our SYNs lands on its error queue, so a half-open
//! probe fails as a connect would (no route to host, refused) rather than
//! timing out.
//!
//! IPv4 raw sockets leave the TCP checksum to us, which needs the source
//! address ([`route_source`] asks the kernel which one it would use); IPv6
//! ones compute it themselves (`IPV6_CHECKSUM`), source included.

use super::segment::SYN_LEN;
use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Offset of the checksum in a TCP header, for `IPV6_CHECKSUM`.
const TCP_CHECKSUM_OFFSET: libc::c_int = 16;
/// Large enough for any answer: an IPv4 header with options and a TCP
/// header with options (60 + 60 bytes).
pub const RECV_BUFFER: usize = 128;
/// Most packets one system call sends or receives (`sendmmsg`,
/// `recvmmsg`): a tick's SYNs and their answers cost a few system calls
/// rather than one each.
pub const BATCH: usize = 64;

/// The address family a socket serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The MSS a SYN announces: an Ethernet MTU's, less the headers.
    pub fn mss(self) -> u16 {
        match self {
            Family::V4 => 1460,
            Family::V6 => 1440,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The probe sockets of one family.
pub struct ProbeSocket {
    raw: AsyncFd<Socket>,
    /// Holds the probe port: bound, never listening; closed with us.
    _reserved: Socket,
    /// Kept between reads: no allocation per read.
    buffers: Box<Buffers>,
    port: u16,
    family: Family,
}

impl ProbeSocket {
    /// Reserves a probe port and opens the raw socket, filtered to that
    /// port's answers. Needs CAP_NET_RAW and a tokio runtime.
    pub fn open(family: Family) -> io::Result<Self> {
        let domain = match family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        let reserved = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        let any = match family {
            Family::V4 => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            Family::V6 => {
                // The IPv4 port is the other socket's business.
                reserved.set_only_v6(true)?;
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
            }
        };
        reserved.bind(&any.into())?;
        let port = reserved
            .local_addr()?
            .as_socket()
            .map(|a| a.port())
            .ok_or_else(|| io::Error::other("the reserved socket has no port"))?;
        let raw = Socket::new(domain, Type::RAW, Some(Protocol::TCP))?;
        raw.set_nonblocking(true)?;
        let program: Vec<SockFilter> = filter(family, port)
            .iter()
            .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
            .collect();
        raw.attach_filter(&program)?;
        match family {
            Family::V4 => {
                // Don't fragment, so the kernel need not pick an IP ID for
                // each SYN (a hash of the addresses, a fifth of the send's
                // cost); a SYN is far below any MTU.
                set_int(
                    &raw,
                    libc::IPPROTO_IP,
                    libc::IP_MTU_DISCOVER,
                    libc::IP_PMTUDISC_DO,
                )?;
                set_int(&raw, libc::IPPROTO_IP, libc::IP_RECVERR, 1)?;
            }
            Family::V6 => {
                set_int(
                    &raw,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_CHECKSUM,
                    TCP_CHECKSUM_OFFSET,
                )?;
                set_int(&raw, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)?;
            }
        }
        // Registered for reading only, so that the kernel need not run the
        // epoll callback each time a sent SYN leaves the send buffer; SYNs
        // a full buffer held back go on the next tick instead (see
        // [`Prober::wait`](super::Prober::wait)).
        // SAFETY: the Socket owns its descriptor and keeps it open, unchanged,
        // for as long as the AsyncFd that owns the Socket.
        let raw =
            unsafe { AsyncFd::register_with_interest(raw, Interest::READABLE | Interest::ERROR) }
                .map_err(io::Error::from)?;
        Ok(Self {
            raw,
            _reserved: reserved,
            // SAFETY: byte arrays and sockaddr_in6 are valid all zero.
            buffers: Box::new(unsafe { std::mem::zeroed() }),
            port,
            family,
        })
    }

    /// The probe port: the source port of every SYN.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// Waits until answers or ICMP errors may be waiting. Readiness is
    /// cleared before the caller reads: it must then
    /// [`recv_batch`](Self::recv_batch) until `WouldBlock`, and
    /// [`recv_errors`](Self::recv_errors) (an answer arriving meanwhile
    /// makes the socket ready again).
    pub async fn readable(&self) -> io::Result<()> {
        self.raw
            .ready(Interest::READABLE | Interest::ERROR)
            .await?
            .clear_ready();
        Ok(())
    }

    /// Takes every ICMP error waiting on the socket's error queue and hands
    /// each to `each`: where the packet it quotes was going, the quoted
    /// packet's TCP bytes (at least its ports and sequence number), and the
    /// error a connect would have met. Returns how many were taken.
    pub fn recv_errors(
        &mut self,
        mut each: impl FnMut(IpAddr, &[u8], io::ErrorKind),
    ) -> io::Result<usize> {
        let mut taken = 0;
        loop {
            let mut data = [0u8; RECV_BUFFER];
            // SAFETY: plain C structs, valid all zero.
            let mut name: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            let mut iovec = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: data.len(),
            };
            // Room for the extended error and the offender's address,
            // aligned for cmsghdr.
            let mut control = [0u64; 16];
            // SAFETY: as above.
            let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
            message.msg_name = (&raw mut name).cast();
            message.msg_namelen = std::mem::size_of_val(&name) as libc::socklen_t;
            message.msg_iov = &raw mut iovec;
            message.msg_iovlen = 1;
            message.msg_control = control.as_mut_ptr().cast();
            message.msg_controllen = std::mem::size_of_val(&control) as _;
            // SAFETY: the message points at `data`, `name` and `control`, all
            // alive across the call and sized as it says.
            let read = unsafe {
                libc::recvmsg(
                    self.raw.get_ref().as_raw_fd(),
                    &mut message,
                    libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
                )
            };
            let Ok(read) = usize::try_from(read) else {
                let error = io::Error::last_os_error();
                return match error.kind() {
                    io::ErrorKind::WouldBlock => Ok(taken),
                    _ => Err(error),
                };
            };
            taken += 1;
            let mut error = None;
            // SAFETY: CMSG_FIRSTHDR and CMSG_NXTHDR walk the control buffer
            // the kernel filled, within the length it set; each header they
            // return is whole, and IP(V6)_RECVERR data is a
            // sock_extended_err, read unaligned.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(&message);
                while let Some(header) = cmsg.as_ref() {
                    let recverr = (header.cmsg_level, header.cmsg_type)
                        == (libc::IPPROTO_IP, libc::IP_RECVERR)
                        || (header.cmsg_level, header.cmsg_type)
                            == (libc::IPPROTO_IPV6, libc::IPV6_RECVERR);
                    if recverr {
                        let extended: libc::sock_extended_err =
                            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                        if matches!(
                            extended.ee_origin,
                            libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6
                        ) {
                            error = i32::try_from(extended.ee_errno)
                                .ok()
                                .map(|errno| io::Error::from_raw_os_error(errno).kind());
                        }
                    }
                    cmsg = libc::CMSG_NXTHDR(&message, cmsg);
                }
            }
            // The destination of the packet the ICMP error quotes.
            let target = match i32::from(name.sin6_family) {
                libc::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(name.sin6_addr.s6_addr))),
                libc::AF_INET => {
                    // SAFETY: the kernel wrote a sockaddr_in, which fits in
                    // and is less aligned than a sockaddr_in6.
                    let v4 = unsafe { &*(&raw const name).cast::<libc::sockaddr_in>() };
                    Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
                }
                _ => None,
            };
            if let (Some(target), Some(error)) = (target, error) {
                each(target, data.get(..read).unwrap_or(&data), error);
            }
        }
    }

    /// Sends SYNs (TCP segments), each to its target address, all from
    /// `source`, without waiting: how many went out (from the first on),
    /// or the error of the first if none did. The kernel checks that
    /// `source` is ours (a `bindto` that is not fails here); an unspecified
    /// IPv6 source is its choice. `WouldBlock` when the send buffer is full.
    /// One `sendmmsg`, its headers on the stack: at most [`BATCH`] are
    /// sent.
    pub fn send_batch(
        &self,
        source: IpAddr,
        segments: &[[u8; SYN_LEN]],
        targets: &[IpAddr],
    ) -> io::Result<usize> {
        let count = segments.len().min(targets.len()).min(BATCH);
        // SAFETY (all zeroed values here): these are plain C structs for
        // which all-zero bytes are valid.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        // Addresses of either family fit a sockaddr_in6.
        let mut names: [libc::sockaddr_in6; BATCH] = unsafe { std::mem::zeroed() };
        // Every message of the batch has the same source: one control
        // message serves them all (the kernel only reads it).
        let mut control = Control::new(source);
        for (i, (segment, target)) in segments.iter().zip(targets).take(count).enumerate() {
            let namelen = match (source, target) {
                (IpAddr::V4(_), IpAddr::V4(target)) => {
                    // SAFETY: a sockaddr_in fits in, and is less aligned
                    // than, a sockaddr_in6.
                    let name = unsafe { &mut *(&raw mut names[i]).cast::<libc::sockaddr_in>() };
                    name.sin_family = libc::AF_INET as libc::sa_family_t;
                    name.sin_addr.s_addr = u32::from(*target).to_be();
                    std::mem::size_of::<libc::sockaddr_in>()
                }
                (IpAddr::V6(_), IpAddr::V6(target)) => {
                    names[i].sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    names[i].sin6_addr.s6_addr = target.octets();
                    std::mem::size_of::<libc::sockaddr_in6>()
                }
                _ => return Err(mixed_families()),
            };
            iovecs[i] = libc::iovec {
                iov_base: segment.as_ptr().cast_mut().cast(),
                iov_len: segment.len(),
            };
            let header = &mut headers[i].msg_hdr;
            header.msg_name = (&raw mut names[i]).cast();
            header.msg_namelen = namelen as libc::socklen_t;
            header.msg_iov = &raw mut iovecs[i];
            header.msg_iovlen = 1;
            let (control, len) = control.raw();
            header.msg_control = control;
            // size_t in glibc, socklen_t in musl.
            header.msg_controllen = len as _;
        }
        // SAFETY: the first `count` headers point at names, iovecs, segments
        // and the control message, all alive and unmoved across the call;
        // the kernel writes only the headers' msg_len.
        let sent = unsafe {
            libc::sendmmsg(
                self.raw.get_ref().as_raw_fd(),
                headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        usize::try_from(sent).map_err(|_| match io::Error::last_os_error() {
            // A raw socket with a full send buffer says ENOBUFS where others
            // say EAGAIN: callers see one `WouldBlock` for both.
            e if e.raw_os_error() == Some(libc::ENOBUFS) => io::ErrorKind::WouldBlock.into(),
            e => e,
        })
    }

    /// Receives up to [`BATCH`] answers without waiting and hands each to
    /// `each`: its sender and its TCP bytes. Packets that are no TCP
    /// segment to us (an IPv4 header that does not hold together) are
    /// skipped. Returns how many packets were read; `WouldBlock` when none
    /// was waiting. One `recvmmsg` into buffers kept with the socket.
    pub fn recv_batch(&mut self, mut each: impl FnMut(IpAddr, &[u8])) -> io::Result<usize> {
        let buffers = &mut *self.buffers;
        // SAFETY: plain C structs, valid all zero.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (data, from)) in buffers.data.iter_mut().zip(&mut buffers.from).enumerate() {
            iovecs[i] = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: data.len(),
            };
            let header = &mut headers[i].msg_hdr;
            header.msg_name = std::ptr::from_mut(from).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            header.msg_iov = &raw mut iovecs[i];
            header.msg_iovlen = 1;
        }
        // SAFETY: each header points at its own buffer and address, kept
        // in `self` and not otherwise borrowed across the call, and at an
        // iovec on this stack frame.
        let received = unsafe {
            libc::recvmmsg(
                self.raw.get_ref().as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let received = usize::try_from(received).map_err(|_| io::Error::last_os_error())?;
        for (header, (data, from)) in headers
            .iter()
            .zip(buffers.data.iter().zip(&buffers.from))
            .take(received)
        {
            // A longer packet was cut to the buffer: its headers are there.
            let data = data.get(..header.msg_len as usize).unwrap_or(data);
            let answer = match self.family {
                // IPv4 raw sockets deliver the IP header with the segment.
                Family::V4 => ipv4_payload(data).map(|(src, tcp)| (IpAddr::V4(src), tcp)),
                Family::V6 => (from.sin6_family == libc::AF_INET6 as libc::sa_family_t)
                    .then(|| (IpAddr::V6(Ipv6Addr::from(from.sin6_addr.s6_addr)), data)),
            };
            if let Some((from, tcp)) = answer {
                each(from, tcp);
            }
        }
        Ok(received)
    }
}

/// What one `recvmmsg` reads into: each packet's bytes and sender.
struct Buffers {
    data: [[u8; RECV_BUFFER]; BATCH],
    from: [libc::sockaddr_in6; BATCH],
}

/// The one control message of a batch of SYNs: the source address
/// (`IP_PKTINFO` / `IPV6_PKTINFO`), none for an unspecified IPv6 source.
enum Control {
    V4(Cmsg<libc::in_pktinfo>),
    V6(Cmsg<libc::in6_pktinfo>),
    None,
}

/// A control message as the kernel reads it: the header, then the data,
/// padded to the header's alignment (`CMSG_SPACE`).
#[repr(C)]
struct Cmsg<D> {
    header: libc::cmsghdr,
    data: D,
}

impl<D> Cmsg<D> {
    fn new(level: libc::c_int, kind: libc::c_int, data: D) -> Self {
        // SAFETY: CMSG_LEN only computes a length.
        let len = unsafe { libc::CMSG_LEN(std::mem::size_of::<D>() as libc::c_uint) };
        // SAFETY: a cmsghdr is a plain C struct, valid all zero.
        let mut header: libc::cmsghdr = unsafe { std::mem::zeroed() };
        header.cmsg_len = len as _;
        header.cmsg_level = level;
        header.cmsg_type = kind;
        Self { header, data }
    }

    /// Its address and length (`CMSG_SPACE`, which the struct spans).
    fn raw(&mut self) -> (*mut libc::c_void, usize) {
        // SAFETY: CMSG_SPACE only computes a length.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<D>() as libc::c_uint) } as usize;
        debug_assert!(space <= std::mem::size_of::<Self>());
        (std::ptr::from_mut(self).cast(), space)
    }
}

impl Control {
    fn new(source: IpAddr) -> Self {
        match source {
            IpAddr::V4(source) => Control::V4(Cmsg::new(
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(source).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                },
            )),
            IpAddr::V6(source) if source.is_unspecified() => Control::None,
            IpAddr::V6(source) => Control::V6(Cmsg::new(
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: source.octets(),
                    },
                    ipi6_ifindex: 0,
                },
            )),
        }
    }

    /// `msg_control` and `msg_controllen` for it.
    fn raw(&mut self) -> (*mut libc::c_void, usize) {
        match self {
            Control::V4(cmsg) => cmsg.raw(),
            Control::V6(cmsg) => cmsg.raw(),
            Control::None => (std::ptr::null_mut(), 0),
        }
    }
}

fn mixed_families() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "source and target are of different address families",
    )
}

/// Sets an integer socket option socket2 has no method for.
fn set_int(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads an int from the pointer given, which lives
    // across the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of_val(&value) as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The source address the kernel would use towards `target`: what a
/// connect would pick (route, preferred source), asked of a UDP socket,
/// which sends nothing.
pub fn route_source(target: SocketAddr) -> io::Result<IpAddr> {
    let udp = Socket::new(Domain::for_address(target), Type::DGRAM, None)?;
    udp.connect(&SockAddr::from(target))?;
    udp.local_addr()?
        .as_socket()
        .map(|a| a.ip())
        .ok_or_else(|| io::Error::other("the routing socket has no address"))
}

/// The sender and payload of an IPv4 packet as a raw socket delivers it
/// (reassembled), if the header holds together.
pub fn ipv4_payload(data: &[u8]) -> Option<(Ipv4Addr, &[u8])> {
    let header = data.get(..20)?;
    if header[0] >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(header[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let payload = data.get(header_len.max(20)..total_len.min(data.len()))?;
    Some((
        Ipv4Addr::new(header[12], header[13], header[14], header[15]),
        payload,
    ))
}

/// One classic BPF instruction (`struct sock_filter`), readable in tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const fn insn(code: u32, jt: u8, jf: u8, k: u32) -> Insn {
    Insn {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The filter: accept a TCP segment to `port` with SYN and ACK, or RST,
/// set; drop everything else. An IPv4 raw socket's filter sees the IP
/// header first (its length goes to X); an IPv6 one's sees the TCP header
/// (X is 0).
fn filter(family: Family, port: u16) -> [Insn; 9] {
    use libc::{
        BPF_ALU, BPF_AND, BPF_B, BPF_H, BPF_IMM, BPF_IND, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K,
        BPF_LD, BPF_LDX, BPF_MSH, BPF_RET, BPF_W,
    };
    let header_len = match family {
        // X = 4 * (IP[0] & 0xf)
        Family::V4 => insn(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 0),
        Family::V6 => insn(BPF_LDX | BPF_W | BPF_IMM, 0, 0, 0),
    };
    [
        header_len,
        // A = destination port
        insn(BPF_LD | BPF_H | BPF_IND, 0, 0, 2),
        insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, u32::from(port)),
        // A = flags
        insn(BPF_LD | BPF_B | BPF_IND, 0, 0, 13),
        insn(BPF_JMP | BPF_JSET | BPF_K, 2, 0, 0x04),
        insn(BPF_ALU | BPF_AND | BPF_K, 0, 0, 0x12),
        insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0x12),
        // Keep the whole packet.
        insn(BPF_RET | BPF_K, 0, 0, u32::MAX),
        insn(BPF_RET | BPF_K, 0, 0, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a filter over `packet` the way the kernel's classic BPF does,
    /// for the instructions [`filter`] uses; returns how many bytes it
    /// keeps.
    fn run(program: &[Insn], packet: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |at: usize| packet.get(at).copied().map(u32::from);
        loop {
            let i = program[pc];
            pc += 1;
            let code = u32::from(i.code);
            let at = x as usize + i.k as usize;
            match code {
                c if c == libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH => {
                    let Some(b) = byte(i.k as usize) else {
                        return 0;
                    };
                    x = 4 * (b & 0x0f);
                }
                c if c == libc::BPF_LDX | libc::BPF_W | libc::BPF_IMM => x = i.k,
                c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_IND => {
                    let (Some(hi), Some(lo)) = (byte(at), byte(at + 1)) else {
                        return 0;
                    };
                    a = hi << 8 | lo;
                }
                c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_IND => {
                    let Some(b) = byte(at) else { return 0 };
                    a = b;
                }
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= i.k,
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => {
                    pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf });
                }
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                other => panic!("instruction {other:#x} not modelled"),
            }
        }
    }

    // The SYN-ACK of 127.0.0.1:8080 to our probe port 40000, as a raw IPv4
    // socket received it on Linux 6.18 (see segment.rs for the capture).
    static SYN_ACK_V4: [u8; 44] = [
        0x45, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x3c, 0xca, 0x7f, 0x00, 0x00,
        0x01, 0x7f, 0x00, 0x00, 0x01, 0x1f, 0x90, 0x9c, 0x40, 0x2a, 0x0a, 0xba, 0xc4, 0x11, 0x22,
        0x33, 0x45, 0x60, 0x12, 0xff, 0xd7, 0xfe, 0x20, 0x00, 0x00, 0x02, 0x04, 0xff, 0xd7,
    ];
    // The RST-ACK of the closed 127.0.0.1:8081.
    static RST_V4: [u8; 40] = [
        0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x3c, 0xce, 0x7f, 0x00, 0x00,
        0x01, 0x7f, 0x00, 0x00, 0x01, 0x1f, 0x91, 0x9c, 0x40, 0x00, 0x00, 0x00, 0x00, 0x55, 0x66,
        0x77, 0x89, 0x50, 0x14, 0x00, 0x00, 0x29, 0x0d, 0x00, 0x00,
    ];

    #[test]
    fn the_filter_keeps_syn_acks_and_resets_to_the_probe_port_only() {
        let v4 = filter(Family::V4, 40000);
        assert_eq!(run(&v4, &SYN_ACK_V4), u32::MAX);
        assert_eq!(run(&v4, &RST_V4), u32::MAX);
        assert_eq!(run(&filter(Family::V4, 40001), &SYN_ACK_V4), 0);
        let mut other = SYN_ACK_V4;
        for flags in [0x02, 0x10, 0x18, 0x11] {
            other[33] = flags;
            assert_eq!(run(&v4, &other), 0, "flags {flags:#x}");
        }
        // IP options move the TCP header: X follows the IHL.
        let mut options = vec![0x46];
        options.extend_from_slice(&SYN_ACK_V4[1..20]);
        options.extend_from_slice(&[1, 1, 1, 0]);
        options.extend_from_slice(&SYN_ACK_V4[20..]);
        assert_eq!(run(&v4, &options), u32::MAX);
        assert_eq!(run(&v4, &SYN_ACK_V4[..30]), 0);

        // An IPv6 raw socket's filter sees the segment alone.
        let v6 = filter(Family::V6, 40000);
        assert_eq!(run(&v6, &SYN_ACK_V4[20..]), u32::MAX);
        assert_eq!(run(&v6, &RST_V4[20..]), u32::MAX);
        assert_eq!(run(&v6, &SYN_ACK_V4), 0);
    }

    #[test]
    fn an_ipv4_packet_gives_its_sender_and_segment() {
        let (from, tcp) = ipv4_payload(&SYN_ACK_V4).unwrap();
        assert_eq!(from, Ipv4Addr::LOCALHOST);
        assert_eq!(tcp, &SYN_ACK_V4[20..]);
        // Link padding past the total length is not part of the segment.
        let mut padded = RST_V4.to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(ipv4_payload(&padded).unwrap().1, &RST_V4[20..]);
        assert_eq!(ipv4_payload(&RST_V4[..19]), None);
        let mut v6 = RST_V4;
        v6[0] = 0x65;
        assert_eq!(ipv4_payload(&v6), None);
    }
}
