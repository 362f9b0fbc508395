//! What both netlink backends (IPVS over generic netlink, nftables over
//! nf_tables) share: cutting a received datagram into its messages. The
//! kernel packs several messages in one datagram, each 4-byte aligned.

use netlink_packet_core::NetlinkBuffer;

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
