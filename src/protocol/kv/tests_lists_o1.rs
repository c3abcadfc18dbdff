//! Lists held as elements and changed in place: whatever mix of commands built a list, a
//! replica that received it another way (a snapshot, an anti-entropy entry) holds the same
//! elements with the same digests, and a snapshot taken before an edit keeps its list.
use super::tests_lists::{b, range, run};
use super::*;
use crate::protocol::list::End;

/// A seeded generator (splitmix64): the same commands on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn end(r: &mut Rng) -> End {
    if r.below(2) == 0 {
        End::Left
    } else {
        End::Right
    }
}

/// A random list write on one of two keys, with small elements that repeat (so `LREM`,
/// `LINSERT` and `LPOS` find matches).
fn random_write(r: &mut Rng) -> Command {
    let key = b(["p", "q"][r.below(2) as usize]);
    let elem = |r: &mut Rng| b(&format!("e{}", r.below(6)));
    match r.below(10) {
        0..=3 => Command::Push {
            key,
            values: (0..1 + r.below(3)).map(|_| elem(r)).collect(),
            end: end(r),
            existing: false,
        },
        4 | 5 => Command::Pop {
            key,
            end: end(r),
            count: (r.below(2) == 0).then(|| r.below(3)),
        },
        6 => Command::LMove(Box::new(LMove {
            from: key,
            to: b(["p", "q"][r.below(2) as usize]),
            from_end: end(r),
            to_end: end(r),
        })),
        7 => Command::LSet(Box::new(LSet {
            key,
            index: r.below(8) as i64 - 4,
            value: elem(r),
        })),
        8 => Command::LInsert(Box::new(LInsert {
            key,
            before: r.below(2) == 0,
            pivot: elem(r),
            value: elem(r),
        })),
        _ => match r.below(2) {
            0 => Command::LRem(Box::new(LRem {
                key,
                count: r.below(5) as i64 - 2,
                value: elem(r),
            })),
            _ => Command::LTrim {
                key,
                start: r.below(4) as i64 - 1,
                stop: r.below(6) as i64 - 2,
            },
        },
    }
}

/// The root of `kv`'s tree as kept by its writes, and as rebuilt from scratch.
fn roots(kv: &mut Kv) -> (u64, u64) {
    kv.merkle_mut().rebuild_incremental();
    let kept = kv.merkle().root();
    let mut fresh = crate::protocol::merkle::MerkleTree::default();
    fresh.rebuild_full(kv.iter().map(|i| (i.key(), i.entry_ref())));
    (kept, fresh.root())
}

#[test]
fn every_way_a_list_arrives_gives_the_same_elements_and_digests() {
    for seed in 0..20 {
        let mut r = Rng(seed);
        let (mut kv, mut slot) = (Kv::new(8, 8), 0);
        for step in 0..300 {
            run(&mut kv, &mut slot, vec![random_write(&mut r)]);
            let (kept, fresh) = roots(&mut kv);
            assert_eq!(kept, fresh, "seed {seed} step {step}: tree kept in step");
        }
        // A snapshot, through its wire form.
        let bytes = postcard::to_stdvec(&kv.export()).unwrap();
        let mut restored = Kv::new(8, 8);
        restored.import(postcard::from_bytes(&bytes).unwrap());
        // Anti-entropy: each entry installed (encoded, decoded on install).
        let mut repaired = Kv::new(8, 8);
        for i in kv.iter() {
            assert!(repaired.install(i.key_bytes(), i.entry()));
        }
        for other in [&mut restored, &mut repaired] {
            assert_eq!(other.digest(), kv.digest(), "seed {seed}");
            assert_eq!(roots(other), roots(&mut kv), "seed {seed}");
            for key in ["p", "q"] {
                assert_eq!(other.read(&range(key)), kv.read(&range(key)));
                let digest = |k: &Kv| {
                    k.get(key.as_bytes())
                        .map(|i| crate::protocol::digest::digest(i.entry_ref()))
                };
                assert_eq!(digest(other), digest(&kv), "seed {seed} key {key}");
                // The digest of the entry that travels is the held list's.
                let travelled = kv.get(key.as_bytes()).map(|i| {
                    let e = i.entry();
                    crate::protocol::digest::digest(e.entry_ref())
                });
                assert_eq!(travelled, digest(&kv));
            }
            assert_eq!(other.stored_bytes(), kv.stored_bytes());
        }
    }
}

#[test]
fn a_snapshot_keeps_the_list_it_froze() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    let words: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    run(
        &mut kv,
        &mut slot,
        vec![super::tests_lists::push("l", End::Right, &words)],
    );
    let frozen = kv.export();
    let before = postcard::to_stdvec(&frozen).unwrap();
    let popped = run(
        &mut kv,
        &mut slot,
        vec![Command::Pop {
            key: b("l"),
            end: End::Left,
            count: Some(60),
        }],
    );
    assert!(matches!(&popped[0], Reply::Values(v) if v.len() == 60));
    assert_eq!(postcard::to_stdvec(&frozen).unwrap(), before);
    let mut back = Kv::new(8, 8);
    back.import(frozen);
    assert_eq!(back.read(&Command::LLen(b("l"))), Reply::Int(100));
    assert_eq!(kv.read(&Command::LLen(b("l"))), Reply::Int(40));
    // 40 elements of 3 bytes, each with a 1-byte length, and the key.
    assert_eq!(kv.stored_bytes(), 1 + 40 * 4);
}
