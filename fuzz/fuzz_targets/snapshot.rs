//! Snapshot payloads and snapshot chunks.
#![no_main]
#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_support::snapshot_payload(data);
    fuzz_support::snapshot_chunk(data);
});
