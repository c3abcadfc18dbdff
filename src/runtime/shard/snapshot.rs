//! Snapshots: when one is due, and writing it on the blocking pool before the WAL and the
//! in-memory log it covers are dropped.

use super::*;

/// Items of the state machine a snapshot shares per part ([`Consensus::snapshot_step`]): about
/// 150 µs of the shard's time at 1M keys (`cargo bench --bench kv_apply -- export_step`).
pub(super) const SNAPSHOT_PART_ITEMS: usize = 4096;
/// The sleep between two parts. A sleep, not a yield: a task that yields goes to the back
/// of its queue, and the executor runs the queue until it is empty before it looks at
/// the network or the disk again (corepax's glommio has no count-based preemption), so a
/// yielding loop would run every part at once. A sleep empties the queue: the executor
/// takes in what arrived, runs it, and wakes this task on its next pass.
pub(super) const SNAPSHOT_PART_GAP: Duration = Duration::from_micros(1);

/// How often a snapshot about to begin looks whether a transfer's export has ended.
const SNAPSHOT_EXPORT_POLL: Duration = Duration::from_millis(1);

impl Shard {
    /// Whether to start writing a snapshot: a step found one due (the schedule:
    /// [`SnapshotSchedule::due`]), none is being written, and storage works.
    pub(super) fn snapshot_due(&self) -> bool {
        self.snapshot_wanted.get()
            && !self.snapshot_running.get()
            && self.storage_error.borrow().is_none()
    }

    /// Writes a snapshot on the blocking pool, then truncates the WAL it covers and
    /// compacts the in-memory log. Returns the slot it covers, or why writing it failed.
    pub(super) async fn write_snapshot(self: Rc<Self>) -> Result<u64, String> {
        if self.replica.borrow().recovering() {
            self.snapshot_running.set(false);
            return Err("the replica is recovering lost WAL records (see snapshot_due)".into());
        }
        self.snapshot_running.set(true);
        // A transfer's export holds the map's one freeze (`shard/offload.rs`); a second
        // would drop it. Its parts run every few µs: wait for them, then begin with no
        // await in between. A transfer that found the last snapshot's freeze running
        // begins first (`transfer_wanted`): snapshots back to back would starve it.
        while self.replica.borrow().kv().exporting()
            || self.replica.borrow().transfer_wanted(self.now())
        {
            glommio::timer::sleep(SNAPSHOT_EXPORT_POLL).await;
        }
        self.snapshot_wanted.set(false);
        let started = Instant::now();
        let mut snap = self
            .outbox
            .borrow_mut()
            .snapshots
            .take_begin(&mut *self.replica.borrow_mut());
        // Taken in the same step as the state it describes: the snapshot holds every
        // repair installed up to here.
        let repairs = self.repairs_installed.get();
        let covered = self.last_lsn.get();
        let at = Consensus::snapshot_slot(&snap);
        let mut pause = started.elapsed();
        let mut frozen = pause;
        // The state machine's items are shared a part at a time, the shard's other work
        // (requests, peers, timers) running between the parts whenever it has any.
        loop {
            let part = Instant::now();
            let done = self.replica.borrow_mut().snapshot_step(SNAPSHOT_PART_ITEMS);
            let took = part.elapsed();
            pause = pause.max(took);
            frozen += took;
            if done {
                break;
            }
            glommio::timer::sleep(SNAPSHOT_PART_GAP).await;
        }
        if !self.replica.borrow_mut().snapshot_end(&mut snap) {
            self.snapshot_running.set(false);
            return Err(format!(
                "the state of the snapshot at slot {at} was lost while it was taken"
            ));
        }
        let shared = Instant::now();
        let meta = crate::runtime::snapshot::SnapshotMeta {
            last_included: at,
            wal_lsn: covered.0,
        };
        let dir = self.snapshot_dir.clone();
        let written = glommio::executor()
            .spawn_blocking(move || {
                // Streamed to the file: the state is never encoded whole in memory.
                crate::runtime::snapshot::write_snapshot_with(&dir, meta, |w| {
                    postcard::to_io(&snap, w)
                        .map(drop)
                        .map_err(std::io::Error::other)
                })
                .map_err(|e| e.to_string())
            })
            .await;
        let result = match written {
            Ok(_) => {
                {
                    let mut c = self.counters.borrow_mut();
                    c.snapshots_written += 1;
                    c.snapshot_freeze_us += frozen.as_micros() as u64;
                    c.snapshot_pause_max_us = c.snapshot_pause_max_us.max(pause.as_micros() as u64);
                    c.snapshot_write_ms += shared.elapsed().as_millis() as u64;
                }
                self.repairs_durable
                    .set(self.repairs_durable.get().max(repairs));
                if let Err(e) = self.wal.truncate_before(Lsn(covered.0 + 1)).await {
                    self.fail_storage(format!("truncating the WAL: {e}"));
                }
                self.outbox
                    .borrow()
                    .snapshots
                    .compact(&mut *self.replica.borrow_mut(), at);
                let now = self.now();
                self.step(|r| r.on_snapshot_saved(now, at));
                Ok(at)
            }
            // The WAL still holds everything: nothing is lost, only the compaction waits.
            Err(e) => {
                eprintln!("shard {}: snapshot at slot {at} failed: {e}", self.index);
                Err(e)
            }
        };
        self.snapshot_running.set(false);
        result
    }
}

/// A loaded snapshot file's payload: a [`ConsensusSnapshot`]; in a file of format 4 one
/// whose items have no kind (all strings), and in one of format 3 a Multi-Paxos snapshot
/// whose items have no kind.
pub(super) fn decode(s: &crate::runtime::snapshot::Snapshot) -> anyhow::Result<ConsensusSnapshot> {
    use crate::protocol::kv::Item;
    let decoded = match s.version {
        crate::runtime::snapshot::VERSION => postcard::from_bytes::<ConsensusSnapshot>(s.bytes()),
        4 => Item::with_kindless_wire(|| postcard::from_bytes::<ConsensusSnapshot>(s.bytes())),
        _ => Item::with_kindless_wire(|| {
            postcard::from_bytes::<crate::protocol::Snapshot>(s.bytes())
                .map(ConsensusSnapshot::Paxos)
        }),
    };
    decoded.map_err(|e| anyhow::anyhow!("snapshot {} does not decode: {e}", s.path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Protocol, ProtocolConfig};
    use crate::runtime::snapshot::{
        SnapshotMeta, VERSION_OLDEST_LOADED, load_latest, write_snapshot,
    };

    fn replica(protocol: Protocol) -> Consensus {
        let cfg = ProtocolConfig {
            protocol,
            ..ProtocolConfig::default()
        };
        Consensus::new(cfg, ReplicaId(0), 1)
    }

    const META: SnapshotMeta = SnapshotMeta {
        last_included: 0,
        wal_lsn: 0,
    };

    #[test]
    fn a_snapshot_file_names_its_protocol() {
        for protocol in Protocol::ALL {
            let dir = tempfile::tempdir().unwrap();
            let snap = replica(protocol).snapshot();
            write_snapshot(dir.path(), META, &postcard::to_stdvec(&snap).unwrap()).unwrap();
            let loaded = load_latest(dir.path()).unwrap().expect("written");
            assert_eq!(decode(&loaded).unwrap(), snap);
        }
    }

    /// Writes `payload` as a snapshot file of format `version` and loads it back.
    fn load_as(version: u32, payload: &[u8]) -> anyhow::Result<ConsensusSnapshot> {
        let dir = tempfile::tempdir().unwrap();
        let path = write_snapshot(dir.path(), META, payload).unwrap();
        // The header as that format wrote it: its version, and its checksum over that.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&version.to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64(&bytes[0..48]);
        bytes[48..56].copy_from_slice(&sum.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        let loaded = load_latest(dir.path()).unwrap().expect("written");
        assert_eq!(loaded.version, version);
        decode(&loaded)
    }

    #[test]
    fn files_of_earlier_formats_load_with_items_as_strings() {
        use crate::protocol::kv::Item;
        let ConsensusSnapshot::Paxos(mut snap) = replica(Protocol::Multipaxos).snapshot() else {
            unreachable!("a Multi-Paxos replica");
        };
        snap.kv.entries.push(Item::new(b"k", b"v", 1));
        let old_wire = Item::with_kindless_wire(|| postcard::to_stdvec(&snap).unwrap());
        assert_eq!(
            load_as(VERSION_OLDEST_LOADED, &old_wire).unwrap(),
            ConsensusSnapshot::Paxos(snap.clone()),
            "format 3 loads as Multi-Paxos"
        );
        let snap = ConsensusSnapshot::Paxos(snap);
        let v4 = Item::with_kindless_wire(|| postcard::to_stdvec(&snap).unwrap());
        assert_eq!(load_as(4, &v4).unwrap(), snap, "format 4");
        assert_eq!(
            load_as(5, &postcard::to_stdvec(&snap).unwrap()).unwrap(),
            snap
        );
    }
}
