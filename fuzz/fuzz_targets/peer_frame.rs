//! Peer frames off the socket, and payloads behind a valid header (a forged or buggy peer).
#![no_main]
#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_support::peer_frame(data);
    fuzz_support::peer_payload(data);
});
