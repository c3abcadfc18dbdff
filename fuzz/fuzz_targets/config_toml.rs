//! Node and protocol config files, and workload files.
#![no_main]
#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        fuzz_support::node_config(text);
        fuzz_support::workload(text);
    }
});
