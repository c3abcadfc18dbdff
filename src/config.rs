//! Configuration: cluster-wide protocol settings and per-node settings.
