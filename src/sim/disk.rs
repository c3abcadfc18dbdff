//! Simulated storage: writes, syncs with latency and stalls, snapshots.

use super::*;

impl Sim {
    /// What is pending should be synced: now, or after the sync in flight (which may not
    /// cover it), as the runtime's group commit does.
    pub(super) fn want_sync(&mut self, node: ReplicaId) {
        let n = &mut self.nodes[node.index()];
        n.sync_wanted = true;
        if n.syncing_upto.is_none() {
            self.start_sync(node);
        }
    }

    /// Syncs every pending record, lazy ones too.
    fn start_sync(&mut self, node: ReplicaId) {
        let n = &mut self.nodes[node.index()];
        let Some(&(upto, _)) = n.pending.last() else {
            return;
        };
        n.sync_wanted = false;
        n.syncing_upto = Some(upto);
        let incarnation = n.incarnation;
        // Usually fast; sometimes the disk stalls (this machine's disk does).
        let latency = if self.rng.random_bool(0.05) {
            self.rng.random_range(5 * MS..40 * MS)
        } else {
            self.rng.random_range(50 * US..2 * MS)
        } * self.cfg.sync_latency_factor;
        self.schedule(
            latency,
            Event::SyncDone {
                node,
                incarnation,
                upto,
            },
        );
    }

    pub(super) fn sync_done(&mut self, node: ReplicaId, incarnation: u32, upto: PersistId) {
        let now = self.clock(node);
        let n = &mut self.nodes[node.index()];
        if n.incarnation != incarnation || n.replica.is_none() {
            return;
        }
        let split = n.pending.partition_point(|(id, _)| *id <= upto);
        let synced: Vec<_> = n.pending.drain(..split).collect();
        let covers = n.snapshot_covers;
        n.durable.extend(
            synced
                .into_iter()
                .filter(|(id, _)| *id > covers)
                .map(|(_, r)| r),
        );
        n.syncing_upto = None;
        let r = n.replica.as_mut().expect("checked");
        r.on_persisted(now, upto);
        self.after_step(node);
        if self.nodes[node.index()].sync_wanted {
            self.start_sync(node);
        }
    }

    /// Like the runtime: snapshot the replica, drop the records it covers, compact the log.
    pub(super) fn take_snapshot(&mut self, node: ReplicaId) {
        let n = &mut self.nodes[node.index()];
        let r = n.replica.as_mut().expect("live");
        // The node's way (`Core::snapshot_begin`, parts, `snapshot_end`), without other
        // steps between the parts: `kv/tests_freeze.rs` covers writes between them.
        let mut snap = n.outbox.snapshots.take_begin(r);
        while !r.snapshot_step(64) {}
        assert!(r.snapshot_end(&mut snap), "the freeze ran");
        let at = Consensus::snapshot_slot(&snap);
        n.outbox.snapshots.compact(r, at);
        n.snapshot = Some(snap);
        n.durable.clear();
        n.lost_records = false;
        n.snapshot_saved = Some(at);
        n.snapshot_covers = n.pending.last().map_or(n.snapshot_covers, |(id, _)| *id);
        self.log(|| format!("{node} snapshot at slot {at}"));
    }
}
