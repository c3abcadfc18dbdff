//! Rebuilding a replica from the records it persisted before a crash.

use super::{LogEntry, Replica};
use crate::config::ProtocolConfig;
use crate::protocol::message::{Record, Snapshot};
use crate::protocol::types::{Ballot, ReplicaId};

impl Replica {
    /// A replica restarted from its latest snapshot, if any, and the durable records
    /// written after it, in order. Its promise, accepted values and commit index survive;
    /// it rejoins as a follower.
    pub fn recover(
        cfg: ProtocolConfig,
        id: ReplicaId,
        seed: u64,
        snapshot: Option<Snapshot>,
        records: impl IntoIterator<Item = Record>,
    ) -> Replica {
        let mut r = Replica::new(cfg, id, seed);
        if let Some(s) = snapshot {
            r.restore(s);
        }
        let base = r.log_base;
        let mut chosen_through = base;
        for record in records {
            // Records the snapshot covers would only re-add compacted slots.
            if let Record::Accept { slot, .. } | Record::Learned { slot, .. } = &record
                && *slot <= base
            {
                continue;
            }
            match record {
                Record::Promise { ballot } => r.promised = r.promised.max(ballot),
                Record::Accept {
                    ballot,
                    slot,
                    batch,
                } => {
                    r.promised = r.promised.max(ballot);
                    let chosen = r.log.get(&slot).is_some_and(|e| e.chosen);
                    r.log.insert(
                        slot,
                        LogEntry {
                            ballot,
                            batch,
                            chosen,
                            persist_id: 0,
                        },
                    );
                }
                Record::Learned { slot, batch } => {
                    let ballot = r.log.get(&slot).map_or(Ballot::ZERO, |e| e.ballot);
                    r.log.insert(
                        slot,
                        LogEntry {
                            ballot,
                            batch,
                            chosen: true,
                            persist_id: 0,
                        },
                    );
                }
                Record::Chosen { through } => chosen_through = chosen_through.max(through),
            }
        }
        if chosen_through > base {
            for (_, e) in r.log.range_mut(base + 1..=chosen_through) {
                e.chosen = true;
            }
        }
        // Only a gap-free prefix counts; `advance_chosen` stops at the first hole.
        while r.log.get(&(r.chosen_through + 1)).is_some_and(|e| e.chosen) {
            r.chosen_through += 1;
        }
        r.commit_heard = r.chosen_through;
        r.round_seen = r.promised.round;
        r.rebuild_pending();
        r.apply_chosen();
        r
    }
}
