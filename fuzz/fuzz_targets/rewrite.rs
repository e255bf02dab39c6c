#![no_main]
//! `cargo fuzz run rewrite`: see squawk_media::fuzz::rewrite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squawk_media::fuzz::rewrite(data));
