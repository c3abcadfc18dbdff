//! The fault "a replica's data directory is replaced by an older copy of itself" (a
//! restored backup), and what it needs from the rest of the simulated world.
//!
//! In the seeds that have it (`SimConfig::restore_seeds_percent`; its own random stream,
//! so the other seeds run as before), a fault event now and then copies a replica's
//! durable storage (its snapshot and synced records), and a later restart of that replica
//! sometimes starts from the copy instead. The replica is not told: it must learn it
//! from its peers (`protocol/stale.rs`). The fault is the one the design claims to
//! detect, no more: it is restored only if every replica was up when the copy was taken,
//! the replica did not lead since (what a leader counts of its own log, no peer sees),
//! and every other replica is up, has not restarted since the copy was taken (so it
//! remembers what the replica acknowledged since), is not paused and recovers nothing
//! itself; the check's messages to and from it are neither cut nor lost, and no replica
//! crashes or pauses, while it checks; and it crashes again before it caught up only once
//! its finding is durable (the `StaleData` mark is synced: it then restarts a learner,
//! whatever its peers remember; before that, a crash loses the finding, and a peer that
//! restarted meanwhile leaves nobody to find it again, see ARCHITECTURE.md, "A stale data
//! directory"). Never on more replicas at once than a quorum can spare, like lost records.

use super::*;

/// A copy of one replica's storage, as `cp -a` of its data directory would hold it.
#[derive(Clone, Debug)]
pub(super) struct StorageCopy {
    snapshot: Option<ConsensusSnapshot>,
    durable: Vec<Record>,
    lost_records: bool,
    /// Every replica's incarnation when it was taken.
    incarnations: Vec<u32>,
    /// Every replica was up when it was taken (a replica down then remembers nothing of
    /// what it missed).
    all_up: bool,
    /// The replica led since: what it counted of its own log no peer saw (see
    /// ARCHITECTURE.md, "A stale data directory": not detected).
    led_since: bool,
}

/// Whether `durable` records hold a stale-data mark (the restart check's finding).
pub(super) fn stale_mark_synced(durable: &[Record]) -> bool {
    use crate::protocol::raft::RaftRecord;
    durable.iter().any(|r| {
        matches!(
            r,
            Record::StaleData { .. } | Record::Raft(RaftRecord::StaleData)
        )
    })
}

impl Sim {
    /// At a fault event, in the seeds that have the fault: sometimes copies a replica's
    /// durable storage (whether it runs or not).
    pub(super) fn maybe_copy_storage(&mut self) {
        let Some(rng) = self.restore_rng.as_mut() else {
            return;
        };
        if !rng.random_bool(0.5) {
            return;
        }
        // A copy stays until a peer's restart makes it useless (the peer no longer
        // remembers what the replica acknowledged since), or now and then a newer one.
        let i = rng.random_range(0..self.nodes.len());
        let renew = rng.random_bool(0.1);
        let incarnations: Vec<u32> = self.nodes.iter().map(|n| n.incarnation).collect();
        let n = &mut self.nodes[i];
        let useless = n.copy.as_ref().is_some_and(|c| {
            (0..incarnations.len()).any(|j| j != i && c.incarnations[j] != incarnations[j])
        });
        if n.lost_records || n.restored || (n.copy.is_some() && !useless && !renew) {
            return;
        }
        self.copy_storage_now(ReplicaId(i as u8));
    }

    /// Copies `node`'s durable storage now.
    pub(super) fn copy_storage_now(&mut self, node: ReplicaId) {
        let incarnations: Vec<u32> = self.nodes.iter().map(|n| n.incarnation).collect();
        let all_up = self.nodes.iter().all(|n| n.replica.is_some());
        let n = &mut self.nodes[node.index()];
        let leading = n.replica.as_ref().is_some_and(Consensus::is_leading);
        n.copy = Some(StorageCopy {
            snapshot: n.snapshot.clone(),
            durable: n.durable.clone(),
            lost_records: n.lost_records,
            incarnations,
            all_up,
            led_since: leading,
        });
        let records = n.durable.len();
        self.log(|| format!("{node}: storage copied ({records} records after its snapshot)"));
    }

    /// At a restart of `node`: sometimes its storage is replaced by its older copy first.
    pub(super) fn maybe_restore_copy(&mut self, node: ReplicaId) {
        let i = node.index();
        let Some(copy) = self.nodes[i].copy.as_ref() else {
            return;
        };
        let detectable = copy.all_up && !copy.led_since;
        let others_remember = detectable
            && (0..self.nodes.len()).filter(|j| *j != i).all(|j| {
                let n = &self.nodes[j];
                n.incarnation == copy.incarnations[j]
                    && !n.lost_records
                    && !n.restored
                    // A paused peer loses the check's queries (`pause.rs`).
                    && self.paused(ReplicaId(j as u8)).is_none()
                    && n.replica
                        .as_ref()
                        .is_some_and(|r| !r.recovering() && !r.restart_checking())
            });
        let Some(rng) = self.restore_rng.as_mut() else {
            return;
        };
        if !others_remember || !rng.random_bool(0.7) {
            return;
        }
        self.restore_copy_now(node);
    }

    /// Replaces `node`'s storage by its copy now, if it has one.
    pub(super) fn restore_copy_now(&mut self, node: ReplicaId) {
        let n = &mut self.nodes[node.index()];
        let Some(copy) = n.copy.take() else {
            return;
        };
        // A copy with the records the storage holds now is no older than it: nothing to
        // detect (in a staged run, when the victim wrote nothing between copy and crash).
        let older = n.durable != copy.durable;
        n.snapshot = copy.snapshot;
        n.durable = copy.durable;
        n.lost_records = copy.lost_records;
        n.restored = true;
        self.copies_restored += 1;
        self.copies_restored_older += u64::from(older);
        self.log(|| format!("{node}: storage replaced by its older copy"));
    }

    /// After a step of `node`: notes that it leads, for its copy.
    pub(super) fn note_led(&mut self, node: ReplicaId) {
        let n = &mut self.nodes[node.index()];
        if let Some(c) = n.copy.as_mut()
            && n.replica.as_ref().is_some_and(Consensus::is_leading)
        {
            c.led_since = true;
        }
    }

    /// Whether a replica restored from an older copy still checks its storage with its
    /// peers (no crash then: a peer that restarts forgets what it saw).
    pub(super) fn restored_checking(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| n.restored && n.replica.as_ref().is_some_and(Consensus::restart_checking))
    }

    /// After a step of `node`: a restored replica that finished its check and any
    /// recovery it started counts as whole again.
    pub(super) fn note_restored_done(&mut self, node: ReplicaId) {
        let n = &mut self.nodes[node.index()];
        if n.restored
            && n.replica
                .as_ref()
                .is_some_and(|r| !r.restart_checking() && !r.recovering())
        {
            n.restored = false;
        }
    }

    /// Whether `msg` between `from` and `to` belongs to a restored replica's check: the
    /// fault assumes its peers answer it (see the module doc).
    pub(super) fn restore_check_msg(&self, from: ReplicaId, to: ReplicaId, msg: &Wire) -> bool {
        use crate::protocol::raft::Msg;
        let check = matches!(
            msg,
            Wire::Core(
                Message::RestartQuery
                    | Message::RestartReport { .. }
                    | Message::Raft(Msg::RestartQuery | Msg::RestartReport { .. })
            )
        );
        check && (self.nodes[from.index()].restored || self.nodes[to.index()].restored)
    }
}
