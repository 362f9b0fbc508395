//! What both netlink backends (IPVS over generic netlink, nftables over
//! nf_tables) share: a socket to the kernel whose reads give up, and
//! cutting a received datagram into its messages. The kernel packs several
//! messages in one datagram, each 4-byte aligned.

use netlink_packet_core::NetlinkBuffer;
use netlink_sys::{Socket, SocketAddr};
use std::io;
use std::time::Duration;

/// How long the kernel may stay silent while a request's answers are
/// read; past it the request fails, and the daemon tries it again later,
/// rather than wait for a kernel that does not answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A netlink socket of `protocol`, bound and connected to the kernel,
/// whose reads give up after `timeout`.
pub fn open(protocol: isize, timeout: Duration) -> io::Result<Socket> {
    let mut socket = Socket::new(protocol)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let micros = libc::suseconds_t::from(timeout.subsec_micros());
    let seconds = libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX);
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(seconds, micros),
    )?;
    Ok(socket)
}

/// The next datagram from the kernel; a read that times out is an error
/// saying so (answers that come later are told apart by their sequence
/// numbers and skipped).
pub fn receive(socket: &mut Socket, timeout: Duration) -> io::Result<Vec<u8>> {
    // Tests hold here to play a kernel slow to answer.
    crate::fail_point!("dataplane-netlink");
    match socket.recv_from_full() {
        Ok((data, _)) => Ok(data),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the kernel did not answer within {timeout:?}"),
            ))
        }
        Err(e) => Err(e),
    }
}

/// The messages of one datagram, in order; a malformed length (shorter
/// than a header, or past the datagram's end) ends the walk with an error
/// saying what is wrong.
pub fn messages(datagram: &[u8]) -> impl Iterator<Item = Result<&[u8], String>> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // new_checked proves the length covers a header and fits the buffer.
        let checked = NetlinkBuffer::new_checked(rest).map(|b| b.length() as usize);
        let (one, after) = match checked {
            Ok(len) => rest.split_at(len.min(rest.len())),
            Err(e) => {
                rest = &[];
                return Some(Err(e.to_string()));
            }
        };
        rest = after
            .get(one.len().next_multiple_of(4) - one.len()..)
            .unwrap_or(&[]);
        Some(Ok(one))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink header of `len` bytes (type 3, NLMSG_DONE) and its body.
    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0u8; len as usize];
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&3u16.to_ne_bytes());
        m
    }

    #[test]
    fn a_kernel_that_does_not_answer_is_a_timeout() {
        let timeout = Duration::from_millis(50);
        let mut socket = open(netlink_sys::protocols::NETLINK_GENERIC, timeout).unwrap();
        let start = std::time::Instant::now();
        // Nothing asked: nothing will come.
        let e = receive(&mut socket, timeout).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("did not answer within 50ms"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn aligned_messages_are_split_in_order() {
        let mut datagram = message(20);
        let second = message(22);
        datagram.extend(&second);
        datagram.extend([0u8; 2]); // padding to 4 bytes
        datagram.extend(message(16));
        let lens: Vec<usize> = messages(&datagram).map(|m| m.unwrap().len()).collect();
        assert_eq!(lens, [20, 22, 16]);
    }

    #[test]
    fn bad_lengths_are_errors_not_panics() {
        let mut zero = message(16);
        zero[..4].copy_from_slice(&0u32.to_ne_bytes());
        let mut cut = message(40);
        cut.truncate(24);
        for bad in [&zero[..], &cut[..], &[1, 2, 3][..]] {
            let mut walk = messages(bad);
            assert!(matches!(walk.next(), Some(Err(_))), "{bad:?}");
            assert_eq!(walk.next(), None, "the walk ends at the error");
        }
    }
}
