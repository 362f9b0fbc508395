//! `appliance decode`: a pcap or pcapng capture, its frames' link layers
//! and the VRRP packets in them, written out as JSON lines.

use appliance::vrrp::capture::decode_pcap;

pub fn pcap_decode(data: &[u8]) {
    match decode_pcap(data) {
        Ok(records) => {
            for record in records {
                serde_json::to_string(&record).expect("a record writes as JSON");
            }
        }
        Err(e) => {
            let mut error: Option<&dyn std::error::Error> = Some(&e);
            while let Some(e) = error {
                drop(e.to_string());
                error = e.source();
            }
        }
    }
}
