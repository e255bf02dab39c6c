#![no_main]
//! `cargo fuzz run sdp`: see squawk_server::fuzz::sdp.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squawk_server::fuzz::sdp(data));
