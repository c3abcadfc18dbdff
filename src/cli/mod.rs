//! Command-line entry points.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod cluster;
pub mod node_flags;

pub use node_flags::NodeFlags;

use crate::config::{ConfigError, ProtocolConfig, SETTINGS, Setting};
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
    /// Compare two sets of results (before/after): ratios B/A, noise marked.
    Compare(crate::loadgen::cli::CompareArgs),
    /// Write the HTML report page of a folder of results (plots drawn again).
    Report(crate::loadgen::cli::ReportArgs),
    /// Run one replica: a node process with one shard per core.
    Node(Box<NodeArgs>),
    /// Start a local cluster of node processes on 127.0.0.1 and wait; Ctrl-C stops it.
    Cluster(cluster::ClusterArgs),
    /// Run the deterministic simulator over many seeds and check every history.
    Sim(SimArgs),
    /// Faults on the emulated network of a running `cluster --net`: cut, isolate, loss,
    /// heal, stats.
    Net(NetArgs),
}

/// Arguments of `corepax net`.
#[derive(clap::Args, Debug)]
pub struct NetArgs {
    /// The cluster's data directory (it holds net.sock and net.json).
    #[arg(long, default_value = "data")]
    data: std::path::PathBuf,
    /// `cut A B` (drop A -> B), `isolate A` (both ways, every peer), `loss A B PERCENT`,
    /// `heal` (back to the profile), `stats` (the router's counters).
    #[arg(required = true, num_args = 1..)]
    command: Vec<String>,
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
    /// reply-before-persist | skip-phase1-recovery | truncate-at-corruption |
    /// commit-older-term | vote-without-log-check | trust-clocks | expire-local-clock |
    /// vote-inside-lease | ignore-stale-data | early-lease-unguarded | early-own-vote |
    /// pop-without-log, insert-after,
    /// lmove-wrong-end, blocking-timeout-local (with --lists) |
    /// deliver-on-receipt (with --pubsub).
    #[arg(long, hide = true)]
    bug: Vec<String>,
    /// Clients also compare-and-set (`SET … IFEQ`) and increment (`INCRBY`).
    #[arg(long)]
    primitives: bool,
    /// Clients also write keys that expire (`SET … PX`, `PEXPIRE`, `PERSIST`, `PTTL`),
    /// checked against expiry by the log's time.
    #[arg(long)]
    expiry: bool,
    /// Every key is a list: clients push, pop, read lengths, insert next to an element
    /// (`LINSERT`), rotate (`LMOVE` to the same key), move elements between keys paired
    /// up (`LMOVE k0 k1`) and wait to pop or move (`BLPOP`, `BLMOVE`), checked as
    /// sequences (paired keys together).
    #[arg(long)]
    lists: bool,
    /// Every write also publishes its value (`PUBLISH`, in one transaction): every
    /// replica's deliveries are checked to be gap-free runs of one sequence.
    #[arg(long)]
    pubsub: bool,
    /// Let clocks drift far beyond the configured bound, to see the checker catch the
    /// stale lease reads that follows.
    #[arg(long, hide = true)]
    drift_beyond_bound: bool,
    /// One replica's clock runs this much faster than real time (ppm; negative: slower),
    /// whatever the bound: the clock-rate check must stop lease reads.
    #[arg(long, hide = true, allow_negative_numbers = true)]
    slow_clock_ppm: Option<i64>,
    /// Share of seeds (percent) whose crashes may corrupt synced records mid-log.
    #[arg(long, hide = true, default_value_t = SEEDS_PERCENT_DEFAULT, value_parser = clap::value_parser!(u64).range(0..=100))]
    corrupt_seeds_percent: u64,
    /// Share of seeds (percent) where a restart may start from an older copy of the
    /// replica's storage.
    #[arg(long, hide = true, default_value_t = SEEDS_PERCENT_DEFAULT, value_parser = clap::value_parser!(u64).range(0..=100))]
    restore_seeds_percent: u64,
    /// Share of seeds (percent) where a replica is paused now and then (SIGSTOP, a GC
    /// pause).
    #[arg(long, hide = true, default_value_t = SEEDS_PERCENT_DEFAULT, value_parser = clap::value_parser!(u64).range(0..=100))]
    pause_seeds_percent: u64,
    /// Pauses take the leader, and clients send new reads to it while it is paused (they
    /// cached its address).
    #[arg(long, hide = true)]
    pause_leader_reads_wait: bool,
    /// Instead of random faults, a staged restore of an older copy (3 replicas): the
    /// copy lacks writes only the leader also holds, which is cut off after the check.
    #[arg(long, hide = true)]
    restore_staged: bool,
    /// Protocol settings, the flags of `node` and `cluster`: `--protocol` and
    /// `--read-mode` choose the run's; any other replaces what each seed picks.
    #[command(flatten)]
    protocol: ProtocolArgs,
}

/// Protocol settings shared by `node` and `cluster`, one flag per [`Setting`] (its TOML key
/// with `-` for `_`); unset flags keep the config file's value or the default.
#[derive(Debug, Clone, Default)]
pub struct ProtocolArgs {
    /// The flags given: setting and value, as typed (each parsed once already).
    pub given: Vec<(&'static Setting, String)>,
}

impl ProtocolArgs {
    /// Overrides the config's fields with the flags given.
    pub fn apply(&self, p: &mut ProtocolConfig) -> Result<(), ConfigError> {
        self.given.iter().try_for_each(|(s, v)| (s.set)(p, v))
    }
}

impl clap::FromArgMatches for ProtocolArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let given = SETTINGS
            .iter()
            .filter(|s| s.is_flag())
            .filter_map(|s| Some((s, m.get_one::<String>(s.name)?.clone())))
            .collect();
        Ok(ProtocolArgs { given })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for ProtocolArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        SETTINGS.iter().filter(|s| s.is_flag()).fold(cmd, |cmd, s| {
            // Checked as it is parsed, so a bad value is a usage error naming the flag.
            let parse = move |v: &str| {
                (s.set)(&mut ProtocolConfig::default(), v)
                    .map(|()| v.to_string())
                    .map_err(|e| e.to_string())
            };
            let default = (s.get)(&ProtocolConfig::default());
            let mut notes = match default.as_str() {
                "" => " [default: none]".to_string(),
                v => format!(" [default: {v}]"),
            };
            if let Some(range) = (s.allowed)() {
                notes.insert_str(notes.len() - 1, &format!("; allowed: {range}"));
            }
            cmd.arg(
                clap::Arg::new(s.name)
                    .long(s.flag())
                    .value_name("VALUE")
                    .help(s.summary() + &notes)
                    .long_help(s.doc_line() + &notes)
                    .value_parser(parse),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Arguments of `corepax node`. Flags override the config file.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// A TOML file with the node's settings (keys as the flags' names with `_` for `-`;
    /// protocol settings under `[protocol]`).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Node settings, one flag each.
    #[command(flatten)]
    node: NodeFlags<false>,
    #[command(flatten)]
    protocol: ProtocolArgs,
}

/// The node's configuration: the file's settings, the flags over them, then the defaults;
/// checked.
fn node_config(args: &NodeArgs) -> anyhow::Result<crate::config::NodeConfig> {
    let mut file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            toml::from_str::<crate::config::NodeFile>(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => crate::config::NodeFile::default(),
    };
    file.overlay(args.node.file()?);
    if args.config.is_none() && file.shards.is_none() {
        file.shards = Some(num_cpus());
    }
    let mut cfg = file.into_config().map_err(|e| match e {
        ConfigError::Missing { field } => {
            let flag = crate::config::NodeSetting::named(field).map_or(field.into(), |s| s.flag());
            anyhow::anyhow!("{e}: give --{flag}, or set `{field}` in the --config file")
        }
        e => e.into(),
    })?;
    cfg.protocol.replicas = cfg.peers.len();
    args.protocol.apply(&mut cfg.protocol)?;
    cfg.validate()?;
    Ok(cfg)
}

fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let cfg = node_config(&args)?;
    if cfg.no_fsync {
        eprintln!(
            "WARNING: --no-fsync: writes are acknowledged before they are durable (benchmarks only)"
        );
    }
    raise_fd_limit(cfg.maxclients + FDS_BESIDE_CLIENTS);
    crate::runtime::node::run(cfg, crate::frontend::serve)
}

/// File descriptors a node needs beside its clients' (WAL segments, snapshots, peer links,
/// listeners, io_uring), with room to spare.
const FDS_BESIDE_CLIENTS: usize = 1024;

/// The share of seeds (%) that corrupt, pause or restore a replica unless told otherwise.
const SEEDS_PERCENT_DEFAULT: u64 = 50;

/// Raises the soft limit on open files to `want` if it is lower (up to the hard limit),
/// as redis-server does for `maxclients`; warns when even the hard limit is lower, since
/// accepts would then fail before `maxclients` is reached.
fn raise_fd_limit(want: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read or write the one struct passed, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let want = want as libc::rlim_t;
    if lim.rlim_cur >= want {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: want.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    let ok = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0;
    if !ok || raised.rlim_cur < want {
        eprintln!(
            "WARNING: open files limited to {} (want {want} for maxclients): connections \
             beyond it fail to be accepted; raise `ulimit -n` or lower --maxclients",
            if ok { raised.rlim_cur } else { lim.rlim_cur }
        );
    }
}

/// Cores available to this process.
pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Parses the command line and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(a) => crate::loadgen::cli::bench(a).map(|_| ExitCode::SUCCESS),
        Command::Sweep(a) => crate::loadgen::cli::run_sweep(a).map(|_| ExitCode::SUCCESS),
        Command::Compare(a) => crate::loadgen::cli::run_compare(a).map(|_| ExitCode::SUCCESS),
        Command::Report(a) => crate::loadgen::cli::run_report(a).map(|_| ExitCode::SUCCESS),
        Command::Sim(args) => run_sim(args),
        Command::Node(args) => run_node(*args).map(|_| ExitCode::SUCCESS),
        Command::Cluster(args) => cluster::run(args).map(|_| ExitCode::SUCCESS),
        Command::Net(args) => crate::net::Control::new(args.data.join(crate::net::CONTROL_FILE))
            .send(&args.command.join(" "))
            .map(|stats| {
                println!("{stats}");
                ExitCode::SUCCESS
            }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The simulator's configuration from `corepax sim`'s flags (every seed's protocol settings
/// checked), and the flags beyond seeds and replicas that replay a seed.
fn sim_config(args: &SimArgs) -> anyhow::Result<(crate::sim::SimConfig, String)> {
    let mut bugs = Bugs::default();
    let mut pop_without_log = false;
    let mut blocking_timeout_local = false;
    let mut deliver_on_receipt = false;
    for b in &args.bug {
        match b.as_str() {
            "pop-without-log" if args.lists => pop_without_log = true,
            "insert-after" if args.lists => bugs.insert_after = true,
            "lmove-wrong-end" if args.lists => bugs.lmove_wrong_end = true,
            "blocking-timeout-local" if args.lists => blocking_timeout_local = true,
            "deliver-on-receipt" if args.pubsub => deliver_on_receipt = true,
            "reply-before-persist" => bugs.reply_before_persist = true,
            "skip-phase1-recovery" => bugs.skip_phase1_recovery = true,
            "truncate-at-corruption" => bugs.truncate_at_corruption = true,
            "commit-older-term" => bugs.commit_older_term = true,
            "vote-without-log-check" => bugs.vote_without_log_check = true,
            "trust-clocks" => bugs.trust_clocks = true,
            "expire-local-clock" => bugs.expire_local_clock = true,
            "vote-inside-lease" => bugs.vote_inside_lease = true,
            "ignore-stale-data" => bugs.ignore_stale_data = true,
            "early-lease-unguarded" => bugs.early_lease_unguarded = true,
            "early-own-vote" => bugs.early_own_vote = true,
            "lazy-vote-counted" => bugs.lazy_vote_counted = true,
            other => anyhow::bail!(
                "unknown --bug {other}: allowed reply-before-persist, skip-phase1-recovery, \
                 truncate-at-corruption, commit-older-term (raft), vote-without-log-check (raft), \
                 trust-clocks, expire-local-clock, vote-inside-lease (raft), ignore-stale-data, \
                 early-lease-unguarded, early-own-vote, pop-without-log, insert-after, lmove-wrong-end and blocking-timeout-local (with --lists), \
                 deliver-on-receipt (with --pubsub)"
            ),
        }
    }
    let mut base = crate::sim::SimConfig::new(args.seed, usize::from(args.replicas));
    base.bugs = bugs;
    base.lists = args.lists;
    base.bug_pop_without_log = pop_without_log;
    base.bug_blocking_timeout_local = blocking_timeout_local;
    base.pubsub = args.pubsub;
    base.bug_deliver_on_receipt = deliver_on_receipt;
    base.set_protocol_settings(&args.protocol.given)?;
    base.check_protocol(args.seed..args.seed.saturating_add(args.seeds))
        .map_err(anyhow::Error::msg)?;
    let mut flags = format!(
        " --protocol {} --read-mode {}",
        base.protocol, base.read_mode
    );
    for (setting, value) in &base.settings {
        flags.push_str(&format!(" --{} {value}", setting.flag()));
    }
    for b in &args.bug {
        flags.push_str(&format!(" --bug {b}"));
    }
    base.drift_beyond_bound = args.drift_beyond_bound;
    base.primitives = args.primitives;
    base.expiry = args.expiry;
    base.slow_clock_ppm = args.slow_clock_ppm;
    base.corrupt_seeds_percent = args.corrupt_seeds_percent;
    base.pause_seeds_percent = args.pause_seeds_percent;
    base.pause_leader_reads_wait = args.pause_leader_reads_wait;
    base.restore_staged = args.restore_staged;
    base.restore_seeds_percent = args.restore_seeds_percent;
    // The replay line repeats every switch that is on and every value not its default.
    let switches = [
        ("lists", args.lists),
        ("pubsub", args.pubsub),
        ("drift-beyond-bound", args.drift_beyond_bound),
        ("primitives", args.primitives),
        ("expiry", args.expiry),
        ("pause-leader-reads-wait", args.pause_leader_reads_wait),
        ("restore-staged", args.restore_staged),
    ];
    for (flag, _) in switches.iter().filter(|(_, on)| *on) {
        flags.push_str(&format!(" --{flag}"));
    }
    if let Some(ppm) = args.slow_clock_ppm {
        flags.push_str(&format!(" --slow-clock-ppm {ppm}"));
    }
    let percents = [
        ("corrupt-seeds-percent", args.corrupt_seeds_percent),
        ("pause-seeds-percent", args.pause_seeds_percent),
        ("restore-seeds-percent", args.restore_seeds_percent),
    ];
    for (flag, v) in percents.iter().filter(|(_, v)| *v != SEEDS_PERCENT_DEFAULT) {
        flags.push_str(&format!(" --{flag} {v}"));
    }
    Ok((base, flags))
}

fn run_sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    let (base, flags) = sim_config(&args)?;
    let replicas = base.replicas;
    let read_mode = base.read_mode;
    let summary = crate::sim::run_many(args.seed, args.seeds, &base, |seed, outcome| {
        println!("seed {seed}: {} violation(s)", outcome.violations.len());
        for v in &outcome.violations {
            println!("  {v}");
        }
        println!(
            "  replay: corepax sim --seeds 1 --seed {seed} --replicas {replicas}{flags} --trace"
        );
        if args.trace {
            let cfg = crate::sim::SimConfig {
                seed,
                trace: true,
                ..base.clone()
            };
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
        "snapshots sent to lagging replicas: {}",
        summary.snapshots_sent
    );
    println!(
        "anti-entropy during runs: {} entries exchanged, {} installed ({} copies damaged on purpose, {} of them overwritten by a late write first)",
        summary.anti_entropy.entries_exchanged,
        summary.anti_entropy.installed,
        summary.anti_entropy.damaged,
        summary.anti_entropy.overwritten
    );
    let st = &summary.stats;
    if !read_mode.reads_through_log() {
        println!(
            "reads: local {} quorum {} log {} redirected {}; lease: read waits {} write waits {} \
             revocations {} promises deferred {}; digest mismatches {} fetches {} repairs {}",
            st.reads_local,
            st.reads_quorum,
            st.reads_log,
            st.reads_redirected,
            st.lease_read_waits,
            st.lease_write_waits,
            st.lease_revocations,
            st.promises_deferred,
            st.digest_mismatches,
            st.read_fetches,
            st.read_repairs
        );
    }
    println!(
        "crashes that lost synced records: {} (votes withheld while recovering: {})",
        summary.records_lost_crashes, st.votes_withheld
    );
    println!(
        "restarts from an older copy of storage: {} (detected by the restart check: {}; \
         crashed again while marked stale: {}); replicas paused: {}",
        summary.copies_restored,
        st.stale_data_detected,
        summary.stale_marked_crashes,
        summary.pauses
    );
    println!(
        "commands the nodes' client paths forwarded to a leader: {}, reads answered at once: {}, operations left open (timeout, storage error): {}",
        summary.forwards, summary.reads_now, summary.unanswered
    );
    println!(
        "slots followers learned chosen early: {}, forwards they answered themselves: {}",
        st.slots_learned_early, st.forwards_answered_early
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Flags {
        #[command(flatten)]
        protocol: ProtocolArgs,
    }

    #[test]
    fn every_protocol_flag_of_earlier_versions_still_parses_and_applies() {
        let argv = [
            "x",
            "--batch-max",
            "7",
            "--batch-bytes-max",
            "4096",
            "--batch-delay-us",
            "10",
            "--pipeline-depth",
            "3",
            "--election-timeout-ms",
            "900",
            "--heartbeat-interval-ms",
            "40",
            "--read-mode",
            "quorum-lease",
            "--lease-ms",
            "300",
            "--max-clock-drift-ppm",
            "20",
            "--lease-holders",
            "0,2",
            "--read-repair",
            "async",
            "--log-retain-bytes",
            "0",
        ];
        let flags = Flags::try_parse_from(argv).unwrap();
        let mut cfg = ProtocolConfig::default();
        flags.protocol.apply(&mut cfg).unwrap();
        let want = ProtocolConfig {
            batch_max: 7,
            batch_bytes_max: 4096,
            batch_delay_us: 10,
            pipeline_depth: 3,
            election_timeout_ms: 900,
            heartbeat_interval_ms: 40,
            read_mode: crate::config::ReadMode::QuorumLease,
            lease_ms: 300,
            max_clock_drift_ppm: 20,
            lease_holders: vec![0, 2],
            read_repair: crate::config::ReadRepair::Async,
            log_retain_bytes: 0,
            ..ProtocolConfig::default()
        };
        assert_eq!(cfg, want);
    }

    fn sim_args(argv: &[&str]) -> SimArgs {
        let cli = Cli::try_parse_from(["corepax", "sim"].iter().chain(argv)).unwrap();
        match cli.command {
            Command::Sim(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn sim_flags_of_earlier_versions_still_parse_and_apply() {
        let argv = [
            "--seeds",
            "20",
            "--seed",
            "3",
            "--replicas",
            "5",
            "--read-mode",
            "digest",
            "--protocol",
            "multipaxos",
            "--bug",
            "reply-before-persist",
        ];
        let (cfg, flags) = sim_config(&sim_args(&argv)).unwrap();
        assert_eq!(cfg.seed, 3);
        assert_eq!(cfg.replicas, 5);
        assert_eq!(cfg.read_mode, crate::config::ReadMode::Digest);
        assert!(cfg.bugs.reply_before_persist);
        assert!(cfg.settings.is_empty());
        assert_eq!(
            flags,
            " --protocol multipaxos --read-mode digest --bug reply-before-persist"
        );
        let p = cfg.protocol_config_of(3);
        assert_eq!((p.replicas, p.read_mode), (5, cfg.read_mode));
        let (raft, _) = sim_config(&sim_args(&[
            "--protocol",
            "raft",
            "--read-mode",
            "read-index",
        ]))
        .unwrap();
        assert_eq!(raft.protocol, crate::config::Protocol::Raft);
        assert_eq!(raft.read_mode, crate::config::ReadMode::ReadIndex);
        let (default, _) = sim_config(&sim_args(&[])).unwrap();
        assert_eq!(default.protocol, crate::config::Protocol::Multipaxos);
        assert_eq!(default.read_mode, crate::config::ReadMode::Log);
    }

    #[test]
    fn the_replay_line_gives_back_the_same_simulation() {
        let argv = [
            "--lists",
            "--expiry",
            "--restore-staged",
            "--slow-clock-ppm",
            "-7",
            "--corrupt-seeds-percent",
            "10",
            "--pause-seeds-percent",
            "50",
        ];
        let (cfg, flags) = sim_config(&sim_args(&argv)).unwrap();
        assert_eq!(
            flags,
            " --protocol multipaxos --read-mode log --lists --expiry --restore-staged \
             --slow-clock-ppm -7 --corrupt-seeds-percent 10"
        );
        let replay: Vec<&str> = flags.split_whitespace().collect();
        let (again, again_flags) = sim_config(&sim_args(&replay)).unwrap();
        assert_eq!(again_flags, flags);
        assert_eq!(
            (
                again.lists,
                again.expiry,
                again.restore_staged,
                again.pubsub
            ),
            (cfg.lists, cfg.expiry, cfg.restore_staged, cfg.pubsub)
        );
        assert_eq!(
            (
                again.slow_clock_ppm,
                again.corrupt_seeds_percent,
                again.pause_seeds_percent
            ),
            (Some(-7), 10, SEEDS_PERCENT_DEFAULT)
        );
    }

    #[test]
    fn sim_takes_any_protocol_setting_over_the_seeds_picks() {
        let plain = sim_config(&sim_args(&["--seeds", "50"])).unwrap().0;
        let argv = [
            "--seeds",
            "50",
            "--pipeline-depth",
            "3",
            "--lease-ms",
            "300",
        ];
        let (cfg, flags) = sim_config(&sim_args(&argv)).unwrap();
        assert_eq!(
            flags,
            " --protocol multipaxos --read-mode log --pipeline-depth 3 --lease-ms 300"
        );
        let depths: std::collections::BTreeSet<usize> = (0..50)
            .map(|seed| plain.protocol_config_of(seed).pipeline_depth)
            .collect();
        assert!(depths.len() > 1, "seeds pick the depth: {depths:?}");
        for seed in 0..50 {
            let (p, q) = (plain.protocol_config_of(seed), cfg.protocol_config_of(seed));
            assert_eq!((q.pipeline_depth, q.lease_ms), (3, 300));
            // Every other pick stays the seed's.
            assert_eq!(
                ProtocolConfig {
                    pipeline_depth: 3,
                    lease_ms: 300,
                    ..p
                },
                q
            );
        }
        // Checked with what the seeds pick: a node would refuse this too.
        let err = sim_config(&sim_args(&["--heartbeat-interval-ms", "400"])).unwrap_err();
        assert!(err.to_string().contains("election_timeout_ms"), "{err}");
        let err =
            sim_config(&sim_args(&["--protocol", "raft", "--read-mode", "digest"])).unwrap_err();
        assert!(err.to_string().contains("read_mode"), "{err}");
    }

    fn node_args(argv: &[&str]) -> NodeArgs {
        let cli = Cli::try_parse_from(["corepax", "node"].iter().chain(argv)).unwrap();
        match cli.command {
            Command::Node(args) => *args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_node_config_takes_the_file_then_the_flags_then_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "id = 1\nclient_addr = \"127.0.0.1:7000\"\n\
             peers = [\"127.0.0.1:8000\", \"127.0.0.1:8100\", \"127.0.0.1:8200\"]\n\
             data_dir = \"d\"\nshards = 1\nmaxclients = 7\ndebug = true\n\
             [protocol]\nbatch_max = 9\nlease_ms = 300\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let cfg = node_config(&node_args(&[
            "--config",
            config,
            "--maxclients",
            "8",
            "--no-fsync",
            "--batch-max",
            "10",
        ]))
        .unwrap();
        assert_eq!(cfg.maxclients, 8, "a flag over the file");
        assert!(cfg.no_fsync && cfg.debug, "a switch beside the file's");
        assert_eq!((cfg.protocol.batch_max, cfg.protocol.lease_ms), (10, 300));
        assert_eq!((cfg.id, cfg.shards, cfg.protocol.replicas), (1, 1, 3));
        assert_eq!(cfg.request_timeout_ms, 5_000, "the default");
        assert_eq!(cfg.anti_entropy_interval_ms, 30_000, "the default");
        // A bad value is refused naming the setting, from a flag or from the file.
        let err = node_config(&node_args(&["--config", config, "--maxclients", "0"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("maxclients"), "{err}");
        std::fs::write(&path, "id = 1\nshards = \"two\"\n").unwrap();
        let err = node_config(&node_args(&["--config", config]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("shards"), "{err}");
        // Without a file the flags give what has no default, and shards follow the cores.
        let peers = [
            "--peers",
            "127.0.0.1:8000",
            "--client-addr",
            "127.0.0.1:7000",
        ];
        let mut argv = vec!["--id", "0", "--data", "d"];
        argv.extend(peers);
        let cfg = node_config(&node_args(&argv)).unwrap();
        assert_eq!(cfg.shards, num_cpus());
        let err = node_config(&node_args(&peers)).unwrap_err().to_string();
        assert!(
            err.contains("`id` is required") && err.contains("--id"),
            "{err}"
        );
    }

    #[test]
    fn help_shows_a_settings_default_and_range() {
        use clap::CommandFactory;
        let help = Flags::command().render_help().to_string();
        assert!(
            help.contains("[default: 256; allowed: 1..=65536]"),
            "{help}"
        );
        assert!(help.contains("[default: none]"), "{help}");
    }

    #[test]
    fn unset_flags_leave_the_config_alone_and_bad_values_are_usage_errors() {
        let flags = Flags::try_parse_from(["x"]).unwrap();
        let mut cfg = ProtocolConfig {
            batch_max: 9,
            ..ProtocolConfig::default()
        };
        flags.protocol.apply(&mut cfg).unwrap();
        assert_eq!(cfg.batch_max, 9);
        let err = Flags::try_parse_from(["x", "--read-mode", "fast"]).unwrap_err();
        assert!(err.to_string().contains("read-mode"), "{err}");
        // `replicas` follows from --peers: it is no protocol flag.
        assert!(Flags::try_parse_from(["x", "--replicas", "3"]).is_err());
    }
}
