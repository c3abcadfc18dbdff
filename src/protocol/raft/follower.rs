//! The follower: the log-matching check, appending and truncating, learning the commit
//! index, applying committed entries, and installing a leader's snapshot.

use super::log::LogEntry;
use super::{AppendOutcome, Msg, RaftRecord, Replica};
use crate::protocol::kv::BuiltState;
use crate::protocol::message::Batch;
use crate::protocol::outbox::Action;
use crate::protocol::types::{Nanos, ReplicaId, Slot};

impl Replica {
    /// An append from the leader of `term`: entries after `prev` = (index, term).
    pub(super) fn on_append(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        term: u64,
        prev: (Slot, u64),
        entries: Vec<(u64, Batch)>,
        commit: Slot,
    ) {
        if term < self.term {
            // A deposed leader: our term tells it.
            let outcome = AppendOutcome::Conflict {
                index: 0,
                term: None,
            };
            let term = self.term;
            self.send(from, Msg::AppendReply { term, outcome });
            return;
        }
        self.heard_leader(now, term, from);
        let (mut prev_index, mut prev_term) = prev;
        let mut entries = entries.into_iter();
        if prev_index < self.log.base() {
            // Those entries are in our snapshot: committed, equal to the leader's.
            let skip = self.log.base() - prev_index;
            for _ in 0..skip {
                if entries.next().is_none() {
                    break;
                }
            }
            prev_index = self.log.base();
            prev_term = self.log.term_at(prev_index).expect("the base");
            if entries.len() == 0 {
                self.answer_append(from, prev_index, commit);
                return;
            }
        }
        match self.log.term_at(prev_index) {
            Some(t) if t == prev_term => {}
            Some(_) => {
                let outcome = AppendOutcome::Conflict {
                    index: self.log.first_index_of_term_run(prev_index),
                    term: self.log.term_at(prev_index),
                };
                let term = self.term;
                self.send(from, Msg::AppendReply { term, outcome });
                return;
            }
            None => {
                let outcome = AppendOutcome::Conflict {
                    index: self.log.last_index() + 1,
                    term: None,
                };
                let term = self.term;
                self.send(from, Msg::AppendReply { term, outcome });
                return;
            }
        }
        let mut index = prev_index;
        for (entry_term, batch) in entries {
            index += 1;
            self.store_entry(index, entry_term, batch);
        }
        self.answer_append(from, index, commit);
    }

    /// Stores the leader's entry at `index`, unless we hold it already; a different entry
    /// there (of another term) and everything after it goes.
    fn store_entry(&mut self, index: Slot, term: u64, batch: Batch) {
        match self.log.term_at(index) {
            Some(t) if t == term => return,
            Some(_) if index <= self.commit => {
                // A committed entry differs from the leader's: impossible in Raft; only a
                // deliberate bug gets here. Keep ours (the checkers see the divergence).
                self.stats.messages_ignored += 1;
                return;
            }
            Some(_) => self.log.truncate_after(index - 1),
            None => {}
        }
        debug_assert_eq!(index, self.log.last_index() + 1);
        self.persist(RaftRecord::Entry {
            index,
            term,
            batch: batch.clone(),
        });
        self.log.push(LogEntry { term, batch });
    }

    /// The log matches the leader's through `match_index`: learn the commit index up to
    /// there and say so once it is durable.
    fn answer_append(&mut self, to: ReplicaId, match_index: Slot, commit: Slot) {
        let learned = commit.min(match_index);
        if learned > self.commit {
            self.commit = learned;
            self.apply_committed();
        }
        let term = self.term;
        let outcome = AppendOutcome::Ok { match_index };
        self.send_when_durable(to, Msg::AppendReply { term, outcome });
    }

    /// Applies committed entries in order; answers the clients waiting here.
    pub(super) fn apply_committed(&mut self) {
        while self.applied < self.commit {
            let index = self.applied + 1;
            let batch = self
                .log
                .get(index)
                .expect("committed entry held")
                .batch
                .clone();
            let (kv, waiting, out) = (&mut self.kv, &mut self.waiting, &mut self.outbox);
            crate::protocol::waiting::apply_batch(kv, index, &batch, waiting, out);
            self.applied_log_bytes += crate::protocol::message::batch_memory_bytes(&batch);
            if let Some(trace) = &mut self.applied_trace {
                trace.push((index, batch));
            }
            self.applied = index;
        }
        self.trim_applied_log();
    }

    /// The leader's state machine at `last` = (index, term), received whole and
    /// checked (`snapshot.rs`): we lack entries it compacted.
    pub(super) fn install_snapshot(
        &mut self,
        from: ReplicaId,
        last: (Slot, u64),
        state: BuiltState,
    ) {
        let (last_index, last_term) = last;
        if last_index > self.commit {
            self.log.reset_to(last_index, last_term);
            self.kv.import_built(state);
            self.commit = last_index;
            self.applied = last_index;
            self.applied_log_bytes = 0;
            self.stats.snapshots_installed += 1;
            // The log before it is gone: recovery needs this state saved, and until the
            // driver says it is, nothing that counts it leaves (`unsaved_install`).
            self.outbox.push(Action::SaveSnapshot);
            self.unsaved_install = Some(last_index);
        } else {
            // Its log caught it up while the state was built.
            self.kv.discard_built(state);
        }
        let term = self.term;
        let last_index = self.commit;
        self.send_when_durable(from, Msg::InstallSnapshotReply { term, last_index });
    }
}
