//! The shard's write-ahead log: appending the core's records in order (waiting for room
//! when the WAL's buffer is full), durability reports, spare segments, storage failure.

use super::*;

impl Shard {
    /// Prepares a pre-written WAL segment, beside the committer, once the current one is
    /// half full and no free one is ready: without it, the sync that fills a segment writes
    /// a whole new one (64 MiB of zeros and an fsync) before it completes, and every write
    /// waiting on it stalls. A failure only means the next roll creates its segment inline;
    /// it is retried later.
    pub(super) async fn keep_spare_segments(self: Rc<Self>) {
        const CHECK_INTERVAL: Duration = Duration::from_millis(100);
        const RETRY_INTERVAL: Duration = Duration::from_secs(5);
        loop {
            if self.wal.is_poisoned() {
                return;
            }
            if !self.wal.wants_spare() {
                glommio::timer::sleep(CHECK_INTERVAL).await;
                continue;
            }
            match self.wal.preallocate(1).await {
                Ok(()) => {}
                Err(e) => {
                    eprintln!(
                        "shard {}: preparing a spare WAL segment failed (retrying): {e}",
                        self.index
                    );
                    glommio::timer::sleep(RETRY_INTERVAL).await;
                }
            }
        }
    }

    /// Appends one encoded record. Without room in the WAL's buffer it is handed back, to
    /// wait in `overflow`: memory for unsynced records is bounded, and a record of the
    /// largest size always fits an empty buffer (`limits`), so it gets in once the sync in
    /// flight ends. Other errors stop the shard acknowledging.
    /// Appends one record; a `lazy` one waits for the next sync another record, a lazy-sync
    /// check or the ticker starts (`outbox::Action::Persist`).
    /// The record is the bytes `parts` make one after the other; handed back, they are
    /// joined.
    pub(super) fn append_record(
        &self,
        parts: &[&[u8]],
        id: PersistId,
        lazy: bool,
    ) -> Result<(), (Vec<u8>, PersistId)> {
        use crate::runtime::wal::WalError;
        match self.wal.append_parts(parts, lazy) {
            Ok(lsn) => {
                self.last_lsn.set(lsn);
                self.persisting.borrow_mut().push_back((lsn, id));
                self.counters.borrow_mut().records_persisted += 1;
            }
            Err(WalError::PendingFull { .. }) => {
                // Lazy records alone may have filled it: a sync makes room.
                self.wal.flush();
                return Err((parts.concat(), id));
            }
            // The core drops every batch whose encoding bound exceeds the record limit,
            // and leaders never build one, so this means the bound is wrong. The WAL took
            // nothing and still works, but the core already counts this record as its
            // vote: skipping it would let the next durable record announce it. So the
            // shard stops acknowledging, as on an I/O error, naming the limit crossed.
            Err(e @ WalError::RecordTooLarge { .. }) => {
                self.counters.borrow_mut().records_too_large += 1;
                self.fail_storage(format!(
                    "{e} although the protocol's size bound admitted it (a bug)"
                ));
            }
            Err(e) => self.fail_storage(e.to_string()),
        }
        Ok(())
    }

    /// Appends the records that waited for room, in order, while there is room.
    pub(super) fn drain_overflow(&self) {
        loop {
            let Some((bytes, id)) = self.overflow.borrow_mut().pop_front() else {
                return;
            };
            if self.storage_error.borrow().is_some() {
                // Nothing more is acknowledged: nothing more needs logging.
                self.overflow.borrow_mut().clear();
                return;
            }
            if let Err(back) = self.append_record(&[&bytes], id, false) {
                self.overflow.borrow_mut().push_front(back);
                return;
            }
        }
    }

    /// Tells the core when the WAL starts or stops waiting for disk space: a replica that
    /// cannot write steps down and stops campaigning (`Replica::set_storage_full`), so the
    /// others elect a leader that can; it resumes by itself once the WAL's retried sync
    /// succeeds.
    pub(super) fn follow_disk_full(&self, now: Nanos) {
        let full = self.wal.is_disk_full();
        if full == self.replica.borrow().storage_full() {
            return;
        }
        if full {
            eprintln!(
                "shard {}: disk full: stepping down and refusing writes that no other leader \
                 can take, until space is available",
                self.index
            );
        } else {
            eprintln!(
                "shard {}: disk space is back, storage works again",
                self.index
            );
        }
        self.step(|r| r.set_storage_full(now, full));
    }

    /// A write to refuse at once because this node's disk is full and no other replica is
    /// known to lead (otherwise the client path forwards it there).
    pub(super) fn refused_for_disk_full(&self, cmd: &Command) -> Option<SubmitError> {
        let why = self.wal.disk_full()?;
        let r = self.replica.borrow();
        let other_leader = r.leader_hint().is_some_and(|l| l != r.id());
        (!other_leader && !cmd.is_read_only()).then_some(SubmitError::DiskFull(why))
    }

    pub(super) fn fail_storage(&self, why: String) {
        eprintln!(
            "shard {}: storage failure, no more writes are acknowledged: {why}",
            self.index
        );
        self.client.borrow_mut().fail_storage(why.clone());
        *self.storage_error.borrow_mut() = Some(why);
    }

    pub(super) fn on_durable(&self, lsn: Lsn) {
        self.drain_overflow();
        let mut last = None;
        {
            let mut p = self.persisting.borrow_mut();
            while p.front().is_some_and(|(l, _)| *l <= lsn) {
                last = p.pop_front().map(|(_, id)| id);
            }
        }
        self.counters.borrow_mut().syncs += 1;
        if let Some(id) = last {
            let now = self.now();
            self.step(|r| r.on_persisted(now, id));
        }
    }
}
