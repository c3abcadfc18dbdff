//! Leader-lease reads (`read_mode = leader-lease`; the Raft dissertation §6.4, and etcd's
//! lease reads on top of check-quorum), with the clock arithmetic and the clock-rate check
//! Multi-Paxos's leases use (`protocol::lease`, `protocol::clock_check`).
//!
//! - Every heartbeat the leader sends `LeaseRequest { term, seq }` to every follower and
//!   grants itself one. A follower that accepts the term grants it: it notes the grant
//!   (from when the request *arrived*, `lease_ms` on its own clock) and answers
//!   `LeaseGrant` once its term is durable.
//! - With a quorum of grants for one request (its own included), the leader holds the
//!   lease from when it *sent* that request for what is surely within `lease_ms` on every
//!   clock (`lease::surely_within`: shortened by twice the drift bound).
//! - A replica whose grant to another may still run on its own clock grants no pre-vote
//!   and no vote to anyone else (nor adopts their term) and starts no election. Any two
//!   quorums intersect, so no other leader is elected before the lease ended everywhere
//!   it counts; a new leader (which voted for itself) waited out what it granted.
//! - A restarted replica forgot what it granted: for `lease_ms` plus drift
//!   (`lease::surely_past`) after its first step it treats every replica as holding a
//!   grant from it. Nothing extra is persisted: a grant made before the crash ran from a
//!   time before the restart, so it surely ended by then on the new clock.
//! - The leader answers a read locally while its lease is valid, the clocks are trusted,
//!   and it applied an entry of its own term (the no-op: everything committed before it
//!   is applied); otherwise the read goes through the log.
//! - Clock-rate check: each replica probes its peers' clocks (`ClockProbe`, every eighth
//!   of `clock_check_window_ms`); while any peer is measured beyond the bound it serves no
//!   lease read, grants no lease and drops the one it holds, and a leader counts grants
//!   only from peers measured within the bound.

use super::{Msg, Replica, Role};
use crate::config::ReadMode;
use crate::protocol::clock_check::{ClockCheck, Verdict};
use crate::protocol::kv::{Command, Reply};
use crate::protocol::lease::{Grants, Holder, surely_past, surely_within};
use crate::protocol::message::Message;
use crate::protocol::paxos::ClockReport;
use crate::protocol::types::{NANOS_PER_MS, Nanos, ReplicaId};

/// A replica's lease state: what it holds as leader, what it granted, and its clock
/// checks of its peers.
#[derive(Clone, Debug)]
pub(super) struct Leases {
    /// As leader: requests sent and grants counted.
    holder: Holder,
    /// Until when each replica may hold a grant from us.
    grants: Grants,
    clocks: ClockCheck,
    /// When the leader last asked for its lease.
    requested_at: Option<Nanos>,
    /// The first step happened (a restarted replica's amnesia starts then).
    awake: bool,
}

impl Leases {
    pub(super) fn new(drift_ppm: u64, window: Nanos) -> Leases {
        Leases {
            holder: Holder::default(),
            grants: Grants::default(),
            clocks: ClockCheck::new(drift_ppm, window),
            requested_at: None,
            awake: false,
        }
    }
}

impl Replica {
    fn lease_mode(&self) -> bool {
        self.cfg.read_mode == ReadMode::LeaderLease
    }

    fn lease(&self) -> Nanos {
        self.cfg.lease_ms * NANOS_PER_MS
    }

    /// The first input after start: whatever we granted before is forgotten.
    pub(super) fn wake(&mut self, now: Nanos) {
        if self.lease_mode() && !self.leases.awake {
            self.leases.awake = true;
            let until = now + surely_past(self.lease(), self.cfg.max_clock_drift_ppm);
            self.leases.grants.forget_all_until(until);
        }
    }

    /// Whether a grant of ours to someone other than `candidate` may still run: then
    /// `candidate` gets no pre-vote and no vote from us.
    pub(super) fn lease_blocks_vote(&self, now: Nanos, candidate: ReplicaId) -> bool {
        self.lease_mode()
            && !self.bugs.vote_inside_lease
            && self
                .leases
                .grants
                .other_than(candidate.index(), now, self.cfg.replicas)
                .is_some()
    }

    /// Whether we may not campaign now: a grant of ours to another replica may still run.
    pub(super) fn lease_blocks_election(&self, now: Nanos) -> bool {
        self.lease_blocks_vote(now, self.id)
    }

    /// Whether clocks are trusted for leases now: no peer is measured beyond the bound.
    pub fn clocks_ok(&self) -> bool {
        self.bugs.trust_clocks || self.leases.clocks.beyond_mask() == 0
    }

    /// What the clock-rate check knows now.
    pub fn clock_report(&self) -> ClockReport {
        ClockReport {
            trusted: self.clocks_ok(),
            within_mask: self.leases.clocks.within_mask(),
            beyond_mask: self.leases.clocks.beyond_mask(),
            drift_ppm_max: self.leases.clocks.drift_ppm_max(),
        }
    }

    /// The leader may answer a read from its state machine now.
    pub(super) fn lease_read_ready(&self, now: Nanos) -> bool {
        self.lease_mode()
            && matches!(self.role, Role::Leader(_))
            && self.clocks_ok()
            && self.leases.holder.valid(now)
            && self.log.term_at(self.applied) == Some(self.term)
    }

    /// A read answered under the lease, without a step (`Core::read_now`).
    pub(super) fn lease_read_now(&mut self, now: Nanos, cmd: &Command) -> Option<Reply> {
        if !cmd.is_read_only() || !self.lease_mode() {
            return None;
        }
        self.wake(now);
        if !self.lease_read_ready(now) {
            return None;
        }
        self.stats.reads_local += 1;
        Some(crate::protocol::reply_buf::read_to_send(&self.kv, cmd))
    }

    /// Every tick in leader-lease mode: clock probes, and the leader's lease request
    /// each heartbeat.
    pub(super) fn lease_tick(&mut self, now: Nanos) {
        if !self.lease_mode() {
            return;
        }
        self.clocks_tick(now);
        let due = self
            .leases
            .requested_at
            .is_none_or(|t| now >= t + self.heartbeat_interval());
        if matches!(self.role, Role::Leader(_)) && due {
            self.request_lease(now);
        }
    }

    /// The leader asks every follower for a lease and grants itself one.
    pub(super) fn request_lease(&mut self, now: Nanos) {
        if !self.lease_mode() {
            return;
        }
        self.leases.requested_at = Some(now);
        let seq = self.leases.holder.request(now);
        let lease = self.lease();
        self.leases.grants.grant(self.id.index(), now, lease);
        self.count_grant(self.id, seq);
        let term = self.term;
        self.broadcast(&Msg::LeaseRequest { term, seq });
    }

    /// The leader of `term` asks for a lease.
    pub(super) fn on_lease_request(&mut self, now: Nanos, from: ReplicaId, term: u64, seq: u64) {
        if term < self.term || !self.lease_mode() {
            self.stats.messages_ignored += 1;
            return;
        }
        self.heard_leader(now, term, from);
        if self.recovering() {
            // It may have forgotten a vote: it promises nothing (`recovery.rs`).
            self.stats.votes_withheld += 1;
            return;
        }
        if !self.may_grant_to(from) {
            self.stats.leases_untrusted += 1;
            return;
        }
        let lease = self.lease();
        self.leases.grants.grant(from.index(), now, lease);
        // A grant is a promise in this term: it leaves once the term is durable.
        let term = self.term;
        self.send_when_durable(from, Msg::LeaseGrant { term, seq });
    }

    /// A follower granted our lease request `seq`.
    pub(super) fn on_lease_grant(&mut self, from: ReplicaId, term: u64, seq: u64) {
        if term != self.term || !matches!(self.role, Role::Leader(_)) {
            self.stats.messages_ignored += 1;
            return;
        }
        if !self.grant_counts(from) {
            self.stats.leases_untrusted += 1;
            return;
        }
        self.count_grant(from, seq);
    }

    fn count_grant(&mut self, from: ReplicaId, seq: u64) {
        let within = surely_within(self.lease(), self.cfg.max_clock_drift_ppm);
        let quorum = self.cfg.quorum();
        self.leases
            .holder
            .on_grant(seq, from.bit(), 0, quorum, within);
    }

    /// Leadership ended: nothing is served under the lease again.
    pub(super) fn drop_lease(&mut self) {
        self.leases.holder.drop_lease();
        self.leases.requested_at = None;
    }

    /// Whether a grant from `from` counts: ours, or from a peer whose clock rate was
    /// measured within the bound.
    fn grant_counts(&self, from: ReplicaId) -> bool {
        self.bugs.trust_clocks
            || from == self.id
            || self.leases.clocks.verdict(from) == Verdict::Within
    }

    /// Whether a lease request from `from` may be granted, as far as clocks go.
    fn may_grant_to(&self, from: ReplicaId) -> bool {
        self.bugs.trust_clocks
            || (self.clocks_ok() && self.leases.clocks.verdict(from) != Verdict::Beyond)
    }

    /// Forget silent peers, probe when due.
    fn clocks_tick(&mut self, now: Nanos) {
        if self.cfg.replicas == 1 {
            return;
        }
        let was_ok = self.clocks_ok();
        self.leases.clocks.tick(now);
        self.after_clock_change(was_ok);
        if self.leases.clocks.probe_due(now) {
            for r in 0..self.cfg.replicas {
                let to = ReplicaId(r as u8);
                if to != self.id {
                    self.outbox.push(crate::protocol::outbox::Action::Send {
                        to,
                        msg: Message::ClockProbe { sent: now },
                    });
                }
            }
        }
    }

    /// A peer probes our clock, or echoes our probe.
    pub(super) fn on_clock_message(&mut self, now: Nanos, from: ReplicaId, msg: Message) {
        match msg {
            Message::ClockProbe { sent } => {
                self.outbox.push(crate::protocol::outbox::Action::Send {
                    to: from,
                    msg: Message::ClockEcho { sent, at: now },
                })
            }
            Message::ClockEcho { sent, at } => {
                let was_ok = self.clocks_ok();
                let was_beyond = self.leases.clocks.verdict(from) == Verdict::Beyond;
                self.leases.clocks.on_echo(now, from, sent, at);
                if !was_beyond && self.leases.clocks.verdict(from) == Verdict::Beyond {
                    self.stats.clock_checks_failed += 1;
                }
                self.after_clock_change(was_ok);
            }
            _ => self.stats.messages_ignored += 1,
        }
    }

    fn after_clock_change(&mut self, was_ok: bool) {
        if was_ok && !self.clocks_ok() {
            // What we hold was counted on clocks we no longer trust.
            self.leases.holder.drop_lease();
        }
    }
}
