//! The Internet checksum (RFC 1071) and the IP pseudo-header sum that VRRP
//! v3 (RFC 5798 §5.2.8) and TCP (RFC 9293 §3.1) put under it, for IPv4
//! (RFC 768 layout) and IPv6 (RFC 8200 §8.1): one implementation for every
//! wire format the appliance builds or checks.

use std::net::IpAddr;

/// Adds `data` as big-endian 16-bit words (a trailing odd byte is the high
/// half of a last word) to `acc`.
pub fn sum_words(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        if let [hi, lo] = pair {
            acc += u64::from(u16::from_be_bytes([*hi, *lo]));
        }
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a running sum into 16 bits, carries added back in.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The pseudo-header's sum for a message of `len` bytes of `protocol`
/// from `src` to `dst` (both of one family).
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> u64 {
    let addresses = |acc, ip: IpAddr| match ip {
        IpAddr::V4(a) => sum_words(acc, &a.octets()),
        IpAddr::V6(a) => sum_words(acc, &a.octets()),
    };
    // Both halves, so that the IPv6 32-bit length is right and an IPv4
    // length (always < 64 KiB) is unchanged.
    let len = len as u64;
    addresses(addresses(0, src), dst) + u64::from(protocol) + (len >> 16) + (len & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_words(0, &data)), 0xddf2);
    }

    #[test]
    fn an_odd_byte_is_the_high_half_of_a_last_word() {
        assert_eq!(sum_words(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn the_pseudo_header_counts_addresses_protocol_and_length() {
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let dst: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            pseudo_header_sum(src, dst, 6, 20),
            0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 20
        );
        let big: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            pseudo_header_sum(big, big, 112, 0x1_0004),
            1 + 1 + 112 + 1 + 4
        );
    }
}
