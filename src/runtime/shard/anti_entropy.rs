//! The shard's side of anti-entropy: rounds against every other replica (on demand and
//! every `anti_entropy_interval_ms`), answering other replicas' sessions, and making what
//! a repair installed durable. The sessions themselves are sans-IO
//! (`protocol::merkle::anti_entropy`); see docs/ARCHITECTURE.md, "Repairs are durable".

use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;

use super::{PeerMsg, Shard};
use crate::protocol::merkle::MerkleMsg;
use crate::protocol::{Core, ReplicaId};

/// How long an anti-entropy request waits for its answer. A responder that installs
/// pushed entries answers only once they are in a snapshot (a full snapshot of its shard),
/// so this is generous; a peer whose link is down fails at once instead.
const MERKLE_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a repair waiting for a running snapshot checks whether it has finished.
const SNAPSHOT_POLL: Duration = Duration::from_millis(2);

impl Shard {
    /// The periodic anti-entropy task: a round against every other replica, then a pause
    /// of `anti_entropy_interval_ms`, forever. Rounds never overlap (the next one starts
    /// after the previous returned); a round that fails (peer down) is simply retried
    /// at the next interval.
    pub(super) async fn run_anti_entropy(self: Rc<Self>) {
        let interval = Duration::from_millis(self.cfg.anti_entropy_interval_ms);
        // Replicas of a group start their rounds a fraction of an interval apart, so they
        // do not all compare the same trees at the same moment.
        let replicas = self.cfg.peers.len().max(1) as u32;
        let stagger = interval * u32::from(self.cfg.id) / replicas;
        glommio::timer::sleep(interval + stagger).await;
        loop {
            let round = self.repair_round().await;
            let failing = round.failures > 0;
            if round.installed > 0 || failing != self.anti_entropy_failing.get() {
                eprintln!(
                    "shard {}: periodic anti-entropy{}:\n{}",
                    self.index,
                    if failing { " failed" } else { "" },
                    round.report
                );
            }
            self.anti_entropy_failing.set(failing);
            glommio::timer::sleep(interval).await;
        }
    }

    /// Notes that anti-entropy installed `n` entries here; returns the mark a snapshot
    /// must reach to hold them (see [`Shard::persist_repairs`]).
    fn note_repairs(&self, n: u64) -> u64 {
        self.counters.borrow_mut().anti_entropy_keys_repaired += n;
        if n > 0 {
            self.repairs_installed.set(self.repairs_installed.get() + 1);
        }
        self.repairs_installed.get()
    }

    /// Makes repairs durable: returns once a snapshot taken after they were installed
    /// (mark `upto`) is on disk. Repairs change the state machine without a log record, so
    /// without this a crash would bring back the stale copy they replaced (and the WAL
    /// before the last snapshot is gone, so replay cannot help). A snapshot already
    /// running may predate them: wait for it, then write one.
    async fn persist_repairs(self: &Rc<Self>, upto: u64) -> Result<u64, String> {
        loop {
            if let Some(why) = self.storage_error.borrow().as_ref() {
                return Err(format!("storage failed: {why}"));
            }
            if self.repairs_durable.get() >= upto {
                return Ok(self.outbox.borrow().snapshots.at());
            }
            if self.snapshot_running.get() {
                glommio::timer::sleep(SNAPSHOT_POLL).await;
                continue;
            }
            self.clone().write_snapshot().await?;
            self.counters.borrow_mut().anti_entropy_snapshots += 1;
        }
    }

    /// Answers another replica's anti-entropy request; installs what it pushed.
    pub(super) fn on_merkle(self: &Rc<Self>, from: ReplicaId, id: u64, msg: MerkleMsg) {
        // Entries the initiator pushed are installed only while storage works:
        // otherwise they could never be made durable.
        let storage_ok = self.storage_error.borrow().is_none();
        let (reply, installed) = {
            let mut r = self.replica.borrow_mut();
            let applied = r.applied_index();
            let resp = self
                .responder
                .borrow_mut()
                .on_msg(r.kv_mut(), applied, &msg);
            let mut installed = 0;
            for (k, e) in resp.repairs {
                if storage_ok && r.kv_mut().install(k, e) {
                    installed += 1;
                }
            }
            (resp.reply, installed)
        };
        if installed == 0 {
            self.send_peer(from, &PeerMsg::MerkleReply { id, msg: reply });
            return;
        }
        // The answer waits until the repairs are durable, so the initiator's round
        // ends with both sides' repairs on disk.
        let upto = self.note_repairs(installed);
        let s = self.clone();
        glommio::spawn_local(async move {
            let msg = match s.persist_repairs(upto).await {
                Ok(_) => {
                    s.counters.borrow_mut().anti_entropy_keys_persisted += installed;
                    reply
                }
                Err(e) => {
                    eprintln!(
                        "shard {}: repairs pushed by replica {} are not durable: {e}",
                        s.index, from.0
                    );
                    s.counters.borrow_mut().anti_entropy_failures += 1;
                    None // The initiator counts the session as failed.
                }
            };
            s.send_peer(from, &PeerMsg::MerkleReply { id, msg });
        })
        .detach();
    }

    /// Runs anti-entropy against every other replica of this shard's group, one after the
    /// other, and says what was compared and repaired. Whatever it installed here is in a
    /// snapshot on disk before it returns (and a peer answers only once what it installed
    /// is on its disk). Waits for a round already running (periodic or on demand).
    pub async fn repair(self: &Rc<Self>) -> String {
        self.repair_round().await.report
    }

    /// Whether our link to `peer` is up: sends to a peer that is down are dropped, so a
    /// session with it would only wait for its timeout.
    fn peer_connected(&self, peer: usize) -> bool {
        self.transport
            .borrow()
            .as_ref()
            .is_some_and(|t| t.stats().peers.get(peer).is_some_and(|p| p.connected))
    }

    async fn repair_round(self: &Rc<Self>) -> RepairRound {
        use crate::protocol::merkle::{AntiEntropy, SessionLimits};
        let Ok(_one_at_a_time) = self.repair_lock.acquire_permit(1).await else {
            return RepairRound::failed(format!("shard {}: repair lock closed", self.index));
        };
        if let Some(why) = self.storage_error.borrow().clone() {
            self.counters.borrow_mut().anti_entropy_failures += 1;
            return RepairRound::failed(format!(
                "shard {}: FAILED: storage failed, repairs could not be made durable: {why}",
                self.index
            ));
        }
        let mut report = Vec::new();
        let mut installed = 0u64;
        let mut failures = 0u64;
        for peer in 0..self.cfg.peers.len() {
            if peer == usize::from(self.cfg.id) {
                continue;
            }
            let (mut session, mut msg) = {
                let mut r = self.replica.borrow_mut();
                AntiEntropy::start(r.kv_mut(), SessionLimits::default())
            };
            let mut failure = None;
            // Counted here: `take_repairs` empties the session outcome's list.
            let mut installed_here = 0u64;
            loop {
                if !self.peer_connected(peer) {
                    failure = Some("peer not connected".to_string());
                    break;
                }
                let id = self.merkle_id();
                let (tx, rx) = oneshot::channel();
                self.merkle_waiters.borrow_mut().insert(id, tx);
                self.send_peer(ReplicaId(peer as u8), &PeerMsg::Merkle { id, msg });
                let answer = futures_lite::future::or(async { rx.await.ok() }, async {
                    glommio::timer::sleep(MERKLE_REPLY_TIMEOUT).await;
                    None
                })
                .await;
                self.merkle_waiters.borrow_mut().remove(&id);
                let reply = match answer {
                    Some(Some(reply)) => reply,
                    Some(None) => {
                        failure = Some("the peer refused or could not persist".to_string());
                        break;
                    }
                    None => {
                        failure = Some(format!("no answer within {MERKLE_REPLY_TIMEOUT:?}"));
                        break;
                    }
                };
                let next = {
                    let mut r = self.replica.borrow_mut();
                    let applied = r.applied_index();
                    let next = session.on_msg(r.kv_mut(), applied, reply);
                    for (k, e) in session.take_repairs() {
                        if r.kv_mut().install(k, e) {
                            installed_here += 1;
                        }
                    }
                    next
                };
                match next {
                    Some(m) => msg = m,
                    None => break,
                }
            }
            installed += installed_here;
            if failure.is_some() {
                failures += 1;
            }
            let o = session.outcome();
            report.push(format!(
                "shard {} with replica {peer}: {}compared {} nodes, {} differing leaves, {} entries sent, {} received, {} repaired here, {} round trips, {} bytes",
                self.index,
                failure.map_or(String::new(), |f| format!("FAILED ({f}) after ")),
                o.compared_nodes,
                o.differing_leaves,
                o.entries_sent,
                o.entries_received,
                installed_here,
                o.round_trips,
                o.bytes_total(),
            ));
        }
        if installed > 0 {
            let upto = self.note_repairs(installed);
            match self.persist_repairs(upto).await {
                Ok(at) => {
                    self.counters.borrow_mut().anti_entropy_keys_persisted += installed;
                    report.push(format!(
                        "shard {}: {installed} repaired entries durable (snapshot at slot {at})",
                        self.index
                    ));
                }
                Err(e) => {
                    failures += 1;
                    report.push(format!(
                        "shard {}: FAILED to make {installed} repaired entries durable: {e}",
                        self.index
                    ));
                }
            }
        }
        {
            let mut c = self.counters.borrow_mut();
            c.anti_entropy_rounds += 1;
            c.anti_entropy_failures += failures;
        }
        RepairRound {
            report: report.join("\n"),
            installed,
            failures,
        }
    }
}

/// What one anti-entropy round did.
struct RepairRound {
    /// One line per peer, and one about durability.
    report: String,
    /// Entries installed here.
    installed: u64,
    /// Failed sessions, plus one if the repairs could not be made durable.
    failures: u64,
}

impl RepairRound {
    fn failed(report: String) -> RepairRound {
        RepairRound {
            report,
            installed: 0,
            failures: 1,
        }
    }
}
