//! What the state machine is asked and what it answers: commands, the requests that carry
//! them with their session, and replies. Their encoding is what the log and peers carry.

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};

use super::expiry::{ExpireIf, Ttl};
use super::item::Kind;
use super::kv::Entry;
use super::list::{self, End, List};
use super::shared_bytes;

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
    Get(#[serde(deserialize_with = "shared_bytes::deserialize")] Bytes),
    /// Sets a key.
    Set(
        #[serde(deserialize_with = "shared_bytes::deserialize")] Bytes,
        #[serde(deserialize_with = "shared_bytes::deserialize")] Bytes,
    ),
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
    /// Boxed like every variant larger than [`Command::Set`] (see
    /// [`COMMAND_IN_MEMORY_BYTES_MAX`]).
    SetIf(Box<SetIf>),
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
    /// replying it, or nil if the source is empty (`LMOVE`, `RPOPLPUSH`, `BLMOVE`). Boxed.
    LMove(Box<LMove>),
    /// Removes elements equal to a value (`LREM`). Boxed.
    LRem(Box<LRem>),
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
    /// for no list or an index outside it. Boxed.
    LSet(Box<LSet>),
    /// Inserts an element next to another (`LINSERT`). Boxed.
    LInsert(Box<LInsert>),
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
    /// Where elements equal to a value are (`LPOS`). Boxed.
    LPos(Box<LPos>),
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

/// Bytes a [`Command`] takes in memory at most (on 64-bit targets): a SET's key and value
/// and the tag. Every request is moved several times on its way through the core (arrival,
/// the leader's queue, the batch, the log), so the variants larger than a SET are boxed:
/// they are rare, and boxing them keeps the common GET and SET cheap to move. A newtype
/// variant around a struct encodes as the struct variant it replaced (postcard writes the
/// variant's index, then the fields in order), so logs and peers read them unchanged.
pub const COMMAND_IN_MEMORY_BYTES_MAX: usize = 72;
const _: () = assert!(std::mem::size_of::<Command>() <= COMMAND_IN_MEMORY_BYTES_MAX);

/// [`Command::SetIf`]'s arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetIf {
    /// The key.
    pub key: Bytes,
    /// The new value.
    pub value: Bytes,
    /// When to set.
    pub cond: SetCond,
    /// Reply the value before the command instead of `OK`/nil.
    pub get: bool,
    /// The key's deadline if set (`EX`, `PX`, `EXAT`, `PXAT`, `KEEPTTL`).
    pub ttl: Ttl,
}

/// [`Command::LMove`]'s arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LMove {
    /// The list popped.
    pub from: Bytes,
    /// The list pushed.
    pub to: Bytes,
    /// Where it pops.
    pub from_end: End,
    /// Where it pushes.
    pub to_end: End,
}

/// [`Command::LRem`]'s arguments: removes elements equal to `value`, the first `count` from
/// the head (`count` > 0), from the tail (< 0), or all (0); replies how many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LRem {
    /// The list.
    pub key: Bytes,
    /// How many and from which end.
    pub count: i64,
    /// The value removed.
    pub value: Bytes,
}

/// [`Command::LSet`]'s arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LSet {
    /// The list.
    pub key: Bytes,
    /// Where.
    pub index: i64,
    /// The new element.
    pub value: Bytes,
}

/// [`Command::LInsert`]'s arguments: inserts `value` before or after the first element
/// equal to `pivot`; replies the new length, -1 if no element matches, 0 for no list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LInsert {
    /// The list.
    pub key: Bytes,
    /// Before the pivot (else after it).
    pub before: bool,
    /// The element it goes next to.
    pub pivot: Bytes,
    /// The element inserted.
    pub value: Bytes,
}

/// [`Command::LPos`]'s arguments: where elements equal to `value` are, from the head for a
/// positive `rank`, from the tail for a negative one, skipping the first `|rank| - 1`
/// matches; up to `count` positions (0: all; `None`: one position or nil), looking at no
/// more than `maxlen` elements (0: all).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LPos {
    /// The list.
    pub key: Bytes,
    /// The element looked for.
    pub value: Bytes,
    /// Which match first, and from which end; never 0.
    pub rank: i64,
    /// How many positions, if given.
    pub count: Option<u64>,
    /// Elements compared, at most (0: no limit).
    pub maxlen: u64,
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
    #[inline]
    pub fn payload_bytes(&self) -> usize {
        // Counted for every write on every replica, when it is applied and when its entry
        // leaves the log: the commonest write inline, the rest through the general walk.
        match self {
            Command::Set(k, v) => k.len() + v.len(),
            _ => self.payload_bytes_general(),
        }
    }

    /// [`Command::payload_bytes`] for any variant.
    fn payload_bytes_general(&self) -> usize {
        match self {
            Command::Get(k) => k.len(),
            Command::Set(k, v) => k.len() + v.len(),
            Command::Del(ks) | Command::Exists(ks) | Command::MGet(ks) => {
                ks.iter().map(Bytes::len).sum()
            }
            Command::MSet(kvs) => kvs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Command::Noop => 0,
            Command::SetIf(s) => {
                let SetIf {
                    key, value, cond, ..
                } = &**s;
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
            Command::LMove(m) => m.from.len() + m.to.len(),
            Command::LRem(r) => r.key.len() + r.value.len(),
            Command::LSet(s) => s.key.len() + s.value.len(),
            Command::LPos(p) => p.key.len() + p.value.len(),
            Command::LInsert(i) => i.key.len() + i.pivot.len() + i.value.len(),
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
            Command::SetIf(s) => 4 + usize::from(matches!(s.cond, SetCond::Equals(_))),
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
            | Command::LRem(_)
            | Command::LSet(_)
            | Command::LTrim { .. } => 3,
            // Key, flag, pivot, value.
            Command::LInsert(_) => 4,
            // Key, value, rank, count, maxlen.
            Command::LPos(_) => 5,
            // Two keys, two ends.
            Command::LMove(_) => 4,
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
    #[inline]
    pub fn encoded_bytes_max(&self) -> usize {
        use crate::limits::{COMMAND_OVERHEAD_BYTES, ITEM_OVERHEAD_BYTES};
        match self {
            // The commonest write, sized on arrival and again by each follower's accept:
            // the general rule without its two walks of the variants, inline.
            Command::Set(k, v) => {
                k.len() + v.len() + 2 * ITEM_OVERHEAD_BYTES + COMMAND_OVERHEAD_BYTES
            }
            _ => self.encoded_bytes_max_general(),
        }
    }

    /// [`Command::encoded_bytes_max`] for any variant but [`Command::Set`].
    fn encoded_bytes_max_general(&self) -> usize {
        use crate::limits::{COMMAND_OVERHEAD_BYTES, ITEM_OVERHEAD_BYTES};
        match self {
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
            | Command::IncrBy(k, _)
            | Command::GetDel(k)
            | Command::DelIfEq(k, _)
            | Command::Expire { key: k, .. }
            | Command::Push { key: k, .. }
            | Command::Pop { key: k, .. }
            | Command::LTrim { key: k, .. } => f(k),
            Command::SetIf(s) => f(&s.key),
            Command::LRem(r) => f(&r.key),
            Command::LSet(s) => f(&s.key),
            Command::LInsert(i) => f(&i.key),
            Command::LMove(m) => {
                f(&m.from);
                f(&m.to);
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
            | Command::LPos(_)
            | Command::Type(_)
            | Command::Publish { .. }
            | Command::Noop => {}
        }
    }

    /// Whether applying it needs the log's current time: the leader then stamps its time
    /// into the batch first.
    pub fn reads_clock(&self) -> bool {
        match self {
            Command::SetIf(s) => s.ttl.reads_clock(),
            Command::Expire { ttl, .. } => ttl.reads_clock(),
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
            | Command::Type(k)
            | Command::Publish { channel: k, .. } => f(k),
            Command::LPos(p) => f(&p.key),
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
            | Command::Type(k) => std::slice::from_ref(k),
            Command::LPos(p) => std::slice::from_ref(&p.key),
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
            Command::LLen(_) | Command::LRange { .. } | Command::LIndex { .. } | Command::LPos(_)
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
            Command::LPos(p) => match list(first) {
                Ok(l) => {
                    let l = l.unwrap_or(&EMPTY_LIST);
                    let found =
                        list::positions(l, &p.value, p.rank, p.count.unwrap_or(1), p.maxlen);
                    match p.count {
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
                | Command::LPos(_)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes and decodes `cmd`, and checks that its bytes are what the struct variant it
    /// replaced wrote: the variant's index, then `fields` in order.
    fn encodes_as<F: Serialize>(cmd: Command, index: u32, fields: F) {
        let bytes = postcard::to_stdvec(&cmd).expect("a command encodes");
        let unboxed = postcard::to_stdvec(&(index, fields)).expect("fields encode");
        assert_eq!(bytes, unboxed, "{cmd:?}");
        let back: Command = postcard::from_bytes(&bytes).expect("a command decodes");
        assert_eq!(back, cmd);
    }

    #[test]
    fn boxed_variants_encode_as_the_struct_variants_they_replaced() {
        let (k, v, p) = (
            Bytes::from("key"),
            Bytes::from("value"),
            Bytes::from("pivot"),
        );
        let set_if = |cond: SetCond, get, ttl: Ttl| {
            let fields = (k.clone(), v.clone(), cond.clone(), get, ttl);
            let cmd = Command::SetIf(Box::new(SetIf {
                key: k.clone(),
                value: v.clone(),
                cond,
                get,
                ttl,
            }));
            encodes_as(cmd, 7, fields);
        };
        set_if(SetCond::Equals(p.clone()), true, Ttl::In(1_500));
        set_if(SetCond::Absent, false, Ttl::Keep);
        let lmove = LMove {
            from: k.clone(),
            to: v.clone(),
            from_end: End::Right,
            to_end: End::Left,
        };
        let fields = (k.clone(), v.clone(), End::Right, End::Left);
        encodes_as(Command::LMove(Box::new(lmove)), 19, fields);
        let lrem = LRem {
            key: k.clone(),
            count: -3,
            value: v.clone(),
        };
        encodes_as(
            Command::LRem(Box::new(lrem)),
            20,
            (k.clone(), -3i64, v.clone()),
        );
        let lset = LSet {
            key: k.clone(),
            index: 300,
            value: v.clone(),
        };
        encodes_as(
            Command::LSet(Box::new(lset)),
            26,
            (k.clone(), 300i64, v.clone()),
        );
        let linsert = LInsert {
            key: k.clone(),
            before: true,
            pivot: p.clone(),
            value: v.clone(),
        };
        let fields = (k.clone(), true, p.clone(), v.clone());
        encodes_as(Command::LInsert(Box::new(linsert)), 27, fields);
        let lpos = LPos {
            key: k.clone(),
            value: v.clone(),
            rank: -2,
            count: Some(5),
            maxlen: 1_000,
        };
        let fields = (k.clone(), v.clone(), -2i64, Some(5u64), 1_000u64);
        encodes_as(Command::LPos(Box::new(lpos)), 29, fields);
        // A variant left as it was, to check the comparison itself.
        encodes_as(Command::Set(k.clone(), v.clone()), 1, (k, v));
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_command_is_the_size_of_a_set() {
        // Two `Bytes` and a tag; a request's session fields add three words.
        assert_eq!(std::mem::size_of::<Command>(), COMMAND_IN_MEMORY_BYTES_MAX);
        assert_eq!(
            std::mem::size_of::<Request>(),
            COMMAND_IN_MEMORY_BYTES_MAX + 24
        );
    }
}
