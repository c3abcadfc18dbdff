//! Raft's side of detecting a data directory replaced by an older copy
//! (`protocol/stale.rs` has the argument). Each replica remembers, per peer, what the
//! peer showed it holds durably: the highest term of an answer it sends only once its
//! term is durable (`VoteReply`, `AppendReply` with success, `LeaseGrant`) or of its own
//! `RequestVote` (its vote for itself is durable first), the latest term it voted for us
//! in, and, as leader, the last entry it acknowledged storing in our term. A restarted
//! replica asks for that before it does anything else; a report beyond its storage makes
//! it a learner (`recovery.rs`), and it writes a `RaftRecord::StaleData` mark so that it
//! stays one across restarts until it caught up (a restarted peer forgets what it saw, so
//! a second check may find nothing).

use super::{AppendOutcome, Msg, Replica};
use crate::protocol::stale::{CheckGroup, CheckStep, WAIT_ELECTION_TIMEOUTS};
use crate::protocol::types::{Nanos, ReplicaId, Slot};

/// What this replica saw one peer acknowledge (in memory only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Acked {
    /// The highest term of an answer the peer sends only once that term is durable.
    term: u64,
    /// The latest term in which it granted us its vote.
    voted_in: Option<u64>,
    /// The last entry it acknowledged storing while we led: (our term, entry term, index).
    stored: Option<(u64, u64, Slot)>,
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
    pub(super) fn note_acked(&mut self, from: ReplicaId, msg: &Msg) {
        if from == self.id {
            return;
        }
        let term = match msg {
            Msg::RequestVote { term, .. }
            | Msg::VoteReply { term, .. }
            | Msg::LeaseGrant { term, .. }
            | Msg::AppendReply {
                term,
                outcome: AppendOutcome::Ok { .. },
            } => *term,
            _ => return,
        };
        let leading = self.leading_term();
        let entry = match msg {
            Msg::AppendReply {
                outcome: AppendOutcome::Ok { match_index },
                ..
            } if leading == Some(term) => self
                .log
                .term_at(*match_index)
                .map(|t| (term, t, *match_index)),
            _ => None,
        };
        let a = &mut self.acked[from.index()];
        a.term = a.term.max(term);
        if let Msg::VoteReply { granted: true, .. } = msg {
            a.voted_in = a.voted_in.max(Some(term));
        }
        if let Some(e) = entry
            && a.stored.is_none_or(|(t, _, i)| (t, i) < (e.0, e.2))
        {
            a.stored = Some(e);
        }
    }

    /// A restarted peer asks what we saw it acknowledge.
    pub(super) fn on_restart_query(&mut self, from: ReplicaId) {
        let Acked {
            term,
            voted_in,
            stored,
        } = self.acked[from.index()];
        self.send(
            from,
            Msg::RestartReport {
                term,
                voted_in,
                stored,
            },
        );
    }

    /// While the restart check runs: asks every peer each heartbeat interval, and ends
    /// the check once enough answered (see `protocol/stale.rs`).
    pub(super) fn restart_check_tick(&mut self, now: Nanos) {
        let group = CheckGroup {
            id: self.id,
            replicas: self.cfg.replicas,
            quorum: self.cfg.quorum(),
            wait: WAIT_ELECTION_TIMEOUTS * self.election_timeout(),
            interval: self.heartbeat_interval(),
        };
        let Some(check) = &mut self.restart_check else {
            return;
        };
        match check.step(now, &group) {
            CheckStep::Over => self.restart_check = None,
            CheckStep::Ask => self.broadcast(&Msg::RestartQuery),
            CheckStep::Wait => {}
        }
    }

    /// A peer's report: whether our storage holds what it saw us acknowledge.
    pub(super) fn on_restart_report(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        report: (u64, Option<u64>, Option<(u64, u64, Slot)>),
    ) {
        let Some(check) = &mut self.restart_check else {
            self.stats.messages_ignored += 1;
            return;
        };
        check.answered(from);
        if let Some(lacks) = self.stale_lacks(from, report)
            && !self.bugs.ignore_stale_data
        {
            self.stats.stale_data_detected += 1;
            self.stale_finding = Some(format!("replica {from} saw this replica {lacks}"));
            self.recovering
                .get_or_insert_with(super::recovery::Recovering::default);
            // Durable, so a restart before it caught up keeps it a learner.
            self.persist(super::RaftRecord::StaleData);
        }
        self.restart_check_tick(now);
    }

    /// What `from`'s report shows that our storage lacks, if anything.
    fn stale_lacks(
        &self,
        from: ReplicaId,
        (term, voted_in, stored): (u64, Option<u64>, Option<(u64, u64, Slot)>),
    ) -> Option<String> {
        if term > self.term {
            return Some(format!(
                "at term {term}; its storage holds term {}",
                self.term
            ));
        }
        if voted_in == Some(self.term) && self.voted_for != Some(from) {
            return Some(format!(
                "vote for it in term {}; its storage holds a vote for {:?} there",
                self.term, self.voted_for
            ));
        }
        match stored {
            // Within one term only that term's leader writes: an entry acknowledged to it
            // stays (it never contradicts itself), so not holding it means forgetting it.
            Some((t, entry_term, index))
                if t == self.term
                    && index > self.log.base()
                    && self.log.term_at(index) != Some(entry_term) =>
            {
                Some(format!(
                    "store entry {index} (term {entry_term}) in term {t}; its storage ends at \
                     entry {} (term {})",
                    self.log.last_index(),
                    self.log.last_term()
                ))
            }
            _ => None,
        }
    }
}
