//! The client path of one replica, sans-IO: a node's session in its group, and how a
//! command submitted at any replica reaches the leader and comes back.
//!
//! A command is proposed here when this replica leads (or serves the read itself, in the
//! read modes that read away from the leader), else forwarded to the leader it knows.
//! Refusals are retried after a short back-off (`Busy`, `NotLeader`, no leader known); a
//! forward that gets no answer is sent again after a back-off that doubles from
//! [`FORWARD_RETRY_NS`], and at once when the leader changes. Every attempt carries the
//! same session and sequence number, so the command takes effect at most once. At its
//! deadline a command fails with [`ClientError::Timeout`]: it may or may not have taken
//! effect.
//!
//! The driver (runtime shard or simulator) feeds in submits, the core's replies, forwards
//! and their answers from peers, the leader it sees after each step, and ticks; it carries
//! out the [`ClientOutput`]s. A proposal has no timer of its own: the driver's ticks
//! expire it.

use std::collections::{HashMap, VecDeque};

use super::consensus::Core;
use super::kv::{Command, Reply, Request};
use super::outbox::ClientReply;
use super::types::{ClientId, MapHasher, Nanos, ReplicaId, Token};
use super::waiting::ANSWERED_THERE;
use crate::config::ReadMode;

const NS_PER_MS: Nanos = 1_000_000;

/// How long a command waits after the leader said `Busy` (its proposal queue was full).
pub const BUSY_BACKOFF_NS: Nanos = NS_PER_MS;
/// How long a command waits after a replica said it does not lead.
pub const NOT_LEADER_BACKOFF_NS: Nanos = 2 * NS_PER_MS;
/// How long a command waits when no leader is known (an election is running).
pub const NO_LEADER_BACKOFF_NS: Nanos = 5 * NS_PER_MS;
/// How long a forwarded command waits before it is sent again the first time; each resend
/// to the same leader waits twice as long as the one before. A large command takes seconds
/// to be logged on a quorum, and every resend crosses the link again (the leader does not
/// propose it twice). A change of leader resends at once.
pub const FORWARD_RETRY_NS: Nanos = 500 * NS_PER_MS;

const _: () = assert!(BUSY_BACKOFF_NS <= NOT_LEADER_BACKOFF_NS);
const _: () = assert!(NOT_LEADER_BACKOFF_NS <= NO_LEADER_BACKOFF_NS);
const _: () = assert!(NO_LEADER_BACKOFF_NS < FORWARD_RETRY_NS);

/// Names a submitted command until it finishes.
pub type Handle = u64;

/// Why a command failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// No answer before the deadline; the command may or may not have taken effect.
    Timeout,
    /// The replica's log cannot be written; nothing more is acknowledged.
    Storage(String),
    /// The command is larger than any replica can log; it was not proposed.
    TooLarge {
        /// Its size (an upper bound of its encoding).
        bytes: usize,
        /// [`crate::limits::COMMAND_BYTES_MAX`].
        bytes_max: usize,
    },
}

/// What the client path asks its driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOutput {
    /// Hand `req` to this replica's core: `Replica::on_request(now, token, req)`. Its
    /// reply comes back through [`ClientPath::on_core_reply`].
    Propose {
        /// The token to propose with.
        token: Token,
        /// The request.
        req: Request,
    },
    /// Send `req` to replica `to` (the wire's `Forward`); its answer comes back through
    /// [`ClientPath::on_forward_reply`] with `id`.
    Forward {
        /// The leader this replica knows.
        to: ReplicaId,
        /// Matches the answer.
        id: u64,
        /// The request.
        req: Request,
    },
    /// Send the core's answer to a command replica `to` forwarded here.
    ForwardReply {
        /// The replica that forwarded it.
        to: ReplicaId,
        /// Its id for the command.
        id: u64,
        /// The answer.
        reply: ClientReply,
    },
    /// The command submitted as `handle` finished.
    Finish {
        /// From [`ClientPath::submit`].
        handle: Handle,
        /// Its answer, or why it failed.
        result: Result<Reply, ClientError>,
    },
    /// Call [`ClientPath::tick`] at `at` (a back-off ends); ticks at other times are
    /// harmless, and a driver that ticks often enough anyway may ignore this.
    Wake {
        /// When.
        at: Nanos,
    },
}

/// What the client path needs to know of its replica's view of the group, taken after
/// each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderView {
    /// This replica leads.
    pub leading: bool,
    /// Who leads, as far as this replica knows.
    pub hint: Option<ReplicaId>,
}

impl LeaderView {
    /// The view of `replica` now.
    pub fn of(replica: &impl Core) -> LeaderView {
        LeaderView {
            leading: replica.is_leading(),
            hint: replica.leader_hint(),
        }
    }
}

/// The node's client session in its group: unique per process lifetime (a restarted node
/// never collides with its earlier sequence numbers). The ack floor tells the leader which
/// sequence numbers are finished, so it can forget their answers.
#[derive(Debug)]
struct Session {
    client: ClientId,
    next_seq: u64,
    /// The lowest sequence number not finished (`next_seq + 1` when none is outstanding).
    floor: u64,
    /// Whether each sequence number from `floor` through `next_seq` finished; the front
    /// one never has (finished ones are popped), so this is as long as the span of
    /// commands in progress.
    finished: VecDeque<bool>,
}

impl Session {
    fn new(client: ClientId) -> Session {
        Session {
            client,
            next_seq: 0,
            floor: 1,
            finished: VecDeque::new(),
        }
    }

    fn begin(&mut self, cmd: Command) -> Request {
        self.next_seq += 1;
        self.finished.push_back(false);
        Request {
            client: self.client,
            seq: self.next_seq,
            ack_floor: self.floor,
            cmd,
        }
    }

    fn end(&mut self, seq: u64) {
        let Some(done) = seq
            .checked_sub(self.floor)
            .and_then(|i| self.finished.get_mut(i as usize))
        else {
            return;
        };
        *done = true;
        while self.finished.front() == Some(&true) {
            self.finished.pop_front();
            self.floor += 1;
        }
    }
}

/// Where a command's current attempt stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// Handed to this replica's core, which answers for sure (applied, or refused when
    /// it steps down), or the deadline expires it.
    Proposed,
    /// Sent to `to`; sent again at `resend_at`, or at once if the leader changes.
    Forwarded { to: ReplicaId, resend_at: Nanos },
    /// Backing off until `until`.
    Waiting { until: Nanos },
}

#[derive(Debug)]
struct Op {
    handle: Handle,
    req: Request,
    deadline: Nanos,
    /// This replica may still serve the read itself (until the core says it cannot).
    local: bool,
    /// The wait before the next resend of a forward.
    forward_retry: Nanos,
    attempt: Attempt,
}

/// Where a replica's answered commands spent their time, from submission to the answer
/// (the shard's clock): those its own core answered, and those a peer (the leader)
/// answered for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathTimes {
    /// Commands this replica's core answered.
    pub local: u64,
    /// Their time from submission to answer, summed (ns).
    pub local_ns: u64,
    /// Commands answered through a forward to the leader.
    pub forwarded: u64,
    /// Their time, summed (ns).
    pub forwarded_ns: u64,
}

/// One replica's client path. See the module doc.
#[derive(Debug)]
pub struct ClientPath {
    me: ReplicaId,
    reads_away: bool,
    timeout: Nanos,
    session: Session,
    /// Commands in progress, by the token (or forward id) of their current attempt; each
    /// attempt takes a new one, so a late answer to an earlier attempt finds nothing.
    ops: HashMap<Token, Op, MapHasher>,
    /// Time per answered command.
    times: PathTimes,
    /// Commands peers forwarded here, by the token proposed with: (that peer, its id).
    remote: HashMap<Token, (ReplicaId, u64), MapHasher>,
    next_token: Token,
    /// The view at the last step, to resend forwards when the leader changes.
    view: LeaderView,
    storage_error: Option<String>,
    outputs: VecDeque<ClientOutput>,
    /// Reused by `tick` (no allocation per tick).
    due: Vec<Token>,
}

impl ClientPath {
    /// The client path of replica `me`, whose session is `client` (nonzero, unique per
    /// process lifetime), in read mode `read_mode`, failing commands after `timeout`.
    pub fn new(me: ReplicaId, client: ClientId, read_mode: ReadMode, timeout: Nanos) -> Self {
        assert_ne!(client, 0, "client 0 is the protocol's own (no-op) session");
        ClientPath {
            me,
            reads_away: read_mode.reads_away_from_leader(),
            timeout,
            session: Session::new(client),
            ops: HashMap::default(),
            times: PathTimes::default(),
            remote: HashMap::default(),
            // From the session id (random per process lifetime), not from 1: a leader's
            // late answer to a forward of this replica's previous life must not match a
            // forward of this one.
            next_token: client,
            view: LeaderView {
                leading: false,
                hint: None,
            },
            storage_error: None,
            outputs: VecDeque::new(),
            due: Vec::new(),
        }
    }

    /// The next thing to do, in order.
    pub fn pop_output(&mut self) -> Option<ClientOutput> {
        self.outputs.pop_front()
    }

    /// Moves the proposals at the front of the outputs (consecutive
    /// [`ClientOutput::Propose`]s) into `into`, in order: a driver that popped one hands
    /// them all to one step of the core (`Replica::on_requests`), which batches them.
    pub fn pop_proposals(&mut self, into: &mut Vec<(Token, Request)>) {
        while let Some(ClientOutput::Propose { .. }) = self.outputs.front() {
            let Some(ClientOutput::Propose { token, req }) = self.outputs.pop_front() else {
                unreachable!("front is a proposal");
            };
            into.push((token, req));
        }
    }

    /// Time per answered command so far.
    pub fn times(&self) -> PathTimes {
        self.times
    }

    /// The view of the leader the client path last saw.
    pub fn view(&self) -> LeaderView {
        self.view
    }

    /// Commands in progress.
    pub fn in_progress(&self) -> usize {
        self.ops.len()
    }

    fn token(&mut self) -> Token {
        let t = self.next_token & !ANSWERED_THERE;
        self.next_token = self.next_token.wrapping_add(1);
        t
    }

    /// Submits `cmd` with the next sequence number of the session. Its first attempt is
    /// among the outputs before this returns, so commands submitted one after another are
    /// proposed in that order.
    pub fn submit(&mut self, now: Nanos, cmd: Command, view: LeaderView) -> Handle {
        self.view = view;
        let local = self.reads_away && cmd.is_read_only();
        let req = self.session.begin(cmd);
        let handle = self.token();
        let op = Op {
            handle,
            req,
            deadline: now.saturating_add(self.timeout),
            local,
            forward_retry: FORWARD_RETRY_NS,
            attempt: Attempt::Proposed,
        };
        if let Some(why) = self.storage_error.clone() {
            self.finish(op, Err(ClientError::Storage(why)));
        } else {
            self.attempt(now, op, true);
        }
        handle
    }

    /// A read the replica answers at once, without a session, a token or a step (see
    /// [`Core::read_now`]): the driver answers its caller itself. `None`: submit it.
    pub fn read_now(&self, replica: &mut impl Core, now: Nanos, cmd: &Command) -> Option<Reply> {
        if self.storage_error.is_some() {
            return None; // Submitted, it fails as every command does now.
        }
        replica.read_now(now, cmd)
    }

    /// A command replica `from` forwarded here, to be proposed (it is a [`ClientOutput::Propose`]
    /// now); the core's answer goes back to `from` with `id`. With `answered_there` (a
    /// command `from` answers itself when it applies it) nothing goes back unless it is
    /// refused: a core that queues a read answers only [`ClientReply::Logged`], and a
    /// write's answer once applied is dropped here.
    pub fn on_forward(&mut self, from: ReplicaId, id: u64, req: Request, answered_there: bool) {
        let mut token = self.token();
        if answered_there {
            token |= ANSWERED_THERE;
        }
        self.remote.insert(token, (from, id));
        self.outputs.push_back(ClientOutput::Propose { token, req });
    }

    /// The core answered `token`; `view` is the leader after the step that answered.
    pub fn on_core_reply(
        &mut self,
        now: Nanos,
        token: Token,
        reply: ClientReply,
        view: LeaderView,
    ) {
        if let Some((to, id)) = self.remote.remove(&token) {
            let answered_there = match reply {
                ClientReply::Logged => true,
                ClientReply::Done(_) => token & ANSWERED_THERE != 0,
                _ => false,
            };
            if !answered_there {
                self.outputs
                    .push_back(ClientOutput::ForwardReply { to, id, reply });
            }
        } else {
            self.on_answer(now, token, reply, view);
        }
    }

    /// The leader answered the forward `id` (a late answer to an earlier attempt is
    /// dropped).
    pub fn on_forward_reply(&mut self, now: Nanos, id: u64, reply: ClientReply, view: LeaderView) {
        self.on_answer(now, id, reply, view);
    }

    fn on_answer(&mut self, now: Nanos, token: Token, reply: ClientReply, view: LeaderView) {
        let Some(mut op) = self.ops.remove(&token) else {
            return;
        };
        self.view = view;
        let wait = match reply {
            ClientReply::Done(r) => {
                let took = now.saturating_sub(op.deadline.saturating_sub(self.timeout));
                let t = &mut self.times;
                if matches!(op.attempt, Attempt::Forwarded { .. }) {
                    t.forwarded += 1;
                    t.forwarded_ns = t.forwarded_ns.saturating_add(took);
                } else {
                    t.local += 1;
                    t.local_ns = t.local_ns.saturating_add(took);
                }
                return self.finish(op, Ok(r));
            }
            ClientReply::TooLarge { bytes, bytes_max } => {
                return self.finish(op, Err(ClientError::TooLarge { bytes, bytes_max }));
            }
            // This replica cannot answer the read itself now: the leader can.
            ClientReply::NotLeader { .. } if op.local => {
                op.local = false;
                0
            }
            ClientReply::NotLeader { .. } => NOT_LEADER_BACKOFF_NS,
            ClientReply::Busy => BUSY_BACKOFF_NS,
            // Only a leader's core says it, and never over the wire; this replica answers
            // the read when it applies it, or resends it.
            ClientReply::Logged => {
                self.ops.insert(token, op);
                return;
            }
        };
        if now >= op.deadline {
            return self.finish(op, Err(self.expired()));
        }
        if wait == 0 {
            self.attempt(now, op, false);
        } else {
            self.wait(now, op, wait);
        }
    }

    /// The view after a step of the replica. A forward whose leader is no longer the one
    /// this replica knows is sent again at once (and its next resend waits the shortest
    /// time again).
    pub fn observe(&mut self, now: Nanos, view: LeaderView) {
        if view == self.view {
            return;
        }
        let hint_changed = view.hint != self.view.hint;
        self.view = view;
        if !hint_changed {
            return;
        }
        let mut due = std::mem::take(&mut self.due);
        due.extend(self.ops.iter().filter_map(|(t, op)| {
            matches!(op.attempt, Attempt::Forwarded { to, .. } if Some(to) != view.hint)
                .then_some(*t)
        }));
        // In the order the attempts began (the map's order is not deterministic).
        due.sort_unstable();
        for token in due.drain(..) {
            if let Some(mut op) = self.ops.remove(&token) {
                op.forward_retry = FORWARD_RETRY_NS;
                self.attempt(now, op, false);
            }
        }
        self.due = due;
    }

    /// Time passes: back-offs that ended retry, forwards unanswered for their wait are
    /// sent again, and commands past their deadline fail.
    pub fn tick(&mut self, now: Nanos, view: LeaderView) {
        self.observe(now, view);
        let mut due = std::mem::take(&mut self.due);
        due.extend(self.ops.iter().filter_map(|(t, op)| {
            let retry_at = match op.attempt {
                Attempt::Proposed => Nanos::MAX,
                Attempt::Forwarded { resend_at, .. } => resend_at,
                Attempt::Waiting { until } => until,
            };
            (now >= op.deadline.min(retry_at)).then_some(*t)
        }));
        due.sort_unstable();
        for token in due.drain(..) {
            let Some(op) = self.ops.remove(&token) else {
                continue;
            };
            if now >= op.deadline {
                let why = self.expired();
                self.finish(op, Err(why));
            } else {
                self.attempt(now, op, false);
            }
        }
        self.due = due;
    }

    /// Storage failed: commands not yet answered fail with it at their deadline, new ones
    /// at once.
    pub fn fail_storage(&mut self, why: String) {
        self.storage_error.get_or_insert(why);
    }

    fn expired(&self) -> ClientError {
        match &self.storage_error {
            Some(why) => ClientError::Storage(why.clone()),
            None => ClientError::Timeout,
        }
    }

    /// One try: propose here if leading or reading locally, else forward to the leader,
    /// else wait for one. The first attempt's token is the handle; later ones take new
    /// tokens.
    fn attempt(&mut self, now: Nanos, mut op: Op, first: bool) {
        if let Some(why) = self.storage_error.clone() {
            return self.finish(op, Err(ClientError::Storage(why)));
        }
        let token = if first { op.handle } else { self.token() };
        let req = op.req.clone();
        if self.view.leading || op.local {
            op.attempt = Attempt::Proposed;
            self.outputs.push_back(ClientOutput::Propose { token, req });
        } else if let Some(to) = self.view.hint.filter(|l| *l != self.me) {
            let resend_at = now.saturating_add(op.forward_retry).min(op.deadline);
            op.forward_retry = op.forward_retry.saturating_mul(2);
            op.attempt = Attempt::Forwarded { to, resend_at };
            self.outputs
                .push_back(ClientOutput::Forward { to, id: token, req });
            self.outputs.push_back(ClientOutput::Wake { at: resend_at });
        } else {
            return self.wait(now, op, NO_LEADER_BACKOFF_NS);
        }
        self.ops.insert(token, op);
    }

    fn wait(&mut self, now: Nanos, mut op: Op, wait: Nanos) {
        let token = self.token();
        let until = now.saturating_add(wait).min(op.deadline);
        op.attempt = Attempt::Waiting { until };
        self.ops.insert(token, op);
        self.outputs.push_back(ClientOutput::Wake { at: until });
    }

    fn finish(&mut self, op: Op, result: Result<Reply, ClientError>) {
        self.session.end(op.req.seq);
        self.outputs.push_back(ClientOutput::Finish {
            handle: op.handle,
            result,
        });
    }
}

#[cfg(test)]
mod tests;
