#![no_main]
//! `cargo fuzz run red`: see squawk_media::fuzz::red.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squawk_media::fuzz::red(data));
