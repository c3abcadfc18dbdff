//! The built-in load generator: workloads, drivers, reports.
