//! The replicated state machine: a key-value map with a version per key, and client
//! sessions that make retried commands take effect once.
//!
//! Apply is deterministic: the same log applied on every replica gives the same map, the
//! same versions and the same replies.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use super::command::{
    ApplyError, Command, LInsert, LMove, LPos, LRem, LSet, ReadValue, Reply, Request, SetCond,
    SetIf,
};
use super::expiry::{Change, ExpireIf, Expiry, Ttl};
pub use super::item::{EntryRef, Item, Kind, ValueRef};
use super::list::List;
use super::merkle::{MerkleTree, entry_digest};
use super::types::{ClientId, MapHasher, Slot};
use super::watch::{ChangeKind, Event, EventRef, Recorder};
use map::Map;

/// Fewer keys than this and [`Kv::prefetch`] skips its walk: a few thousand items of a
/// few hundred bytes and the Merkle leaves they touch fit a core's L2 cache (1 MiB on
/// this project's test machine), so they are no miss. The 1M-key case `benches/kv_apply.rs`
/// measures is far above it.
pub const PREFETCH_KEYS_MIN: usize = 2048;

/// A stored value and the slot that last wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The value (a list's encoded: [`crate::protocol::list`]).
    pub value: Bytes,
    /// The slot whose command last wrote this key.
    pub version: Slot,
    /// What the value is.
    pub kind: Kind,
}

impl Entry {
    /// A string value.
    pub fn string(value: Bytes, version: Slot) -> Entry {
        Entry {
            value,
            version,
            kind: Kind::String,
        }
    }

    /// The value and version, borrowed.
    pub fn entry_ref(&self) -> EntryRef<'_> {
        EntryRef {
            value: ValueRef::Bytes(&self.value),
            version: self.version,
            kind: self.kind,
        }
    }
}

impl Item {
    /// The value as a read sees it (a string's bytes shared, a list borrowed).
    pub fn read_value(&self) -> ReadValue<'_> {
        match self.list() {
            Some(l) => ReadValue::List(l),
            None => ReadValue::String(self.value_bytes()),
        }
    }

    /// The value and version as an owned entry (a string's value shares this allocation;
    /// a list is encoded, O(n)).
    pub fn entry(&self) -> Entry {
        Entry {
            value: self.wire_value(),
            version: self.version(),
            kind: self.kind(),
        }
    }
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

/// Everything the state machine holds, in a form to serialise (snapshots). The items are
/// shared with the map, not copied: a snapshot freezes the state by cloning pointers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvState {
    /// Every key with its value and version: in no particular order as exported, in
    /// [`KvState::sort`]'s order where a transfer needs one.
    #[serde(serialize_with = "serialize_prefetched")]
    pub entries: Vec<Item>,
    /// Client sessions, sorted by id.
    pub sessions: Vec<(ClientId, Session)>,
    /// Keys' deadlines (unix ms), sorted by key.
    pub deadlines: Vec<(Bytes, u64)>,
    /// The log's time at the snapshot (unix ms).
    pub log_time: u64,
}

/// Items a snapshot's encoding prefetches ahead of the one it encodes, and the bytes of
/// each it prefetches (its header, key and a small value). The items are all over the heap,
/// a cache miss each. Measured: `cargo bench --bench kv_apply -- encode` 96.5 -> 87.4 ms
/// at 1M keys (not resolved in the bench's noise); in a 3-replica cluster at ~630k keys,
/// each node's snapshot write time 5-14% lower in 6 of 6 comparisons
/// (results/snapshot-disk-20261206/encode-prefetch-630k.txt).
const ENCODE_AHEAD: usize = 16;
const ENCODE_PREFETCH_BYTES: usize = 128;

/// [`KvState::entries`] serialised as serde would, the items' lines prefetched ahead.
fn serialize_prefetched<S: serde::Serializer>(items: &[Item], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(items.iter().enumerate().map(|(i, item)| {
        if let Some(ahead) = items.get(i + ENCODE_AHEAD) {
            ahead.prefetch(ENCODE_PREFETCH_BYTES);
        }
        item
    }))
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
    /// Deadlines of keys that expire, and the log's time.
    expiry: Expiry,
    /// Key and value bytes of the write commands applied so far (not part of the state:
    /// a local count, to bound the log kept since the last snapshot).
    written_bytes: u64,
    /// What applying the log did that clients may wait for, until the driver takes it
    /// ([`Kv::drain_events`], or [`Kv::take_events`] as owned events); `None`: not
    /// recorded (the driver asked for none).
    events: Option<Recorder>,
    /// The maps imports replaced, kept for the driver to drop off its executor
    /// ([`Kv::keep_replaced`]); `None`: dropped at once.
    replaced: Option<Vec<Replaced>>,
    /// [`Kv::set_bug_insert_after`].
    bug_insert_after: bool,
    /// [`Kv::set_bug_lmove_wrong_end`].
    bug_lmove_wrong_end: bool,
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
            expiry: Expiry::default(),
            written_bytes: 0,
            events: None,
            replaced: None,
            bug_insert_after: false,
            bug_lmove_wrong_end: false,
        }
    }

    /// Starts (or stops) recording [`Event`]s as the log is applied. A driver that turns
    /// it on takes them after every step ([`Kv::drain_events`], [`Kv::take_events`]).
    pub fn record_events(&mut self, on: bool) {
        self.events = on.then(Recorder::default);
    }

    /// Keeps (or stops keeping) the map each [`Kv::import`] replaces, for the driver to
    /// take ([`Kv::take_replaced`]) and drop elsewhere: freeing a million items is a
    /// cache miss each: 20-120 ms that the shard would stop for
    /// (results/install-drop-20261206/).
    pub fn keep_replaced(&mut self, on: bool) {
        self.replaced = on.then(Vec::new);
    }

    /// The maps imports replaced since the last call (empty when not kept).
    pub fn take_replaced(&mut self) -> Vec<Replaced> {
        self.replaced
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The events recorded since the last call, in apply order (empty when not recording).
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.as_mut().map(Recorder::take).unwrap_or_default()
    }

    /// Hands the events recorded since the last call to `f` in apply order, changes' keys
    /// borrowed ([`Recorder::drain`]); nothing when not recording.
    pub fn drain_events(&mut self, f: impl FnMut(EventRef<'_>)) {
        if let Some(events) = &mut self.events {
            events.drain(f);
        }
    }

    /// The item of a key.
    pub fn get(&self, key: &[u8]) -> Option<&Item> {
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

    /// Every item, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Item> {
        self.map.iter()
    }

    /// Key and value bytes stored.
    pub fn stored_bytes(&self) -> u64 {
        self.map.payload_bytes
    }

    /// Key and value bytes of every write command applied here so far (retries and
    /// overwrites included): what the log grew by.
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Prefetches the items of the keys `keys` gives, before reads of them (a pipeline's
    /// reads, looked at before the first is answered, so their misses overlap; see
    /// [`Kv::prefetch`] for writes). Below [`PREFETCH_KEYS_MIN`] keys it does nothing.
    pub fn prefetch_keys(&self, keys: impl FnOnce(&mut dyn FnMut(&[u8]))) {
        if self.map.len() >= PREFETCH_KEYS_MIN {
            self.map.prefetch(keys);
        }
    }

    /// Prefetches the Merkle leaves of every key the requests write, then the items of
    /// every key they write or read, before they are applied (see [`Item::prefetch`]). The
    /// leaves go first: their prefetches only ask; the map's probes trail the prefetches
    /// of their table lines by a few keys (`kv/prefetch.rs`).
    ///
    /// Below [`PREFETCH_KEYS_MIN`] keys it does nothing: the items and the leaves they
    /// touch stay in the core's cache, so there is no miss to overlap, and the walk would
    /// hash every key twice more (the map's hash and the leaf's) for nothing.
    ///
    /// Without `reads` the keys of read-only commands are skipped: applied with
    /// [`Kv::apply_unanswered`], as a follower applies them, they touch nothing.
    pub fn prefetch(&self, requests: &[Request], reads: bool) {
        if self.map.len() < PREFETCH_KEYS_MIN {
            return;
        }
        for req in requests {
            req.cmd
                .for_each_written_key(&mut |k| self.merkle.prefetch(k));
        }
        self.map.prefetch(|each| {
            for req in requests {
                if reads || !req.cmd.is_read_only() {
                    req.cmd.for_each_key(&mut |k| each(k));
                }
            }
        });
    }

    /// Applies a request chosen at `slot`.
    pub fn apply(&mut self, slot: Slot, req: &Request) -> Applied {
        self.apply_as::<true>(slot, req)
    }

    /// Applies a request chosen at `slot` that nobody here waits for (every request at a
    /// follower): the change and the reply kept for a retry are [`Kv::apply`]'s, without
    /// the copy of the reply it returns and that copy's drop. A read-only command is not
    /// run at all (only its session's bookkeeping is done): it changes nothing, and its
    /// reply is never kept (a retry runs it again).
    pub fn apply_unanswered(&mut self, slot: Slot, req: &Request) {
        self.apply_as::<false>(slot, req);
    }

    /// [`Kv::apply`]; without `ANSWER` a reply kept in the session is not copied, and the
    /// outcome returned is not to be read.
    fn apply_as<const ANSWER: bool>(&mut self, slot: Slot, req: &Request) -> Applied {
        let read_only = req.cmd.is_read_only();
        if !read_only {
            self.written_bytes += req.cmd.payload_bytes() as u64;
        }
        if req.client == 0 {
            if !ANSWER && read_only {
                return Applied::Forgotten;
            }
            return Applied::Reply(self.data().execute(slot, &req.cmd));
        }
        // The count first: below the limit, a known session costs one lookup, not two.
        if self.sessions.len() >= self.clients_max && !self.sessions.contains_key(&req.client) {
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
        if !ANSWER && read_only {
            return Applied::Forgotten;
        }
        // `session` borrows `sessions` only: the map, tree and deadlines are other fields.
        let reply = Data {
            map: &mut self.map,
            merkle: &mut self.merkle,
            expiry: &mut self.expiry,
            events: self.events.as_mut(),
            bug_insert_after: self.bug_insert_after,
            bug_lmove_wrong_end: self.bug_lmove_wrong_end,
        }
        .execute(slot, &req.cmd);
        if read_only {
            // A retried read runs again where the retry lands: both runs fall between the
            // read's call and its answer, so either answer is linearizable, and the reply
            // (often a value) need not be kept for a retry that rarely comes.
            return Applied::Reply(reply);
        }
        let answer = if ANSWER {
            Applied::Reply(reply.clone())
        } else {
            Applied::Forgotten
        };
        // In order, a reply goes at the back: the plain push, not the general insert.
        if at == session.replies.len() {
            session.replies.push_back((req.seq, reply));
        } else {
            session.replies.insert(at, (req.seq, reply));
        }
        if session.replies.len() > window_max {
            // The client has more outstanding requests than the window; forgetting the
            // oldest reply only matters if that one is retried.
            session.replies.pop_front();
        }
        answer
    }

    fn data(&mut self) -> Data<'_> {
        Data {
            map: &mut self.map,
            merkle: &mut self.merkle,
            expiry: &mut self.expiry,
            events: self.events.as_mut(),
            bug_insert_after: self.bug_insert_after,
            bug_lmove_wrong_end: self.bug_lmove_wrong_end,
        }
    }

    /// Simulator only: `LINSERT … BEFORE` inserts after the pivot (a deliberate bug the
    /// list checker must catch).
    pub fn set_bug_insert_after(&mut self, on: bool) {
        self.bug_insert_after = on;
    }

    /// Simulator only: `LMOVE` between two keys pushes at the other end of the destination
    /// than asked (a deliberate bug the list checker must catch).
    pub fn set_bug_lmove_wrong_end(&mut self, on: bool) {
        self.bug_lmove_wrong_end = on;
    }

    /// Deadlines of keys and the log's time.
    pub fn expiry(&self) -> &Expiry {
        &self.expiry
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

    /// The whole state, for a snapshot: every item shared (a pointer each, no key or value
    /// copied), in no particular order.
    pub fn export(&self) -> KvState {
        KvState {
            entries: self.map.share_all(),
            ..self.export_rest()
        }
    }

    /// The whole state as [`Kv::export`] has it, but with no entries yet: the map's items
    /// are frozen as they are now, and shared a part at a time by [`Kv::export_step`],
    /// while commands go on changing the map; [`Kv::export_end`] hands them out. A
    /// snapshot of a large map taken at once stops the shard for a cache miss per key.
    pub fn export_begin(&mut self) -> KvState {
        self.map.freeze_begin();
        self.export_rest()
    }

    /// Shares up to `items` more of the items [`Kv::export_begin`] froze; true once all
    /// are.
    pub fn export_step(&mut self, items: usize) -> bool {
        self.map.freeze_step(items)
    }

    /// Keys a growth of the map still has to move to its new table (0 when none runs;
    /// INFO `growth_keys_left`).
    pub fn growth_keys_left(&self) -> usize {
        self.map.growth_left()
    }

    /// Moves up to `items` more of a growing map's items to its new table (`kv/map.rs`;
    /// writes move a few each, this lets time move the rest when writes stop); true once
    /// no growth runs.
    pub fn grow_step(&mut self, items: usize) -> bool {
        self.map.grow_step(items, items.saturating_mul(8))
    }

    /// Whether an export a part at a time runs ([`Kv::export_begin`]): the map holds one
    /// at a time, and a second `export_begin` would drop it.
    pub fn exporting(&self) -> bool {
        self.map.freezing()
    }

    /// The items [`Kv::export_begin`] froze, shared: the entries of its state (`None` if
    /// no export runs).
    pub fn export_end(&mut self) -> Option<Vec<Item>> {
        self.map.freeze_end()
    }

    /// The state but the map's items.
    fn export_rest(&self) -> KvState {
        let mut sessions: Vec<(ClientId, Session)> =
            self.sessions.iter().map(|(c, s)| (*c, s.clone())).collect();
        sessions.sort_unstable_by_key(|(c, _)| *c);
        let (deadlines, log_time) = self.expiry.export();
        KvState {
            entries: Vec::new(),
            sessions,
            deadlines,
            log_time,
        }
    }

    /// Replaces the whole state with a snapshot's.
    pub fn import(&mut self, state: KvState) {
        let depth = self.merkle.depth();
        self.import_built(state.build(depth));
    }

    /// Replaces the whole state with one [`KvState::build`] made ready (off the driver's
    /// executor, where it takes a cache miss per key): only swaps the parts in.
    pub fn import_built(&mut self, built: BuiltState) {
        let depth = self.merkle.depth();
        self.merkle = built.merkle;
        // An export in progress goes on with the items it froze.
        let old = self.map.replace(built.map);
        if let Some(kept) = &mut self.replaced {
            kept.push(Replaced { _map: old });
        }
        if self.merkle.depth() != depth {
            // Built for a depth this map no longer has.
            self.set_merkle_depth(depth);
        }
        self.sessions = built.sessions;
        self.expiry = built.expiry;
        if let Some(events) = &mut self.events {
            // Changes up to the snapshot were never applied here one by one.
            events.push(Event::Reset);
        }
    }

    /// A built state not installed after all (the log caught up meanwhile): dropped as
    /// a replaced map is ([`Kv::keep_replaced`]).
    pub fn discard_built(&mut self, built: BuiltState) {
        if let Some(kept) = &mut self.replaced {
            kept.push(Replaced { _map: built.map });
        }
    }

    /// A digest of the map's contents and deadlines, independent of insertion order, to
    /// compare replicas.
    pub fn digest(&self) -> u64 {
        self.map.iter().fold(0u64, |acc, i| {
            let mut h = xxhash_rust::xxh3::Xxh3Default::new();
            h.update(i.key());
            h.update(&i.version().to_le_bytes());
            h.update(i.value());
            if let Some(l) = i.list() {
                h.update(&l.value_hash().to_le_bytes());
                h.update(i.kind().name().as_bytes());
            }
            if let Some(at) = self.expiry.deadline(i.key()) {
                h.update(&at.to_le_bytes());
            }
            acc ^ h.digest()
        })
    }
}

/// A state made ready to install ([`KvState::build`]): its map and Merkle tree built.
pub struct BuiltState {
    map: Map,
    merkle: MerkleTree,
    sessions: HashMap<ClientId, Session, MapHasher>,
    expiry: Expiry,
}

impl KvState {
    /// Builds what [`Kv::import_built`] installs: the map and its Merkle tree (of
    /// `merkle_depth`, the importing map's), a cache miss per item (~75 ms per million
    /// keys on this project's test machine), which is why a node does it on its blocking
    /// pool.
    pub fn build(self, merkle_depth: u8) -> BuiltState {
        // The tree learns the entries in the order they came: decoded one after the
        // other, their items lie in that order in memory; the map's order is the hash's,
        // a cache miss per item (29-35 ms against 154-170 ms at 1M keys).
        let mut merkle = MerkleTree::new(merkle_depth);
        merkle.rebuild_full(self.entries.iter().map(|i| (i.key(), i.entry_ref())));
        let entries = self.entries.len();
        let map: Map = self.entries.into_iter().collect();
        if map.len() != entries {
            // A key came twice and the map kept the last: the tree counted both.
            merkle.rebuild_full(map.iter().map(|i| (i.key(), i.entry_ref())));
        }
        BuiltState {
            map,
            merkle,
            sessions: self.sessions.into_iter().collect(),
            expiry: Expiry::import(self.deadlines, self.log_time),
        }
    }
}

/// A map an import replaced ([`Kv::keep_replaced`]): nothing to do with it but drop it,
/// on any thread.
#[derive(Clone, Debug)]
pub struct Replaced {
    _map: Map,
}

/// The first sort key of entries in a sorted [`KvState`]: the key's xxh3 (ties, by key
/// bytes).
pub fn export_order(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

impl KvState {
    /// Sorts the items by [`export_order`], then by key: the order a snapshot transfer
    /// sends them in, so the receiver can check that no key repeats. Sorting 8-byte hashes
    /// beside pointers touches each item once; comparing keys chased pointers in every
    /// comparison (686 ms at 1M keys against 316-389 ms).
    pub fn sort(&mut self) {
        let mut order: Vec<(u64, Item)> = std::mem::take(&mut self.entries)
            .into_iter()
            .map(|i| (export_order(i.key()), i))
            .collect();
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key().cmp(b.1.key())));
        self.entries = order.into_iter().map(|(_, i)| i).collect();
    }
}

/// What a command changes: the map, the Merkle tree over it and the deadlines, kept in
/// step by [`Data::put`] and [`Data::remove`], the only ways a command changes a key.
struct Data<'a> {
    map: &'a mut Map,
    merkle: &'a mut MerkleTree,
    expiry: &'a mut Expiry,
    /// Where changes and messages are reported, if they are recorded.
    events: Option<&'a mut Recorder>,
    /// [`Kv::set_bug_insert_after`].
    bug_insert_after: bool,
    /// [`Kv::set_bug_lmove_wrong_end`].
    bug_lmove_wrong_end: bool,
}

impl Data<'_> {
    /// Sets a key to a string, and its deadline as `ttl` says (a deadline already past
    /// removes it).
    fn put(&mut self, key: &[u8], value: &[u8], slot: Slot, ttl: Ttl) {
        let deadline = match self.expiry.change(key, ttl, ExpireIf::Always) {
            Some(Change::Remove) => {
                self.remove_at(key, slot, ChangeKind::Del);
                return;
            }
            Some(Change::To(d)) => Some(d),
            Some(Change::Keep) | None => None,
        };
        let merkle = &mut *self.merkle;
        self.map.put(key, value, slot, |old, new| {
            merkle.update(key, old, Some(new))
        });
        self.report(key, slot, ChangeKind::Set);
        if let Some(d) = deadline
            && (d.is_some() || !self.expiry.is_empty())
        {
            self.expiry.set(key, d);
        }
    }

    /// Changes the list at `key` with `f` at `slot` (an absent key starts as an empty
    /// list), in place: O(1) for `f`'s pushes and pops whatever the list's length. A list
    /// left empty is removed with its deadline; a list write keeps the deadline, as in
    /// Redis. WRONGTYPE, and no change, for a string.
    fn edit_list<R>(
        &mut self,
        key: &[u8],
        slot: Slot,
        f: impl FnOnce(&mut List) -> R,
    ) -> Result<R, ApplyError> {
        // The old digest first: the list changes in place.
        let old = match self.map.get(key) {
            Some(i) if i.kind() != Kind::List => return Err(ApplyError::WrongType),
            i => i.map(|i| entry_digest(key, i.entry_ref())),
        };
        let out = self
            .map
            .edit_list(key, slot, f)
            .ok_or(ApplyError::WrongType)?;
        let new = self
            .map
            .get(key)
            .filter(|i| i.list().is_some_and(|l| !l.is_empty()))
            .map(|i| entry_digest(key, i.entry_ref()));
        self.merkle.replace_digest(key, old, new);
        if new.is_some() {
            self.report(key, slot, ChangeKind::List);
            return Ok(out);
        }
        self.map.remove(key);
        if !self.expiry.is_empty() {
            self.expiry.set(key, None);
        }
        if old.is_some() {
            self.report(key, slot, ChangeKind::Del);
        }
        Ok(out)
    }

    /// Reports a key's change, if changes are recorded.
    fn report(&mut self, key: &[u8], version: Slot, kind: ChangeKind) {
        if let Some(events) = self.events.as_deref_mut() {
            events.change(key, version, kind);
        }
    }

    /// Removes a key and its deadline at `slot`, reported as `how`; true if it existed.
    fn remove_at(&mut self, key: &[u8], slot: Slot, how: ChangeKind) -> bool {
        if !self.expiry.is_empty() {
            self.expiry.set(key, None);
        }
        let Some(old) = self.map.remove(key) else {
            return false;
        };
        self.merkle.update(key, Some(old.entry_ref()), None);
        self.report(key, slot, how);
        true
    }

    /// The string a key holds, `Ok(None)` if absent, or WRONGTYPE if it holds another kind.
    fn value(&self, key: &[u8]) -> Result<Option<Bytes>, ApplyError> {
        match self.map.get(key) {
            Some(i) if i.kind() != Kind::String => Err(ApplyError::WrongType),
            i => Ok(i.map(Item::value_bytes)),
        }
    }

    /// Runs one command.
    fn execute(&mut self, slot: Slot, cmd: &Command) -> Reply {
        match cmd {
            Command::Get(k) => self.value(k).map_or_else(Reply::Error, Reply::Value),
            Command::Set(k, v) => {
                self.put(k, v, slot, Ttl::Clear);
                Reply::Ok
            }
            Command::Del(ks) => Reply::Int(
                ks.iter()
                    .filter(|k| self.remove_at(k, slot, ChangeKind::Del))
                    .count() as i64,
            ),
            Command::Exists(ks) => {
                Reply::Int(ks.iter().filter(|k| self.map.contains_key(k)).count() as i64)
            }
            Command::MGet(ks) => {
                Reply::Values(ks.iter().map(|k| self.value(k).ok().flatten()).collect())
            }
            Command::MSet(kvs) => {
                for (k, v) in kvs {
                    self.put(k, v, slot, Ttl::Clear);
                }
                Reply::Ok
            }
            Command::Noop => Reply::Ok,
            Command::SetIf(s) => {
                let SetIf {
                    key,
                    value,
                    cond,
                    get,
                    ttl,
                } = &**s;
                // A plain SET (NX, XX) replaces a key of any kind, as in Redis; comparing
                // or returning the old value needs a string.
                let old = match self.value(key) {
                    Ok(old) => old,
                    Err(e) if *get || matches!(cond, SetCond::Equals(_)) => {
                        return Reply::Error(e);
                    }
                    Err(_) => self.map.get(key).map(|_| Bytes::new()),
                };
                let set = cond.holds(old.as_deref());
                if set {
                    self.put(key, value, slot, *ttl);
                }
                match (get, set) {
                    (true, _) => Reply::Value(old),
                    (false, true) => Reply::Ok,
                    (false, false) => Reply::Value(None),
                }
            }
            Command::IncrBy(k, by) => {
                let now = match self.map.get(k) {
                    None => 0,
                    Some(item) if item.kind() != Kind::String => {
                        return Reply::Error(ApplyError::WrongType);
                    }
                    Some(item) => match parse_i64(item.value()) {
                        Some(n) => n,
                        None => return Reply::Error(ApplyError::NotInteger),
                    },
                };
                let Some(sum) = now.checked_add(*by) else {
                    return Reply::Error(ApplyError::Overflow);
                };
                let text = itoa::Buffer::new().format(sum).as_bytes().to_vec();
                // A counter keeps its deadline, as in Redis.
                self.put(k, &text, slot, Ttl::Keep);
                Reply::Int(sum)
            }
            Command::GetDel(k) => {
                let old = match self.value(k) {
                    Ok(old) => old,
                    Err(e) => return Reply::Error(e),
                };
                self.remove_at(k, slot, ChangeKind::Del);
                Reply::Value(old)
            }
            Command::DelIfEq(k, v) => {
                let matches = match self.value(k) {
                    Ok(old) => old.is_some_and(|old| old == v),
                    Err(e) => return Reply::Error(e),
                };
                Reply::Int(i64::from(
                    matches && self.remove_at(k, slot, ChangeKind::Del),
                ))
            }
            Command::Version(k) => match self.map.get(k) {
                Some(item) => Reply::Int(i64::try_from(item.version()).unwrap_or(i64::MAX)),
                None => Reply::Value(None),
            },
            Command::Multi(cmds) => {
                Reply::Multi(cmds.iter().map(|c| self.execute(slot, c)).collect())
            }
            Command::Watched { versions, cmds } => {
                let unchanged = versions
                    .iter()
                    .all(|(k, v)| self.map.get(k).map(Item::version) == *v);
                if !unchanged {
                    return Reply::Value(None);
                }
                Reply::Multi(cmds.iter().map(|c| self.execute(slot, c)).collect())
            }
            Command::Clock { now_ms, expire } => {
                self.expiry.advance(*now_ms);
                for k in expire {
                    if self.expiry.is_due(k) {
                        self.remove_at(k, slot, ChangeKind::Expired);
                    }
                }
                Reply::Ok
            }
            Command::Expire { key, ttl, cond } => self.expire(slot, key, *ttl, *cond),
            Command::Ttl(key) => Reply::Int(match self.expiry.deadline(key) {
                _ if !self.map.contains_key(key) => -2,
                None => -1,
                Some(at) => i64::try_from(at.saturating_sub(self.expiry.now())).unwrap_or(i64::MAX),
            }),
            Command::LLen(_)
            | Command::LRange { .. }
            | Command::LIndex { .. }
            | Command::LPos(_)
            | Command::Type(_) => self.read_list(cmd),
            Command::Push { .. }
            | Command::Pop { .. }
            | Command::PopFirst { .. }
            | Command::LMove(_)
            | Command::LRem(_)
            | Command::LSet(_)
            | Command::LInsert(_)
            | Command::LTrim { .. } => self.execute_list(slot, cmd),
            Command::Publish { channel, message } => self.publish(slot, channel, message),
        }
    }

    /// `PUBLISH`: reported for the driver to deliver; no state changes.
    fn publish(&mut self, slot: Slot, channel: &Bytes, message: &Bytes) -> Reply {
        if let Some(events) = self.events.as_deref_mut() {
            events.push(Event::Message {
                slot,
                channel: channel.clone(),
                message: message.clone(),
            });
        }
        Reply::Ok
    }

    /// `EXPIRE` and its kin: 1 if the deadline changed, else 0.
    fn expire(&mut self, slot: Slot, key: &[u8], ttl: Ttl, cond: ExpireIf) -> Reply {
        if !self.map.contains_key(key) {
            return Reply::Int(0);
        }
        let had = self.expiry.deadline(key);
        match self.expiry.change(key, ttl, cond) {
            None | Some(Change::Keep) => Reply::Int(0),
            Some(Change::Remove) => {
                Reply::Int(i64::from(self.remove_at(key, slot, ChangeKind::Expired)))
            }
            // PERSIST answers 0 for a key that had no deadline.
            Some(Change::To(None)) if had.is_none() => Reply::Int(0),
            Some(Change::To(d)) => {
                self.expiry.set(key, d);
                Reply::Int(1)
            }
        }
    }
}

/// A stored value read as Redis reads a counter: base-10, optional `-`, no `+`, no
/// spaces, no leading zeros, at most 20 bytes, within `i64`.
fn parse_i64(v: &[u8]) -> Option<i64> {
    const DIGITS_MAX: usize = 20;
    if v.is_empty() || v.len() > DIGITS_MAX {
        return None;
    }
    let digits = v.strip_prefix(b"-").unwrap_or(v);
    let leading_zero = digits.len() > 1 && digits[0] == b'0';
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || leading_zero || v == b"-0" {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
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
            .rebuild_full(self.map.iter().map(|i| (i.key(), i.entry_ref())));
    }

    /// Installs an entry found by anti-entropy repair (see `merkle::repair_verdict`);
    /// refuses, returning false, to replace an entry of the same or a newer version.
    pub fn install(&mut self, key: Bytes, entry: Entry) -> bool {
        if self
            .map
            .get(&key)
            .is_some_and(|i| i.version() >= entry.version)
        {
            return false;
        }
        self.force_local(key, entry);
        true
    }

    /// Debug only: overwrites a key whatever its version, keeping the tree in step.
    /// Creates divergence between replicas on purpose (`COREPAX.DEBUG SETLOCAL`).
    pub fn force_local(&mut self, key: Bytes, entry: Entry) {
        let old = self.map.put_item(Item::with_kind(
            &key,
            &entry.value,
            entry.version,
            entry.kind,
        ));
        self.merkle.update(
            &key,
            old.as_ref().map(Item::entry_ref),
            Some(entry.entry_ref()),
        );
    }
}

mod freeze;
mod lists;
mod map;
mod prefetch;
mod read;
mod scan;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_freeze;
#[cfg(test)]
mod tests_grow;
#[cfg(test)]
pub(crate) mod tests_lists;
#[cfg(test)]
mod tests_lists_edit;
#[cfg(test)]
mod tests_lists_o1;
