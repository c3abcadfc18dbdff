//! The checkers: applied-slot agreement, convergence, and linearizability of what the
//! clients saw; totals over many seeds.

use super::*;

/// How many steps the linearizability search of one key's history may take before it
/// gives up (the key counts as undecided, not as a violation).
const SEARCH_STEPS_MAX: u64 = 5_000_000;

/// What anti-entropy sessions did during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AntiEntropyCounts {
    /// Entries sent either way for differing leaves (proof that sessions found work).
    pub entries_exchanged: u64,
    /// Entries installed by the install rule.
    pub installed: u64,
    /// Copies damaged on purpose after the clients finished (anti-entropy must fix them).
    pub damaged: u64,
    /// Damaged copies a later write through the log replaced before anti-entropy came to
    /// them (a command a client gave up on may still be retried and applied).
    pub overwritten: u64,
}

/// What one run found.
#[derive(Clone, Debug, Default)]
pub struct SimOutcome {
    /// Client operations completed or attempted.
    pub ops: usize,
    /// Safety violations found, each described.
    pub violations: Vec<String>,
    /// Keys whose check gave up (too many concurrent operations).
    pub undecided: usize,
    /// The trace, when asked for.
    pub trace: String,
    /// Snapshots sent to lagging replicas (proof that the path ran).
    pub snapshots_sent: u64,
    /// Every replica's counters, summed over its lives (proof that read paths ran).
    pub stats: Stats,
    /// Anti-entropy sessions run between replicas during the run.
    pub anti_entropy: AntiEntropyCounts,
    /// Snapshot chunks sent after a first one (proof that transfers took several).
    pub snapshot_chunks_later: u64,
    /// Crashes whose storage lost synced records in the middle of the log.
    pub records_lost_crashes: u64,
    /// Restarts from an older copy of the replica's storage.
    pub copies_restored: u64,
    /// Of them, those whose copy held fewer records than the storage it replaced (the
    /// others restored what the replica held anyway: nothing to detect).
    pub copies_restored_older: u64,
    /// Crashes of a restored replica found stale, before it caught up (its WAL marks it).
    pub stale_marked_crashes: u64,
    /// Replicas paused for a while.
    pub pauses: u64,

    /// Commands the nodes' client paths forwarded to a leader (proof that the path ran).
    pub forwards: u64,
    /// Reads a node answered at once, without a step (`ClientPath::read_now`).
    pub reads_now: u64,
    /// Client operations that timed out or hit a storage error: their outcome is unknown,
    /// and they stay open in the history.
    pub unanswered: u64,
    /// Keys the log's clock entries named for removal (proof that keys expired).
    pub keys_expired: u64,
    /// Published messages the replicas delivered, in all (`--pubsub`).
    pub messages_delivered: usize,
}

/// The replica's Merkle root after an incremental rebuild, checked against a full rebuild
/// (the incremental tree must always agree with the state machine).
pub(super) fn merkle_root(r: &Consensus) -> u64 {
    let mut incremental = r.kv().merkle().clone();
    incremental.rebuild_incremental();
    let mut full = crate::protocol::merkle::MerkleTree::new(incremental.depth());
    full.rebuild_full(r.kv().iter().map(|i| (i.key(), i.entry_ref())));
    assert_eq!(
        incremental.root(),
        full.root(),
        "incremental Merkle tree diverged from kv"
    );
    incremental.root()
}

/// Totals over many seeds.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Operations over all seeds.
    pub ops: usize,
    /// Violations over all seeds.
    pub violations: usize,
    /// Seeds with at least one violation.
    pub failing_seeds: Vec<u64>,
    /// Keys whose check gave up.
    pub undecided: usize,
    /// Snapshots sent to lagging replicas over all seeds.
    pub snapshots_sent: u64,
    /// Replica counters over all seeds.
    pub stats: Stats,
    /// Anti-entropy over all seeds.
    pub anti_entropy: AntiEntropyCounts,
    /// Snapshot chunks sent after a first one, over all seeds.
    pub snapshot_chunks_later: u64,
    /// Crashes that lost synced records, over all seeds.
    pub records_lost_crashes: u64,
    /// Restarts from an older copy of storage, over all seeds.
    pub copies_restored: u64,
    /// Crashes of a restored replica marked stale, before it caught up, over all seeds.
    pub stale_marked_crashes: u64,
    /// Pauses, over all seeds.
    pub pauses: u64,

    /// Commands forwarded to a leader, over all seeds.
    pub forwards: u64,
    /// Reads answered at once, over all seeds.
    pub reads_now: u64,
    /// Client operations left open (timeout, storage error), over all seeds.
    pub unanswered: u64,
    /// Keys named for removal by clock entries, over all seeds.
    pub keys_expired: u64,
}

/// Runs `count` seeds from `first`, each with `base`'s settings, calling `on_failure` for
/// each failing one.
pub fn run_many(
    first: u64,
    count: u64,
    base: &SimConfig,
    mut on_failure: impl FnMut(u64, &SimOutcome),
) -> Summary {
    let mut summary = Summary::default();
    for seed in first..first + count {
        let cfg = SimConfig {
            seed,
            ..base.clone()
        };
        let outcome = run(cfg);
        summary.seeds += 1;
        summary.ops += outcome.ops;
        summary.undecided += outcome.undecided;
        summary.snapshots_sent += outcome.snapshots_sent;
        summary.stats.add(&outcome.stats);
        summary.anti_entropy.entries_exchanged += outcome.anti_entropy.entries_exchanged;
        summary.anti_entropy.installed += outcome.anti_entropy.installed;
        summary.anti_entropy.damaged += outcome.anti_entropy.damaged;
        summary.anti_entropy.overwritten += outcome.anti_entropy.overwritten;
        summary.snapshot_chunks_later += outcome.snapshot_chunks_later;
        summary.records_lost_crashes += outcome.records_lost_crashes;
        summary.copies_restored += outcome.copies_restored;
        summary.stale_marked_crashes += outcome.stale_marked_crashes;
        summary.pauses += outcome.pauses;
        summary.forwards += outcome.forwards;
        summary.reads_now += outcome.reads_now;
        summary.unanswered += outcome.unanswered;
        summary.keys_expired += outcome.keys_expired;
        if !outcome.violations.is_empty() {
            summary.violations += outcome.violations.len();
            summary.failing_seeds.push(seed);
            on_failure(seed, &outcome);
        }
    }
    summary
}

impl Sim {
    /// The histories the linearizability checker takes: one per key, except that keys a
    /// two-key move linked (answered or not: it may have happened) are merged into one,
    /// each operation naming its key's place in the group ([`Operation::object`]). Each
    /// with the keys it covers, in order.
    fn histories_to_check(&self) -> Vec<(Vec<usize>, Vec<Operation>)> {
        // Union-find over keys; the root of a group is its smallest key.
        let mut root: Vec<usize> = (0..self.cfg.keys).collect();
        fn find(root: &mut [usize], mut k: usize) -> usize {
            while root[k] != k {
                root[k] = root[root[k]];
                k = root[k];
            }
            k
        }
        for rec in &self.history {
            if let Op::Move { to, .. } = rec.op.op.checked(rec.key) {
                let (a, b) = (find(&mut root, rec.key), find(&mut root, to));
                root[a.max(b)] = a.min(b);
            }
        }
        let groups: Vec<usize> = (0..self.cfg.keys).map(|k| find(&mut root, k)).collect();
        let keys_of =
            |g: usize| -> Vec<usize> { (0..self.cfg.keys).filter(|k| groups[*k] == g).collect() };
        let mut out: Vec<(Vec<usize>, Vec<Operation>)> = (0..self.cfg.keys)
            .filter(|k| groups[*k] == *k)
            .map(|g| (keys_of(g), Vec::new()))
            .collect();
        let place = |keys: &[usize], k: usize| keys.iter().position(|x| *x == k);
        for rec in &self.history {
            // A read that never returned tells nothing.
            if rec.op.op.is_read() && rec.op.out == Output::Unknown {
                continue;
            }
            let g = groups[rec.key];
            let Some((keys, ops)) = out.iter_mut().find(|(keys, _)| keys[0] == g) else {
                unreachable!("every group has an entry");
            };
            let mut o = rec.op;
            o.op = o.op.checked(rec.key);
            o.object = place(keys, rec.key).expect("the key is in its group");
            if let Op::Move { to, .. } = &mut o.op {
                *to = place(keys, *to).expect("a move's keys share a group");
            }
            ops.push(o);
        }
        out
    }

    /// Compares every slot `node` applied since the last look with what the others
    /// applied there. Every entry of the trace, not only the tail back to a slot already
    /// seen: a restarted replica re-applies slots from its own log, and one of them may
    /// differ while a later one agrees.
    pub(super) fn record_applied(&mut self, node: ReplicaId) {
        let n = &mut self.nodes[node.index()];
        let r = n.replica.as_ref().expect("live");
        let trace = r.applied_trace().expect("tracing on");
        let new = &trace[n.trace_checked..];
        n.trace_checked = trace.len();
        for (slot, batch) in new {
            match self.applied_at.get(slot) {
                Some(b) if b == batch => {}
                Some(b) => {
                    let msg = format!(
                        "replica {node} applied {} at slot {slot}, another applied {}",
                        describe_batch(batch),
                        describe_batch(b)
                    );
                    self.violations.push(msg);
                }
                None => {
                    for req in batch.iter() {
                        if let Command::Clock { expire, .. } = &req.cmd {
                            self.keys_expired += expire.len() as u64;
                        }
                    }
                    self.applied_at.insert(*slot, batch.clone());
                }
            }
        }
    }

    pub(super) fn converged(&self) -> bool {
        let live: Vec<&Consensus> = self
            .nodes
            .iter()
            .filter_map(|n| n.replica.as_ref())
            .collect();
        if live.len() != self.nodes.len() {
            return false;
        }
        let applied = live[0].applied_index();
        live.iter().all(|r| r.applied_index() == applied)
            && live.iter().any(|r| r.is_leading())
            && live
                .iter()
                .all(|r| r.kv().digest() == live[0].kv().digest())
            && {
                let root = merkle_root(live[0]);
                live[1..].iter().all(|r| merkle_root(r) == root)
            }
    }

    pub(super) fn check(mut self) -> SimOutcome {
        self.check_pubsub();
        let mut undecided = 0;
        for (keys, ops) in self.histories_to_check() {
            match linearizability::check(&ops, SEARCH_STEPS_MAX) {
                Verdict::Linearizable => {}
                Verdict::Unknown => undecided += 1,
                Verdict::Violation => {
                    let names: Vec<String> = keys.iter().map(|k| format!("k{k}")).collect();
                    let mut msg =
                        format!("history of key {} is not linearizable:", names.join("+"));
                    for o in &ops {
                        let _ = write!(
                            msg,
                            "\n    client {} {}{:?} → {:?}  [{:.3}ms, {}]",
                            o.client,
                            if keys.len() > 1 {
                                format!("k{} ", keys[o.object])
                            } else {
                                String::new()
                            },
                            o.op,
                            o.out,
                            o.call as f64 / MS as f64,
                            if o.ret == u64::MAX {
                                "never".to_string()
                            } else {
                                format!("{:.3}ms", o.ret as f64 / MS as f64)
                            }
                        );
                    }
                    self.violations.push(msg);
                }
            }
        }
        let mut stats = self.dead_stats.clone();
        for r in self.nodes.iter().filter_map(|n| n.replica.as_ref()) {
            stats.add(r.stats());
        }
        SimOutcome {
            stats,
            anti_entropy: self.anti_entropy,
            ops: self.history.len(),
            violations: self.violations,
            undecided,
            trace: self.trace,
            snapshots_sent: self.snapshots_sent,
            snapshot_chunks_later: self.snapshot_chunks_later,
            records_lost_crashes: self.records_lost_crashes,
            copies_restored: self.copies_restored,
            copies_restored_older: self.copies_restored_older,
            stale_marked_crashes: self.stale_marked_crashes,
            pauses: self.pauses,
            forwards: self.forwards,
            reads_now: self.reads_now,
            unanswered: self.unanswered,
            keys_expired: self.keys_expired,
            messages_delivered: self.deliveries.count(),
        }
    }
}
