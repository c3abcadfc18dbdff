//! Reads outside the log: leader leases, quorum leases, digest and quorum reads.
//!
//! `log` mode never comes here. In the others a read-only command is answered from the
//! local state machine when that is safe, and falls back to the log otherwise (a follower
//! then answers `NotLeader` and the node forwards the read to the leader).
//!
//! - `leader-lease`: the leader asks every replica for a lease each heartbeat; an acceptor
//!   grants it only to the leader of the ballot it promised, and promises no other
//!   candidate until the grant ran out on its clock. With a majority of grants the leader
//!   answers reads once it applied every slot it recovered in phase 1.
//! - `quorum-lease`: each holder asks every replica for a lease each heartbeat. A grantor
//!   reports its running grants in every `Accepted`; the leader commits a slot only when
//!   each reported holder accepted it too (so it blocks reads of its keys until applied)
//!   or its lease ran out. A grant carries the grantor's highest accepted slot (the
//!   fence) for writes it accepted before granting: the holder waits to apply it.
//! - `digest` / `quorum`: see [`crate::protocol::digest`].
//!
//! A restarted replica forgot what it granted: for one lease (with drift) it treats every
//! replica as a holder and promises nobody in leader-lease mode.

use std::collections::VecDeque;

use bytes::Bytes;

use super::Replica;
use crate::config::{LeaseHolders, ReadMode, ReadRepair};
use crate::protocol::digest::{self, KeyView, Plan, View};
use crate::protocol::kv::{Command, Entry, Item, Kv, Reply, Request};
use crate::protocol::lease::{surely_past, surely_within};
use crate::protocol::message::{Batch, Message};
use crate::protocol::outbox::{Action, ClientReply};
use crate::protocol::reply_buf;
use crate::protocol::types::{Ballot, NANOS_PER_MS, Nanos, ReplicaId, Slot, Token};

/// A digest or quorum read in progress at the replica that received it.
#[derive(Clone, Debug)]
pub(super) struct QuorumRead {
    token: Token,
    req: Request,
    started: Nanos,
    /// Peer reports: who, and what.
    views: Vec<(ReplicaId, View)>,
    state: ReadState,
}

#[derive(Clone, Debug)]
enum ReadState {
    /// Waiting for reports from a quorum.
    Collecting,
    /// Asked `from` for its entries; they must be applied through `target`.
    Fetching { from: ReplicaId, target: Slot },
    /// Waiting for the local replica to apply `target`.
    Waiting { target: Slot },
    /// Answered internally; waiting for repaired replicas (blocking repair).
    Repairing { unconfirmed: u8, reply: ClientReply },
}

/// Reads answered under a lease wait here for a pending write or the fence.
#[derive(Clone, Debug)]
pub(super) struct LeaseWaiter {
    deadline: Nanos,
    token: Token,
    req: Request,
}

/// Read-path state of a replica.
#[derive(Clone, Debug, Default)]
pub(super) struct Reads {
    /// Leader lease (as leader) or quorum lease (as holder).
    pub(super) holder: crate::protocol::lease::Holder,
    /// What this replica granted.
    pub(super) grants: crate::protocol::lease::Grants,
    /// When this replica last asked for its lease.
    requested_at: Option<Nanos>,
    /// Leader lease: reads wait until every slot the leader recovered is applied.
    pub(super) floor: Slot,
    pub(super) waiters: VecDeque<LeaseWaiter>,
    pub(super) quorum_reads: std::collections::BTreeMap<u64, QuorumRead>,
    next_id: u64,
    /// The applied index when waiting reads were last looked at.
    checked_at: Slot,
    /// The first step happened (a restarted replica's amnesia starts then).
    pub(super) awake: bool,
}

impl Replica {
    fn lease(&self) -> Nanos {
        self.cfg.lease_ms * NANOS_PER_MS
    }

    /// Limits reads waiting here, like the proposal queue limits writes.
    fn reads_full(&self) -> bool {
        self.reads.waiters.len() + self.reads.quorum_reads.len() >= self.cfg.proposal_queue_max
    }

    /// The first input after start: whatever we granted before is forgotten.
    pub(super) fn wake(&mut self, now: Nanos) {
        if !self.reads.awake {
            self.reads.awake = true;
            let until = now + surely_past(self.lease(), self.cfg.max_clock_drift_ppm);
            self.reads.grants.forget_all_until(until);
        }
    }

    /// Leader lease: whether a promise to `candidate` must wait for a grant to run out.
    pub(super) fn lease_blocks_promise(&self, now: Nanos, candidate: ReplicaId) -> bool {
        self.cfg.read_mode.leases() == Some(LeaseHolders::Leader)
            && self
                .reads
                .grants
                .other_than(candidate.index(), now, self.cfg.replicas)
                .is_some()
    }

    /// Leader lease: when this replica may start an election, if a grant holds it back.
    pub(super) fn lease_delays_election(&self, now: Nanos) -> Option<Nanos> {
        if self.cfg.read_mode.leases() != Some(LeaseHolders::Leader) {
            return None;
        }
        self.reads
            .grants
            .other_than(self.id.index(), now, self.cfg.replicas)
    }

    /// The vote for `slot`, with the lease holders a quorum-lease leader must wait for.
    pub(super) fn accepted_msg(&self, now: Nanos, ballot: Ballot, slot: Slot) -> Message {
        let (holders, lease_left) = if self.cfg.read_mode.leases() == Some(LeaseHolders::Configured)
        {
            self.reads.grants.active(now, self.cfg.lease_holder_mask())
        } else {
            (0, 0)
        };
        Message::Accepted {
            ballot,
            slot,
            holders,
            lease_left,
        }
    }

    /// Tracks the keys a log entry writes, where a read mode needs it.
    pub(super) fn note_pending(&mut self, slot: Slot, batch: &Batch) {
        if let Some(p) = &mut self.pending {
            for req in batch.iter() {
                p.note(slot, &req.cmd);
            }
        }
    }

    /// Recomputes the pending writes from the log (after recovery or a snapshot).
    pub(super) fn rebuild_pending(&mut self) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        p.clear();
        for (slot, e) in self.log.range(self.applied + 1..) {
            for req in e.batch.iter() {
                p.note(*slot, &req.cmd);
            }
        }
        self.pending = Some(p);
    }

    /// A read-only command in a mode other than `log`.
    pub(super) fn on_read(&mut self, now: Nanos, token: Token, req: Request) {
        match self.cfg.read_mode {
            // Read-index is Raft's (refused with Multi-Paxos by `ProtocolConfig::validate`).
            ReadMode::Log | ReadMode::ReadIndex => self.read_through_log(now, token, req),
            ReadMode::LeaderLease => {
                if self.leader_lease_read_ready(now) && self.no_voted_write(&req.cmd) {
                    self.answer_locally(now, token, &req);
                } else {
                    self.read_through_log(now, token, req);
                }
            }
            ReadMode::QuorumLease => self.quorum_lease_read(now, token, req),
            ReadMode::Digest | ReadMode::Quorum => self.start_quorum_read(now, token, req),
        }
    }

    /// The baseline path: the leader proposes the read; a follower says who leads.
    fn read_through_log(&mut self, now: Nanos, token: Token, req: Request) {
        if self.leading().is_some() {
            self.stats.reads_log += 1;
        } else {
            self.stats.reads_redirected += 1;
        }
        self.on_client_request(now, token, req);
    }

    fn answer_locally(&mut self, now: Nanos, token: Token, req: &Request) {
        let reply = self.local_read(now, &req.cmd);
        self.reply(token, ClientReply::Done(reply));
    }

    /// The answer to a read-only command from this replica's state.
    fn local_read(&mut self, now: Nanos, cmd: &Command) -> Reply {
        self.local_read_with(now, cmd, Kv::read)
    }

    /// [`Replica::local_read`] reading the state with `read`.
    fn local_read_with(
        &mut self,
        now: Nanos,
        cmd: &Command,
        read: fn(&Kv, &Command) -> Reply,
    ) -> Reply {
        self.stats.reads_local += 1;
        if self.bugs.expire_local_clock {
            let clock_ms = self.clock.now_ms(now, &self.kv);
            let entries: Vec<Option<Entry>> = cmd
                .read_keys()
                .iter()
                .map(|k| {
                    let due = self
                        .kv
                        .expiry()
                        .deadline(k)
                        .is_some_and(|at| at <= clock_ms);
                    self.kv.get(k).filter(|_| !due).map(Item::entry)
                })
                .collect();
            return cmd.read_reply(&entries);
        }
        read(&self.kv, cmd)
    }

    /// A read this replica can answer at once, as [`Replica::on_request`] would answer it
    /// without waiting: a lease read when the lease is valid, everything before it applied
    /// and (quorum lease) no write to its keys pending. No session, no token, no step: the
    /// driver answers the client itself. `None`: submit it.
    pub fn read_now(&mut self, now: Nanos, cmd: &Command) -> Option<Reply> {
        if !cmd.is_read_only() || self.recovering.is_some() {
            return None;
        }
        self.wake(now);
        let ready = match self.cfg.read_mode {
            ReadMode::LeaderLease => self.leader_lease_read_ready(now) && self.no_voted_write(cmd),
            ReadMode::QuorumLease => {
                self.is_lease_holder() && self.lease_valid(now) && self.lease_read_ready(cmd)
            }
            ReadMode::Log | ReadMode::Digest | ReadMode::Quorum | ReadMode::ReadIndex => false,
        };
        // Sent at once and dropped: its value need not hold its item (`reply_buf`).
        ready.then(|| self.local_read_with(now, cmd, reply_buf::read_to_send))
    }

    /// Leader lease: this replica leads, holds the lease and applied every slot it
    /// recovered.
    fn leader_lease_read_ready(&self, now: Nanos) -> bool {
        self.leading().is_some() && self.lease_valid(now) && self.applied >= self.reads.floor
    }

    /// The lease this replica holds is valid at `now`, and clocks are trusted.
    fn lease_valid(&self, now: Nanos) -> bool {
        self.clocks_ok() && self.reads.holder.valid(now)
    }

    fn is_lease_holder(&self) -> bool {
        // A recovering replica's log may lack acknowledged writes: it holds no lease.
        self.cfg.lease_holder_mask() & self.id.bit() != 0 && self.recovering.is_none()
    }

    /// Quorum lease: answer now, wait for a pending write, or fall back to the log.
    fn quorum_lease_read(&mut self, now: Nanos, token: Token, req: Request) {
        if !self.is_lease_holder() || !self.lease_valid(now) {
            self.read_through_log(now, token, req);
            return;
        }
        if self.lease_read_ready(&req.cmd) {
            self.answer_locally(now, token, &req);
            return;
        }
        if self.reads_full() {
            self.stats.requests_busy += 1;
            self.reply(token, ClientReply::Busy);
            return;
        }
        self.stats.lease_read_waits += 1;
        self.reads.waiters.push_back(LeaseWaiter {
            deadline: now + self.lease(),
            token,
            req,
        });
    }

    /// A holder may answer once it applied the fence and no write to the keys is pending.
    fn lease_read_ready(&self, cmd: &Command) -> bool {
        if self.applied < self.reads.holder.fence() {
            return false;
        }
        let pending = self.pending.as_ref().expect("kept in quorum-lease mode");
        cmd.read_keys().iter().all(|k| pending.newest(k).is_none())
    }

    /// Every tick: ask for leases, expire waiting reads.
    pub(super) fn reads_tick(&mut self, now: Nanos) {
        self.clocks_tick(now);
        if self.wants_lease()
            && self
                .reads
                .requested_at
                .is_none_or(|t| now >= t + self.heartbeat_interval())
        {
            self.request_lease(now);
        }
        self.check_waiting_reads(now, true);
        let timeout = self.cfg.election_timeout_ms * NANOS_PER_MS;
        let expired: Vec<u64> = self
            .reads
            .quorum_reads
            .iter()
            .filter(|(_, r)| now >= r.started + timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let read = self.reads.quorum_reads.remove(&id).expect("listed");
            match read.state {
                // The repairs went out; answer without their confirmation.
                ReadState::Repairing { reply, .. } => {
                    self.stats.reads_quorum += 1;
                    self.reply(read.token, reply);
                }
                _ => self.read_through_log(now, read.token, read.req),
            }
        }
    }

    /// Whether this replica should hold a read lease now.
    fn wants_lease(&self) -> bool {
        match self.cfg.read_mode.leases() {
            Some(LeaseHolders::Leader) => self.leading().is_some(),
            Some(LeaseHolders::Configured) => self.is_lease_holder(),
            None => false,
        }
    }

    /// Sends a lease request to every replica, itself included.
    pub(super) fn request_lease(&mut self, now: Nanos) {
        self.reads.requested_at = Some(now);
        let seq = self.reads.holder.request(now);
        let msg = Message::LeaseRequest {
            seq,
            ballot: self.promised,
        };
        self.broadcast(&msg);
        self.send(self.id, msg);
    }

    /// Grantor: grant a lease if the mode allows it.
    pub(super) fn on_lease_request(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        seq: u64,
        ballot: Ballot,
    ) {
        let fence = match self.cfg.read_mode.leases() {
            // Only the leader of the ballot we promised; the grant holds back every other
            // candidate (see `lease_blocks_promise`).
            Some(LeaseHolders::Leader) if ballot == self.promised && ballot.node == from => 0,
            Some(LeaseHolders::Configured) if self.cfg.lease_holder_mask() & from.bit() != 0 => {
                let accepted = self.log.keys().next_back().copied().unwrap_or(0);
                accepted.max(self.chosen_through)
            }
            Some(LeaseHolders::Leader | LeaseHolders::Configured) | None => {
                self.stats.messages_ignored += 1;
                return;
            }
        };
        if !self.may_grant_to(from) {
            self.stats.leases_untrusted += 1;
            return;
        }
        let lease = self.lease();
        self.reads.grants.grant(from.index(), now, lease);
        self.send(from, Message::LeaseGrant { seq, fence });
    }

    /// Holder: count a grant.
    pub(super) fn on_lease_grant(&mut self, from: ReplicaId, seq: u64, fence: Slot) {
        if !self.wants_lease() {
            self.stats.messages_ignored += 1;
            return;
        }
        if !self.grant_counts(from) {
            self.stats.leases_untrusted += 1;
            return;
        }
        let within = surely_within(self.lease(), self.cfg.max_clock_drift_ppm);
        let quorum = self.cfg.quorum();
        self.reads
            .holder
            .on_grant(seq, from.bit(), fence, quorum, within);
    }

    /// Leadership starts or ends: a leader lease belongs to one term.
    pub(super) fn lease_term_changed(&mut self, now: Nanos, floor: Option<Slot>) {
        if self.cfg.read_mode.leases() != Some(LeaseHolders::Leader) {
            return;
        }
        self.reads.holder.drop_lease();
        self.reads.requested_at = None;
        if let Some(floor) = floor {
            self.reads.floor = floor;
            self.request_lease(now);
        }
    }

    /// Answers reads that waited, once the state they need is here; called after steps.
    pub(super) fn check_waiting_reads(&mut self, now: Nanos, timed: bool) {
        if !timed && self.applied == self.reads.checked_at {
            return;
        }
        self.reads.checked_at = self.applied;
        if !self.reads.waiters.is_empty() {
            let waiters = std::mem::take(&mut self.reads.waiters);
            for w in waiters {
                if !self.lease_valid(now) || now >= w.deadline {
                    self.read_through_log(now, w.token, w.req);
                } else if self.lease_read_ready(&w.req.cmd) {
                    self.answer_locally(now, w.token, &w.req);
                } else {
                    self.reads.waiters.push_back(w);
                }
            }
        }
        let ready: Vec<u64> = self
            .reads
            .quorum_reads
            .iter()
            .filter(
                |(_, r)| matches!(r.state, ReadState::Waiting { target } if self.applied >= target),
            )
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            self.decide_quorum_read(id);
        }
    }

    /// What this replica knows about `keys`, with the entries if `full`.
    fn view(&self, keys: &[Bytes], full: bool) -> View {
        let pending = self.pending.as_ref();
        let keys_view = keys
            .iter()
            .map(|k| {
                let pending = pending.and_then(|p| p.newest(k)).unwrap_or(0);
                match self.kv.get(k) {
                    Some(e) => KeyView {
                        digest: digest::digest(e.entry_ref()),
                        version: e.version(),
                        pending,
                    },
                    None => KeyView {
                        digest: digest::ABSENT,
                        version: self.applied,
                        pending,
                    },
                }
            })
            .collect();
        View {
            applied: self.applied,
            keys: keys_view,
            entries: full.then(|| {
                keys.iter()
                    .map(|k| self.kv.get(k).map(Item::entry))
                    .collect()
            }),
        }
    }

    fn start_quorum_read(&mut self, now: Nanos, token: Token, req: Request) {
        if self.reads_full() {
            self.stats.requests_busy += 1;
            self.reply(token, ClientReply::Busy);
            return;
        }
        self.reads.next_id += 1;
        let id = self.reads.next_id;
        let full = self.cfg.read_mode.quorum_read_sends_values();
        let keys = req.cmd.read_keys().to_vec();
        self.reads.quorum_reads.insert(
            id,
            QuorumRead {
                token,
                req,
                started: now,
                views: Vec::new(),
                state: ReadState::Collecting,
            },
        );
        if self.cfg.quorum() == 1 {
            self.decide_quorum_read(id);
            return;
        }
        self.broadcast(&Message::ReadQuery { id, keys, full });
    }

    /// A reader asks about keys.
    pub(super) fn on_read_query(&mut self, from: ReplicaId, id: u64, keys: Vec<Bytes>, full: bool) {
        let view = self.view(&keys, full);
        self.send(from, Message::ReadReport { id, view });
    }

    /// A report for one of our reads.
    pub(super) fn on_read_report(&mut self, from: ReplicaId, id: u64, view: View) {
        let needed = self.cfg.quorum() - 1;
        let Some(read) = self.reads.quorum_reads.get_mut(&id) else {
            return; // Answered already: a late report.
        };
        match read.state {
            ReadState::Collecting => {
                if read.views.iter().any(|(r, _)| *r == from) {
                    return;
                }
                read.views.push((from, view));
                if read.views.len() >= needed {
                    self.decide_quorum_read(id);
                }
            }
            ReadState::Fetching { from: src, target } if src == from => {
                match view.entries.clone() {
                    Some(entries) if view.applied >= target => {
                        // Its report replaces the older one for the repair decision.
                        if let Some(slot) = read.views.iter_mut().find(|(r, _)| *r == from) {
                            slot.1 = view;
                        }
                        self.stats.read_fetches += 1;
                        self.finish_quorum_read(id, entries);
                    }
                    _ => {
                        // It fell behind (restarted?): wait for ourselves instead.
                        read.state = ReadState::Waiting { target };
                    }
                }
            }
            _ => {}
        }
    }

    /// Decides a read from the reports so far and the local state.
    fn decide_quorum_read(&mut self, id: u64) {
        let read = &self.reads.quorum_reads[&id];
        let keys = read.req.cmd.read_keys().to_vec();
        let mut views = vec![self.view(&keys, false)];
        views.extend(read.views.iter().map(|(_, v)| v.clone()));
        if matches!(read.state, ReadState::Collecting) && digest::mismatch(&views) {
            self.stats.digest_mismatches += 1;
        }
        match digest::plan(&views) {
            Plan::Local => {
                let entries = keys
                    .iter()
                    .map(|k| self.kv.get(k).map(Item::entry))
                    .collect();
                self.finish_quorum_read(id, entries);
            }
            Plan::From(i) => {
                let from = self.reads.quorum_reads[&id].views[i - 1].0;
                if let Some(entries) = views[i].entries.clone() {
                    self.finish_quorum_read(id, entries);
                } else {
                    let target = digest::target(&views);
                    let read = self.reads.quorum_reads.get_mut(&id).expect("present");
                    read.state = ReadState::Fetching { from, target };
                    self.send(
                        from,
                        Message::ReadQuery {
                            id,
                            keys,
                            full: true,
                        },
                    );
                }
            }
            Plan::Wait(target) => {
                let read = self.reads.quorum_reads.get_mut(&id).expect("present");
                read.state = ReadState::Waiting { target };
            }
        }
    }

    /// Answers with `entries` (fresh and committed) and repairs the stale copies seen.
    fn finish_quorum_read(&mut self, id: u64, entries: Vec<Option<Entry>>) {
        let read = self.reads.quorum_reads.remove(&id).expect("in progress");
        let keys = read.req.cmd.read_keys().to_vec();
        let reply = ClientReply::Done(read.req.cmd.read_reply(&entries));
        let local = self.view(&keys, false);
        let mut installed = false;
        for (k, e) in digest::repairs(&local, &keys, &entries) {
            installed |= self.kv.install(k, e);
            self.stats.read_repairs += 1;
        }
        if installed {
            // Repairs bypass the log: make them durable the way snapshots are.
            self.outbox.push(Action::SaveSnapshot);
        }
        let mut unconfirmed = 0u8;
        for (peer, view) in &read.views {
            let fix = digest::repairs(view, &keys, &entries);
            if !fix.is_empty() {
                self.stats.read_repairs += fix.len() as u64;
                unconfirmed |= peer.bit();
                self.outbox.push(Action::Send {
                    to: *peer,
                    msg: Message::ReadRepair { id, entries: fix },
                });
            }
        }
        let blocking = self.cfg.read_repair == ReadRepair::Blocking;
        if unconfirmed == 0 || !blocking {
            self.stats.reads_quorum += 1;
            self.reply(read.token, reply);
            return;
        }
        self.reads.quorum_reads.insert(
            id,
            QuorumRead {
                state: ReadState::Repairing { unconfirmed, reply },
                views: Vec::new(),
                ..read
            },
        );
    }

    /// Installs repaired entries that are newer than ours, for slots we applied.
    pub(super) fn on_read_repair(
        &mut self,
        from: ReplicaId,
        id: u64,
        entries: Vec<(Bytes, Entry)>,
    ) {
        let mut installed = false;
        for (k, e) in entries {
            if e.version <= self.applied {
                installed |= self.kv.install(k, e);
            }
        }
        if installed {
            self.stats.repairs_installed += 1;
            self.outbox.push(Action::SaveSnapshot);
        }
        self.send(from, Message::ReadRepaired { id });
    }

    /// A repaired replica confirmed: answer once all did.
    pub(super) fn on_read_repaired(&mut self, from: ReplicaId, id: u64) {
        let Some(read) = self.reads.quorum_reads.get_mut(&id) else {
            return;
        };
        let ReadState::Repairing { unconfirmed, .. } = &mut read.state else {
            return;
        };
        *unconfirmed &= !from.bit();
        if *unconfirmed == 0 {
            let read = self.reads.quorum_reads.remove(&id).expect("present");
            let ReadState::Repairing { reply, .. } = read.state else {
                unreachable!("matched above");
            };
            self.stats.reads_quorum += 1;
            self.reply(read.token, reply);
        }
    }
}
