//! The map part of [`Kv`]: keys and their items in a hashbrown table, and the freeze
//! that shares them all with a snapshot a part at a time.
//!
//! A snapshot shares every item (a reference counted in the item's first line). At once
//! that stops the shard for a cache miss per key: 24-49 ms per snapshot at ~630k keys on
//! this project's test machine. A freeze instead copies the table's pointers without
//! counting them ([`Map::freeze_begin`]: 8 bytes per key, no item touched) and counts
//! them later, a part per executor turn ([`Map::freeze_step`]). Until the last is counted
//! every item the freeze saw must stay alive and unchanged, so while it runs the map
//! changes no item in place (an overwrite or a list edit makes a new item) and keeps
//! every item that leaves the table (`retired`) until [`Map::freeze_end`].

use std::hash::BuildHasher;
use std::mem::ManuallyDrop;

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

/// How far ahead of the item it counts [`Map::freeze_step`] prefetches one: counting
/// waits for the item's line, and the misses of items prefetched ahead overlap.
const FREEZE_AHEAD: usize = 16;

/// The items a freeze saw, and what keeps them valid until all are counted.
struct Freeze {
    /// Every item in the table when the freeze began, as bitwise copies of the table's
    /// pointers: not counted, never dropped. Each stays valid while its item is in the
    /// table or in `retired`, which the map makes sure of until the freeze ends.
    uncounted: Vec<ManuallyDrop<Item>>,
    /// The first `counted.len()` of them, shared (counted).
    counted: Vec<Item>,
    /// Items that left the table (replaced or removed) since the freeze began.
    retired: Vec<Item>,
}

impl Freeze {
    /// A freeze of every item in `table`, none counted yet.
    fn of(table: &HashTable<Item>) -> Freeze {
        let uncounted: Vec<ManuallyDrop<Item>> = table
            .iter()
            // SAFETY: a copy of the pointer that is never dropped (`ManuallyDrop`) and only
            // cloned (counted) while its item is alive and unchanged: the table holds it,
            // or `retired` does once it leaves (see the module docs).
            .map(|i| ManuallyDrop::new(unsafe { std::ptr::read(i) }))
            .collect();
        Freeze {
            counted: Vec::with_capacity(uncounted.len()),
            uncounted,
            retired: Vec::new(),
        }
    }

    /// Counts up to `items` more; true once all are.
    fn step(&mut self, items: usize) -> bool {
        let from = self.counted.len();
        let to = from.saturating_add(items).min(self.uncounted.len());
        for i in from..to {
            if let Some(ahead) = self.uncounted.get(i + FREEZE_AHEAD) {
                ahead.prefetch(1);
            }
            self.counted.push(Item::clone(&self.uncounted[i]));
        }
        to == self.uncounted.len()
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
        let hasher = &self.hasher;
        let new = EntryRef::string(value, version);
        match self
            .table
            .entry(hash, |i| i.key() == key, |i| hasher.hash_one(i.key()))
        {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                let item = o.get_mut();
                changed(Some(item.entry_ref()), new);
                self.payload_bytes = self.payload_bytes + (key.len() + value.len()) as u64
                    - item.payload_len() as u64;
                // Same length and nobody else holds it (the usual overwrite): in place,
                // unless a freeze may still count the item as it was.
                if self.freeze.is_some() || !item.overwrite(value, version, Kind::String) {
                    let old = std::mem::replace(item, Item::new(key, value, version));
                    if let Some(f) = &mut self.freeze {
                        f.retired.push(old);
                    }
                }
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                changed(None, new);
                self.payload_bytes += (key.len() + value.len()) as u64;
                v.insert(Item::new(key, value, version));
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
        let hasher = &self.hasher;
        let item = match self
            .table
            .entry(hash, |i| i.key() == key, |i| hasher.hash_one(i.key()))
        {
            hashbrown::hash_table::Entry::Occupied(o) => o.into_mut(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                self.payload_bytes += key.len() as u64;
                v.insert(Item::with_list(key, List::new(), version))
                    .into_mut()
            }
        };
        // Held while frozen, the item counts as shared: the edit makes a new one.
        if let Some(fr) = &mut self.freeze {
            fr.retired.push(item.clone());
        }
        let before = item.payload_len() as u64;
        let out = item.edit_list(version, f)?;
        self.payload_bytes = self.payload_bytes + item.payload_len() as u64 - before;
        Some(out)
    }

    /// Puts an item as it is (snapshots, repairs); returns the one it replaces.
    pub(super) fn put_item(&mut self, item: Item) -> Option<Item> {
        let hash = self.hash(item.key());
        let hasher = &self.hasher;
        let added = item.payload_len() as u64;
        match self.table.entry(
            hash,
            |i| i.key() == item.key(),
            |i| hasher.hash_one(i.key()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                let old = std::mem::replace(o.get_mut(), item);
                self.payload_bytes = self.payload_bytes + added - old.payload_len() as u64;
                self.retire(&old);
                Some(old)
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                self.payload_bytes += added;
                v.insert(item);
                None
            }
        }
    }

    pub(super) fn remove(&mut self, key: &[u8]) -> Option<Item> {
        let hash = self.hash(key);
        let (item, _) = self
            .table
            .find_entry(hash, |i| i.key() == key)
            .ok()?
            .remove();
        self.payload_bytes -= item.payload_len() as u64;
        self.retire(&item);
        Some(item)
    }

    /// Keeps an item that left the table alive until the freeze in progress ends (the
    /// caller may drop its own).
    fn retire(&mut self, item: &Item) {
        if let Some(f) = &mut self.freeze {
            f.retired.push(item.clone());
        }
    }

    /// Begins a freeze of every item in the table now (see the module docs); one already
    /// in progress is dropped. The items are counted by [`Map::freeze_step`] and handed out
    /// by [`Map::freeze_end`].
    pub(super) fn freeze_begin(&mut self) {
        self.freeze = Some(Freeze::of(&self.table));
    }

    /// Counts up to `items` more of the frozen items; true once all are (or no freeze
    /// runs).
    pub(super) fn freeze_step(&mut self, items: usize) -> bool {
        self.freeze.as_mut().is_none_or(|f| f.step(items))
    }

    /// Every item, shared, at once (nothing changes the map meanwhile).
    pub(super) fn share_all(&self) -> Vec<Item> {
        let mut f = Freeze::of(&self.table);
        f.step(usize::MAX);
        // `f.uncounted` holds only copies, never dropped; `retired` is empty.
        f.counted
    }

    /// Ends the freeze: every item it saw, shared (`None` if none runs).
    pub(super) fn freeze_end(&mut self) -> Option<Vec<Item>> {
        self.freeze_step(usize::MAX);
        self.freeze.take().map(|f| f.counted)
    }

    /// Replaces the keys and items with `other`'s. A freeze in progress goes on: every
    /// item of the old table is retired.
    pub(super) fn replace(&mut self, mut other: Map) {
        let old = std::mem::take(self);
        other.freeze = old.freeze;
        if let Some(f) = &mut other.freeze {
            f.retired.extend(old.table);
        }
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
