//! Framing of a BGP byte stream: bytes go in as TCP delivers them, whole
//! messages come out, decoded; a malformed one comes out as the
//! NOTIFICATION the peer is owed (RFC 4271 §6), after which the stream is
//! unusable (nothing tells where the next message starts).

use bytes::{Bytes, BytesMut};
use rustbgpd_wire::{
    MAX_MESSAGE_LEN, Message, NotificationMessage, decode_message, peek_message_length,
};

/// What the peer sent: a message, or a malformed one (with the
/// NOTIFICATION that answers it, and why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Message(Message),
    Malformed {
        notification: NotificationMessage,
        reason: String,
    },
}

/// The bytes received and not yet decoded.
#[derive(Debug, Default)]
pub struct Framer {
    buffer: BytesMut,
    broken: bool,
}

impl Framer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `bytes` and returns the messages they complete, in order.
    /// After a malformed message, everything is dropped.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Received> {
        if self.broken {
            return Vec::new();
        }
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let length = match peek_message_length(&self.buffer, MAX_MESSAGE_LEN) {
                Ok(Some(length)) => usize::from(length),
                Ok(None) => break,
                Err(e) => {
                    out.push(self.malformed(&e));
                    break;
                }
            };
            if self.buffer.len() < length {
                break;
            }
            let mut message: Bytes = self.buffer.split_to(length).freeze();
            match decode_message(&mut message, MAX_MESSAGE_LEN) {
                Ok(decoded) => out.push(Received::Message(decoded)),
                Err(e) => {
                    out.push(self.malformed(&e));
                    break;
                }
            }
        }
        out
    }

    fn malformed(&mut self, error: &rustbgpd_wire::DecodeError) -> Received {
        self.broken = true;
        self.buffer.clear();
        let (code, subcode, data) = error.to_notification();
        Received::Malformed {
            notification: NotificationMessage::new(code, subcode, data),
            reason: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustbgpd_wire::{NotificationCode, encode_message};

    fn keepalive() -> Vec<u8> {
        encode_message(&Message::Keepalive).unwrap().to_vec()
    }

    #[test]
    fn messages_come_out_whole_however_the_bytes_are_cut() {
        let mut stream = keepalive();
        stream.extend(keepalive());
        for cut in 0..=stream.len() {
            let mut framer = Framer::new();
            let mut got = framer.push(&stream[..cut]);
            got.extend(framer.push(&stream[cut..]));
            assert_eq!(
                got,
                vec![Received::Message(Message::Keepalive); 2],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_bad_marker_is_answered_with_connection_not_synchronized_and_ends_the_stream() {
        let mut framer = Framer::new();
        let mut bad = keepalive();
        bad[3] = 0;
        let got = framer.push(&bad);
        let [Received::Malformed { notification, .. }] = &got[..] else {
            panic!("{got:?}");
        };
        assert_eq!(notification.code, NotificationCode::MessageHeader);
        assert_eq!(notification.subcode, 1);
        assert_eq!(framer.push(&keepalive()), vec![]);
    }

    #[test]
    fn a_length_beyond_the_maximum_is_bad_message_length() {
        let mut framer = Framer::new();
        let mut bad = keepalive();
        bad[16..18].copy_from_slice(&5000u16.to_be_bytes());
        let got = framer.push(&bad);
        let [Received::Malformed { notification, .. }] = &got[..] else {
            panic!("{got:?}");
        };
        assert_eq!(
            (notification.code, notification.subcode),
            (NotificationCode::MessageHeader, 2)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut framer = Framer::new();
            let mut bytes = keepalive();
            let len = (seed % 64) as usize;
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                bytes.push((seed >> 16) as u8);
            }
            // A valid marker with a random rest: every decoder path.
            bytes[16..18].copy_from_slice(&((19 + len) as u16).to_be_bytes());
            bytes[18] = (seed % 6) as u8;
            framer.push(&bytes);
        }
    }
}
