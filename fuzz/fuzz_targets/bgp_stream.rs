#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| appliance_fuzz_harness::bgp_stream(data));
