//! What INFO reports about a shard.

use super::*;

/// Counters of a shard, for INFO.
#[derive(Clone, Debug, Default)]
pub struct ShardCounters {
    /// Commands submitted by clients of this node.
    pub commands: u64,
    /// Commands sent to another replica's leader.
    pub forwarded: u64,
    /// Commands answered with an error.
    pub errors: u64,
    /// Records written to the WAL.
    pub records_persisted: u64,
    /// Of those, records whose batch was written as it arrived from the leader
    /// (`received`): not encoded again.
    pub records_logged_as_received: u64,
    /// Accepts (Raft: appends) whose frame took its batch's bytes from the record just
    /// logged (`received::encode_frame`): not encoded again.
    pub frames_sent_as_logged: u64,
    /// Records the WAL refused as too large (the core's size bound was wrong).
    pub records_too_large: u64,
    /// WAL syncs completed.
    pub syncs: u64,
    /// Anti-entropy rounds run from this shard (periodic or `COREPAX.REPAIR`), each against
    /// every other replica.
    pub anti_entropy_rounds: u64,
    /// Entries installed here by anti-entropy, as initiator or responder.
    pub anti_entropy_keys_repaired: u64,
    /// Of those, entries known to be on disk (in a snapshot written after they were
    /// installed).
    pub anti_entropy_keys_persisted: u64,
    /// Sessions that failed (peer down or silent) and repairs that could not be made
    /// durable.
    pub anti_entropy_failures: u64,
    /// Snapshots written to make repairs durable.
    pub anti_entropy_snapshots: u64,
    /// Bytes of peer frames sent only to serve reads: digest/quorum read queries, reports
    /// and repairs, and read commands forwarded to the leader.
    pub read_bytes_sent: u64,
    /// Bytes of peer frames sent to keep leases alive.
    pub lease_bytes_sent: u64,
    /// Reads forwarded here that this replica answered at once from its lease, without a
    /// step of its core (`serve_forwards`); they are among `local` reads too.
    pub forwards_read_at_once: u64,
    /// Ticks run (faster while the shard is busy: `ticker`).
    pub ticks: u64,
    /// Times the shard's executor fell behind its tick by [`STALL_REPORTED`](super::ticker::STALL_REPORTED) or more.
    pub executor_stalls: u64,
    /// How far behind, summed (ms).
    pub executor_stall_ms: u64,
    /// Snapshots written to disk (any reason).
    pub snapshots_written: u64,
    /// Time their states took to freeze on the executor, summed (µs): the pointers copied,
    /// then the items shared a part at a time, other work running between the parts.
    pub snapshot_freeze_us: u64,
    /// The longest the executor stopped for one part of a freeze (µs).
    pub snapshot_pause_max_us: u64,
    /// Time their encoding, writing and fsync took on the blocking pool, summed (ms).
    pub snapshot_write_ms: u64,
}

/// A snapshot of one shard's state, for INFO and DBSIZE.
#[derive(Clone, Debug)]
pub struct ShardInfo {
    /// Shard index.
    pub index: usize,
    /// Whether this replica leads the shard's group.
    pub leading: bool,
    /// What orders leaderships: `promised=<ballot>` (Multi-Paxos) or `term=<n>` (Raft).
    pub epoch: String,
    /// Whether it is a learner recovering WAL records storage lost (it does not vote).
    pub recovering: bool,
    /// Who leads, if known.
    pub leader: Option<u8>,
    /// Chosen and known here.
    pub commit_index: u64,
    /// Applied to the state machine.
    pub applied_index: u64,
    /// Keys stored.
    pub keys: usize,
    /// Keys a growth of the map still has to move to its new table (0: none runs).
    pub growth_keys_left: usize,
    /// Root of the shard's Merkle tree over its applied state.
    pub merkle_root: u64,
    /// Memory the shard's Merkle tree holds (fixed by its shape).
    pub merkle_bytes: usize,
    /// Log entries held in memory.
    pub log_entries: usize,
    /// Memory of the applied ones among them, estimated (`message::batch_memory_bytes`).
    pub log_applied_bytes: u64,
    /// Protocol counters.
    pub stats: crate::protocol::Stats,
    /// Runtime counters.
    pub counters: ShardCounters,
    /// Peers with an outgoing link up.
    pub peers_connected: usize,
    /// Why storage failed, if it did, or why it waits for disk space.
    pub storage_error: Option<String>,
    /// The WAL waits for disk space (writes resume by themselves once there is).
    pub disk_full: bool,
    /// The cores its executor may run on now, as the kernel has them, `;` between
    /// ranges (`0-1;4`: INFO's fields are comma-separated).
    pub cores: String,
    /// Its executor runs at `SCHED_BATCH` (a follower with `follower_sched_batch`).
    pub sched_batch: bool,
    /// How long WAL syncs took.
    pub sync_times: crate::runtime::wal::SyncTimes,
    /// How long answered commands took, submission to answer.
    pub client_times: crate::protocol::client::PathTimes,
    /// What the clock-rate check measured (lease modes).
    pub clocks: crate::protocol::paxos::ClockReport,
    /// Subscriptions, key watches and the change history of this node's shard.
    pub pubsub: super::pubsub::PubsubInfo,
}

impl Shard {
    /// What INFO reports about this shard.
    pub fn info(&self) -> ShardInfo {
        let merkle_root = self.replica.borrow_mut().merkle_root();
        let r = self.replica.borrow();
        let transport = self.transport.borrow();
        ShardInfo {
            index: self.index,
            leading: r.is_leading(),
            epoch: r.epoch(),
            recovering: r.recovering(),
            leader: r.leader_hint().map(|l| l.0),
            commit_index: r.commit_index(),
            applied_index: r.applied_index(),
            keys: r.kv().len(),
            growth_keys_left: r.kv().growth_keys_left(),
            merkle_root,
            merkle_bytes: r.kv().merkle().memory_bytes(),
            log_entries: r.log_len(),
            log_applied_bytes: r.applied_log_bytes(),
            stats: r.stats().clone(),
            counters: self.counters.borrow().clone(),
            peers_connected: transport.as_ref().map_or(0, |t| {
                t.stats().peers.iter().filter(|p| p.connected).count()
            }),
            storage_error: self.storage_error.borrow().clone().or_else(|| {
                self.wal
                    .disk_full()
                    .map(|why| format!("disk full, writes wait for space: {why}"))
            }),
            disk_full: self.wal.is_disk_full(),
            // `info` runs on the shard's own executor thread: it reads this shard's.
            sched_batch: crate::runtime::affinity::thread_is_batch(),
            cores: crate::runtime::affinity::allowed_cores(0).map_or_else(
                |_| "unknown".into(),
                |c| crate::runtime::affinity::cores_text(&c).replace(',', ";"),
            ),
            sync_times: self.wal.sync_times(),
            client_times: self.client.borrow().times(),
            clocks: r.clock_report(),
            pubsub: self.pubsub.borrow().info(),
        }
    }

    /// Logs when the clock-rate check stops or resumes lease reads.
    pub(super) fn log_clock_change(&self, r: &crate::protocol::Consensus) {
        // Checked after every step: only the flag there, the report when it changed.
        if r.clocks_ok() == self.clocks_trusted_logged.get() {
            return;
        }
        let report = r.clock_report();
        self.clocks_trusted_logged.set(report.trusted);
        if report.trusted {
            eprintln!(
                "shard {}: every peer's clock rate is back within the bound: lease reads resume",
                self.index
            );
        } else {
            eprintln!(
                "shard {}: clock rate beyond the bound (2 x max_clock_drift_ppm) against peers {:#b} (measured {} ppm): lease reads stop, reads go through the log",
                self.index,
                report.beyond_mask,
                report.drift_ppm_max.unwrap_or(0)
            );
        }
    }
}
