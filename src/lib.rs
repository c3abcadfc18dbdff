//! corepax: a replicated key-value node (Multi-Paxos, thread-per-core, io_uring)
//! that benchmarks itself.
//!
//! Layers, and the only direction imports may point (each module imports only modules to
//! its right, never one beside it in the same braces):
//!
//! ```text
//! main → cli → {frontend, loadgen, sim} → net → runtime → transport → wire → protocol → config → limits
//! ```
//!
//! - [`protocol`] is the sans-IO core: Multi-Paxos, the KV state machine. No clock, no
//!   sockets, no files, no threads, no unseeded randomness; inputs carry `now`.
//! - [`sim`] drives the same core with a seeded network, disk and clocks, and checks it.
//! - [`runtime`] drives it with glommio executors, one per core, and an io_uring WAL. It
//!   knows nothing of clients: [`runtime::node::run`] is handed the front end to run.
//! - [`frontend`] serves RESP clients on each shard's executor, through the runtime.
//! - [`loadgen`] is the built-in load generator; it only speaks RESP over TCP.
//! - [`net`] emulates networks: each node in a network namespace of its own, links
//!   shaped by a profile (delay, jitter, loss, rate), cut and healed on command.
//! - [`limits`] is at the bottom: the command, batch, WAL record and peer frame sizes
//!   every layer checks against, related at compile time.
//!
//! `tests/tidy.rs` holds the code to this order (and keeps IO and clocks out of `protocol`
//! and `sim`).
#![deny(clippy::all)]

pub mod cli;
pub mod config;
pub mod frontend;
pub mod limits;
pub mod loadgen;
pub mod net;
pub mod protocol;
pub mod runtime;
pub mod sim;
pub mod transport;
pub mod wire;
