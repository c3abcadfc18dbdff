//! Prefetching many keys' items before they are read or written, in two stages.
//!
//! A probe of the map's table reads two lines before it reaches a key's item: the control
//! bytes where the probe starts, and the bucket holding the item's pointer. Probing key
//! after key (`find`) waits for each of those misses in turn, and at a million keys that
//! wait was most of the prefetch pass's cost (a follower's profile: 18 % of its samples in
//! the probe). So the lines come first: for each key, its hash tells where its probe starts,
//! and both lines are prefetched without waiting; [`AHEAD`] keys later the probe runs
//! against lines already on their way, and prefetches the item it finds.
//!
//! Where the probe starts is hashbrown's layout, read off the table rather than assumed:
//! the control bytes, one per bucket, with the probe for `hash` starting at
//! `ctrl[hash & mask]`, and bucket `i`'s element stored just below them, at
//! `ctrl - (i + 1) * size_of::<Item>()`. [`ProbeLines::of`] finds `ctrl` from one
//! occupied bucket's index and address. An address that is off (another layout, after an
//! upgrade) costs a useless prefetch, never a wrong answer: the probe itself is hashbrown's
//! own. `tests::probe_lines_match_the_table_layout` fails if the layout moves.

use hashbrown::HashTable;

use super::super::item::{HEADER_BYTES, Item, prefetch};

/// How many keys the probes trail the line prefetches by: enough for a line to arrive
/// from memory (a key's hash and prefetches take ~10 ns, a miss ~100 ns), few enough that
/// the lines are still in L1 when the probe comes.
const AHEAD: usize = 16;

/// Buckets of a group whose lines are prefetched: an item sits at or just after its
/// probe's start (hashbrown places it in the first free bucket of the group).
const BUCKETS_AHEAD: usize = 8;

/// At most this much of each item is prefetched (four lines): past it a value's lines are
/// read in order, which the CPU's own prefetcher follows. Prefetching the whole of a
/// 100-byte value's item (three lines) made pipelined SETs cheaper than its first two
/// did (results/item-lines-20261205/).
const ITEM_BYTES_MAX: usize = 256;

/// How far past its start a key comparison reads a short key (see [`item_bytes`]).
const KEY_COMPARE_BYTES: usize = 32;

/// How much of an item a write or read of it touches, for a map of `keys` keys holding
/// `payload_bytes` of keys and values: the header, a key's length prefix (2 bytes for keys
/// under 8 KiB) and the average key and value, at most [`ITEM_BYTES_MAX`]. The average is
/// what the map knows without reading the item; a write compares the key, then reads the
/// old value for its Merkle digest and overwrites it.
///
/// At least [`KEY_COMPARE_BYTES`] past the prefix: the key comparison (glibc's `memcmp`,
/// its AVX-512 variant on the test machine) reads a short key with one 32-byte masked
/// load, and that load waits for every line its 32 bytes span, past the key's end too.
/// Prefetching only up to the end of a 16-byte key and a 3-byte value left the key
/// comparison at 15 % of a follower's samples; prefetching the line after it took it off
/// the profile.
fn item_bytes(payload_bytes: u64, keys: usize) -> usize {
    let average = usize::try_from(payload_bytes / keys.max(1) as u64).unwrap_or(usize::MAX);
    average
        .max(KEY_COMPARE_BYTES)
        .saturating_add(HEADER_BYTES + 2)
        .min(ITEM_BYTES_MAX)
}

/// Buckets [`ProbeLines::near`] looks at for an occupied one: a table a growth has filled
/// or emptied less than that would not repay prefetching anyway.
const NEAR_BUCKETS: usize = 64;

/// Where a table's probes start.
#[derive(Clone, Copy, Debug)]
pub(super) struct ProbeLines {
    ctrl: *const u8,
    mask: usize,
}

impl ProbeLines {
    /// The table's lines, read off its first occupied bucket; `None` if it is empty.
    pub(super) fn of(table: &HashTable<Item>) -> Option<ProbeLines> {
        ProbeLines::at(table, table.iter_buckets().next()?)
    }

    /// The table's lines, read off the first occupied bucket of the [`NEAR_BUCKETS`] from
    /// `from` on; `None` if they are all empty. For the tables of a growth, whose first
    /// buckets may be empty by the hundred thousand (the old table's emptied ones, the new
    /// table's not filled yet), where [`ProbeLines::of`] would walk them all.
    pub(super) fn near(table: &HashTable<Item>, from: usize) -> Option<ProbeLines> {
        let end = from.saturating_add(NEAR_BUCKETS).min(table.num_buckets());
        ProbeLines::at(table, (from..end).find(|&i| table.get_bucket(i).is_some())?)
    }

    /// The table's lines, read off occupied bucket `index`.
    fn at(table: &HashTable<Item>, index: usize) -> Option<ProbeLines> {
        let item: *const Item = table.get_bucket(index)?;
        Some(ProbeLines {
            ctrl: item
                .cast::<u8>()
                .wrapping_add((index + 1) * std::mem::size_of::<Item>()),
            mask: table.num_buckets() - 1,
        })
    }

    /// The address of bucket `index`'s element.
    fn bucket(&self, index: usize) -> *const u8 {
        self.ctrl
            .wrapping_sub((index + 1) * std::mem::size_of::<Item>())
    }

    /// Prefetches the control bytes and the first buckets of `hash`'s probe.
    pub(super) fn prefetch(&self, hash: u64) {
        let start = hash as usize & self.mask;
        prefetch(self.ctrl.wrapping_add(start));
        prefetch(self.bucket(start));
        prefetch(self.bucket((start + BUCKETS_AHEAD - 1) & self.mask));
    }
}

/// Prefetches the items of the keys given to [`KeyPrefetch::key`], the table's lines
/// [`AHEAD`] keys before the probe; [`KeyPrefetch::finish`] probes for the last ones.
pub(super) struct KeyPrefetch<'a> {
    table: &'a HashTable<Item>,
    lines: ProbeLines,
    trail: Trail,
    item_bytes: usize,
}

impl<'a> KeyPrefetch<'a> {
    /// `None` for an empty table (nothing to prefetch). `payload_bytes` is the keys' and
    /// values' bytes the table holds: it sizes each item's prefetch ([`item_bytes`]).
    pub(super) fn new(table: &'a HashTable<Item>, payload_bytes: u64) -> Option<KeyPrefetch<'a>> {
        KeyPrefetch::with(table, ProbeLines::of(table)?, payload_bytes)
    }

    /// As [`KeyPrefetch::new`], for a table of a growth: its lines are read off a bucket
    /// near `from` ([`ProbeLines::near`]).
    pub(super) fn near(
        table: &'a HashTable<Item>,
        from: usize,
        payload_bytes: u64,
    ) -> Option<KeyPrefetch<'a>> {
        KeyPrefetch::with(table, ProbeLines::near(table, from)?, payload_bytes)
    }

    fn with(
        table: &'a HashTable<Item>,
        lines: ProbeLines,
        payload_bytes: u64,
    ) -> Option<KeyPrefetch<'a>> {
        Some(KeyPrefetch {
            table,
            lines,
            trail: Trail::default(),
            item_bytes: item_bytes(payload_bytes, table.len()),
        })
    }

    /// Prefetches the table's lines for `hash` (the key's, by the map's hasher), and
    /// probes for the key given [`AHEAD`] keys before.
    pub(super) fn key(&mut self, hash: u64) {
        self.lines.prefetch(hash);
        if let Some(due) = self.trail.push(hash) {
            self.probe(due);
        }
    }

    /// Probes for the keys still trailing.
    pub(super) fn finish(self) {
        for hash in self.trail.rest() {
            self.probe(hash);
        }
    }

    /// Prefetches the items whose hash tag matches (usually just the key's own), without
    /// comparing keys: the probe reads only the table, never an item.
    fn probe(&self, hash: u64) {
        let _ = self.table.find(hash, |i| {
            i.prefetch(self.item_bytes);
            false
        });
    }
}

/// The last [`AHEAD`] hashes given, oldest out first.
#[derive(Default)]
struct Trail {
    hashes: [u64; AHEAD],
    seen: usize,
}

impl Trail {
    /// Takes `hash`; gives back the one given [`AHEAD`] hashes before, if any.
    fn push(&mut self, hash: u64) -> Option<u64> {
        let slot = self.seen % AHEAD;
        let due = (self.seen >= AHEAD).then_some(self.hashes[slot]);
        self.hashes[slot] = hash;
        self.seen += 1;
        due
    }

    /// The hashes not given back yet, oldest first.
    fn rest(&self) -> impl Iterator<Item = u64> + '_ {
        (self.seen.saturating_sub(AHEAD)..self.seen).map(|i| self.hashes[i % AHEAD])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    use crate::protocol::types::MapHasher;

    #[test]
    fn probe_lines_match_the_table_layout() {
        let hasher = MapHasher::default();
        let mut table: HashTable<Item> = HashTable::new();
        let keys: Vec<String> = (0..5_000).map(|i| format!("key:{i}")).collect();
        for (v, k) in keys.iter().enumerate() {
            let item = Item::new(k.as_bytes(), b"v", v as u64);
            table.insert_unique(hasher.hash_one(k.as_bytes()), item, |i| {
                hasher.hash_one(i.key())
            });
        }
        let lines = ProbeLines::of(&table).expect("not empty");
        assert_eq!(lines.mask, table.num_buckets() - 1);
        let mut near_start = 0;
        for k in &keys {
            let hash = hasher.hash_one(k.as_bytes());
            let index = table
                .find_bucket_index(hash, |i| i.key() == k.as_bytes())
                .expect("present");
            let item: *const Item = table.get_bucket(index).expect("occupied");
            // The element's address is where the layout says bucket `index` is.
            assert_eq!(lines.bucket(index), item.cast::<u8>(), "{k}");
            // And the probe starts where the layout says: the item is in the first
            // buckets after `hash & mask` for most keys.
            let start = hash as usize & lines.mask;
            if (index.wrapping_sub(start) & lines.mask) < BUCKETS_AHEAD {
                near_start += 1;
            }
        }
        assert!(
            near_start * 10 >= keys.len() * 9,
            "{near_start} of {} items within {BUCKETS_AHEAD} buckets of their probe's start",
            keys.len()
        );
    }

    #[test]
    fn the_trail_gives_back_every_hash_once_in_order() {
        for n in [0, 1, AHEAD - 1, AHEAD, AHEAD + 1, 3 * AHEAD + 5] {
            let mut trail = Trail::default();
            let mut out = Vec::new();
            for h in 0..n as u64 {
                out.extend(trail.push(h));
                // Given back exactly AHEAD hashes later.
                assert_eq!(out.len(), (h as usize + 1).saturating_sub(AHEAD), "n = {n}");
            }
            out.extend(trail.rest());
            assert_eq!(out, (0..n as u64).collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn an_item_is_prefetched_past_its_key_and_value() {
        // A 16-byte key and a 3-byte value: the key's 32-byte comparison reaches furthest.
        assert_eq!(
            item_bytes(19 * 1000, 1000),
            HEADER_BYTES + 2 + KEY_COMPARE_BYTES
        );
        // A 16-byte key and a 100-byte value: the whole item.
        assert_eq!(item_bytes(116 * 1000, 1000), HEADER_BYTES + 2 + 116);
        // Large values: the first lines only.
        assert_eq!(item_bytes(10_000 * 1000, 1000), ITEM_BYTES_MAX);
        assert_eq!(item_bytes(u64::MAX, 1), ITEM_BYTES_MAX);
        assert_eq!(item_bytes(0, 0), HEADER_BYTES + 2 + KEY_COMPARE_BYTES);
    }

    #[test]
    fn an_empty_table_has_nothing_to_prefetch() {
        assert!(KeyPrefetch::new(&HashTable::new(), 0).is_none());
    }
}
