//! The decoder drivers that the fuzz targets share: `tests/fuzz_decoders.rs` feeds them
//! structured random input through proptest, `fuzz/` (cargo-fuzz, nightly) feeds them
//! coverage-guided input. Each panics on a crash, an unclear error or a broken promise of
//! the decoder (a frame that claims more bytes than it was given).
#![allow(dead_code)]

use corepax::config::{NodeConfig, ProtocolConfig};
use corepax::loadgen::workload::Workload;
use corepax::protocol::message::SnapshotChunk;
use corepax::protocol::{Record, Snapshot};
use corepax::runtime::shard::PeerMsg;
use corepax::runtime::wal::format::{BLOCK_BYTES, RECORD_HEADER_BYTES, SegmentHeader};
use corepax::wire::command::CommandDecoder;
use corepax::wire::frame::{self, Hello};
use corepax::wire::resp::{self, Limits};

/// An error must say what went wrong.
pub fn clear(e: impl std::fmt::Display) {
    let text = e.to_string();
    assert!(text.len() >= 8, "an unclear error: {text:?}");
}

/// Every RESP value in the buffer, until an error or a partial value.
pub fn resp_values(bytes: &[u8]) {
    let limits = Limits::default();
    let mut rest = bytes;
    loop {
        match resp::decode(rest, &limits) {
            Ok(Some((_, used))) => {
                assert!(
                    used > 0 && used <= rest.len(),
                    "used {used} of {}",
                    rest.len()
                );
                rest = &rest[used..];
            }
            Ok(None) => break,
            Err(e) => {
                clear(e);
                break;
            }
        }
    }
    let _ = resp::skip(bytes, &limits).map_err(clear);
}

/// Client commands fed to the connection's decoder `cut` bytes at a time.
pub fn resp_commands(bytes: &[u8], cut: usize) {
    let mut d = CommandDecoder::new(Limits::default(), 1 << 20);
    for piece in bytes.chunks(cut.max(1)) {
        d.feed(piece);
        loop {
            match d.next_command() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    clear(e);
                    return;
                }
            }
        }
    }
    assert!(d.buffered() <= bytes.len());
}

/// A peer frame as it comes off the socket (checksum and all).
pub fn peer_frame(bytes: &[u8]) {
    match frame::decode::<PeerMsg>(bytes, 1 << 20) {
        Ok(Some((_, used))) => assert!(used <= bytes.len()),
        Ok(None) => {}
        Err(e) => clear(e),
    }
    let _ = frame::decode::<Hello>(bytes, 1 << 10).map_err(clear);
}

/// A peer frame payload behind a valid header: what a buggy or forged peer can make
/// reach the payload decoder (the checksum stops random damage before it).
pub fn peer_payload(payload: &[u8]) {
    let mut framed = Vec::with_capacity(payload.len() + 12);
    framed.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    framed.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes());
    framed.extend_from_slice(payload);
    peer_frame(&framed);
}

/// A snapshot chunk's payload (it arrives inside a peer frame).
pub fn snapshot_chunk(bytes: &[u8]) {
    let _ = postcard::from_bytes::<SnapshotChunk>(bytes).map_err(clear);
}

/// A WAL record's payload, and the bytes as a record header and as a segment header.
pub fn wal_record(bytes: &[u8]) {
    let _ = postcard::from_bytes::<Record>(bytes).map_err(clear);
    let mut header = bytes.to_vec();
    header.resize(RECORD_HEADER_BYTES, 0);
    let _ = corepax::runtime::wal::format::parse_record_header(&header);
    let mut block = bytes.to_vec();
    block.resize(BLOCK_BYTES as usize, 0);
    let _ = SegmentHeader::decode(&block);
}

/// A snapshot file's payload.
pub fn snapshot_payload(bytes: &[u8]) {
    let _ = postcard::from_bytes::<Snapshot>(bytes).map_err(clear);
}

/// A node config file (and its `[protocol]` table alone), validated when it parses.
pub fn node_config(text: &str) {
    match toml::from_str::<NodeConfig>(text) {
        Ok(cfg) => {
            let _ = cfg.validate().map_err(clear);
        }
        Err(e) => clear(e),
    }
    if let Ok(p) = toml::from_str::<ProtocolConfig>(text) {
        let _ = p.validate().map_err(clear);
    }
}

/// A workload file.
pub fn workload(text: &str) {
    let _ = Workload::from_toml(text, "fuzz").map_err(clear);
}
