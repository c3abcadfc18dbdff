//! Rebuilding a replica from the records it persisted before a crash.

use super::{LogEntry, Replica};
use crate::config::ProtocolConfig;
use crate::protocol::message::Record;
use crate::protocol::types::{Ballot, ReplicaId};

impl Replica {
    /// A replica restarted from its durable records, in the order they were written.
    /// Its promise, accepted values and commit index survive; it rejoins as a follower.
    pub fn recover(
        cfg: ProtocolConfig,
        id: ReplicaId,
        seed: u64,
        records: impl IntoIterator<Item = Record>,
    ) -> Replica {
        let mut r = Replica::new(cfg, id, seed);
        let mut chosen_through = 0;
        for record in records {
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
        for (_, e) in r.log.range_mut(..=chosen_through) {
            e.chosen = true;
        }
        // Only a gap-free prefix counts; `advance_chosen` stops at the first hole.
        while r.log.get(&(r.chosen_through + 1)).is_some_and(|e| e.chosen) {
            r.chosen_through += 1;
        }
        r.commit_heard = r.chosen_through;
        r.round_seen = r.promised.round;
        r.apply_chosen();
        r
    }
}
