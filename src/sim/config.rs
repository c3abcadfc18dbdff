//! What one simulation run does, and the protocol settings a seed picks.

use super::*;

/// What one simulation run does.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seeds everything.
    pub seed: u64,
    /// Replicas in the group.
    pub replicas: usize,
    /// Concurrent clients, each with one request outstanding.
    pub clients: usize,
    /// Keys the clients share (few, for contention).
    pub keys: usize,
    /// Operations each client issues.
    pub ops_per_client: usize,
    /// How long faults are injected.
    pub fault_phase: Nanos,
    /// Deliberate protocol bugs, to prove the checkers can fail.
    pub bugs: Bugs,
    /// Keep a readable trace of every event.
    pub trace: bool,
    /// Take a snapshot every this many applied slots (0 = never), keeping `log_retain`
    /// slots of log for catch-up; lagging replicas then need snapshots.
    pub snapshot_every: u64,
    /// Log slots kept after a snapshot.
    pub log_retain: u64,
    /// How reads are served.
    pub read_mode: ReadMode,
    /// The replication protocol the group runs.
    pub protocol: Protocol,
    /// Let replicas' clocks drift beyond the configured bound (proof that lease checks
    /// can fail); within it otherwise.
    pub drift_beyond_bound: bool,
    /// One replica's clock (the seed picks which) runs this much faster than real time
    /// (ppm; negative: slower), whatever the bound: a clock the clock-rate check must
    /// catch when it is beyond.
    pub slow_clock_ppm: Option<i64>,
    /// Clients also compare-and-set (`SET … IFEQ`) and increment (`INCRBY`), which the
    /// register model checks too.
    pub primitives: bool,
    /// Clients also write with deadlines (`SET … PX`), set and clear them (`PEXPIRE`,
    /// `PERSIST`) and read the time left (`PTTL`); the model expires keys by the log's time.
    pub expiry: bool,
    /// Share of seeds (percent) whose crashes may also corrupt synced records in the
    /// middle of the crashed replica's log.
    pub corrupt_seeds_percent: u64,
    /// Share of seeds (percent) where a replica's storage may be copied and a later
    /// restart may start from that older copy (`restore.rs`).
    pub restore_seeds_percent: u64,
    /// Instead of random faults, the staged restore of `restore_staged.rs` (3 replicas).
    pub restore_staged: bool,
    /// Share of seeds (percent) where replicas are paused now and then (`pause.rs`).
    pub pause_seeds_percent: u64,
    /// In those seeds, every pause takes the leader, and while it is paused the clients
    /// send their new reads to it, as clients that cached its address do (`pause.rs`).
    pub pause_leader_reads_wait: bool,
    /// Every key is a list: clients push (`RPUSH`), pop (`LPOP`, `BLPOP`), read lengths
    /// (`LLEN`), edit and move elements (`LMOVE`, `BLMOVE`, also between paired keys),
    /// which the list model checks.
    pub lists: bool,
    /// Deliberate bug (with `lists`): a pop is answered by reading the head (`LINDEX 0`,
    /// served as a read) instead of removing it through the log.
    pub bug_pop_without_log: bool,
    /// Deliberate bug (with `lists`): a blocking pop that reaches its deadline answers nil
    /// from its node's state, which may lag the log, instead of popping a last time
    /// through the log (what the runtime did before `protocol::blocking`).
    pub bug_blocking_timeout_local: bool,
    /// With `lists`: every move (`LMOVE`, between paired keys or a rotation) is sent as a
    /// `BLMOVE`, so a fault in moves shows through the blocking path alone (tests).
    pub moves_blocking: bool,
    /// Every client write also publishes its value (one transaction), and the checker
    /// proves every replica delivered one sequence of messages (see `sim::pubsub`).
    pub pubsub: bool,
    /// Deliberate bug (with `pubsub`): messages are delivered when a replica receives an
    /// accept carrying them, not when it applies the chosen entry.
    pub bug_deliver_on_receipt: bool,
    /// Syncs take this many times as long as the simulated disk's usual latency (1: as
    /// measured here); a slower disk widens the window between a record's write and its
    /// sync, where a replica that answers before persisting loses what it promised.
    pub sync_latency_factor: u64,
    /// Protocol settings given by name (`corepax sim --pipeline-depth 4`), each replacing
    /// what every seed picks for it; set with [`SimConfig::set_protocol_settings`].
    pub settings: Vec<(&'static Setting, String)>,
    /// A lease of this length (ms) instead of the seed's pick (40–120 ms, around the
    /// 100 ms election timeout).
    pub lease_ms: Option<u64>,
}

impl SimConfig {
    /// The defaults used by `cargo test` and `corepax sim`.
    pub fn new(seed: u64, replicas: usize) -> SimConfig {
        SimConfig {
            seed,
            replicas,
            clients: 4,
            keys: 3,
            ops_per_client: 40,
            fault_phase: 3_000 * MS,
            bugs: Bugs::default(),
            trace: false,
            // Odd seeds snapshot often and keep almost no log (set in `Sim::new`).
            snapshot_every: 0,
            log_retain: 0,
            read_mode: ReadMode::Log,
            protocol: Protocol::Multipaxos,
            drift_beyond_bound: false,
            slow_clock_ppm: None,
            primitives: false,
            expiry: false,
            corrupt_seeds_percent: 50,
            restore_seeds_percent: 50,
            pause_seeds_percent: 50,
            restore_staged: false,
            pause_leader_reads_wait: false,
            lists: false,
            bug_pop_without_log: false,
            bug_blocking_timeout_local: false,
            moves_blocking: false,
            pubsub: false,
            bug_deliver_on_receipt: false,
            settings: Vec::new(),
            sync_latency_factor: 1,
            lease_ms: None,
        }
    }

    /// Takes protocol settings as `node` and `cluster` do ([`crate::config::SETTINGS`],
    /// flag and value): `protocol` and `read_mode` choose the run's, every other replaces
    /// what each seed picks (and `max_clock_drift_ppm` also bounds the simulated clocks'
    /// drift). Each value is checked here; [`SimConfig::check_protocol`] checks them
    /// together with what the seeds pick.
    pub fn set_protocol_settings(
        &mut self,
        given: &[(&'static Setting, String)],
    ) -> Result<(), ConfigError> {
        let mut p = ProtocolConfig {
            protocol: self.protocol,
            read_mode: self.read_mode,
            ..ProtocolConfig::default()
        };
        for (setting, value) in given {
            (setting.set)(&mut p, value)?;
        }
        self.protocol = p.protocol;
        self.read_mode = p.read_mode;
        self.settings = given
            .iter()
            .filter(|(s, _)| !matches!(s.name, "protocol" | "read_mode"))
            .cloned()
            .collect();
        Ok(())
    }

    /// Checks the protocol settings each of `seeds` runs with (the seed's picks and the
    /// settings given) as a node checks its configuration; the error names the seed.
    pub fn check_protocol(&self, seeds: std::ops::Range<u64>) -> Result<(), String> {
        for seed in seeds {
            self.protocol_config_of(seed)
                .validate()
                .map_err(|e| format!("the protocol settings of seed {seed}: {e}"))?;
        }
        Ok(())
    }

    /// The protocol settings seed `seed` runs with.
    pub fn protocol_config_of(&self, seed: u64) -> ProtocolConfig {
        self.protocol_config(&mut ChaCha8Rng::seed_from_u64(seed))
    }

    /// The protocol settings of this run: the seed picks pipeline, batching, leases,
    /// snapshot chunking and log retention; the settings given replace its picks.
    pub(super) fn protocol_config(&self, rng: &mut ChaCha8Rng) -> ProtocolConfig {
        let mut cfg = self.picked_protocol_config(rng);
        for (setting, value) in &self.settings {
            (setting.set)(&mut cfg, value)
                .expect("a value set_protocol_settings applied once already");
        }
        cfg
    }

    /// What the seed picks.
    fn picked_protocol_config(&self, rng: &mut ChaCha8Rng) -> ProtocolConfig {
        ProtocolConfig {
            protocol: self.protocol,
            replicas: self.replicas,
            pipeline_depth: rng.random_range(1..=8),
            batch_max: rng.random_range(1..=8),
            batch_delay_us: if rng.random_bool(0.3) { 500 } else { 0 },
            election_timeout_ms: 100,
            heartbeat_interval_ms: 20,
            catchup_chunk_max: rng.random_range(1..=8),
            read_mode: self.read_mode,
            lease_ms: {
                let picked = rng.random_range(40..=120);
                self.lease_ms.unwrap_or(picked)
            },
            max_clock_drift_ppm: SIM_DRIFT_PPM,
            // Round trips here take up to 2 ms (60 ms when a fault delays them): a second
            // keeps the estimate within about 0.4 % (see `clock_check`).
            clock_check_window_ms: 1_000,
            // Sometimes only some replicas hold quorum leases.
            lease_holders: if rng.random_bool(0.3) {
                (0..self.replicas as u8)
                    .filter(|_| rng.random_bool(0.5))
                    .collect()
            } else {
                Vec::new()
            },
            read_repair: if rng.random_bool(0.5) {
                ReadRepair::Blocking
            } else {
                ReadRepair::Async
            },
            // Tiny chunks (1 byte: one item each), so snapshots cross in several chunks
            // that the network loses, repeats and reorders. From the seed, not `rng`, so
            // the other choices of a seed stay as they were.
            snapshot_chunk_bytes_max: [1, 40, 120][(self.seed / 2 % 3) as usize],
            // Applied entries dropped from memory after a few bytes, or a few slots' worth,
            // or never (the default bound is never reached here): peers behind them
            // need snapshots even when nobody snapshots on a schedule.
            log_retain_bytes: [0, 1, 60, 16 << 20][(self.seed / 6 % 4) as usize],
            // Lazy leader sync in three seeds of four, so that both a lazy leader's lone
            // slots and a syncing one's are run with three replicas; for every batch in
            // most of those (the clients here seldom fill the default's 8), for batches of
            // two or more in the rest.
            lazy_leader_sync: self.seed % 4 != 3,
            lazy_sync_batch_min: [1, 1, 2][(self.seed / 72 % 3) as usize],
            // A lazy leader's wait for its second follower vote: shorter than most syncs
            // here, about one, or longer than most.
            lazy_sync_wait_us: [50, 400, 3_000][(self.seed / 24 % 3) as usize],
            ..ProtocolConfig::default()
        }
    }
}

/// The drift bound the simulated replicas are configured with: large, so that the lease
/// arithmetic's allowance for it is exercised (real clocks drift far less).
pub(super) const SIM_DRIFT_PPM: u64 = 50_000;
