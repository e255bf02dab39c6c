#![no_main]
//! `cargo fuzz run session`: see squawk_server::fuzz::session.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squawk_server::fuzz::session(data));
