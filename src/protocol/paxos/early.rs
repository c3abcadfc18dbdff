//! Early learning: with three replicas, a follower learns a slot chosen from its own
//! durable accept and the leader's vote, one hop after the accept instead of three.
//!
//! A command sent to a follower is forwarded to the leader, and its answer used to come
//! back the way it went: leader → followers (accept), a follower's vote → leader, leader →
//! forwarding follower (the answer). With a quorum of two, the forwarding follower's own
//! accept and the leader's make a quorum: when the leader's accept is durable it sends
//! its vote (an `Accepted` from the leader) to the followers as well as to itself, and a
//! follower whose accept of that slot at that ballot is durable too knows the slot chosen.
//! It applies it in order and answers the requests of its own session it forwarded
//! itself (their replies are the leader's: the same state machine at the same slot). The
//! leader's answer, when it comes, finds the command finished and is dropped.
//!
//! Only for slots that carry another node's request (a forward): a leader's own clients'
//! slots cost no extra message. Not in quorum-lease mode: there a write is acknowledged
//! only once every lease holder has it, which only the leader counts. In leader-lease
//! mode the leader notes the keys written by the slots whose vote it sent: a follower may
//! acknowledge them before the leader knows them chosen, so until they are applied here a
//! lease read of those keys goes through the log rather than the leader's state.

use std::collections::BTreeMap;

use super::{Replica, Role};
use crate::config::ReadMode;
use crate::protocol::kv::{Command, Request};
use crate::protocol::message::{Batch, Message};
use crate::protocol::outbox::ClientReply;
use crate::protocol::pending::PendingKeys;
use crate::protocol::types::{Ballot, ClientId, Nanos, ReplicaId, Slot, Token};
use crate::protocol::waiting::{self, Waiting};

/// What a leader's vote told a follower about a slot.
enum Learned {
    /// Chosen: our own accept of it at that ballot is durable too.
    Chosen,
    /// Ours matches but is not durable yet: the vote waits for it.
    NotDurableYet,
    /// Not a slot this vote can settle (known chosen, absent, or another ballot here).
    NotOurs,
}

/// What early learning keeps (see the module doc).
#[derive(Clone, Debug, Default)]
pub(super) struct Early {
    /// This node's client session: requests of any other session were forwarded here.
    /// 0 until the driver names it ([`Replica::set_session`]): no early learning then.
    session: ClientId,
    /// Follower: requests of this node's session it forwarded to the leader, by (client,
    /// sequence number): the forward's id, answered here if applied before the leader's
    /// answer comes.
    pub(super) forwarded: Waiting,
    /// Follower: slots whose leader vote came before our own accept was durable, with
    /// the ballot voted.
    votes: BTreeMap<Slot, Ballot>,
    /// Leader, leader-lease mode: keys written by unapplied slots whose vote went to the
    /// followers.
    voted_keys: PendingKeys,
}

impl Replica {
    /// Names this node's client session (`ClientPath`'s): the leader tells forwarded
    /// requests by it, a follower its own. Until it is named, nothing is learned early.
    pub fn set_session(&mut self, client: ClientId) {
        self.early.session = client;
    }

    /// Whether a follower may learn a slot chosen from the leader's vote and its own.
    fn learns_early(&self) -> bool {
        self.cfg.early_learning
            && self.early.session != 0
            && self.cfg.quorum() == 2
            && self.cfg.read_mode != ReadMode::QuorumLease
    }

    /// This follower forwarded `req` (of its own session) to the leader as `token`: if it
    /// applies it first, it answers `token` itself. Only for commands the leader logs (a
    /// read it may serve from its lease never reaches the log).
    ///
    /// True while this replica has applied every slot it heard chosen: then the leader
    /// need not answer the command once it is logged (the forward says so,
    /// [`ANSWERED_THERE`](crate::protocol::waiting::ANSWERED_THERE)), since this replica
    /// applies every slot it learns chosen and answers the command there: a read the
    /// leader does not even run, a write's answer it does not send back. A replica that
    /// lags (catching up, or receiving a snapshot) leaves the answer to the leader. A
    /// write applied inside a snapshot installed later is answered from its session's
    /// kept reply ([`Replica::answer_forwards_inside_snapshot`]). A read inside one, or a
    /// command lost with a deposed leader's queue, is answered after the forward's resend
    /// (`client::FORWARD_RETRY_NS`, at once when the leader changes): a read runs again
    /// where it lands, a write's session answers it from its applied copy.
    pub fn expect_forwarded(&mut self, token: Token, req: &Request) -> bool {
        if !self.learns_early() || req.client != self.early.session {
            return false;
        }
        let caught_up = self.applied >= self.commit_heard;
        if req.cmd.is_read_only() && !self.cfg.read_mode.reads_through_log() {
            return false;
        }
        let forwarded = &mut self.early.forwarded;
        if forwarded.len() >= self.cfg.proposal_queue_max {
            // Forwards the leader refused or never logged: their answers came through the
            // leader, so forgetting them costs only the shortcut (or, for a read the
            // leader does not answer, the wait for its resend).
            forwarded.clear();
        }
        forwarded.insert((req.client, req.seq), token);
        caught_up
    }

    /// Leader: whether `batch` carries a forwarded request, so that its vote goes to the
    /// followers too (`vote_to_followers`).
    pub(super) fn votes_to_followers(&self, batch: &Batch) -> bool {
        let session = self.early.session;
        self.learns_early() && batch.iter().any(|r| r.client != 0 && r.client != session)
    }

    /// Leader: `batch`, proposed at `slot`, carries a forwarded request: its vote goes to
    /// every follower once our accept is durable (held with it, after our own vote).
    pub(super) fn vote_to_followers(&mut self, slot: Slot, batch: &Batch, vote: &Message) {
        if !self.votes_to_followers(batch) {
            return;
        }
        if self.cfg.read_mode == ReadMode::LeaderLease {
            for req in batch.iter() {
                self.early.voted_keys.note(slot, &req.cmd);
            }
        }
        for r in 0..self.cfg.replicas {
            let to = ReplicaId(r as u8);
            if to != self.id {
                self.send_when_durable(to, vote.clone());
            }
        }
    }

    /// Leader lease: no key `cmd` reads has a write a follower may have acknowledged
    /// before this leader applied it.
    pub(super) fn no_voted_write(&self, cmd: &Command) -> bool {
        let keys = &self.early.voted_keys;
        self.bugs.early_lease_unguarded
            || keys.is_empty()
            || cmd.read_keys().iter().all(|k| keys.newest(k).is_none())
    }

    /// Follower: the leader of `ballot` (`from`) accepted `slot` durably. With our own
    /// durable accept of it at that ballot, a quorum of two accepted one value: chosen.
    /// False if this is not such a vote (the caller counts it ignored).
    pub(super) fn on_leader_vote(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        ballot: Ballot,
        slot: Slot,
    ) -> bool {
        // Our own vote as a deposed leader, released by a sync after we stepped down, is
        // not a second one.
        if !self.learns_early()
            || (from == self.id && !self.bugs.early_own_vote)
            || from != ballot.node
        {
            return false;
        }
        match self.learn_from_vote(slot, ballot) {
            Learned::Chosen => self.advance_chosen(now),
            Learned::NotDurableYet
                if self.early.votes.len() < self.cfg.pipeline_depth.max(1) * 2 =>
            {
                self.early.votes.insert(slot, ballot);
            }
            Learned::NotDurableYet => {}
            Learned::NotOurs => return false,
        }
        true
    }

    /// Records became durable: the leader votes that waited for our own accept count now.
    pub(super) fn learn_held_votes(&mut self, now: Nanos) {
        if self.early.votes.is_empty() {
            return;
        }
        let votes = std::mem::take(&mut self.early.votes);
        let mut learned = false;
        for (slot, ballot) in votes {
            match self.learn_from_vote(slot, ballot) {
                Learned::Chosen => learned = true,
                Learned::NotDurableYet => {
                    self.early.votes.insert(slot, ballot);
                }
                Learned::NotOurs => {}
            }
        }
        if learned {
            self.advance_chosen(now);
        }
    }

    /// The leader voted for `slot` at `ballot`: marks it chosen if our own accept of it at
    /// that ballot is durable (the caller advances the commit index).
    fn learn_from_vote(&mut self, slot: Slot, ballot: Ballot) -> Learned {
        if slot <= self.chosen_through {
            return Learned::NotOurs;
        }
        let durable = self.durable_id;
        let bug = self.bugs.reply_before_persist;
        let Some(e) = self.log.get_mut(&slot) else {
            return Learned::NotOurs; // Its accept did not come (or not yet): the commit index will do.
        };
        if e.ballot != ballot || e.chosen {
            return Learned::NotOurs;
        }
        if !bug && e.persist_id > durable {
            return Learned::NotDurableYet;
        }
        e.chosen = true;
        self.stats.slots_learned_early += 1;
        Learned::Chosen
    }

    /// A snapshot was installed: this follower's own forwarded writes applied inside it are
    /// answered from the replies their session kept, as the slots' own apply would have
    /// (the leader, told `answered_there`, does not answer them). Reads keep no reply: one
    /// applied inside the snapshot is answered after the forward's resend.
    pub(super) fn answer_forwards_inside_snapshot(&mut self) {
        for (token, reply) in waiting::take_kept(&mut self.early.forwarded, &self.kv) {
            self.stats.forwards_answered_early += 1;
            self.reply(token, ClientReply::Done(reply));
        }
    }

    /// Every slot up to `applied` is applied: its voted keys are no longer pending.
    pub(super) fn early_applied_through(&mut self, applied: Slot) {
        self.early.voted_keys.applied_through(applied);
    }

    /// The role changed: a leader's voted keys and a follower's expectations belong to
    /// the role that is over.
    pub(super) fn early_role_changed(&mut self) {
        self.early.voted_keys.clear();
        self.early.votes.clear();
        if matches!(self.role, Role::Leader(_)) {
            // Its forwards are proposed here now (`ClientPath` resends them as proposals).
            self.early.forwarded.clear();
        }
    }
}
