//! Faults: partitions, crashes that lose unsynced (and sometimes synced) records,
//! restarts, clock drift, bit rot and the anti-entropy sessions that repair it.

use super::*;

impl Sim {
    /// What `node`'s own clock reads now.
    pub(super) fn clock(&self, node: ReplicaId) -> Nanos {
        let n = &self.nodes[node.index()];
        let skew = self.now as i128 * n.clock_rate_ppm as i128 / 1_000_000;
        (n.clock_offset as i128 + self.now as i128 + skew) as Nanos
    }

    /// Beyond the drift bound, the worst case on purpose. Leader lease: every leader's
    /// clock crawls (its lease seems to last far longer, also once deposed) and the others
    /// race (their grants end early). Quorum lease: the leader's clock races (it waits out
    /// holders' leases too briefly) and the holders' crawl. Clocks stay continuous and
    /// monotonic; only their rates change.
    pub(super) fn adversarial_clocks(&mut self, leader: ReplicaId) {
        let bound = self.proto.max_clock_drift_ppm as i64;
        for i in 0..self.nodes.len() {
            let was_leader = self.leaders.values().any(|l| l.index() == i);
            let crawls = match self.proto.read_mode.leases() {
                Some(LeaseHolders::Configured) => i != leader.index(),
                Some(LeaseHolders::Leader) | None => was_leader,
            };
            let rate = if crawls { -18 * bound } else { 18 * bound };
            let at = self.clock(ReplicaId(i as u8)) as i128;
            let n = &mut self.nodes[i];
            n.clock_rate_ppm = rate;
            let moved = self.now as i128 + self.now as i128 * rate as i128 / 1_000_000;
            n.clock_offset = (at - moved) as i64;
        }
    }

    pub(super) fn inject_fault(&mut self) {
        if !self.faults_on {
            return;
        }
        let n = self.cfg.replicas;
        let leader = self
            .nodes
            .iter()
            .filter_map(|x| x.replica.as_ref())
            .find_map(|r| r.is_leading().then(|| r.id()));
        if self.cfg.restore_staged {
            self.staged_fault();
            let next = self.rng.random_range(50 * MS..400 * MS);
            self.schedule(next, Event::Fault);
            return;
        }
        self.maybe_copy_storage();
        self.maybe_pause(leader);
        match self.rng.random_range(0..10) {
            // A peer that restarts while a restored replica checks forgets what it saw.
            0..=2 if self.restored_checking() => {}
            0..=2 => {
                let victim = match leader {
                    Some(l) if self.rng.random_bool(0.5) => l,
                    _ => ReplicaId(self.rng.random_range(0..n) as u8),
                };
                self.crash(victim);
                // Power loss takes a second replica with it now and then.
                if self.rng.random_bool(0.3) {
                    let other = ReplicaId(self.rng.random_range(0..n) as u8);
                    self.crash(other);
                }
            }
            3 | 4 => {
                // Symmetric partition into two random sides.
                let side: Vec<bool> = (0..n).map(|_| self.rng.random_bool(0.5)).collect();
                for a in 0..n {
                    for b in 0..n {
                        self.cut[a][b] = side[a] != side[b];
                    }
                }
                self.log(|| format!("partition {side:?}"));
            }
            5 => {
                let a = self.rng.random_range(0..n);
                let b = self.rng.random_range(0..n);
                if a != b {
                    self.cut[a][b] = true;
                    self.log(|| format!("one-way cut r{a} → r{b}"));
                }
            }
            6 => {
                if let Some(l) = leader {
                    for x in 0..n {
                        if x != l.index() {
                            self.cut[l.index()][x] = true;
                            self.cut[x][l.index()] = true;
                        }
                    }
                    self.log(|| format!("isolate leader {l}"));
                }
            }
            _ => {
                for row in &mut self.cut {
                    row.fill(false);
                }
                self.log(|| "links healed".into());
            }
        }
        let next = self.rng.random_range(50 * MS..400 * MS);
        self.schedule(next, Event::Fault);
    }

    pub(super) fn crash(&mut self, node: ReplicaId) {
        let keep_frac = self.rng.random_range(0.0..1.0);
        let n = &self.nodes[node.index()];
        // A restored replica crashes only once its finding is durable (see `restore.rs`).
        if n.replica.is_none() || (n.restored && !restore::stale_mark_synced(&n.durable)) {
            return;
        }
        self.stale_marked_crashes += u64::from(n.restored);
        let n = &mut self.nodes[node.index()];
        // Written but unsynced records: some prefix may have reached the disk.
        let keep = (n.pending.len() as f64 * keep_frac) as usize;
        let covers = n.snapshot_covers;
        let kept: Vec<_> = n
            .pending
            .drain(..)
            .take(keep)
            .filter(|(id, _)| *id > covers)
            .map(|(_, r)| r)
            .collect();
        let synced = n.durable.len();
        n.durable.extend(kept);
        self.corrupt_synced(node, synced);
        let n = &mut self.nodes[node.index()];
        n.snapshot_covers = 0;
        n.paused_until = None;
        if let Some(r) = n.replica.take() {
            self.dead_stats.add(r.stats());
        }
        n.incarnation += 1;
        n.syncing_upto = None;
        n.sync_wanted = false;
        // Clients connected to it lose their connection: their commands' outcomes are
        // unknown.
        let mut callers: Vec<(usize, u32)> = n.callers.drain().map(|(_, c)| c).collect();
        callers.sort_unstable();
        for (client, attempt) in callers {
            self.answer_client(client, attempt, Err(ClientError::Timeout));
        }
        self.drop_blocked(node);
        self.log(|| format!("crash {node} (kept {keep} unsynced records)"));
        let down = self.rng.random_range(20 * MS..500 * MS);
        self.schedule(down, Event::Restart(node));
    }

    /// At a crash, in seeds that have it: storage damages synced records in the middle
    /// of `node`'s log (of its first `synced` durable records, with a valid record after
    /// them), as bit rot or a lost write would. Like the WAL's recovery, the replica then
    /// knows it lost records. Never on more replicas at once than a quorum can spare, or
    /// no leader could ever be elected again. With the `truncate_at_corruption` bug, the
    /// log is cut at the damage, as recovery did when it took it for a torn tail.
    pub(super) fn corrupt_synced(&mut self, node: ReplicaId, synced: usize) {
        let Some(rng) = self.corrupt_rng.as_mut() else {
            return;
        };
        if !rng.random_bool(0.5) {
            return;
        }
        let spare = (self.nodes.len() - 1) / 2;
        let forgetting = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| {
                *i != node.index()
                    && (n.lost_records || n.restored)
                    && n.replica.as_ref().is_none_or(Consensus::recovering)
            })
            .count();
        let n = &mut self.nodes[node.index()];
        let total = n.durable.len();
        if forgetting >= spare || synced == 0 || total < 2 {
            return;
        }
        // Near the end, where the records a recent choice counted on are.
        let end_max = synced.min(total - 1);
        let end = end_max - rng.random_range(0..end_max.min(4));
        let lost = rng.random_range(1..=end.min(16));
        let start = end - lost;
        if self.cfg.bugs.truncate_at_corruption {
            n.durable.truncate(start);
        } else {
            n.durable.drain(start..end);
        }
        n.lost_records = true;
        self.records_lost_crashes += 1;
        self.log(|| format!("{node}: storage lost synced records {start}..{end} of {total}"));
    }

    pub(super) fn restart(&mut self, node: ReplicaId) {
        let seed = self.rng.random();
        let session = self.rng.random::<u64>() | 1;
        if self.nodes[node.index()].replica.is_some() {
            return;
        }
        self.staged_restart(node);
        self.maybe_restore_copy(node);
        let n = &mut self.nodes[node.index()];
        n.client = ClientPath::new(node, session, self.cfg.read_mode, client_timeout(&self.cfg));
        let mut r = Consensus::recover_traced(
            self.proto.clone(),
            node,
            seed,
            n.snapshot.clone(),
            n.durable.iter().cloned(),
            n.lost_records,
        );
        n.trace_checked = 0;
        n.outbox = Outbox::new(SnapshotSchedule::new(
            self.cfg.snapshot_every,
            self.cfg.log_retain,
            r.applied_index(),
        ));
        r.set_bugs(self.cfg.bugs);
        r.set_session(session);
        r.set_offload_transfers(true);
        n.transfer_build = None;
        n.install_build = None;
        let recovering = r.recovering();
        n.replica = Some(r);
        self.pubsub_start(node);
        self.log(|| format!("restart {node} (recovering lost records: {recovering})"));
        self.after_step(node);
    }

    /// Bit rot: a caught-up follower's copy of a stored key reverts to an old value
    /// (version 0). False if no follower is caught up and stores a key.
    pub(super) fn damage_one_copy(&mut self) -> bool {
        let live = || self.nodes.iter().filter_map(|n| n.replica.as_ref());
        let newest = live().map(Consensus::applied_index).max().unwrap_or(0);
        let followers: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                self.nodes[*i].replica.as_ref().is_some_and(|r| {
                    !r.is_leading() && !r.kv().is_empty() && r.applied_index() == newest
                })
            })
            .collect();
        if followers.is_empty() {
            return false;
        }
        let victim = followers[self.rng.random_range(0..followers.len())];
        let r = self.nodes[victim].replica.as_mut().expect("live");
        let mut keys: Vec<Bytes> = r.kv().iter().map(Item::key_bytes).collect();
        keys.sort();
        let key = keys[self.rng.random_range(0..keys.len())].clone();
        let rot = crate::protocol::kv::Entry {
            value: Bytes::from_static(b"rot"),
            version: 0,
            kind: crate::protocol::item::Kind::String,
        };
        let version = r.kv().get(&key).map_or(0, |i| i.entry_ref().version);
        r.kv_mut().force_local(key.clone(), rot);
        self.anti_entropy.damaged += 1;
        self.rotted = Some((victim, key.clone(), version));
        self.installed_at_rot = self.anti_entropy.installed;
        self.log(|| format!("bit rot: r{victim} {:?} reverted", key));
        true
    }

    /// After the replicas converged again: counts the damaged copy as overwritten if a
    /// write through the log replaced it (its version moved past the one it had), or if
    /// something other than anti-entropy did (a snapshot installed over the whole state:
    /// the copy is whole again and no session installed anything; seed 706, 5 replicas,
    /// quorum-lease).
    pub(super) fn note_rot_overwritten(&mut self) {
        let Some((victim, key, version)) = self.rotted.take() else {
            return;
        };
        let now = self.nodes[victim].replica.as_ref().and_then(|r| {
            r.kv()
                .get(&key)
                .map(|i| (i.entry_ref().version, i.value_bytes()))
        });
        let moved_on = now.as_ref().is_some_and(|(v, _)| *v > version);
        let whole_without_a_session = self.anti_entropy.installed == self.installed_at_rot
            && now.is_some_and(|(_, value)| value.as_ref() != b"rot");
        if moved_on || whole_without_a_session {
            self.anti_entropy.overwritten += 1;
        }
    }

    /// Anti-entropy between two random live replicas, run to the end between two protocol
    /// steps (like a session whose messages all arrive at once). Its repairs land in
    /// replicas that may lag or be mid-catch-up: the checkers then prove that a repair
    /// never breaks linearizability, the applied-log prefix or convergence.
    pub(super) fn anti_entropy(&mut self) {
        use crate::protocol::merkle::{AntiEntropy, Responder, SessionLimits};
        let next = self.rng.random_range(100 * MS..400 * MS);
        self.schedule(next, Event::AntiEntropy);
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                self.nodes[*i].replica.is_some() && self.paused(ReplicaId(*i as u8)).is_none()
            })
            .collect();
        if live.len() < 2 {
            return;
        }
        let a = live[self.rng.random_range(0..live.len())];
        let b = loop {
            let b = live[self.rng.random_range(0..live.len())];
            if b != a {
                break b;
            }
        };
        // Small limits, so sessions take several round trips and pushes.
        let limits = SessionLimits {
            entries_per_msg_max: 2,
            parents_per_msg_max: 4,
            leaves_per_msg_max: 4,
        };
        let mut responder = Responder::new(limits);
        let (mut session, mut msg) = {
            let ra = self.nodes[a].replica.as_mut().expect("live");
            AntiEntropy::start(ra.kv_mut(), limits)
        };
        let mut installed = 0;
        for _ in 0..10_000 {
            let reply = {
                let rb = self.nodes[b].replica.as_mut().expect("live");
                let applied = rb.applied_index();
                let resp = responder.on_msg(rb.kv_mut(), applied, &msg);
                for (k, e) in resp.repairs {
                    installed += usize::from(rb.kv_mut().install(k, e));
                }
                resp.reply
            };
            let Some(reply) = reply else { break };
            let ra = self.nodes[a].replica.as_mut().expect("live");
            let applied = ra.applied_index();
            let next = session.on_msg(ra.kv_mut(), applied, reply);
            for (k, e) in session.take_repairs() {
                installed += usize::from(ra.kv_mut().install(k, e));
            }
            match next {
                Some(m) => msg = m,
                None => break,
            }
        }
        let o = session.outcome();
        self.anti_entropy.entries_exchanged += o.entries_sent + o.entries_received;
        self.anti_entropy.installed += installed as u64;
        if installed > 0 {
            self.log(|| format!("anti-entropy r{a} ↔ r{b}: {installed} entries installed"));
        }
    }
}
