//! Snapshots of the state machine, written atomically and loaded with memmap2.
