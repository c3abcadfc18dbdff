//! The log's clock, shared by both cores: a leader stamps its time into the log, and names
//! the keys whose deadline passed (see [`crate::protocol::expiry`]), at the front of a
//! batch when keys may expire or a command in it counts time from now, and in a batch of
//! its own when keys are due and nothing else is being proposed. Every replica applies
//! the same entries, so key expiry is decided by the log, never by a replica's own clock.

use super::kv::{Command, Kv, Request};
use super::types::{NANOS_PER_MS, Nanos};
use crate::limits::{COMMAND_OVERHEAD_BYTES, ITEM_OVERHEAD_BYTES, REQUEST_OVERHEAD_BYTES};

/// Bytes of keys one clock entry names at most (each key counted with its length's
/// varint), and at most a quarter of a batch; the rest wait for the next entry.
pub const EXPIRE_BYTES_PER_SLOT_MAX: usize = 64 << 10;

/// An upper bound of a clock entry's encoded size: what a batch leaves room for.
pub const CLOCK_BYTES_MAX: usize = EXPIRE_BYTES_PER_SLOT_MAX
    + 2 * ITEM_OVERHEAD_BYTES
    + COMMAND_OVERHEAD_BYTES
    + REQUEST_OVERHEAD_BYTES;

// A batch keeps most of its room for commands when it carries a clock entry.
const _: () = assert!(CLOCK_BYTES_MAX <= crate::limits::BATCH_BYTES_LIMIT / 64);

/// A leader's log time: the driver's clock shifted to the wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogClock {
    /// The wall clock (unix ms) minus the driver's clock (ms).
    wall_offset_ms: i64,
}

impl LogClock {
    /// The driver tells the wall clock (unix ms) at `now`. Without it (the simulator) the
    /// log's time is the replica's own clock in milliseconds.
    pub fn set_wall_clock(&mut self, now: Nanos, unix_ms: u64) {
        let mono_ms = (now / NANOS_PER_MS) as i64;
        self.wall_offset_ms = unix_ms as i64 - mono_ms;
    }

    /// The clock as a log time (unix ms), never behind the log's (`kv`'s).
    pub fn now_ms(&self, now: Nanos, kv: &Kv) -> u64 {
        let ms = ((now / NANOS_PER_MS) as i64).saturating_add(self.wall_offset_ms);
        u64::try_from(ms).unwrap_or(0).max(kv.expiry().now())
    }

    /// Bytes of keys a clock entry in a batch of `batch_bytes_max` may name.
    fn expire_budget(batch_bytes_max: usize) -> usize {
        EXPIRE_BYTES_PER_SLOT_MAX.min(batch_bytes_max / 4)
    }

    /// Bytes a batch keeps free for its clock entry.
    pub fn reserve_bytes(kv: &Kv, batch_bytes_max: usize) -> usize {
        let fixed = 2 * ITEM_OVERHEAD_BYTES + COMMAND_OVERHEAD_BYTES + REQUEST_OVERHEAD_BYTES;
        if kv.expiry().is_empty() {
            fixed
        } else {
            fixed + Self::expire_budget(batch_bytes_max)
        }
    }

    /// A clock entry for a batch: when some key has a deadline, or `needed` (a command of
    /// the batch counts time from now). It names due keys only if `name_keys`.
    pub fn entry(
        &self,
        now: Nanos,
        kv: &Kv,
        batch_bytes_max: usize,
        needed: bool,
        name_keys: bool,
    ) -> Option<Request> {
        let expiry = kv.expiry();
        if expiry.is_empty() && !needed {
            return None;
        }
        let now_ms = self.now_ms(now, kv);
        let expire = if name_keys {
            expiry.due_by(
                now_ms,
                ITEM_OVERHEAD_BYTES,
                Self::expire_budget(batch_bytes_max),
            )
        } else {
            Vec::new()
        };
        Some(Request {
            cmd: Command::Clock { now_ms, expire },
            ..Request::noop()
        })
    }

    /// A clock entry to go alone on a tick, if keys are due: it names at least one (a key
    /// larger than a batch's share still goes; it fits a record, as keys are within the
    /// command limit).
    pub fn due_entry(&self, now: Nanos, kv: &Kv, batch_bytes_max: usize) -> Option<Request> {
        let due = kv
            .expiry()
            .earliest()
            .is_some_and(|at| at <= self.now_ms(now, kv));
        if !due {
            return None;
        }
        let mut clock = self.entry(now, kv, batch_bytes_max, true, true)?;
        if let Command::Clock { expire, now_ms } = &mut clock.cmd
            && expire.is_empty()
            && let Some(key) = kv.expiry().earliest_due(*now_ms)
        {
            expire.push(key.clone());
        }
        Some(clock)
    }
}
