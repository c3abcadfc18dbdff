//! What the state machine is asked and what it answers: commands, the requests that carry
//! them with their session, and replies. Their encoding is what the log and peers carry.

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};

use super::expiry::{ExpireIf, Ttl};
use super::item::Kind;
use super::kv::Entry;
use super::list::{self, End, List};

use super::types::{ClientId, Slot};

/// A key's value as a read sees it.
#[derive(Clone, Debug)]
pub enum ReadValue<'a> {
    /// A string.
    String(Bytes),
    /// A list's elements (for a command other than a list read, only the kind matters).
    List(&'a List),
}

/// The list a read sees where only the kind matters, or no key.
static EMPTY_LIST: List = List::new();
/// A command of the state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The value of a key.
    Get(Bytes),
    /// Sets a key.
    Set(Bytes, Bytes),
    /// Removes keys; replies how many existed.
    Del(Vec<Bytes>),
    /// Counts the keys that exist.
    Exists(Vec<Bytes>),
    /// The values of several keys.
    MGet(Vec<Bytes>),
    /// Sets several keys at once.
    MSet(Vec<(Bytes, Bytes)>),
    /// Fills a slot a new leader found empty; changes nothing.
    Noop,
    // Variants below were added after the ones above: postcard numbers variants in order,
    // so appending keeps every stored log and snapshot readable.
    /// Sets a key if a condition on its current value holds (`SET k v NX|XX|IFEQ old`),
    /// replying the old value when `get` (`SET … GET`), else `OK`, or nil if not set.
    SetIf {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
        /// When to set.
        cond: SetCond,
        /// Reply the value before the command instead of `OK`/nil.
        get: bool,
        /// The key's deadline if set (`EX`, `PX`, `EXAT`, `PXAT`, `KEEPTTL`).
        ttl: Ttl,
    },
    /// Adds to a key's integer value (absent counts as 0) and replies the sum (`INCRBY`;
    /// `INCR`, `DECR` and `DECRBY` are spelled with it).
    IncrBy(Bytes, i64),
    /// Replies a key's value and removes the key (`GETDEL`).
    GetDel(Bytes),
    /// Removes a key only if it holds the value; replies 1 if removed, else 0 (`DELIFEQ`,
    /// as Valkey 9 spells it: a lock released only by the holder of its token).
    DelIfEq(Bytes, Bytes),
    /// The slot that last wrote a key, or nil (`COREPAX.VERSION`): a fencing token that
    /// grows with every write of the key. Ordered through the log like a write.
    Version(Bytes),
    /// Commands applied one after the other in one slot, nothing between them
    /// (`MULTI` … `EXEC`); replies one reply per command. Never nested.
    Multi(#[serde(deserialize_with = "flat_commands")] Vec<Command>),
    /// The leader's time (unix ms), stamped at the front of a batch: the log's time moves
    /// to it, and the named keys whose deadline it has passed are removed (see
    /// [`super::expiry`]). Never sent by clients.
    Clock {
        /// The leader's clock.
        now_ms: u64,
        /// Keys the leader found due: removed if their deadline has passed at apply.
        expire: Vec<Bytes>,
    },
    /// Sets or clears a key's deadline if `cond` allows (`EXPIRE`, `PEXPIRE`, `EXPIREAT`,
    /// `PEXPIREAT`, `PERSIST`); replies 1 if changed, 0 if not or no such key.
    Expire {
        /// The key.
        key: Bytes,
        /// The new deadline ([`Ttl::Clear`] for `PERSIST`).
        ttl: Ttl,
        /// When to change it.
        cond: ExpireIf,
    },
    /// Milliseconds the key has left at the log's time, -1 without deadline, -2 if absent
    /// (`PTTL`; `TTL` rounds it to seconds). Ordered through the log like a write.
    Ttl(Bytes),
    /// Pushes values onto a list, one after the other, creating it if absent (`LPUSH`,
    /// `RPUSH`; `LPUSHX`, `RPUSHX` push only onto an existing list); replies the length.
    Push {
        /// The list.
        key: Bytes,
        /// The values, pushed in this order.
        values: Vec<Bytes>,
        /// Where.
        end: End,
        /// Only if the list exists (`…X`).
        existing: bool,
    },
    /// Removes and replies elements from one end of a list (`LPOP`, `RPOP`): one element
    /// (or nil) without a count, else up to `count` of them (nil for no list).
    Pop {
        /// The list.
        key: Bytes,
        /// Which end.
        end: End,
        /// How many, if given.
        count: Option<u64>,
    },
    /// Pops one element from the first of the keys that holds a list, replying the key
    /// and the element, or nil (what `BLPOP` and `BRPOP` submit).
    PopFirst {
        /// The lists, in the order tried.
        keys: Vec<Bytes>,
        /// Which end.
        end: End,
    },
    /// Moves an element from one end of a list to an end of another (or the same) list,
    /// replying it, or nil if the source is empty (`LMOVE`, `RPOPLPUSH`, `BLMOVE`).
    LMove {
        /// The list popped.
        from: Bytes,
        /// The list pushed.
        to: Bytes,
        /// Where it pops.
        from_end: End,
        /// Where it pushes.
        to_end: End,
    },
    /// Removes elements equal to `value`: the first `count` from the head (`count` > 0),
    /// from the tail (< 0), or all (0); replies how many (`LREM`).
    LRem {
        /// The list.
        key: Bytes,
        /// How many and from which end.
        count: i64,
        /// The value removed.
        value: Bytes,
    },
    /// A list's length, 0 for no list (`LLEN`).
    LLen(Bytes),
    /// A list's elements from `start` to `stop`, both included, negative counting from
    /// the end (`LRANGE`).
    LRange {
        /// The list.
        key: Bytes,
        /// First index.
        start: i64,
        /// Last index.
        stop: i64,
    },
    /// The element at an index, negative counting from the end, or nil (`LINDEX`).
    LIndex {
        /// The list.
        key: Bytes,
        /// The index.
        index: i64,
    },
    /// What a key holds: `string`, `list` or `none` (`TYPE`).
    Type(Bytes),
    /// A transaction guarded by `WATCH`: applied as [`Command::Multi`] only if every
    /// watched key still has the version it had when watched (`None`: absent), else
    /// nothing changes and the reply is nil.
    Watched {
        /// Each watched key and the slot that last wrote it when it was watched.
        versions: Vec<(Bytes, Option<Slot>)>,
        /// The transaction's commands.
        #[serde(deserialize_with = "flat_commands")]
        cmds: Vec<Command>,
    },
    /// Replaces the element at an index, negative counting from the end (`LSET`); refused
    /// for no list or an index outside it.
    LSet {
        /// The list.
        key: Bytes,
        /// Where.
        index: i64,
        /// The new element.
        value: Bytes,
    },
    /// Inserts `value` before or after the first element equal to `pivot` (`LINSERT`);
    /// replies the new length, -1 if no element matches, 0 for no list.
    LInsert {
        /// The list.
        key: Bytes,
        /// Before the pivot (else after it).
        before: bool,
        /// The element it goes next to.
        pivot: Bytes,
        /// The element inserted.
        value: Bytes,
    },
    /// Keeps only the elements from `start` to `stop`, indexes as `LRANGE` takes them;
    /// a list left empty is removed (`LTRIM`).
    LTrim {
        /// The list.
        key: Bytes,
        /// First index kept.
        start: i64,
        /// Last index kept.
        stop: i64,
    },
    /// Where elements equal to `value` are (`LPOS`): from the head for a positive
    /// `rank`, from the tail for a negative one, skipping the first `|rank| - 1` matches;
    /// up to `count` positions (0: all; `None`: one position or nil), looking at no more
    /// than `maxlen` elements (0: all).
    LPos {
        /// The list.
        key: Bytes,
        /// The element looked for.
        value: Bytes,
        /// Which match first, and from which end; never 0.
        rank: i64,
        /// How many positions, if given.
        count: Option<u64>,
        /// Elements compared, at most (0: no limit).
        maxlen: u64,
    },
    /// Delivers a message to the subscribers of a channel on every replica, each when it
    /// applies this entry (`PUBLISH`); changes no state and replies `OK` (the node counts
    /// its own receivers for the client). Routed by the channel as by a key.
    Publish {
        /// The channel.
        channel: Bytes,
        /// The message.
        message: Bytes,
    },
}

/// Decodes a transaction's commands, refusing a transaction inside one: a frame of nested
/// transactions would otherwise recurse once per two bytes until the stack overflows.
fn flat_commands<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Command>, D::Error> {
    use serde::de::Error;
    thread_local!(static INSIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if INSIDE.get() {
        return Err(D::Error::custom("a transaction inside a transaction"));
    }
    INSIDE.set(true);
    let cmds = Vec::<Command>::deserialize(d);
    INSIDE.set(false);
    cmds
}

/// When [`Command::SetIf`] sets its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCond {
    /// Always (`SET … GET` without a condition).
    Always,
    /// Only if the key does not exist (`NX`).
    Absent,
    /// Only if the key exists (`XX`).
    Present,
    /// Only if the key holds this value (`IFEQ`); an absent key does not match.
    Equals(Bytes),
}

impl SetCond {
    /// Whether the condition holds for a key's current value.
    pub fn holds(&self, current: Option<&[u8]>) -> bool {
        match (self, current) {
            (SetCond::Always, _) => true,
            (SetCond::Absent, cur) => cur.is_none(),
            (SetCond::Present, cur) => cur.is_some(),
            (SetCond::Equals(want), cur) => cur == Some(want.as_ref()),
        }
    }
}

/// A command the state machine refused; nothing changed. Deterministic: every replica
/// refuses it at the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ApplyError {
    /// The stored value is not a base-10 64-bit integer.
    NotInteger,
    /// The sum does not fit a 64-bit integer.
    Overflow,
    /// A string command on a list or a list command on a string.
    WrongType,
    /// The list would hold more than [`list::LIST_BYTES_MAX`] (its elements' encoded bytes
    /// plus [`list::LIST_ELEMENT_OVERHEAD_BYTES`] each).
    ListTooLarge,
    /// A list command that needs the list found no key (`LSET`).
    NoSuchKey,
    /// An index outside the list (`LSET`).
    IndexOutOfRange,
}

// `ApplyError::ListTooLarge`'s text names both numbers.
const _: () = assert!(list::LIST_BYTES_MAX == 16 << 20);
const _: () = assert!(list::LIST_ELEMENT_OVERHEAD_BYTES == 64);

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Redis's words, so clients that match on them keep working.
        f.write_str(match self {
            ApplyError::NotInteger => "ERR value is not an integer or out of range",
            ApplyError::Overflow => "ERR increment or decrement would overflow",
            ApplyError::WrongType => {
                "WRONGTYPE Operation against a key holding the wrong kind of value"
            }
            ApplyError::ListTooLarge => {
                "ERR the list would hold more than 16 MiB (its elements' bytes plus 64 bytes \
                 each), the most a key holds; nothing was changed"
            }
            ApplyError::NoSuchKey => "ERR no such key",
            ApplyError::IndexOutOfRange => "ERR index out of range",
        })
    }
}

impl Command {
    /// Bytes of keys and values, to bound batches by size.
    pub fn payload_bytes(&self) -> usize {
        match self {
            Command::Get(k) => k.len(),
            Command::Set(k, v) => k.len() + v.len(),
            Command::Del(ks) | Command::Exists(ks) | Command::MGet(ks) => {
                ks.iter().map(Bytes::len).sum()
            }
            Command::MSet(kvs) => kvs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Command::Noop => 0,
            Command::SetIf {
                key, value, cond, ..
            } => {
                let old = match cond {
                    SetCond::Equals(old) => old.len(),
                    _ => 0,
                };
                key.len() + value.len() + old
            }
            Command::IncrBy(k, _)
            | Command::GetDel(k)
            | Command::Version(k)
            | Command::Expire { key: k, .. }
            | Command::Ttl(k) => k.len(),
            Command::DelIfEq(k, v) => k.len() + v.len(),
            Command::Multi(cmds) => cmds.iter().map(Command::payload_bytes).sum(),
            Command::Clock { expire, .. } => expire.iter().map(Bytes::len).sum(),
            Command::Push { key, values, .. } => {
                key.len() + values.iter().map(Bytes::len).sum::<usize>()
            }
            Command::PopFirst { keys, .. } => keys.iter().map(Bytes::len).sum(),
            Command::LMove { from, to, .. } => from.len() + to.len(),
            Command::LRem { key, value, .. }
            | Command::LSet { key, value, .. }
            | Command::LPos { key, value, .. } => key.len() + value.len(),
            Command::LInsert {
                key, pivot, value, ..
            } => key.len() + pivot.len() + value.len(),
            Command::Pop { key, .. }
            | Command::LTrim { key, .. }
            | Command::LLen(key)
            | Command::LRange { key, .. }
            | Command::LIndex { key, .. }
            | Command::Type(key) => key.len(),
            Command::Watched { versions, cmds } => {
                versions.iter().map(|(k, _)| k.len()).sum::<usize>()
                    + cmds.iter().map(Command::payload_bytes).sum::<usize>()
            }
            Command::Publish { channel, message } => channel.len() + message.len(),
        }
    }

    /// Keys and values the command carries (each costs a length in its encoding).
    pub fn items(&self) -> usize {
        match self {
            Command::Get(_) => 1,
            Command::Set(..) => 2,
            Command::Del(ks) | Command::Exists(ks) | Command::MGet(ks) => ks.len(),
            Command::MSet(kvs) => 2 * kvs.len(),
            Command::Noop => 0,
            // The condition's tag and the GET flag count as one more item, the deadline's
            // tag and varint as another.
            Command::SetIf { cond, .. } => 4 + usize::from(matches!(cond, SetCond::Equals(_))),
            // The increment is a varint, like a length.
            Command::IncrBy(..) | Command::DelIfEq(..) => 2,
            Command::GetDel(_) | Command::Version(_) | Command::Ttl(_) => 1,
            // Key, deadline, condition.
            Command::Expire { .. } => 3,
            Command::Multi(cmds) => cmds.iter().map(Command::items).sum(),
            // The time, then the keys.
            Command::Clock { expire, .. } => 1 + expire.len(),
            // The end and the flag count as one more item.
            Command::Push { values, .. } => 2 + values.len(),
            Command::PopFirst { keys, .. } => 1 + keys.len(),
            // Key, end, count.
            Command::Pop { .. }
            | Command::LRange { .. }
            | Command::LRem { .. }
            | Command::LSet { .. }
            | Command::LTrim { .. } => 3,
            // Key, flag, pivot, value.
            Command::LInsert { .. } => 4,
            // Key, value, rank, count, maxlen.
            Command::LPos { .. } => 5,
            // Two keys, two ends.
            Command::LMove { .. } => 4,
            Command::LIndex { .. } => 2,
            Command::LLen(_) | Command::Type(_) => 1,
            // A key and its version each (the version's tag and varint count as one).
            Command::Watched { versions, cmds } => {
                2 * versions.len() + cmds.iter().map(Command::items).sum::<usize>()
            }
            Command::Publish { .. } => 2,
        }
    }

    /// An upper bound of the command's encoded size (postcard, as in a WAL record or a
    /// peer frame): what the limits in [`crate::limits`] are checked against.
    pub fn encoded_bytes_max(&self) -> usize {
        use crate::limits::{COMMAND_OVERHEAD_BYTES, ITEM_OVERHEAD_BYTES};
        match self {
            // The commonest write, sized on arrival and again by each follower's accept:
            // the general rule below without its two walks of the variants.
            Command::Set(k, v) => {
                k.len() + v.len() + 2 * ITEM_OVERHEAD_BYTES + COMMAND_OVERHEAD_BYTES
            }
            Command::Multi(cmds) => {
                COMMAND_OVERHEAD_BYTES + cmds.iter().map(Command::encoded_bytes_max).sum::<usize>()
            }
            Command::Watched { versions, cmds } => {
                let watched: usize = versions.iter().map(|(k, _)| k.len()).sum();
                2 * COMMAND_OVERHEAD_BYTES
                    + watched
                    + 2 * versions.len() * ITEM_OVERHEAD_BYTES
                    + cmds.iter().map(Command::encoded_bytes_max).sum::<usize>()
            }
            _ => self.payload_bytes() + self.items() * ITEM_OVERHEAD_BYTES + COMMAND_OVERHEAD_BYTES,
        }
    }

    /// Calls `f` with every key the command may change (repeats kept).
    pub fn for_each_written_key(&self, f: &mut impl FnMut(&Bytes)) {
        match self {
            Command::Set(k, _)
            | Command::SetIf { key: k, .. }
            | Command::IncrBy(k, _)
            | Command::GetDel(k)
            | Command::DelIfEq(k, _)
            | Command::Expire { key: k, .. }
            | Command::Push { key: k, .. }
            | Command::Pop { key: k, .. }
            | Command::LRem { key: k, .. }
            | Command::LSet { key: k, .. }
            | Command::LInsert { key: k, .. }
            | Command::LTrim { key: k, .. } => f(k),
            Command::LMove { from, to, .. } => {
                f(from);
                f(to);
            }
            Command::Del(ks)
            | Command::Clock { expire: ks, .. }
            | Command::PopFirst { keys: ks, .. } => ks.iter().for_each(f),
            Command::MSet(kvs) => kvs.iter().for_each(|(k, _)| f(k)),
            Command::Multi(cmds) | Command::Watched { cmds, .. } => {
                cmds.iter().for_each(|c| c.for_each_written_key(f))
            }
            Command::Get(_)
            | Command::Exists(_)
            | Command::MGet(_)
            | Command::Version(_)
            | Command::Ttl(_)
            | Command::LLen(_)
            | Command::LRange { .. }
            | Command::LIndex { .. }
            | Command::LPos { .. }
            | Command::Type(_)
            | Command::Publish { .. }
            | Command::Noop => {}
        }
    }

    /// Whether applying it needs the log's current time: the leader then stamps its time
    /// into the batch first.
    pub fn reads_clock(&self) -> bool {
        match self {
            Command::SetIf { ttl, .. } | Command::Expire { ttl, .. } => ttl.reads_clock(),
            Command::Ttl(_) => true,
            Command::Multi(cmds) | Command::Watched { cmds, .. } => {
                cmds.iter().any(Command::reads_clock)
            }
            _ => false,
        }
    }

    /// Calls `f` with every key the command names, read or written (repeats kept): what
    /// decides the shard that owns it.
    pub fn for_each_key(&self, f: &mut impl FnMut(&Bytes)) {
        match self {
            Command::Get(k)
            | Command::Version(k)
            | Command::Ttl(k)
            | Command::LLen(k)
            | Command::LRange { key: k, .. }
            | Command::LIndex { key: k, .. }
            | Command::LPos { key: k, .. }
            | Command::Type(k)
            | Command::Publish { channel: k, .. } => f(k),
            Command::Exists(ks) | Command::MGet(ks) => ks.iter().for_each(f),
            Command::Multi(cmds) => cmds.iter().for_each(|c| c.for_each_key(f)),
            Command::Watched { versions, cmds } => {
                versions.iter().for_each(|(k, _)| f(k));
                cmds.iter().for_each(|c| c.for_each_key(f));
            }
            _ => self.for_each_written_key(f),
        }
    }

    /// The keys a read-only command looks at, in order (repeats kept); empty for writes.
    pub fn read_keys(&self) -> &[Bytes] {
        match self {
            Command::Get(k)
            | Command::LLen(k)
            | Command::LRange { key: k, .. }
            | Command::LIndex { key: k, .. }
            | Command::LPos { key: k, .. }
            | Command::Type(k) => std::slice::from_ref(k),
            Command::Exists(ks) | Command::MGet(ks) => ks,
            _ => &[],
        }
    }

    /// The reply of a read-only command whose keys (as [`Command::read_keys`] lists them)
    /// hold `entries` (a string's reply shares its entry's bytes; a list read decodes the
    /// encoded list, O(n), sharing its bytes too).
    pub fn read_reply(&self, entries: &[Option<Entry>]) -> Reply {
        let list_read = matches!(
            self,
            Command::LLen(_)
                | Command::LRange { .. }
                | Command::LIndex { .. }
                | Command::LPos { .. }
        );
        let lists: Vec<Option<List>> = entries
            .iter()
            .map(|e| {
                e.as_ref()
                    .filter(|e| list_read && e.kind == Kind::List)
                    .map(|e| List::decode_shared(&e.value))
            })
            .collect();
        let values: Vec<Option<ReadValue<'_>>> = entries
            .iter()
            .zip(&lists)
            .map(|(e, l)| match (e, l) {
                (_, Some(l)) => Some(ReadValue::List(l)),
                (Some(e), None) if e.kind == Kind::List => Some(ReadValue::List(&EMPTY_LIST)),
                (Some(e), None) => Some(ReadValue::String(e.value.clone())),
                (None, _) => None,
            })
            .collect();
        self.answer(&values)
    }

    /// The reply of a read-only command whose keys (as [`Command::read_keys`] lists them)
    /// hold `values`: a list read costs O(1) (`LLEN`, `LINDEX`) or the elements it
    /// answers (`LRANGE`), `LPOS` the elements it compares.
    pub fn answer(&self, values: &[Option<ReadValue<'_>>]) -> Reply {
        let first = values.first().and_then(Option::as_ref);
        fn list<'a>(v: Option<&ReadValue<'a>>) -> Result<Option<&'a List>, Reply> {
            match v {
                None => Ok(None),
                Some(ReadValue::List(l)) => Ok(Some(l)),
                Some(ReadValue::String(_)) => Err(Reply::Error(ApplyError::WrongType)),
            }
        }
        match self {
            Command::Get(_) => match first {
                Some(ReadValue::List(_)) => Reply::Error(ApplyError::WrongType),
                Some(ReadValue::String(v)) => Reply::Value(Some(v.clone())),
                None => Reply::Value(None),
            },
            Command::Exists(_) => Reply::Int(values.iter().filter(|v| v.is_some()).count() as i64),
            // MGET answers nil for a key that holds no string, as in Redis.
            Command::MGet(_) => Reply::Values(
                values
                    .iter()
                    .map(|v| match v {
                        Some(ReadValue::String(v)) => Some(v.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            Command::Type(_) => Reply::Value(Some(Bytes::from_static(match first {
                None => b"none",
                Some(ReadValue::String(_)) => Kind::String.name().as_bytes(),
                Some(ReadValue::List(_)) => Kind::List.name().as_bytes(),
            }))),
            Command::LLen(_) => match list(first) {
                Ok(l) => Reply::Int(l.map_or(0, List::len) as i64),
                Err(e) => e,
            },
            Command::LRange { start, stop, .. } => match list(first) {
                Ok(None) => Reply::Values(Vec::new()),
                Ok(Some(l)) => {
                    let (skip, take) = list::range(l.len(), *start, *stop);
                    Reply::Values(l.slice(skip, take).cloned().map(Some).collect())
                }
                Err(e) => e,
            },
            Command::LIndex { index, .. } => match list(first) {
                Ok(None) => Reply::Value(None),
                Ok(Some(l)) => {
                    let at = list::index(l.len(), *index);
                    Reply::Value(at.and_then(|at| l.get(at)).cloned())
                }
                Err(e) => e,
            },
            Command::LPos {
                value,
                rank,
                count,
                maxlen,
                ..
            } => match list(first) {
                Ok(l) => {
                    let l = l.unwrap_or(&EMPTY_LIST);
                    let found = list::positions(l, value, *rank, count.unwrap_or(1), *maxlen);
                    match count {
                        None => found
                            .first()
                            .map_or(Reply::Value(None), |at| Reply::Int(*at as i64)),
                        Some(_) => Reply::Ints(found.into_iter().map(|at| at as i64).collect()),
                    }
                }
                Err(e) => e,
            },
            _ => Reply::Ok,
        }
    }

    /// True for commands that change nothing.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Command::Get(_)
                | Command::Exists(_)
                | Command::MGet(_)
                | Command::LLen(_)
                | Command::LRange { .. }
                | Command::LIndex { .. }
                | Command::LPos { .. }
                | Command::Type(_)
                | Command::Noop
        )
    }
}

/// A command with the session data that makes retries exactly-once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The session issuing it.
    pub client: ClientId,
    /// Per-session sequence number, from 1; a retry reuses it.
    pub seq: u64,
    /// Every sequence number below this one has had its reply; the session may forget them.
    pub ack_floor: u64,
    /// What to do.
    pub cmd: Command,
}

impl Request {
    /// An upper bound of the request's encoded size: its command's and the session fields'.
    pub fn encoded_bytes_max(&self) -> usize {
        self.cmd.encoded_bytes_max() + crate::limits::REQUEST_OVERHEAD_BYTES
    }

    /// The same request with no session: applied every time it appears (no-op fillers).
    pub fn noop() -> Request {
        Request {
            client: 0,
            seq: 0,
            ack_floor: 0,
            cmd: Command::Noop,
        }
    }
}

/// The state machine's answer to a command.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reply {
    /// Done, nothing to return.
    Ok,
    /// A single value, or none.
    Value(Option<Bytes>),
    /// A count.
    Int(i64),
    /// Several values.
    Values(Vec<Option<Bytes>>),
    /// Refused, nothing changed.
    Error(ApplyError),
    /// One reply per command of a [`Command::Multi`].
    Multi(Vec<Reply>),
    /// Several counts (`LPOS … COUNT`'s positions).
    Ints(Vec<i64>),
}

impl Reply {
    /// Bytes it holds, roughly: what it costs to send.
    pub fn size_bytes(&self) -> usize {
        const OVERHEAD_BYTES: usize = 16;
        OVERHEAD_BYTES
            + match self {
                Reply::Ok | Reply::Int(_) | Reply::Value(None) | Reply::Error(_) => 0,
                Reply::Value(Some(v)) => v.len(),
                Reply::Values(vs) => vs.iter().flatten().map(|v| v.len() + 8).sum(),
                Reply::Multi(rs) => rs.iter().map(Reply::size_bytes).sum(),
                Reply::Ints(ns) => 8 * ns.len(),
            }
    }
}
