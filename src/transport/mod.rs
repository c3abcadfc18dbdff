//! Peer TCP links between shard i of every replica.
