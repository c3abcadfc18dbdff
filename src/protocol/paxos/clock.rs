//! The leader stamps its time into the log, and names the keys whose deadline passed (see
//! [`crate::protocol::clock`], shared with Raft): at the front of a batch when keys may
//! expire or a command in it counts time from now, and in a batch of its own when keys
//! are due and nothing else is being proposed.

use std::sync::Arc;

use super::{Replica, Role};
use crate::protocol::clock::LogClock;
use crate::protocol::kv::Request;
use crate::protocol::types::Nanos;

impl Replica {
    /// The driver tells the replica the wall clock (unix ms) at `now`: the leader's log
    /// time is `now` shifted by the difference. Without it (the simulator) the log's time
    /// is the replica's own clock in milliseconds.
    pub fn set_wall_clock(&mut self, now: Nanos, unix_ms: u64) {
        self.clock.set_wall_clock(now, unix_ms);
    }

    /// Bytes a batch keeps free for its clock entry.
    pub(super) fn clock_reserve_bytes(&self) -> usize {
        LogClock::reserve_bytes(&self.kv, self.cfg.batch_bytes_max)
    }

    /// A clock entry for a batch: when some key has a deadline, or `needed` (a command of
    /// the batch counts time from now). It names due keys only if `name_keys`.
    pub(super) fn clock_entry(&self, now: Nanos, needed: bool, name_keys: bool) -> Option<Request> {
        let bytes_max = self.cfg.batch_bytes_max;
        self.clock
            .entry(now, &self.kv, bytes_max, needed, name_keys)
    }

    /// Whether a clock entry naming keys is still being proposed (one at a time: the keys
    /// leave the applied state only when it is applied).
    pub(super) fn expiry_in_flight(&self) -> bool {
        match &self.role {
            Role::Leader(l) => l.expiry_slot.is_some_and(|s| l.in_flight.contains_key(&s)),
            _ => false,
        }
    }

    /// On a tick: keys are due and no batch is on its way to name them, so a clock entry
    /// goes alone.
    pub(super) fn propose_expiry(&mut self, now: Nanos) {
        let depth = self.cfg.pipeline_depth;
        let idle = match &self.role {
            Role::Leader(l) => l.queue.requests.is_empty() && l.in_flight.len() < depth,
            _ => false,
        };
        if !idle || self.expiry_in_flight() {
            return;
        }
        let Some(clock) = self
            .clock
            .due_entry(now, &self.kv, self.cfg.batch_bytes_max)
        else {
            return;
        };
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let slot = l.next_slot;
        l.next_slot += 1;
        l.expiry_slot = Some(slot);
        self.propose_at(now, slot, Arc::from(vec![clock]));
    }
}
