//! What the core asks its driver to do: the only way it affects the world.

use super::consensus::Core;
use super::kv::Reply;
use super::message::{Message, Record};
use super::types::{Nanos, PersistId, ReplicaId, Slot, Token};

/// One thing for the driver (runtime or simulator) to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a message to a peer.
    Send {
        /// The peer.
        to: ReplicaId,
        /// The message.
        msg: Message,
    },
    /// Append a record to the log. Once records up to `id` are durable, the driver calls
    /// `Replica::on_persisted(id)`; messages that depend on them are held until then.
    Persist {
        /// Consecutive from 1.
        id: PersistId,
        /// What to write.
        record: Record,
        /// When its sync starts.
        sync: SyncStart,
    },
    /// In `after` ns, ask the core whether its lazy records are wanted durable now
    /// ([`Consensus::lazy_sync_due`](super::consensus::Consensus::lazy_sync_due)); if
    /// so, sync them.
    CheckLazySync {
        /// How long to wait (ns).
        after: Nanos,
    },
    /// The state machine jumped ahead (a snapshot was installed): save a snapshot now, so
    /// recovery does not need the log this replica never had.
    SaveSnapshot,
    /// Answer a client request.
    Reply {
        /// The token that came with the request.
        token: Token,
        /// The answer.
        reply: ClientReply,
    },
}

/// When the sync that makes a persisted record durable starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncStart {
    /// At once: a sync of its own.
    Now,
    /// A sync of its own, started once the step's messages are on their way. For a
    /// leader's own record of a lone slot (Raft: entry) whose vote no follower waits for:
    /// it is chosen by that vote and a follower's, which comes later, so the accepts go
    /// first; the leader's write would otherwise hold them back by its submission (on
    /// this machine's virtio disk, an exit to the hypervisor: 20–25 µs).
    AfterSends,
    /// Lazily: no sync of its own. It becomes durable with the next sync a record that is
    /// not lazy, a [`Action::CheckLazySync`] or the driver's next tick starts.
    Lazy,
}

/// The core's answer to a client request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClientReply {
    /// The command was chosen and applied.
    Done(Reply),
    /// This replica does not lead the group; `leader` is its best guess. The request may
    /// still take effect if it was proposed before; a retry with the same session and
    /// sequence number takes effect at most once.
    NotLeader {
        /// Who leads, if known.
        leader: Option<ReplicaId>,
    },
    /// The leader's proposal queue is full; retry later.
    Busy,
    /// A forwarded read is queued for the log, and the replica that forwarded it answers
    /// it itself when it applies it ([`ANSWERED_THERE`](super::waiting::ANSWERED_THERE)):
    /// nothing goes back.
    Logged,
    /// The command is larger than any replica can log; it was not proposed.
    TooLarge {
        /// Its size (an upper bound of its encoding).
        bytes: usize,
        /// [`crate::limits::COMMAND_BYTES_MAX`].
        bytes_max: usize,
    },
}

/// How a driver carries out the core's actions (runtime: transport, WAL, waiters;
/// simulator: simulated network, disk and clients; tests: plain lists).
pub trait Effects {
    /// Sends `msg` to peer `to`.
    fn send(&mut self, to: ReplicaId, msg: Message);
    /// Hands `record` to storage; the driver reports it durable with
    /// `Replica::on_persisted(id)` later, its sync started as `sync` says (a lazy one
    /// starts none: the next sync started for any other reason covers it).
    fn persist(&mut self, id: PersistId, record: Record, sync: SyncStart);
    /// In `after` ns: if the core's `lazy_sync_due` says so, syncs the lazy records.
    fn check_lazy_sync(&mut self, after: Nanos);
    /// Answers the client request that came with `token`.
    fn reply(&mut self, token: Token, reply: ClientReply);
    /// Saves a snapshot of the replica's state. Called at most once per step, after every
    /// other effect of the step: the state it saves then includes everything the step's
    /// records say, so the snapshot covers all records handed to storage so far.
    fn save_snapshot(&mut self);
}

/// Carries out one step's actions in the core's order (sends, persists and replies
/// interleave as the core issued them), then asks for a snapshot once if `snapshot`
/// or any `SaveSnapshot` action asked for one.
pub fn dispatch(actions: impl IntoIterator<Item = Action>, snapshot: bool, fx: &mut impl Effects) {
    let mut snapshot = snapshot;
    for action in actions {
        match action {
            Action::Send { to, msg } => fx.send(to, msg),
            Action::Persist { id, record, sync } => fx.persist(id, record, sync),
            Action::CheckLazySync { after } => fx.check_lazy_sync(after),
            Action::Reply { token, reply } => fx.reply(token, reply),
            Action::SaveSnapshot => snapshot = true,
        }
    }
    if snapshot {
        fx.save_snapshot();
    }
}

/// When a replica's state is saved as a snapshot, and how much log it keeps after: the
/// rule the node and the simulator share. A snapshot is due every `every_slots` applied
/// slots (0: only when the core asks), or when the core asked (`SaveSnapshot`: it jumped
/// ahead by installing one) — but never while the replica recovers lost records, as it
/// would cover them and hide the loss from the next start (the one that ends recovery is
/// asked for by the core).
#[derive(Clone, Debug)]
pub struct SnapshotSchedule {
    every_slots: u64,
    retain_slots: u64,
    /// Applied index of the last snapshot taken.
    at: Slot,
    /// The core asked for one that was not taken yet.
    wanted: bool,
    /// Slots by which the next snapshot comes early: this replica's share of the interval
    /// until its first snapshot ([`SnapshotSchedule::staggered`]), then 0.
    early: u64,
}

/// How much of a snapshot interval replica `id` of `replicas` takes its first snapshot
/// early: `id / replicas` of it. Replicas apply the same log, so without it they would all
/// snapshot at the same slot. On one machine their freezes, encodings and file writes then
/// land at once, and a write's quorum waits for the slowest of them; staggered, at most
/// one replica snapshots at a time and each interval after the first keeps them apart.
/// Measured with the main job, 5 pairs alternated (results/snapshot-stagger-20261206/).
pub fn stagger(interval: u64, id: ReplicaId, replicas: usize) -> u64 {
    interval / replicas.max(1) as u64 * id.index() as u64
}

impl SnapshotSchedule {
    /// A schedule for a replica whose last snapshot covers slots up to `at`.
    pub fn new(every_slots: u64, retain_slots: u64, at: Slot) -> SnapshotSchedule {
        SnapshotSchedule {
            every_slots,
            retain_slots,
            at,
            wanted: false,
            early: 0,
        }
    }

    /// This schedule with its first snapshot [`stagger`]ed for replica `id` of `replicas`.
    pub fn staggered(mut self, id: ReplicaId, replicas: usize) -> SnapshotSchedule {
        self.early = stagger(self.every_slots, id, replicas);
        self
    }

    /// Applied index of the last snapshot taken.
    pub fn at(&self) -> Slot {
        self.at
    }

    /// Whether `replica` should be snapshotted now.
    pub fn due(&self, replica: &impl Core) -> bool {
        if replica.recovering() {
            return false;
        }
        self.wanted || self.slots_due(replica.applied_index())
    }

    /// Whether `applied` is an interval (less what comes early) past the last snapshot.
    fn slots_due(&self, applied: Slot) -> bool {
        self.every_slots > 0 && applied + self.early >= self.at + self.every_slots
    }

    /// Freezes the replica's state to be saved (the caller writes it, then calls
    /// [`SnapshotSchedule::compact`]).
    pub fn take<C: Core>(&mut self, replica: &C) -> C::Snapshot {
        self.taken::<C>(replica.snapshot())
    }

    /// [`SnapshotSchedule::take`] with the state machine's items still to be shared: the
    /// caller calls `Consensus::snapshot_step` until it is done (the replica may step
    /// meanwhile), then `Consensus::snapshot_end`, then writes it.
    pub fn take_begin<C: Core>(&mut self, replica: &mut C) -> C::Snapshot {
        self.taken::<C>(replica.snapshot_begin())
    }

    fn taken<C: Core>(&mut self, snap: C::Snapshot) -> C::Snapshot {
        self.at = C::snapshot_slot(&snap);
        self.wanted = false;
        self.early = 0;
        snap
    }

    /// Once the snapshot at `at` is saved (and the records it covers dropped): drops the
    /// in-memory log before it, keeping the last `retain_slots` for lagging peers.
    pub fn compact(&self, replica: &mut impl Core, at: Slot) {
        replica.compact(at.saturating_sub(self.retain_slots));
    }
}

/// A driver's side of one replica's outbox: the action buffer it reuses from step to step
/// (no allocation per step) and the snapshot schedule.
#[derive(Debug)]
pub struct Outbox {
    spare: Vec<Action>,
    /// When snapshots are due.
    pub snapshots: SnapshotSchedule,
}

/// What one step asked for, taken from the replica (see [`Outbox::take`]).
#[derive(Debug)]
pub struct Step {
    actions: Vec<Action>,
    snapshot: bool,
}

impl Outbox {
    /// An outbox with `snapshots` as its schedule.
    pub fn new(snapshots: SnapshotSchedule) -> Outbox {
        Outbox {
            spare: Vec::new(),
            snapshots,
        }
    }

    /// Takes the actions of the step `replica` just ran, and whether a snapshot is due
    /// after them. Carry them out with [`Outbox::dispatch`] once the replica is no longer
    /// borrowed (effects may need the driver whole).
    pub fn take(&mut self, replica: &mut impl Core) -> Step {
        let mut actions = std::mem::take(&mut self.spare);
        replica.drain_into(&mut actions);
        if actions.iter().any(|a| matches!(a, Action::SaveSnapshot)) {
            self.snapshots.wanted = true;
        }
        Step {
            actions,
            snapshot: self.snapshots.due(replica),
        }
    }

    /// Takes back the buffer [`Step::dispatch`] emptied, for the next step.
    pub fn recycle(&mut self, spare: Vec<Action>) {
        self.spare = spare;
    }
}

impl Step {
    /// Carries out the step's actions (see [`dispatch`]) and returns the emptied buffer
    /// for [`Outbox::recycle`]. `SaveSnapshot` actions were handed to the schedule by
    /// [`Outbox::take`]: a snapshot is saved if it is due.
    #[must_use = "hand the buffer back with Outbox::recycle"]
    pub fn dispatch(mut self, fx: &mut impl Effects) -> Vec<Action> {
        let actions = self
            .actions
            .drain(..)
            .filter(|a| !matches!(a, Action::SaveSnapshot));
        dispatch(actions, self.snapshot, fx);
        self.actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_take_their_first_snapshot_apart_and_stay_apart() {
        assert_eq!(stagger(900, ReplicaId(0), 3), 0);
        assert_eq!(stagger(900, ReplicaId(1), 3), 300);
        assert_eq!(stagger(900, ReplicaId(2), 3), 600);
        assert_eq!(stagger(900, ReplicaId(1), 0), 900, "no division by zero");
        let firsts: Vec<Slot> = (0..3)
            .map(|i| {
                let s = SnapshotSchedule::new(900, 10, 0).staggered(ReplicaId(i), 3);
                (1..).find(|a| s.slots_due(*a)).expect("due at some slot")
            })
            .collect();
        assert_eq!(firsts, [900, 600, 300]);
        // After the first (taken at its slot), every interval: they stay 300 apart.
        let mut s = SnapshotSchedule::new(900, 10, 0).staggered(ReplicaId(2), 3);
        s.at = 300;
        s.early = 0;
        assert!(!s.slots_due(1199) && s.slots_due(1200));
        // Unstaggered (the simulator's schedule), and with no interval, as before.
        let plain = SnapshotSchedule::new(900, 10, 0);
        assert!(!plain.slots_due(899) && plain.slots_due(900));
        let never = SnapshotSchedule::new(0, 10, 0).staggered(ReplicaId(2), 3);
        assert!(!never.slots_due(u64::MAX / 2));
    }
}
