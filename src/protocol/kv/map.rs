//! The map part of [`Kv`]: keys and their items in a hashbrown table, the growth that
//! moves them to a larger table a few at a time, and the freeze that shares them all with
//! a snapshot a part at a time.
//!
//! **Growth.** hashbrown grows a full table by rehashing every item into a new one at
//! once: a cache miss per item, 37-39 ms at 918k keys and 82-83 ms at 1.84M on this
//! project's test machine (`cargo bench --bench kv_memory -- grow`), on every replica at
//! the same slot (they apply the same log). The map instead grows as Redis's dict does:
//! when its table is about full it makes a new one ([`Map::grow`]) and keeps the full one
//! as *old*; every write after that moves a few of the old table's items over
//! ([`GROW_STEP_ITEMS`]), and a write to a key still in the old table moves that key
//! first, so new items only ever go into the new table. A lookup tries the table holding
//! more items first, then the other. The new table is sized so that it never
//! fills before the old one is empty ([`GROW_SPARE`]); hashbrown itself never rehashes.
//!
//! **Freeze.** A snapshot shares every item (a reference counted in the item's first
//! line). At once that stops the shard for a cache miss per key: 24-49 ms per snapshot at
//! ~630k keys. A freeze instead walks the tables a part per executor turn
//! ([`Map::freeze_step`]), the old one first, bucket by bucket, and shares the items it
//! passes. What the walk has passed is the snapshot's already; for what it has not, the
//! map keeps the state the freeze began with (`kv/freeze.rs`):
//!
//! - an item about to change or leave a table from a bucket the walk has not passed is
//!   shared with the freeze first (and, shared, it is never changed in place: an
//!   overwrite or a list edit makes a new item);
//! - a bucket the walk has not passed that takes an item in after the freeze began is
//!   marked *born*, and the walk skips it;
//! - an item a growth moves is taken at once if only the old table's walk still owed it,
//!   and marked born in the new table if the freeze has it already.
//!
//! hashbrown moves items only when it rehashes, which the growth above keeps it from
//! doing. Copying every pointer at the freeze's start instead (as this map did until
//! 2026-12-06) stopped the shard for 2.9-4.4 ms at 1M keys.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::freeze::{self, Freeze};
use super::prefetch;
use super::{EntryRef, Item, Kind, List, MapHasher, Slot};

/// Keys and their items (the map part of [`Kv`]), and their key + value bytes: one
/// pointer per key in the table, one allocation per key behind it ([`Item`]).
#[derive(Default)]
pub(super) struct Map {
    /// The table that takes new items.
    pub(super) table: HashTable<Item>,
    /// While the map grows: the table it empties into `table`.
    old: Option<Old>,
    pub(super) hasher: MapHasher,
    pub(super) payload_bytes: u64,
    /// A freeze in progress (see the module docs).
    freeze: Option<Freeze>,
}

/// The table a growth empties, and how far it got.
#[derive(Clone)]
struct Old {
    table: HashTable<Item>,
    /// The first bucket the growth has not emptied.
    next: usize,
    /// A bucket of the new table a move filled, to read its probes' layout off
    /// ([`prefetch::ProbeLines::near`]).
    placed: Option<usize>,
}

/// How many buckets ahead of the one it moves [`Map::grow_step`] prefetches where its
/// item goes in the new table (its item's lines were prefetched [`freeze::AHEAD`]
/// buckets ahead): the moves' misses in the new table overlap.
const PLACE_AHEAD: usize = 8;

/// Items of the old table a write moves to the new one while the map grows (at most; the
/// write's own key comes on top). Each costs a hash of the item's key, prefetched ahead.
pub(super) const GROW_STEP_ITEMS: usize = 4;

/// Buckets of the old table a write looks at while the map grows (at most), so a table of
/// mostly removed items does not make one write walk it all.
const GROW_STEP_BUCKETS: usize = 1024;

/// A growth's new table holds `max(2 × items, old buckets / GROW_SPARE)`. A write
/// empties [`GROW_STEP_ITEMS`] items or looks at [`GROW_STEP_BUCKETS`] buckets, so the
/// old table of `n` items and `b` buckets is empty after at most `n / 4 + b / 1024`
/// writes, each adding at most one item: the new table must hold `n + n / 4 + b / 1024`,
/// and `2n` does when `n ≥ b / 768`, `b / 256` when it is not.
const GROW_SPARE: usize = 256;

/// How many items ahead of the one it takes [`Map::share_all`] prefetches one.
const SHARE_AHEAD: usize = 16;

/// Bytes of an item a growth reads to hash its key: the header and a short key.
const KEY_LINE_BYTES: usize = 64;

impl Clone for Map {
    /// A copy of the keys and items, without the freeze (which belongs to this map's
    /// snapshot).
    fn clone(&self) -> Map {
        Map {
            table: self.table.clone(),
            old: self.old.clone(),
            hasher: self.hasher.clone(),
            payload_bytes: self.payload_bytes,
            freeze: None,
        }
    }
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("keys", &self.len())
            .field("growing", &self.old.is_some())
            .field("payload_bytes", &self.payload_bytes)
            .finish()
    }
}

impl Map {
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<&Item> {
        let hash = self.hash(key);
        let eq = |i: &Item| i.key() == key;
        let Some(old) = &self.old else {
            return self.table.find(hash, eq);
        };
        // The table holding more items first: fewer lookups miss in one to find the key
        // in the other.
        if old.table.len() > self.table.len() {
            old.table
                .find(hash, eq)
                .or_else(|| self.table.find(hash, eq))
        } else {
            self.table
                .find(hash, eq)
                .or_else(|| old.table.find(hash, eq))
        }
    }

    /// Prefetches the items of `keys`, the table's lines first (`kv/prefetch.rs`); while
    /// the map grows, in both tables.
    pub(super) fn prefetch(&self, keys: impl FnOnce(&mut dyn FnMut(&[u8]))) {
        let Some(old) = &self.old else {
            if let Some(mut p) = prefetch::KeyPrefetch::new(&self.table, self.payload_bytes) {
                keys(&mut |k| p.key(self.hash(k)));
                p.finish();
            }
            return;
        };
        let mut tables = [
            prefetch::KeyPrefetch::near(&old.table, old.next, self.payload_bytes),
            prefetch::KeyPrefetch::near(&self.table, 0, self.payload_bytes),
        ];
        keys(&mut |k| {
            let hash = self.hash(k);
            tables.iter_mut().flatten().for_each(|p| p.key(hash));
        });
        tables
            .into_iter()
            .flatten()
            .for_each(prefetch::KeyPrefetch::finish);
    }

    pub(super) fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn len(&self) -> usize {
        self.table.len() + self.old.as_ref().map_or(0, |o| o.table.len())
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Item> {
        let old = self.old.as_ref().map(|o| o.table.iter());
        self.table.iter().chain(old.into_iter().flatten())
    }

    /// Items a growth still has to move to the new table (0 when none runs).
    pub(super) fn growth_left(&self) -> usize {
        self.old.as_ref().map_or(0, |o| o.table.len())
    }

    /// The table a growth is emptying, if the map grows (`kv/scan.rs` walks both).
    pub(super) fn old_table(&self) -> Option<&HashTable<Item>> {
        self.old.as_ref().map(|o| &o.table)
    }

    /// Sets `key` to the string `value` at `version`; `changed(old, new)` sees the entry
    /// it replaces (`None` if the key was absent) and the new one before the map changes.
    pub(super) fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        version: Slot,
        changed: impl FnOnce(Option<EntryRef<'_>>, EntryRef<'_>),
    ) {
        let hash = self.hash(key);
        self.before_entry(hash, key);
        let hasher = &self.hasher;
        let new = EntryRef::string(value, version);
        match self
            .table
            .entry(hash, |i| i.key() == key, |i| hasher.hash_one(i.key()))
        {
            Entry::Occupied(mut o) => {
                if let Some(f) = &mut self.freeze {
                    f.before_change(o.bucket_index(), o.get(), true);
                }
                let item = o.get_mut();
                changed(Some(item.entry_ref()), new);
                self.payload_bytes = self.payload_bytes + (key.len() + value.len()) as u64
                    - item.payload_len() as u64;
                // Same length and nobody else holds it (the usual overwrite, and never
                // while a freeze holds it): in place.
                if !item.overwrite(value, version, Kind::String) {
                    *item = Item::new(key, value, version);
                }
            }
            Entry::Vacant(v) => {
                changed(None, new);
                self.payload_bytes += (key.len() + value.len()) as u64;
                let at = v.insert(Item::new(key, value, version)).bucket_index();
                self.inserted(at);
            }
        }
    }

    /// Changes the list at `key` with `f` at `version`, creating it empty if the key is
    /// absent; `None` (and no change) if the key holds a string.
    pub(super) fn edit_list<R>(
        &mut self,
        key: &[u8],
        version: Slot,
        f: impl FnOnce(&mut List) -> R,
    ) -> Option<R> {
        let hash = self.hash(key);
        self.before_entry(hash, key);
        let hasher = &self.hasher;
        let item = match self
            .table
            .entry(hash, |i| i.key() == key, |i| hasher.hash_one(i.key()))
        {
            Entry::Occupied(o) => {
                // Held by a freeze, the item is shared: the edit makes a new one.
                if let Some(fr) = &mut self.freeze
                    && o.get().list().is_some()
                {
                    fr.before_change(o.bucket_index(), o.get(), true);
                }
                o.into_mut()
            }
            Entry::Vacant(v) => {
                self.payload_bytes += key.len() as u64;
                let o = v.insert(Item::with_list(key, List::new(), version));
                if let Some(fr) = &mut self.freeze {
                    fr.inserted(o.bucket_index());
                }
                o.into_mut()
            }
        };
        let before = item.payload_len() as u64;
        let out = item.edit_list(version, f)?;
        self.payload_bytes = self.payload_bytes + item.payload_len() as u64 - before;
        Some(out)
    }

    /// Puts an item as it is (snapshots, repairs); returns the one it replaces.
    pub(super) fn put_item(&mut self, item: Item) -> Option<Item> {
        let hash = self.hash(item.key());
        self.before_entry(hash, item.key());
        let hasher = &self.hasher;
        let added = item.payload_len() as u64;
        match self.table.entry(
            hash,
            |i| i.key() == item.key(),
            |i| hasher.hash_one(i.key()),
        ) {
            Entry::Occupied(mut o) => {
                if let Some(f) = &mut self.freeze {
                    f.before_change(o.bucket_index(), o.get(), true);
                }
                let old = std::mem::replace(o.get_mut(), item);
                self.payload_bytes = self.payload_bytes + added - old.payload_len() as u64;
                Some(old)
            }
            Entry::Vacant(v) => {
                self.payload_bytes += added;
                let at = v.insert(item).bucket_index();
                self.inserted(at);
                None
            }
        }
    }

    pub(super) fn remove(&mut self, key: &[u8]) -> Option<Item> {
        let hash = self.hash(key);
        self.grow_step(GROW_STEP_ITEMS, GROW_STEP_BUCKETS);
        let item = if let Ok(entry) = self.table.find_entry(hash, |i| i.key() == key) {
            if let Some(f) = &mut self.freeze {
                f.before_change(entry.bucket_index(), entry.get(), false);
            }
            entry.remove().0
        } else {
            let old = self.old.as_mut()?;
            let entry = old.table.find_entry(hash, |i| i.key() == key).ok()?;
            if let Some(f) = &mut self.freeze {
                f.before_old_leaves(entry.bucket_index(), entry.get());
            }
            entry.remove().0
        };
        self.payload_bytes -= item.payload_len() as u64;
        Some(item)
    }

    /// Before a lookup that may insert `key` (`HashTable::entry`, which rehashes a table
    /// with no room left): a growing map moves a few items and `key` itself to the new
    /// table, and a table about full starts a growth.
    fn before_entry(&mut self, hash: u64, key: &[u8]) {
        self.grow_step(GROW_STEP_ITEMS, GROW_STEP_BUCKETS);
        // Room for `key` moved over and for a new item.
        if self.table.capacity() - self.table.len() < 2 && !self.table.is_empty() {
            // A growth still running here would mean GROW_SPARE's sum is off: it finishes
            // at once (a stop, never a wrong answer) rather than let hashbrown rehash.
            self.finish_growth();
            self.grow();
        }
        let (table, old, hasher, freeze) = self.growth_parts();
        if let Some(o) = old
            && let Some(from) = o.table.find_bucket_index(hash, |i| i.key() == key)
        {
            move_out(table, &mut o.table, from, hasher, freeze);
        }
    }

    /// The parts a growth moves items between and tells about, borrowed apart.
    fn growth_parts(
        &mut self,
    ) -> (
        &mut HashTable<Item>,
        &mut Option<Old>,
        &MapHasher,
        &mut Option<Freeze>,
    ) {
        (
            &mut self.table,
            &mut self.old,
            &self.hasher,
            &mut self.freeze,
        )
    }

    /// Starts a growth: the table becomes the old one, and an empty one sized by
    /// [`GROW_SPARE`] takes new items.
    fn grow(&mut self) {
        debug_assert!(self.old.is_none(), "one growth at a time");
        let room = (2 * self.table.len()).max(self.table.num_buckets() / GROW_SPARE);
        let old = std::mem::replace(&mut self.table, HashTable::with_capacity(room));
        self.old = Some(Old {
            table: old,
            next: 0,
            placed: None,
        });
        if let Some(f) = &mut self.freeze {
            f.grew();
        }
    }

    /// Moves the old table's items to the new one, bucket by bucket, until `items` moved
    /// or `buckets` were looked at; ends the growth once the old table is empty. True
    /// once no growth runs.
    pub(super) fn grow_step(&mut self, items: usize, buckets: usize) -> bool {
        let (table, old, hasher, freeze) = self.growth_parts();
        let Some(o) = old else {
            return true;
        };
        let end = o.next.saturating_add(buckets).min(o.table.num_buckets());
        let mut moved = 0;
        let lines = o
            .placed
            .and_then(|at| prefetch::ProbeLines::near(table, at));
        while o.next < end && moved < items {
            if let Some(ahead) = o.table.get_bucket(o.next + freeze::AHEAD) {
                ahead.prefetch(KEY_LINE_BYTES);
            }
            if let Some(lines) = lines
                && let Some(ahead) = o.table.get_bucket(o.next + PLACE_AHEAD)
            {
                lines.prefetch(hasher.hash_one(ahead.key()));
            }
            if let Some(to) = move_out(table, &mut o.table, o.next, hasher, freeze) {
                moved += 1;
                o.placed = Some(to);
            }
            o.next += 1;
        }
        if o.next >= o.table.num_buckets() {
            debug_assert!(o.table.is_empty(), "every bucket was emptied");
            *old = None;
            if let Some(f) = freeze {
                f.old_gone();
            }
        }
        old.is_none()
    }

    /// Ends a growth at once, if one runs. A freeze walks both tables to the end first:
    /// the new table may have to rehash to take the rest.
    fn finish_growth(&mut self) {
        if self.old.is_none() {
            return;
        }
        self.freeze_step(usize::MAX);
        self.grow_step(usize::MAX, usize::MAX);
        debug_assert!(self.old.is_none());
    }

    /// An item came into `bucket`, empty until now.
    fn inserted(&mut self, bucket: usize) {
        if let Some(f) = &mut self.freeze {
            f.inserted(bucket);
        }
    }

    /// Begins a freeze of every item in the table now (see the module docs); one already
    /// in progress is dropped. The items are shared by [`Map::freeze_step`] and handed out
    /// by [`Map::freeze_end`].
    pub(super) fn freeze_begin(&mut self) {
        self.freeze = Some(Freeze::new(self.len(), self.old.is_some()));
    }

    /// Whether a freeze runs.
    pub(super) fn freezing(&self) -> bool {
        self.freeze.is_some()
    }

    /// Shares up to `items` more of the frozen items; true once all are (or no freeze
    /// runs).
    pub(super) fn freeze_step(&mut self, items: usize) -> bool {
        let old = self.old.as_ref().map(|o| &o.table);
        self.freeze
            .as_mut()
            .is_none_or(|f| f.step(old, &self.table, items))
    }

    /// Every item, shared, at once (nothing changes the map meanwhile). The tables'
    /// pointers are gathered first, so each item can be prefetched well ahead of taking it
    /// however the buckets around it are filled.
    pub(super) fn share_all(&self) -> Vec<Item> {
        let all: Vec<&Item> = self.iter().collect();
        let mut taken = Vec::with_capacity(all.len());
        for (i, item) in all.iter().enumerate() {
            if let Some(ahead) = all.get(i + SHARE_AHEAD) {
                ahead.prefetch(1);
            }
            taken.push(Item::clone(item));
        }
        taken
    }

    /// Ends the freeze: every item it saw, shared (`None` if none runs).
    pub(super) fn freeze_end(&mut self) -> Option<Vec<Item>> {
        self.freeze_step(usize::MAX);
        self.freeze.take().map(Freeze::into_taken)
    }

    /// Replaces the keys and items with `other`'s, and returns the map replaced. A freeze
    /// in progress first takes the rest of the old tables, and goes on with nothing more
    /// to walk.
    pub(super) fn replace(&mut self, mut other: Map) -> Map {
        self.freeze_step(usize::MAX);
        other.freeze = self.freeze.take();
        std::mem::replace(self, other)
    }
}

/// Moves the item in `old`'s bucket `from`, if any, to `table`; the bucket it went to.
fn move_out(
    table: &mut HashTable<Item>,
    old: &mut HashTable<Item>,
    from: usize,
    hasher: &MapHasher,
    freeze: &mut Option<Freeze>,
) -> Option<usize> {
    let Ok(entry) = old.get_bucket_entry(from) else {
        return None;
    };
    let (item, _) = entry.remove();
    let hash = hasher.hash_one(item.key());
    let to = table
        .insert_unique(hash, item, |i| hasher.hash_one(i.key()))
        .bucket_index();
    if let Some(f) = freeze {
        f.moved(from, to);
    }
    Some(to)
}

impl FromIterator<Item> for Map {
    fn from_iter<I: IntoIterator<Item = Item>>(iter: I) -> Map {
        let iter = iter.into_iter();
        let mut map = Map::default();
        // Room for two more than the items: a table left with less would start a growth
        // on the last puts (`Map::before_entry`).
        map.table
            .reserve(iter.size_hint().0 + 2, |i| map.hasher.hash_one(i.key()));
        for item in iter {
            map.put_item(item);
        }
        map
    }
}
