#![no_main]
//! `cargo fuzz run signaling`: see squawk_protocol::fuzz::signaling.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squawk_protocol::fuzz::signaling(data));
