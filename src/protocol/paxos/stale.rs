//! Multi-Paxos's side of detecting a data directory replaced by an older copy
//! (`protocol/stale.rs` has the argument). Each replica remembers, per peer, the highest
//! ballot the peer promised it (a `Promise` leaves once the promise is durable) and the
//! highest slot it acknowledged accepting (an `Accepted` leaves once the slot's record is
//! durable, or the slot is chosen or compacted there). A restarted replica asks for that
//! before it promises or accepts anything; a report beyond its storage makes it a learner
//! (`recovery.rs`), and it writes a `Record::StaleData` mark so that it stays one across
//! restarts until it caught up (a restarted peer forgets what it saw, so a second check
//! may find nothing). Its `Chosen` marks stay trusted: an older copy is a prefix of the
//! records it wrote, so every mark in it follows the records it vouches for.

use super::Replica;
use super::recovery::Recovering;
use crate::protocol::message::{Message, Record};
use crate::protocol::stale::{CheckGroup, CheckStep, WAIT_ELECTION_TIMEOUTS};
use crate::protocol::types::{Ballot, NANOS_PER_MS, Nanos, ReplicaId, Slot};

/// What this replica saw one peer acknowledge (in memory only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Acked {
    /// The highest ballot it promised us.
    promised: Ballot,
    /// The highest slot it acknowledged accepting to us, and the ballot.
    accepted: Option<(Slot, Ballot)>,
}

impl Default for Acked {
    fn default() -> Acked {
        Acked {
            promised: Ballot::ZERO,
            accepted: None,
        }
    }
}

impl Replica {
    /// Starts the restart check (`protocol/stale.rs`): until enough peers reported what
    /// they saw this replica acknowledge, it only asks them. For a replica just recovered
    /// from its storage, before its first step; not for one that knows it lost records
    /// (it is a learner already).
    pub fn start_restart_check(&mut self) {
        if self.cfg.replicas > 1 && self.recovering.is_none() {
            self.restart_check = Some(crate::protocol::stale::RestartCheck::default());
        }
    }

    /// Notes what a message from `from` shows it holds durably.
    pub(super) fn note_acked(&mut self, from: ReplicaId, msg: &Message) {
        if from == self.id {
            return;
        }
        let a = &mut self.acked[from.index()];
        match msg {
            Message::Promise { ballot, .. } => a.promised = a.promised.max(*ballot),
            Message::Accepted { ballot, slot, .. }
                if a.accepted.is_none_or(|old| old < (*slot, *ballot)) =>
            {
                a.accepted = Some((*slot, *ballot));
            }
            _ => {}
        }
    }

    /// A restarted peer asks what we saw it acknowledge.
    pub(super) fn on_restart_query(&mut self, from: ReplicaId) {
        let Acked { promised, accepted } = self.acked[from.index()];
        self.send(from, Message::RestartReport { promised, accepted });
    }

    /// While the restart check runs: asks every peer each heartbeat interval, and ends
    /// the check once enough answered (see `protocol/stale.rs`).
    pub(super) fn restart_check_tick(&mut self, now: Nanos) {
        let group = CheckGroup {
            id: self.id,
            replicas: self.cfg.replicas,
            quorum: self.cfg.quorum(),
            wait: WAIT_ELECTION_TIMEOUTS * self.cfg.election_timeout_ms * NANOS_PER_MS,
            interval: self.cfg.heartbeat_interval_ms * NANOS_PER_MS,
        };
        let Some(check) = &mut self.restart_check else {
            return;
        };
        match check.step(now, &group) {
            CheckStep::Over => self.restart_check = None,
            CheckStep::Ask => self.broadcast(&Message::RestartQuery),
            CheckStep::Wait => {}
        }
    }

    /// A peer's report: whether our storage holds what it saw us acknowledge.
    pub(super) fn on_restart_report(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        promised: Ballot,
        accepted: Option<(Slot, Ballot)>,
    ) {
        let Some(check) = &mut self.restart_check else {
            self.stats.messages_ignored += 1;
            return;
        };
        check.answered(from);
        if let Some(lacks) = self.stale_lacks(promised, accepted)
            && !self.bugs.ignore_stale_data
        {
            self.stats.stale_data_detected += 1;
            self.stale_finding = Some(format!("replica {from} saw this replica {lacks}"));
            let seen_through = self
                .last_slot_held()
                .max(accepted.map_or(0, |(slot, _)| slot));
            let rec = self.recovering.get_or_insert(Recovering {
                seen_through,
                reported_mask: 0,
                promised_max: Ballot::ZERO,
                leader: None,
                query_sent_at: None,
            });
            rec.seen_through = rec.seen_through.max(seen_through);
            // Durable, so a restart before it caught up keeps it a learner.
            let seen_through = rec.seen_through;
            self.persist(Record::StaleData { seen_through });
        }
        self.restart_check_tick(now);
    }

    /// The highest slot this replica holds a value for, or compacted.
    fn last_slot_held(&self) -> Slot {
        self.log
            .last_key_value()
            .map_or(self.log_base, |(slot, _)| (*slot).max(self.log_base))
    }

    /// What a report shows that our storage lacks, if anything.
    fn stale_lacks(&self, promised: Ballot, accepted: Option<(Slot, Ballot)>) -> Option<String> {
        if promised > self.promised {
            return Some(format!(
                "promise ballot {promised}; its storage holds promise {}",
                self.promised
            ));
        }
        let held = self.last_slot_held();
        match accepted {
            // A promise above `ballot` was written after that accept, so a copy holding it
            // holds the accept too; at or below it, the slot must be here.
            Some((slot, ballot)) if self.promised <= ballot && slot > held => Some(format!(
                "accept slot {slot} at ballot {ballot}; its storage holds slots up to {held}"
            )),
            _ => None,
        }
    }
}
