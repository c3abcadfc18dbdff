//! Blocking pops (`BLPOP`, `BLMOVE`) in the simulator: a node drives each with
//! [`crate::protocol::blocking`], the code the runtime's shard drives, through its client
//! path. A pop waits on the node its client is connected to until one of its keys holds a
//! list there, is submitted through the log, waits again if another pop emptied the list
//! first, and at its deadline (node clock) is submitted a last time. The checker treats it
//! as the `LPOP` or `LMOVE` it submits: one that answered nil must have found the list
//! empty within its call.

use super::*;
use crate::protocol::blocking::{Blocking, BlockingPop, Next};

/// A blocking pop on a node, between its arrival and its answer.
pub(super) struct Blocked {
    client: usize,
    attempt: u32,
    pop: BlockingPop,
    /// A pop of it is in the client path (its handle is in `Node::blocked_handles`).
    in_flight: bool,
}

impl Sim {
    /// A client's blocking pop reaches its node: it waits there, or is refused if the
    /// node crashed since (the connection broke).
    pub(super) fn blocking_request(
        &mut self,
        node: ReplicaId,
        incarnation: u32,
        client: usize,
        attempt: u32,
        b: Blocking,
        timeout: Nanos,
    ) {
        let n = &mut self.nodes[node.index()];
        if n.replica.is_none() || n.incarnation != incarnation {
            return self.answer_client(client, attempt, Err(ClientError::Timeout));
        }
        n.blocked_next += 1;
        let id = n.blocked_next;
        n.blocked.insert(
            id,
            Blocked {
                client,
                attempt,
                pop: BlockingPop::new(b),
                in_flight: false,
            },
        );
        self.schedule(
            timeout,
            Event::BlockingDeadline {
                node,
                incarnation,
                id,
            },
        );
        self.advance_blocked(node, id);
    }

    /// What blocking pop `id` does now that none of its pops is in flight.
    fn advance_blocked(&mut self, node: ReplicaId, id: u64) {
        let now = self.clock(node);
        let n = &mut self.nodes[node.index()];
        let Some(r) = n.replica.as_ref() else {
            return;
        };
        let Some(bl) = n.blocked.get_mut(&id) else {
            return;
        };
        debug_assert!(!bl.in_flight);
        match bl.pop.next(r.kv()) {
            Next::Wait => n.waiters.register(id, &bl.pop.b.keys),
            Next::Submit(cmd) => {
                n.waiters.forget(id, &bl.pop.b.keys);
                bl.in_flight = true;
                let handle = n.client.submit(now, cmd, LeaderView::of(r));
                n.blocked_handles.insert(handle, id);
                self.drive_client(node);
            }
        }
    }

    /// The client path finished a command: if it was a blocking pop's, carries on with
    /// it and returns true.
    pub(super) fn blocked_finished(
        &mut self,
        node: ReplicaId,
        handle: Handle,
        result: &Result<Reply, ClientError>,
    ) -> bool {
        let n = &mut self.nodes[node.index()];
        let Some(id) = n.blocked_handles.remove(&handle) else {
            return false;
        };
        let Some(bl) = n.blocked.get_mut(&id) else {
            return true;
        };
        bl.in_flight = false;
        let answer = match result {
            Ok(reply) => bl.pop.on_reply(reply.clone()).map(Ok),
            Err(e) => Some(Err(e.clone())),
        };
        match answer {
            Some(result) => {
                let bl = n.blocked.remove(&id).expect("found above");
                self.answer_client(bl.client, bl.attempt, result);
            }
            None => self.advance_blocked(node, id),
        }
        true
    }

    /// After a step: the waiters a list here can serve submit their pops.
    pub(super) fn wake_blocked(&mut self, node: ReplicaId) {
        let n = &mut self.nodes[node.index()];
        let Some(r) = n.replica.as_ref() else {
            return;
        };
        if n.waiters.is_empty() {
            return;
        }
        let mut woken = Vec::new();
        n.waiters.wake(r.kv(), &mut woken);
        woken.sort_unstable();
        woken.dedup();
        for id in woken {
            if self.nodes[node.index()]
                .blocked
                .get(&id)
                .is_some_and(|bl| !bl.in_flight)
            {
                self.advance_blocked(node, id);
            }
        }
    }

    /// Blocking pop `id`'s deadline: its next pop is its last. With
    /// `bug_blocking_timeout_local`, a waiting pop answers nil at once instead, from this
    /// node's state (which may lag the log).
    pub(super) fn blocking_deadline(&mut self, node: ReplicaId, incarnation: u32, id: u64) {
        let n = &mut self.nodes[node.index()];
        if n.incarnation != incarnation || n.replica.is_none() {
            return;
        }
        let Some(bl) = n.blocked.get_mut(&id) else {
            return;
        };
        bl.pop.expire();
        if bl.in_flight {
            return; // Its answer, nil included, is final now.
        }
        if self.cfg.bug_blocking_timeout_local {
            let bl = n.blocked.remove(&id).expect("found above");
            n.waiters.forget(id, &bl.pop.b.keys);
            return self.answer_client(bl.client, bl.attempt, Ok(Reply::Value(None)));
        }
        self.advance_blocked(node, id);
    }

    /// A crash: the blocking pops' clients lose their connection (outcome unknown).
    pub(super) fn drop_blocked(&mut self, node: ReplicaId) {
        let n = &mut self.nodes[node.index()];
        n.waiters = Default::default();
        n.blocked_handles.clear();
        let gone = std::mem::take(&mut n.blocked);
        for (_, bl) in gone {
            self.answer_client(bl.client, bl.attempt, Err(ClientError::Timeout));
        }
    }
}
