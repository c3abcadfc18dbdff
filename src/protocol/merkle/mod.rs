//! An incremental Merkle tree over the key-hash space of one shard, and the anti-entropy
//! session that compares two replicas' trees (in [`anti_entropy`]).
//!
//! # Shape
//!
//! A fixed-shape tree: level 0 is the root, level `depth` holds `FANOUT^depth` leaves. A key
//! belongs to the leaf named by the *high* `4 * depth` bits of `xxh3_64(key)`; the node routes
//! keys to shards by `xxh3_64(key) % shards`, which depends mostly on the low bits, so one
//! shard's keys still spread evenly over all leaves.
//!
//! # Digests
//!
//! - An entry's digest is `xxh3_64(xxh3_64(key)_le ‖ version_le ‖ xxh3_64(value)_le)`
//!   ([`entry_digest`]); a list's hash (`List::value_hash`, kept current by every push
//!   and pop) stands in for `xxh3_64(value)`, followed by one byte that marks a list. The key's hash also picks its leaf, so a write hashes the key
//!   once; two keys share a digest only if their 64-bit hashes collide, the same odds as
//!   two different leaves colliding.
//! - A leaf's digest is the **wrapping sum** of its entries' digests (0 when empty). A sum
//!   does not depend on insertion order, and a write updates its leaf in O(1): subtract the
//!   old entry's digest, add the new one. We chose a sum over XOR because it costs the same
//!   and is not linear over GF(2): with XOR, any entry counted twice by a bug cancels out
//!   silently, and structured inputs collide far more easily (AdHash vs XHash).
//! - An inner node's digest is `xxh3_64` over its `FANOUT` children's digests (little
//!   endian), so the root changes whenever any leaf does.
//!
//! # Incremental rebuild
//!
//! Writes update leaf sums immediately and set the leaf's bit in a dirty bitmap;
//! [`MerkleTree::rebuild_incremental`] rehashes only the ancestors of dirty leaves. Its cost
//! is bounded by one pass over the inner nodes (`(FANOUT^depth - 1) / (FANOUT - 1)` hashes of
//! `FANOUT * 8` bytes, ~4,369 for the default depth), whatever the number of writes, so it
//! needs no budget: the node can run it before every comparison.
//!
//! Inner digests (and so [`MerkleTree::root`] and [`MerkleTree::level`] above the leaves) are
//! only current after a rebuild; [`MerkleTree::is_clean`] says whether one is due.

pub mod anti_entropy;
#[cfg(test)]
mod tests;

pub use anti_entropy::{
    AntiEntropy, MerkleMsg, Outcome, Refusal, Responder, ResponderStats, SessionLimits, Verdict,
    repair_verdict,
};

use xxhash_rust::xxh3::xxh3_64;

use super::item::{EntryRef, prefetch};

/// Children per inner node.
pub const FANOUT: usize = 16;
/// log2(FANOUT): each level consumes this many bits of the key hash.
pub const FANOUT_BITS: u32 = 4;
/// Default depth: `16^4 = 65,536` leaves, ~15 keys a leaf at 1,000,000 keys per shard.
pub const DEPTH_DEFAULT: u8 = 4;
/// Smallest depth: a root over `FANOUT` leaves.
pub const DEPTH_MIN: u8 = 1;
/// Largest depth: `16^6` leaves (128 MiB of leaf sums); node indices must fit a `u32`.
pub const DEPTH_MAX: u8 = 6;

const _: () = assert!(1 << FANOUT_BITS == FANOUT);
const _: () = assert!(DEPTH_MIN >= 1 && DEPTH_MIN <= DEPTH_DEFAULT && DEPTH_DEFAULT <= DEPTH_MAX);
const _: () = assert!((FANOUT_BITS * DEPTH_MAX as u32) < u32::BITS);

/// The digest of one stored entry: covers the key, its version and its value's hash.
pub fn entry_digest(key: &[u8], entry: EntryRef<'_>) -> u64 {
    digest_with_key_hash(xxh3_64(key), entry)
}

fn digest_with_key_hash(key_hash: u64, entry: EntryRef<'_>) -> u64 {
    let mut buf = [0u8; 25];
    buf[0..8].copy_from_slice(&key_hash.to_le_bytes());
    buf[8..16].copy_from_slice(&entry.version.to_le_bytes());
    buf[16..24].copy_from_slice(&entry.value_hash().to_le_bytes());
    // A list never digests like a string whose xxh3 equals the list's hash.
    match entry.kind {
        crate::protocol::item::Kind::String => xxh3_64(&buf[..24]),
        crate::protocol::item::Kind::List => {
            buf[24] = 1;
            xxh3_64(&buf)
        }
    }
}

/// Nodes at `level` of a tree (level 0 is the root).
pub fn nodes_at(level: u8) -> usize {
    1usize << (FANOUT_BITS * u32::from(level))
}

/// What a rebuild did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RebuildStats {
    /// Leaves whose ancestors were rehashed (dirty leaves for an incremental rebuild, all
    /// leaves for a full one).
    pub leaves: u64,
    /// Inner nodes hashed.
    pub nodes_hashed: u64,
}

/// The Merkle tree of one shard.
#[derive(Clone)]
pub struct MerkleTree {
    depth: u8,
    /// Wrapping sums of entry digests, one per leaf.
    leaves: Vec<u64>,
    /// `inner[l]` holds the digests of level `l`, for `l` in `0..depth`.
    inner: Vec<Vec<u64>>,
    /// One bit per leaf: changed since the last rebuild.
    dirty: Vec<u64>,
    dirty_leaves: usize,
    /// Entries counted in the leaves (for checks and stats).
    entries: u64,
}

impl std::fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The leaves are too many to print; the shape and root say enough.
        f.debug_struct("MerkleTree")
            .field("depth", &self.depth)
            .field("entries", &self.entries)
            .field("dirty_leaves", &self.dirty_leaves)
            .field("root", &format_args!("{:016x}", self.inner[0][0]))
            .finish()
    }
}

impl Default for MerkleTree {
    fn default() -> MerkleTree {
        MerkleTree::new(DEPTH_DEFAULT)
    }
}

impl MerkleTree {
    /// An empty tree of the given depth (`DEPTH_MIN..=DEPTH_MAX`).
    pub fn new(depth: u8) -> MerkleTree {
        assert!((DEPTH_MIN..=DEPTH_MAX).contains(&depth), "depth {depth}");
        let leaves = vec![0u64; nodes_at(depth)];
        // Every subtree of an empty tree at the same level has the same digest: fill each
        // level with it instead of hashing every node.
        let mut inner = vec![Vec::new(); usize::from(depth)];
        let mut below = 0u64;
        for level in (0..depth).rev() {
            below = hash_children(&[below; FANOUT]);
            inner[usize::from(level)] = vec![below; nodes_at(level)];
        }
        let tree = MerkleTree {
            depth,
            dirty: vec![0u64; nodes_at(depth).div_ceil(64)],
            leaves,
            inner,
            dirty_leaves: 0,
            entries: 0,
        };
        tree.check_invariants();
        tree
    }

    /// Levels below the root: leaves are at level `depth`.
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// Number of leaves.
    pub fn leaf_count(&self) -> usize {
        self.leaves.len()
    }

    /// Entries currently counted in the leaves.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The leaf a key belongs to.
    pub fn leaf_of(&self, key: &[u8]) -> u32 {
        self.leaf_of_hash(xxh3_64(key))
    }

    fn leaf_of_hash(&self, key_hash: u64) -> u32 {
        let bits = FANOUT_BITS * u32::from(self.depth);
        (key_hash >> (u64::BITS - bits)) as u32
    }

    /// Prefetches the leaf a change of `key` will update (see [`prefetch`]): the leaves
    /// are larger than a core's cache, and their miss was most of [`MerkleTree::update`].
    #[inline]
    pub fn prefetch(&self, key: &[u8]) {
        let leaf = self.leaf_of_hash(xxh3_64(key)) as usize;
        if let Some(sum) = self.leaves.get(leaf) {
            prefetch(sum);
        }
    }

    /// Records that `key` changed from `old` to `new` (`None`: absent); the state machine
    /// calls this on every insert, overwrite and removal.
    pub fn update(&mut self, key: &[u8], old: Option<EntryRef<'_>>, new: Option<EntryRef<'_>>) {
        let key_hash = xxh3_64(key);
        let leaf = self.leaf_of_hash(key_hash) as usize;
        let sum = &mut self.leaves[leaf];
        if let Some(e) = old {
            *sum = sum.wrapping_sub(digest_with_key_hash(key_hash, e));
            assert!(self.entries > 0);
            self.entries -= 1;
        }
        if let Some(e) = new {
            *sum = sum.wrapping_add(digest_with_key_hash(key_hash, e));
            self.entries += 1;
        }
        self.mark_dirty(leaf as u32);
    }

    /// Records that `key`'s entry digest ([`entry_digest`]) changed from `old` to `new`
    /// (`None`: absent): [`MerkleTree::update`] for a caller that changed the entry in
    /// place and took its old digest first.
    pub fn replace_digest(&mut self, key: &[u8], old: Option<u64>, new: Option<u64>) {
        let leaf = self.leaf_of_hash(xxh3_64(key)) as usize;
        let sum = &mut self.leaves[leaf];
        if let Some(d) = old {
            *sum = sum.wrapping_sub(d);
            assert!(self.entries > 0);
            self.entries -= 1;
        }
        if let Some(d) = new {
            *sum = sum.wrapping_add(d);
            self.entries += 1;
        }
        self.mark_dirty(leaf as u32);
    }

    /// Marks a leaf's ancestors for rehashing at the next rebuild.
    pub fn mark_dirty(&mut self, leaf: u32) {
        let leaf = leaf as usize;
        assert!(leaf < self.leaves.len());
        let (word, bit) = (leaf / 64, leaf % 64);
        if self.dirty[word] & (1 << bit) == 0 {
            self.dirty[word] |= 1 << bit;
            self.dirty_leaves += 1;
        }
    }

    /// True when no leaf changed since the last rebuild: root and levels are current.
    pub fn is_clean(&self) -> bool {
        self.dirty_leaves == 0
    }

    /// Leaves changed since the last rebuild.
    pub fn dirty_leaves(&self) -> usize {
        self.dirty_leaves
    }

    /// Rehashes the ancestors of every dirty leaf, level by level, each node once.
    pub fn rebuild_incremental(&mut self) -> RebuildStats {
        let mut stats = RebuildStats {
            leaves: self.dirty_leaves as u64,
            nodes_hashed: 0,
        };
        if self.dirty_leaves == 0 {
            return stats;
        }
        // Dirty leaf indices in ascending order, so parents come out sorted and a dedup of
        // neighbours removes every duplicate.
        let mut nodes: Vec<u32> = Vec::with_capacity(self.dirty_leaves);
        for (w, word) in self.dirty.iter_mut().enumerate() {
            let mut bits = std::mem::take(word);
            while bits != 0 {
                nodes.push((w * 64) as u32 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
        assert_eq!(nodes.len(), self.dirty_leaves);
        self.dirty_leaves = 0;
        for level in (0..self.depth).rev() {
            for n in nodes.iter_mut() {
                *n >>= FANOUT_BITS;
            }
            nodes.dedup();
            for &parent in &nodes {
                let digest = hash_children(self.children(level + 1, parent));
                self.inner[usize::from(level)][parent as usize] = digest;
            }
            stats.nodes_hashed += nodes.len() as u64;
        }
        assert_eq!(nodes.len(), 1);
        stats
    }

    /// Recomputes every leaf from `entries` (the whole shard) and every inner node: the
    /// reference the incremental path is checked against.
    pub fn rebuild_full<'a, I>(&mut self, entries: I) -> RebuildStats
    where
        I: IntoIterator<Item = (&'a [u8], EntryRef<'a>)>,
    {
        self.leaves.fill(0);
        self.entries = 0;
        for (key, entry) in entries {
            let key_hash = xxh3_64(key);
            let leaf = self.leaf_of_hash(key_hash) as usize;
            let sum = &mut self.leaves[leaf];
            *sum = sum.wrapping_add(digest_with_key_hash(key_hash, entry));
            self.entries += 1;
        }
        self.dirty.fill(0);
        self.dirty_leaves = 0;
        let mut stats = RebuildStats {
            leaves: self.leaves.len() as u64,
            nodes_hashed: 0,
        };
        for level in (0..self.depth).rev() {
            for parent in 0..nodes_at(level) as u32 {
                let digest = hash_children(self.children(level + 1, parent));
                self.inner[usize::from(level)][parent as usize] = digest;
            }
            stats.nodes_hashed += nodes_at(level) as u64;
        }
        self.check_invariants();
        stats
    }

    /// The root digest (current only when [`MerkleTree::is_clean`]).
    pub fn root(&self) -> u64 {
        self.inner[0][0]
    }

    /// Digests of the nodes `range` at `level` (`0..=depth`; `depth` gives leaf sums).
    /// Panics if the range is out of bounds: callers validate indices from the network.
    pub fn level(&self, level: u8, range: std::ops::Range<usize>) -> &[u64] {
        assert!(level <= self.depth);
        if level == self.depth {
            &self.leaves[range]
        } else {
            &self.inner[usize::from(level)][range]
        }
    }

    /// The `FANOUT` children digests of node `parent` at `level - 1`.
    pub fn children(&self, level: u8, parent: u32) -> &[u64] {
        assert!(level >= 1);
        let first = parent as usize * FANOUT;
        self.level(level, first..first + FANOUT)
    }

    /// Heap and inline bytes this tree holds.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<MerkleTree>()
            + 8 * self.leaves.capacity()
            + 8 * self.dirty.capacity()
            + self.inner.capacity() * std::mem::size_of::<Vec<u64>>()
            + self.inner.iter().map(|l| 8 * l.capacity()).sum::<usize>()
    }

    /// Asserts the shape invariants (cheap; run after construction and full rebuilds).
    pub fn check_invariants(&self) {
        assert!((DEPTH_MIN..=DEPTH_MAX).contains(&self.depth));
        assert_eq!(self.leaves.len(), nodes_at(self.depth));
        assert_eq!(self.inner.len(), usize::from(self.depth));
        for (l, nodes) in self.inner.iter().enumerate() {
            assert_eq!(nodes.len(), nodes_at(l as u8));
        }
        assert_eq!(self.dirty.len(), self.leaves.len().div_ceil(64));
        let dirty: u32 = self.dirty.iter().map(|w| w.count_ones()).sum();
        assert_eq!(dirty as usize, self.dirty_leaves);
    }
}

/// The digest of an inner node from its children's digests.
fn hash_children(children: &[u64]) -> u64 {
    assert_eq!(children.len(), FANOUT);
    let mut buf = [0u8; FANOUT * 8];
    for (chunk, d) in buf.chunks_exact_mut(8).zip(children) {
        chunk.copy_from_slice(&d.to_le_bytes());
    }
    xxh3_64(&buf)
}
