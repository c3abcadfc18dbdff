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
    /// Run one replica: a node process with one shard per core.
    Node(Box<NodeArgs>),
    /// Start a local cluster of node processes on 127.0.0.1 and wait; Ctrl-C stops it.
    Cluster(ClusterArgs),
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
    /// reply-before-persist | skip-phase1-recovery | truncate-at-corruption.
    #[arg(long, hide = true)]
    bug: Vec<String>,
    /// How reads are served: log, leader-lease, quorum-lease, digest, quorum.
    #[arg(long, default_value_t = crate::config::ReadMode::Log)]
    read_mode: crate::config::ReadMode,
    /// Let clocks drift far beyond the configured bound, to see the checker catch the
    /// stale lease reads that follows.
    #[arg(long, hide = true)]
    drift_beyond_bound: bool,
    /// Share of seeds (percent) whose crashes may corrupt synced records mid-log.
    #[arg(long, hide = true, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100))]
    corrupt_seeds_percent: u64,
}

/// Protocol settings shared by `node` and `cluster`; unset flags keep the config file's
/// value or the default.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProtocolArgs {
    /// Commands per slot, at most.
    #[arg(long)]
    pub batch_max: Option<usize>,
    /// Command bytes per slot, at most.
    #[arg(long)]
    pub batch_bytes_max: Option<usize>,
    /// How long a partial batch may wait for more commands (µs).
    #[arg(long)]
    pub batch_delay_us: Option<u64>,
    /// Slots in flight, at most.
    #[arg(long)]
    pub pipeline_depth: Option<usize>,
    /// Election timeout (ms); the actual timeout is randomised up to twice this.
    #[arg(long)]
    pub election_timeout_ms: Option<u64>,
    /// Heartbeat interval (ms).
    #[arg(long)]
    pub heartbeat_interval_ms: Option<u64>,
    /// How reads are served: log, leader-lease, quorum-lease, digest, quorum.
    #[arg(long)]
    pub read_mode: Option<crate::config::ReadMode>,
    /// Lease length (ms) for leader and quorum leases.
    #[arg(long)]
    pub lease_ms: Option<u64>,
    /// Clock rate error every lease decision allows for (parts per million).
    #[arg(long)]
    pub max_clock_drift_ppm: Option<u64>,
    /// Replicas holding quorum leases, comma-separated ids (default: all).
    #[arg(long, value_delimiter = ',')]
    pub lease_holders: Option<Vec<u8>>,
    /// When digest and quorum reads repair stale replicas: blocking, async.
    #[arg(long)]
    pub read_repair: Option<crate::config::ReadRepair>,
    /// Key and value bytes of applied log entries kept in memory for lagging followers;
    /// 0 = until the next snapshot (default 8 MiB).
    #[arg(long)]
    pub log_retain_bytes: Option<u64>,
}

impl ProtocolArgs {
    /// Overrides the config's fields with the flags given.
    pub fn apply(&self, p: &mut crate::config::ProtocolConfig) {
        if let Some(v) = self.batch_max {
            p.batch_max = v;
        }
        if let Some(v) = self.batch_bytes_max {
            p.batch_bytes_max = v;
        }
        if let Some(v) = self.batch_delay_us {
            p.batch_delay_us = v;
        }
        if let Some(v) = self.pipeline_depth {
            p.pipeline_depth = v;
        }
        if let Some(v) = self.election_timeout_ms {
            p.election_timeout_ms = v;
        }
        if let Some(v) = self.heartbeat_interval_ms {
            p.heartbeat_interval_ms = v;
        }
        if let Some(v) = self.read_mode {
            p.read_mode = v;
        }
        if let Some(v) = self.lease_ms {
            p.lease_ms = v;
        }
        if let Some(v) = self.max_clock_drift_ppm {
            p.max_clock_drift_ppm = v;
        }
        if let Some(v) = &self.lease_holders {
            p.lease_holders = v.clone();
        }
        if let Some(v) = self.read_repair {
            p.read_repair = v;
        }
        if let Some(v) = self.log_retain_bytes {
            p.log_retain_bytes = v;
        }
    }

    /// The flags again, to pass to a child process.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push(format!("--{name}"));
                out.push(v);
            }
        };
        push("batch-max", self.batch_max.map(|v| v.to_string()));
        push(
            "batch-bytes-max",
            self.batch_bytes_max.map(|v| v.to_string()),
        );
        push("batch-delay-us", self.batch_delay_us.map(|v| v.to_string()));
        push("pipeline-depth", self.pipeline_depth.map(|v| v.to_string()));
        push(
            "election-timeout-ms",
            self.election_timeout_ms.map(|v| v.to_string()),
        );
        push(
            "heartbeat-interval-ms",
            self.heartbeat_interval_ms.map(|v| v.to_string()),
        );
        push("read-mode", self.read_mode.map(|v| v.to_string()));
        push("lease-ms", self.lease_ms.map(|v| v.to_string()));
        push(
            "max-clock-drift-ppm",
            self.max_clock_drift_ppm.map(|v| v.to_string()),
        );
        push(
            "lease-holders",
            self.lease_holders
                .as_ref()
                .map(|v| v.iter().map(u8::to_string).collect::<Vec<_>>().join(",")),
        );
        push("read-repair", self.read_repair.map(|v| v.to_string()));
        push(
            "log-retain-bytes",
            self.log_retain_bytes.map(|v| v.to_string()),
        );
        out
    }
}

/// Arguments of `corepax node`. Flags override the config file.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// A TOML file with the node's settings (fields as in `NodeConfig`, protocol under
    /// `[protocol]`).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// This replica's id: its index in --peers.
    #[arg(long)]
    id: Option<u8>,
    /// Where clients connect (RESP).
    #[arg(long)]
    client_addr: Option<std::net::SocketAddr>,
    /// Every replica's peer base address, comma-separated, in id order; shard i of a
    /// replica listens on its port + i.
    #[arg(long, value_delimiter = ',')]
    peers: Option<Vec<std::net::SocketAddr>>,
    /// Data directory (WAL, one folder per shard).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Shards per node (default: the number of cores).
    #[arg(long)]
    shards: Option<usize>,
    /// Do not pin shard executors to cores.
    #[arg(long)]
    no_pin: bool,
    /// Cores the pinned executors may use, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    cpus: Option<Vec<usize>>,
    /// Skip fdatasync: benchmarks only, acknowledged writes can be lost on power failure.
    #[arg(long)]
    no_fsync: bool,
    /// Allow debug commands that bypass replication.
    #[arg(long)]
    debug: bool,
    /// Cluster id, checked in peer handshakes.
    #[arg(long)]
    cluster_id: Option<u64>,
    /// Snapshot (and truncate the WAL) every this many applied slots.
    #[arg(long)]
    snapshot_interval_slots: Option<u64>,
    /// Log slots kept in memory after a snapshot.
    #[arg(long)]
    log_retain_slots: Option<u64>,
    /// Run anti-entropy against every other replica this often (ms); 0 = only on
    /// COREPAX.REPAIR (default 30000).
    #[arg(long)]
    anti_entropy_interval_ms: Option<u64>,
    #[command(flatten)]
    protocol: ProtocolArgs,
}

fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let mut cfg: crate::config::NodeConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => {
            let missing = |what: &str| anyhow::anyhow!("--{what} is required without --config");
            crate::config::NodeConfig {
                id: args.id.ok_or_else(|| missing("id"))?,
                client_addr: args.client_addr.ok_or_else(|| missing("client-addr"))?,
                peers: args.peers.clone().ok_or_else(|| missing("peers"))?,
                data_dir: args.data.clone().ok_or_else(|| missing("data"))?,
                shards: args.shards.unwrap_or_else(num_cpus),
                pin: true,
                cpus: Vec::new(),
                no_fsync: false,
                cluster_id: 0,
                debug: false,
                request_timeout_ms: 5_000,
                client_bulk_bytes_max: 16 << 20,
                client_array_len_max: 65_536,
                snapshot_interval_slots: 50_000,
                log_retain_slots: 10_000,
                anti_entropy_interval_ms: crate::config::anti_entropy_interval_ms_default(),
                protocol: crate::config::ProtocolConfig::default(),
            }
        }
    };
    if let Some(v) = args.id {
        cfg.id = v;
    }
    if let Some(v) = args.client_addr {
        cfg.client_addr = v;
    }
    if let Some(v) = args.peers {
        cfg.peers = v;
    }
    if let Some(v) = args.data {
        cfg.data_dir = v;
    }
    if let Some(v) = args.shards {
        cfg.shards = v;
    }
    if let Some(v) = args.cluster_id {
        cfg.cluster_id = v;
    }
    if let Some(v) = args.snapshot_interval_slots {
        cfg.snapshot_interval_slots = v;
    }
    if let Some(v) = args.log_retain_slots {
        cfg.log_retain_slots = v;
    }
    if let Some(v) = args.anti_entropy_interval_ms {
        cfg.anti_entropy_interval_ms = v;
    }
    cfg.pin &= !args.no_pin;
    if let Some(v) = &args.cpus {
        cfg.cpus = v.clone();
    }
    cfg.no_fsync |= args.no_fsync;
    cfg.debug |= args.debug;
    cfg.protocol.replicas = cfg.peers.len();
    args.protocol.apply(&mut cfg.protocol);
    cfg.validate()?;
    if cfg.no_fsync {
        eprintln!(
            "WARNING: --no-fsync: writes are acknowledged before they are durable (benchmarks only)"
        );
    }
    crate::runtime::node::run(cfg)
}

/// Cores available to this process.
pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Arguments of `corepax cluster`.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Replicas (node processes).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=7))]
    pub replicas: u8,
    /// Client port of replica 0; replica i listens on base + i.
    #[arg(long, default_value_t = 7379)]
    pub base_port: u16,
    /// First peer port (default base-port + 1000); replica i uses peer-port + 64·i + shard.
    #[arg(long)]
    pub peer_port: Option<u16>,
    /// Data directory; replica i keeps its files in DIR/node-i.
    #[arg(long, default_value = "data")]
    pub data: std::path::PathBuf,
    /// Shards per node (default: cores ÷ replicas, at least 1, since every replica runs on
    /// this machine).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Skip fdatasync in every node: benchmarks only.
    #[arg(long)]
    pub no_fsync: bool,
    /// Do not pin shard executors to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Allow debug commands that bypass replication.
    #[arg(long)]
    pub debug: bool,
    /// Periodic anti-entropy in every node (ms); 0 = off, the default here, since this
    /// cluster serves benchmarks (a production node defaults to 30000).
    #[arg(long, default_value_t = 0)]
    pub anti_entropy_interval_ms: u64,
    /// Snapshot every this many applied slots in every node (default: the node's).
    #[arg(long)]
    pub snapshot_interval_slots: Option<u64>,
    /// Protocol settings for every node.
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

/// Parses the command line and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(a) => crate::loadgen::cli::run_bench(a).map(|_| ExitCode::SUCCESS),
        Command::Sweep(a) => crate::loadgen::cli::run_sweep(a).map(|_| ExitCode::SUCCESS),
        Command::Sim(args) => run_sim(args),
        Command::Node(args) => run_node(*args).map(|_| ExitCode::SUCCESS),
        Command::Cluster(args) => crate::runtime::cluster::run(args).map(|_| ExitCode::SUCCESS),
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
            "truncate-at-corruption" => bugs.truncate_at_corruption = true,
            other => anyhow::bail!(
                "unknown --bug {other}: allowed reply-before-persist, skip-phase1-recovery, \
                 truncate-at-corruption"
            ),
        }
    }
    let replicas = usize::from(args.replicas);
    let mut bug_flags: String = args.bug.iter().map(|b| format!(" --bug {b}")).collect();
    let mut base = crate::sim::SimConfig::new(args.seed, replicas);
    base.bugs = bugs;
    base.read_mode = args.read_mode;
    base.drift_beyond_bound = args.drift_beyond_bound;
    if args.drift_beyond_bound {
        bug_flags.push_str(" --drift-beyond-bound");
    }
    base.corrupt_seeds_percent = args.corrupt_seeds_percent;
    if args.corrupt_seeds_percent != 50 {
        bug_flags.push_str(&format!(
            " --corrupt-seeds-percent {}",
            args.corrupt_seeds_percent
        ));
    }
    let read_mode = args.read_mode;
    let summary = crate::sim::run_many(args.seed, args.seeds, &base, |seed, outcome| {
        println!("seed {seed}: {} violation(s)", outcome.violations.len());
        for v in &outcome.violations {
            println!("  {v}");
        }
        println!(
            "  replay: corepax sim --seeds 1 --seed {seed} --replicas {replicas} --read-mode {read_mode}{bug_flags} --trace"
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
        "anti-entropy during runs: {} entries exchanged, {} installed ({} copies damaged on purpose)",
        summary.anti_entropy.entries_exchanged,
        summary.anti_entropy.installed,
        summary.anti_entropy.damaged
    );
    let st = &summary.stats;
    if read_mode != crate::config::ReadMode::Log {
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
        "commands the nodes' client paths forwarded to a leader: {}",
        summary.forwards
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
