#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| appliance_fuzz_harness::smtp_reply(data));
