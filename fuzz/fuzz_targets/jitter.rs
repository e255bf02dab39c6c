#![no_main]
//! `cargo fuzz run jitter`: see squawk_media::fuzz::jitter.

libfuzzer_sys::fuzz_target!(|data: &[u8]| squawk_media::fuzz::jitter(data));
