//! The client requests a leader queues, batches, and answers once they are applied:
//! shared by the Multi-Paxos and the Raft core.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use super::kv::{Applied, Kv, Reply, Request};
use super::message::Batch;
use super::outbox::{Action, ClientReply};
use super::types::{ClientId, MapHasher, Nanos, Slot, Token};

/// Requests proposed here, by (client, sequence number): the token to answer.
pub type Waiting = HashMap<(ClientId, u64), Token, MapHasher>;

/// Set in the token of a forwarded command that the replica which forwarded it answers
/// itself when it applies it (early learning, `paxos/early.rs`). A read: once queued,
/// nobody waits for it here, so the leader neither runs it at apply nor sends its value
/// back. A write waits here as any (a retry of it must find it), and the client path
/// drops its answer (`ClientPath::on_core_reply`). Client paths never hand out tokens
/// with this bit (`ClientPath::on_forward` sets it).
pub const ANSWERED_THERE: Token = 1 << 63;

/// A leader's queue of client requests waiting for a log position.
#[derive(Clone, Debug, Default)]
pub struct Queue {
    /// The requests, in arrival order, each with its encoded size (an upper bound),
    /// computed once on arrival.
    pub requests: VecDeque<(Request, usize)>,
    /// Their encoded sizes (upper bounds), summed.
    pub bytes: usize,
    /// When the oldest request arrived (for `batch_delay_us`).
    pub since: Nanos,
}

/// What became of a client request offered to a leader's queue ([`admit`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Queued; `waiting` holds its token.
    Queued,
    /// A retry of a request queued or proposed here and not yet applied: the copy already
    /// here answers it, to the new token; `old`, the token it replaced, gets `NotLeader`
    /// naming this replica (queueing it again would log the same command twice, for a
    /// large one tens of MiB on every replica).
    Retry {
        /// The token that no longer gets the answer.
        old: Token,
    },
    /// The queue holds `queue_max` requests: refused as `Busy`.
    Full,
    /// Queued, a read whose token carries [`ANSWERED_THERE`]: `waiting` does not hold it,
    /// and its token gets [`ClientReply::Logged`] now.
    AnsweredThere,
}

/// Offers `req` (answered to `token`) to a leader's `queue`: the rule both cores follow.
pub fn admit(
    queue: &mut Queue,
    waiting: &mut Waiting,
    queue_max: usize,
    now: Nanos,
    token: Token,
    req: Request,
) -> Admission {
    let answered_there = token & ANSWERED_THERE != 0 && req.cmd.is_read_only();
    if req.client == 0 || answered_there {
        // No session (nothing to answer a retry from), or answered where it was sent: a
        // retry of such a read is queued again, and runs again (as any retried read does).
        if queue.requests.len() >= queue_max {
            return Admission::Full;
        }
        queue.push(now, req);
        return if answered_there {
            Admission::AnsweredThere
        } else {
            Admission::Queued
        };
    }
    // One hash and probe of the session's key, whether it turns out a retry or new.
    match waiting.entry((req.client, req.seq)) {
        Entry::Occupied(mut waiting) => Admission::Retry {
            old: std::mem::replace(waiting.get_mut(), token),
        },
        Entry::Vacant(_) if queue.requests.len() >= queue_max => Admission::Full,
        Entry::Vacant(slot) => {
            slot.insert(token);
            queue.push(now, req);
            Admission::Queued
        }
    }
}

impl Queue {
    /// Adds `req` at the back.
    pub fn push(&mut self, now: Nanos, req: Request) {
        if self.requests.is_empty() {
            self.since = now;
        }
        let size = req.encoded_bytes_max();
        self.bytes += size;
        self.requests.push_back((req, size));
    }

    /// The next batch, if one is due: at most `batch_max` commands and `bytes_max` bytes
    /// (a single larger command still goes alone), taken once the queue holds a full
    /// batch or its oldest request waited `delay`. Sizes are encoded bounds: a batch within
    /// `batch_bytes_max` (at most `limits::BATCH_BYTES_LIMIT`) fits a WAL record, and so
    /// does a batch of one command (at most `limits::COMMAND_BYTES_MAX`, checked on
    /// arrival).
    pub fn take_batch(
        &mut self,
        now: Nanos,
        batch_max: usize,
        bytes_max: usize,
        delay: Nanos,
    ) -> Option<Vec<Request>> {
        if self.requests.is_empty() {
            return None;
        }
        let full = self.requests.len() >= batch_max || self.bytes >= bytes_max;
        if !full && delay > 0 && now.saturating_sub(self.since) < delay {
            return None;
        }
        let mut batch = Vec::with_capacity(self.requests.len().min(batch_max));
        let mut bytes = 0;
        while let Some(&(_, size)) = self.requests.front() {
            if batch.len() == batch_max || (!batch.is_empty() && bytes + size > bytes_max) {
                break;
            }
            bytes += size;
            let (req, _) = self.requests.pop_front().expect("front checked");
            batch.push(req);
        }
        self.bytes -= bytes;
        self.since = now;
        Some(batch)
    }
}

/// Takes out of `waiting` the requests whose replies the sessions in `kv` kept (applied
/// inside a snapshot just installed), with those replies, in token order.
pub fn take_kept(waiting: &mut Waiting, kv: &Kv) -> Vec<(Token, Reply)> {
    let mut kept: Vec<_> = waiting
        .iter()
        .filter_map(|(&(client, seq), &token)| {
            kv.cached_reply(client, seq)
                .map(|r| ((client, seq), token, r.clone()))
        })
        .collect();
    kept.sort_unstable_by_key(|&(_, token, _)| token);
    kept.into_iter()
        .map(|(key, token, reply)| {
            waiting.remove(&key);
            (token, reply)
        })
        .collect()
}

/// Applies `batch`, committed at `index`, to `kv`, and answers the requests of it that
/// wait here.
pub fn apply_batch(
    kv: &mut Kv,
    index: Slot,
    batch: &Batch,
    waiting: &mut Waiting,
    out: &mut Vec<Action>,
) {
    // Nobody waiting here (a follower): reads are not run, so not prefetched either.
    kv.prefetch(batch, !waiting.is_empty());
    for req in batch.iter() {
        // A follower mostly waits for nothing: no hash of the session, and no copy of the
        // reply to drop, per request; nor for a request nobody here waits for (a follower
        // waits only for the forwards it may answer itself).
        let token = if req.client == 0 || waiting.is_empty() {
            None
        } else {
            waiting.remove(&(req.client, req.seq))
        };
        let Some(token) = token else {
            kv.apply_unanswered(index, req);
            continue;
        };
        let reply = match kv.apply(index, req) {
            Applied::Reply(reply) => ClientReply::Done(reply),
            // The client acknowledged this sequence number already, so it is not
            // waiting for it; a token here means a confused client.
            Applied::Forgotten => ClientReply::Busy,
        };
        out.push(Action::Reply { token, reply });
    }
}

/// Answers every waiting request with `reply` (in token order), leaving none: a leader
/// stepping down. The requests may still be committed by the next leader; a retry with
/// the same session and sequence number takes effect at most once.
pub fn refuse_all(waiting: &mut Waiting, reply: &ClientReply, out: &mut Vec<Action>) {
    let mut tokens: Vec<Token> = waiting.drain().map(|(_, t)| t).collect();
    tokens.sort_unstable();
    for token in tokens {
        out.push(Action::Reply {
            token,
            reply: reply.clone(),
        });
    }
}
