//! The learner: commit indexes, catch-up of missing chosen slots, and applying in order.

use super::{LogEntry, Replica};
use crate::protocol::message::{Batch, Message, Record, batch_memory_bytes};
use crate::protocol::outbox::SyncStart;
use crate::protocol::types::{Ballot, Nanos, ReplicaId, Slot};

/// Catch-up requests in a row that brought no chosen slot before a leader runs phase 1
/// again. The peer whose promise said those slots were chosen may have lost them to
/// storage damage since (it recovers as a learner); if nobody else knows them chosen, only
/// a new phase 1 finds their values, among the replicas that accepted them.
const CATCHUP_UNANSWERED_MAX: u32 = 10;

impl Replica {
    /// Heartbeat from a leader. A deposed one is told: a leader with nothing to propose
    /// sends only heartbeats, and would otherwise never learn of the higher promise (in
    /// leader-lease mode it would even keep granting itself a lease and withholding its
    /// promise from the next candidate, so no leader could be elected without it).
    pub(super) fn on_commit(&mut self, now: Nanos, from: ReplicaId, ballot: Ballot, commit: Slot) {
        self.observe_ballot(ballot);
        if ballot >= self.promised {
            self.step_down_for(now, ballot);
            self.follow(now, ballot);
        } else {
            self.send(
                from,
                Message::Reject {
                    promised: self.promised,
                },
            );
        }
        self.learn_commit(now, ballot, commit);
    }

    /// The leader of `ballot` says every slot up to `commit` is chosen. An entry accepted at
    /// that same ballot holds the value that leader proposed, so it is the chosen one.
    pub(super) fn learn_commit(&mut self, now: Nanos, ballot: Ballot, commit: Slot) {
        self.commit_heard = self.commit_heard.max(commit);
        if commit <= self.chosen_through {
            return;
        }
        for (_, e) in self.log.range_mut(self.chosen_through + 1..=commit) {
            if e.ballot == ballot {
                e.chosen = true;
            }
        }
        self.advance_chosen(now);
        self.maybe_request_catchup(now);
    }

    /// Moves the commit index over consecutive chosen slots and applies them.
    pub(super) fn advance_chosen(&mut self, now: Nanos) {
        let before = self.chosen_through;
        while self
            .log
            .get(&(self.chosen_through + 1))
            .is_some_and(|e| e.chosen)
        {
            self.chosen_through += 1;
        }
        if self.chosen_through == before {
            return;
        }
        self.commit_heard = self.commit_heard.max(self.chosen_through);
        self.catchup_unanswered = 0;
        if let super::Role::Leader(l) = &mut self.role {
            if l.in_flight
                .first_key_value()
                .is_some_and(|(s, _)| *s <= self.chosen_through)
            {
                // Learned chosen some other way (catch-up from a peer that knew): no longer
                // in flight, and a snapshot may compact them out of the log.
                l.in_flight = l.in_flight.split_off(&(self.chosen_through + 1));
            }
            // A newer leader chose slots past ours (we have not heard of its ballot yet):
            // never propose into a chosen slot.
            l.next_slot = l.next_slot.max(self.chosen_through + 1);
        }
        // The commit index needs no sync of its own: recovery can learn it again from
        // peers, and nothing waits on it. Synced alone it put a second sync after every
        // write of a lone client, and the next write's record waited behind it.
        let through = self.chosen_through;
        self.persist_as(Record::Chosen { through }, SyncStart::Lazy);
        self.apply_chosen();
        if self.chosen_through >= self.commit_heard {
            self.catchup_sent_at = None;
            self.catchup_hint = None;
        }
        let _ = now;
    }

    /// Applies chosen slots in order; answers the clients waiting here.
    pub(super) fn apply_chosen(&mut self) {
        while self.applied < self.chosen_through {
            let slot = self.applied + 1;
            let batch = self.log[&slot].batch.clone();
            // A leader answers its clients; a follower the forwards it may answer itself
            // (`early.rs`).
            let leading = matches!(self.role, super::Role::Leader(_));
            let waiting = if leading {
                &mut self.waiting
            } else {
                &mut self.early.forwarded
            };
            let before = waiting.len();
            let (kv, out) = (&mut self.kv, &mut self.outbox);
            crate::protocol::waiting::apply_batch(kv, slot, &batch, waiting, out);
            if !leading {
                self.stats.forwards_answered_early += (before - waiting.len()) as u64;
            }
            self.applied_log_bytes += batch_memory_bytes(&batch);
            if let Some(trace) = &mut self.applied_trace {
                trace.push((slot, batch));
            }
            self.applied = slot;
        }
        self.trim_applied_log();
        if let Some(p) = &mut self.pending {
            p.applied_through(self.applied);
        }
        self.early_applied_through(self.applied);
    }

    /// Asks for chosen slots this replica lacks, at most once per heartbeat interval.
    pub(super) fn maybe_request_catchup(&mut self, now: Nanos) {
        if self.snapshot_tick(now) {
            return;
        }
        if self.chosen_through >= self.commit_heard {
            return;
        }
        if self
            .catchup_sent_at
            .is_some_and(|t| now < t + self.heartbeat_interval())
        {
            return;
        }
        self.catchup_unanswered += 1;
        if self.catchup_unanswered > 1 {
            // The peer named did not send what it was asked for: it may no longer have
            // it. Ask the leader, or any peer.
            self.catchup_hint = None;
        }
        if self.catchup_unanswered > CATCHUP_UNANSWERED_MAX && self.leading().is_some() {
            self.catchup_unanswered = 0;
            self.catchup_sent_at = None;
            self.stats.catchups_abandoned += 1;
            self.start_election(now);
            return;
        }
        let to = match self.catchup_hint.or(self.leader) {
            Some(l) if l != self.id => l,
            _ => {
                let others = self.cfg.replicas as u64 - 1;
                let pick = now % others;
                let r = if pick >= self.id.0 as u64 {
                    pick + 1
                } else {
                    pick
                };
                ReplicaId(r as u8)
            }
        };
        self.catchup_sent_at = Some(now);
        self.stats.catchups_requested += 1;
        self.send(
            to,
            Message::CatchUpRequest {
                from_slot: self.chosen_through + 1,
            },
        );
    }

    /// A peer lacks chosen slots: send a bounded chunk of those we know.
    pub(super) fn on_catchup_request(&mut self, now: Nanos, from: ReplicaId, from_slot: Slot) {
        if from_slot > self.chosen_through {
            self.stats.messages_ignored += 1;
            return;
        }
        if from_slot <= self.log_base {
            self.send_snapshot(now, from);
            return;
        }
        // Bounded by count and by bytes, so the message fits one peer frame: one batch
        // alone can be as large as a WAL record.
        let mut entries: Vec<(Slot, Batch)> = Vec::new();
        let mut bytes = 0;
        for (slot, e) in self
            .log
            .range(from_slot..=self.chosen_through)
            .take(self.cfg.catchup_chunk_max)
        {
            let size = super::batch_record_bytes_max(&e.batch);
            if !entries.is_empty() && bytes + size > crate::limits::CATCHUP_BYTES_MAX {
                break;
            }
            bytes += size;
            entries.push((*slot, e.batch.clone()));
        }
        self.send(
            from,
            Message::CatchUp {
                entries,
                commit: self.chosen_through,
            },
        );
    }

    /// Chosen slots arrive from a peer.
    pub(super) fn on_catchup(&mut self, now: Nanos, entries: Vec<(Slot, Batch)>, commit: Slot) {
        self.commit_heard = self.commit_heard.max(commit);
        for (slot, batch) in entries {
            if slot <= self.chosen_through || self.log.get(&slot).is_some_and(|e| e.chosen) {
                continue;
            }
            if !super::batch_fits_record(&batch) {
                // Cannot have been chosen (no replica could log it); persisting would fail.
                self.stats.batches_too_large += 1;
                break;
            }
            // Keep the accepted ballot if we have one: a later Accept at that ballot is
            // then recognised as a retransmission.
            let ballot = self.log.get(&slot).map_or(Ballot::ZERO, |e| e.ballot);
            let persist_id = self.persist(Record::Learned {
                slot,
                batch: batch.clone(),
            });
            self.insert_entry(
                slot,
                LogEntry {
                    ballot,
                    batch,
                    chosen: true,
                    persist_id,
                },
            );
        }
        self.advance_chosen(now);
        if self.chosen_through < self.commit_heard {
            // More to fetch: ask again now rather than after the interval.
            self.catchup_sent_at = None;
            self.maybe_request_catchup(now);
        }
    }
}
