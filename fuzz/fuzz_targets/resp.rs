//! RESP values, and client commands fed to the connection's decoder in pieces.
#![no_main]
#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_support::resp_values(data);
    let cut = data.first().map_or(1, |b| usize::from(*b % 64) + 1);
    fuzz_support::resp_commands(data, cut);
});
