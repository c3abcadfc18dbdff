//! The built-in load generator: workloads, drivers, reports.
//!
//! - [`workload`]: TOML workloads, key/value/op generators (zipfian à la YCSB).
//! - [`client`]: request generation and reply reading over RESP.
//! - [`driver`]: glommio executors per core, closed and open loops, preload, warm-up.
//! - [`stats`]: HdrHistograms per op, merged across cores.
//! - [`report`]: printed table, JSON result, HdrHistogram interval log.
//! - [`run`]: one measured run (server counters around a driver run).
//! - [`launch`]: start a corepax cluster or redis-server to measure, on free ports
//!   ([`ports`]).
//! - [`sweep`], [`plot`]: settings matrices, comparison table, SVG plots.
//! - [`results`]: results read back (files, folders, patterns; interval logs).
//! - [`compare`]: `corepax compare`, ratios of two sets of results with their noise.
//! - [`page`]: the HTML report page beside results.
//! - [`scenario`]: coordination scenarios (a work queue, a lock service) that a
//!   workload file with a `[scenario]` table runs instead of an operation mix.
//! - [`cli`]: the `bench`, `sweep`, `compare` and `report` commands.
//!
//! Imports point down this order: `cli` → `sweep` → `launch`, `run`, `page`, `compare` →
//! `results`, `plot` → `driver`, `info`, `report` → `client`, `stats`, `workload`;
//! `ports` is a leaf.
pub mod cli;
pub mod client;
pub mod compare;
pub mod driver;
pub mod info;
pub mod launch;
pub mod page;
pub mod plot;
pub mod ports;
pub mod report;
pub mod results;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod sweep;
#[cfg(test)]
mod testdata;
pub mod wake;
pub mod workload;
