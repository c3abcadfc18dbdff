//! The fault "a replica stops for a while": SIGSTOP then SIGCONT, or a long GC pause.
//!
//! In the seeds that have it (`SimConfig::pause_seeds_percent`; its own random stream),
//! a fault event now and then pauses a replica (the leader most of the time) for 20–400
//! ms. Meanwhile it takes no step: no tick, no storage completion, no client request
//! (those wait for it), and the messages peers send it are lost (its socket buffers fill
//! and the senders' bounded queues drop, as the transport does). Its clock runs on. It
//! resumes with the state it had, takes what waited within a millisecond, in some order,
//! and ticks again 2–8 ms later (as ticks come), so clients' requests reach a paused
//! leader before its timers tell it how long it slept: what a leader lease has to be safe
//! against.
//!
//! With `SimConfig::pause_leader_reads_wait` (`--pause-leader-reads-wait`, hidden) every
//! pause takes the leader (none while there is none), and while it is paused every client
//! sends its new reads to it: clients that cached the leader's address, as a process
//! stopped by SIGSTOP or a long GC pause leaves them. Reads invoked after a new leader's
//! writes then wait for the old one and reach it on resuming, before its first tick and
//! before the new leader's messages depose it: served from a lease that should have held
//! every vote back, they are stale (`--bug vote-inside-lease` is caught this way).

use super::*;

impl Sim {
    /// At a fault event, in the seeds that have the fault: sometimes pauses a replica.
    pub(super) fn maybe_pause(&mut self, leader: Option<ReplicaId>) {
        let Some(rng) = self.pause_rng.as_mut() else {
            return;
        };
        if !rng.random_bool(0.2) {
            return;
        }
        let victim = match leader {
            Some(l) if self.cfg.pause_leader_reads_wait => l,
            Some(l) if rng.random_bool(0.7) => l,
            _ if self.cfg.pause_leader_reads_wait => return,
            _ => ReplicaId(rng.random_range(0..self.nodes.len()) as u8),
        };
        let length = rng.random_range(20 * MS..400 * MS);
        let until = self.now + length;
        // A paused peer loses a restored replica's queries: its check must hear every
        // peer (`restore.rs`), as no crash comes while it checks.
        if self.restored_checking() {
            return;
        }
        let n = &mut self.nodes[victim.index()];
        if n.replica.is_none() || n.paused_until.is_some_and(|t| t > self.now) {
            return;
        }
        n.paused_until = Some(until);
        self.pauses += 1;
        self.log(|| format!("pause {victim} for {:.3}ms", length as f64 / MS as f64));
    }

    /// With `pause_leader_reads_wait`: the paused replica a new read goes to, if one is
    /// paused now (the one that led when it stopped; clients still take it for leader).
    pub(super) fn paused_leader_for_reads(&self) -> Option<ReplicaId> {
        if !self.cfg.pause_leader_reads_wait {
            return None;
        }
        (0..self.nodes.len())
            .map(|i| ReplicaId(i as u8))
            .find(|node| self.paused(*node).is_some())
    }

    /// When `node` resumes, if it is paused now.
    pub(super) fn paused(&self, node: ReplicaId) -> Option<Nanos> {
        self.nodes[node.index()]
            .paused_until
            .filter(|t| *t > self.now)
    }

    /// Runs `event` once the paused replica resumes at `until`, within a millisecond
    /// after, so what waited for it comes in some order.
    pub(super) fn defer_until_resumed(&mut self, until: Nanos, event: Event) {
        let after = until - self.now + self.rng.random_range(0..MS);
        self.schedule(after, event);
    }

    /// Whether `event` must wait for (or, a message, is lost to) a paused replica; if so
    /// it is taken care of here.
    pub(super) fn held_by_pause(&mut self, event: Event) -> Option<Event> {
        let node = match &event {
            Event::Tick(node)
            | Event::SyncDone { node, .. }
            | Event::LazySyncCheck { node, .. }
            | Event::ClientRequestArrives { node, .. }
            | Event::BlockingRequestArrives { node, .. }
            | Event::BlockingDeadline { node, .. }
            | Event::ClientPathWake { node, .. } => *node,
            Event::Deliver { to, .. } => *to,
            _ => return Some(event),
        };
        let Some(until) = self.paused(node) else {
            return Some(event);
        };
        match event {
            Event::Deliver { .. } => {}
            // Its next tick comes as ticks do (2–8 ms apart), after what waited.
            Event::Tick(_) => {
                let after = until - self.now + self.rng.random_range(2 * MS..8 * MS);
                self.schedule(after, event);
            }
            event => self.defer_until_resumed(until, event),
        }
        None
    }
}
