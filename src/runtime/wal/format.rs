//! On-disk layout of WAL segments: pure encode/decode, no I/O.
//!
//! A segment file is `segment_bytes` long and was pre-written with zeros when created.
//! Block 0 (4 KiB) holds the [`SegmentHeader`]; records are packed from offset
//! [`BLOCK_BYTES`] on, each a [`RECORD_HEADER_BYTES`]-byte header followed by the payload:
//!
//! ```text
//! record header (little-endian):
//!   0..8   checksum  xxh3-64 of bytes 8..32 of this header followed by the payload
//!   8..16  seq       sequence number of the segment life the record was written in
//!   16..24 lsn       log sequence number (1, 2, 3, ... with no gaps across segments)
//!   24..28 len       payload length in bytes
//!   28..32 unsynced  how many LSNs right before this one were not yet durable when it
//!                    was appended (saturating; 0 in logs written one sync at a time)
//! ```
//!
//! `seq` is in every record (and so in its checksum) so that records left over from a
//! recycled segment's previous life are recognised as stale, never replayed.
//!
//! `unsynced` tells recovery which damage a crash can explain. A write's blocks may reach
//! the disk in any order, and two syncs may be in flight, so a crash can leave a record
//! whole behind a torn one; that is a torn tail only if the torn record was not yet durable
//! when the whole one was appended. Damage before that window was synced and then lost:
//! mid-log corruption. The field was reserved and zero before 2026-12-08: such logs read
//! as written one sync at a time, and a binary from before reads a newer log's records
//! as damage, so it must not be run on one (no downgrade across that change).
//!
//! A sync that starts while another is in flight writes from the block after the other's
//! last one (the two never write the same block), so the log may hold zeros from a
//! record's end up to the next block: recovery looks for the next record there.

/// Alignment and size of every write: O_DIRECT needs it and the device's physical
/// block is 4 KiB, so a block write is the unit we assume to be atomic.
pub const BLOCK_BYTES: u64 = 4096;
/// Size of the header in front of every record.
pub const RECORD_HEADER_BYTES: usize = 32;
/// Size of the encoded segment header at the start of block 0.
pub const SEGMENT_HEADER_BYTES: usize = 48;

const SEGMENT_MAGIC: u64 = u64::from_le_bytes(*b"CPXWAL01");
const SEGMENT_VERSION: u32 = 1;
const KIND_ACTIVE: u32 = 1;
const KIND_FREE: u32 = 2;

/// Whether a segment file holds part of the log or waits to be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// Part of the log: records from `first_lsn` on.
    Active,
    /// Recycled or never used; keeps its last `seq` so sequence numbers are never reused.
    Free,
}

/// The first bytes of block 0 of every segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Active or free.
    pub kind: SegmentKind,
    /// Sequence number of this life of the file; every record written in it carries it.
    pub seq: u64,
    /// LSN of the first record this life holds (or will hold).
    pub first_lsn: u64,
    /// Usable size of the file in bytes, fixed when it was activated.
    pub capacity_bytes: u64,
}

/// What block 0 of a segment file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderState {
    /// All zero: created and never used.
    Blank,
    /// A valid header.
    Valid(SegmentHeader),
    /// Neither zero nor valid: corrupt.
    Bad,
}

impl SegmentHeader {
    /// Encodes the header into the first [`SEGMENT_HEADER_BYTES`] of `out`.
    pub fn encode(&self, out: &mut [u8]) {
        assert!(out.len() >= SEGMENT_HEADER_BYTES);
        let kind = match self.kind {
            SegmentKind::Active => KIND_ACTIVE,
            SegmentKind::Free => KIND_FREE,
        };
        out[0..8].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
        out[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&kind.to_le_bytes());
        out[16..24].copy_from_slice(&self.seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.first_lsn.to_le_bytes());
        out[32..40].copy_from_slice(&self.capacity_bytes.to_le_bytes());
        let checksum = xxhash_rust::xxh3::xxh3_64(&out[0..40]);
        out[40..48].copy_from_slice(&checksum.to_le_bytes());
    }

    /// Decodes block 0 (or as much of it as could be read).
    pub fn decode(block: &[u8]) -> HeaderState {
        if block.len() < SEGMENT_HEADER_BYTES {
            return if block.iter().all(|&b| b == 0) {
                HeaderState::Blank
            } else {
                HeaderState::Bad
            };
        }
        let head = &block[0..SEGMENT_HEADER_BYTES];
        if head.iter().all(|&b| b == 0) {
            return HeaderState::Blank;
        }
        let checksum = le_u64(&head[40..48]);
        if checksum != xxhash_rust::xxh3::xxh3_64(&head[0..40])
            || le_u64(&head[0..8]) != SEGMENT_MAGIC
            || le_u32(&head[8..12]) != SEGMENT_VERSION
        {
            return HeaderState::Bad;
        }
        let kind = match le_u32(&head[12..16]) {
            KIND_ACTIVE => SegmentKind::Active,
            KIND_FREE => SegmentKind::Free,
            _ => return HeaderState::Bad,
        };
        HeaderState::Valid(SegmentHeader {
            kind,
            seq: le_u64(&head[16..24]),
            first_lsn: le_u64(&head[24..32]),
            capacity_bytes: le_u64(&head[32..40]),
        })
    }
}

/// The fields of a record header, checksum excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Segment life the record belongs to.
    pub seq: u64,
    /// The record's LSN.
    pub lsn: u64,
    /// Payload length in bytes.
    pub len: u32,
}

/// Appends one record (header then payload) to `out`, its payload the bytes `parts`
/// make one after the other: a record is written from the pieces it was made of, without
/// joining them first.
/// `unsynced` is the header's field of that name (see the module docs).
pub fn encode_record(out: &mut Vec<u8>, seq: u64, lsn: u64, unsynced: u32, parts: &[&[u8]]) {
    let payload_bytes: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(payload_bytes).expect("caller checked the record size");
    let start = out.len();
    out.reserve(RECORD_HEADER_BYTES + payload_bytes);
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&unsynced.to_le_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    let (header, payload) = out[start + 8..].split_at(RECORD_HEADER_BYTES - 8);
    let checksum = record_checksum(header, payload);
    out[start..start + 8].copy_from_slice(&checksum.to_le_bytes());
}

/// The checksum of a record: header fields after the checksum, then the payload.
pub fn record_checksum(header_tail: &[u8], payload: &[u8]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(header_tail);
    hasher.update(payload);
    hasher.digest()
}

/// What the bytes at a record position are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderParse {
    /// All zero: nothing was ever written here in this life.
    Zero,
    /// A plausible header; the checksum is still to be checked against the payload.
    Header {
        /// Stored checksum.
        checksum: u64,
        /// Decoded fields.
        header: RecordHeader,
        /// LSNs right before this one that were not durable when it was appended.
        unsynced: u32,
    },
}

/// Parses a record header from exactly [`RECORD_HEADER_BYTES`] bytes.
pub fn parse_record_header(bytes: &[u8]) -> HeaderParse {
    assert_eq!(bytes.len(), RECORD_HEADER_BYTES);
    if bytes.iter().all(|&b| b == 0) {
        return HeaderParse::Zero;
    }
    HeaderParse::Header {
        checksum: le_u64(&bytes[0..8]),
        header: RecordHeader {
            seq: le_u64(&bytes[8..16]),
            lsn: le_u64(&bytes[16..24]),
            len: le_u32(&bytes[24..28]),
        },
        unsynced: le_u32(&bytes[28..32]),
    }
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(a)
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(a)
}

/// Rounds `v` down to a block boundary.
pub fn align_down(v: u64) -> u64 {
    v & !(BLOCK_BYTES - 1)
}

/// Rounds `v` up to a block boundary.
pub fn align_up(v: u64) -> u64 {
    (v + BLOCK_BYTES - 1) & !(BLOCK_BYTES - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trips_and_detects_a_flip() {
        let h = SegmentHeader {
            kind: SegmentKind::Active,
            seq: 7,
            first_lsn: 99,
            capacity_bytes: 1 << 20,
        };
        let mut block = vec![0u8; BLOCK_BYTES as usize];
        assert_eq!(SegmentHeader::decode(&block), HeaderState::Blank);
        h.encode(&mut block);
        assert_eq!(SegmentHeader::decode(&block), HeaderState::Valid(h));
        block[17] ^= 0x10;
        assert_eq!(SegmentHeader::decode(&block), HeaderState::Bad);
    }

    #[test]
    fn record_checksum_covers_seq_and_unsynced() {
        let mut a = Vec::new();
        encode_record(&mut a, 1, 5, 3, &[b"payload"]);
        let mut b = Vec::new();
        encode_record(&mut b, 2, 5, 3, &[b"payload"]);
        let mut c = Vec::new();
        encode_record(&mut c, 1, 5, 4, &[b"payload"]);
        assert_eq!(a.len(), RECORD_HEADER_BYTES + 7);
        assert_ne!(a[0..8], b[0..8], "seq must change the checksum");
        assert_ne!(a[0..8], c[0..8], "unsynced must change the checksum");
        let HeaderParse::Header {
            checksum,
            header,
            unsynced,
        } = parse_record_header(&a[..RECORD_HEADER_BYTES])
        else {
            panic!("a record header parses");
        };
        assert_eq!(
            header,
            RecordHeader {
                seq: 1,
                lsn: 5,
                len: 7
            }
        );
        assert_eq!(unsynced, 3);
        assert_eq!(
            checksum,
            record_checksum(&a[8..RECORD_HEADER_BYTES], &a[RECORD_HEADER_BYTES..])
        );
    }
}
