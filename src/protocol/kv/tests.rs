//! The state machine's commands, sessions, deadlines and encodings.
use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn req(client: ClientId, seq: u64, ack_floor: u64, cmd: Command) -> Request {
    Request {
        client,
        seq,
        ack_floor,
        cmd,
    }
}

#[test]
fn commands_and_versions() {
    let mut kv = Kv::new(8, 8);
    assert_eq!(
        kv.apply(1, &req(1, 1, 1, Command::Set(b("a"), b("1")))),
        Applied::Reply(Reply::Ok)
    );
    assert_eq!(kv.get(b"a").map(Item::version), Some(1));
    kv.apply(
        2,
        &req(
            1,
            2,
            2,
            Command::MSet(vec![(b("b"), b("2")), (b("a"), b("3"))]),
        ),
    );
    assert_eq!(kv.get(b"a").map(Item::version), Some(2));
    assert_eq!(
        kv.apply(3, &req(1, 3, 3, Command::MGet(vec![b("a"), b("x")]))),
        Applied::Reply(Reply::Values(vec![Some(b("3")), None]))
    );
    assert_eq!(
        kv.apply(
            4,
            &req(1, 4, 4, Command::Exists(vec![b("a"), b("b"), b("c")]))
        ),
        Applied::Reply(Reply::Int(2))
    );
    assert_eq!(
        kv.apply(5, &req(1, 5, 5, Command::Del(vec![b("a"), b("c")]))),
        Applied::Reply(Reply::Int(1))
    );
    assert_eq!(
        kv.apply(6, &req(1, 6, 6, Command::Get(b("a")))),
        Applied::Reply(Reply::Value(None))
    );
}

/// Applies commands without a session at slots after the newest version stored; the
/// replies.
fn run(kv: &mut Kv, cmds: Vec<Command>) -> Vec<Reply> {
    let from = kv.iter().map(Item::version).max().unwrap_or(0);
    cmds.into_iter()
        .enumerate()
        .map(|(i, cmd)| {
            let slot = from + i as u64 + 1;
            match kv.apply(slot, &req(0, 0, 0, cmd)) {
                Applied::Reply(r) => r,
                Applied::Forgotten => panic!("a new request is not forgotten"),
            }
        })
        .collect()
}

#[test]
fn conditional_writes() {
    let set_if = |v: &str, cond, get| {
        Command::SetIf(Box::new(SetIf {
            key: b("k"),
            value: b(v),
            cond,
            get,
            ttl: crate::protocol::expiry::Ttl::Clear,
        }))
    };
    let mut kv = Kv::new(8, 8);
    let replies = run(
        &mut kv,
        vec![
            set_if("a", SetCond::Present, false),
            set_if("a", SetCond::Absent, false),
            set_if("b", SetCond::Absent, true),
            set_if("c", SetCond::Equals(b("x")), false),
            set_if("c", SetCond::Equals(b("a")), true),
            set_if("d", SetCond::Always, true),
            Command::DelIfEq(b("k"), b("c")),
            Command::DelIfEq(b("k"), b("d")),
            Command::GetDel(b("k")),
            Command::Version(b("k")),
        ],
    );
    assert_eq!(
        replies,
        vec![
            Reply::Value(None),
            Reply::Ok,
            Reply::Value(Some(b("a"))),
            Reply::Value(None),
            Reply::Value(Some(b("a"))),
            Reply::Value(Some(b("c"))),
            Reply::Int(0),
            Reply::Int(1),
            Reply::Value(None),
            Reply::Value(None),
        ]
    );
    assert!(kv.is_empty());
    run(&mut kv, vec![Command::Set(b("k"), b("v"))]);
    assert_eq!(kv.get(b"k").map(Item::value), Some(&b"v"[..]));
    assert_eq!(
        run(&mut kv, vec![Command::Noop, Command::GetDel(b("k"))]),
        vec![Reply::Ok, Reply::Value(Some(b("v")))]
    );
}

#[test]
fn counters() {
    let mut kv = Kv::new(8, 8);
    let replies = run(
        &mut kv,
        vec![
            Command::IncrBy(b("n"), 5),
            Command::IncrBy(b("n"), -7),
            Command::Version(b("n")),
            Command::IncrBy(b("n"), i64::MIN),
            Command::Set(b("s"), b("12 ")),
            Command::IncrBy(b("s"), 1),
            Command::Set(b("s"), b(&i64::MAX.to_string())),
            Command::IncrBy(b("s"), 1),
        ],
    );
    assert_eq!(
        replies,
        vec![
            Reply::Int(5),
            Reply::Int(-2),
            Reply::Int(2),
            Reply::Error(ApplyError::Overflow),
            Reply::Ok,
            Reply::Error(ApplyError::NotInteger),
            Reply::Ok,
            Reply::Error(ApplyError::Overflow),
        ]
    );
    assert_eq!(kv.get(b"n").map(Item::value), Some(&b"-2"[..]));
    assert_eq!(
        kv.get(b"n").map(Item::version),
        Some(2),
        "a refused command wrote nothing"
    );
    for bad in [
        "",
        "-",
        "+1",
        "01",
        "-0",
        " 1",
        "1.5",
        "99999999999999999999",
    ] {
        assert_eq!(parse_i64(bad.as_bytes()), None, "{bad:?}");
    }
    for good in ["0", "-1", "42", &i64::MIN.to_string()] {
        assert_eq!(parse_i64(good.as_bytes()), good.parse().ok(), "{good:?}");
    }
}

fn clock(now_ms: u64, expire: &[&str]) -> Command {
    Command::Clock {
        now_ms,
        expire: expire.iter().map(|k| b(k)).collect(),
    }
}

#[test]
fn keys_expire_by_log_time_when_a_clock_entry_names_them() {
    use crate::protocol::expiry::{ExpireIf, Ttl};
    let set = |k: &str, ttl| {
        Command::SetIf(Box::new(SetIf {
            key: b(k),
            value: b("v"),
            cond: SetCond::Always,
            get: false,
            ttl,
        }))
    };
    let ttl = |k: &str| Command::Ttl(b(k));
    let mut kv = Kv::new(8, 8);
    let replies = run(
        &mut kv,
        vec![
            clock(10_000, &[]),
            set("a", Ttl::In(500)),
            set("b", Ttl::At(12_000)),
            set("c", Ttl::At(9_000)),
            ttl("a"),
            ttl("nope"),
            Command::Set(b("d"), b("v")),
            ttl("d"),
            // The clock passes a's deadline, but only a named key goes.
            clock(10_600, &["b"]),
            ttl("a"),
            Command::Exists(vec![b("a"), b("b"), b("c")]),
            clock(10_700, &["a", "b"]),
            Command::Exists(vec![b("a"), b("b")]),
            // Time never goes back; relative times count from the log's time.
            clock(5, &[]),
            Command::Expire {
                key: b("b"),
                ttl: Ttl::In(100),
                cond: ExpireIf::Later,
            },
            Command::Expire {
                key: b("b"),
                ttl: Ttl::In(100),
                cond: ExpireIf::Always,
            },
            ttl("b"),
            set("b", Ttl::Keep),
            ttl("b"),
            Command::IncrBy(b("n"), 1),
            Command::Expire {
                key: b("n"),
                ttl: Ttl::In(1_000),
                cond: ExpireIf::NoDeadline,
            },
            Command::IncrBy(b("n"), 1),
            ttl("n"),
            Command::Set(b("b"), b("w")),
            ttl("b"),
            Command::Expire {
                key: b("n"),
                ttl: Ttl::Clear,
                cond: ExpireIf::Always,
            },
            Command::Expire {
                key: b("n"),
                ttl: Ttl::Clear,
                cond: ExpireIf::Always,
            },
            Command::Expire {
                key: b("d"),
                ttl: Ttl::At(0),
                cond: ExpireIf::Always,
            },
            Command::Exists(vec![b("d")]),
        ],
    );
    use Reply::{Int, Ok};
    assert_eq!(
        replies,
        vec![
            Ok,
            Ok,
            Ok,
            // A deadline already past removes the key at once.
            Ok,
            Int(500),
            Int(-2),
            Ok,
            Int(-1),
            Ok,
            Int(0),
            Int(2),
            Ok,
            // b's deadline (12 000) is still ahead: named, but it stays.
            Int(1),
            Ok,
            Int(0),
            Int(1),
            Int(100),
            Ok,
            Int(100),
            Int(1),
            Int(1),
            Int(2),
            Int(1_000),
            Ok,
            Int(-1),
            Int(1),
            Int(0),
            Int(1),
            Int(0),
        ]
    );
    assert_eq!(kv.expiry().now(), 10_700);
    let state = kv.export();
    assert_eq!(state.deadlines, vec![]);
    run(&mut kv, vec![set("e", Ttl::In(50))]);
    let state = kv.export();
    assert_eq!(
        (state.deadlines.clone(), state.log_time),
        (vec![(b("e"), 10_750)], 10_700)
    );
    let mut copy = Kv::new(8, 8);
    copy.import(state);
    assert_eq!(copy.digest(), kv.digest());
    assert_eq!(copy.expiry(), kv.expiry());
    run(
        &mut copy,
        vec![Command::Expire {
            key: b("e"),
            ttl: Ttl::In(60),
            cond: ExpireIf::Always,
        }],
    );
    assert_ne!(
        copy.digest(),
        kv.digest(),
        "deadlines are part of the digest"
    );
}

#[test]
fn a_transaction_applies_in_one_slot() {
    let mut kv = Kv::new(8, 8);
    let multi = Command::Multi(vec![
        Command::Set(b("a"), b("1")),
        Command::IncrBy(b("a"), 1),
        Command::IncrBy(b("b"), 1),
        Command::Get(b("a")),
        Command::Set(b("c"), b("x")),
        Command::IncrBy(b("c"), 1),
    ]);
    assert!(!multi.is_read_only());
    let mut written = Vec::new();
    multi.for_each_written_key(&mut |k| written.push(k.clone()));
    assert_eq!(written, vec![b("a"), b("a"), b("b"), b("c"), b("c")]);
    assert_eq!(
        run(&mut kv, vec![multi]),
        vec![Reply::Multi(vec![
            Reply::Ok,
            Reply::Int(2),
            Reply::Int(1),
            Reply::Value(Some(b("2"))),
            Reply::Ok,
            // A refused command inside does not undo the others (as in Redis).
            Reply::Error(ApplyError::NotInteger),
        ])]
    );
    assert_eq!(kv.get(b"b").map(Item::version), Some(1));
    assert_eq!(kv.get(b"c").map(Item::value), Some(&b"x"[..]));
}

#[test]
fn a_watched_transaction_applies_only_while_its_keys_keep_their_versions() {
    let mut kv = Kv::new(8, 8);
    run(&mut kv, vec![Command::Set(b("w"), b("1"))]);
    let v1 = kv.get(b"w").map(Item::version);
    assert!(v1.is_some());
    let guarded = |versions: Vec<(Bytes, Option<Slot>)>| Command::Watched {
        versions,
        cmds: vec![Command::IncrBy(b("w"), 1), Command::Set(b("o"), b("x"))],
    };
    let g = guarded(vec![(b("w"), v1), (b("absent"), None)]);
    let mut keys = Vec::new();
    g.for_each_key(&mut |k| keys.push(k.clone()));
    assert_eq!(
        keys,
        vec![b("w"), b("absent"), b("w"), b("o")],
        "watched keys route too"
    );
    assert_eq!(
        run(&mut kv, vec![g]),
        vec![Reply::Multi(vec![Reply::Int(2), Reply::Ok])],
        "unchanged: applies"
    );
    // The transaction itself wrote `w`: its version moved, so the same guard refuses.
    let digest = kv.digest();
    assert_eq!(
        run(&mut kv, vec![guarded(vec![(b("w"), v1)])]),
        vec![Reply::Value(None)]
    );
    assert_eq!(kv.digest(), digest, "a refused transaction changes nothing");
    // A key absent when watched and created since, or present and removed since.
    let v2 = kv.get(b"w").map(Item::version);
    run(&mut kv, vec![Command::Set(b("absent"), b("y"))]);
    assert_eq!(
        run(
            &mut kv,
            vec![guarded(vec![(b("w"), v2), (b("absent"), None)])]
        ),
        vec![Reply::Value(None)]
    );
    run(&mut kv, vec![Command::Del(vec![b("absent")])]);
    let v3 = kv.get(b"o").map(Item::version);
    run(&mut kv, vec![Command::Del(vec![b("o")])]);
    assert_eq!(
        run(&mut kv, vec![guarded(vec![(b("o"), v3)])]),
        vec![Reply::Value(None)]
    );
    assert_eq!(
        run(&mut kv, vec![guarded(vec![(b("w"), v2), (b("o"), None)])]),
        vec![Reply::Multi(vec![Reply::Int(3), Reply::Ok])]
    );
    // Encoded within its bound; a transaction inside is refused on decode.
    let g = guarded(vec![(b("w"), v2), (b("o"), None)]);
    let bytes = postcard::to_stdvec(&g).unwrap();
    assert!(bytes.len() <= g.encoded_bytes_max());
    assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), g);
    let nested = Command::Watched {
        versions: Vec::new(),
        cmds: vec![Command::Multi(vec![Command::Noop])],
    };
    let bytes = postcard::to_stdvec(&nested).unwrap();
    assert!(postcard::from_bytes::<Command>(&bytes).is_err());
}

#[test]
fn old_encodings_keep_their_meaning() {
    // Variants were appended: a log written before them decodes to the same commands.
    let old = postcard::to_stdvec(&Command::Noop).unwrap();
    assert_eq!(old, vec![6]);
    let set = postcard::to_stdvec(&Command::Set(b("k"), b("v"))).unwrap();
    assert_eq!(set, vec![1, 1, b'k', 1, b'v']);
    let multi = Command::Multi(vec![Command::IncrBy(b("n"), -3)]);
    let bytes = postcard::to_stdvec(&multi).unwrap();
    assert!(bytes.len() <= multi.encoded_bytes_max());
    assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), multi);
    // Nesting is refused on decode (and the next decode is not confused by it).
    let nested = Command::Multi(vec![multi.clone()]);
    let bytes = postcard::to_stdvec(&nested).unwrap();
    assert!(postcard::from_bytes::<Command>(&bytes).is_err());
    let deep: Vec<u8> = std::iter::repeat_n([12u8, 1], 1 << 20).flatten().collect();
    assert!(postcard::from_bytes::<Command>(&deep).is_err());
    let bytes = postcard::to_stdvec(&multi).unwrap();
    assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), multi);
}

#[test]
fn retry_takes_effect_once() {
    let mut kv = Kv::new(8, 8);
    kv.apply(1, &req(7, 1, 1, Command::Del(vec![b("k")])));
    kv.apply(2, &req(7, 2, 1, Command::Set(b("k"), b("v"))));
    // Another client deletes it; then a retry of seq 2 must not set it again.
    kv.apply(3, &req(8, 1, 1, Command::Del(vec![b("k")])));
    assert_eq!(
        kv.apply(4, &req(7, 2, 1, Command::Set(b("k"), b("v")))),
        Applied::Reply(Reply::Ok)
    );
    assert!(kv.get(b"k").is_none());
    // Seq 1's reply is remembered until acknowledged.
    assert_eq!(
        kv.apply(5, &req(7, 1, 1, Command::Del(vec![b("k")]))),
        Applied::Reply(Reply::Int(0))
    );
    kv.apply(6, &req(7, 3, 3, Command::Get(b("k"))));
    assert_eq!(
        kv.apply(7, &req(7, 2, 3, Command::Set(b("k"), b("v")))),
        Applied::Forgotten
    );
    assert!(kv.get(b"k").is_none());
}

#[test]
fn sessions_are_bounded() {
    let mut kv = Kv::new(2, 2);
    for client in 1..=5 {
        kv.apply(client, &req(client, 1, 1, Command::Noop));
    }
    assert_eq!(kv.sessions.len(), 2);
    for seq in 1..=5 {
        kv.apply(10 + seq, &req(5, seq, 1, Command::Noop));
    }
    assert!(kv.sessions[&5].replies.len() <= 2);
}

#[test]
fn digest_ignores_insertion_order() {
    let mut a = Kv::new(1, 1);
    let mut b2 = Kv::new(1, 1);
    a.apply(
        1,
        &Request {
            cmd: Command::Set(b("x"), b("1")),
            ..Request::noop()
        },
    );
    a.apply(
        1,
        &Request {
            cmd: Command::Set(b("y"), b("2")),
            ..Request::noop()
        },
    );
    b2.apply(
        1,
        &Request {
            cmd: Command::Set(b("y"), b("2")),
            ..Request::noop()
        },
    );
    b2.apply(
        1,
        &Request {
            cmd: Command::Set(b("x"), b("1")),
            ..Request::noop()
        },
    );
    assert_eq!(a.digest(), b2.digest());
    b2.apply(
        2,
        &Request {
            cmd: Command::Set(b("x"), b("1")),
            ..Request::noop()
        },
    );
    assert_ne!(a.digest(), b2.digest());
}

#[test]
fn applying_reports_changes_and_messages_once_when_asked() {
    use crate::protocol::watch::{Change as KeyChange, ChangeKind, Event};
    let mut kv = Kv::new(8, 8);
    kv.apply(1, &req(1, 1, 1, Command::Set(b("quiet"), b("1"))));
    assert!(kv.take_events().is_empty(), "nothing recorded unless asked");
    kv.record_events(true);
    let publish = Command::Publish {
        channel: b("news"),
        message: b("hi"),
    };
    let bytes = postcard::to_stdvec(&publish).unwrap();
    assert!(bytes.len() <= publish.encoded_bytes_max());
    assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), publish);
    let big = Command::Publish {
        channel: b("c"),
        message: Bytes::from(vec![7u8; 70_000]),
    };
    assert!(postcard::to_stdvec(&big).unwrap().len() <= big.encoded_bytes_max());
    kv.apply(2, &req(1, 2, 2, publish.clone()));
    // A retry answered from the session's memory delivers nothing again.
    kv.apply(3, &req(1, 2, 2, publish));
    kv.apply(4, &req(1, 3, 3, Command::Set(b("a"), b("x"))));
    kv.apply(5, &req(1, 4, 4, Command::Del(vec![b("a"), b("gone")])));
    let push = Command::Push {
        key: b("l"),
        values: vec![b("v")],
        end: crate::protocol::list::End::Right,
        existing: false,
    };
    kv.apply(6, &req(1, 5, 5, push));
    let expire = Command::Expire {
        key: b("quiet"),
        ttl: Ttl::At(1),
        cond: ExpireIf::Always,
    };
    let clock = Command::Clock {
        now_ms: 1_000,
        expire: Vec::new(),
    };
    kv.apply(7, &req(0, 0, 0, clock));
    kv.apply(8, &req(1, 6, 6, expire));
    let change = |k: &str, version, kind| {
        Event::Change(KeyChange {
            key: b(k),
            version,
            kind,
        })
    };
    assert_eq!(
        kv.take_events(),
        vec![
            Event::Message {
                slot: 2,
                channel: b("news"),
                message: b("hi")
            },
            change("a", 4, ChangeKind::Set),
            change("a", 5, ChangeKind::Del),
            change("l", 6, ChangeKind::List),
            change("quiet", 8, ChangeKind::Expired),
        ]
    );
    assert!(kv.take_events().is_empty(), "taken once");
    kv.import(kv.export());
    assert_eq!(kv.take_events(), vec![Event::Reset]);
}

#[test]
fn a_set_is_sized_as_the_general_rule_sizes_it() {
    // `encoded_bytes_max` sizes a SET without walking the variants; it must give what the
    // rule every other command follows gives, and bound the encoding, at every length
    // where a varint grows.
    use crate::limits::{COMMAND_OVERHEAD_BYTES, ITEM_OVERHEAD_BYTES};
    for key_len in [0, 1, 127, 128, 16_383, 16_384] {
        for value_len in [0, 100, 128, 70_000] {
            let set = Command::Set(
                Bytes::from(vec![b'k'; key_len]),
                Bytes::from(vec![b'v'; value_len]),
            );
            let rule =
                set.payload_bytes() + set.items() * ITEM_OVERHEAD_BYTES + COMMAND_OVERHEAD_BYTES;
            assert_eq!(
                set.encoded_bytes_max(),
                rule,
                "key {key_len}, value {value_len}"
            );
            let bytes = postcard::to_stdvec(&set).unwrap();
            assert!(
                bytes.len() <= set.encoded_bytes_max(),
                "key {key_len}, value {value_len}"
            );
        }
    }
}

#[test]
fn an_unanswered_apply_changes_and_keeps_what_apply_does() {
    let reqs = [
        req(1, 1, 0, Command::Set(b("a"), b("1"))),
        req(1, 2, 1, Command::IncrBy(b("c"), 5)),
        req(2, 1, 0, Command::Get(b("a"))),
        req(0, 0, 0, Command::Set(b("b"), b("2"))),
        // Acknowledges seq 1: its reply is forgotten.
        req(1, 3, 2, Command::Set(b("a"), b("3"))),
        // Reads, which an unanswered apply does not run: their session bookkeeping is still
        // done (this one acknowledges seq 2, whose reply is forgotten).
        req(1, 4, 3, Command::Get(b("a"))),
        req(0, 0, 0, Command::Get(b("b"))),
    ];
    let (mut answered, mut unanswered) = (Kv::new(8, 8), Kv::new(8, 8));
    for (slot, r) in (1..).zip(&reqs) {
        answered.apply(slot, r);
        unanswered.apply_unanswered(slot, r);
    }
    assert_eq!(unanswered.digest(), answered.digest());
    assert_eq!(unanswered.get(b"a").map(Item::value), Some(&b"3"[..]));
    for (client, seq) in [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1)] {
        assert_eq!(
            unanswered.cached_reply(client, seq),
            answered.cached_reply(client, seq),
            "client {client} seq {seq}"
        );
    }
    assert_eq!(
        unanswered.cached_reply(1, 2),
        None,
        "acknowledged by a read"
    );
    assert_eq!(unanswered.cached_reply(1, 3), Some(&Reply::Ok));
    assert_eq!(
        unanswered.apply_as::<false>(8, &reqs[5]),
        Applied::Forgotten,
        "a read nobody waits for is not run"
    );
    // A retry is answered from what the unanswered apply kept.
    assert_eq!(unanswered.apply(6, &reqs[4]), Applied::Reply(Reply::Ok),);
}

/// An imported state's Merkle tree is built from its entries as they came; if a key came
/// twice (the map keeps the last), it is rebuilt from the map, so the root is always the
/// map's.
#[test]
fn an_import_builds_the_tree_of_the_map_it_leaves() {
    let mut a = Kv::new(8, 8);
    for i in 0..200u64 {
        let cmd = Command::Set(b(&format!("k{i}")), b(&format!("v{i}")));
        a.apply(i + 1, &req(1, i + 1, 1, cmd));
    }
    a.merkle_mut().rebuild_incremental();
    let mut b_kv = Kv::new(8, 8);
    b_kv.import(a.export());
    assert_eq!(b_kv.merkle().root(), a.merkle().root());
    // The same state with k7 again at the end, another value.
    let mut twice = a.export();
    twice.entries.push(Item::new(b"k7", b"other", 500));
    let mut c = Kv::new(8, 8);
    c.import(twice);
    assert_eq!(
        c.get(b"k7").map(|i| i.value().to_vec()),
        Some(b"other".to_vec())
    );
    let mut fresh = Kv::new(8, 8);
    fresh.import(c.export());
    assert_eq!(c.merkle().root(), fresh.merkle().root());
    assert_ne!(c.merkle().root(), a.merkle().root());
}

#[test]
fn an_import_hands_the_map_it_replaced_to_the_driver_only_when_asked() {
    let fill = |prefix: &str, n: u64| {
        let mut kv = Kv::new(8, 8);
        for i in 0..n {
            let cmd = Command::Set(b(&format!("{prefix}{i}")), b("v"));
            kv.apply(i + 1, &req(1, i + 1, 1, cmd));
        }
        kv
    };
    let source = fill("new", 30);
    let mut kv = fill("old", 50);
    kv.import(source.export());
    assert!(kv.take_replaced().is_empty(), "not kept unless asked");
    let mut again = fill("old", 40);
    again.keep_replaced(true);
    again.import(source.export());
    let replaced = again.take_replaced();
    assert_eq!(replaced.len(), 1);
    assert_eq!(replaced[0]._map.len(), 40, "the map it had");
    assert!(replaced[0]._map.get(b"old7").is_some());
    assert!(again.take_replaced().is_empty(), "taken once");
    assert_eq!((again.len(), again.get(b"old7").is_none()), (30, true));
    assert_eq!(again.digest(), source.digest());
}
