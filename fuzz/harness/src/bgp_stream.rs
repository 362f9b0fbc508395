//! What a BGP peer sends a director's session: bytes cut into TCP reads
//! of any size, framed (`appliance_core::bgp::frame`) and fed to a
//! session (`bgp::session`) that has connected and sent its OPEN, as time
//! passes. The input's first byte sets the read size, the rest is the
//! stream. Bad input ends the session with a NOTIFICATION, never a
//! panic; the messages framed must not depend on how the bytes were cut.

use appliance::bgp::frame::{Framer, Received};
use appliance::bgp::session::{Action, Input, Session, Settings};
use appliance::clock::Instant;
use std::time::Duration;

pub fn bgp_stream(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let cut = frame(stream, usize::from(chunk) + 1);
    assert_eq!(
        cut,
        frame(stream, usize::MAX),
        "reads of {} bytes",
        usize::from(chunk) + 1
    );

    let settings = Settings {
        local_as: 65001,
        peer_as: 65000,
        router_id: "192.0.2.1".parse().unwrap(),
        hold_time: 9,
        connect_retry: Duration::from_secs(5),
        next_hop_ipv4: None,
        next_hop_ipv6: Some("2001:db8::1".parse().unwrap()),
    };
    let mut now = Instant::ZERO;
    let mut session = Session::new(settings, now);
    session.handle(
        Input::Announce(
            ["10.0.0.100/32", "2001:db8::100/128"]
                .iter()
                .map(|p| p.parse().unwrap())
                .collect(),
        ),
        now,
    );
    assert_eq!(session.handle(Input::Tick, now), vec![Action::Connect]);
    session.handle(
        Input::Connected {
            local: "192.0.2.1".parse().unwrap(),
        },
        now,
    );
    for received in cut {
        now = now + Duration::from_millis(500);
        session.handle(Input::Tick, now);
        let input = match received {
            Received::Message(message) => Input::Received(message),
            Received::Malformed {
                notification,
                reason,
            } => Input::Malformed {
                notification,
                reason,
            },
        };
        for action in session.handle(input, now) {
            if let Action::Send(message) = action {
                appliance::bgp::encode_message(&message).expect("what the session sends encodes");
            }
        }
    }
}

/// What the framer makes of `stream` read `chunk` bytes at a time.
fn frame(stream: &[u8], chunk: usize) -> Vec<Received> {
    let mut framer = Framer::new();
    stream
        .chunks(chunk.min(stream.len().max(1)))
        .flat_map(|piece| framer.push(piece))
        .collect()
}
