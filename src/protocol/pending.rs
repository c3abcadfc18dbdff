//! Which keys have writes in the log that are not applied yet, and the newest such slot.
//!
//! Local reads need it: a lease holder must not answer a key whose write may be chosen but
//! is not applied here, and a digest reply reports the newest slot that may change a key.
//! Kept only in the read modes that use it (it costs a hash insert per written key).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::kv::Command;
use super::types::{MapHasher, Slot};

/// Keys written by log entries above the applied index.
#[derive(Clone, Debug, Default)]
pub struct PendingKeys {
    /// Key → the highest slot above `applied` with a write to it.
    newest: HashMap<Bytes, Slot, MapHasher>,
    /// Slot → keys noted for it (so entries leave even if the slot's value changed).
    by_slot: BTreeMap<Slot, Vec<Bytes>>,
}

impl PendingKeys {
    /// Notes the keys that `cmd`, accepted at `slot`, writes.
    pub fn note(&mut self, slot: Slot, cmd: &Command) {
        let mut add = |k: &Bytes| {
            let newest = self.newest.entry(k.clone()).or_insert(slot);
            *newest = (*newest).max(slot);
            self.by_slot.entry(slot).or_default().push(k.clone());
        };
        cmd.for_each_written_key(&mut add);
    }

    /// Every slot up to `applied` is applied: its writes are no longer pending.
    pub fn applied_through(&mut self, applied: Slot) {
        while let Some(entry) = self.by_slot.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for k in entry.remove() {
                if self.newest.get(&k).is_some_and(|s| *s <= applied) {
                    self.newest.remove(&k);
                }
            }
        }
    }

    /// The newest unapplied slot that writes `key`.
    pub fn newest(&self, key: &[u8]) -> Option<Slot> {
        self.newest.get(key).copied()
    }

    /// Forgets everything (the log was replaced).
    pub fn clear(&mut self) {
        self.newest.clear();
        self.by_slot.clear();
    }

    /// Keys with a pending write.
    pub fn len(&self) -> usize {
        self.newest.len()
    }

    /// True when no write is pending.
    pub fn is_empty(&self) -> bool {
        self.newest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn writes_stay_pending_until_applied_even_if_the_slot_changes() {
        let mut p = PendingKeys::default();
        p.note(3, &Command::Set(b("a"), b("1")));
        p.note(5, &Command::MSet(vec![(b("a"), b("2")), (b("b"), b("3"))]));
        p.note(6, &Command::Get(b("c")));
        // Slot 4 first held a write to c, then a different value replaced it.
        p.note(4, &Command::Del(vec![b("c")]));
        assert_eq!(p.newest(b"a"), Some(5));
        assert_eq!(p.newest(b"c"), Some(4));
        assert_eq!(p.newest(b"d"), None);
        p.applied_through(4);
        assert_eq!(p.newest(b"a"), Some(5), "a is written again at 5");
        assert_eq!(p.newest(b"c"), None);
        p.applied_through(5);
        assert!(p.is_empty());
    }
}
