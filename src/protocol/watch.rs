//! What the state machine reports as it applies the log, for clients that wait on it:
//! messages published through the log ([`Event::Message`]) and key changes
//! ([`Change`]), and the bounded history of recent changes that a key watch resumes from
//! ([`History`], after etcd's watch from a revision).
//!
//! Events are reported only when the log applies an entry (never for a snapshot install,
//! which reports [`Event::Reset`] instead), in apply order, so every replica reports the
//! same events in the same order for the same log.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::types::{MapHasher, Slot};

/// How a key changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// It holds a string written at the change's version.
    Set,
    /// It holds a list written at the change's version.
    List,
    /// A command removed it.
    Del,
    /// The log expired it (its deadline passed).
    Expired,
}

impl ChangeKind {
    /// The name clients see.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Set => "set",
            ChangeKind::List => "list",
            ChangeKind::Del => "del",
            ChangeKind::Expired => "expired",
        }
    }
}

/// One key's change, at the slot that made it (what `COREPAX.VERSION` answers for a key
/// that was written there).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    /// The key.
    pub key: Bytes,
    /// The slot of the entry that changed it.
    pub version: Slot,
    /// How.
    pub kind: ChangeKind,
}

/// Something the state machine did that clients may wait for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `PUBLISH channel message` was applied at `slot`.
    Message {
        /// The slot that carried it.
        slot: Slot,
        /// The channel.
        channel: Bytes,
        /// The message.
        message: Bytes,
    },
    /// A key changed.
    Change(Change),
    /// The state was replaced by a snapshot: changes up to it were never reported here.
    Reset,
}

/// The events applying the log records until the driver takes them. Every write of every
/// replica reports its key (the history keeps it, watched or not), so recording is a
/// write's cost: a change is its key appended to one buffer and 24 bytes, no [`Event`]
/// and no allocation of its own; the driver reads them borrowed ([`Recorder::drain`]).
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// The keys of the changes, one after the other.
    keys: Vec<u8>,
    /// The changes, in order, each with where its key ends in `keys`.
    changes: Vec<Recorded>,
    /// The other events, each with the number of changes recorded before it.
    others: Vec<(usize, Event)>,
}

/// One recorded change (its key in [`Recorder::keys`]).
#[derive(Clone, Copy, Debug)]
struct Recorded {
    version: Slot,
    key_end: usize,
    kind: ChangeKind,
}

/// Bytes of keys a [`Recorder`] keeps room for between steps: a larger step's buffer (a
/// catch-up applying many slots at once) is given back, not held.
const RECORDER_KEEP_BYTES: usize = 1 << 20;

/// An event as [`Recorder::drain`] hands it over: a change with its key borrowed.
#[derive(Debug, PartialEq, Eq)]
pub enum EventRef<'a> {
    /// A key changed.
    Change {
        /// The key.
        key: &'a [u8],
        /// The slot of the entry that changed it.
        version: Slot,
        /// How.
        kind: ChangeKind,
    },
    /// Any other event ([`Event::Message`], [`Event::Reset`]).
    Other(Event),
}

impl Recorder {
    /// Records that `key` changed at `version`.
    pub fn change(&mut self, key: &[u8], version: Slot, kind: ChangeKind) {
        self.keys.extend_from_slice(key);
        self.changes.push(Recorded {
            version,
            key_end: self.keys.len(),
            kind,
        });
    }

    /// Records another event.
    pub fn push(&mut self, event: Event) {
        debug_assert!(
            !matches!(event, Event::Change(_)),
            "changes go through `change`"
        );
        self.others.push((self.changes.len(), event));
    }

    /// Hands the events recorded since the last call to `f`, in order, and forgets them
    /// (keeping the buffers for the next step).
    pub fn drain(&mut self, mut f: impl FnMut(EventRef<'_>)) {
        let mut others = self.others.drain(..).peekable();
        let mut start = 0;
        for (i, c) in self.changes.iter().enumerate() {
            while let Some((_, e)) = others.next_if(|(before, _)| *before == i) {
                f(EventRef::Other(e));
            }
            let end = c.key_end;
            f(EventRef::Change {
                key: &self.keys[start..end],
                version: c.version,
                kind: c.kind,
            });
            start = end;
        }
        others.for_each(|(_, e)| f(EventRef::Other(e)));
        self.changes.clear();
        self.keys.clear();
        if self.keys.capacity() > RECORDER_KEEP_BYTES {
            self.keys = Vec::new();
            self.changes = Vec::new();
        }
    }

    /// The events recorded since the last call, in order, owned: each change's key a
    /// [`Bytes`] slice of one copy of this call's keys.
    pub fn take(&mut self) -> Vec<Event> {
        let keys = Bytes::copy_from_slice(&self.keys);
        let mut at = 0; // The changes' keys come in order, one after the other.
        let mut events = Vec::with_capacity(self.changes.len() + self.others.len());
        self.drain(|e| {
            events.push(match e {
                EventRef::Change { key, version, kind } => {
                    at += key.len();
                    Event::Change(Change {
                        key: keys.slice(at - key.len()..at),
                        version,
                        kind,
                    })
                }
                EventRef::Other(e) => e,
            })
        });
        events
    }
}

/// Why a watch cannot resume from a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compacted {
    /// The oldest version a watch may resume from: every change after it is retained.
    pub oldest: Slot,
}

impl std::fmt::Display for Compacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "COMPACTED changes at or before version {} are no longer retained on this node: \
             read the keys again and watch FROM a version at or after {}",
            self.oldest, self.oldest
        )
    }
}

/// The last changes a shard applied, oldest first, at most `max` of them: every change
/// with a version above [`History::floor`] is here. A key changed twice in one slot is
/// kept twice (pushing costs no lookup: every write of a node pushes here, watched or
/// not) and answered once, with its last kind ([`coalesced`]): a version names the state
/// after the whole slot. The keys are copied into one ring of bytes, each change takes 16
/// bytes beside it: pushing allocates nothing once the ring has grown, and dropping the
/// oldest frees nothing of its own.
#[derive(Clone, Debug)]
pub struct History {
    changes: VecDeque<Kept>,
    /// The keys of `changes`, in their order.
    keys: VecDeque<u8>,
    max: usize,
    floor: Slot,
    /// The newest slot pushed.
    newest: Slot,
}

/// One change the history keeps (its key in [`History::keys`]).
#[derive(Clone, Copy, Debug)]
struct Kept {
    version: Slot,
    key_len: u32,
    kind: ChangeKind,
}

// What a retained change costs besides its key's bytes (PRIMITIVES.md says so).
const _: () = assert!(std::mem::size_of::<Kept>() == 16);

/// `changes` with a key changed twice in one slot kept once, with its last kind, at the
/// place it was first seen.
pub fn coalesced(changes: Vec<Change>) -> Vec<Change> {
    if changes.len() < 2 {
        return changes;
    }
    let mut at: HashMap<(Bytes, Slot), usize, MapHasher> = HashMap::default();
    let mut out: Vec<Change> = Vec::with_capacity(changes.len());
    for c in changes {
        match at.get(&(c.key.clone(), c.version)) {
            Some(&i) => out[i].kind = c.kind,
            None => {
                at.insert((c.key.clone(), c.version), out.len());
                out.push(c);
            }
        }
    }
    out
}

impl History {
    /// An empty history keeping at most `max` changes, complete after `floor` (the slot
    /// applied when it started: nothing before it was seen).
    pub fn new(max: usize, floor: Slot) -> History {
        History {
            changes: VecDeque::new(),
            keys: VecDeque::new(),
            max,
            floor,
            newest: floor,
        }
    }

    /// Changes it keeps at most.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Every change with a version above this is retained.
    pub fn floor(&self) -> Slot {
        self.floor
    }

    /// Changes retained.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// True when none is retained.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Records that `key` changed at `version`; versions never go back (a change older
    /// than the newest, which the log never produces, is ignored).
    pub fn push(&mut self, key: &[u8], version: Slot, kind: ChangeKind) {
        if version < self.newest || version <= self.floor {
            return;
        }
        self.newest = version;
        if self.max == 0 {
            self.floor = version;
            return;
        }
        let Ok(key_len) = u32::try_from(key.len()) else {
            // No command carries a key of 4 GiB; were one to, a resume could miss it.
            self.reset(version);
            return;
        };
        self.keys.extend(key);
        self.changes.push_back(Kept {
            version,
            key_len,
            kind,
        });
        while self.changes.len() > self.max {
            let gone = self.changes.pop_front().expect("longer than max");
            self.keys.drain(..gone.key_len as usize);
            // Other changes of its slot may remain, but no longer all of them.
            self.floor = self.floor.max(gone.version);
        }
        debug_assert!(self.changes.front().is_none_or(|c| c.version >= self.floor));
    }

    /// Forgets every change: the state jumped to `floor` without reporting them.
    pub fn reset(&mut self, floor: Slot) {
        self.changes.clear();
        self.keys.clear();
        self.floor = self.floor.max(floor);
        self.newest = self.newest.max(self.floor);
    }

    /// The retained changes after version `after` whose key passes `wanted`, oldest
    /// first, each key copied out; [`Compacted`] if changes after it may have been
    /// dropped.
    pub fn since(
        &self,
        after: Slot,
        mut wanted: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<Change>, Compacted> {
        if after < self.floor {
            return Err(Compacted { oldest: self.floor });
        }
        let start = self.changes.partition_point(|c| c.version <= after);
        let mut at: usize = self
            .changes
            .range(..start)
            .map(|c| c.key_len as usize)
            .sum();
        let mut key = Vec::new();
        let mut out = Vec::new();
        for c in self.changes.range(start..) {
            let len = c.key_len as usize;
            key.clear();
            key.extend(self.keys.range(at..at + len));
            at += len;
            if wanted(&key) {
                out.push(Change {
                    key: Bytes::copy_from_slice(&key),
                    version: c.version,
                    kind: c.kind,
                });
            }
        }
        Ok(coalesced(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(key: &str, version: Slot, kind: ChangeKind) -> Change {
        Change {
            key: Bytes::copy_from_slice(key.as_bytes()),
            version,
            kind,
        }
    }

    fn keys(changes: &[Change]) -> Vec<(String, Slot)> {
        changes
            .iter()
            .map(|c| (String::from_utf8_lossy(&c.key).into_owned(), c.version))
            .collect()
    }

    #[test]
    fn recorded_changes_keep_their_keys_and_order_among_other_events() {
        let mut r = Recorder::default();
        assert!(r.take().is_empty());
        r.change(b"alpha", 3, ChangeKind::Set);
        r.push(Event::Reset);
        r.change(b"", 3, ChangeKind::Del);
        r.change(b"be", 4, ChangeKind::List);
        let first = r.take();
        assert_eq!(
            first,
            vec![
                Event::Change(ch("alpha", 3, ChangeKind::Set)),
                Event::Reset,
                Event::Change(ch("", 3, ChangeKind::Del)),
                Event::Change(ch("be", 4, ChangeKind::List)),
            ]
        );
        assert!(r.take().is_empty(), "taken once");
        r.change(b"gamma", 5, ChangeKind::Expired);
        assert_eq!(
            r.take(),
            vec![Event::Change(ch("gamma", 5, ChangeKind::Expired))]
        );
        // The first step's keys are still whole after the next step's were recorded.
        assert_eq!(&first[3], &Event::Change(ch("be", 4, ChangeKind::List)));
    }

    #[test]
    fn a_drain_hands_over_changes_borrowed_in_order_among_other_events() {
        let mut r = Recorder::default();
        r.change(b"alpha", 3, ChangeKind::Set);
        r.push(Event::Reset);
        r.change(b"", 3, ChangeKind::Del);
        r.change(b"be", 4, ChangeKind::List);
        r.push(Event::Reset);
        let mut seen = Vec::new();
        r.drain(|e| {
            seen.push(match e {
                EventRef::Change { key, version, kind } => {
                    format!("{} {version} {}", String::from_utf8_lossy(key), kind.name())
                }
                EventRef::Other(e) => format!("{e:?}"),
            })
        });
        assert_eq!(
            seen,
            vec!["alpha 3 set", "Reset", " 3 del", "be 4 list", "Reset"]
        );
        r.drain(|e| panic!("drained twice: {e:?}"));
        // A step with a large key buffer gives it back; a small one keeps its room.
        r.change(&vec![b'k'; RECORDER_KEEP_BYTES + 1], 4, ChangeKind::Set);
        r.drain(|_| {});
        assert_eq!(r.keys.capacity(), 0, "a large buffer is not held");
        r.change(b"k", 4, ChangeKind::Set);
        r.drain(|_| {});
        assert!(
            r.keys.capacity() > 0,
            "a small one is kept for the next step"
        );
        r.change(b"gamma", 5, ChangeKind::Expired);
        assert_eq!(
            r.take(),
            vec![Event::Change(ch("gamma", 5, ChangeKind::Expired))],
            "the next step starts afresh"
        );
    }

    /// Keys of many lengths, the oldest dropped as new ones come: each change kept still
    /// answers with its own key, whole.
    #[test]
    fn the_ring_of_keys_keeps_each_kept_key_whole() {
        let mut h = History::new(3, 0);
        let key = |v: u64| "k".repeat(v as usize % 7) + &v.to_string();
        for v in 1..=50 {
            h.push(key(v).as_bytes(), v, ChangeKind::Set);
        }
        assert_eq!(
            keys(&h.since(47, |_| true).unwrap()),
            vec![(key(48), 48), (key(49), 49), (key(50), 50)]
        );
        assert_eq!(
            keys(&h.since(48, |k| k == key(50).as_bytes()).unwrap()),
            vec![(key(50), 50)]
        );
        assert_eq!(h.keys.len(), (48..=50).map(|v| key(v).len()).sum::<usize>());
    }

    #[test]
    fn a_replay_is_copied_out() {
        let buffer = Bytes::from_static(b"abcdef");
        let c = Change {
            key: buffer.slice(1..3),
            version: 9,
            kind: ChangeKind::Set,
        };
        let mut h = History::new(10, 0);
        h.push(&c.key, c.version, c.kind);
        let replay = h.since(0, |_| true).unwrap();
        assert_eq!(replay, vec![c.clone()]);
        assert_ne!(replay[0].key.as_ptr(), c.key.as_ptr());
    }

    #[test]
    fn keeps_order_and_answers_changes_after_a_version() {
        let mut h = History::new(100, 0);
        h.push(b"a", 1, ChangeKind::Set);
        h.push(b"b", 2, ChangeKind::Set);
        h.push(b"a", 3, ChangeKind::Del);
        h.push(b"a", 5, ChangeKind::List);
        let all = h.since(0, |_| true).unwrap();
        assert_eq!(
            keys(&all),
            vec![
                ("a".into(), 1),
                ("b".into(), 2),
                ("a".into(), 3),
                ("a".into(), 5)
            ]
        );
        let a_after_1 = h.since(1, |k| k == b"a").unwrap();
        assert_eq!(keys(&a_after_1), vec![("a".into(), 3), ("a".into(), 5)]);
        assert_eq!(a_after_1[0].kind, ChangeKind::Del);
        assert!(h.since(5, |_| true).unwrap().is_empty());
        assert!(h.since(9, |_| true).unwrap().is_empty(), "a future version");
    }

    #[test]
    fn a_key_changed_twice_in_one_slot_is_reported_once_with_its_last_kind() {
        let mut h = History::new(100, 0);
        h.push(b"a", 4, ChangeKind::Set);
        h.push(b"b", 4, ChangeKind::Set);
        h.push(b"a", 4, ChangeKind::Del);
        let all = h.since(0, |_| true).unwrap();
        assert_eq!(keys(&all), vec![("a".into(), 4), ("b".into(), 4)]);
        assert_eq!(all[0].kind, ChangeKind::Del);
        h.push(b"a", 5, ChangeKind::Set);
        let all = h.since(0, |_| true).unwrap();
        assert_eq!(
            keys(&all),
            vec![("a".into(), 4), ("b".into(), 4), ("a".into(), 5)],
            "a new slot is a new change"
        );
    }

    #[test]
    fn beyond_its_bound_it_drops_the_oldest_and_says_so() {
        let mut h = History::new(3, 10);
        assert_eq!(
            h.since(9, |_| true),
            Err(Compacted { oldest: 10 }),
            "before it started"
        );
        for v in 11..=15 {
            h.push(b"k", v, ChangeKind::Set);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.floor(), 12);
        assert_eq!(h.since(11, |_| true), Err(Compacted { oldest: 12 }));
        assert_eq!(
            keys(&h.since(12, |_| true).unwrap()),
            vec![("k".into(), 13), ("k".into(), 14), ("k".into(), 15)]
        );
        let text = Compacted { oldest: 12 }.to_string();
        assert!(
            text.starts_with("COMPACTED") && text.contains("12"),
            "{text}"
        );
    }

    #[test]
    fn a_slot_cut_in_half_by_the_bound_is_compacted_whole() {
        let mut h = History::new(2, 0);
        h.push(b"a", 1, ChangeKind::Set);
        h.push(b"b", 1, ChangeKind::Set);
        h.push(b"c", 2, ChangeKind::Set);
        // `a` at 1 is gone while `b` at 1 stays: resuming after 0 would miss `a`.
        assert_eq!(h.since(0, |_| true), Err(Compacted { oldest: 1 }));
        assert_eq!(keys(&h.since(1, |_| true).unwrap()), vec![("c".into(), 2)]);
    }

    #[test]
    fn a_reset_forgets_everything_before_it() {
        let mut h = History::new(10, 0);
        h.push(b"a", 1, ChangeKind::Set);
        h.reset(40);
        assert!(h.is_empty());
        assert_eq!(h.since(1, |_| true), Err(Compacted { oldest: 40 }));
        h.push(b"a", 30, ChangeKind::Set);
        assert!(h.is_empty(), "older than the reset: ignored");
        h.push(b"a", 41, ChangeKind::Set);
        assert_eq!(
            keys(&h.since(40, |_| true).unwrap()),
            vec![("a".into(), 41)]
        );
    }

    #[test]
    fn with_no_room_it_keeps_nothing_and_moves_its_floor() {
        let mut h = History::new(0, 0);
        h.push(b"a", 3, ChangeKind::Set);
        assert!(h.is_empty());
        assert_eq!(h.since(2, |_| true), Err(Compacted { oldest: 3 }));
        assert!(h.since(3, |_| true).unwrap().is_empty());
    }
}
