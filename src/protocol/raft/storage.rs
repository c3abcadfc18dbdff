//! What a Raft replica persists, and how it comes back: records (term and vote, log
//! entries), recovery from a snapshot and the records after it, snapshots and compaction.
//!
//! A replica whose storage lost synced records in the middle of its log (the WAL reports
//! it) comes back as a learner that does not vote until it caught up (`recovery.rs`).

use serde::{Deserialize, Serialize};

use super::Replica;
use super::log::LogEntry;
use crate::config::ProtocolConfig;
use crate::protocol::kv::{KvState, Request};
use crate::protocol::message::{Batch, Record, batch_memory_bytes};
use crate::protocol::types::{ReplicaId, Slot};

/// What a Raft replica writes to its log before it relies on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftRecord {
    /// The replica's term and its vote in that term.
    Vote {
        /// The term.
        term: u64,
        /// Who it voted for, if anyone.
        voted_for: Option<ReplicaId>,
    },
    /// The entry at `index`; replayed, it replaces that entry and every one after it (a
    /// follower overwrites a conflicting suffix this way).
    Entry {
        /// Its index.
        index: Slot,
        /// The term it was created in.
        term: u64,
        /// Its commands.
        batch: Batch,
    },
    /// The restart check found this storage older than what peers saw the replica
    /// acknowledge (`stale.rs`): recovery makes it a learner again, as after lost
    /// records, until it caught up. The snapshot that ends that catch-up drops it with
    /// the records before it. Last, so older records keep their encoding.
    StaleData,
}

/// A Raft replica's state at its applied index: what recovery starts from instead of the
/// records before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every entry up to here is applied in `kv`.
    pub last_included: Slot,
    /// The term of the entry at `last_included`.
    pub last_term: u64,
    /// The replica's term when it was taken.
    pub term: u64,
    /// Its vote in that term.
    pub voted_for: Option<ReplicaId>,
    /// The state machine.
    pub kv: KvState,
    /// The log after `last_included`, in order: (term, batch).
    pub tail: Vec<(u64, Batch)>,
}

/// An upper bound of the WAL record that carries `batch`.
pub(super) fn batch_record_bytes_max(batch: &Batch) -> usize {
    let requests: usize = batch.iter().map(Request::encoded_bytes_max).sum();
    requests + crate::limits::RECORD_OVERHEAD_BYTES
}

impl Replica {
    /// A replica restarted from its latest snapshot, if any, and the durable records
    /// written after it, in order. Term, vote and log survive; the commit index restarts
    /// at the snapshot (the leader tells the rest). With `forgot_records` (storage lost
    /// records among them) it keeps the snapshot's log, the highest term any record names
    /// and the last vote in it, and rejoins as a learner (`recovery.rs`); so does a replica
    /// whose records hold a `StaleData` mark (`stale.rs`), with its whole log.
    pub fn recover(
        cfg: ProtocolConfig,
        id: ReplicaId,
        seed: u64,
        snapshot: Option<Snapshot>,
        records: impl IntoIterator<Item = Record>,
        forgot_records: bool,
    ) -> Replica {
        let mut r = Replica::new(cfg, id, seed);
        let mut stale_mark = false;
        if let Some(s) = snapshot {
            r.term = s.term;
            r.voted_for = s.voted_for;
            r.log.reset_to(s.last_included, s.last_term);
            r.kv.import(s.kv);
            r.commit = s.last_included;
            r.applied = s.last_included;
            for (term, batch) in s.tail {
                r.log.push(LogEntry { term, batch });
            }
        }
        for record in records {
            match record {
                Record::Raft(RaftRecord::Vote { term, voted_for }) => {
                    if term >= r.term {
                        r.term = term;
                        r.voted_for = voted_for;
                    }
                }
                Record::Raft(RaftRecord::Entry { term, .. }) if forgot_records => {
                    // Entries after a lost record may mix two leaders' logs: the leader
                    // sends them again. Their terms were adopted all the same.
                    if term > r.term {
                        r.term = term;
                        r.voted_for = None;
                    }
                }
                Record::Raft(RaftRecord::Entry { index, term, batch }) => {
                    r.replay_entry(index, term, batch)
                }
                Record::Raft(RaftRecord::StaleData) => stale_mark = true,
                // Another protocol's record: never written by a Raft replica.
                _ => r.stats.messages_ignored += 1,
            }
        }
        // A replica found stale before it crashed stays a learner: its peers may since
        // have forgotten what they saw it acknowledge, so a new check could miss it.
        if forgot_records || stale_mark {
            r.recovering = Some(super::recovery::Recovering::default());
        }
        r
    }

    /// Replays an entry record: it replaces the entry at `index` and all after it.
    fn replay_entry(&mut self, index: Slot, term: u64, batch: Batch) {
        if index <= self.log.base() || index > self.log.last_index() + 1 {
            // Covered by the snapshot, or after a gap no correct log has.
            return;
        }
        self.log.truncate_after(index - 1);
        self.log.push(LogEntry { term, batch });
    }

    /// The state at the applied index, with term, vote and the log after it: enough to
    /// replace every record written so far.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with(self.kv.export())
    }

    /// [`Replica::snapshot`] with the state machine's state `kv`, taken now.
    pub(super) fn snapshot_with(&self, kv: KvState) -> Snapshot {
        Snapshot {
            last_included: self.applied,
            last_term: self.log.term_at(self.applied).expect("applied is held"),
            term: self.term,
            voted_for: self.voted_for,
            kv,
            tail: self
                .log
                .iter_from(self.applied + 1)
                .map(|(_, e)| (e.term, e.batch.clone()))
                .collect(),
        }
    }

    /// Forgets log entries up to `upto` (at most the applied index). Followers that need
    /// them later get a snapshot instead.
    pub fn compact(&mut self, upto: Slot) {
        let upto = upto.min(self.applied);
        let dropped: u64 = (self.log.base() + 1..=upto)
            .filter_map(|i| self.log.get(i))
            .map(|e| batch_memory_bytes(&e.batch))
            .sum();
        self.log.compact(upto);
        self.applied_log_bytes = self.applied_log_bytes.saturating_sub(dropped);
    }

    /// Drops the oldest applied entries from memory while they hold more than
    /// `log_retain_bytes` ([`batch_memory_bytes`]), as a compaction would: a follower that needs
    /// them later gets a snapshot. The WAL keeps their records until the next snapshot.
    pub(super) fn trim_applied_log(&mut self) {
        let limit = self.cfg.log_retain_bytes;
        if limit == 0 || self.applied_log_bytes <= limit {
            return;
        }
        let mut bytes = self.applied_log_bytes;
        let mut upto = self.log.base();
        let keep_after = self.snapshot_out_at().unwrap_or(self.applied);
        while bytes > limit && upto < self.applied.min(keep_after) {
            upto += 1;
            let e = self
                .log
                .get(upto)
                .expect("applied entries after the base are held");
            bytes -= batch_memory_bytes(&e.batch);
        }
        self.stats.log_slots_trimmed += upto - self.log.base();
        self.log.compact(upto);
        self.applied_log_bytes = bytes;
    }

    /// Entries held in memory (after the compacted base).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }
}
