//! The map part of [`Kv`]: keys and their items in a hashbrown table, and the freeze
//! that shares them all with a snapshot a part at a time.
//!
//! A snapshot shares every item (a reference counted in the item's first line). At once
//! that stops the shard for a cache miss per key: 24-49 ms per snapshot at ~630k keys on
//! this project's test machine. A freeze instead walks the table a part per executor
//! turn ([`Map::freeze_step`]), bucket by bucket, and shares the items it passes. What
//! the walk has passed is the snapshot's already; for what it has not, the map keeps the
//! state the freeze began with:
//!
//! - an item about to change or leave the table from a bucket the walk has not passed is
//!   shared with the freeze first (and, shared, it is never changed in place: an
//!   overwrite or a list edit makes a new item);
//! - a bucket the walk has not passed that takes an item in after the freeze began is
//!   marked *born*, and the walk skips it.
//!
//! hashbrown never moves an item but when it rehashes, which only an insertion with no
//! room left does; before such an insertion the walk finishes at once
//! ([`Map::before_entry`]). Copying every pointer at the freeze's start instead (as this
//! map did until 2026-12-06) stopped the shard for 2.9-4.4 ms at 1M keys.

use std::collections::HashSet;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::prefetch;
use super::{EntryRef, Item, Kind, List, MapHasher, Slot};

/// Keys and their items (the map part of [`Kv`]), and their key + value bytes: one
/// pointer per key in the table, one allocation per key behind it ([`Item`]).
#[derive(Default)]
pub(super) struct Map {
    pub(super) table: HashTable<Item>,
    pub(super) hasher: MapHasher,
    pub(super) payload_bytes: u64,
    /// A freeze in progress (see the module docs).
    freeze: Option<Freeze>,
}

/// How many buckets ahead of the one it takes [`Map::freeze_step`] prefetches an item:
/// taking waits for the item's line, and the misses of items prefetched ahead overlap.
const FREEZE_AHEAD: usize = 32;

/// How many items ahead of the one it takes [`Map::share_all`] prefetches one.
const SHARE_AHEAD: usize = 16;

/// A freeze's walk of the table and the items it holds (see the module docs).
#[derive(Default)]
struct Freeze {
    /// The first bucket the walk has not passed; `usize::MAX` once it is done.
    next: usize,
    /// The items of the state the freeze began with that it holds so far, shared.
    taken: Vec<Item>,
    /// Buckets at or past `next` whose item came in after the freeze began.
    born: HashSet<usize, MapHasher>,
}

impl Freeze {
    /// A freeze of a table of `len` items, nothing taken yet.
    fn new(len: usize) -> Freeze {
        Freeze {
            // Reserved, not touched: the pages fault in a part at a time as items come.
            taken: Vec::with_capacity(len),
            ..Freeze::default()
        }
    }

    /// Walks on until `items` more were taken or the table ends; true once the walk is
    /// done.
    fn step(&mut self, table: &HashTable<Item>, items: usize) -> bool {
        let buckets = table.num_buckets();
        let mut took = 0;
        while self.next < buckets && took < items {
            let at = self.next;
            if let Some(ahead) = table.get_bucket(at + FREEZE_AHEAD) {
                ahead.prefetch(1);
            }
            if let Some(item) = table.get_bucket(at)
                && (self.born.is_empty() || !self.born.remove(&at))
            {
                self.taken.push(item.clone());
                took += 1;
            }
            self.next += 1;
        }
        if self.next >= buckets {
            // Done: a table that grows later has nothing more for this freeze.
            self.next = usize::MAX;
            self.born = HashSet::default();
        }
        self.next == usize::MAX
    }

    /// The item in `bucket` is about to change (`stays`: a new item takes its bucket) or
    /// to leave the table: the freeze takes it first if it is of the state the freeze
    /// began with and the walk has not passed it.
    fn before_change(&mut self, bucket: usize, item: &Item, stays: bool) {
        if bucket < self.next {
            return;
        }
        if self.born.contains(&bucket) {
            if !stays {
                self.born.remove(&bucket);
            }
            return;
        }
        self.taken.push(item.clone());
        if stays {
            self.born.insert(bucket);
        }
    }

    /// An item came into `bucket`, empty until now (a bucket index is below the table's
    /// bucket count, so never `usize::MAX`: a done walk marks nothing).
    fn inserted(&mut self, bucket: usize) {
        if bucket >= self.next {
            self.born.insert(bucket);
        }
    }
}

impl Clone for Map {
    /// A copy of the keys and items, without the freeze (which belongs to this map's
    /// snapshot).
    fn clone(&self) -> Map {
        Map {
            table: self.table.clone(),
            hasher: self.hasher.clone(),
            payload_bytes: self.payload_bytes,
            freeze: None,
        }
    }
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("keys", &self.table.len())
            .field("payload_bytes", &self.payload_bytes)
            .finish()
    }
}

impl Map {
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<&Item> {
        self.table.find(self.hash(key), |i| i.key() == key)
    }

    /// Prefetches the items of `keys`, the table's lines first (`kv/prefetch.rs`).
    pub(super) fn prefetch(&self, keys: impl FnOnce(&mut dyn FnMut(&[u8]))) {
        let Some(mut p) = prefetch::KeyPrefetch::new(&self.table, self.payload_bytes) else {
            return;
        };
        keys(&mut |k| p.key(self.hash(k)));
        p.finish();
    }

    pub(super) fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Item> {
        self.table.iter()
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
        self.before_entry();
        let hasher = &self.hasher;
        let new = EntryRef::string(value, version);
        match self
            .table
            .entry(hash, |i| i.key() == key, |i| hasher.hash_one(i.key()))
        {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
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
            hashbrown::hash_table::Entry::Vacant(v) => {
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
        self.before_entry();
        let hasher = &self.hasher;
        let item = match self
            .table
            .entry(hash, |i| i.key() == key, |i| hasher.hash_one(i.key()))
        {
            hashbrown::hash_table::Entry::Occupied(o) => {
                // Held by a freeze, the item is shared: the edit makes a new one.
                if let Some(fr) = &mut self.freeze
                    && o.get().list().is_some()
                {
                    fr.before_change(o.bucket_index(), o.get(), true);
                }
                o.into_mut()
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
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
        self.before_entry();
        let hasher = &self.hasher;
        let added = item.payload_len() as u64;
        match self.table.entry(
            hash,
            |i| i.key() == item.key(),
            |i| hasher.hash_one(i.key()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                if let Some(f) = &mut self.freeze {
                    f.before_change(o.bucket_index(), o.get(), true);
                }
                let old = std::mem::replace(o.get_mut(), item);
                self.payload_bytes = self.payload_bytes + added - old.payload_len() as u64;
                Some(old)
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                self.payload_bytes += added;
                let at = v.insert(item).bucket_index();
                self.inserted(at);
                None
            }
        }
    }

    pub(super) fn remove(&mut self, key: &[u8]) -> Option<Item> {
        let hash = self.hash(key);
        let entry = self.table.find_entry(hash, |i| i.key() == key).ok()?;
        if let Some(f) = &mut self.freeze {
            f.before_change(entry.bucket_index(), entry.get(), false);
        }
        let (item, _) = entry.remove();
        self.payload_bytes -= item.payload_len() as u64;
        Some(item)
    }

    /// Before a lookup that may insert (`HashTable::entry`): if the table has no room left
    /// the lookup rehashes it and moves items, so a freeze's walk finishes first.
    fn before_entry(&mut self) {
        if let Some(f) = &mut self.freeze
            && self.table.capacity() == self.table.len()
        {
            f.step(&self.table, usize::MAX);
        }
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
        self.freeze = Some(Freeze::new(self.table.len()));
    }

    /// Shares up to `items` more of the frozen items; true once all are (or no freeze
    /// runs).
    pub(super) fn freeze_step(&mut self, items: usize) -> bool {
        self.freeze
            .as_mut()
            .is_none_or(|f| f.step(&self.table, items))
    }

    /// Every item, shared, at once (nothing changes the map meanwhile). The table's
    /// pointers are gathered first, so each item can be prefetched well ahead of taking it
    /// however the buckets around it are filled.
    pub(super) fn share_all(&self) -> Vec<Item> {
        let all: Vec<&Item> = self.table.iter().collect();
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
        self.freeze.take().map(|f| f.taken)
    }

    /// Replaces the keys and items with `other`'s. A freeze in progress first takes the
    /// rest of the old table, and goes on with nothing more to walk.
    pub(super) fn replace(&mut self, mut other: Map) {
        self.freeze_step(usize::MAX);
        other.freeze = self.freeze.take();
        *self = other;
    }
}

impl FromIterator<Item> for Map {
    fn from_iter<I: IntoIterator<Item = Item>>(iter: I) -> Map {
        let iter = iter.into_iter();
        let mut map = Map::default();
        map.table
            .reserve(iter.size_hint().0, |i| map.hasher.hash_one(i.key()));
        for item in iter {
            map.put_item(item);
        }
        map
    }
}
