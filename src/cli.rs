//! Command-line entry points.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::protocol::Bugs;

/// corepax: a replicated key-value node that benchmarks itself.
#[derive(Parser, Debug)]
#[command(name = "corepax", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmark a RESP server, or an embedded local 3-replica cluster.
    Bench(crate::loadgen::cli::BenchArgs),
    /// Run a matrix of settings, each on a fresh cluster; write a table and plots.
    Sweep(crate::loadgen::cli::SweepArgs),
    /// Run the deterministic simulator over many seeds and check every history.
    Sim(SimArgs),
}

/// Arguments of `corepax sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replicas in the group.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=7))]
    replicas: u8,
    /// Print every event of each failing seed.
    #[arg(long)]
    trace: bool,
    /// Deliberate protocol bug, to see the checkers catch it:
    /// reply-before-persist | skip-phase1-recovery.
    #[arg(long, hide = true)]
    bug: Vec<String>,
}

/// Parses the command line and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(a) => crate::loadgen::cli::run_bench(a).map(|_| ExitCode::SUCCESS),
        Command::Sweep(a) => crate::loadgen::cli::run_sweep(a).map(|_| ExitCode::SUCCESS),
        Command::Sim(args) => run_sim(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    let mut bugs = Bugs::default();
    for b in &args.bug {
        match b.as_str() {
            "reply-before-persist" => bugs.reply_before_persist = true,
            "skip-phase1-recovery" => bugs.skip_phase1_recovery = true,
            other => anyhow::bail!(
                "unknown --bug {other}: allowed reply-before-persist, skip-phase1-recovery"
            ),
        }
    }
    let replicas = usize::from(args.replicas);
    let bug_flags: String = args.bug.iter().map(|b| format!(" --bug {b}")).collect();
    let summary = crate::sim::run_many(args.seed, args.seeds, replicas, bugs, |seed, outcome| {
        println!("seed {seed}: {} violation(s)", outcome.violations.len());
        for v in &outcome.violations {
            println!("  {v}");
        }
        println!(
            "  replay: corepax sim --seeds 1 --seed {seed} --replicas {replicas}{bug_flags} --trace"
        );
        if args.trace {
            let mut cfg = crate::sim::SimConfig::new(seed, replicas);
            cfg.bugs = bugs;
            cfg.trace = true;
            print!("{}", crate::sim::run(cfg).trace);
        }
    });
    if summary.undecided > 0 {
        println!(
            "note: {} key histories too large to decide",
            summary.undecided
        );
    }
    println!(
        "seeds: {} ops: {} violations: {}",
        summary.seeds, summary.ops, summary.violations
    );
    Ok(if summary.violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
