//! glommio runtime: executors pinned per core, shard loop, WAL, snapshots.
pub mod disk;
pub mod mailbox;
pub mod node;
pub mod shard;
pub mod sharding;
pub mod snapshot;
pub mod wal;
