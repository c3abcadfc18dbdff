//! Digest reads and read repair: what a replica reports about a key, and how the reader
//! decides from a quorum of reports. Pure functions; the replica does the messaging.
//!
//! Why it is linearizable (after Paxos Quorum Reads, Charapko et al. 2019): a write that was
//! acknowledged before the read started was accepted by a majority, so at least one member
//! of the read's quorum holds it, either applied (its version, or its applied index if the
//! key is now absent, is at least the write's slot) or accepted and not yet applied (its
//! `pending` slot is at least the write's slot). The read's target `T` is the largest of
//! those numbers over the quorum, and the answer comes from a replica that has applied
//! every slot up to `T`, at a moment after the read started.
//!
//! The digest saves bytes: only one copy of the value crosses the network, and only when
//! the local copy is not the answer.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::kv::{Entry, EntryRef};
use super::types::Slot;

/// One replica's report on one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    /// xxh3 of the value (a list's [`crate::protocol::list::List::value_hash`]) and its
    /// version; [`ABSENT`] when the key does not exist.
    pub digest: u64,
    /// The slot that last wrote the key; for an absent key, the replica's applied index
    /// (a delete at any slot up to there would look the same).
    pub version: Slot,
    /// The newest slot above the applied index with a write to the key (0 if none).
    pub pending: Slot,
}

/// The digest of a key that does not exist.
pub const ABSENT: u64 = 0;

/// The digest of a stored entry.
pub fn digest(entry: EntryRef<'_>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(&entry.version.to_le_bytes());
    match entry.value {
        // A list by its hash (O(1) to keep current): the list module's doc.
        super::item::ValueRef::Bytes(b) if entry.kind == super::item::Kind::String => h.update(b),
        _ => {
            h.update(&entry.value_hash().to_le_bytes());
            h.update(entry.kind.name().as_bytes());
        }
    }
    // Never ABSENT: an existing key must not look deleted.
    h.digest().max(1)
}

/// A replica's report on the keys of one read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Every slot up to here is applied at the reporting replica.
    pub applied: Slot,
    /// One report per key, in the read's key order.
    pub keys: Vec<KeyView>,
    /// The entries themselves, when they were asked for (full quorum reads and fetches).
    pub entries: Option<Vec<Option<Entry>>>,
}

/// The slot every answer must have applied: the newest write any view knows of.
pub fn target(views: &[View]) -> Slot {
    views.iter().map(View::target).max().unwrap_or(0)
}

impl View {
    /// The newest write to the read's keys this view knows of.
    fn target(&self) -> Slot {
        self.keys
            .iter()
            .map(|k| k.version.max(k.pending))
            .max()
            .unwrap_or(0)
    }
}

/// What the reader does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Answer from the local state machine: it is fresh and agrees with the quorum.
    Local,
    /// Answer with view `i`'s entries (fetch them first if the view has none).
    From(usize),
    /// No member has applied enough yet: wait until the local replica applied this slot.
    Wait(Slot),
}

/// Decides a read from the quorum's views; `views[0]` is the local one.
///
/// The local copy answers when it has applied the target and no other member shows a
/// newer version of a key the local replica should already have (a diverged local copy).
/// Otherwise the freshest other member that has applied the target answers.
pub fn plan(views: &[View]) -> Plan {
    let target = target(views);
    let local = &views[0];
    if local.applied >= target && !diverged(local, views) {
        return Plan::Local;
    }
    views
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, v)| v.applied >= target && !diverged(v, views))
        .max_by_key(|(_, v)| v.applied)
        .map_or(Plan::Wait(target), |(i, _)| Plan::From(i))
}

/// True when some view shows a version of a key that `v` has applied past but lacks.
fn diverged(v: &View, views: &[View]) -> bool {
    views.iter().any(|other| {
        other.keys.iter().zip(&v.keys).any(|(theirs, ours)| {
            theirs.digest != ABSENT
                && ours.digest != ABSENT
                && theirs.version > ours.version
                && v.applied >= theirs.version
        })
    })
}

/// True when the views do not all report the same digests.
pub fn mismatch(views: &[View]) -> bool {
    views.iter().any(|v| {
        v.keys
            .iter()
            .zip(&views[0].keys)
            .any(|(a, b)| a.digest != b.digest)
    })
}

/// Entries to install at the replica that sent `view`, given the answer's `keys` and
/// `entries`: keys it holds at an older version although it applied the newer one, which
/// only a lost or damaged copy explains. Absent keys are never recreated (a delete looks
/// the same), and a newer copy is never replaced.
pub fn repairs(view: &View, keys: &[Bytes], entries: &[Option<Entry>]) -> Vec<(Bytes, Entry)> {
    let mut out: Vec<(Bytes, Entry)> = Vec::new();
    for ((key, theirs), answer) in keys.iter().zip(&view.keys).zip(entries) {
        let Some(e) = answer else { continue };
        if theirs.digest != ABSENT
            && theirs.version < e.version
            && view.applied >= e.version
            && !out.iter().any(|(k, _)| k == key)
        {
            out.push((key.clone(), e.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &str, version: Slot) -> Entry {
        Entry {
            value: Bytes::copy_from_slice(v.as_bytes()),
            version,
            kind: crate::protocol::item::Kind::String,
        }
    }

    fn view(applied: Slot, keys: &[(Option<&Entry>, Slot)]) -> View {
        View {
            applied,
            keys: keys
                .iter()
                .map(|(e, pending)| KeyView {
                    digest: e.map_or(ABSENT, |e| digest(e.entry_ref())),
                    version: e.map_or(applied, |e| e.version),
                    pending: *pending,
                })
                .collect(),
            entries: None,
        }
    }

    #[test]
    fn agreeing_quorum_answers_locally() {
        let e = entry("x", 4);
        let views = [view(9, &[(Some(&e), 0)]), view(7, &[(Some(&e), 0)])];
        assert_eq!(plan(&views), Plan::Local);
        assert!(!mismatch(&views));
    }

    #[test]
    fn a_pending_write_elsewhere_makes_the_reader_wait_or_fetch() {
        let e = entry("x", 4);
        // The peer accepted a write to the key at slot 12 that nobody here has applied.
        let views = [view(10, &[(Some(&e), 0)]), view(10, &[(Some(&e), 12)])];
        assert_eq!(plan(&views), Plan::Wait(12));
        // A peer that already applied it answers instead.
        let newer = entry("y", 12);
        let views = [view(10, &[(Some(&e), 0)]), view(13, &[(Some(&newer), 0)])];
        assert_eq!(plan(&views), Plan::From(1));
        assert!(mismatch(&views));
    }

    #[test]
    fn an_absent_key_needs_the_reporters_applied_index() {
        // The peer deleted the key at some slot up to 20; the local copy at 15 is stale.
        let e = entry("x", 4);
        let views = [view(15, &[(Some(&e), 0)]), view(20, &[(None, 0)])];
        assert_eq!(plan(&views), Plan::From(1));
        let views = [view(25, &[(Some(&e), 0)]), view(20, &[(None, 0)])];
        assert_eq!(plan(&views), Plan::Local);
    }

    #[test]
    fn a_diverged_local_copy_is_not_the_answer_and_gets_repaired() {
        // The local replica applied slot 30 yet holds the key at version 0 (damaged).
        let bad = entry("old", 0);
        let good = entry("new", 8);
        let views = [view(30, &[(Some(&bad), 0)]), view(29, &[(Some(&good), 0)])];
        assert_eq!(plan(&views), Plan::From(1));
        let key = Bytes::from_static(b"k");
        let fix = repairs(&views[0], std::slice::from_ref(&key), &[Some(good.clone())]);
        assert_eq!(fix, vec![(key.clone(), good.clone())]);
        // A replica that simply has not applied slot 8 yet is lagging, not damaged.
        let lagging = view(7, &[(Some(&bad), 0)]);
        assert!(repairs(&lagging, std::slice::from_ref(&key), &[Some(good.clone())]).is_empty());
        // A replica without the key may have deleted it: never recreated.
        let gone = view(30, &[(None, 0)]);
        assert!(repairs(&gone, &[key], &[Some(good)]).is_empty());
    }
}
