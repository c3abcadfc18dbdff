//! Leases: time-bounded promises between replicas, and the clock arithmetic that keeps them
//! safe when clocks run at different rates.
//!
//! Every duration here is measured on one replica's own clock; no two clocks are compared.
//! A clock's rate may differ from real time by at most `drift_ppm` parts per million, so a
//! duration `d` on one clock is at least `d(1-ρ)/(1+ρ)` and at most `d(1+ρ)/(1-ρ)` on
//! another. The two helpers round those bounds the safe way: [`surely_within`] for whoever
//! relies on a lease (the holder stops early), [`surely_past`] for whoever waits for one to
//! end (the waiter waits longer). For ρ ≤ 10 %, `(1-ρ)/(1+ρ) ≥ 1-2ρ` and
//! `(1+ρ)/(1-ρ) ≤ 1+3ρ`.
//!
//! Two kinds of lease use this:
//! - A [`Holder`] asks every replica for a lease and holds it while a majority of grants,
//!   counted from when it *sent* the request, is surely unexpired on its own clock.
//! - A grantor remembers what it granted ([`Grants`]) until the grant has run out on its
//!   own clock; it started counting when it *received* the request, which is later.

use super::types::{Nanos, Slot};
use crate::config::REPLICAS_MAX;

const PPM: u128 = 1_000_000;

/// How long after sending a request a lease of `lease` (grantor's clock) is surely still
/// valid, measured on the holder's clock.
pub fn surely_within(lease: Nanos, drift_ppm: u64) -> Nanos {
    let cut = u128::from(lease) * 2 * u128::from(drift_ppm) / PPM;
    lease.saturating_sub(cut as Nanos)
}

/// How long a waiter must wait, on its own clock, for `left` of another replica's clock to
/// surely have passed.
pub fn surely_past(left: Nanos, drift_ppm: u64) -> Nanos {
    let extra = u128::from(left) * 3 * u128::from(drift_ppm) / PPM;
    left.saturating_add(extra.min(u128::from(Nanos::MAX)) as Nanos)
}

/// Lease requests a holder keeps open at once; an older one is forgotten (its grants may
/// still arrive and are then ignored, which is safe).
pub const LEASE_REQUESTS_MAX: usize = 16;

/// The holder side of a lease: requests sent, grants counted.
#[derive(Clone, Debug, Default)]
pub struct Holder {
    /// Open requests: (sequence number, when sent on our clock, who granted it).
    open: std::collections::VecDeque<(u64, Nanos, u8)>,
    next_seq: u64,
    /// The lease is surely valid before this time on our clock.
    valid_until: Nanos,
    /// The highest slot any grantor had accepted when it granted: a holder may answer only
    /// once it knows what every slot up to here holds.
    fence: Slot,
}

impl Holder {
    /// A new request, sent now; returns its sequence number.
    pub fn request(&mut self, now: Nanos) -> u64 {
        self.next_seq += 1;
        if self.open.len() == LEASE_REQUESTS_MAX {
            self.open.pop_front();
        }
        self.open.push_back((self.next_seq, now, 0));
        self.next_seq
    }

    /// A grant for request `seq` from the replica with bit `from_bit`, which had accepted
    /// slots up to `fence`. With a quorum of grants, the lease runs until the request's send
    /// time plus what is surely within the lease.
    pub fn on_grant(&mut self, seq: u64, from_bit: u8, fence: Slot, quorum: usize, within: Nanos) {
        // Conservative: a grant's fence counts even if its request never reaches a quorum.
        self.fence = self.fence.max(fence);
        let Some(req) = self.open.iter_mut().find(|(s, _, _)| *s == seq) else {
            return;
        };
        req.2 |= from_bit;
        if req.2.count_ones() as usize >= quorum {
            self.valid_until = self.valid_until.max(req.1 + within);
            // Older requests can only give shorter leases.
            while self.open.front().is_some_and(|(s, _, _)| *s <= seq) {
                self.open.pop_front();
            }
        }
    }

    /// Whether the lease is surely valid at `now`.
    pub fn valid(&self, now: Nanos) -> bool {
        now < self.valid_until
    }

    /// The slot up to which the holder must know every value before answering.
    pub fn fence(&self) -> Slot {
        self.fence
    }

    /// Gives the lease up (leadership lost, or restart): nothing is served under it again.
    pub fn drop_lease(&mut self) {
        self.valid_until = 0;
        self.open.clear();
    }
}

/// The grantor side: until when, on our clock, each replica may hold a lease we granted.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    until: [Nanos; REPLICAS_MAX],
    /// Before this time we may have granted anything to anyone and forgotten it (we
    /// restarted): treat every replica as a holder.
    amnesia_until: Nanos,
}

impl Grants {
    /// Grants `holder` a lease of `lease` from `now`.
    pub fn grant(&mut self, holder: usize, now: Nanos, lease: Nanos) {
        self.until[holder] = self.until[holder].max(now + lease);
    }

    /// After a restart: any grant made before it may still run until `until`.
    pub fn forget_all_until(&mut self, until: Nanos) {
        self.amnesia_until = self.amnesia_until.max(until);
    }

    /// Replicas among `mask` whose grant from us may still be running at `now`, and the
    /// longest time left of those grants on our clock.
    pub fn active(&self, now: Nanos, mask: u8) -> (u8, Nanos) {
        let mut holders = 0u8;
        let mut left = 0;
        for (i, until) in self.until.iter().enumerate() {
            let until = (*until).max(self.amnesia_until);
            if mask & (1 << i) != 0 && until > now {
                holders |= 1 << i;
                left = left.max(until - now);
            }
        }
        (holders, left)
    }

    /// The replica other than `except` with a grant still running at `now`, if any, and
    /// when its grant runs out.
    pub fn other_than(&self, except: usize, now: Nanos, replicas: usize) -> Option<Nanos> {
        (0..replicas)
            .filter(|i| *i != except)
            .map(|i| self.until[i].max(self.amnesia_until))
            .filter(|u| *u > now)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_bounds_are_on_the_safe_side() {
        // 1% drift: a holder gives up 2% early, a waiter waits 3% longer.
        assert_eq!(surely_within(1_000_000, 10_000), 980_000);
        assert_eq!(surely_past(1_000_000, 10_000), 1_030_000);
        assert_eq!(surely_within(1_000, 0), 1_000);
        // The bounds hold against the exact ratios at the largest allowed drift.
        let rho = 0.1f64;
        let lease = 1_000_000_000u64;
        let within = surely_within(lease, 100_000) as f64;
        assert!(within <= lease as f64 * (1.0 - rho) / (1.0 + rho));
        let past = surely_past(lease, 100_000) as f64;
        assert!(past >= lease as f64 * (1.0 + rho) / (1.0 - rho));
    }

    #[test]
    fn a_lease_needs_a_quorum_and_runs_from_the_request() {
        let mut h = Holder::default();
        let seq = h.request(100);
        h.on_grant(seq, 0b001, 5, 2, 1_000);
        assert!(!h.valid(150), "one grant of three is not a quorum");
        h.on_grant(seq, 0b001, 5, 2, 1_000);
        assert!(!h.valid(150), "the same grantor twice is still one");
        h.on_grant(seq, 0b100, 7, 2, 1_000);
        assert!(h.valid(150));
        assert!(h.valid(1_099));
        assert!(
            !h.valid(1_100),
            "the lease counts from when the request was sent"
        );
        assert_eq!(h.fence(), 7);
        h.on_grant(99, 0b010, 9, 2, 1_000);
        assert_eq!(
            h.fence(),
            9,
            "a grant's fence counts even for an unknown request"
        );
        h.drop_lease();
        assert!(!h.valid(150));
    }

    #[test]
    fn grants_expire_and_amnesia_covers_everyone() {
        let mut g = Grants::default();
        g.grant(1, 100, 50);
        assert_eq!(g.active(120, 0b111), (0b010, 30));
        assert_eq!(g.active(150, 0b111), (0, 0));
        assert_eq!(g.active(120, 0b101), (0, 0), "only the holders asked about");
        assert_eq!(g.other_than(1, 120, 3), None);
        assert_eq!(g.other_than(0, 120, 3), Some(150));
        g.forget_all_until(500);
        assert_eq!(g.active(200, 0b111), (0b111, 300));
        assert_eq!(g.other_than(0, 200, 3), Some(500));
    }
}
