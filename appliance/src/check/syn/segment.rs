//! The TCP segments of a half-open probe, in smoltcp's style: `Segment` is a
//! zero-copy view of a TCP header with one accessor per field, [`Syn`] is
//! the probe we send, [`Answer`] what a server's reply to it means and
//! [`Quote`] which probe an ICMP error is about. Only what a probe needs: no payload, no option other than the MSS we
//! announce.

use crate::checksum::{fold, pseudo_header_sum, sum_words};
use std::net::IpAddr;

/// IP protocol number (IPv4) and next header (IPv6) of TCP.
pub const IP_PROTOCOL: u8 = 6;
/// A TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS;

/// Control bits (RFC 9293 §3.1).
pub mod flags {
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

mod field {
    use std::ops::Range;

    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const SEQ: Range<usize> = 4..8;
    pub(super) const ACK: Range<usize> = 8..12;
    /// Data offset (header length in 32-bit words) in the high nibble.
    pub(super) const DATA_OFFSET: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: Range<usize> = 14..16;
    pub(super) const CHECKSUM: Range<usize> = 16..18;
    pub(super) const URGENT: Range<usize> = 18..20;
    pub(super) const OPTIONS: usize = 20;
}

/// Option kind of the maximum segment size (RFC 9293 §3.2), and its length.
const OPTION_MSS: u8 = 2;
const OPTION_MSS_LEN: u8 = 4;
/// Length of a [`Syn`]: the header and the MSS option.
pub const SYN_LEN: usize = HEADER_LEN + OPTION_MSS_LEN as usize;
/// The receive window a SYN announces: Linux's own for an Ethernet MTU. A
/// probe never takes data, but a SYN should look like any client's.
const SYN_WINDOW: u16 = 64240;

/// Why received bytes are not an answer to a probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("truncated: {len} bytes where the TCP header needs {need}")]
    Truncated { len: usize, need: usize },
    #[error("data offset {0}: a TCP header is 5 to 15 words")]
    BadDataOffset(u8),
    #[error("flags {0:#04x}: neither SYN-ACK nor RST-ACK")]
    NotAnAnswer(u8),
}

/// A read/write view of a TCP header (the IP payload).
#[derive(Debug, Clone)]
pub struct Segment<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Segment<T> {
    /// Wraps a buffer without checking it: for writing into a buffer of
    /// [`SYN_LEN`] bytes. Accessors panic on a buffer shorter than
    /// `check_len` requires; use `new_checked` for received bytes.
    pub fn new_unchecked(buffer: T) -> Segment<T> {
        Segment { buffer }
    }

    /// `new_unchecked` followed by `check_len`.
    pub fn new_checked(buffer: T) -> Result<Segment<T>, Error> {
        let segment = Self::new_unchecked(buffer);
        segment.check_len()?;
        Ok(segment)
    }

    /// Makes sure no accessor can panic: the buffer holds the header its
    /// data offset announces, and that offset is a valid one.
    pub fn check_len(&self) -> Result<(), Error> {
        let data = self.buffer.as_ref();
        let len = data.len();
        if len < HEADER_LEN {
            return Err(Error::Truncated {
                len,
                need: HEADER_LEN,
            });
        }
        let words = data[field::DATA_OFFSET] >> 4;
        if words < 5 {
            return Err(Error::BadDataOffset(words));
        }
        let need = usize::from(words) * 4;
        if len < need {
            return Err(Error::Truncated { len, need });
        }
        Ok(())
    }

    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT.start)
    }

    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT.start)
    }

    pub fn seq_number(&self) -> u32 {
        self.read_u32(field::SEQ.start)
    }

    pub fn ack_number(&self) -> u32 {
        self.read_u32(field::ACK.start)
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// The control bits (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn window(&self) -> u16 {
        self.read_u16(field::WINDOW.start)
    }

    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// The value the checksum field must hold for a segment from `src` to
    /// `dst` (RFC 9293 §3.1: over the pseudo-header and the segment).
    pub fn compute_checksum(&self, src: IpAddr, dst: IpAddr) -> u16 {
        let data = self.buffer.as_ref();
        let before = &data[..field::CHECKSUM.start];
        let after = &data[field::CHECKSUM.end..];
        !fold(sum_words(
            sum_words(pseudo_header_sum(src, dst, IP_PROTOCOL, data.len()), before),
            after,
        ))
    }

    fn read_u16(&self, at: usize) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[at], data[at + 1]])
    }

    fn read_u32(&self, at: usize) -> u32 {
        let data = self.buffer.as_ref();
        u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Segment<T> {
    pub fn set_src_port(&mut self, value: u16) {
        self.write(field::SRC_PORT.start, &value.to_be_bytes());
    }

    pub fn set_dst_port(&mut self, value: u16) {
        self.write(field::DST_PORT.start, &value.to_be_bytes());
    }

    pub fn set_seq_number(&mut self, value: u32) {
        self.write(field::SEQ.start, &value.to_be_bytes());
    }

    pub fn set_ack_number(&mut self, value: u32) {
        self.write(field::ACK.start, &value.to_be_bytes());
    }

    /// Sets the data offset from a header length in bytes (a multiple of
    /// four, 20 to 60).
    pub fn set_header_len(&mut self, len: usize) {
        let words = u8::try_from(len / 4).unwrap_or(0x0f).min(0x0f);
        self.buffer.as_mut()[field::DATA_OFFSET] = words << 4;
    }

    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    pub fn set_window(&mut self, value: u16) {
        self.write(field::WINDOW.start, &value.to_be_bytes());
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.write(field::CHECKSUM.start, &value.to_be_bytes());
    }

    pub fn set_urgent(&mut self, value: u16) {
        self.write(field::URGENT.start, &value.to_be_bytes());
    }

    /// The bytes after the fixed header, up to the data offset.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    /// Computes and stores the checksum for a segment from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let sum = self.compute_checksum(src, dst);
        self.set_checksum(sum);
    }

    fn write(&mut self, at: usize, bytes: &[u8]) {
        self.buffer.as_mut()[at..at + bytes.len()].copy_from_slice(bytes);
    }
}

/// A probe: a bare SYN announcing an MSS, as any client's first segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syn {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    /// The MSS option's value: what the path could carry (we never take
    /// data, but a SYN without one is a scanner's mark).
    pub mss: u16,
}

impl Syn {
    /// Writes the SYN into `segment` ([`SYN_LEN`] bytes). With `addresses`
    /// (source, destination) the checksum is filled in; without, it is left
    /// zero for the kernel to fill (IPv6 raw sockets with `IPV6_CHECKSUM`).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        segment: &mut Segment<T>,
        addresses: Option<(IpAddr, IpAddr)>,
    ) {
        segment.set_src_port(self.src_port);
        segment.set_dst_port(self.dst_port);
        segment.set_seq_number(self.seq);
        segment.set_ack_number(0);
        segment.set_header_len(SYN_LEN);
        segment.set_flags(flags::SYN);
        segment.set_window(SYN_WINDOW);
        segment.set_checksum(0);
        segment.set_urgent(0);
        let [hi, lo] = self.mss.to_be_bytes();
        segment
            .options_mut()
            .copy_from_slice(&[OPTION_MSS, OPTION_MSS_LEN, hi, lo]);
        if let Some((src, dst)) = addresses {
            segment.fill_checksum(src, dst);
        }
    }
}

/// What a server said to a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// SYN-ACK: something listens.
    Listening,
    /// RST-ACK: the port is closed.
    Refused,
}

/// A reply to a probe: from whom (port), to which probe port, acknowledging
/// which sequence number, and its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub src_port: u16,
    pub dst_port: u16,
    /// The acknowledgment number: the probe's sequence number plus one.
    pub ack: u32,
    pub verdict: Verdict,
}

impl Answer {
    /// Reads a reply to a SYN. Both answers RFC 9293 allows carry ACK: a
    /// SYN-ACK, or a RST-ACK whose acknowledgment number is the SYN's
    /// sequence number plus one (§3.10.7.1); anything else answers no probe.
    pub fn parse<T: AsRef<[u8]>>(segment: &Segment<T>) -> Result<Answer, Error> {
        let bits = segment.flags();
        let verdict = match bits & (flags::SYN | flags::RST | flags::ACK) {
            b if b == flags::SYN | flags::ACK => Verdict::Listening,
            b if b == flags::RST | flags::ACK => Verdict::Refused,
            _ => return Err(Error::NotAnAnswer(bits)),
        };
        Ok(Answer {
            src_port: segment.src_port(),
            dst_port: segment.dst_port(),
            ack: segment.ack_number(),
            verdict,
        })
    }
}

/// Our SYN as an ICMP error quotes it: RFC 792 quotes at least the first
/// 8 bytes of the datagram's payload, the ports and the sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
}

impl Quote {
    /// Reads the quoted TCP bytes; `None` if fewer than 8.
    pub fn parse(quoted: &[u8]) -> Option<Quote> {
        let &[s0, s1, d0, d1, q0, q1, q2, q3] = quoted.first_chunk::<8>()?;
        Some(Quote {
            src_port: u16::from_be_bytes([s0, s1]),
            dst_port: u16::from_be_bytes([d0, d1]),
            seq: u32::from_be_bytes([q0, q1, q2, q3]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on Linux 6.18 loopback with a raw socket (probe port 40000,
    // listener on 8080, nothing on 8081). Our SYN to 127.0.0.1:8080, seq
    // 0x11223344, MSS 1460; the kernel of the receiving end answered it.
    static SYN_V4: [u8; 24] = [
        0x9c, 0x40, 0x1f, 0x90, 0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa,
        0xf0, 0x9e, 0xfc, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    ];
    // The listener's SYN-ACK (after the 20-byte IPv4 header). Its checksum
    // field holds only the pseudo-header's sum: loopback offloads it.
    static SYN_ACK_V4: [u8; 24] = [
        0x1f, 0x90, 0x9c, 0x40, 0x2a, 0x0a, 0xba, 0xc4, 0x11, 0x22, 0x33, 0x45, 0x60, 0x12, 0xff,
        0xd7, 0xfe, 0x20, 0x00, 0x00, 0x02, 0x04, 0xff, 0xd7,
    ];
    // The RST-ACK to a SYN with seq 0x55667788 for the closed port 8081.
    static RST_V4: [u8; 20] = [
        0x1f, 0x91, 0x9c, 0x40, 0x00, 0x00, 0x00, 0x00, 0x55, 0x66, 0x77, 0x89, 0x50, 0x14, 0x00,
        0x00, 0x29, 0x0d, 0x00, 0x00,
    ];
    // Over IPv6 (::1), seq 0x99aabbcc, MSS 1440: the SYN-ACK.
    static SYN_ACK_V6: [u8; 24] = [
        0x1f, 0x90, 0x9c, 0x40, 0xd7, 0x0f, 0xed, 0x9d, 0x99, 0xaa, 0xbb, 0xcd, 0x60, 0x12, 0xff,
        0xc4, 0x00, 0x20, 0x00, 0x00, 0x02, 0x04, 0xff, 0xc4,
    ];

    fn localhost() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    #[test]
    fn a_syn_is_built_byte_for_byte_with_its_checksum() {
        let syn = Syn {
            src_port: 40000,
            dst_port: 8080,
            seq: 0x1122_3344,
            mss: 1460,
        };
        let mut bytes = [0xee; SYN_LEN];
        syn.emit(
            &mut Segment::new_unchecked(&mut bytes[..]),
            Some((localhost(), localhost())),
        );
        assert_eq!(bytes, SYN_V4);
        let segment = Segment::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            segment.compute_checksum(localhost(), localhost()),
            segment.checksum()
        );
    }

    #[test]
    fn without_addresses_the_checksum_is_left_to_the_kernel() {
        let syn = Syn {
            src_port: 40000,
            dst_port: 8080,
            seq: 0x99aa_bbcc,
            mss: 1440,
        };
        let mut bytes = [0xee; SYN_LEN];
        syn.emit(&mut Segment::new_unchecked(&mut bytes[..]), None);
        let segment = Segment::new_checked(&bytes[..]).unwrap();
        assert_eq!(segment.checksum(), 0);
        assert_eq!(segment.flags(), flags::SYN);
        assert_eq!(segment.header_len(), SYN_LEN);
        assert_eq!(segment.window(), SYN_WINDOW);
        assert_eq!(&bytes[20..], &[2, 4, 0x05, 0xa0]);
    }

    #[test]
    fn captured_replies_are_answers() {
        let ipv4 = Answer::parse(&Segment::new_checked(&SYN_ACK_V4[..]).unwrap()).unwrap();
        assert_eq!(
            ipv4,
            Answer {
                src_port: 8080,
                dst_port: 40000,
                ack: 0x1122_3345,
                verdict: Verdict::Listening,
            }
        );
        let refused = Answer::parse(&Segment::new_checked(&RST_V4[..]).unwrap()).unwrap();
        assert_eq!(
            refused,
            Answer {
                src_port: 8081,
                dst_port: 40000,
                ack: 0x5566_7789,
                verdict: Verdict::Refused,
            }
        );
        let ipv6 = Answer::parse(&Segment::new_checked(&SYN_ACK_V6[..]).unwrap()).unwrap();
        assert_eq!((ipv6.ack, ipv6.verdict), (0x99aa_bbcd, Verdict::Listening));
    }

    #[test]
    fn other_segments_answer_no_probe() {
        let mut bytes = SYN_ACK_V4;
        for bits in [
            flags::SYN,
            flags::ACK,
            flags::RST,
            flags::SYN | flags::ACK | flags::RST,
            0x11, // FIN-ACK
        ] {
            bytes[13] = bits;
            assert_eq!(
                Answer::parse(&Segment::new_checked(&bytes[..]).unwrap()),
                Err(Error::NotAnAnswer(bits))
            );
        }
    }

    #[test]
    fn short_or_malformed_headers_are_refused() {
        assert_eq!(
            Segment::new_checked(&RST_V4[..19]).unwrap_err(),
            Error::Truncated { len: 19, need: 20 }
        );
        // The SYN-ACK announces 24 bytes of header.
        assert_eq!(
            Segment::new_checked(&SYN_ACK_V4[..22]).unwrap_err(),
            Error::Truncated { len: 22, need: 24 }
        );
        let mut bytes = RST_V4;
        bytes[12] = 0x40;
        assert_eq!(
            Segment::new_checked(&bytes[..]).unwrap_err(),
            Error::BadDataOffset(4)
        );
    }

    #[test]
    fn an_icmp_quote_names_the_probe_by_its_first_eight_bytes() {
        assert_eq!(
            Quote::parse(&SYN_V4[..8]),
            Some(Quote {
                src_port: 40000,
                dst_port: 8080,
                seq: 0x1122_3344
            })
        );
        assert_eq!(Quote::parse(&SYN_V4[..7]), None);
    }
}
