//! The IPVS generic netlink family's answers, as the backend reads them: a
//! datagram cut into messages, each decoded into its command and nested
//! attributes, those read as services, destinations, sync daemons and
//! timeouts, the services converted to the dataplane model and listed as
//! `appliance ipvs list` prints them. A decoded message re-emits bytes
//! that decode again, and a service in the model, written as the request
//! that sets it, reads back as the same service.

use appliance::dataplane::ipvs::listing::{self, Listing};
use appliance::dataplane::ipvs::message::{FAMILY_VERSION, IpvsMessage, dest_attrs, service_attrs};
use appliance::dataplane::ipvs::nla::{CmdAttr, InfoAttr};
use appliance::dataplane::netlink::messages;
use netlink_packet_core::{Emitable, NetlinkMessage, NetlinkPayload, ParseableParametrized};
use netlink_packet_generic::{GenlHeader, GenlMessage};

pub fn ipvs_reply(data: &[u8]) {
    let mut listing = Listing {
        version: String::new(),
        conn_table_size: 0,
        services: Vec::new(),
    };
    let mut dests = Vec::new();
    for one in messages(data) {
        let Ok(one) = one else {
            break;
        };
        let Ok(message) = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(one) else {
            continue;
        };
        let NetlinkPayload::InnerMessage(genl) = message.payload else {
            continue;
        };
        let ipvs = genl.payload;
        re_emits(&ipvs);
        for attr in &ipvs.info {
            match attr {
                InfoAttr::Version(v) => listing.version = listing::version_string(*v),
                InfoAttr::ConnTabSize(size) => listing.conn_table_size = *size,
                InfoAttr::Other(_) => {}
            }
        }
        for attr in &ipvs.attrs {
            match attr {
                CmdAttr::Service(attrs) => {
                    if let Ok(entry) = listing::service_entry(attrs) {
                        listing.services.push(entry);
                    }
                }
                CmdAttr::Dest(attrs) => dests.push(attrs.clone()),
                CmdAttr::Daemon(attrs) => drop(listing::daemon_entry(attrs).to_string()),
                _ => {}
            }
        }
    }
    // The backend dumps each service's destinations on their own; here
    // every service gets every destination that reads in its family.
    for service in &mut listing.services {
        let family = service.key.family();
        service.destinations = dests
            .iter()
            .filter_map(|attrs| listing::dest_entry(attrs, family).ok())
            .collect();
        if let Ok(model) = service.to_model() {
            reads_back(&model);
        }
    }
    listing.services.sort_by_key(|s| s.sort_key());
    drop(listing.to_string());
    serde_json::to_string(&listing).expect("a listing writes as JSON");
}

/// What a decoded message emits decodes to a message emitting the same
/// bytes. (Not "decodes to the same message": netlink-packet-core drops
/// the byte-order flag of an unknown attribute that has both flags.)
fn re_emits(message: &IpvsMessage) {
    let bytes = emit(message);
    let header = GenlHeader {
        cmd: message.cmd as u8,
        version: FAMILY_VERSION,
    };
    let again = IpvsMessage::parse_with_param(&bytes, header).expect("an emitted message parses");
    assert_eq!(emit(&again), bytes, "{message:?}");
}

fn emit(message: &IpvsMessage) -> Vec<u8> {
    let mut bytes = vec![0; message.buffer_len()];
    message.emit(&mut bytes);
    bytes
}

fn reads_back(model: &appliance::dataplane::VirtualService) {
    let mut entry =
        listing::service_entry(&service_attrs(model)).expect("a written service reads back");
    entry.destinations = model
        .destinations
        .values()
        .map(|d| {
            listing::dest_entry(&dest_attrs(d), model.key.family())
                .expect("a written destination reads back")
        })
        .collect();
    assert_eq!(entry.to_model().as_ref(), Ok(model));
}
