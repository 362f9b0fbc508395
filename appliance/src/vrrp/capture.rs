//! Reading VRRP packets out of pcap files. STUB: filled in by the packet work.

pub fn decode_pcap<R: std::io::Read>(_r: R) -> Result<Vec<serde_json::Value>, std::io::Error> {
    todo!("capture")
}
