//! The shard's peer links: what shards of different replicas send each other.

use super::*;

/// What shards of different replicas send each other: Paxos messages, and client
/// commands forwarded to the group's leader with their answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerMsg {
    /// A protocol message.
    Paxos(crate::protocol::Message),
    /// A client command for the leader to propose.
    Forward {
        /// Matches the answer to the question.
        id: u64,
        /// The command, with the forwarding shard's session.
        req: Request,
        /// A command the forwarding shard answers itself when it applies it: the leader
        /// answers only if it refuses it (`protocol::waiting::ANSWERED_THERE`).
        answered_there: bool,
    },
    /// An anti-entropy request from an initiating replica.
    Merkle {
        /// Matches the answer.
        id: u64,
        /// The request.
        msg: crate::protocol::merkle::MerkleMsg,
    },
    /// The answer to `Merkle`.
    MerkleReply {
        /// The request's id.
        id: u64,
        /// The answer.
        msg: Option<crate::protocol::merkle::MerkleMsg>,
    },
    /// The leader's answer to a forwarded command.
    ForwardReply {
        /// The forward's id.
        id: u64,
        /// The answer.
        reply: ClientReply,
    },
}

impl Shard {
    pub(super) fn send_peer(&self, to: ReplicaId, msg: &PeerMsg) {
        if self.partitioned.get() {
            return;
        }
        if let Some(t) = self.transport.borrow().as_ref() {
            t.send(to.0, msg);
        }
    }

    /// Sends a frame `wire::frame::encode` made of a `PeerMsg`, like `send_peer`.
    pub(super) fn send_peer_frame(&self, to: ReplicaId, encoded: &[u8]) {
        if self.partitioned.get() {
            return;
        }
        if let Some(t) = self.transport.borrow().as_ref() {
            t.send_frame(to.0, encoded);
        }
    }

    /// Sends like `send_peer` and says how many bytes the frame took (0 if dropped): the
    /// send only appends to the peer's queue, so the queue grows by exactly that much.
    pub(super) fn send_peer_counted(&self, to: ReplicaId, msg: &PeerMsg) -> u64 {
        let t = self.transport.borrow();
        let Some(t) = t.as_ref().filter(|_| !self.partitioned.get()) else {
            return 0;
        };
        let before = t.queued_bytes(to.0);
        t.send(to.0, msg);
        t.queued_bytes(to.0).saturating_sub(before) as u64
    }

    /// `payload` is the frame `msg` was decoded from.
    pub(super) fn on_peer(self: &Rc<Self>, from: ReplicaId, msg: PeerMsg, payload: &[u8]) {
        if self.partitioned.get() {
            return;
        }
        // The clock is read only where it is used: a forward, most of what a leader of
        // clients spread over the replicas hears, needs none (it was two thirds of the
        // leader's clock readings under the main job).
        match msg {
            PeerMsg::Paxos(m) => {
                let received =
                    received::Received::of(&m, payload, &mut self.record_buf.borrow_mut());
                let now = self.now();
                self.step_received(received, |r| r.on_message(now, from, m))
            }
            PeerMsg::Forward {
                id,
                req,
                answered_there,
            } => {
                self.ticker.wake();
                let mut forwards = self.forwards.take();
                forwards.push((from, id, req, answered_there));
                self.forwards.set(forwards);
            }
            PeerMsg::Merkle { id, msg } => self.on_merkle(from, id, msg),
            PeerMsg::MerkleReply { id, msg } => {
                if let Some(tx) = self.merkle_waiters.borrow_mut().remove(&id) {
                    let _ = tx.send(msg);
                }
            }
            PeerMsg::ForwardReply { id, reply } => {
                let view = LeaderView::of(&*self.replica.borrow());
                let now = self.now();
                self.client
                    .borrow_mut()
                    .on_forward_reply(now, id, reply, view);
                self.client_path_waits.set(true);
            }
        }
    }

    /// Every frame of a read from a peer has been handed to `on_peer`: the client path
    /// runs once for the forwards and answers among them, so a run of forwarded commands
    /// is proposed in one step of the core (one batch) instead of one step each.
    pub(super) fn on_peer_drained(&self) {
        let mut forwards = self.forwards.take();
        if !forwards.is_empty() {
            self.serve_forwards(&mut forwards);
        }
        self.forwards.set(forwards);
        if self.client_path_waits.take() {
            self.run_client_path();
        }
    }

    /// The commands one read from a peer forwarded here, in the order they came. A read
    /// this replica can answer at once (a lease read: `Core::read_now`, the test the core
    /// makes for a read it is handed) is answered straight back, with one clock reading
    /// for them all, without a token, a session or a step of the core; the rest go to the
    /// client path in their order. Nothing is applied in between, so a read answers what
    /// it would have in the core's step. Their keys are prefetched together first, so
    /// their cache misses overlap: a leader answering forwarded `GET`s spent 42 % of its
    /// samples in `Map::get` without it (results/forwarded-reads-prefetch-20261205/).
    fn serve_forwards(&self, forwards: &mut Vec<(ReplicaId, u64, Request, bool)>) {
        if forwards.len() >= 2 {
            self.prefetch_reads(|each| {
                for (_, _, req, _) in forwards.iter() {
                    if req.cmd.is_read_only() {
                        req.cmd.for_each_key(&mut |k| each(k));
                    }
                }
            });
        }
        self.sharing_one_clock_reading(|| {
            for (from, id, req, answered_there) in forwards.drain(..) {
                // A write is never answered at once: no clock reading for it.
                let answer = req.cmd.is_read_only().then(|| self.answer_now(&req.cmd));
                if let Some(Some(reply)) = answer {
                    self.counters.borrow_mut().forwards_read_at_once += 1;
                    let reply = ClientReply::Done(reply);
                    self.send_peer(from, &PeerMsg::ForwardReply { id, reply });
                } else {
                    self.client
                        .borrow_mut()
                        .on_forward(from, id, req, answered_there);
                    self.client_path_waits.set(true);
                }
            }
        });
    }

    pub(super) fn merkle_id(&self) -> u64 {
        let t = self.next_merkle_id.get();
        self.next_merkle_id.set(t + 1);
        t
    }
}
