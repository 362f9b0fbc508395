//! The nf_tables answers the nftables backend reads: a datagram cut into
//! messages, each decoded (`nfgenmsg` and attributes), the rules' comments
//! read as the services they describe and the maps' elements as their real
//! servers and weights. A decoded message re-emits bytes that decode
//! again; a service read back, written again (comment, map elements),
//! reads back the same.

use appliance::dataplane::VirtualService;
use appliance::dataplane::netlink::messages;
use appliance::dataplane::nftables::message::{Body, NftMessage};
use appliance::dataplane::nftables::nla::{ElemListAttr, RuleAttr};
use appliance::dataplane::nftables::request;
use appliance::dataplane::nftables::ruleset::{self, Described};
use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};

pub fn nftables_reply(data: &[u8]) {
    let mut described = Vec::new();
    let mut elements = Vec::new();
    for one in messages(data) {
        let Ok(one) = one else {
            break;
        };
        let Ok(message) = NetlinkMessage::<NftMessage>::deserialize(one) else {
            continue;
        };
        let NetlinkPayload::InnerMessage(nft) = message.payload else {
            continue;
        };
        re_emits(&nft);
        match nft.body {
            Body::Rule(attrs) => {
                for attr in attrs {
                    if let RuleAttr::UserData(udata) = attr
                        && let Some(comment) = ruleset::parse_comment_userdata(&udata)
                    {
                        described.extend(ruleset::parse_description(&comment));
                    }
                }
            }
            Body::Elements(attrs) => {
                for attr in attrs {
                    if let ElemListAttr::Elements(list) = attr {
                        elements.extend(list.iter().map(|e| {
                            let key = e.key().unwrap_or_default().to_vec();
                            (key, e.data().unwrap_or_default().to_vec())
                        }));
                    }
                }
            }
            _ => {}
        }
    }
    for d in described {
        let Ok(settings) = d.settings else {
            continue;
        };
        if let Ok(service) = ruleset::service_from(d.key, settings, &elements) {
            reads_back(&service);
        }
    }
}

/// What a decoded message emits decodes to a message emitting the same
/// bytes. (Not "decodes to the same message": netlink-packet-core drops
/// the byte-order flag of an unknown attribute that has both flags.)
fn re_emits(message: &NftMessage) {
    let bytes = emit(message);
    let mut header = NetlinkHeader::default();
    header.message_type = message.message_type();
    let again = NftMessage::deserialize(&header, &bytes).expect("an emitted message parses");
    assert_eq!(emit(&again), bytes, "{message:?}");
}

fn emit(message: &NftMessage) -> Vec<u8> {
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

fn reads_back(service: &VirtualService) {
    let comment = ruleset::describe(service);
    let udata = ruleset::comment_userdata(&comment);
    assert_eq!(
        ruleset::parse_comment_userdata(&udata).as_deref(),
        Some(comment.as_str())
    );
    assert_eq!(
        ruleset::parse_description(&comment),
        Some(Described {
            key: service.key,
            settings: Ok(ruleset::Settings::of(service)),
        })
    );
    let written: Vec<_> = service
        .destinations
        .values()
        .map(|d| {
            let key = request::target_bytes(d.address);
            (key, ruleset::weight_bytes(d.weight))
        })
        .collect();
    let again = ruleset::service_from(service.key, ruleset::Settings::of(service), &written);
    assert_eq!(again.as_ref(), Ok(service));
}
