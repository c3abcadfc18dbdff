//! The replicated state machine: a key-value map with a version per key, and client
//! sessions that make retried commands take effect once.
//!
//! Apply is deterministic: the same log applied on every replica gives the same map, the
//! same versions and the same replies.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::merkle::MerkleTree;
use super::types::{ClientId, MapHasher, Slot};

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
        }
    }

    /// The keys a read-only command looks at, in order (repeats kept); empty for writes.
    pub fn read_keys(&self) -> &[Bytes] {
        match self {
            Command::Get(k) => std::slice::from_ref(k),
            Command::Exists(ks) | Command::MGet(ks) => ks,
            _ => &[],
        }
    }

    /// The reply of a read-only command whose keys (as [`Command::read_keys`] lists them)
    /// hold `values`.
    pub fn read_reply(&self, values: &[Option<Bytes>]) -> Reply {
        match self {
            Command::Get(_) => Reply::Value(values.first().cloned().flatten()),
            Command::Exists(_) => Reply::Int(values.iter().filter(|v| v.is_some()).count() as i64),
            Command::MGet(_) => Reply::Values(values.to_vec()),
            _ => Reply::Ok,
        }
    }

    /// True for commands that change nothing.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Command::Get(_) | Command::Exists(_) | Command::MGet(_) | Command::Noop
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
}

/// A stored value and the slot that last wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The value.
    pub value: Bytes,
    /// The slot whose command last wrote this key.
    pub version: Slot,
}

/// A client session's memory (exported in snapshots).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Session {
    /// Replies of recent requests, sorted by sequence number, for retries. Requests
    /// arrive almost in order, so this is a deque with appends at the back.
    replies: VecDeque<(u64, Reply)>,
    /// Requests below this were acknowledged by the client.
    floor: u64,
    /// The last slot this session appeared in, to forget idle sessions first.
    last_slot: Slot,
}

impl Reply {
    /// Bytes it holds, roughly: what it costs to send.
    pub fn size_bytes(&self) -> usize {
        const OVERHEAD_BYTES: usize = 16;
        OVERHEAD_BYTES
            + match self {
                Reply::Ok | Reply::Int(_) | Reply::Value(None) => 0,
                Reply::Value(Some(v)) => v.len(),
                Reply::Values(vs) => vs.iter().flatten().map(|v| v.len() + 8).sum(),
            }
    }
}

impl Session {
    /// Bytes it holds, roughly: what it costs to send (snapshot chunks are bounded by it).
    pub fn size_bytes(&self) -> usize {
        const OVERHEAD_BYTES: usize = 32;
        OVERHEAD_BYTES
            + self
                .replies
                .iter()
                .map(|(_, r)| 8 + r.size_bytes())
                .sum::<usize>()
    }
}

/// The outcome of applying one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Executed now, or a retry answered from the session's memory.
    Reply(Reply),
    /// A retry of a request the client already acknowledged: nobody waits for it.
    Forgotten,
}

/// Everything the state machine holds, in a form to serialise (snapshots).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvState {
    /// Every key with its entry, in export order: by [`export_order`] of the key, then by
    /// key (deterministic bytes for equal states).
    pub entries: Vec<(Bytes, Entry)>,
    /// Client sessions, sorted by id.
    pub sessions: Vec<(ClientId, Session)>,
}

/// A stored key with its entry, boxed: the table then holds one pointer per key instead of
/// the 72-byte pair, which matters because a hash table is sized to the next power of two
/// (at 1M keys, 2M buckets: 153 bytes of table per key unboxed, 19 boxed).
#[derive(Clone, Debug)]
struct Stored(Box<(Bytes, Entry)>);

impl Stored {
    fn key(&self) -> &[u8] {
        &self.0.0
    }
}

// Hash and equality by key bytes only, like `Bytes`, so a `&[u8]` finds its `Stored`.
impl std::hash::Hash for Stored {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for Stored {
    fn eq(&self, other: &Stored) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Stored {}

impl std::borrow::Borrow<[u8]> for Stored {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

/// Keys and their entries (the map part of [`Kv`]), and their key + value bytes.
#[derive(Clone, Debug, Default)]
struct Map(HashSet<Stored, MapHasher>, u64);

impl Map {
    fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.0.get(key).map(|s| &s.0.1)
    }

    fn contains_key(&self, key: &[u8]) -> bool {
        self.0.contains(key)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn iter(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.0.iter().map(|s| (&s.0.0, &s.0.1))
    }

    /// Sets `key` to `entry`; returns the entry it replaces.
    fn insert(&mut self, key: &Bytes, entry: Entry) -> Option<Entry> {
        match self.0.take(&key[..]) {
            Some(mut stored) => {
                self.1 = self.1 + entry.value.len() as u64 - stored.0.1.value.len() as u64;
                // Reuses the box: an overwrite allocates nothing.
                let old = std::mem::replace(&mut stored.0.1, entry);
                self.0.insert(stored);
                Some(old)
            }
            None => {
                self.1 += (key.len() + entry.value.len()) as u64;
                self.0.insert(Stored(Box::new((key.clone(), entry))));
                None
            }
        }
    }

    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let (k, e) = *self.0.take(key)?.0;
        self.1 -= (k.len() + e.value.len()) as u64;
        Some(e)
    }
}

impl FromIterator<(Bytes, Entry)> for Map {
    fn from_iter<I: IntoIterator<Item = (Bytes, Entry)>>(iter: I) -> Map {
        let mut map = Map::default();
        for (k, e) in iter {
            map.insert(&k, e);
        }
        map
    }
}

/// The key-value state machine of one shard.
#[derive(Clone, Debug)]
pub struct Kv {
    map: Map,
    sessions: HashMap<ClientId, Session, MapHasher>,
    client_window_max: usize,
    clients_max: usize,
    /// Kept current by every write, for anti-entropy.
    merkle: MerkleTree,
    /// Key and value bytes of the write commands applied so far (not part of the state:
    /// a local count, to bound the log kept since the last snapshot).
    written_bytes: u64,
}

impl Kv {
    /// An empty map with the given session limits.
    pub fn new(client_window_max: usize, clients_max: usize) -> Kv {
        assert!(client_window_max >= 1);
        assert!(clients_max >= 1);
        Kv {
            map: Map::default(),
            sessions: HashMap::default(),
            client_window_max,
            clients_max,
            merkle: MerkleTree::default(),
            written_bytes: 0,
        }
    }

    /// The entry of a key.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Every key and entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.map.iter()
    }

    /// Key and value bytes stored.
    pub fn stored_bytes(&self) -> u64 {
        self.map.1
    }

    /// Key and value bytes of every write command applied here so far (retries and
    /// overwrites included): what the log grew by.
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Applies a request chosen at `slot`.
    pub fn apply(&mut self, slot: Slot, req: &Request) -> Applied {
        if !req.cmd.is_read_only() {
            self.written_bytes += req.cmd.payload_bytes() as u64;
        }
        if req.client == 0 {
            return Applied::Reply(execute(&mut self.map, &mut self.merkle, slot, &req.cmd));
        }
        if !self.sessions.contains_key(&req.client) && self.sessions.len() >= self.clients_max {
            self.evict_idle_session();
        }
        let window_max = self.client_window_max;
        let session = self.sessions.entry(req.client).or_default();
        session.last_slot = slot;
        if req.ack_floor > session.floor {
            session.floor = req.ack_floor;
            while session
                .replies
                .front()
                .is_some_and(|(seq, _)| *seq < req.ack_floor)
            {
                session.replies.pop_front();
            }
        }
        if req.seq < session.floor {
            return Applied::Forgotten;
        }
        let at = if session.replies.back().is_none_or(|(seq, _)| *seq < req.seq) {
            session.replies.len()
        } else {
            match session
                .replies
                .binary_search_by_key(&req.seq, |(seq, _)| *seq)
            {
                Ok(i) => return Applied::Reply(session.replies[i].1.clone()),
                Err(i) => i,
            }
        };
        // `session` borrows `sessions` only: the map and tree are disjoint fields.
        let reply = execute(&mut self.map, &mut self.merkle, slot, &req.cmd);
        session.replies.insert(at, (req.seq, reply.clone()));
        if session.replies.len() > window_max {
            // The client has more outstanding requests than the window; forgetting the
            // oldest reply only matters if that one is retried.
            session.replies.pop_front();
        }
        Applied::Reply(reply)
    }

    fn evict_idle_session(&mut self) {
        // Deterministic: the session idle longest, ties broken by id.
        if let Some(victim) = self
            .sessions
            .iter()
            .min_by_key(|(id, s)| (s.last_slot, **id))
            .map(|(id, _)| *id)
        {
            self.sessions.remove(&victim);
        }
    }

    /// The remembered reply of a client's request, if the session still holds it.
    pub fn cached_reply(&self, client: ClientId, seq: u64) -> Option<&Reply> {
        let s = self.sessions.get(&client)?;
        let i = s.replies.binary_search_by_key(&seq, |(q, _)| *q).ok()?;
        Some(&s.replies[i].1)
    }

    /// The whole state, for a snapshot.
    pub fn export(&self) -> KvState {
        // Sorting 8-byte hashes beside pointers touches each key once; sorting the keys
        // themselves chased pointers in every comparison: 686 ms at 1M keys against
        // 316-389 ms (busy machine, `kv_memory_per_key`). It runs on the shard's executor,
        // where a stall delays heartbeats.
        let mut order: Vec<(u64, &Bytes, &Entry)> = self
            .map
            .iter()
            .map(|(k, e)| (export_order(k), k, e))
            .collect();
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let entries: Vec<(Bytes, Entry)> = order
            .into_iter()
            .map(|(_, k, e)| (k.clone(), e.clone()))
            .collect();
        let mut sessions: Vec<(ClientId, Session)> =
            self.sessions.iter().map(|(c, s)| (*c, s.clone())).collect();
        sessions.sort_unstable_by_key(|(c, _)| *c);
        KvState { entries, sessions }
    }

    /// Replaces the whole state with a snapshot's.
    pub fn import(&mut self, state: KvState) {
        self.map = state.entries.into_iter().collect();
        self.sessions = state.sessions.into_iter().collect();
        // The map changed without `execute`: the tree learns it all at once.
        self.merkle
            .rebuild_full(self.map.iter().map(|(k, e)| (&k[..], e)));
    }

    /// A digest of the map's contents, independent of insertion order, to compare replicas.
    pub fn digest(&self) -> u64 {
        self.map.iter().fold(0u64, |acc, (k, e)| {
            let mut h = xxhash_rust::xxh3::Xxh3Default::new();
            h.update(k);
            h.update(&e.version.to_le_bytes());
            h.update(&e.value);
            acc ^ h.digest()
        })
    }
}

/// The first sort key of entries in a [`KvState`]: the key's xxh3 (ties, by key bytes).
pub fn export_order(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// Runs one command against the map.
fn execute(map: &mut Map, merkle: &mut MerkleTree, slot: Slot, cmd: &Command) -> Reply {
    match cmd {
        Command::Get(k) => Reply::Value(map.get(k).map(|e| e.value.clone())),
        Command::Set(k, v) => {
            put(map, merkle, k, v, slot);
            Reply::Ok
        }
        Command::Del(ks) => {
            let removed = ks.iter().filter(|k| remove(map, merkle, k)).count();
            Reply::Int(removed as i64)
        }
        Command::Exists(ks) => Reply::Int(ks.iter().filter(|k| map.contains_key(k)).count() as i64),
        Command::MGet(ks) => Reply::Values(
            ks.iter()
                .map(|k| map.get(k).map(|e| e.value.clone()))
                .collect(),
        ),
        Command::MSet(kvs) => {
            for (k, v) in kvs {
                put(map, merkle, k, v, slot);
            }
            Reply::Ok
        }
        Command::Noop => Reply::Ok,
    }
}

// Merkle upkeep: every change to the map goes through these two, so the tree's leaves
// always equal the map's contents.

/// Sets a key and tells the Merkle tree.
fn put(map: &mut Map, merkle: &mut MerkleTree, key: &Bytes, value: &Bytes, slot: Slot) {
    let new = Entry {
        value: value.clone(),
        version: slot,
    };
    // The clone shares the value: only a reference count changes.
    let old = map.insert(key, new.clone());
    merkle.update(key, old.as_ref(), Some(&new));
}

/// Removes a key and tells the Merkle tree; true if it existed.
fn remove(map: &mut Map, merkle: &mut MerkleTree, key: &Bytes) -> bool {
    let Some(old) = map.remove(key) else {
        return false;
    };
    merkle.update(key, Some(&old), None);
    true
}

impl Kv {
    /// The Merkle tree over this map (rebuild it before reading inner digests).
    pub fn merkle(&self) -> &MerkleTree {
        &self.merkle
    }

    /// The Merkle tree, to rebuild it.
    pub fn merkle_mut(&mut self) -> &mut MerkleTree {
        &mut self.merkle
    }

    /// Replaces the Merkle tree with one of another depth, rebuilt from the map.
    pub fn set_merkle_depth(&mut self, depth: u8) {
        self.merkle = MerkleTree::new(depth);
        self.merkle
            .rebuild_full(self.map.iter().map(|(k, e)| (&k[..], e)));
    }

    /// Installs an entry found by anti-entropy repair (see `merkle::repair_verdict`);
    /// refuses, returning false, to replace an entry of the same or a newer version.
    pub fn install(&mut self, key: Bytes, entry: Entry) -> bool {
        if self
            .map
            .get(&key)
            .is_some_and(|e| e.version >= entry.version)
        {
            return false;
        }
        let old = self.map.insert(&key, entry.clone());
        self.merkle.update(&key, old.as_ref(), Some(&entry));
        true
    }

    /// Debug only: overwrites a key whatever its version, keeping the tree in step.
    /// Creates divergence between replicas on purpose (`COREPAX.DEBUG SETLOCAL`).
    pub fn force_local(&mut self, key: Bytes, entry: Entry) {
        let old = self.map.insert(&key, entry.clone());
        self.merkle.update(&key, old.as_ref(), Some(&entry));
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(kv.get(b"a").map(|e| e.version), Some(1));
        kv.apply(
            2,
            &req(
                1,
                2,
                2,
                Command::MSet(vec![(b("b"), b("2")), (b("a"), b("3"))]),
            ),
        );
        assert_eq!(kv.get(b"a").map(|e| e.version), Some(2));
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
}
