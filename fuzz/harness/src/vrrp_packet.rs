//! The VRRP advertisement parser: the first bytes choose the IP context
//! (family, addresses, TTL), the rest is the VRRP message. Whatever parses
//! must re-emit and parse back to the same meaning.

use appliance::vrrp::packet::{IpContext, Packet, Repr};
use std::net::{Ipv4Addr, Ipv6Addr};

pub fn vrrp_packet(data: &[u8]) {
    let Some((ctx, fix_checksum, msg)) = context(data) else {
        return;
    };
    let mut msg = msg.to_vec();
    // Random bytes almost never sum right: without this the fuzzer would
    // rarely get past the checksum rule.
    if fix_checksum && msg.len() >= 8 {
        Packet::new_unchecked(&mut msg).fill_checksum(&ctx);
    }
    let Ok(packet) = Packet::new_checked(&msg[..]) else {
        return;
    };
    let _ = packet.verify_checksum(&ctx);
    let _ = packet.auth_data();
    let _ = packet.ipv4_addresses().count() + packet.ipv6_addresses().count();
    if let Ok(repr) = Repr::parse(&packet, &ctx) {
        let mut out = vec![0; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut out), &ctx)
            .expect("a parsed Repr emits");
        let again = Packet::new_checked(&out[..]).expect("emitted bytes are long enough");
        assert_eq!(Repr::parse(&again, &ctx).as_ref(), Ok(&repr));
    }
}

/// Splits off the context: 1 byte of choices (bit 0: IPv6, bit 1: fix the
/// checksum, bit 7: TTL from the low bits instead of 255), then the
/// addresses (4 + 4 or 16 + 16 bytes).
fn context(data: &[u8]) -> Option<(IpContext, bool, &[u8])> {
    let (&selector, rest) = data.split_first()?;
    // Mostly TTL 255, so that the checks after the TTL rule get exercised.
    let ttl = if selector & 0x80 == 0 {
        255
    } else {
        selector & 0x7f
    };
    let fix_checksum = selector & 2 != 0;
    if selector & 1 == 0 {
        let (addrs, msg) = rest.split_at_checked(8)?;
        let (src, dst) = addrs.split_at(4);
        let src = Ipv4Addr::from(<[u8; 4]>::try_from(src).ok()?);
        let dst = Ipv4Addr::from(<[u8; 4]>::try_from(dst).ok()?);
        Some((IpContext::V4 { src, dst, ttl }, fix_checksum, msg))
    } else {
        let (addrs, msg) = rest.split_at_checked(32)?;
        let (src, dst) = addrs.split_at(16);
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(src).ok()?);
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(dst).ok()?);
        Some((
            IpContext::V6 {
                src,
                dst,
                hop_limit: ttl,
            },
            fix_checksum,
            msg,
        ))
    }
}
