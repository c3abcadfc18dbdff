//! Lists edited in place: `LSET`, `LINSERT`, `LTRIM`, and `LPOS` reading positions, with
//! Redis's replies and errors (negative indexes, out of range, WRONGTYPE, empty lists).
use super::tests_lists::{WRONG, b, push, range, run, values};
use super::*;
use crate::protocol::list::{End, LIST_BYTES_MAX, LIST_ELEMENT_OVERHEAD_BYTES};

fn lset(key: &str, index: i64, value: &str) -> Command {
    Command::LSet(Box::new(LSet {
        key: b(key),
        index,
        value: b(value),
    }))
}

fn linsert(key: &str, before: bool, pivot: &str, value: &str) -> Command {
    Command::LInsert(Box::new(LInsert {
        key: b(key),
        before,
        pivot: b(pivot),
        value: b(value),
    }))
}

fn ltrim(key: &str, start: i64, stop: i64) -> Command {
    Command::LTrim {
        key: b(key),
        start,
        stop,
    }
}

fn lpos(key: &str, value: &str, rank: i64, count: Option<u64>, maxlen: u64) -> Command {
    Command::LPos(Box::new(LPos {
        key: b(key),
        value: b(value),
        rank,
        count,
        maxlen,
    }))
}

#[test]
fn lset_replaces_by_index_and_refuses_no_list_or_out_of_range() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            lset("q", 0, "x"),
            push("q", End::Right, &["a", "b", "c"]),
            lset("q", 0, "A"),
            lset("q", -1, "C"),
            lset("q", 3, "no"),
            lset("q", -4, "no"),
            lset("q", 1, ""),
            range("q"),
            Command::Set(b("s"), b("v")),
            lset("s", 0, "x"),
        ],
    );
    assert_eq!(
        r,
        vec![
            Reply::Error(ApplyError::NoSuchKey),
            Reply::Int(3),
            Reply::Ok,
            Reply::Ok,
            Reply::Error(ApplyError::IndexOutOfRange),
            Reply::Error(ApplyError::IndexOutOfRange),
            Reply::Ok,
            values(&["A", "", "C"]),
            Reply::Ok,
            WRONG,
        ]
    );
    assert_eq!(ApplyError::NoSuchKey.to_string(), "ERR no such key");
    assert_eq!(
        ApplyError::IndexOutOfRange.to_string(),
        "ERR index out of range"
    );
    assert!(kv.get(b"x").is_none(), "a refused LSET creates nothing");
}

#[test]
fn linsert_goes_next_to_the_first_match() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            linsert("q", true, "a", "x"),
            push("q", End::Right, &["a", "b", "a"]),
            linsert("q", true, "a", "0"),
            linsert("q", false, "a", "1"),
            linsert("q", false, "b", "2"),
            linsert("q", true, "zz", "no"),
            range("q"),
            Command::Set(b("s"), b("v")),
            linsert("s", true, "v", "x"),
        ],
    );
    assert_eq!(
        r,
        vec![
            Reply::Int(0),
            Reply::Int(3),
            Reply::Int(4),
            Reply::Int(5),
            Reply::Int(6),
            Reply::Int(-1),
            values(&["0", "a", "1", "b", "2", "a"]),
            Reply::Ok,
            WRONG,
        ]
    );
    assert!(kv.get(b"x").is_none());
}

#[test]
fn ltrim_keeps_a_range_and_an_emptied_list_vanishes() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            ltrim("q", 0, -1),
            push("q", End::Right, &["a", "b", "c", "d", "e"]),
            ltrim("q", 1, -2),
            range("q"),
            ltrim("q", -100, 100),
            range("q"),
            ltrim("q", -2, -1),
            range("q"),
            ltrim("q", 5, 10),
            Command::Exists(vec![b("q")]),
            Command::Type(b("q")),
            push("r", End::Right, &["a", "b"]),
            ltrim("r", 1, 0),
            Command::Exists(vec![b("r")]),
            Command::Set(b("s"), b("v")),
            ltrim("s", 0, 1),
        ],
    );
    assert_eq!(
        r,
        vec![
            Reply::Ok,
            Reply::Int(5),
            Reply::Ok,
            values(&["b", "c", "d"]),
            Reply::Ok,
            values(&["b", "c", "d"]),
            Reply::Ok,
            values(&["c", "d"]),
            Reply::Ok,
            Reply::Int(0),
            Reply::Value(Some(b("none"))),
            Reply::Int(2),
            Reply::Ok,
            Reply::Int(0),
            Reply::Ok,
            WRONG,
        ]
    );
    // A trim that removes nothing leaves the list's version alone.
    run(&mut kv, &mut slot, vec![push("t", End::Right, &["a"])]);
    let version = kv.get(b"t").map(Item::version);
    run(&mut kv, &mut slot, vec![ltrim("t", 0, -1)]);
    assert_eq!(kv.get(b"t").map(Item::version), version);
}

#[test]
fn lpos_finds_positions_by_rank_count_and_maxlen() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            lpos("q", "c", 1, None, 0),
            lpos("q", "c", 1, Some(0), 0),
            push("q", End::Right, &["a", "b", "c", "1", "2", "3", "c", "c"]),
            lpos("q", "c", 1, None, 0),
            lpos("q", "c", 2, None, 0),
            lpos("q", "c", -1, None, 0),
            lpos("q", "c", 1, Some(2), 0),
            lpos("q", "c", -1, Some(0), 0),
            lpos("q", "c", 1, Some(0), 3),
            lpos("q", "z", 1, None, 0),
            lpos("q", "z", 1, Some(1), 0),
            Command::Set(b("s"), b("v")),
            lpos("s", "v", 1, None, 0),
        ],
    );
    assert_eq!(
        r,
        vec![
            Reply::Value(None),
            Reply::Ints(vec![]),
            Reply::Int(8),
            Reply::Int(2),
            Reply::Int(6),
            Reply::Int(7),
            Reply::Ints(vec![2, 6]),
            Reply::Ints(vec![7, 6, 2]),
            Reply::Ints(vec![2]),
            Reply::Value(None),
            Reply::Ints(vec![]),
            Reply::Ok,
            WRONG,
        ]
    );
    assert!(lpos("q", "c", 1, None, 0).is_read_only());
}

#[test]
fn list_edits_refuse_to_grow_past_the_limit() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    // Held: (big + its 4-byte length + the overhead) + ("a" + 1 + the overhead), 2 bytes
    // short of the limit.
    let big = "x".repeat(LIST_BYTES_MAX - 2 * LIST_ELEMENT_OVERHEAD_BYTES - 8);
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            push("q", End::Right, &[big.as_str()]),
            push("q", End::Right, &["a"]),
            linsert("q", true, "a", "0123456789"),
            lset("q", -1, "0123456789"),
            Command::LLen(b("q")),
        ],
    );
    let too_large = Reply::Error(ApplyError::ListTooLarge);
    assert_eq!(
        r,
        vec![
            Reply::Int(1),
            Reply::Int(2),
            too_large.clone(),
            too_large,
            Reply::Int(2)
        ]
    );
}

#[test]
fn many_tiny_elements_are_refused_at_the_held_bytes_limit() {
    // A 1-byte element is 2 bytes encoded but counts 2 + the overhead: the list holds at
    // most this many, far fewer than the 8M its encoded size alone would allow.
    let per_elem = 2 + LIST_ELEMENT_OVERHEAD_BYTES;
    let fit = LIST_BYTES_MAX / per_elem;
    assert!(fit < LIST_BYTES_MAX / 2 / 16);
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    let tiny = |n: usize| Command::Push {
        key: b("q"),
        values: vec![b("x"); n],
        end: End::Right,
        existing: false,
    };
    let chunk = 10_000;
    let mut pushed = 0;
    while pushed + chunk <= fit {
        let r = run(&mut kv, &mut slot, vec![tiny(chunk)]);
        pushed += chunk;
        assert_eq!(r, vec![Reply::Int(pushed as i64)]);
    }
    // One push that crosses the limit by one element is refused whole.
    let room = fit - pushed;
    let digest = kv.digest();
    let too_large = Reply::Error(ApplyError::ListTooLarge);
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            tiny(room + 1),
            linsert("q", true, "x", "y"),
            Command::LMove(Box::new(LMove {
                from: b("other"),
                to: b("q"),
                from_end: End::Left,
                to_end: End::Right,
            })),
            Command::LLen(b("q")),
        ],
    );
    assert_eq!(
        r,
        vec![
            too_large.clone(),
            Reply::Int(pushed as i64 + 1),
            Reply::Value(None),
            Reply::Int(pushed as i64 + 1),
        ],
        "an insert that fits goes in"
    );
    // Now `room - 1` more fit, and one past them is refused with nothing changed.
    let r = run(&mut kv, &mut slot, vec![tiny(room - 1)]);
    assert_eq!(r, vec![Reply::Int(fit as i64)]);
    let digest_full = kv.digest();
    assert_ne!(digest_full, digest);
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            push("other", End::Right, &["z"]),
            tiny(1),
            Command::LMove(Box::new(LMove {
                from: b("other"),
                to: b("q"),
                from_end: End::Left,
                to_end: End::Right,
            })),
            lset("q", 0, &"y".repeat(20)),
            Command::LLen(b("q")),
            Command::LLen(b("other")),
        ],
    );
    assert_eq!(
        r,
        vec![
            Reply::Int(1),
            too_large.clone(),
            too_large.clone(),
            too_large,
            Reply::Int(fit as i64),
            Reply::Int(1),
        ]
    );
    // Only "other" was written since: removing it gives the digest of the full list back.
    run(&mut kv, &mut slot, vec![Command::Del(vec![b("other")])]);
    assert_eq!(kv.digest(), digest_full, "a refused write changes nothing");
}
