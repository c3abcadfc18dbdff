//! Work of a replica's step that takes a cache miss per key of the state machine, done
//! on glommio's blocking pool so that requests do not wait behind it: building a state
//! transfer for a lagging peer, building a received one before it is installed, and
//! freeing the map an install replaced. The replica hands each out after a step and
//! takes the built result back in a later one.

use super::*;

impl Shard {
    /// The map an installed state replaced is freed on the blocking pool: a cache miss
    /// per item, 20-120 ms at 1M keys that every request would wait behind
    /// (results/install-drop-20261206/).
    pub(super) fn drop_replaced_offloaded(&self) {
        let replaced = self.replica.borrow_mut().kv_mut().take_replaced();
        if replaced.is_empty() {
            return;
        }
        glommio::spawn_local(async move {
            glommio::executor()
                .spawn_blocking(move || drop(replaced))
                .await;
        })
        .detach();
    }

    /// A state transfer a lagging peer needs is sorted and hashed on the blocking pool,
    /// not on the executor: ~0.15 s at 1M keys that every request would wait behind
    /// (results/transfer-offload-20261206/). The replica serves it once it is back.
    /// Its entries, frozen in the map, are shared first a part at a time as a snapshot's
    /// are (results/install-offload-20261206/: 43-59 ms at 2M keys in one step).
    pub(super) fn build_transfer_offloaded(&self) {
        let Some(mut build) = self.replica.borrow_mut().take_transfer_build() else {
            return;
        };
        let Some(shard) = self.me.upgrade() else {
            return;
        };
        glommio::spawn_local(async move {
            while !shard
                .replica
                .borrow_mut()
                .kv_mut()
                .export_step(snapshot::SNAPSHOT_PART_ITEMS)
            {
                glommio::timer::sleep(snapshot::SNAPSHOT_PART_GAP).await;
            }
            if !shard.replica.borrow_mut().transfer_export_end(&mut build) {
                return;
            }
            let now = shard.now();
            shard.off_executor(
                move || build.build(now),
                |r, now, out| r.on_transfer_built(now, out),
            );
        })
        .detach();
    }

    /// A state transfer received whole is built into a map and Merkle tree on the
    /// blocking pool: ~75 ms per million keys that every request would wait behind
    /// (results/install-offload-20261206/). The replica installs it once it is back; it
    /// ignores transfer chunks meanwhile.
    pub(super) fn build_install_offloaded(&self) {
        let Some(build) = self.replica.borrow_mut().take_install_build() else {
            return;
        };
        self.off_executor(
            move || build.build(),
            |r, now, built| r.on_install_built(now, built),
        );
    }

    /// Runs `work` on the blocking pool, then hands what it made to the replica in a
    /// step of its own (`back`, with the time it came back).
    fn off_executor<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
        back: impl FnOnce(&mut Consensus, Nanos, T) + 'static,
    ) {
        let Some(shard) = self.me.upgrade() else {
            return;
        };
        glommio::spawn_local(async move {
            let made = glommio::executor().spawn_blocking(work).await;
            let now = shard.now();
            shard.step(|r| back(r, now, made));
        })
        .detach();
    }
}
