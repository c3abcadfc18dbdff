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

// What a retained change costs, besides its key's own copy (the docs say so).
const _: () = assert!(std::mem::size_of::<Change>() == 48);

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

/// The events applying the log records until the driver takes them, with the changed
/// keys copied into one buffer per step instead of an allocation per key: a change's key
/// becomes a slice of that buffer when the events are taken. Every write of every replica
/// reports its key (the history keeps it, watched or not), so this is a write's cost.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    events: Vec<Event>,
    /// The keys of the changes in `events`, one after the other.
    keys: Vec<u8>,
    /// Each change in `events`, in order: its index there and where its key ends in `keys`.
    changes: Vec<(usize, usize)>,
}

impl Recorder {
    /// Records that `key` changed at `version`.
    pub fn change(&mut self, key: &[u8], version: Slot, kind: ChangeKind) {
        self.keys.extend_from_slice(key);
        self.changes.push((self.events.len(), self.keys.len()));
        self.events.push(Event::Change(Change {
            key: Bytes::new(),
            version,
            kind,
        }));
    }

    /// Records another event.
    pub fn push(&mut self, event: Event) {
        debug_assert!(
            !matches!(event, Event::Change(_)),
            "changes go through `change`"
        );
        self.events.push(event);
    }

    /// The events recorded since the last call, in order. The keys of one call's changes
    /// share one buffer, freed when the last of them is: whoever keeps a change long and
    /// alone (a watcher's mailbox) copies its key.
    pub fn take(&mut self) -> Vec<Event> {
        if self.events.is_empty() {
            return Vec::new();
        }
        // The history keeps these keys, each holding the buffer: it starts empty each
        // time (grown by doubling, it is at most twice what it holds; sized after a large
        // step, every small one after would hold that much).
        let keys = Bytes::from(std::mem::take(&mut self.keys));
        let mut start = 0;
        for (i, end) in self.changes.drain(..) {
            if let Event::Change(c) = &mut self.events[i] {
                c.key = keys.slice(start..end);
            }
            start = end;
        }
        // The next step's events start at this step's size, not grown one by one.
        let room = Vec::with_capacity(self.events.capacity());
        std::mem::replace(&mut self.events, room)
    }
}

impl Change {
    /// The change with its key in an allocation of its own (not sharing another's).
    pub fn detached(&self) -> Change {
        Change {
            key: Bytes::copy_from_slice(&self.key),
            ..*self
        }
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
/// after the whole slot.
#[derive(Clone, Debug)]
pub struct History {
    changes: VecDeque<Change>,
    max: usize,
    floor: Slot,
    /// The newest slot pushed.
    newest: Slot,
}

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

    /// Records a change; versions never go back (a change older than the newest, which
    /// the log never produces, is ignored).
    pub fn push(&mut self, change: Change) {
        if change.version < self.newest || change.version <= self.floor {
            return;
        }
        self.newest = change.version;
        if self.max == 0 {
            self.floor = change.version;
            return;
        }
        self.changes.push_back(change);
        while self.changes.len() > self.max {
            let gone = self.changes.pop_front().expect("longer than max");
            // Other changes of its slot may remain, but no longer all of them.
            self.floor = self.floor.max(gone.version);
        }
        debug_assert!(self.changes.front().is_none_or(|c| c.version >= self.floor));
    }

    /// Forgets every change: the state jumped to `floor` without reporting them.
    pub fn reset(&mut self, floor: Slot) {
        self.changes.clear();
        self.floor = self.floor.max(floor);
        self.newest = self.newest.max(self.floor);
    }

    /// The retained changes after version `after` whose key passes `wanted`, oldest
    /// first; [`Compacted`] if changes after it may have been dropped.
    pub fn since(
        &self,
        after: Slot,
        mut wanted: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<Change>, Compacted> {
        if after < self.floor {
            return Err(Compacted { oldest: self.floor });
        }
        let start = self.changes.partition_point(|c| c.version <= after);
        Ok(coalesced(
            self.changes
                .range(start..)
                .filter(|c| wanted(&c.key))
                .map(Change::detached)
                .collect(),
        ))
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
    fn a_detached_change_has_its_own_copy_of_the_key() {
        let buffer = Bytes::from_static(b"abcdef");
        let c = Change {
            key: buffer.slice(1..3),
            version: 9,
            kind: ChangeKind::Set,
        };
        let d = c.detached();
        assert_eq!(d, c);
        assert_ne!(d.key.as_ptr(), c.key.as_ptr());
        let mut h = History::new(10, 0);
        h.push(c.clone());
        let replay = h.since(0, |_| true).unwrap();
        assert_eq!(replay, vec![c.clone()]);
        assert_ne!(
            replay[0].key.as_ptr(),
            c.key.as_ptr(),
            "a replay is copied out"
        );
    }

    #[test]
    fn keeps_order_and_answers_changes_after_a_version() {
        let mut h = History::new(100, 0);
        h.push(ch("a", 1, ChangeKind::Set));
        h.push(ch("b", 2, ChangeKind::Set));
        h.push(ch("a", 3, ChangeKind::Del));
        h.push(ch("a", 5, ChangeKind::List));
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
        h.push(ch("a", 4, ChangeKind::Set));
        h.push(ch("b", 4, ChangeKind::Set));
        h.push(ch("a", 4, ChangeKind::Del));
        let all = h.since(0, |_| true).unwrap();
        assert_eq!(keys(&all), vec![("a".into(), 4), ("b".into(), 4)]);
        assert_eq!(all[0].kind, ChangeKind::Del);
        h.push(ch("a", 5, ChangeKind::Set));
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
            h.push(ch("k", v, ChangeKind::Set));
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
        h.push(ch("a", 1, ChangeKind::Set));
        h.push(ch("b", 1, ChangeKind::Set));
        h.push(ch("c", 2, ChangeKind::Set));
        // `a` at 1 is gone while `b` at 1 stays: resuming after 0 would miss `a`.
        assert_eq!(h.since(0, |_| true), Err(Compacted { oldest: 1 }));
        assert_eq!(keys(&h.since(1, |_| true).unwrap()), vec![("c".into(), 2)]);
    }

    #[test]
    fn a_reset_forgets_everything_before_it() {
        let mut h = History::new(10, 0);
        h.push(ch("a", 1, ChangeKind::Set));
        h.reset(40);
        assert!(h.is_empty());
        assert_eq!(h.since(1, |_| true), Err(Compacted { oldest: 40 }));
        h.push(ch("a", 30, ChangeKind::Set));
        assert!(h.is_empty(), "older than the reset: ignored");
        h.push(ch("a", 41, ChangeKind::Set));
        assert_eq!(
            keys(&h.since(40, |_| true).unwrap()),
            vec![("a".into(), 41)]
        );
    }

    #[test]
    fn with_no_room_it_keeps_nothing_and_moves_its_floor() {
        let mut h = History::new(0, 0);
        h.push(ch("a", 3, ChangeKind::Set));
        assert!(h.is_empty());
        assert_eq!(h.since(2, |_| true), Err(Compacted { oldest: 3 }));
        assert!(h.since(3, |_| true).unwrap().is_empty());
    }
}
