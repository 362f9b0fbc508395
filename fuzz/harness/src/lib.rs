//! The fuzz targets' bodies, one `pub fn TARGET(data: &[u8])` for each
//! parser of outside input. Each feeds `data` to the parser as the daemon
//! or the CLI would, checks what a parse promises (an emit side gives the
//! same back, a loaded config converts back) and panics on a finding;
//! bad input itself must never panic. `fuzz/fuzz_targets/TARGET.rs` calls
//! the function under libFuzzer, and `tests/corpus.rs` replays the kept
//! corpus (`fuzz/corpus/TARGET/`, `fuzz/regressions/TARGET/`) through it
//! under `cargo nextest run --workspace`.

mod bgp_stream;
mod config;
mod http_response;
mod ipvs_reply;
mod nftables_reply;
mod pcap_decode;
mod smtp_reply;
mod syn_answer;
mod vrrp_packet;

pub use bgp_stream::bgp_stream;
pub use config::{keepalived_conf, toml_config};
pub use http_response::http_response;
pub use ipvs_reply::ipvs_reply;
pub use nftables_reply::nftables_reply;
pub use pcap_decode::pcap_decode;
pub use smtp_reply::smtp_reply;
pub use syn_answer::syn_answer;
pub use vrrp_packet::vrrp_packet;
