//! The clock-rate check in the lease modes ([`crate::protocol::clock_check`]): probes go
//! out every eighth of a window, echoes are measured, and while any peer's clock is
//! beyond the bound this replica serves no lease read, grants no lease and drops the one
//! it holds; a holder counts grants only from peers measured within the bound. Reads
//! then take the paths that need no clock (the log, or a forward to the leader).

use super::Replica;
use crate::protocol::clock_check::Verdict;
use crate::protocol::message::Message;
use crate::protocol::types::{Nanos, ReplicaId};

/// What the clock-rate check knows, for INFO and the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockReport {
    /// Lease reads may be served (no peer's clock is beyond the bound).
    pub trusted: bool,
    /// Peers measured within the bound (bit per replica id).
    pub within_mask: u8,
    /// Peers measured beyond the bound.
    pub beyond_mask: u8,
    /// The largest rate difference measured to a peer (ppm; positive: the peer runs
    /// faster than this replica).
    pub drift_ppm_max: Option<i64>,
}

impl Replica {
    /// Whether clocks are trusted for leases now: no peer is measured beyond the bound.
    pub fn clocks_ok(&self) -> bool {
        self.bugs.trust_clocks || self.clocks.beyond_mask() == 0
    }

    /// Whether a lease grant from `from` counts: ours, or from a peer whose clock rate
    /// was measured within the bound.
    pub(super) fn grant_counts(&self, from: ReplicaId) -> bool {
        self.bugs.trust_clocks || from == self.id || self.clocks.verdict(from) == Verdict::Within
    }

    /// Whether a lease request from `from` may be granted, as far as clocks go.
    pub(super) fn may_grant_to(&self, from: ReplicaId) -> bool {
        self.clocks_ok() && (from == self.id || self.clocks.verdict(from) != Verdict::Beyond)
            || self.bugs.trust_clocks
    }

    /// Every tick in a lease mode: forget silent peers, probe when due.
    pub(super) fn clocks_tick(&mut self, now: Nanos) {
        if self.cfg.read_mode.leases().is_none() || self.cfg.replicas == 1 {
            return;
        }
        let was_ok = self.clocks_ok();
        self.clocks.tick(now);
        self.after_clock_change(was_ok);
        if self.clocks.probe_due(now) {
            self.broadcast(&Message::ClockProbe { sent: now });
        }
    }

    /// An echo of our probe: measure, and stop lease reads if a clock went beyond.
    pub(super) fn on_clock_echo(&mut self, now: Nanos, from: ReplicaId, sent: Nanos, at: Nanos) {
        if from == self.id || from.index() >= self.cfg.replicas {
            self.stats.messages_ignored += 1;
            return;
        }
        let was_ok = self.clocks_ok();
        let was_beyond = self.clocks.verdict(from) == Verdict::Beyond;
        self.clocks.on_echo(now, from, sent, at);
        if !was_beyond && self.clocks.verdict(from) == Verdict::Beyond {
            self.stats.clock_checks_failed += 1;
        }
        self.after_clock_change(was_ok);
    }

    fn after_clock_change(&mut self, was_ok: bool) {
        if was_ok && !self.clocks_ok() {
            // Whatever we hold was counted on clocks we no longer trust.
            self.reads.holder.drop_lease();
        }
    }

    /// What the clock-rate check knows now.
    pub fn clock_report(&self) -> ClockReport {
        ClockReport {
            trusted: self.clocks_ok(),
            within_mask: self.clocks.within_mask(),
            beyond_mask: self.clocks.beyond_mask(),
            drift_ppm_max: self.clocks.drift_ppm_max(),
        }
    }
}
