//! glommio runtime: executors pinned per core, shard loop, WAL, snapshots.
pub mod snapshot;
pub mod wal;
