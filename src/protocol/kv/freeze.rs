//! A freeze's walk of the map's tables (see `kv/map.rs` for the rules it keeps).
//!
//! The map holds one table, or two while it grows: the table it is emptying (*old*) and
//! the one that takes every new item. A freeze walks the old table first, then the
//! other; each walk has its own cursor and its own *born* buckets.

use std::collections::HashSet;

use hashbrown::HashTable;

use super::{Item, MapHasher};

/// How many buckets ahead of the one it takes a walk prefetches an item: taking waits
/// for the item's line, and the misses of items prefetched ahead overlap.
pub(super) const AHEAD: usize = 32;

/// A walk over one table, bucket by bucket.
#[derive(Default)]
pub(super) struct Walk {
    /// The first bucket the walk has not passed; `usize::MAX` once it is done.
    next: usize,
    /// Buckets at or past `next` whose item is not the freeze's to take: it came in after
    /// the freeze began, or the freeze took it already.
    born: HashSet<usize, MapHasher>,
}

impl Walk {
    /// A walk with nothing left to take.
    fn finished() -> Walk {
        Walk {
            next: usize::MAX,
            born: HashSet::default(),
        }
    }

    fn done(&self) -> bool {
        self.next == usize::MAX
    }

    fn passed(&self, bucket: usize) -> bool {
        bucket < self.next
    }

    /// Walks on until `items` more were taken into `taken` or the table ends; returns
    /// how many it took.
    fn step(&mut self, table: &HashTable<Item>, items: usize, taken: &mut Vec<Item>) -> usize {
        let buckets = table.num_buckets();
        let mut took = 0;
        while self.next < buckets && took < items {
            let at = self.next;
            if let Some(ahead) = table.get_bucket(at + AHEAD) {
                ahead.prefetch(1);
            }
            if let Some(item) = table.get_bucket(at)
                && (self.born.is_empty() || !self.born.remove(&at))
            {
                taken.push(item.clone());
                took += 1;
            }
            self.next += 1;
        }
        if self.next >= buckets {
            *self = Walk::finished();
        }
        took
    }

    /// Whether the item in `bucket` is one the walk is still to take.
    fn owes(&self, bucket: usize) -> bool {
        !self.passed(bucket) && !self.born.contains(&bucket)
    }

    /// The item in `bucket` is about to change (`stays`: a new item takes its bucket) or
    /// to leave the table: the walk hands it to `taken` first if it still owes it.
    fn before_change(&mut self, bucket: usize, item: &Item, stays: bool, taken: &mut Vec<Item>) {
        if self.owes(bucket) {
            taken.push(item.clone());
            if stays {
                self.born.insert(bucket);
            }
        } else if !stays && !self.passed(bucket) {
            self.born.remove(&bucket);
        }
    }

    /// An item the walk does not owe came into `bucket`, empty until now (new, or one
    /// the freeze has already or never had).
    fn inserted(&mut self, bucket: usize) {
        if !self.passed(bucket) {
            self.born.insert(bucket);
        }
    }
}

/// A freeze in progress: the items of the state it began with that it holds so far, and
/// its walks of the two tables.
pub(super) struct Freeze {
    taken: Vec<Item>,
    /// The walk of the table a growth empties; done when there is none.
    old: Walk,
    /// The walk of the table that takes new items: it starts once `old` is done.
    new: Walk,
}

impl Freeze {
    /// A freeze of `len` items, nothing taken yet; `growing` if the map has two tables.
    pub(super) fn new(len: usize, growing: bool) -> Freeze {
        Freeze {
            // Reserved, not touched: the pages fault in a part at a time as items come.
            taken: Vec::with_capacity(len),
            old: if growing {
                Walk::default()
            } else {
                Walk::finished()
            },
            new: Walk::default(),
        }
    }

    /// Walks on until `items` more were taken or both tables end; true once the walk is
    /// done.
    pub(super) fn step(
        &mut self,
        old: Option<&HashTable<Item>>,
        table: &HashTable<Item>,
        items: usize,
    ) -> bool {
        let mut took = 0;
        if !self.old.done() {
            match old {
                Some(old) => took = self.old.step(old, items, &mut self.taken),
                None => self.old = Walk::finished(),
            }
            if !self.old.done() {
                return false;
            }
        }
        self.new.step(table, items - took, &mut self.taken);
        self.new.done()
    }

    /// Hands out the items taken; the walk must be done.
    pub(super) fn into_taken(self) -> Vec<Item> {
        debug_assert!(self.old.done() && self.new.done());
        self.taken
    }

    /// The item in the new table's `bucket` is about to change or leave it (see
    /// [`Walk::before_change`]).
    pub(super) fn before_change(&mut self, bucket: usize, item: &Item, stays: bool) {
        self.new.before_change(bucket, item, stays, &mut self.taken);
    }

    /// The item in the old table's `bucket` is about to leave it, for good.
    pub(super) fn before_old_leaves(&mut self, bucket: usize, item: &Item) {
        self.old.before_change(bucket, item, false, &mut self.taken);
    }

    /// A new item came into the new table's `bucket`.
    pub(super) fn inserted(&mut self, bucket: usize) {
        self.new.inserted(bucket);
    }

    /// An item moved, unchanged, from the old table's bucket `from` to the new table's
    /// `to`. The new walk starts only once the old one is done, so it has not passed
    /// `to`: it takes the item there if the old walk still owed it, and skips it if not.
    pub(super) fn moved(&mut self, from: usize, to: usize) {
        let owed = self.old.owes(from);
        if !self.old.passed(from) {
            self.old.born.remove(&from);
        }
        debug_assert!(!self.new.passed(to) || !owed, "the new walk started early");
        if !owed {
            self.new.inserted(to);
        }
    }

    /// The map's table became the old one of a growth, and an empty one takes new items.
    pub(super) fn grew(&mut self) {
        debug_assert!(self.old.done(), "one growth at a time");
        let walked_all = self.new.done();
        self.old = std::mem::take(&mut self.new);
        // A done walk stays done (walking the new table, it would only skip every item).
        if walked_all {
            self.new = Walk::finished();
        }
    }

    /// The growth ended: the old table is empty and gone.
    pub(super) fn old_gone(&mut self) {
        self.old = Walk::finished();
    }
}
