//! The built-in load generator: workloads, drivers, reports.
//!
//! - [`workload`]: TOML workloads, key/value/op generators (zipfian à la YCSB).
//! - [`client`]: request generation and reply reading over RESP.
//! - [`driver`]: glommio executors per core, closed and open loops, preload, warm-up.
//! - [`stats`]: HdrHistograms per op, merged across cores.
//! - [`report`]: printed table, JSON result, HdrHistogram interval log.
//! - [`run`]: one measured run (server counters around a driver run).
//! - [`launch`]: start a corepax cluster or redis-server to measure.
//! - [`sweep`], [`plot`]: settings matrices, comparison table, SVG plots.
//! - [`cli`]: the `bench` and `sweep` commands.
//!
//! Imports point down this order: `cli` → `sweep` → `launch`, `run`, `plot` → `driver`,
//! `info`, `report` → `client`, `stats`, `workload`.
pub mod cli;
pub mod client;
pub mod driver;
pub mod info;
pub mod launch;
pub mod plot;
pub mod report;
pub mod run;
pub mod stats;
pub mod sweep;
pub mod workload;
