//! WAL record payloads, record headers and segment headers.
#![no_main]
#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_support::wal_record(data);
});
