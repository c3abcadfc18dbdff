//! An export taken a part at a time (`Kv::export_begin`, `export_step`, `export_end`)
//! while commands go on changing the map: it holds the state it began with, item for item,
//! and the map ends as the same commands leave a map nobody exported.
use super::tests_lists::{b, run};
use super::*;
use crate::protocol::list::End;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// An item as owned bytes, to compare states without sharing their items.
type Owned = (Vec<u8>, &'static str, Slot, Vec<u8>);

fn owned(entries: &[Item]) -> Vec<Owned> {
    let mut all: Vec<Owned> = entries
        .iter()
        .map(|i| {
            let kind = i.kind().name();
            (i.key().to_vec(), kind, i.version(), i.wire_value().to_vec())
        })
        .collect();
    all.sort();
    all
}

/// A random write on 64 string keys and 8 list keys. Most string SETs keep the value's
/// length, the overwrite a map does in place when nobody else holds the item.
fn random_write(rng: &mut StdRng) -> Command {
    let string = |rng: &mut StdRng| Bytes::from(format!("s{}", rng.random_range(0..64)));
    let list = |rng: &mut StdRng| Bytes::from(format!("l{}", rng.random_range(0..8)));
    let end = |rng: &mut StdRng| {
        if rng.random_bool(0.5) {
            End::Left
        } else {
            End::Right
        }
    };
    match rng.random_range(0..10) {
        0..=4 => Command::Set(
            string(rng),
            Bytes::from(format!("{:010}", rng.random_range(0..1_000_000))),
        ),
        5 => Command::Set(
            string(rng),
            Bytes::from(vec![b'v'; rng.random_range(1..40)]),
        ),
        6 => Command::Del(vec![string(rng)]),
        7 | 8 => Command::Push {
            key: list(rng),
            values: vec![Bytes::from(format!("e{}", rng.random_range(0..5)))],
            end: end(rng),
            existing: false,
        },
        _ => Command::Pop {
            key: list(rng),
            end: end(rng),
            count: None,
        },
    }
}

/// Applies the same write to the exported map and to its twin, at the next slot.
fn write_both(kv: &mut Kv, twin: &mut Kv, slot: &mut Slot, cmd: Command) {
    let mut twin_slot = *slot;
    let replies = run(kv, slot, vec![cmd.clone()]);
    assert_eq!(replies, run(twin, &mut twin_slot, vec![cmd]), "slot {slot}");
}

#[test]
fn an_export_in_parts_holds_the_state_it_began_with() {
    for seed in 0..40 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut kv, mut twin) = (Kv::new(64, 64), Kv::new(64, 64));
        let mut slot = 0;
        for _ in 0..400 {
            write_both(&mut kv, &mut twin, &mut slot, random_write(&mut rng));
        }
        // The state as owned bytes: holding the items would keep them shared, and the
        // map would then never write one in place.
        let began = owned(&kv.export().entries);
        let rest = kv.export_begin();
        assert!(rest.entries.is_empty());
        loop {
            for _ in 0..rng.random_range(0..30) {
                write_both(&mut kv, &mut twin, &mut slot, random_write(&mut rng));
            }
            if rng.random_range(0..20) == 0 {
                // A snapshot installed meanwhile replaces the whole map.
                let state = twin.export();
                kv.import(state.clone());
                twin.import(state);
            }
            if kv.export_step(rng.random_range(1..40)) {
                break;
            }
        }
        for _ in 0..rng.random_range(0..30) {
            write_both(&mut kv, &mut twin, &mut slot, random_write(&mut rng));
        }
        let entries = kv.export_end().expect("an export runs");
        assert_eq!(owned(&entries), began, "seed {seed}: the export moved");
        assert_eq!(kv.digest(), twin.digest(), "seed {seed}: the map differs");
        assert_eq!(owned(&kv.export().entries), owned(&twin.export().entries));
        // Ended, the map writes in place again: an overwrite of a key nobody else holds
        // keeps its item.
        drop(entries);
        write_both(
            &mut kv,
            &mut twin,
            &mut slot,
            Command::Set(b("s0"), b("0123456789")),
        );
        let before = kv.get(b"s0").map(|i| i.key().as_ptr());
        write_both(
            &mut kv,
            &mut twin,
            &mut slot,
            Command::Set(b("s0"), b("9876543210")),
        );
        assert_eq!(
            kv.get(b"s0").map(|i| i.key().as_ptr()),
            before,
            "seed {seed}"
        );
    }
}

#[test]
fn an_export_begun_again_or_never_ended_leaves_the_map_whole() {
    let mut rng = StdRng::seed_from_u64(7);
    let (mut kv, mut twin) = (Kv::new(64, 64), Kv::new(64, 64));
    let mut slot = 0;
    for _ in 0..200 {
        write_both(&mut kv, &mut twin, &mut slot, random_write(&mut rng));
    }
    kv.export_begin();
    kv.export_step(10);
    for _ in 0..50 {
        write_both(&mut kv, &mut twin, &mut slot, random_write(&mut rng));
    }
    // Begun again: the new export holds the state now.
    let now = owned(&kv.export().entries);
    kv.export_begin();
    for _ in 0..50 {
        write_both(&mut kv, &mut twin, &mut slot, random_write(&mut rng));
    }
    assert_eq!(kv.export_end().as_deref().map(owned), Some(now));
    assert!(kv.export_end().is_none(), "no export runs");
    // Never ended: dropping the map with an export in progress frees what it holds once.
    kv.export_begin();
    write_both(&mut kv, &mut twin, &mut slot, random_write(&mut rng));
    assert_eq!(kv.digest(), twin.digest());
    drop(kv);
}

/// Writes that mostly add keys, so the table grows (rehashes, moving every item) while
/// an export walks it a few buckets at a time: the export still holds the state it
/// began with.
#[test]
fn an_export_in_parts_holds_its_state_while_the_table_grows() {
    let mut grew = 0;
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut kv, mut twin) = (Kv::new(64, 64), Kv::new(64, 64));
        let mut slot = 0;
        let write = |kv: &mut Kv, twin: &mut Kv, slot: &mut Slot, rng: &mut StdRng| {
            let key = Bytes::from(format!("g{}", rng.random_range(0..20_000)));
            let cmd = if rng.random_range(0..8) == 0 {
                Command::Del(vec![key])
            } else {
                Command::Set(key, Bytes::from(format!("{}", rng.random_range(0..100))))
            };
            write_both(kv, twin, slot, cmd);
        };
        for _ in 0..rng.random_range(50..400) {
            write(&mut kv, &mut twin, &mut slot, &mut rng);
        }
        let began = owned(&kv.export().entries);
        let buckets = kv.map.table.num_buckets();
        kv.export_begin();
        while !kv.export_step(rng.random_range(1..4)) {
            for _ in 0..rng.random_range(0..20) {
                write(&mut kv, &mut twin, &mut slot, &mut rng);
            }
        }
        grew += usize::from(kv.map.table.num_buckets() > buckets);
        let entries = kv.export_end().expect("an export runs");
        assert_eq!(owned(&entries), began, "seed {seed}: the export moved");
        assert_eq!(kv.digest(), twin.digest(), "seed {seed}: the map differs");
    }
    assert!(grew >= 10, "the table grew during {grew} of 20 exports");
}

/// A write that mostly adds a key never seen (the map keeps growing, in two tables a few
/// items per write), else overwrites, removes or edits a list.
fn growing_write(rng: &mut StdRng, slot: Slot) -> Command {
    let old = |rng: &mut StdRng| Bytes::from(format!("g{}", rng.random_range(0..=slot)));
    match rng.random_range(0..10) {
        0 => Command::Del(vec![old(rng)]),
        1 => Command::Set(old(rng), Bytes::from(vec![b'w'; rng.random_range(1..30)])),
        2 => Command::Push {
            key: Bytes::from(format!("gl{}", rng.random_range(0..500))),
            values: vec![b("e")],
            end: End::Left,
            existing: false,
        },
        _ => Command::Set(Bytes::from(format!("g{slot}")), b("v")),
    }
}

/// Exports in parts one after another while the map grows: exports begun during a
/// growth, and growths begun or ended during an export, all hold the state the export
/// began with.
#[test]
fn an_export_in_parts_holds_its_state_across_growths_in_two_tables() {
    let (mut began_growing, mut grew_during, mut ended_during) = (0, 0, 0);
    for seed in 0..8 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut kv, mut twin) = (Kv::new(64, 64), Kv::new(64, 64));
        let mut slot = 0;
        for round in 0..5 {
            for _ in 0..rng.random_range(0..2_000) {
                let cmd = growing_write(&mut rng, slot);
                write_both(&mut kv, &mut twin, &mut slot, cmd);
            }
            let began = owned(&kv.export().entries);
            let mut growing = kv.map.old_table().is_some();
            began_growing += usize::from(growing);
            kv.export_begin();
            while !kv.export_step(rng.random_range(1..200)) {
                for _ in 0..rng.random_range(0..40) {
                    let cmd = growing_write(&mut rng, slot);
                    write_both(&mut kv, &mut twin, &mut slot, cmd);
                }
                let now = kv.map.old_table().is_some();
                grew_during += usize::from(now && !growing);
                ended_during += usize::from(!now && growing);
                growing = now;
            }
            let entries = kv.export_end().expect("an export runs");
            assert_eq!(owned(&entries), began, "seed {seed} round {round}");
            assert_eq!(kv.digest(), twin.digest(), "seed {seed} round {round}");
        }
    }
    assert!(
        began_growing >= 5 && grew_during >= 5 && ended_during >= 5,
        "exports begun while growing {began_growing}, growths begun {grew_during} and \
         ended {ended_during} during one"
    );
}
