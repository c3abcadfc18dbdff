//! The Raft log: entries after a compacted base, each with the term it was created in.

use std::collections::VecDeque;

use crate::protocol::message::Batch;
use crate::protocol::types::Slot;

/// One log entry.
#[derive(Clone, Debug)]
pub(super) struct LogEntry {
    /// The term of the leader that created it.
    pub(super) term: u64,
    /// Its commands.
    pub(super) batch: Batch,
}

/// Entries `base + 1 ..= last_index()`; everything up to `base` is in the state machine
/// (a snapshot), and `base_term` is the term of the entry at `base`.
#[derive(Clone, Debug, Default)]
pub(super) struct Log {
    base: Slot,
    base_term: u64,
    entries: VecDeque<LogEntry>,
}

impl Log {
    /// The index of the last entry (the base if there is none after it).
    pub(super) fn last_index(&self) -> Slot {
        self.base + self.entries.len() as Slot
    }

    /// The term of the last entry.
    pub(super) fn last_term(&self) -> u64 {
        self.entries.back().map_or(self.base_term, |e| e.term)
    }

    /// The compacted prefix ends here.
    pub(super) fn base(&self) -> Slot {
        self.base
    }

    /// The term of the entry at `index`, if this log knows it (the base's included).
    pub(super) fn term_at(&self, index: Slot) -> Option<u64> {
        if index == self.base {
            return Some(self.base_term);
        }
        self.get(index).map(|e| e.term)
    }

    /// The entry at `index`, if it is held (after the base, up to the last).
    pub(super) fn get(&self, index: Slot) -> Option<&LogEntry> {
        let offset = index.checked_sub(self.base + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Entries from `from` on (after the base), in order. Starts there at once (a skip
    /// over the entries before would cost the log's length per append sent).
    pub(super) fn iter_from(&self, from: Slot) -> impl Iterator<Item = (Slot, &LogEntry)> {
        let skip = from.saturating_sub(self.base + 1);
        let start = usize::try_from(skip).map_or(self.entries.len(), |s| s.min(self.entries.len()));
        (self.base + 1 + start as Slot..).zip(self.entries.range(start..))
    }

    /// Appends `entry` at `last_index() + 1`.
    pub(super) fn push(&mut self, entry: LogEntry) {
        self.entries.push_back(entry);
    }

    /// Drops every entry after `index` (at least the base).
    pub(super) fn truncate_after(&mut self, index: Slot) {
        let keep = index.saturating_sub(self.base) as usize;
        self.entries.truncate(keep);
    }

    /// The first index of the run of entries with `term` that ends at `index` (never at or
    /// below the base: those are committed and match every leader's).
    pub(super) fn first_index_of_term_run(&self, index: Slot) -> Slot {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let mut first = index;
        while first > self.base + 1 && self.term_at(first - 1) == Some(term) {
            first -= 1;
        }
        first.max(self.base + 1)
    }

    /// The last index holding an entry of `term`, if any after the base.
    pub(super) fn last_index_of_term(&self, term: u64) -> Option<Slot> {
        // Terms never decrease along a log: scan back until they fall below `term`.
        let mut index = self.last_index();
        while index > self.base {
            let t = self.term_at(index)?;
            if t == term {
                return Some(index);
            }
            if t < term {
                return None;
            }
            index -= 1;
        }
        None
    }

    /// Forgets entries up to `upto` (at most the last index): a snapshot covers them.
    pub(super) fn compact(&mut self, upto: Slot) {
        if upto <= self.base || upto > self.last_index() {
            return;
        }
        let term = self.term_at(upto).expect("held entry");
        let drop = (upto - self.base) as usize;
        self.entries.drain(..drop);
        self.base = upto;
        self.base_term = term;
    }

    /// Starts over after a snapshot at `base` (of `base_term`): keeps the entries after it
    /// only if the entry at `base` matches, else empties the log.
    pub(super) fn reset_to(&mut self, base: Slot, base_term: u64) {
        if base < self.last_index() && self.term_at(base) == Some(base_term) {
            self.compact(base);
            return;
        }
        self.entries.clear();
        self.base = base;
        self.base_term = base_term;
    }

    /// Entries held (after the base).
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iter_from_starts_at_its_index_after_a_compaction() {
        let mut log = Log::default();
        for term in [1, 1, 2, 2, 3] {
            log.push(LogEntry {
                term,
                batch: std::sync::Arc::from(Vec::new()),
            });
        }
        log.compact(2);
        let from = |i| {
            log.iter_from(i)
                .map(|(i, e)| (i, e.term))
                .collect::<Vec<_>>()
        };
        assert_eq!(from(4), [(4, 2), (5, 3)]);
        assert_eq!(
            from(1),
            [(3, 2), (4, 2), (5, 3)],
            "before the base: from the base on"
        );
        assert_eq!(from(6), []);
        assert_eq!(from(Slot::MAX), []);
    }
}
