//! `SCAN` over one shard's map, with Redis's guarantee: a key present for the whole
//! iteration is visited at least once, however the table grows or shrinks in between.
//!
//! Redis walks its chained hash table bucket by bucket, in the order of the bucket index
//! with its bits reversed; a table twice as large splits each bucket into two that come
//! next to each other in that order, so a cursor from one size means the same set of
//! visited hashes in another (`dictScan`). The map here is open-addressed (hashbrown), so a
//! key may sit a few buckets past the one its hash points to (its *home*): a step visits
//! home buckets, and finds the keys whose home it is by following the probe sequence
//! from there, as a lookup does, once per possible 7-bit tag (`HashTable::iter_hash` with
//! a hash made of that tag and the home). The home depends only on the hash and the
//! table's size, never on where other keys were put, so moving keys (a rehash in place,
//! a new table from a snapshot) cannot hide one from the walk.

//!
//! While the map grows it has two tables (`kv/map.rs`), and a key may move from one to
//! the other between two steps. A step then visits, as Redis's does with its two tables,
//! a home of the smaller table and every home of the larger one that expands it: the
//! same hashes in both, so a key is visited wherever it sits.

use hashbrown::HashTable;

use super::{Item, Kv};

/// Tags hashbrown keeps per bucket: the top 7 bits of the hash.
const TAGS: u64 = 128;
/// Where hashbrown takes the tag from.
const TAG_SHIFT: u32 = 57;

impl Kv {
    /// One step of a scan from `cursor` (0 to start): visits the keys of home buckets in
    /// reverse-binary order until `count` keys were visited or `10 × count` homes of the
    /// smaller table looked at (as Redis bounds a step), and returns the cursor to go on
    /// from; 0 when the walk is done. Cursors are below the larger table's bucket count,
    /// so below 2^48.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&Item)) -> u64 {
        let mut tables = [Some(&self.map.table), self.map.old_table()]
            .into_iter()
            .flatten()
            .filter(|t| t.num_buckets() > 0);
        let Some(first) = tables.next() else {
            return 0;
        };
        let (small, large) = match tables.next() {
            Some(second) if second.num_buckets() < first.num_buckets() => (second, first),
            Some(second) => (first, second),
            None => (first, first),
        };
        if self.map.len() == 0 {
            return 0;
        }
        let m0 = small.num_buckets() as u64 - 1;
        let m1 = large.num_buckets() as u64 - 1;
        debug_assert!(m1 < 1 << TAG_SHIFT, "homes and tags do not overlap");
        let count = count.max(1);
        let buckets_max = count.saturating_mul(10);
        let (mut visited, mut buckets) = (0, 0);
        // Visits the keys whose home is `home`; returns how many.
        let mut visit_home = |table: &HashTable<Item>, mask: u64, home: u64| {
            let mut n = 0;
            for tag in 0..TAGS {
                for item in table.iter_hash((tag << TAG_SHIFT) | home) {
                    if self.map.hash(item.key()) & mask == home {
                        visit(item);
                        n += 1;
                    }
                }
            }
            n
        };
        let mut v = cursor;
        loop {
            if !std::ptr::eq(small, large) {
                visited += visit_home(small, m0, v & m0);
            }
            // The homes of the larger table whose low bits are this one's (just this one
            // when there is one table): the reversed cursor counts through the bits the
            // smaller mask does not cover, and carries into its own once they wrap.
            loop {
                visited += visit_home(large, m1, v & m1);
                v |= !m1;
                v = v.reverse_bits().wrapping_add(1).reverse_bits();
                if v & (m0 ^ m1) == 0 {
                    break;
                }
            }
            buckets += 1;
            if v == 0 || visited >= count || buckets >= buckets_max {
                return v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use bytes::Bytes;

    use super::*;
    use crate::protocol::kv::{Applied, Command, Request};

    fn set(kv: &mut Kv, slot: u64, key: &str) {
        let cmd = Command::Set(Bytes::from(key.to_string()), Bytes::from_static(b"v"));
        let applied = kv.apply(
            slot,
            &Request {
                cmd,
                ..Request::noop()
            },
        );
        assert_eq!(applied, Applied::Reply(crate::protocol::kv::Reply::Ok));
    }

    fn del(kv: &mut Kv, slot: u64, key: &str) {
        let cmd = Command::Del(vec![Bytes::from(key.to_string())]);
        kv.apply(
            slot,
            &Request {
                cmd,
                ..Request::noop()
            },
        );
    }

    /// Scans to the end, calling `between(step)` after every step.
    fn scan_all(kv: &mut Kv, count: usize, mut between: impl FnMut(&mut Kv, usize)) -> Vec<String> {
        let mut seen = Vec::new();
        let mut cursor = 0;
        for step in 0.. {
            cursor = kv.scan(cursor, count, |i| {
                seen.push(String::from_utf8(i.key().to_vec()).unwrap())
            });
            if cursor == 0 {
                break;
            }
            assert!(cursor < 1 << 48);
            between(kv, step);
        }
        seen
    }

    #[test]
    fn a_scan_visits_every_key_once_when_nothing_changes() {
        let mut kv = Kv::new(8, 8);
        assert_eq!(kv.scan(0, 10, |_| panic!("empty")), 0);
        for i in 0..1000 {
            set(&mut kv, i + 1, &format!("k{i}"));
        }
        for count in [1, 10, 100, 5000] {
            let seen = scan_all(&mut kv, count, |_, _| {});
            assert_eq!(seen.len(), 1000, "count {count}");
            let unique: HashSet<&String> = seen.iter().collect();
            assert_eq!(
                unique.len(),
                1000,
                "count {count}: no repeats without changes"
            );
        }
    }

    /// Sets keys until the map is partway through a growth (two tables).
    fn set_until_growing(kv: &mut Kv, slot: &mut u64) {
        while kv.map.old_table().is_none_or(|t| t.len() < 100) {
            *slot += 1;
            set(kv, *slot, &format!("grow{slot}"));
        }
    }

    #[test]
    fn a_scan_during_a_growth_visits_keys_in_both_tables() {
        let mut kv = Kv::new(8, 8);
        let mut slot = 0;
        set_until_growing(&mut kv, &mut slot);
        // Nothing changes: every key once, from both tables.
        let seen = scan_all(&mut kv, 10, |_, _| {});
        assert!(kv.map.old_table().is_some_and(|t| !t.is_empty()));
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!((seen.len(), unique.len()), (kv.len(), kv.len()));
        // Keys come in between the steps (moving others from table to table, starting and
        // ending growths): the keys present throughout are all visited.
        let stay: Vec<String> = seen.clone();
        let mut growing_steps = 0;
        let seen = scan_all(&mut kv, 5, |kv, _| {
            for _ in 0..30 {
                slot += 1;
                set(kv, slot, &format!("new{slot}"));
            }
            growing_steps += usize::from(kv.map.old_table().is_some());
        });
        let seen: HashSet<String> = seen.into_iter().collect();
        for k in &stay {
            assert!(seen.contains(k), "{k} was never visited");
        }
        assert!(growing_steps > 50, "{growing_steps} steps during a growth");
    }

    #[test]
    fn keys_present_throughout_are_visited_while_others_come_and_go() {
        let mut kv = Kv::new(8, 8);
        for i in 0..300 {
            set(&mut kv, i + 1, &format!("stay{i}"));
        }
        // Between steps: the table grows many times over (new keys), then shrinks back to
        // a fresh table (a snapshot installed), keys are removed and come back.
        let mut slot = 10_000;
        let seen = scan_all(&mut kv, 7, |kv, step| {
            for j in 0..40 {
                slot += 1;
                set(kv, slot, &format!("new{step}-{j}"));
            }
            if step % 3 == 0 {
                for j in 0..40 {
                    slot += 1;
                    del(kv, slot, &format!("new{step}-{j}"));
                }
            }
            if step == 20 {
                let state = kv.export();
                let mut fresh = Kv::new(8, 8);
                fresh.import(state);
                *kv = fresh;
            }
        });
        let seen: HashSet<String> = seen.into_iter().collect();
        for i in 0..300 {
            assert!(
                seen.contains(&format!("stay{i}")),
                "stay{i} was never visited"
            );
        }
    }
}
