//! Lists in the state machine: Redis's semantics and errors, kinds through snapshots and
//! the Merkle tree, deadlines.
use super::*;
use crate::protocol::expiry::Ttl;
use crate::protocol::list::{End, LIST_BYTES_MAX};

pub(super) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub(super) fn bs(words: &[&str]) -> Vec<Bytes> {
    words.iter().map(|w| b(w)).collect()
}

pub(super) fn values(words: &[&str]) -> Reply {
    Reply::Values(words.iter().map(|w| Some(b(w))).collect())
}

/// Applies commands without a session, each at the next slot of `slot`; the replies.
pub(crate) fn run(kv: &mut Kv, slot: &mut Slot, cmds: Vec<Command>) -> Vec<Reply> {
    cmds.into_iter()
        .map(|cmd| {
            *slot += 1;
            let req = Request {
                client: 0,
                seq: 0,
                ack_floor: 0,
                cmd,
            };
            match kv.apply(*slot, &req) {
                Applied::Reply(r) => r,
                Applied::Forgotten => panic!("a new request is not forgotten"),
            }
        })
        .collect()
}

pub(super) fn push(key: &str, end: End, words: &[&str]) -> Command {
    Command::Push {
        key: b(key),
        values: bs(words),
        end,
        existing: false,
    }
}

fn pop(key: &str, end: End, count: Option<u64>) -> Command {
    Command::Pop {
        key: b(key),
        end,
        count,
    }
}

pub(super) fn range(key: &str) -> Command {
    Command::LRange {
        key: b(key),
        start: 0,
        stop: -1,
    }
}

pub(super) const WRONG: Reply = Reply::Error(ApplyError::WrongType);

#[test]
fn push_pop_and_reads_follow_redis() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            push("q", End::Right, &["a", "b", "c"]),
            push("q", End::Left, &["x", "y"]),
            range("q"),
            Command::LIndex {
                key: b("q"),
                index: -1,
            },
            Command::LIndex {
                key: b("q"),
                index: 9,
            },
            Command::LRange {
                key: b("q"),
                start: 1,
                stop: -2,
            },
            pop("q", End::Left, None),
            pop("q", End::Right, Some(2)),
            Command::LLen(b("q")),
            Command::Type(b("q")),
            pop("q", End::Left, Some(5)),
            Command::Exists(bs(&["q"])),
            Command::Type(b("q")),
            pop("q", End::Left, None),
            pop("q", End::Left, Some(2)),
            Command::LLen(b("q")),
            range("q"),
            Command::Push {
                key: b("q"),
                values: bs(&["z"]),
                end: End::Left,
                existing: true,
            },
            Command::Exists(bs(&["q"])),
        ],
    );
    let expected = vec![
        Reply::Int(3),
        Reply::Int(5),
        values(&["y", "x", "a", "b", "c"]),
        Reply::Value(Some(b("c"))),
        Reply::Value(None),
        values(&["x", "a", "b"]),
        Reply::Value(Some(b("y"))),
        values(&["c", "b"]),
        Reply::Int(2),
        Reply::Value(Some(b("list"))),
        values(&["x", "a"]),
        Reply::Int(0),
        Reply::Value(Some(b("none"))),
        Reply::Value(None),
        Reply::Value(None),
        Reply::Int(0),
        Reply::Values(vec![]),
        Reply::Int(0),
        Reply::Int(0),
    ];
    assert_eq!(r, expected);
    assert!(kv.is_empty(), "an empty list vanishes");
    assert_eq!(kv.stored_bytes(), 0);
}

#[test]
fn wrong_types_are_refused_and_change_nothing() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    run(
        &mut kv,
        &mut slot,
        vec![
            Command::Set(b("s"), b("1")),
            push("l", End::Right, &["a", "b"]),
        ],
    );
    let digest = kv.digest();
    let set_if = |cond, get| {
        Command::SetIf(Box::new(SetIf {
            key: b("l"),
            value: b("v"),
            cond,
            get,
            ttl: Ttl::Clear,
        }))
    };
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            push("s", End::Left, &["x"]),
            pop("s", End::Left, None),
            Command::LLen(b("s")),
            range("s"),
            Command::LRem(Box::new(LRem {
                key: b("s"),
                count: 0,
                value: b("1"),
            })),
            Command::Get(b("l")),
            Command::IncrBy(b("l"), 1),
            Command::GetDel(b("l")),
            Command::DelIfEq(b("l"), b("a")),
            set_if(SetCond::Always, true),
            set_if(SetCond::Equals(b("a")), false),
            set_if(SetCond::Absent, false),
            Command::LMove(Box::new(LMove {
                from: b("l"),
                to: b("s"),
                from_end: End::Left,
                to_end: End::Left,
            })),
            Command::PopFirst {
                keys: bs(&["none", "s", "l"]),
                end: End::Left,
            },
            Command::MGet(bs(&["s", "l"])),
        ],
    );
    let mut expected = vec![WRONG; 11];
    expected.push(Reply::Value(None)); // SET NX: the key exists.
    expected.extend([WRONG, WRONG, Reply::Values(vec![Some(b("1")), None])]);
    assert_eq!(r, expected);
    assert_eq!(kv.digest(), digest, "refused commands change nothing");
    assert_eq!(
        kv.read(&Command::Get(b("l"))),
        WRONG,
        "a lease read as well"
    );
    assert_eq!(kv.read(&range("l")), values(&["a", "b"]));
    assert_eq!(kv.read(&Command::LLen(b("s"))), WRONG);
    // A plain SET replaces a list, as in Redis; DEL and EXISTS take any kind.
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            Command::Exists(bs(&["s", "l"])),
            Command::Set(b("l"), b("str")),
            Command::Type(b("l")),
            push("s2", End::Left, &["v"]),
            Command::Del(bs(&["s2", "l"])),
        ],
    );
    assert_eq!(
        r,
        vec![
            Reply::Int(2),
            Reply::Ok,
            Reply::Value(Some(b("string"))),
            Reply::Int(1),
            Reply::Int(2),
        ]
    );
}

#[test]
fn lmove_pop_first_and_lrem() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    let lmove = |from: &str, to: &str, from_end, to_end| {
        Command::LMove(Box::new(LMove {
            from: b(from),
            to: b(to),
            from_end,
            to_end,
        }))
    };
    let lrem = |count, v: &str| {
        Command::LRem(Box::new(LRem {
            key: b("r"),
            count,
            value: b(v),
        }))
    };
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            push("src", End::Right, &["a", "b", "c"]),
            lmove("src", "dst", End::Right, End::Left),
            lmove("src", "src", End::Left, End::Right),
            range("src"),
            range("dst"),
            lmove("nothing", "dst", End::Left, End::Left),
            Command::PopFirst {
                keys: bs(&["nothing", "dst", "src"]),
                end: End::Right,
            },
            Command::PopFirst {
                keys: bs(&["nothing", "dst"]),
                end: End::Right,
            },
            push("r", End::Right, &["a", "b", "a", "c", "a"]),
            lrem(2, "a"),
            range("r"),
            lrem(-1, "a"),
            range("r"),
            lrem(0, "z"),
            lrem(0, "b"),
            lrem(0, "c"),
            Command::Exists(bs(&["r", "dst"])),
        ],
    );
    assert_eq!(
        r,
        vec![
            Reply::Int(3),
            Reply::Value(Some(b("c"))),
            Reply::Value(Some(b("a"))),
            values(&["b", "a"]),
            values(&["c"]),
            Reply::Value(None),
            values(&["dst", "c"]),
            Reply::Value(None),
            Reply::Int(5),
            Reply::Int(2),
            values(&["b", "c", "a"]),
            Reply::Int(1),
            values(&["b", "c"]),
            Reply::Int(0),
            Reply::Int(1),
            Reply::Int(1),
            Reply::Int(0),
        ]
    );
}

#[test]
fn a_list_grows_only_to_the_value_limit() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    let big = Bytes::from(vec![b'x'; LIST_BYTES_MAX / 2]);
    let push_big = |key: &str| Command::Push {
        key: b(key),
        values: vec![big.clone()],
        end: End::Right,
        existing: false,
    };
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            push_big("l"),
            push_big("l"),
            Command::LLen(b("l")),
            push_big("m"),
            Command::LMove(Box::new(LMove {
                from: b("m"),
                to: b("l"),
                from_end: End::Left,
                to_end: End::Left,
            })),
            Command::LLen(b("m")),
        ],
    );
    let too_large = Reply::Error(ApplyError::ListTooLarge);
    assert_eq!(
        r,
        vec![
            Reply::Int(1),
            too_large.clone(),
            Reply::Int(1),
            Reply::Int(1),
            too_large,
            Reply::Int(1)
        ]
    );
    assert!(kv.stored_bytes() < 2 * LIST_BYTES_MAX as u64);
}

#[test]
fn lists_keep_their_kind_through_snapshots_and_the_merkle_tree() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    run(
        &mut kv,
        &mut slot,
        vec![
            push("l", End::Right, &["a", "b"]),
            Command::Set(b("s"), b("x")),
            pop("l", End::Left, None),
        ],
    );
    // The string holding a list's encoding is another value.
    let encoding = kv.get(b"l").unwrap().entry().value;
    assert_eq!(&encoding[..], b"\x01b");
    let mut other = Kv::new(8, 8);
    other.force_local(
        b("l"),
        Entry::string(encoding, kv.get(b"l").unwrap().version()),
    );
    let version = kv.get(b"l").unwrap().version();
    let as_list = crate::protocol::merkle::entry_digest(b"l", kv.get(b"l").unwrap().entry_ref());
    let as_string =
        crate::protocol::merkle::entry_digest(b"l", other.get(b"l").unwrap().entry_ref());
    assert_ne!(as_list, as_string);
    assert_eq!(other.get(b"l").unwrap().version(), version);
    let bytes = postcard::to_stdvec(&kv.export()).unwrap();
    let mut back = Kv::new(8, 8);
    back.import(postcard::from_bytes(&bytes).unwrap());
    assert_eq!(back.digest(), kv.digest());
    assert_eq!(back.read(&range("l")), values(&["b"]));
    assert_eq!(back.get(b"l").map(Item::kind), Some(Kind::List));
    kv.merkle_mut().rebuild_incremental();
    back.merkle_mut().rebuild_incremental();
    assert_eq!(back.merkle().root(), kv.merkle().root());
    // Anti-entropy installs a list as a list.
    let mut repaired = Kv::new(8, 8);
    assert!(repaired.install(b("l"), kv.get(b"l").unwrap().entry()));
    assert_eq!(repaired.read(&range("l")), values(&["b"]));
}

#[test]
fn a_list_keeps_its_deadline_until_it_empties_or_expires() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    let clock = |now_ms, expire: &[&str]| Command::Clock {
        now_ms,
        expire: bs(expire),
    };
    let expire = |key: &str, ms| Command::Expire {
        key: b(key),
        ttl: Ttl::In(ms),
        cond: crate::protocol::expiry::ExpireIf::Always,
    };
    let r = run(
        &mut kv,
        &mut slot,
        vec![
            clock(1_000, &[]),
            push("l", End::Right, &["a"]),
            expire("l", 500),
            push("l", End::Right, &["b"]),
            Command::Ttl(b("l")),
            pop("l", End::Left, Some(2)),
            Command::Ttl(b("l")),
            push("m", End::Right, &["a"]),
            expire("m", 100),
            clock(1_200, &["m"]),
            Command::Exists(bs(&["m"])),
        ],
    );
    assert_eq!(r[4], Reply::Int(500), "a push keeps the deadline");
    assert_eq!(
        r[6],
        Reply::Int(-2),
        "emptied, the list and its deadline are gone"
    );
    assert_eq!(r[10], Reply::Int(0), "expired through the log");
    assert!(kv.expiry().is_empty());
}

#[test]
fn list_commands_inside_a_transaction() {
    let (mut kv, mut slot) = (Kv::new(8, 8), 0);
    let r = run(
        &mut kv,
        &mut slot,
        vec![Command::Multi(vec![
            push("q", End::Right, &["t1", "t2"]),
            Command::LMove(Box::new(LMove {
                from: b("q"),
                to: b("p"),
                from_end: End::Left,
                to_end: End::Left,
            })),
            Command::Get(b("q")),
            Command::LLen(b("q")),
        ])],
    );
    assert_eq!(
        r,
        vec![Reply::Multi(vec![
            Reply::Int(2),
            Reply::Value(Some(b("t1"))),
            WRONG,
            Reply::Int(1),
        ])]
    );
}

#[test]
fn a_list_write_moves_the_version_a_watch_checks() {
    let mut kv = Kv::new(8, 8);
    let mut slot = 0;
    run(&mut kv, &mut slot, vec![push("q", End::Right, &["a", "b"])]);
    let watched = |kv: &Kv| vec![(b("q"), kv.get(b"q").map(Item::version))];
    let guarded = |versions| Command::Watched {
        versions,
        cmds: vec![Command::LLen(b("q"))],
    };
    let v = watched(&kv);
    assert_eq!(
        run(&mut kv, &mut slot, vec![guarded(v.clone())]),
        vec![Reply::Multi(vec![Reply::Int(2)])],
        "unchanged: applies"
    );
    for write in [
        push("q", End::Left, &["c"]),
        pop("q", End::Right, None),
        Command::LMove(Box::new(LMove {
            from: b("q"),
            to: b("q"),
            from_end: End::Left,
            to_end: End::Right,
        })),
        Command::LRem(Box::new(LRem {
            key: b("q"),
            count: 1,
            value: b("c"),
        })),
    ] {
        let v = watched(&kv);
        run(&mut kv, &mut slot, vec![write.clone()]);
        assert_eq!(
            run(&mut kv, &mut slot, vec![guarded(v)]),
            vec![Reply::Value(None)],
            "{write:?} must abort a transaction watching the list"
        );
    }
}
