//! Key expiry by the log's time, so every replica expires the same keys at the same slot.
//!
//! The leader stamps its time into the log (a [`crate::protocol::kv::Command::Clock`] at
//! the front of a batch) and names the keys whose deadline that time has passed; applying
//! it removes them. A key is removed only by a log entry that names it, never by a
//! replica's own clock: reads in every mode see it until that entry is applied, and the
//! lease and pending-write machinery treats the removal like any write of the key.
//! Relative times (`EX`, `PX`, `EXPIRE`) count from the log's time at the slot that
//! applies them.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::types::MapHasher;

/// How a write treats its key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ttl {
    /// The key no longer expires (a plain `SET`; `PERSIST`).
    Clear,
    /// The key keeps its deadline (`KEEPTTL`).
    Keep,
    /// Expires this many milliseconds after the log's time at the applying slot.
    In(u64),
    /// Expires at this log time (unix milliseconds).
    At(u64),
}

impl Ttl {
    /// The deadline it sets at log time `now`: `Some(None)` clears, `None` keeps.
    fn deadline(self, now: u64) -> Option<Option<u64>> {
        match self {
            Ttl::Clear => Some(None),
            Ttl::Keep => None,
            Ttl::In(ms) => Some(Some(now.saturating_add(ms))),
            Ttl::At(at) => Some(Some(at)),
        }
    }

    /// Whether applying it needs the log's current time.
    pub fn reads_clock(self) -> bool {
        matches!(self, Ttl::In(_))
    }
}

/// When `EXPIRE` changes a deadline (Redis 7's options).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpireIf {
    /// Always.
    Always,
    /// Only if the key has no deadline (`NX`).
    NoDeadline,
    /// Only if it has one (`XX`).
    HasDeadline,
    /// Only if the new deadline is later (`GT`; no deadline counts as infinitely late).
    Later,
    /// Only if the new deadline is earlier (`LT`).
    Earlier,
}

impl ExpireIf {
    fn allows(self, old: Option<u64>, new: Option<u64>) -> bool {
        // No deadline is later than every deadline.
        let late = |d: Option<u64>| d.unwrap_or(u64::MAX);
        match self {
            ExpireIf::Always => true,
            ExpireIf::NoDeadline => old.is_none(),
            ExpireIf::HasDeadline => old.is_some(),
            ExpireIf::Later => old.is_some() && late(new) > late(old),
            ExpireIf::Earlier => late(new) < late(old),
        }
    }
}

/// Due keys one call of [`Expiry::due_by`] looks at, at most: the work of a batch stays
/// bounded when many keys are due at once.
pub const DUE_SCAN_MAX: usize = 4096;

/// The deadlines of one shard's keys and the log's time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expiry {
    /// Key → deadline (unix ms).
    at: HashMap<Bytes, u64, MapHasher>,
    /// (deadline, key), to find the due keys in order.
    due: BTreeSet<(u64, Bytes)>,
    /// The newest time the log stamped (unix ms); never goes back.
    now: u64,
}

/// What a write does to a deadline.
pub enum Change {
    /// Leaves the key as it is.
    Keep,
    /// The key has a deadline (or none) from now on.
    To(Option<u64>),
    /// The deadline is already past: the key is removed.
    Remove,
}

impl Expiry {
    /// The log's time (unix ms): the newest clock entry applied.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// A clock entry is applied: time moves forward only.
    pub fn advance(&mut self, now: u64) {
        self.now = self.now.max(now);
    }

    /// The deadline of a key.
    pub fn deadline(&self, key: &[u8]) -> Option<u64> {
        self.at.get(key).copied()
    }

    /// Keys with a deadline.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// True when no key has a deadline.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// The earliest deadline.
    pub fn earliest(&self) -> Option<u64> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Keys whose deadline is at or before `upto`, earliest first, that fit `bytes_max`
    /// (each counted with `overhead` more; a key too large is passed over, see
    /// [`Expiry::earliest_due`]); at most [`DUE_SCAN_MAX`] keys are looked at.
    pub fn due_by(&self, upto: u64, overhead: usize, bytes_max: usize) -> Vec<Bytes> {
        let mut bytes = 0;
        let mut keys = Vec::new();
        for (_, key) in self
            .due
            .iter()
            .take_while(|(at, _)| *at <= upto)
            .take(DUE_SCAN_MAX)
        {
            if bytes + key.len() + overhead <= bytes_max {
                bytes += key.len() + overhead;
                keys.push(key.clone());
            }
        }
        keys
    }

    /// The key with the earliest deadline, if that deadline is at or before `upto`.
    pub fn earliest_due(&self, upto: u64) -> Option<&Bytes> {
        self.due
            .first()
            .filter(|(at, _)| *at <= upto)
            .map(|(_, key)| key)
    }

    /// Whether the key's deadline has passed at the log's time.
    pub fn is_due(&self, key: &[u8]) -> bool {
        self.deadline(key).is_some_and(|at| at <= self.now)
    }

    /// What `ttl` does to a key (existing or being written) at the log's time, if `cond`
    /// allows it; `None` if `cond` refuses.
    pub fn change(&self, key: &[u8], ttl: Ttl, cond: ExpireIf) -> Option<Change> {
        let Some(new) = ttl.deadline(self.now) else {
            return Some(Change::Keep);
        };
        // `Always` needs no old deadline: most writes (every plain SET) skip the lookup.
        if !matches!(cond, ExpireIf::Always) && !cond.allows(self.deadline(key), new) {
            return None;
        }
        Some(match new {
            Some(at) if at <= self.now => Change::Remove,
            new => Change::To(new),
        })
    }

    /// Sets or clears a key's deadline.
    pub fn set(&mut self, key: &[u8], deadline: Option<u64>) {
        let old = match deadline {
            Some(at) => {
                let key = Bytes::copy_from_slice(key);
                self.due.insert((at, key.clone()));
                self.at.insert(key, at)
            }
            None => self.at.remove(key),
        };
        if let Some(old) = old
            && Some(old) != deadline
        {
            self.due.remove(&(old, Bytes::copy_from_slice(key)));
        }
    }

    /// Every deadline (unsorted) and the log's time, for a snapshot.
    pub fn export(&self) -> (Vec<(Bytes, u64)>, u64) {
        let mut all: Vec<(Bytes, u64)> = self.at.iter().map(|(k, at)| (k.clone(), *at)).collect();
        all.sort_unstable();
        (all, self.now)
    }

    /// The deadlines and time of a snapshot.
    pub fn import(deadlines: Vec<(Bytes, u64)>, now: u64) -> Expiry {
        let mut e = Expiry {
            now,
            ..Expiry::default()
        };
        for (k, at) in deadlines {
            e.set(&k, Some(at));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_and_due_keys() {
        let mut e = Expiry::default();
        e.advance(1_000);
        e.advance(900);
        assert_eq!(e.now(), 1_000, "time never goes back");
        e.set(b"a", Some(1_500));
        e.set(b"b", Some(1_200));
        e.set(b"a", Some(1_100));
        assert_eq!(e.len(), 2);
        assert_eq!(e.earliest(), Some(1_100));
        assert_eq!(e.due_by(1_150, 0, 1 << 10), vec![Bytes::from("a")]);
        assert_eq!(
            e.due_by(2_000, 0, 1 << 10),
            vec![Bytes::from("a"), Bytes::from("b")]
        );
        assert_eq!(e.due_by(2_000, 9, 11).len(), 1, "within the bytes given");
        assert_eq!(e.due_by(2_000, 10, 10).len(), 0);
        e.set(b"long-key", Some(1_000));
        assert_eq!(
            e.due_by(2_000, 0, 2),
            vec![Bytes::from("a"), Bytes::from("b")],
            "a key too large is passed over, not a barrier"
        );
        assert_eq!(e.earliest_due(2_000), Some(&Bytes::from("long-key")));
        assert_eq!(e.earliest_due(999), None);
        e.set(b"long-key", None);
        e.set(b"a", None);
        assert_eq!(e.due_by(2_000, 0, 1 << 10), vec![Bytes::from("b")]);
        let (all, now) = e.export();
        assert_eq!(Expiry::import(all, now), e);
    }

    #[test]
    fn changes_follow_redis_conditions() {
        let mut e = Expiry::default();
        e.advance(1_000);
        e.set(b"k", Some(5_000));
        let to = |c: Option<Change>| match c {
            Some(Change::To(d)) => Some(d),
            _ => None,
        };
        assert_eq!(
            to(e.change(b"k", Ttl::In(100), ExpireIf::Always)),
            Some(Some(1_100))
        );
        assert!(e.change(b"k", Ttl::In(100), ExpireIf::NoDeadline).is_none());
        assert!(e.change(b"k", Ttl::In(100), ExpireIf::Later).is_none());
        assert_eq!(
            to(e.change(b"k", Ttl::At(9_000), ExpireIf::Later)),
            Some(Some(9_000))
        );
        assert!(e.change(b"new", Ttl::At(9_000), ExpireIf::Later).is_none());
        assert_eq!(
            to(e.change(b"new", Ttl::At(9_000), ExpireIf::Earlier)),
            Some(Some(9_000))
        );
        assert!(matches!(
            e.change(b"k", Ttl::At(1_000), ExpireIf::Always),
            Some(Change::Remove)
        ));
        assert!(matches!(
            e.change(b"k", Ttl::Keep, ExpireIf::Always),
            Some(Change::Keep)
        ));
        assert_eq!(to(e.change(b"k", Ttl::Clear, ExpireIf::Always)), Some(None));
        assert!(!e.is_due(b"k"));
        e.advance(5_000);
        assert!(e.is_due(b"k"));
    }
}
