//! The client requests a leader proposed and answers once they are applied: shared by
//! the Multi-Paxos and the Raft core.

use std::collections::HashMap;

use super::kv::{Applied, Kv};
use super::message::Batch;
use super::outbox::{Action, ClientReply};
use super::types::{ClientId, MapHasher, Slot, Token};

/// Requests proposed here, by (client, sequence number): the token to answer.
pub type Waiting = HashMap<(ClientId, u64), Token, MapHasher>;

/// Applies `batch`, committed at `index`, to `kv`, and answers the requests of it that
/// wait here.
pub fn apply_batch(
    kv: &mut Kv,
    index: Slot,
    batch: &Batch,
    waiting: &mut Waiting,
    out: &mut Vec<Action>,
) {
    for req in batch.iter() {
        let applied = kv.apply(index, req);
        if req.client == 0 {
            continue;
        }
        if let Some(token) = waiting.remove(&(req.client, req.seq)) {
            let reply = match applied {
                Applied::Reply(reply) => ClientReply::Done(reply),
                // The client acknowledged this sequence number already, so it is not
                // waiting for it; a token here means a confused client.
                Applied::Forgotten => ClientReply::Busy,
            };
            out.push(Action::Reply { token, reply });
        }
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
