//! Rebuilding a replica from the records it persisted before a crash, and, when storage
//! lost some of them, recovering what they said from the group before voting again.
//!
//! A replica whose log lost records in the middle (synced records, unlike a torn tail)
//! may have forgotten promises and accepted values it acknowledged. Voting on them would
//! let a quorum that includes it choose a no-op over a chosen value (Protocol-Aware
//! Recovery, Alagappan et al., FAST'18). So it comes back as a learner: it answers no
//! Prepare and no Accept, grants no lease, answers no read query, serves no read and
//! starts no election, until it knows what its lost records could have said:
//! - what it may have promised: it asks every other replica (`RecoveryQuery`) and waits
//!   for a quorum of replies from replicas that are not recovering themselves. Any ballot
//!   it promised was promised by a quorum; the rest of that quorum (all but itself)
//!   intersects any quorum of the others, so the highest ballot reported bounds it.
//! - what it may have accepted: a value chosen with its vote was chosen before it crashed,
//!   so every leader since knows it (phase 1 with a quorum of the others finds it) and
//!   proposed at or past its slot. The learner waits for a report from a leader whose
//!   ballot is at or above every promise reported, and learns every slot chosen up to the
//!   highest that leader proposed (and up to the highest slot of any record it did read).
//!
//! Then it promises that leader's ballot and votes again; the runtime makes that durable
//! with a snapshot covering the lost records.

use super::{LogEntry, Replica, Role};
use crate::config::ProtocolConfig;
use crate::protocol::message::{Message, Record, Snapshot};
use crate::protocol::outbox::{Action, ClientReply};
use crate::protocol::types::{Ballot, Nanos, ReplicaId, Slot};

/// What a replica that forgot records still has to learn before it votes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Recovering {
    /// The highest slot named by any record it did read (snapshot included).
    pub(super) seen_through: Slot,
    /// Replicas (bits) not themselves recovering that reported their promise.
    pub(super) reported_mask: u8,
    /// The highest ballot they reported promising.
    pub(super) promised_max: Ballot,
    /// The highest-ballot leader that reported, with the highest slot it proposed.
    pub(super) leader: Option<(Ballot, Slot)>,
    /// When the last `RecoveryQuery` went out.
    pub(super) query_sent_at: Option<Nanos>,
}

impl Replica {
    /// A replica restarted from its latest snapshot, if any, and the durable records
    /// written after it, in order. Its promise, accepted values and commit index survive;
    /// it rejoins as a follower. `forgot_records` says storage lost records among them
    /// (not a torn tail: records that had been synced): it then rejoins as a learner that
    /// does not vote until it recovered them from the group (see the module doc), and
    /// applies no slot whose value it cannot vouch for (see `replay`).
    pub fn recover(
        cfg: ProtocolConfig,
        id: ReplicaId,
        seed: u64,
        snapshot: Option<Snapshot>,
        records: impl IntoIterator<Item = Record>,
        forgot_records: bool,
    ) -> Replica {
        let r = Replica::new(cfg, id, seed);
        r.rebuild(snapshot, records, forgot_records)
    }

    /// As `recover`, with the applied trace on from the start: the slots recovery
    /// applies are in it (the simulator's prefix check compares them).
    pub fn recover_traced(
        cfg: ProtocolConfig,
        id: ReplicaId,
        seed: u64,
        snapshot: Option<Snapshot>,
        records: impl IntoIterator<Item = Record>,
        forgot_records: bool,
    ) -> Replica {
        let mut r = Replica::new(cfg, id, seed);
        r.enable_applied_trace();
        r.rebuild(snapshot, records, forgot_records)
    }

    fn rebuild(
        mut self,
        snapshot: Option<Snapshot>,
        records: impl IntoIterator<Item = Record>,
        forgot_records: bool,
    ) -> Replica {
        let mut seen_through: Slot = 0;
        if let Some(s) = snapshot {
            seen_through = s.last_included;
            for (slot, ..) in &s.tail {
                seen_through = seen_through.max(*slot);
            }
            self.restore(s);
        }
        let base = self.log_base;
        let (chosen_mark, stale_mark) = self.replay(records, forgot_records, &mut seen_through);
        // Only a gap-free prefix counts; `advance_chosen` stops at the first hole.
        while self
            .log
            .get(&(self.chosen_through + 1))
            .is_some_and(|e| e.chosen)
        {
            self.chosen_through += 1;
        }
        // Slots up to a `Chosen` mark were chosen, whether or not this replica still
        // knows their values: a learner fetches the ones it does not.
        self.commit_heard = self.chosen_through.max(chosen_mark).max(base);
        self.round_seen = self.promised.round;
        self.rebuild_pending();
        self.apply_chosen();
        // A replica found stale before it crashed stays a learner: its peers may since
        // have forgotten what they saw it acknowledge, so a new check could miss it.
        if forgot_records || stale_mark {
            self.recovering = Some(Recovering {
                seen_through,
                reported_mask: 0,
                promised_max: Ballot::ZERO,
                leader: None,
                query_sent_at: None,
            });
        }
        self
    }

    /// Replays the records written after the snapshot; returns the highest `Chosen`
    /// mark read, and whether a `StaleData` mark was read. The `Chosen` mark makes every entry up to it chosen only when no record was
    /// lost. Then the last record of each slot before the mark held the value chosen
    /// there: the mark was written after the slot was known chosen, and in order after
    /// the record that gave the slot that value. With records lost (`forgot_records`),
    /// the slot's last record may be gone and an older one left: an accept of another
    /// value at a lower ballot (a deposed leader's own proposal, say), which was never
    /// chosen. So then only `Learned` records, which carry the chosen value itself, count
    /// as chosen; the learner re-learns every other slot up to the mark from the group
    /// (commit at the leader's ballot, or catch-up) before applying it.
    fn replay(
        &mut self,
        records: impl IntoIterator<Item = Record>,
        forgot_records: bool,
        seen_through: &mut Slot,
    ) -> (Slot, bool) {
        let base = self.log_base;
        let mut chosen_through = base;
        let mut stale = false;
        for record in records {
            match &record {
                Record::Accept { slot, .. } | Record::Learned { slot, .. } => {
                    *seen_through = (*seen_through).max(*slot);
                }
                Record::Chosen { through }
                | Record::StaleData {
                    seen_through: through,
                } => *seen_through = (*seen_through).max(*through),
                Record::Promise { .. } | Record::Raft(_) => {}
            }
            // Records the snapshot covers would only re-add compacted slots.
            if let Record::Accept { slot, .. } | Record::Learned { slot, .. } = &record
                && *slot <= base
            {
                continue;
            }
            match record {
                Record::Promise { ballot } => self.promised = self.promised.max(ballot),
                Record::Accept {
                    ballot,
                    slot,
                    batch,
                } => {
                    self.promised = self.promised.max(ballot);
                    let chosen = self.log.get(&slot).is_some_and(|e| e.chosen);
                    let entry = LogEntry {
                        ballot,
                        batch,
                        chosen,
                        persist_id: 0,
                    };
                    self.log.insert(slot, entry);
                }
                Record::Learned { slot, batch } => {
                    let ballot = self.log.get(&slot).map_or(Ballot::ZERO, |e| e.ballot);
                    let entry = LogEntry {
                        ballot,
                        batch,
                        chosen: true,
                        persist_id: 0,
                    };
                    self.log.insert(slot, entry);
                }
                Record::Chosen { through } => chosen_through = chosen_through.max(through),
                Record::StaleData { .. } => stale = true,
                // Another protocol's record: never written by a Multi-Paxos replica.
                Record::Raft(_) => {}
            }
        }
        if chosen_through > base && !forgot_records {
            for (_, e) in self.log.range_mut(base + 1..=chosen_through) {
                e.chosen = true;
            }
        }
        (chosen_through, stale)
    }

    /// True while this replica recovers records its storage lost and so does not vote.
    pub fn recovering(&self) -> bool {
        self.recovering.is_some()
    }

    /// While recovering: handles a message that would make this replica vote, grant a
    /// lease or report its log, without doing so. Returns the message if it should be
    /// handled as usual.
    pub(super) fn filter_while_recovering(&mut self, now: Nanos, msg: Message) -> Option<Message> {
        if self.recovering.is_none() {
            return Some(msg);
        }
        match msg {
            Message::Prepare { ballot, .. } => {
                // No promise: what it promised before may be among the lost records.
                self.observe_ballot(ballot);
                self.stats.votes_withheld += 1;
                None
            }
            Message::Accept { ballot, commit, .. } => {
                // No vote, but the leader's commit index tells what to catch up on.
                self.observe_ballot(ballot);
                self.stats.votes_withheld += 1;
                if ballot >= self.promised {
                    self.follow(now, ballot);
                    self.learn_commit(now, ballot, commit);
                }
                None
            }
            // A lease grant or a read report vouches for a log this replica lacks.
            Message::LeaseRequest { .. } | Message::ReadQuery { .. } => {
                self.stats.messages_ignored += 1;
                None
            }
            other => Some(other),
        }
    }

    /// While recovering: a read is sent to the leader (the node forwards it), never
    /// answered from this replica's incomplete state. Returns the token back otherwise.
    pub(super) fn redirect_read_while_recovering(&mut self, token: u64) -> Option<u64> {
        if self.recovering.is_none() {
            return Some(token);
        }
        self.stats.reads_redirected += 1;
        let leader = self.leader.filter(|l| *l != self.id);
        self.reply(token, ClientReply::NotLeader { leader });
        None
    }

    /// While recovering: asks every other replica for its promise (and the leader for
    /// how far it proposed), once per heartbeat interval until recovery ends. Later
    /// answers only add to what earlier ones said: every one was sent after the crash.
    pub(super) fn recovery_tick(&mut self, now: Nanos) {
        let interval = self.heartbeat_interval();
        let Some(rec) = &mut self.recovering else {
            return;
        };
        if rec.query_sent_at.is_some_and(|t| now < t + interval) {
            return;
        }
        rec.query_sent_at = Some(now);
        self.broadcast(&Message::RecoveryQuery);
    }

    /// A recovering peer asks what this replica promised and how far it proposed.
    pub(super) fn on_recovery_query(&mut self, from: ReplicaId) {
        let leading = match &self.role {
            Role::Leader(l) => Some((l.ballot, l.next_slot - 1)),
            _ => None,
        };
        // The promise may still be on its way to disk: reporting it only makes the
        // recovering replica wait for a higher ballot than it strictly needs.
        let report = Message::RecoveryReport {
            promised: self.promised,
            recovering: self.recovering.is_some(),
            leading,
        };
        self.send(from, report);
    }

    /// A peer's answer to our `RecoveryQuery`.
    pub(super) fn on_recovery_report(
        &mut self,
        from: ReplicaId,
        promised: Ballot,
        recovering: bool,
        leading: Option<(Ballot, Slot)>,
    ) {
        self.observe_ballot(promised);
        if let Some((ballot, _)) = leading {
            self.observe_ballot(ballot);
        }
        let Some(rec) = &mut self.recovering else {
            self.stats.messages_ignored += 1;
            return;
        };
        if recovering {
            // Its promise may be among its own lost records: it vouches for nothing.
            self.stats.messages_ignored += 1;
            return;
        }
        rec.reported_mask |= from.bit();
        rec.promised_max = rec.promised_max.max(promised);
        if let Some((ballot, proposed)) = leading {
            rec.leader = match rec.leader {
                Some((b, p)) if b == ballot => Some((b, p.max(proposed))),
                Some((b, p)) if b > ballot => Some((b, p)),
                _ => Some((ballot, proposed)),
            };
        }
    }

    /// Ends recovery once a quorum of non-recovering peers reported their promises, a
    /// leader at or above all of them (and ours) reported how far it proposed, and every
    /// slot up to there and up to the highest slot read at recovery is known chosen:
    /// promises that leader's ballot (durably) and asks the runtime for a snapshot, which
    /// makes the lost records moot.
    pub(super) fn check_recovered(&mut self, now: Nanos) {
        let Some(rec) = &self.recovering else {
            return;
        };
        if (rec.reported_mask.count_ones() as usize) < self.cfg.quorum() {
            return;
        }
        let Some((ballot, proposed)) = rec.leader else {
            return;
        };
        if ballot < rec.promised_max.max(self.promised) {
            return;
        }
        if self.chosen_through < rec.seen_through.max(proposed) {
            return;
        }
        self.recovering = None;
        if ballot > self.promised {
            self.promise(now, ballot);
        }
        self.outbox.push(Action::SaveSnapshot);
    }
}
