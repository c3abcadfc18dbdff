//! Command-line entry points.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// corepax: a replicated key-value node that benchmarks itself.
#[derive(Debug, Parser)]
#[command(name = "corepax", version, about)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// corepax's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark a RESP server, or an embedded local 3-replica cluster.
    Bench(crate::loadgen::cli::BenchArgs),
    /// Run a matrix of settings, each on a fresh cluster; write a table and plots.
    Sweep(crate::loadgen::cli::SweepArgs),
}

/// Parses the command line and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(a) => crate::loadgen::cli::run_bench(a).map(|_| ()),
        Command::Sweep(a) => crate::loadgen::cli::run_sweep(a).map(|_| ()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
