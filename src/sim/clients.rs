//! Simulated clients, each connected to one node, and the nodes' client paths they submit
//! to (driven the way the runtime's shard drives them).

use super::*;
use crate::protocol::expiry::{ExpireIf, Ttl};
use crate::protocol::kv::{LInsert, LMove, LPos, LSet, SetIf};

/// How long a node's client path tries a command before it answers TIMEOUT.
pub(super) fn client_timeout(cfg: &SimConfig) -> Nanos {
    if cfg.drift_beyond_bound {
        // Clients stuck at a deposed leader move on fast, so writes complete elsewhere
        // while it still answers reads.
        CLIENT_TIMEOUT_DRIFT_NS
    } else {
        CLIENT_TIMEOUT_NS
    }
}

/// How long a simulated node's client path tries a command: past elections and crashes.
pub(super) const CLIENT_TIMEOUT_NS: Nanos = 300 * MS;

/// The same, in runs whose clocks drift beyond the bound (see [`client_timeout`]).
pub(super) const CLIENT_TIMEOUT_DRIFT_NS: Nanos = 60 * MS;

/// A client connected to one node (any, like a client of a follower): it submits there
/// and the node's client path forwards and retries.
pub(super) struct Client {
    pub(super) attempt: u32,
    pub(super) target: ReplicaId,
    /// The operation in progress: index into `history`, and whether it is a final read
    /// (which must return: it is issued again after a failure).
    pub(super) current: Option<(usize, bool)>,
    pub(super) done: usize,
}

pub(super) struct Recorded {
    pub(super) key: usize,
    pub(super) op: Operation,
}

/// The key a list key moves elements to and from (`LMOVE` between two keys): keys pair
/// up, 0 with 1, 2 with 3, so each merged history the checker searches spans two keys
/// (a key without a partner, `keys` odd, only rotates).
pub(super) fn partner(key: usize) -> usize {
    key ^ 1
}

/// The list end `LEFT` or `RIGHT`.
fn end_of(left: bool) -> crate::protocol::list::End {
    if left {
        crate::protocol::list::End::Left
    } else {
        crate::protocol::list::End::Right
    }
}

impl Sim {
    /// An operation on list key `key`: mostly pushes, pops and lengths.
    fn list_op(&mut self, key: usize) -> Op {
        let op = self.list_op_any(key);
        match op {
            Op::Rotate { from_left, to_left } if self.cfg.moves_blocking => {
                self.blocking_move(key, from_left, to_left)
            }
            Op::Move {
                to,
                from_left,
                to_left,
            } if self.cfg.moves_blocking => self.blocking_move(to, from_left, to_left),
            op => op,
        }
    }

    /// A `BLMOVE` to key `to` (the same key for a rotation), waiting as a `BLPOP` does.
    fn blocking_move(&mut self, to: usize, from_left: bool, to_left: bool) -> Op {
        Op::BlockingMove {
            to,
            from_left,
            to_left,
            timeout_ms: self.rng.random_range(1..=40),
        }
    }

    fn list_op_any(&mut self, key: usize) -> Op {
        match self.rng.random_range(0..21) {
            r if r <= 2 => Op::Len,
            r if r <= 6 => {
                self.next_value += 1;
                Op::Push(self.next_value)
            }
            10 => Op::Trim {
                keep: self.rng.random_range(0..=3),
            },
            11 => {
                self.next_value += 1;
                Op::SetHead(self.next_value)
            }
            // One of the values written lately (anywhere).
            12 => Op::Pos(
                self.rng
                    .random_range(self.next_value.saturating_sub(4)..=self.next_value),
            ),
            13 => {
                // Next to one of the values written lately (anywhere).
                let pivot = self
                    .rng
                    .random_range(self.next_value.saturating_sub(4)..=self.next_value);
                self.next_value += 1;
                Op::Insert {
                    before: self.rng.random_bool(0.5),
                    pivot,
                    value: self.next_value,
                }
            }
            14 => Op::Rotate {
                from_left: self.rng.random_bool(0.5),
                to_left: self.rng.random_bool(0.5),
            },
            15 | 16 if partner(key) < self.cfg.keys => Op::Move {
                to: partner(key),
                from_left: self.rng.random_bool(0.5),
                to_left: self.rng.random_bool(0.5),
            },
            // A few milliseconds to a few client round trips: some find an element,
            // some wait for a push, some time out.
            17 | 18 => Op::BlockingPop {
                timeout_ms: self.rng.random_range(1..=40),
            },
            // To the partner key or the same key, either end to either end.
            19 | 20 => {
                let to = if partner(key) < self.cfg.keys && self.rng.random_bool(0.5) {
                    partner(key)
                } else {
                    key
                };
                let (from_left, to_left) = (self.rng.random_bool(0.5), self.rng.random_bool(0.5));
                self.blocking_move(to, from_left, to_left)
            }
            _ => Op::Pop,
        }
    }

    /// The command a client sends for `op` on key number `key`.
    fn command_of(&self, key: usize, op: Op) -> Command {
        let k = Bytes::from(format!("k{key}"));
        match op {
            Op::Get => Command::Get(k),
            Op::Set(v) if self.cfg.pubsub => Command::Multi(vec![
                Command::Set(k, Bytes::from(v.to_string())),
                Command::Publish {
                    channel: pubsub::channel_of(key),
                    message: Bytes::from(v.to_string()),
                },
            ]),
            Op::Set(v) => Command::Set(k, Bytes::from(v.to_string())),
            Op::Del => Command::Del(vec![k]),
            Op::Cas { expect, new } => Command::SetIf(Box::new(SetIf {
                key: k,
                value: Bytes::from(new.to_string()),
                cond: crate::protocol::kv::SetCond::Equals(Bytes::from(expect.to_string())),
                get: false,
                ttl: Ttl::Clear,
            })),
            Op::Incr => Command::IncrBy(k, 1),
            Op::Push(v) => Command::Push {
                key: k,
                values: vec![Bytes::from(v.to_string())],
                end: crate::protocol::list::End::Right,
                existing: false,
            },
            Op::Pop if self.cfg.bug_pop_without_log => Command::LIndex { key: k, index: 0 },
            Op::BlockingPop { .. } => {
                crate::protocol::blocking::Blocking::pop_first(
                    vec![k],
                    crate::protocol::list::End::Left,
                )
                .cmd
            }
            Op::Pop => Command::Pop {
                key: k,
                end: crate::protocol::list::End::Left,
                count: None,
            },
            Op::Len => Command::LLen(k),
            Op::Trim { keep } => Command::LTrim {
                key: k,
                start: i64::from(keep == 0),
                stop: i64::from(keep.saturating_sub(1)),
            },
            Op::SetHead(v) => Command::LSet(Box::new(LSet {
                key: k,
                index: 0,
                value: Bytes::from(v.to_string()),
            })),
            Op::Pos(v) => Command::LPos(Box::new(LPos {
                key: k,
                value: Bytes::from(v.to_string()),
                rank: 1,
                count: None,
                maxlen: 0,
            })),
            Op::Insert {
                before,
                pivot,
                value,
            } => Command::LInsert(Box::new(LInsert {
                key: k,
                before,
                pivot: Bytes::from(pivot.to_string()),
                value: Bytes::from(value.to_string()),
            })),
            Op::Rotate { from_left, to_left } => Command::LMove(Box::new(LMove {
                from: k.clone(),
                to: k,
                from_end: end_of(from_left),
                to_end: end_of(to_left),
            })),
            Op::Move {
                to,
                from_left,
                to_left,
            } => Command::LMove(Box::new(LMove {
                from: k,
                to: Bytes::from(format!("k{to}")),
                from_end: end_of(from_left),
                to_end: end_of(to_left),
            })),
            Op::BlockingMove {
                to,
                from_left,
                to_left,
                ..
            } => {
                crate::protocol::blocking::Blocking::lmove(
                    k,
                    Bytes::from(format!("k{to}")),
                    end_of(from_left),
                    end_of(to_left),
                )
                .cmd
            }
            Op::SetPx { value, ttl_ms } => Command::SetIf(Box::new(SetIf {
                key: k,
                value: Bytes::from(value.to_string()),
                cond: crate::protocol::kv::SetCond::Always,
                get: false,
                ttl: Ttl::In(ttl_ms),
            })),
            Op::Expire { ttl_ms } => Command::Expire {
                key: k,
                ttl: Ttl::In(ttl_ms),
                cond: ExpireIf::Always,
            },
            Op::Persist => Command::Expire {
                key: k,
                ttl: Ttl::Clear,
                cond: ExpireIf::Always,
            },
            Op::Ttl => Command::Ttl(k),
        }
    }

    pub(super) fn start_op(&mut self, client: usize, forced: Option<(usize, Op)>) {
        if forced.is_none() && self.clients[client].done >= self.cfg.ops_per_client {
            return;
        }
        // Reading the most gives a stale lease the most chances to show.
        let reads = if self.cfg.drift_beyond_bound { 7 } else { 3 };
        let (key, op) = forced.unwrap_or_else(|| {
            let key = self.rng.random_range(0..self.cfg.keys);
            if self.cfg.lists {
                return (key, self.list_op(key));
            }
            let op = match self.rng.random_range(0..10) {
                r if r <= reads => Op::Get,
                7 if self.cfg.primitives => {
                    // The newest value written anywhere: on this key now and then.
                    let expect = self.next_value;
                    self.next_value += 1;
                    Op::Cas {
                        expect,
                        new: self.next_value,
                    }
                }
                8 if self.cfg.primitives => Op::Incr,
                r if r <= 8 && self.cfg.expiry => self.expiry_op(),
                r if r <= 8 => {
                    self.next_value += 1;
                    Op::Set(self.next_value)
                }
                _ => Op::Del,
            };
            (key, op)
        });
        let cmd = self.command_of(key, op);
        let log_lo = self.log_time_floor();
        self.history.push(Recorded {
            key,
            op: Operation {
                client: client as u64,
                op,
                out: Output::Unknown,
                call: self.now,
                ret: u64::MAX,
                log_lo,
                log_hi: u64::MAX,
                object: 0,
            },
        });
        // A client that cached a paused leader's address sends it its reads (they wait).
        if let (Op::Get, Some(paused)) = (op, self.paused_leader_for_reads()) {
            self.clients[client].target = paused;
        }
        let c = &mut self.clients[client];
        c.current = Some((self.history.len() - 1, forced.is_some()));
        c.attempt += 1;
        let attempt = c.attempt;
        let node = c.target;
        let incarnation = self.nodes[node.index()].incarnation;
        self.log(|| format!("client {client} #{attempt} → {node}: {op:?} k{key}"));
        let delay = self.net_delay();
        let event = match op {
            // Both wait on their one key (a move's source), as the node's do.
            Op::BlockingPop { timeout_ms } | Op::BlockingMove { timeout_ms, .. } => {
                Event::BlockingRequestArrives {
                    node,
                    incarnation,
                    client,
                    attempt,
                    b: crate::protocol::blocking::Blocking {
                        keys: vec![Bytes::from(format!("k{key}"))],
                        cmd,
                    },
                    timeout: timeout_ms * MS,
                }
            }
            _ => Event::ClientRequestArrives {
                node,
                incarnation,
                client,
                attempt,
                cmd,
            },
        };
        self.schedule(delay, event);
    }

    /// A client's command reaches its node: submitted to the node's client path, or, if
    /// the node crashed since, refused (the connection broke).
    pub(super) fn client_request(
        &mut self,
        node: ReplicaId,
        incarnation: u32,
        client: usize,
        attempt: u32,
        cmd: Command,
    ) {
        let now = self.clock(node);
        let n = &mut self.nodes[node.index()];
        let Some(r) = n.replica.as_mut().filter(|_| n.incarnation == incarnation) else {
            return self.answer_client(client, attempt, Err(ClientError::Timeout));
        };
        if let Some(reply) = n.client.read_now(r, now, &cmd) {
            self.reads_now += 1;
            return self.answer_client(client, attempt, Ok(reply));
        }
        let handle = n.client.submit(now, cmd, LeaderView::of(r));
        n.callers.insert(handle, (client, attempt));
        self.drive_client(node);
    }

    /// A command about time to live: a write with a deadline (the most, so that keys
    /// expire during the run), a new deadline, none, or the time left. Deadlines are a few
    /// milliseconds to a few client round trips away.
    fn expiry_op(&mut self) -> Op {
        let ttl_ms = self.rng.random_range(1..=150);
        match self.rng.random_range(0..6) {
            0 | 1 => {
                self.next_value += 1;
                Op::SetPx {
                    value: self.next_value,
                    ttl_ms,
                }
            }
            2 => Op::Expire { ttl_ms },
            3 => Op::Persist,
            4 => Op::Ttl,
            _ => {
                self.next_value += 1;
                Op::Set(self.next_value)
            }
        }
    }

    /// At most the log's time (ms) where a command sent now applies: the log never goes
    /// back from what some replica applied, and a leader stamps a command that counts
    /// time from now with its clock, read after the command was sent.
    pub(super) fn log_time_floor(&self) -> u64 {
        let slowest = (0..self.cfg.replicas)
            .map(|i| self.clock(ReplicaId(i as u8)) / MS)
            .min()
            .unwrap_or(0);
        self.log_time_max.max(slowest)
    }

    /// Sends a node's answer back to its client.
    pub(super) fn answer_client(
        &mut self,
        client: usize,
        attempt: u32,
        result: Result<Reply, ClientError>,
    ) {
        let delay = self.net_delay();
        self.schedule(
            delay,
            Event::ClientReplyArrives {
                client,
                attempt,
                result,
            },
        );
    }

    pub(super) fn client_reply(
        &mut self,
        client: usize,
        attempt: u32,
        result: Result<Reply, ClientError>,
    ) {
        self.log(|| format!("client {client} #{attempt}: {result:?}"));
        let c = &mut self.clients[client];
        if c.attempt != attempt {
            return;
        }
        let Some((idx, final_read)) = c.current.take() else {
            return;
        };
        c.done += 1;
        let reply = match result {
            Ok(reply) => reply,
            // Simulated commands are a few bytes: a refusal means the size check is wrong.
            Err(ClientError::TooLarge { bytes, bytes_max }) => {
                self.violations.push(format!(
                    "client {client}: a command bounded at {bytes} bytes refused as over {bytes_max}"
                ));
                return;
            }
            // The outcome is unknown: the operation stays open forever in the history.
            // The client connects to another node and goes on (a final read must return:
            // it reads again).
            Err(ClientError::Timeout | ClientError::Storage(_)) => {
                self.unanswered += 1;
                let n = self.cfg.replicas;
                self.clients[client].target = ReplicaId(self.rng.random_range(0..n) as u8);
                if final_read {
                    let key = self.history[idx].key;
                    let read = self.final_read();
                    self.start_op(client, Some((key, read)));
                } else {
                    let think = self.rng.random_range(0..5 * MS);
                    self.schedule(think, Event::ClientSend { client });
                }
                return;
            }
        };
        let rec = &mut self.history[idx];
        rec.op.ret = self.now;
        rec.op.log_hi = self.log_time_max;
        rec.op.out = match (rec.op.op, reply) {
            (Op::Set(_), Reply::Ok) => Output::Ok,
            (Op::Set(_), Reply::Multi(rs)) if rs.first() == Some(&Reply::Ok) => Output::Ok,
            (Op::Del, Reply::Int(n)) => Output::Removed(n > 0),
            (Op::Cas { .. }, Reply::Ok) => Output::Swapped(true),
            (Op::Cas { .. }, Reply::Value(None)) => Output::Swapped(false),
            (Op::Incr, Reply::Int(n)) if n > 0 => Output::Count(n as u64),
            (Op::Push(_) | Op::Len, Reply::Int(n)) if n >= 0 => Output::Count(n as u64),
            (Op::SetPx { .. }, Reply::Ok) => Output::Ok,
            (Op::Expire { .. } | Op::Persist, Reply::Int(n @ (0 | 1))) => Output::Changed(n == 1),
            (Op::Ttl, Reply::Int(n)) => Output::Ttl(n),
            (Op::Trim { .. } | Op::SetHead(_), Reply::Ok) => Output::Ok,
            (Op::SetHead(_), Reply::Error(crate::protocol::kv::ApplyError::NoSuchKey)) => {
                Output::Refused
            }
            (Op::Pos(_), Reply::Int(n)) if n >= 0 => Output::Count(n as u64),
            (Op::Pos(_), Reply::Value(None)) => Output::Value(None),
            (Op::Insert { .. }, Reply::Int(-1)) => Output::Refused,
            (Op::Insert { .. }, Reply::Int(n)) if n >= 0 => Output::Count(n as u64),
            (Op::BlockingPop { .. }, Reply::Values(kv)) if kv.len() == 2 => {
                Output::Value(kv[1].as_ref().map(|b| {
                    std::str::from_utf8(b)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(u64::MAX)
                }))
            }
            (
                Op::Get
                | Op::Pop
                | Op::BlockingPop { .. }
                | Op::Rotate { .. }
                | Op::Move { .. }
                | Op::BlockingMove { .. },
                Reply::Value(v),
            ) => Output::Value(v.map(|b| {
                std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX)
            })),
            (op, reply) => {
                let msg = format!("client {client}: {op:?} got reply {reply:?}");
                self.violations.push(msg);
                Output::Unknown
            }
        };
        let think = self.rng.random_range(0..5 * MS);
        self.schedule(think, Event::ClientSend { client });
    }

    pub(super) fn start_final_reads(&mut self) {
        self.log(|| "final reads of every key".into());
        // One more operation per client: a read of each key, spread over clients.
        for c in 0..self.clients.len() {
            self.clients[c].done = 0;
        }
        self.cfg.ops_per_client = 0;
        for key in 0..self.cfg.keys {
            let c = key % self.clients.len();
            let read = self.final_read();
            self.start_op(c, Some((key, read)));
        }
    }

    /// The read that ends a run, of every key: its value, or a list's length.
    fn final_read(&self) -> Op {
        if self.cfg.lists { Op::Len } else { Op::Get }
    }

    /// Ticks a live node's client path.
    pub(super) fn tick_client(&mut self, node: ReplicaId) {
        let now = self.clock(node);
        let n = &mut self.nodes[node.index()];
        let view = LeaderView::of(n.replica.as_ref().expect("live"));
        n.client.tick(now, view);
        self.drive_client(node);
    }

    /// Carries out what a live node's client path asked for, as the runtime's shard does.
    pub(super) fn drive_client(&mut self, node: ReplicaId) {
        if std::mem::replace(&mut self.nodes[node.index()].driving, true) {
            return; // The loop below, further up the stack, takes the new outputs.
        }
        while let Some(out) = self.nodes[node.index()].client.pop_output() {
            match out {
                ClientOutput::Propose { token, req } => {
                    let now = self.clock(node);
                    let n = &mut self.nodes[node.index()];
                    let mut reqs = vec![(token, req)];
                    n.client.pop_proposals(&mut reqs);
                    n.replica.as_mut().expect("live").on_requests(now, reqs);
                    self.after_step(node);
                }
                ClientOutput::Forward { to, id, req } => {
                    self.forwards += 1;
                    let n = &mut self.nodes[node.index()];
                    let replica = n.replica.as_mut().expect("live");
                    let answered_there = replica.expect_forwarded(id, &req);
                    let msg = Wire::Forward {
                        id,
                        req,
                        answered_there,
                    };
                    self.net_send(node, to, msg);
                }
                ClientOutput::ForwardReply { to, id, reply } => {
                    self.net_send(node, to, Wire::ForwardReply { id, reply });
                }
                ClientOutput::Finish { handle, result } => {
                    if self.blocked_finished(node, handle, &result) {
                        continue;
                    }
                    let callers = &mut self.nodes[node.index()].callers;
                    if let Some((client, attempt)) = callers.remove(&handle) {
                        self.answer_client(client, attempt, result);
                    }
                }
                ClientOutput::Wake { at } => {
                    let incarnation = self.nodes[node.index()].incarnation;
                    let after = at.saturating_sub(self.clock(node));
                    self.schedule(after, Event::ClientPathWake { node, incarnation });
                }
            }
        }
        self.nodes[node.index()].driving = false;
    }
}
