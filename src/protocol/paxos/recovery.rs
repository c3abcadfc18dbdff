//! Rebuilding a replica from the records it persisted before a crash, and, when storage
//! lost some of them, recovering what they said from the group before voting again.
//!
//! A replica whose log lost records in the middle (synced records, unlike a torn tail)
//! may have forgotten promises and accepted values it acknowledged. Voting on them would
//! let a quorum that includes it choose a no-op over a chosen value (Protocol-Aware
//! Recovery, Alagappan et al., FAST'18). So it comes back as a learner: it answers no
//! Prepare and no Accept, grants no lease, answers no read query, serves no read and
//! starts no election, until a leader's ballot at or above its promise told it a commit
//! index and it has learned every slot up to that index and up to the highest slot of
//! any record it did read. Then it raises its promise to that ballot and votes again; the
//! runtime makes that durable with a snapshot covering the lost records.

use super::{LogEntry, Replica};
use crate::config::ProtocolConfig;
use crate::protocol::message::{Message, Record, Snapshot};
use crate::protocol::outbox::{Action, ClientReply};
use crate::protocol::types::{Ballot, Nanos, ReplicaId, Slot};

/// What a replica that forgot records still has to learn before it votes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Recovering {
    /// The highest slot named by any record it did read (snapshot included).
    pub(super) seen_through: Slot,
    /// The highest leader ballot (at or above the promise) heard since, with the highest
    /// commit index that leader told.
    pub(super) leader: Option<(Ballot, Slot)>,
}

impl Replica {
    /// A replica restarted from its latest snapshot, if any, and the durable records
    /// written after it, in order. Its promise, accepted values and commit index survive;
    /// it rejoins as a follower. `forgot_records` says storage lost records among them
    /// (not a torn tail: records that had been synced): it then rejoins as a learner that
    /// does not vote until it recovered them from the group (see the module doc).
    pub fn recover(
        cfg: ProtocolConfig,
        id: ReplicaId,
        seed: u64,
        snapshot: Option<Snapshot>,
        records: impl IntoIterator<Item = Record>,
        forgot_records: bool,
    ) -> Replica {
        let mut r = Replica::new(cfg, id, seed);
        let mut seen_through: Slot = 0;
        if let Some(s) = snapshot {
            seen_through = s.last_included;
            for (slot, ..) in &s.tail {
                seen_through = seen_through.max(*slot);
            }
            r.restore(s);
        }
        let base = r.log_base;
        let mut chosen_through = base;
        for record in records {
            match &record {
                Record::Accept { slot, .. } | Record::Learned { slot, .. } => {
                    seen_through = seen_through.max(*slot);
                }
                Record::Chosen { through } => seen_through = seen_through.max(*through),
                Record::Promise { .. } => {}
            }
            // Records the snapshot covers would only re-add compacted slots.
            if let Record::Accept { slot, .. } | Record::Learned { slot, .. } = &record
                && *slot <= base
            {
                continue;
            }
            match record {
                Record::Promise { ballot } => r.promised = r.promised.max(ballot),
                Record::Accept {
                    ballot,
                    slot,
                    batch,
                } => {
                    r.promised = r.promised.max(ballot);
                    let chosen = r.log.get(&slot).is_some_and(|e| e.chosen);
                    r.log.insert(
                        slot,
                        LogEntry {
                            ballot,
                            batch,
                            chosen,
                            persist_id: 0,
                        },
                    );
                }
                Record::Learned { slot, batch } => {
                    let ballot = r.log.get(&slot).map_or(Ballot::ZERO, |e| e.ballot);
                    r.log.insert(
                        slot,
                        LogEntry {
                            ballot,
                            batch,
                            chosen: true,
                            persist_id: 0,
                        },
                    );
                }
                Record::Chosen { through } => chosen_through = chosen_through.max(through),
            }
        }
        if chosen_through > base {
            for (_, e) in r.log.range_mut(base + 1..=chosen_through) {
                e.chosen = true;
            }
        }
        // Only a gap-free prefix counts; `advance_chosen` stops at the first hole.
        while r.log.get(&(r.chosen_through + 1)).is_some_and(|e| e.chosen) {
            r.chosen_through += 1;
        }
        r.commit_heard = r.chosen_through;
        r.round_seen = r.promised.round;
        r.rebuild_pending();
        r.apply_chosen();
        if forgot_records {
            r.recovering = Some(Recovering {
                seen_through,
                leader: None,
            });
        }
        r
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
                // No vote, but the leader's commit index is what recovery waits for.
                self.observe_ballot(ballot);
                self.stats.votes_withheld += 1;
                if ballot >= self.promised {
                    self.follow(now, ballot);
                    self.note_leader(ballot, commit);
                    self.learn_commit(now, ballot, commit);
                }
                None
            }
            Message::Commit { ballot, commit } => {
                if ballot >= self.promised {
                    self.note_leader(ballot, commit);
                }
                Some(Message::Commit { ballot, commit })
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

    /// Notes that a leader of `ballot` (at or above our promise) told commit index `commit`.
    fn note_leader(&mut self, ballot: Ballot, commit: Slot) {
        if ballot.node == self.id {
            return;
        }
        let Some(rec) = &mut self.recovering else {
            return;
        };
        rec.leader = match rec.leader {
            Some((b, c)) if b == ballot => Some((b, c.max(commit))),
            Some((b, c)) if b > ballot => Some((b, c)),
            _ => Some((ballot, commit)),
        };
    }

    /// Ends recovery once a leader was heard and every slot up to its commit index and up
    /// to the highest slot read at recovery is known chosen: promises that leader's ballot
    /// (durably) and asks the runtime for a snapshot, which makes the lost records moot.
    pub(super) fn check_recovered(&mut self, now: Nanos) {
        let Some(rec) = &self.recovering else {
            return;
        };
        let Some((ballot, commit)) = rec.leader else {
            return;
        };
        if self.chosen_through < rec.seen_through.max(commit) {
            return;
        }
        self.recovering = None;
        if ballot > self.promised {
            self.promise(now, ballot);
        }
        self.outbox.push(Action::SaveSnapshot);
    }
}
