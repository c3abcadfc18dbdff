//! The map's growth a few items per write (`kv/map.rs`): every key stays found, a write
//! moves no more than its share, and hashbrown never rehashes a table itself.
use std::collections::HashMap;

use super::map::{GROW_STEP_ITEMS, Map};

fn key(i: u64) -> Vec<u8> {
    format!("key:{i}").into_bytes()
}

/// The old table's items, or `None` when the map does not grow.
fn old_len(map: &Map) -> Option<usize> {
    map.old_table().map(|t| t.len())
}

/// Checks `map` holds exactly `model`: the count, every key's value, and `iter` giving
/// each key once.
fn check(map: &Map, model: &HashMap<Vec<u8>, Vec<u8>>, at: u64) {
    assert_eq!(map.len(), model.len(), "write {at}");
    for (k, v) in model {
        let item = map
            .get(k)
            .unwrap_or_else(|| panic!("write {at}: {k:?} lost"));
        assert_eq!(item.wire_value().to_vec(), *v, "write {at}");
    }
    let mut seen: Vec<&[u8]> = map.iter().map(|i| i.key()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen.len(),
        model.len(),
        "write {at}: iter repeats or misses keys"
    );
}

#[test]
fn a_growth_moves_a_few_items_per_write_and_every_key_stays_found() {
    let mut map = Map::default();
    let mut model = HashMap::new();
    let (mut growths, mut writes_while_growing) = (0, 0);
    // The new table's buckets when its growth began: hashbrown must not change them.
    let mut new_buckets = 0;
    for i in 0..60_000u64 {
        let before = old_len(&map);
        // Mostly new keys; every third write overwrites a key likely still in the old
        // table, with a value of another length (a new item).
        let (k, v) = if i % 3 == 0 && i > 0 {
            (key(i / 2), format!("changed{i}").into_bytes())
        } else {
            (key(i), b"v".to_vec())
        };
        map.put(&k, &v, i, |_, _| {});
        model.insert(k.clone(), v.clone());
        assert_eq!(
            map.get(&k).map(|x| x.wire_value().to_vec()),
            Some(v.clone())
        );
        match (before, old_len(&map)) {
            (Some(b), Some(a)) => {
                writes_while_growing += 1;
                assert!(b - a <= GROW_STEP_ITEMS + 1, "write {i} moved {}", b - a);
                assert_eq!(map.table.num_buckets(), new_buckets, "write {i}: rehashed");
            }
            (None, Some(a)) => {
                growths += 1;
                new_buckets = map.table.num_buckets();
                // The whole table became the old one; this write moved its share.
                assert!(a + GROW_STEP_ITEMS + 1 >= model.len() - 1, "write {i}");
            }
            (Some(b), None) => assert!(b <= GROW_STEP_ITEMS + 1, "write {i} moved {b}"),
            (None, None) => {}
        }
        if i % 4_999 == 0 || (before.is_some() && i % 499 == 0) {
            check(&map, &model, i);
        }
    }
    check(&map, &model, u64::MAX);
    assert!(growths >= 10, "{growths} growths");
    assert!(writes_while_growing > 10_000, "{writes_while_growing}");
}

#[test]
fn removals_during_a_growth_leave_the_map_as_a_model_map() {
    let mut map = Map::default();
    let mut model = HashMap::new();
    let mut removed_from_old = 0;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..40_000u64 {
        // xorshift: the same keys every run.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let k = key(rng % 20_000);
        if (rng >> 40).is_multiple_of(4) {
            let in_old = map
                .old_table()
                .is_some_and(|t| t.iter().any(|x| x.key() == &k[..]));
            let got = map.remove(&k).map(|x| x.wire_value().to_vec());
            assert_eq!(got, model.remove(&k), "write {i}");
            removed_from_old += usize::from(in_old);
        } else {
            let v = format!("{i}").into_bytes();
            map.put(&k, &v, i, |_, _| {});
            model.insert(k, v);
        }
        if i % 2_999 == 0 || (map.old_table().is_some() && i % 97 == 0) {
            check(&map, &model, i);
        }
    }
    check(&map, &model, u64::MAX);
    let payload: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    assert_eq!(map.payload_bytes, payload);
    assert!(
        removed_from_old > 100,
        "{removed_from_old} removals from the old table"
    );
}

#[test]
fn a_map_built_from_items_does_not_start_a_growth() {
    // 917,504 is 7/8 of 2^20 buckets, a table filled to the last place; 3,584 of 2^12.
    for n in [3_584u64, 3_583, 3_585, 100] {
        let map: Map = (0..n).map(|i| super::Item::new(&key(i), b"v", i)).collect();
        assert_eq!(map.len(), n as usize);
        assert!(map.old_table().is_none(), "{n} items: a growth started");
    }
}

#[test]
fn ticks_end_a_growth_that_no_write_moves_on() {
    use super::{Command, Kv, Request};
    use bytes::Bytes;
    let mut kv = Kv::new(8, 8);
    let mut slot = 0;
    while kv.growth_keys_left() < 1_000 {
        slot += 1;
        let cmd = Command::Set(Bytes::from(key(slot)), Bytes::from_static(b"v"));
        kv.apply(
            slot,
            &Request {
                cmd,
                ..Request::noop()
            },
        );
    }
    let (keys, digest) = (kv.len(), kv.digest());
    let mut steps = 0;
    while !kv.grow_step(100) {
        steps += 1;
        assert!(steps < 10_000, "the growth never ended");
    }
    assert!(
        steps >= 10,
        "{steps} steps of 100 moved 1,000 keys and more"
    );
    assert_eq!(kv.growth_keys_left(), 0);
    assert_eq!((kv.len(), kv.digest()), (keys, digest));
    assert!(kv.grow_step(100), "no growth runs");
}
