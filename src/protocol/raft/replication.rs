//! The leader: client requests, batching, pipelined appends with a bounded window per
//! follower, fast back-off on conflicts, heartbeats, and commit by counting only entries
//! of its own term (the paper's Figure 8).

use std::sync::Arc;

use super::log::LogEntry;
use super::{AppendOutcome, Msg, RaftRecord, Replica, Role};
use crate::protocol::clock::LogClock;
use crate::protocol::kv::{Command, Request};
use crate::protocol::message::Batch;
use crate::protocol::outbox::{ClientReply, SyncStart};
use crate::protocol::types::{Nanos, PersistId, ReplicaId, Slot, Token};
use crate::protocol::waiting::{Admission, admit};

/// An append left unanswered is resent after 2 heartbeat intervals, then 4, 8, 16 and at
/// most 32.
const RETRANSMIT_BACKOFF_SHIFT_MAX: u32 = 4;

/// The leader's view of one replica's log.
#[derive(Clone, Debug)]
pub(super) struct Progress {
    /// The next entry to send it.
    pub(super) next: Slot,
    /// Its log matches ours through here (durably).
    pub(super) matched: Slot,
    /// Appends sent past `matched` and not yet answered (the pipeline window).
    pub(super) in_flight: usize,
    /// When the oldest unanswered append (or the snapshot) went out.
    pub(super) sent_at: Nanos,
    /// Resends since it last answered: each waits twice as long.
    pub(super) retransmits: u32,
    /// When it last answered in this term (check-quorum).
    pub(super) acked_at: Nanos,
    /// A snapshot is on its way to it.
    pub(super) snapshot_sent: bool,
    /// Its log's end is unknown (after a conflict, or at the start of a term): one append
    /// at a time until one succeeds, so a window of conflicts does not answer with a
    /// window of resends each.
    pub(super) probing: bool,
}

/// What a leader keeps.
#[derive(Clone, Debug)]
pub(super) struct Leadership {
    /// Indexed by replica id (ours included: `matched` counts once our entries are durable).
    pub(super) progress: Vec<Progress>,
    /// Client requests waiting for an entry.
    pub(super) queue: crate::protocol::waiting::Queue,
    pub(super) last_heartbeat: Nanos,
    /// When this replica became leader.
    pub(super) since: Nanos,
    /// Reads waiting for a leadership check (read-index mode).
    pub(super) reads: super::reads::ReadIndex,
    /// The last entry that names keys to expire.
    pub(super) expiry_index: Option<Slot>,
    /// Entries appended in this term and not yet committed, with when (INFO's
    /// `propose_to_chosen`); at most the uncommitted part of the log.
    pub(super) proposed: std::collections::VecDeque<(Slot, Nanos)>,
    /// The record of the newest entry this leader appended: until it is durable, only
    /// full batches leave (see `try_propose`).
    pub(super) last_append: PersistId,
}

impl Leadership {
    pub(super) fn new(replicas: usize, last_index: Slot, now: Nanos) -> Leadership {
        let progress = Progress {
            next: last_index + 1,
            matched: 0,
            in_flight: 0,
            sent_at: now,
            retransmits: 0,
            acked_at: now,
            snapshot_sent: false,
            probing: true,
        };
        Leadership {
            progress: vec![progress; replicas],
            queue: crate::protocol::waiting::Queue::default(),
            last_heartbeat: now,
            since: now,
            reads: super::reads::ReadIndex::new(replicas),
            expiry_index: None,
            proposed: std::collections::VecDeque::new(),
            last_append: 0,
        }
    }
}

impl Replica {
    fn leadership(&mut self) -> Option<&mut Leadership> {
        match &mut self.role {
            Role::Leader(l) => Some(l),
            _ => None,
        }
    }

    /// A client request: queue it for an entry if leading, else say who leads.
    pub(super) fn on_client_request(&mut self, now: Nanos, token: Token, req: Request) {
        let bytes = req.cmd.encoded_bytes_max();
        if bytes > crate::limits::COMMAND_BYTES_MAX {
            self.stats.requests_too_large += 1;
            let bytes_max = crate::limits::COMMAND_BYTES_MAX;
            self.reply(token, ClientReply::TooLarge { bytes, bytes_max });
            return;
        }
        let queue_max = self.cfg.proposal_queue_max;
        let me = self.id;
        let Role::Leader(l) = &mut self.role else {
            let leader = self.leader.filter(|l| *l != me);
            self.reply(token, ClientReply::NotLeader { leader });
            return;
        };
        match admit(&mut l.queue, &mut self.waiting, queue_max, now, token, req) {
            Admission::Queued => {}
            Admission::Retry { old } => {
                return self.reply(old, ClientReply::NotLeader { leader: Some(me) });
            }
            Admission::Full => {
                self.stats.requests_busy += 1;
                return self.reply(token, ClientReply::Busy);
            }
            Admission::AnsweredThere => self.reply(token, ClientReply::Logged),
        }
        self.try_propose(now);
    }

    /// Appends batches from the queue while fewer than `pipeline_depth` entries are
    /// uncommitted.
    pub(super) fn try_propose(&mut self, now: Nanos) {
        let (batch_max, depth) = (self.cfg.batch_max, self.cfg.pipeline_depth as Slot);
        // Room for the clock entry a batch may carry in front.
        let bytes_max = self
            .cfg
            .batch_bytes_max
            .saturating_sub(LogClock::reserve_bytes(&self.kv, self.cfg.batch_bytes_max));
        let delay = self.batch_delay();
        let uncommitted = self.log.last_index() - self.commit;
        let durable = self.durable_id;
        let gathering = self.gathering;
        let Some(l) = self.leadership() else {
            return;
        };
        if uncommitted >= depth {
            return;
        }
        // While our last entry waits for its sync, only full batches leave: one proposed
        // now could not be durable before the sync after that one anyway, so the requests
        // arriving meanwhile leave together when it completes (one entry, one append to
        // each follower, per sync rather than per arrival). Multi-Paxos batches the same;
        // and, as it does, while `on_requests` takes a pipeline.
        let delay = if gathering || l.last_append > durable {
            Nanos::MAX
        } else {
            delay
        };
        let queued_since = l.queue.since;
        let Some(batch) = l.queue.take_batch(now, batch_max, bytes_max, delay) else {
            return;
        };
        self.stats.queue_wait_ns += now.saturating_sub(queued_since);
        let needed = batch.iter().any(|r| r.cmd.reads_clock());
        let name_keys = !self.expiry_in_flight();
        let batch_bytes_max = self.cfg.batch_bytes_max;
        let clock = self
            .clock
            .entry(now, &self.kv, batch_bytes_max, needed, name_keys);
        if let Some(clock) = &clock {
            self.note_expiry(clock);
        }
        // The clock entry goes in front; the requests are moved once, into the entry's own
        // allocation (an exact-size iterator), not shifted to make room first.
        let batch: Batch = clock.into_iter().chain(batch).collect();
        self.stats.commands_proposed += batch.len() as u64;
        self.append_local(now, batch);
        // One entry per call keeps the window check exact; the rest follow.
        self.try_propose(now);
    }

    /// Notes the index of the entry `clock` goes in if it names keys to expire.
    fn note_expiry(&mut self, clock: &Request) {
        let index = self.log.last_index() + 1;
        if let (Command::Clock { expire, .. }, Some(l)) = (&clock.cmd, self.leadership())
            && !expire.is_empty()
        {
            l.expiry_index = Some(index);
        }
    }

    /// Whether an entry naming keys to expire is not applied yet (one at a time: the keys
    /// leave the applied state only when it is applied).
    fn expiry_in_flight(&self) -> bool {
        match &self.role {
            Role::Leader(l) => l.expiry_index.is_some_and(|i| i > self.applied),
            _ => false,
        }
    }

    /// On a tick: keys are due and no entry is on its way to name them, so a clock entry
    /// goes alone.
    fn propose_expiry(&mut self, now: Nanos) {
        let depth = self.cfg.pipeline_depth as Slot;
        let uncommitted = self.log.last_index() - self.commit;
        let idle = match &self.role {
            Role::Leader(l) => l.queue.requests.is_empty() && uncommitted < depth,
            _ => false,
        };
        if !idle || self.expiry_in_flight() {
            return;
        }
        let batch_bytes_max = self.cfg.batch_bytes_max;
        let Some(clock) = self.clock.due_entry(now, &self.kv, batch_bytes_max) else {
            return;
        };
        self.note_expiry(&clock);
        self.append_local(now, Arc::from(vec![clock]));
    }

    /// The no-op that starts a term.
    pub(super) fn append_noop(&mut self, now: Nanos) {
        self.append_local(now, Arc::from(vec![Request::noop()]));
    }

    /// Appends `batch` at our term, persists it, counts our own match once durable, and
    /// sends it to every follower whose window has room. A lone entry's sync starts after
    /// those sends (`SyncStart::AfterSends`), as a Multi-Paxos leader's lone accept's
    /// does: it commits with our match and a follower's, and the follower's comes later
    /// (its write starts after the append's trip), so ours need not start first.
    fn append_local(&mut self, now: Nanos, batch: Batch) {
        let index = self.log.last_index() + 1;
        let term = self.term;
        let lone = self.commit + 1 == index;
        let entry = RaftRecord::Entry {
            index,
            term,
            batch: batch.clone(),
        };
        let sync = if lone {
            SyncStart::AfterSends
        } else {
            SyncStart::Now
        };
        let pid = self.persist_as(entry, sync);
        self.log.push(LogEntry { term, batch });
        self.stats.slots_proposed += 1;
        if let Some(l) = self.leadership() {
            l.proposed.push_back((index, now));
            l.last_append = pid;
        }
        let outcome = AppendOutcome::Ok { match_index: index };
        self.send_when_durable(self.id, Msg::AppendReply { term, outcome });
        self.replicate_all(now);
    }

    fn replicate_all(&mut self, now: Nanos) {
        for r in 0..self.cfg.replicas {
            let to = ReplicaId(r as u8);
            if to != self.id {
                self.replicate(now, to);
            }
        }
    }

    /// Sends `to` what it lacks, while its window has room: entries in chunks of at most
    /// `catchup_chunk_max` (and `limits::CATCHUP_BYTES_MAX`), or a snapshot if they were
    /// compacted.
    pub(super) fn replicate(&mut self, now: Nanos, to: ReplicaId) {
        let depth = self.cfg.pipeline_depth;
        let chunk_max = self.cfg.catchup_chunk_max;
        let last = self.log.last_index();
        loop {
            let Some(l) = self.leadership() else { return };
            let p = &l.progress[to.index()];
            let window = if p.probing { 1 } else { depth };
            if p.snapshot_sent || p.in_flight >= window || p.next > last {
                return;
            }
            let next = p.next;
            if next <= self.log.base() {
                self.send_snapshot(now, to);
                return;
            }
            let prev_index = next - 1;
            let prev_term = self.log.term_at(prev_index).expect("after the base");
            let mut entries = Vec::new();
            let mut bytes = 0;
            for (_, e) in self.log.iter_from(next).take(chunk_max) {
                let size = super::storage::batch_record_bytes_max(&e.batch);
                if !entries.is_empty() && bytes + size > crate::limits::CATCHUP_BYTES_MAX {
                    break;
                }
                bytes += size;
                entries.push((e.term, e.batch.clone()));
            }
            let sent = entries.len() as Slot;
            let msg = Msg::Append {
                term: self.term,
                prev_index,
                prev_term,
                entries,
                commit: self.commit,
            };
            let Some(l) = self.leadership() else { return };
            let p = &mut l.progress[to.index()];
            if p.in_flight == 0 {
                p.sent_at = now;
            }
            p.in_flight += 1;
            p.next += sent;
            self.send(to, msg);
        }
    }

    /// A heartbeat: an empty append after the last entry `to` surely holds, carrying the
    /// commit index (and probing where its log ends if that is unknown).
    fn send_heartbeat(&mut self, to: ReplicaId) {
        let Some(l) = self.leadership() else { return };
        let p = &l.progress[to.index()];
        let prev_index = if p.in_flight == 0 {
            p.next - 1
        } else {
            p.matched
        };
        let Some(prev_term) = self.log.term_at(prev_index) else {
            return; // Compacted: a snapshot is (or will be) on its way.
        };
        let msg = Msg::Append {
            term: self.term,
            prev_index,
            prev_term,
            entries: Vec::new(),
            commit: self.commit,
        };
        self.send(to, msg);
    }

    /// A follower (or our own durable append) answers.
    pub(super) fn on_append_reply(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        term: u64,
        outcome: AppendOutcome,
    ) {
        if term > self.term {
            self.become_follower(now, term, None);
            return;
        }
        let (last, base) = (self.log.last_index(), self.log.base());
        let back_to = match outcome {
            AppendOutcome::Conflict {
                index,
                term: Some(t),
            } => self.log.last_index_of_term(t).map_or(index, |i| i + 1),
            AppendOutcome::Conflict { index, term: None } => index,
            AppendOutcome::Ok { .. } => 0,
        };
        let current = self.term;
        let Some(l) = self.leadership() else {
            self.stats.messages_ignored += 1;
            return;
        };
        if term < current {
            return; // From an earlier term: says nothing of our log.
        }
        let p = &mut l.progress[from.index()];
        p.acked_at = now;
        p.retransmits = 0;
        match outcome {
            AppendOutcome::Ok { match_index } => {
                p.matched = p.matched.max(match_index.min(last));
                p.next = p.next.max(p.matched + 1);
                p.in_flight = p.in_flight.saturating_sub(1);
                p.sent_at = now;
                p.probing = false;
                if match_index >= base {
                    // Its log continues ours without a snapshot (the answer to one, or
                    // a chunk of it, may have been lost): appends go on from here.
                    p.snapshot_sent = false;
                }
            }
            AppendOutcome::Conflict { .. } => {
                // Fast back-off: past the follower's entries of the conflicting term.
                let back_to = back_to.clamp(1, last + 1);
                if back_to <= p.matched {
                    // Its log no longer holds what it acknowledged (restarted from an
                    // older data directory, or storage lost records), or the answer is a
                    // stale one: count less for it (the commit index never goes back)
                    // and send again from there.
                    p.matched = back_to - 1;
                }
                if back_to < p.next {
                    p.next = back_to;
                    p.in_flight = 0;
                    p.probing = true;
                }
            }
        }
        self.advance_commit(now);
        if from != self.id {
            self.replicate(now, from);
        }
    }

    /// A follower installed our snapshot.
    pub(super) fn on_install_snapshot_reply(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        term: u64,
        last_index: Slot,
    ) {
        if term > self.term {
            self.become_follower(now, term, None);
            return;
        }
        let (current, last) = (self.term, self.log.last_index());
        let Some(l) = self.leadership() else {
            self.stats.messages_ignored += 1;
            return;
        };
        if term < current {
            return;
        }
        let p = &mut l.progress[from.index()];
        p.acked_at = now;
        p.snapshot_sent = false;
        p.in_flight = 0;
        p.retransmits = 0;
        p.matched = p.matched.max(last_index.min(last));
        p.next = p.matched + 1;
        self.advance_commit(now);
        self.replicate(now, from);
    }

    /// Commits the highest entry a quorum stores, if it is of our term: an entry of an
    /// earlier term is committed only by the one of ours after it (Figure 8).
    fn advance_commit(&mut self, now: Nanos) {
        let quorum = self.cfg.quorum();
        let Some(l) = self.leadership() else { return };
        let mut matched: Vec<Slot> = l.progress.iter().map(|p| p.matched).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[quorum - 1];
        if candidate <= self.commit {
            return;
        }
        let ours = self.log.term_at(candidate) == Some(self.term);
        if !ours && !self.bugs.commit_older_term {
            return;
        }
        self.commit = candidate;
        if let Role::Leader(l) = &mut self.role {
            while let Some(&(index, at)) = l.proposed.front()
                && index <= candidate
            {
                l.proposed.pop_front();
                self.stats.slots_chosen_led += 1;
                self.stats.commit_wait_ns += now.saturating_sub(at);
            }
        }
        self.apply_committed();
        self.serve_reads();
        self.try_propose(now);
    }

    /// Heartbeats, check-quorum, retransmissions and batch deadlines.
    pub(super) fn leader_tick(&mut self, now: Nanos) {
        let heartbeat = self.heartbeat_interval();
        let election_timeout = self.election_timeout();
        let quorum = self.cfg.quorum();
        let me = self.id;
        let Some(l) = self.leadership() else { return };
        // Check-quorum: a leader no quorum answered for an election timeout steps down,
        // so its clients go to the leader the others elected.
        let heard = l
            .progress
            .iter()
            .enumerate()
            .filter(|(i, p)| *i == me.index() || now < p.acked_at + election_timeout)
            .count();
        if heard < quorum && now >= l.since + election_timeout {
            let term = self.term;
            self.become_follower(now, term, None);
            return;
        }
        let probe_due = l.reads.probe_due(now, heartbeat);
        let beat = now >= l.last_heartbeat + heartbeat;
        if beat {
            l.last_heartbeat = now;
        }
        let mut resend = Vec::new();
        for (i, p) in l.progress.iter_mut().enumerate() {
            if i == me.index() || (p.in_flight == 0 && !p.snapshot_sent) {
                continue;
            }
            let backoff = 1 << p.retransmits.min(RETRANSMIT_BACKOFF_SHIFT_MAX);
            if now >= p.sent_at + 2 * heartbeat * backoff {
                // Lost or still crossing: start again from what it surely holds.
                p.retransmits += 1;
                p.in_flight = 0;
                p.snapshot_sent = false;
                p.probing = true;
                p.next = p.matched + 1;
                resend.push(ReplicaId(i as u8));
            }
        }
        for to in resend {
            self.stats.accepts_retransmitted += 1;
            self.replicate(now, to);
        }
        if beat {
            for r in 0..self.cfg.replicas {
                let to = ReplicaId(r as u8);
                if to != self.id {
                    self.send_heartbeat(to);
                }
            }
        }
        if probe_due {
            self.send_read_probe(now);
        }
        self.try_propose(now);
        self.propose_expiry(now);
    }
}
