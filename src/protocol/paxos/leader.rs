//! The proposer: elections (phase 1a), the leader's pipeline of batched slots (phase 2a),
//! and counting votes.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Candidacy, InFlight, LazySlot, Leadership, Replica, Role};
use crate::config::ReadMode;
use crate::protocol::kv::{Command, Request};
use crate::protocol::message::{Batch, Message};
use crate::protocol::outbox::{Action, ClientReply, SyncStart};
use crate::protocol::types::{Ballot, Nanos, ReplicaId, Slot, Token};
use crate::protocol::waiting::{Admission, admit};

/// An unanswered accept is resent after 2 heartbeat intervals, then 4, 8, 16 and at most
/// 32 (1.6 s with the default 50 ms heartbeat).
const RETRANSMIT_BACKOFF_SHIFT_MAX: u32 = 4;

/// How long lazy leader sync stays off after [`LAZY_LATE_IN_A_ROW`] lazy slots in a row
/// had to sync the leader's record (`lazy_sync_due`): with a follower gone, that many
/// writes in this long wait `lazy_sync_wait_us` longer than they would have.
pub const LAZY_OFF_NS: Nanos = 1_000_000_000;

/// Lazy slots in a row that had to sync the leader's record before lazy writes stop for
/// [`LAZY_OFF_NS`]. More than one: a follower's sync that stalls now and then (this
/// machine's disk does, for milliseconds) costs that one write the wait, not a second of
/// lazy writes.
pub const LAZY_LATE_IN_A_ROW: u32 = 3;

impl Replica {
    /// Starts phase 1 for every slot from the first one not known chosen.
    pub(super) fn start_election(&mut self, now: Nanos) {
        if let Some(until) = self.lease_delays_election(now) {
            // We granted someone a leader lease: we may not even promise ourselves.
            self.election_deadline = Some(until + 1);
            return;
        }
        let ballot = Ballot {
            round: self.round_seen.max(self.promised.round) + 1,
            node: self.id,
        };
        self.stats.elections_started += 1;
        self.observe_ballot(ballot);
        self.leader = None;
        self.promise(now, ballot);
        let from_slot = self.chosen_through + 1;
        self.role = Role::Candidate(Candidacy {
            ballot,
            from_slot,
            promised_mask: 0,
            found: BTreeMap::new(),
            known_chosen: 0,
            known_chosen_at: None,
        });
        self.reset_election_deadline(now);
        let prepare = Message::Prepare { ballot, from_slot };
        self.broadcast(&prepare);
        self.send(self.id, prepare);
    }

    /// Phase 1b arrives: collect it; with a quorum, lead.
    pub(super) fn on_promise(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        ballot: Ballot,
        chosen_through: Slot,
        entries: Vec<(Slot, Ballot, Batch)>,
    ) {
        let quorum = self.cfg.quorum();
        let Role::Candidate(c) = &mut self.role else {
            self.stats.messages_ignored += 1;
            return;
        };
        if c.ballot != ballot || c.promised_mask & from.bit() != 0 {
            self.stats.messages_ignored += 1;
            return;
        }
        c.promised_mask |= from.bit();
        if chosen_through > c.known_chosen {
            c.known_chosen = chosen_through;
            c.known_chosen_at = Some(from);
        }
        for (slot, accepted_at, batch) in entries {
            if slot < c.from_slot {
                continue;
            }
            if !super::batch_fits_record(&batch) {
                // Never durable anywhere, so never chosen: re-proposing it would only
                // fail to persist here. The slot is a hole unless another promise has it.
                self.stats.batches_too_large += 1;
                continue;
            }
            let newer = c.found.get(&slot).is_none_or(|(b, _)| accepted_at > *b);
            if newer {
                c.found.insert(slot, (accepted_at, batch));
            }
        }
        if c.promised_mask.count_ones() as usize >= quorum {
            self.become_leader(now);
        }
    }

    fn become_leader(&mut self, now: Nanos) {
        let Role::Candidate(c) = std::mem::replace(&mut self.role, Role::Follower) else {
            unreachable!("only a candidate becomes leader");
        };
        debug_assert_eq!(c.ballot, self.promised);
        self.stats.became_leader += 1;
        self.leader = Some(self.id);
        self.election_deadline = None;
        // Slots a promiser knows chosen are learned by catch-up, not proposed again.
        let settled = self.chosen_through.max(c.known_chosen);
        if c.known_chosen > self.commit_heard {
            self.commit_heard = c.known_chosen;
            self.catchup_hint = c.known_chosen_at;
        }
        let last_found = c.found.keys().next_back().copied().unwrap_or(0);
        let next_slot = last_found.max(settled) + 1;
        self.role = Role::Leader(Leadership {
            ballot: c.ballot,
            next_slot,
            in_flight: BTreeMap::new(),
            queue: crate::protocol::waiting::Queue::default(),
            last_heartbeat: now,
            expiry_slot: None,
            last_accept: 0,
            lazy: None,
        });
        self.early_role_changed();
        // Re-propose every slot a quorum might have chosen: the value accepted at the
        // highest ballot, or a no-op for a hole. Slots already known chosen stay as they are.
        let noop: Batch = Arc::from(vec![Request::noop()]);
        for slot in (settled + 1)..next_slot {
            let batch = match c.found.get(&slot) {
                Some((_, batch)) if !self.bugs.skip_phase1_recovery => batch.clone(),
                _ => noop.clone(),
            };
            self.propose_at(now, slot, batch);
        }
        self.send_heartbeat(now);
        // Lease reads wait until every slot recovered in phase 1 is applied.
        self.lease_term_changed(now, Some(next_slot - 1));
        self.maybe_request_catchup(now);
    }

    /// A peer promised a higher ballot than ours.
    pub(super) fn on_reject(&mut self, now: Nanos, promised: Ballot) {
        self.observe_ballot(promised);
        let ours = match &self.role {
            Role::Leader(l) => l.ballot,
            Role::Candidate(c) => c.ballot,
            Role::Follower => return,
        };
        if promised > ours {
            self.step_down_for(now, promised);
        }
    }

    /// Stops leading or campaigning if `ballot` outranks ours; waiting clients are told.
    pub(super) fn step_down_for(&mut self, now: Nanos, ballot: Ballot) {
        let ours = match &self.role {
            Role::Leader(l) => l.ballot,
            Role::Candidate(c) => c.ballot,
            Role::Follower => return,
        };
        if ballot <= ours {
            return;
        }
        self.stand_down(now, (ballot.node != self.id).then_some(ballot.node));
    }

    /// Stops leading or campaigning, with `leader` as the one known now; waiting clients
    /// are told.
    pub(super) fn stand_down(&mut self, now: Nanos, leader: Option<ReplicaId>) {
        let old = std::mem::replace(&mut self.role, Role::Follower);
        if matches!(old, Role::Follower) {
            return;
        }
        self.leader = leader;
        self.reset_election_deadline(now);
        if let Role::Leader(_) = old {
            self.early_role_changed();
            self.lease_term_changed(now, None);
            let hint = ClientReply::NotLeader {
                leader: self.leader,
            };
            let (waiting, out) = (&mut self.waiting, &mut self.outbox);
            crate::protocol::waiting::refuse_all(waiting, &hint, out);
        }
    }

    /// A client request: queue it for a slot if leading, else say who leads.
    pub(super) fn on_client_request(&mut self, now: Nanos, token: Token, req: Request) {
        let queue_max = self.cfg.proposal_queue_max;
        let Role::Leader(l) = &mut self.role else {
            let leader = self.leader.filter(|l| *l != self.id);
            self.reply(token, ClientReply::NotLeader { leader });
            return;
        };
        match admit(&mut l.queue, &mut self.waiting, queue_max, now, token, req) {
            Admission::Queued => {}
            Admission::Retry { old } => {
                let leader = Some(self.id);
                return self.reply(old, ClientReply::NotLeader { leader });
            }
            Admission::Full => {
                self.stats.requests_busy += 1;
                return self.reply(token, ClientReply::Busy);
            }
            Admission::AnsweredThere => self.reply(token, ClientReply::Logged),
        }
        self.try_propose(now);
    }

    /// Fills free pipeline slots with batches from the queue.
    pub(super) fn try_propose(&mut self, now: Nanos) {
        let (batch_max, depth) = (self.cfg.batch_max, self.cfg.pipeline_depth);
        // Room for the clock entry a batch may carry in front.
        let bytes_max = self
            .cfg
            .batch_bytes_max
            .saturating_sub(self.clock_reserve_bytes());
        let delay = self.batch_delay();
        loop {
            let Role::Leader(l) = &mut self.role else {
                return;
            };
            if l.in_flight.len() >= depth {
                return;
            }
            // While `on_requests` gathers a pipeline, only full batches leave; and while
            // our last accept waits for its sync, since a batch proposed now could not be
            // durable before the sync after that one anyway: the requests arriving
            // meanwhile leave together when it completes, one slot (one accept to each
            // follower, one vote back from each) per sync instead of one per arrival.
            // A lazy accept starts no sync: its slot's votes take the sync's place, and the
            // requests arriving meanwhile leave together once it is chosen (or its record
            // became durable after all).
            let syncing = l.last_accept > self.durable_id
                && l.lazy
                    .is_none_or(|z| z.record != l.last_accept || l.in_flight.contains_key(&z.slot));
            let delay = if self.gathering || syncing {
                Nanos::MAX
            } else {
                delay
            };
            let queued_since = l.queue.since;
            let Some(batch) = l.queue.take_batch(now, batch_max, bytes_max, delay) else {
                return;
            };
            self.stats.queue_wait_ns += now.saturating_sub(queued_since);
            let slot = l.next_slot;
            l.next_slot += 1;
            let needed = batch.iter().any(|r| r.cmd.reads_clock());
            let name_keys = !self.expiry_in_flight();
            let clock = self.clock_entry(now, needed, name_keys);
            if let Some(clock) = &clock
                && let (Command::Clock { expire, .. }, Role::Leader(l)) =
                    (&clock.cmd, &mut self.role)
                && !expire.is_empty()
            {
                l.expiry_slot = Some(slot);
            }
            // The clock entry goes in front; the requests are moved once, into the batch's
            // own allocation (an exact-size iterator), not shifted to make room first.
            let batch: Batch = clock.into_iter().chain(batch).collect();
            debug_assert!(super::batch_fits_record(&batch));
            self.stats.commands_proposed += batch.len() as u64;
            self.propose_at(now, slot, batch);
        }
    }

    /// Phase 2a for one slot: persist our own accept, send it to every follower.
    pub(super) fn propose_at(&mut self, now: Nanos, slot: Slot, batch: Batch) {
        let lazy = self.lazy_sync_allowed(now, &batch);
        let Role::Leader(l) = &mut self.role else {
            unreachable!("only a leader proposes");
        };
        let ballot = l.ballot;
        let lone = l.in_flight.is_empty();
        l.in_flight.insert(
            slot,
            InFlight {
                votes_mask: 0,
                proposed_at: now,
                sent_at: now,
                retransmits: 0,
                holders_mask: 0,
                holders_until: 0,
                waited_for_holders: false,
            },
        );
        self.stats.slots_proposed += 1;
        // A lone slot is chosen by our vote and a follower's, and the follower's comes
        // later (its write starts after the accept's trip): the accepts go out before our
        // write's submission. Unless the batch carries a forward: its follower answers it
        // from its own vote and ours (early learning), so ours goes first. Not while other
        // slots are in flight (load): tried there, the main job lost 2–6 %
        // (results/sends-first-20261207/).
        let sync = if lazy {
            SyncStart::Lazy
        } else if !lone || self.votes_to_followers(&batch) {
            SyncStart::Now
        } else {
            SyncStart::AfterSends
        };
        self.accept_locally(slot, ballot, batch.clone(), sync);
        if lazy && let Role::Leader(l) = &mut self.role {
            l.lazy = Some(LazySlot {
                slot,
                record: l.last_accept,
                wait_until: None,
                forced: false,
            });
            self.stats.slots_lazy += 1;
        }
        // Our own vote counts only once our accept is durable; so does the one followers
        // may learn the slot from (`early.rs`), sent after the accept.
        let vote = self.accepted_msg(now, ballot, slot);
        self.vote_to_followers(slot, &batch, &vote);
        self.broadcast(&Message::Accept {
            ballot,
            slot,
            batch,
            commit: self.chosen_through,
        });
        if lazy && self.bugs.lazy_vote_counted {
            self.send(self.id, vote);
        } else {
            self.send_when_durable(self.id, vote);
        }
    }

    /// Lazy leader sync (`lazy_leader_sync`): whether this leader may write its accept of
    /// `batch` without a sync of its own.
    ///
    /// With three replicas the two followers make a quorum without the leader. On a disk
    /// the replicas share (a cluster on one machine), the leader's record reaches it first
    /// and the followers' queue behind its write and flush; written lazily, it waits for
    /// the next sync instead (the next batch's, the tick's), and the slot is chosen by the
    /// followers' durable votes. Safe because nobody counts a vote before its record is
    /// durable: a leader that crashes loses only votes nobody counted, and comes back as
    /// any follower that missed some accepts. If the last vote the leader's own would
    /// replace has not come `lazy_sync_wait_us` after the others (a follower slow or
    /// gone), the driver asks [`Replica::lazy_sync_due`] and syncs: then the leader's vote
    /// counts as it always did (and after [`LAZY_LATE_IN_A_ROW`] such slots lazy writes
    /// stay off for [`LAZY_OFF_NS`]).
    ///
    /// Only for a batch of at least `lazy_sync_batch_min` client commands: a lone write
    /// is best served by the faster two of three disks, many waiting ones by one write
    /// less (docs/ARCHITECTURE.md, "Lazy leader sync").
    ///
    /// Only when no other slot is in flight; while it is, requests gather into the next
    /// batch as they would while the leader's sync ran (`try_propose`). Not for a batch
    /// whose vote goes to the followers (early learning counts the leader's durable vote),
    /// and not in quorum-lease mode, where a write waits for the vote of every lease
    /// holder, the leader's own among them when it holds a lease.
    fn lazy_sync_allowed(&self, now: Nanos, batch: &Batch) -> bool {
        let Role::Leader(l) = &self.role else {
            return false;
        };
        self.cfg.lazy_leader_sync
            && self.cfg.replicas == 3
            && self.cfg.read_mode != ReadMode::QuorumLease
            && l.in_flight.is_empty()
            && now >= self.lazy_off_until
            && !self.votes_to_followers(batch)
            && batch
                .iter()
                .filter(|r| !matches!(r.cmd, Command::Clock { .. }))
                .count()
                >= self.cfg.lazy_sync_batch_min
    }

    /// A lazy slot that has every vote of a quorum but the leader's own: wait
    /// `lazy_sync_wait_us` for one more follower, then let the driver ask whether to
    /// sync (`lazy_sync_due`).
    fn start_lazy_wait(&mut self, now: Nanos, slot: Slot) {
        let quorum = self.cfg.quorum();
        let me = self.id.bit();
        let durable = self.durable_id;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let Some(z) = &mut l.lazy else {
            return;
        };
        let Some(f) = l.in_flight.get(&slot) else {
            return;
        };
        if z.slot != slot || z.wait_until.is_some() || z.record <= durable {
            return;
        }
        if ((f.votes_mask & !me).count_ones() as usize) + 1 < quorum {
            return;
        }
        let after = self.cfg.lazy_sync_wait_us * super::NANOS_PER_US;
        z.wait_until = Some(now + after);
        self.outbox.push(Action::CheckLazySync { after });
    }

    /// Whether a lazy slot's wait for its last follower vote (`start_lazy_wait`) still
    /// matters: it started, has not run out, and the slot waits for a vote with the
    /// leader's record not durable. Once it does not, the driver's timer for it may go.
    pub fn lazy_wait_running(&self) -> bool {
        self.lazy_wait_end().is_some()
    }

    /// When the running lazy wait ends (see [`Replica::lazy_wait_running`]).
    fn lazy_wait_end(&self) -> Option<Nanos> {
        let Role::Leader(l) = &self.role else {
            return None;
        };
        let z = l.lazy.as_ref()?;
        let waits = !z.forced && z.record > self.durable_id && l.in_flight.contains_key(&z.slot);
        z.wait_until.filter(|_| waits)
    }

    /// The wait of `start_lazy_wait` ran out: whether the lazy record should be synced
    /// now, because its slot still waits for a vote. After [`LAZY_LATE_IN_A_ROW`] such
    /// slots in a row, lazy writes stay off for [`LAZY_OFF_NS`] (a follower is slow or
    /// gone: every lazy slot would wait as long).
    pub fn lazy_sync_due(&mut self, now: Nanos) -> bool {
        // A check of an earlier lazy slot's wait may end during this one's: only this
        // slot's own wait counts.
        if self.lazy_wait_end().is_none_or(|t| now < t) {
            return false;
        }
        if let Role::Leader(l) = &mut self.role
            && let Some(z) = &mut l.lazy
        {
            z.forced = true;
        }
        self.stats.lazy_syncs_forced += 1;
        self.lazy_late_in_a_row += 1;
        if self.lazy_late_in_a_row >= LAZY_LATE_IN_A_ROW {
            self.lazy_late_in_a_row = 0;
            self.lazy_off_until = now + LAZY_OFF_NS;
        }
        true
    }

    /// Phase 2b arrives: count it; a quorum chooses the slot (in quorum-lease mode, once
    /// every lease holder the voters reported has it too, or its lease ran out).
    pub(super) fn on_accepted(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        ballot: Ballot,
        slot: Slot,
        holders: u8,
        lease_left: Nanos,
    ) {
        let drift = self.cfg.max_clock_drift_ppm;
        let Role::Leader(l) = &mut self.role else {
            if !self.on_leader_vote(now, from, ballot, slot) {
                self.stats.messages_ignored += 1;
            }
            return;
        };
        if l.ballot != ballot {
            self.stats.messages_ignored += 1;
            return;
        }
        let Some(f) = l.in_flight.get_mut(&slot) else {
            return; // Already chosen: a late or repeated vote.
        };
        f.votes_mask |= from.bit();
        if holders != 0 {
            f.holders_mask |= holders;
            let until = now + crate::protocol::lease::surely_past(lease_left, drift);
            f.holders_until = f.holders_until.max(until);
        }
        self.maybe_choose(now, slot);
        self.start_lazy_wait(now, slot);
    }

    /// Chooses `slot` if its votes allow: a quorum, and every reported lease holder's vote
    /// or the end of its lease.
    fn maybe_choose(&mut self, now: Nanos, slot: Slot) {
        let quorum = self.cfg.quorum();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let ballot = l.ballot;
        let Some(f) = l.in_flight.get_mut(&slot) else {
            return;
        };
        if (f.votes_mask.count_ones() as usize) < quorum {
            return;
        }
        let missing = f.holders_mask & !f.votes_mask;
        if missing != 0 && now < f.holders_until {
            if !f.waited_for_holders {
                f.waited_for_holders = true;
                self.stats.lease_write_waits += 1;
            }
            return;
        }
        if missing != 0 {
            // A holder never answered: its lease had to run out (it is revoked).
            self.stats.lease_revocations += 1;
        }
        let (proposed_at, voters) = (f.proposed_at, f.votes_mask);
        l.in_flight.remove(&slot);
        if l.lazy.is_some_and(|z| z.slot == slot && !z.forced) {
            // Chosen without waiting out the lazy wait.
            self.lazy_late_in_a_row = 0;
        }
        self.stats.slots_chosen_led += 1;
        self.stats.commit_wait_ns += now.saturating_sub(proposed_at);
        let forwards = (self.cfg.replicas as u32) > voters.count_ones()
            && self
                .log
                .get(&slot)
                .is_some_and(|e| self.votes_to_followers(&e.batch));
        let e = self
            .log
            .get_mut(&slot)
            .expect("proposed slot is in the log");
        debug_assert_eq!(e.ballot, ballot);
        e.chosen = true;
        self.advance_chosen(now);
        if forwards && self.chosen_through >= slot {
            self.commit_to_late_followers(ballot, voters);
        }
        self.try_propose(now);
    }

    /// A slot carrying forwards was chosen before some followers' votes came: each of
    /// them may wait to answer a forwarded read of its own until it knows the slot chosen
    /// (`early.rs`), and without its own durable accept only a commit index tells it.
    /// So it gets the commit index now rather than with the next accept or heartbeat.
    fn commit_to_late_followers(&mut self, ballot: Ballot, voters: u8) {
        let msg = Message::Commit {
            ballot,
            commit: self.chosen_through,
        };
        for r in 0..self.cfg.replicas {
            let to = ReplicaId(r as u8);
            if to != self.id && voters & to.bit() == 0 {
                self.send(to, msg.clone());
            }
        }
    }

    /// Heartbeats, retransmissions of unanswered accepts, and batch deadlines.
    pub(super) fn leader_tick(&mut self, now: Nanos) {
        let heartbeat = self.heartbeat_interval();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        // Slots that waited for a silent lease holder whose lease has now run out.
        let waiting: Vec<Slot> = l
            .in_flight
            .iter()
            .filter(|(_, f)| f.holders_mask & !f.votes_mask != 0 && now >= f.holders_until)
            .map(|(s, _)| *s)
            .collect();
        for slot in waiting {
            self.maybe_choose(now, slot);
        }
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let ballot = l.ballot;
        let commit = self.chosen_through;
        let mut resend = Vec::new();
        for (slot, f) in l.in_flight.iter_mut() {
            // TCP loses nothing while a link is up, so a missing vote usually means the
            // accept is still queued, crossing or being logged (a batch of tens of MiB
            // takes seconds on a slow disk); only a reconnect loses it. Resending at a
            // fixed interval would queue copy after copy of a large batch ahead of the
            // heartbeats, so the interval doubles with each retransmission, up to
            // 2^RETRANSMIT_BACKOFF_SHIFT_MAX times the first.
            let backoff = 1 << f.retransmits.min(RETRANSMIT_BACKOFF_SHIFT_MAX);
            if now >= f.sent_at + 2 * heartbeat * backoff {
                f.sent_at = now;
                f.retransmits += 1;
                resend.push((*slot, f.votes_mask));
            }
        }
        for (slot, votes_mask) in resend {
            let batch = self.log[&slot].batch.clone();
            for r in 0..self.cfg.replicas {
                let to = ReplicaId(r as u8);
                if to != self.id && votes_mask & to.bit() == 0 {
                    self.stats.accepts_retransmitted += 1;
                    self.outbox.push(Action::Send {
                        to,
                        msg: Message::Accept {
                            ballot,
                            slot,
                            batch: batch.clone(),
                            commit,
                        },
                    });
                }
            }
        }
        if let Role::Leader(l) = &self.role
            && now >= l.last_heartbeat + heartbeat
        {
            self.send_heartbeat(now);
        }
        self.try_propose(now);
        self.propose_expiry(now);
    }

    pub(super) fn send_heartbeat(&mut self, now: Nanos) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        l.last_heartbeat = now;
        let msg = Message::Commit {
            ballot: l.ballot,
            commit: self.chosen_through,
        };
        self.broadcast(&msg);
    }
}
