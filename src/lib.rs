//! corepax: a replicated key-value node (Multi-Paxos, thread-per-core, io_uring)
//! that benchmarks itself.
//!
//! Layers, and the only direction imports may point:
//!
//! ```text
//! main → cli → {runtime, loadgen, sim} → {transport, frontend} → wire → protocol → config
//! ```
//!
//! - [`protocol`] is the sans-IO core: Multi-Paxos, the KV state machine. No clock, no
//!   sockets, no files, no threads, no unseeded randomness; inputs carry `now`.
//! - [`sim`] drives the same core with a seeded network, disk and clocks, and checks it.
//! - [`runtime`] drives it with glommio executors, one per core, and an io_uring WAL.
//! - [`loadgen`] is the built-in load generator; it only speaks RESP over TCP.
//! - [`limits`] sits beside `config`: the command, batch, WAL record and peer frame sizes
//!   every layer checks against, related at compile time.
#![deny(clippy::all)]

pub mod cli;
pub mod config;
pub mod frontend;
pub mod limits;
pub mod loadgen;
pub mod protocol;
pub mod runtime;
pub mod sim;
pub mod transport;
pub mod wire;
