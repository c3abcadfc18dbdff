//! The leader stamps its time into the log, and names the keys whose deadline passed (see
//! [`crate::protocol::expiry`]): at the front of a batch when keys may expire or a command
//! in it counts time from now, and in a batch of its own when keys are due and nothing
//! else is being proposed.

use std::sync::Arc;

use super::{Replica, Role};
use crate::limits::{COMMAND_OVERHEAD_BYTES, ITEM_OVERHEAD_BYTES, REQUEST_OVERHEAD_BYTES};
use crate::protocol::kv::{Command, Request};
use crate::protocol::types::{NANOS_PER_MS, Nanos};

/// Bytes of keys one clock entry names at most (each key counted with its length's
/// varint), and at most a quarter of a batch; the rest wait for the next entry.
pub(super) const EXPIRE_BYTES_PER_SLOT_MAX: usize = 64 << 10;

/// An upper bound of a clock entry's encoded size: what a batch leaves room for.
pub(super) const CLOCK_BYTES_MAX: usize = EXPIRE_BYTES_PER_SLOT_MAX
    + 2 * ITEM_OVERHEAD_BYTES
    + COMMAND_OVERHEAD_BYTES
    + REQUEST_OVERHEAD_BYTES;

// A batch keeps most of its room for commands when it carries a clock entry.
const _: () = assert!(CLOCK_BYTES_MAX <= crate::limits::BATCH_BYTES_LIMIT / 64);

impl Replica {
    /// The driver tells the replica the wall clock (unix ms) at `now`: the leader's log
    /// time is `now` shifted by the difference. Without it (the simulator) the log's time
    /// is the replica's own clock in milliseconds.
    pub fn set_wall_clock(&mut self, now: Nanos, unix_ms: u64) {
        let mono_ms = (now / NANOS_PER_MS) as i64;
        self.wall_offset_ms = unix_ms as i64 - mono_ms;
    }

    /// This replica's clock as a log time (unix ms), never behind the log's.
    fn log_clock_ms(&self, now: Nanos) -> u64 {
        let ms = ((now / NANOS_PER_MS) as i64).saturating_add(self.wall_offset_ms);
        u64::try_from(ms).unwrap_or(0).max(self.kv.expiry().now())
    }

    /// Bytes of keys a clock entry in a batch may name.
    fn expire_budget(&self) -> usize {
        EXPIRE_BYTES_PER_SLOT_MAX.min(self.cfg.batch_bytes_max / 4)
    }

    /// Bytes a batch keeps free for its clock entry.
    pub(super) fn clock_reserve_bytes(&self) -> usize {
        let fixed = 2 * ITEM_OVERHEAD_BYTES + COMMAND_OVERHEAD_BYTES + REQUEST_OVERHEAD_BYTES;
        if self.kv.expiry().is_empty() {
            fixed
        } else {
            fixed + self.expire_budget()
        }
    }

    /// A clock entry for a batch: when some key has a deadline, or `needed` (a command of
    /// the batch counts time from now). It names due keys only if `name_keys`.
    pub(super) fn clock_entry(&self, now: Nanos, needed: bool, name_keys: bool) -> Option<Request> {
        let expiry = self.kv.expiry();
        if expiry.is_empty() && !needed {
            return None;
        }
        let now_ms = self.log_clock_ms(now);
        let expire = if name_keys {
            expiry.due_by(now_ms, ITEM_OVERHEAD_BYTES, self.expire_budget())
        } else {
            Vec::new()
        };
        Some(Request {
            cmd: Command::Clock { now_ms, expire },
            ..Request::noop()
        })
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
        let due = self
            .kv
            .expiry()
            .earliest()
            .is_some_and(|at| at <= self.log_clock_ms(now));
        let depth = self.cfg.pipeline_depth;
        let idle = match &self.role {
            Role::Leader(l) => l.queue.requests.is_empty() && l.in_flight.len() < depth,
            _ => false,
        };
        if !due || !idle || self.expiry_in_flight() {
            return;
        }
        let Some(mut clock) = self.clock_entry(now, true, true) else {
            return;
        };
        // Alone in its batch, a key larger than a batch's share still goes (it fits a
        // record: keys are within the command limit).
        if let Command::Clock { expire, now_ms } = &mut clock.cmd
            && expire.is_empty()
            && let Some(key) = self.kv.expiry().earliest_due(*now_ms)
        {
            expire.push(key.clone());
        }
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let slot = l.next_slot;
        l.next_slot += 1;
        l.expiry_slot = Some(slot);
        self.propose_at(now, slot, Arc::from(vec![clock]));
    }
}
