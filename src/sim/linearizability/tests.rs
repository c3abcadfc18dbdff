//! The checker on small histories: each verdict by hand.

use super::*;

fn op(client: u64, op: Op, out: Output, call: u64, ret: u64) -> Operation {
    Operation::new(client, op, out, call, ret)
}

/// An operation that saw the log's time between `log_lo` and `log_hi`.
fn timed(o: Operation, log_lo: u64, log_hi: u64) -> Operation {
    Operation {
        log_lo,
        log_hi,
        ..o
    }
}

#[test]
fn sequential_history_is_linearizable() {
    let h = [
        op(1, Op::Set(1), Output::Ok, 0, 1),
        op(1, Op::Get, Output::Value(Some(1)), 2, 3),
        op(1, Op::Del, Output::Removed(true), 4, 5),
        op(1, Op::Get, Output::Value(None), 6, 7),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
}

#[test]
fn stale_read_after_write_is_a_violation() {
    let h = [
        op(1, Op::Set(1), Output::Ok, 0, 1),
        op(2, Op::Set(2), Output::Ok, 2, 3),
        op(3, Op::Get, Output::Value(Some(1)), 4, 5),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Violation);
}

#[test]
fn concurrent_reads_may_see_either_order() {
    // The write overlaps both reads: old-then-new is fine.
    let h = [
        op(1, Op::Set(1), Output::Ok, 0, 1),
        op(2, Op::Set(2), Output::Ok, 2, 10),
        op(3, Op::Get, Output::Value(Some(1)), 3, 4),
        op(4, Op::Get, Output::Value(Some(2)), 5, 6),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
    // New-then-old, with the reads in real-time order, is not.
    let h = [
        op(1, Op::Set(1), Output::Ok, 0, 1),
        op(2, Op::Set(2), Output::Ok, 2, 10),
        op(3, Op::Get, Output::Value(Some(2)), 3, 4),
        op(4, Op::Get, Output::Value(Some(1)), 5, 6),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Violation);
}

#[test]
fn unacknowledged_write_may_or_may_not_take_effect() {
    let seen = [
        op(1, Op::Set(1), Output::Unknown, 0, u64::MAX),
        op(2, Op::Get, Output::Value(Some(1)), 5, 6),
    ];
    assert_eq!(check(&seen, 1_000_000), Verdict::Linearizable);
    let unseen = [
        op(1, Op::Set(1), Output::Unknown, 0, u64::MAX),
        op(2, Op::Get, Output::Value(None), 5, 6),
    ];
    assert_eq!(check(&unseen, 1_000_000), Verdict::Linearizable);
}

#[test]
fn lost_acknowledged_write_is_a_violation() {
    let h = [
        op(1, Op::Set(1), Output::Ok, 0, 1),
        op(2, Op::Get, Output::Value(None), 5, 6),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Violation);
}

#[test]
fn delete_count_must_match_state() {
    let h = [op(1, Op::Del, Output::Removed(true), 0, 1)];
    assert_eq!(check(&h, 1_000_000), Verdict::Violation);
    let h = [
        op(1, Op::Set(7), Output::Ok, 0, 1),
        op(1, Op::Del, Output::Removed(true), 2, 3),
        op(2, Op::Del, Output::Removed(true), 4, 5),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Violation);
}

#[test]
fn many_concurrent_operations_check_quickly() {
    // 4 clients, 100 writes each, overlapping in waves; every read sees the last wave.
    let mut h = Vec::new();
    for wave in 0..100u64 {
        for c in 0..4u64 {
            h.push(op(
                c,
                Op::Set(wave * 4 + c),
                Output::Ok,
                wave * 10,
                wave * 10 + 5,
            ));
        }
    }
    assert_eq!(check(&h, 10_000_000), Verdict::Linearizable);
    h.push(op(9, Op::Get, Output::Value(Some(0)), 2000, 2001));
    assert_eq!(check(&h, 10_000_000), Verdict::Violation);
}

#[test]
fn list_histories_check_as_a_sequence() {
    let h = [
        op(1, Op::Push(1), Output::Count(1), 0, 1),
        op(1, Op::Push(2), Output::Count(2), 2, 3),
        op(1, Op::Len, Output::Count(2), 4, 5),
        op(1, Op::Pop, Output::Value(Some(1)), 6, 7),
        op(1, Op::Pop, Output::Value(Some(2)), 8, 9),
        op(1, Op::Pop, Output::Value(None), 10, 11),
        op(1, Op::Len, Output::Count(0), 12, 13),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
    // Concurrent pushes may land in either order; pops then see that order.
    let h = [
        op(1, Op::Push(1), Output::Count(2), 0, 5),
        op(2, Op::Push(2), Output::Count(1), 0, 5),
        op(1, Op::Pop, Output::Value(Some(2)), 6, 7),
        op(2, Op::Pop, Output::Unknown, 8, u64::MAX),
        op(1, Op::Len, Output::Count(1), 9, 10),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
}

#[test]
fn list_edits_and_positions_check_against_the_sequence() {
    let h = [
        op(1, Op::Push(1), Output::Count(1), 0, 1),
        op(1, Op::Push(2), Output::Count(2), 2, 3),
        op(1, Op::SetHead(3), Output::Ok, 4, 5),
        op(1, Op::Pos(3), Output::Count(0), 6, 7),
        op(1, Op::Pos(1), Output::Value(None), 8, 9),
        op(1, Op::Trim { keep: 1 }, Output::Ok, 10, 11),
        op(1, Op::Len, Output::Count(1), 12, 13),
        op(1, Op::Trim { keep: 0 }, Output::Ok, 14, 15),
        op(1, Op::SetHead(4), Output::Refused, 16, 17),
        op(1, Op::Len, Output::Count(0), 18, 19),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
    let bad = |last: Operation| {
        let mut h = h[..4].to_vec();
        h.push(last);
        check(&h, 1_000_000)
    };
    assert_eq!(
        bad(op(2, Op::Pos(2), Output::Count(0), 8, 9)),
        Verdict::Violation
    );
    assert_eq!(
        bad(op(2, Op::Pos(3), Output::Value(None), 8, 9)),
        Verdict::Violation
    );
    assert_eq!(
        bad(op(2, Op::SetHead(5), Output::Refused, 8, 9)),
        Verdict::Violation
    );
    assert_eq!(
        bad(op(2, Op::Pop, Output::Value(Some(1)), 8, 9)),
        Verdict::Violation,
        "the head was replaced"
    );
}

#[test]
fn inserts_and_rotations_check_against_the_sequence() {
    let ins = |before, pivot, value| Op::Insert {
        before,
        pivot,
        value,
    };
    let rot = |from_left, to_left| Op::Rotate { from_left, to_left };
    let h = [
        op(1, ins(true, 9, 1), Output::Count(0), 0, 1),
        op(1, Op::Push(1), Output::Count(1), 2, 3),
        op(1, Op::Push(2), Output::Count(2), 4, 5),
        op(1, ins(true, 2, 3), Output::Count(3), 6, 7),
        op(1, ins(false, 1, 4), Output::Count(4), 8, 9),
        op(1, ins(true, 9, 5), Output::Refused, 10, 11),
        // 1 4 3 2; the head to the tail: 4 3 2 1.
        op(1, rot(true, false), Output::Value(Some(1)), 12, 13),
        // The tail to the head: 1 4 3 2.
        op(1, rot(false, true), Output::Value(Some(1)), 14, 15),
        op(1, Op::Pos(3), Output::Count(2), 16, 17),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
    let with_last = |n: usize, last: Operation| {
        let mut h = h[..n].to_vec();
        h.push(last);
        check(&h, 1_000_000)
    };
    assert_eq!(
        with_last(4, op(2, Op::Pop, Output::Value(Some(1)), 20, 21)),
        Verdict::Linearizable
    );
    // 3 went before 2, not after: 1 3 2.
    assert_eq!(
        with_last(4, op(2, Op::Pos(3), Output::Count(2), 20, 21)),
        Verdict::Violation
    );
    assert_eq!(
        with_last(5, op(2, Op::Pos(4), Output::Count(1), 20, 21)),
        Verdict::Linearizable
    );
    assert_eq!(
        with_last(6, op(2, rot(true, true), Output::Value(Some(4)), 20, 21)),
        Verdict::Violation,
        "a rotation takes the head"
    );
    assert_eq!(
        with_last(6, op(2, rot(false, false), Output::Value(Some(2)), 20, 21)),
        Verdict::Linearizable
    );
    assert_eq!(
        with_last(1, op(2, rot(true, false), Output::Value(Some(1)), 20, 21)),
        Verdict::Violation,
        "no list to rotate"
    );
    assert_eq!(
        with_last(2, op(2, ins(true, 7, 8), Output::Count(0), 20, 21)),
        Verdict::Violation,
        "a list without the pivot answers -1"
    );
}

/// An operation on list `object` of a checked tuple.
fn on(object: usize, o: Operation) -> Operation {
    Operation { object, ..o }
}

#[test]
fn moves_between_two_lists_check_them_together() {
    let mv = |to, from_left, to_left| Op::Move {
        to,
        from_left,
        to_left,
    };
    // List 0: 1 2; list 1: 3. The head of 0 to the head of 1: 2 | 1 3.
    let h = [
        on(0, op(1, Op::Push(1), Output::Count(1), 0, 1)),
        on(0, op(1, Op::Push(2), Output::Count(2), 2, 3)),
        on(1, op(2, Op::Push(3), Output::Count(1), 2, 3)),
        on(0, op(1, mv(1, true, true), Output::Value(Some(1)), 4, 5)),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
    let with = |more: &[Operation]| {
        let mut all = h.to_vec();
        all.extend_from_slice(more);
        check(&all, 1_000_000)
    };
    let pop = |object, v| on(object, op(3, Op::Pop, Output::Value(v), 6, 7));
    let len = |object, n| on(object, op(3, Op::Len, Output::Count(n), 6, 7));
    assert_eq!(with(&[pop(1, Some(1))]), Verdict::Linearizable);
    assert_eq!(
        with(&[pop(1, Some(3))]),
        Verdict::Violation,
        "moved to the head, not the tail"
    );
    assert_eq!(with(&[len(0, 1), len(1, 2)]), Verdict::Linearizable);
    assert_eq!(
        with(&[len(1, 1)]),
        Verdict::Violation,
        "the move's element was lost"
    );
    assert_eq!(
        with(&[pop(0, Some(1))]),
        Verdict::Violation,
        "the element left its list"
    );
    // The other way, tail to tail: 2 3 | 1 (from 2 | 1 3).
    let back = on(1, op(2, mv(0, false, false), Output::Value(Some(3)), 6, 7));
    let pops = [
        on(0, op(3, Op::Pop, Output::Value(Some(2)), 8, 9)),
        on(0, op(3, Op::Pop, Output::Value(Some(3)), 10, 11)),
    ];
    assert_eq!(with(&[back, pops[0], pops[1]]), Verdict::Linearizable);
    // From an empty list: nothing moves, and saying otherwise is a violation.
    let from_empty = |v| on(1, op(2, mv(0, true, true), Output::Value(v), 0, 1));
    assert_eq!(check(&[from_empty(None)], 1_000_000), Verdict::Linearizable);
    assert_eq!(check(&[from_empty(Some(1))], 1_000_000), Verdict::Violation);
    // An unanswered move may have happened or not.
    let maybe = on(0, op(1, mv(1, true, false), Output::Unknown, 4, u64::MAX));
    let mut h2 = h[..3].to_vec();
    h2.push(maybe);
    for seen in [[len(0, 2), len(1, 1)], [len(0, 1), len(1, 2)]] {
        let mut all = h2.clone();
        all.extend_from_slice(&seen);
        assert_eq!(check(&all, 1_000_000), Verdict::Linearizable);
    }
    // Left its list before the second read began, yet not in the other.
    let mut all = h2.clone();
    let later = on(1, op(3, Op::Len, Output::Count(1), 8, 9));
    all.extend_from_slice(&[len(0, 1), later]);
    assert_eq!(check(&all, 1_000_000), Verdict::Violation, "half a move");
}

#[test]
fn two_pops_of_one_element_are_a_violation() {
    let h = [
        op(1, Op::Push(1), Output::Count(1), 0, 1),
        op(1, Op::Pop, Output::Value(Some(1)), 2, 3),
        op(2, Op::Pop, Output::Value(Some(1)), 2, 4),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Violation);
    let h = [
        op(1, Op::Push(1), Output::Count(1), 0, 1),
        op(1, Op::Push(2), Output::Count(2), 2, 3),
        op(2, Op::Pop, Output::Value(Some(2)), 4, 5),
    ];
    assert_eq!(check(&h, 1_000_000), Verdict::Violation, "not the head");
    let h = [
        op(1, Op::Push(1), Output::Count(1), 0, 1),
        op(2, Op::Len, Output::Count(0), 2, 3),
    ];
    assert_eq!(
        check(&h, 1_000_000),
        Verdict::Violation,
        "an acknowledged push lost"
    );
}

fn set_px(value: u64, ttl_ms: u64) -> Op {
    Op::SetPx { value, ttl_ms }
}

#[test]
fn a_key_vanishes_only_once_the_log_reached_its_deadline() {
    // Written at log time 1000..=1010 with 100 ms: the deadline lies in 1100..=1110.
    let set = timed(op(1, set_px(1, 100), Output::Ok, 0, 1), 1_000, 1_010);
    let gone_early = timed(op(2, Op::Get, Output::Value(None), 2, 3), 0, 1_099);
    assert_eq!(check(&[set, gone_early], 1_000_000), Verdict::Violation);
    let gone_later = timed(op(2, Op::Get, Output::Value(None), 2, 3), 0, 1_100);
    assert_eq!(check(&[set, gone_later], 1_000_000), Verdict::Linearizable);
    let still_there = timed(op(2, Op::Get, Output::Value(Some(1)), 2, 3), 0, 5_000);
    assert_eq!(check(&[set, still_there], 1_000_000), Verdict::Linearizable);
}

#[test]
fn an_expired_key_does_not_come_back() {
    let set = timed(op(1, set_px(1, 100), Output::Ok, 0, 1), 1_000, 1_000);
    let gone = timed(op(2, Op::Get, Output::Value(None), 2, 3), 0, 2_000);
    let back = timed(op(3, Op::Get, Output::Value(Some(1)), 4, 5), 0, 2_000);
    assert_eq!(check(&[set, gone, back], 1_000_000), Verdict::Violation);
    // A counter after the removal starts from nothing.
    let incr = timed(op(3, Op::Incr, Output::Count(1), 4, 5), 0, 2_000);
    let set = timed(op(1, Op::Set(7), Output::Ok, 0, 1), 0, 1_000);
    let expire = timed(
        op(1, Op::Expire { ttl_ms: 50 }, Output::Changed(true), 1, 2),
        1_000,
        1_000,
    );
    assert_eq!(
        check(&[set, expire, incr], 1_000_000),
        Verdict::Linearizable
    );
}

#[test]
fn persist_and_plain_writes_clear_the_deadline() {
    let set = timed(op(1, set_px(1, 100), Output::Ok, 0, 1), 1_000, 1_000);
    let persist = timed(op(1, Op::Persist, Output::Changed(true), 2, 3), 0, 1_000);
    let gone = timed(op(2, Op::Get, Output::Value(None), 4, 5), 0, 9_000);
    assert_eq!(check(&[set, persist, gone], 1_000_000), Verdict::Violation);
    let persist_again = timed(op(1, Op::Persist, Output::Changed(true), 4, 5), 0, 1_000);
    assert_eq!(
        check(&[set, persist, persist_again], 1_000_000),
        Verdict::Violation
    );
    let overwrite = timed(op(1, Op::Set(2), Output::Ok, 2, 3), 0, 1_000);
    assert_eq!(
        check(&[set, overwrite, gone], 1_000_000),
        Verdict::Violation
    );
    let expire_absent = timed(
        op(1, Op::Expire { ttl_ms: 5 }, Output::Changed(true), 0, 1),
        0,
        1,
    );
    assert_eq!(check(&[expire_absent], 1_000_000), Verdict::Violation);
}

#[test]
fn time_left_agrees_with_the_deadline() {
    let set = timed(op(1, set_px(1, 100), Output::Ok, 0, 1), 1_000, 1_000);
    let ttl = |ms, lo, hi| timed(op(2, Op::Ttl, Output::Ttl(ms), 2, 3), lo, hi);
    assert_eq!(
        check(&[set, ttl(60, 1_040, 1_040)], 1_000_000),
        Verdict::Linearizable
    );
    assert_eq!(
        check(&[set, ttl(90, 1_040, 1_040)], 1_000_000),
        Verdict::Violation
    );
    assert_eq!(
        check(&[set, ttl(-1, 1_040, 1_040)], 1_000_000),
        Verdict::Violation
    );
    // Past the deadline and not yet removed, or removed.
    assert_eq!(
        check(&[set, ttl(0, 1_100, 1_200)], 1_000_000),
        Verdict::Linearizable
    );
    assert_eq!(
        check(&[set, ttl(-2, 1_100, 1_200)], 1_000_000),
        Verdict::Linearizable
    );
    assert_eq!(
        check(&[set, ttl(-2, 1_000, 1_099)], 1_000_000),
        Verdict::Violation
    );
    // An answer narrows the deadline: 1000 + 60 ± 5 is 1055..=1065.
    let narrowed = timed(op(2, Op::Ttl, Output::Ttl(60), 2, 3), 995, 1_005);
    let set_wide = timed(op(1, set_px(1, 100), Output::Ok, 0, 1), 900, 1_100);
    let gone = timed(op(3, Op::Get, Output::Value(None), 4, 5), 0, 1_050);
    assert_eq!(check(&[set_wide, gone], 1_000_000), Verdict::Linearizable);
    assert_eq!(
        check(&[set_wide, narrowed, gone], 1_000_000),
        Verdict::Violation
    );
}

#[test]
fn an_unanswered_write_with_a_deadline_may_expire_or_not() {
    let set = timed(
        op(1, set_px(1, 100), Output::Unknown, 0, u64::MAX),
        1_000,
        5_000,
    );
    let seen = timed(op(2, Op::Get, Output::Value(Some(1)), 5, 6), 0, 1_200);
    let gone = timed(op(2, Op::Get, Output::Value(None), 7, 8), 0, 1_200);
    assert_eq!(check(&[set, seen, gone], 1_000_000), Verdict::Linearizable);
}
