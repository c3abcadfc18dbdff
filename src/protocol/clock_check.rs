//! Clock-rate check: leases trust that every clock runs within `max_clock_drift_ppm` of
//! real time ([`crate::protocol::lease`]); this watches that assumption instead of
//! trusting it.
//!
//! A replica probes each peer every `window / 8` with its own time; the peer echoes it with
//! its time. The peer's time `at` was read somewhere between our send and our receipt, so
//! two echoes `a` and `b` bound the peer's elapsed time against ours: the ratio of rates
//! lies in `[(b.at - a.at) / (b.recv - a.sent), (b.at - a.at) / (b.sent - a.recv)]`. The
//! lease arithmetic is safe while the ratio between any holder's and grantor's clocks is
//! within `1 ± 2ρ` (see `lease::surely_within` and `lease::surely_past`), so that is the
//! bound checked here, pairwise:
//!
//! - **Beyond** as soon as the whole interval of some pair of echoes lies outside it (a
//!   proof, however short the span), or once an estimate over at least a window (the
//!   midpoints of both round trips) lies outside it.
//! - **Within** once an estimate over at least a window lies inside it, or, before the
//!   first window, once some pair of echoes proves the ratio inside it.
//! - **Unknown** before that, after the peer restarted (its clock went back) and when no
//!   echo came for two windows.
//!
//! A replica serves and grants lease reads only while no peer is beyond, and a holder
//! counts grants only from peers measured within (and its own). A clock whose rate is out
//! of bound from the start is caught before any lease is served with it; one whose rate
//! changes is caught within about a window of the change, not before.

use std::collections::VecDeque;

use super::types::{Nanos, ReplicaId};
use crate::config::REPLICAS_MAX;

const PPM: i128 = 1_000_000;

/// Echoes whose round trip took more than `window / RTT_FRACTION_MAX` are not used: an
/// estimate over a window is then off by at most this fraction (1.6 %; against a 1 s
/// window, round trips up to 15 ms count, and those of a LAN err by a few hundred ppm).
const RTT_FRACTION_MAX: Nanos = 64;

/// Echoes kept per peer (spaced an eighth of a window apart: a bit more than a window).
const SAMPLES_MAX: usize = 10;

/// What is known of one peer's clock rate against ours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    /// Not measured over a window yet.
    #[default]
    Unknown,
    /// Within the bound.
    Within,
    /// Beyond the bound: no lease reads while it lasts.
    Beyond,
}

/// One echo: our send time, the peer's time, our receipt time.
#[derive(Clone, Copy, Debug)]
struct Sample {
    sent: Nanos,
    at: Nanos,
    recv: Nanos,
}

#[derive(Clone, Debug, Default)]
struct Peer {
    samples: VecDeque<Sample>,
    verdict: Verdict,
    /// The last estimate over a window: how much faster the peer's clock runs than ours.
    drift_ppm: Option<i64>,
}

/// The clock-rate check of one replica against each peer.
#[derive(Clone, Debug)]
pub struct ClockCheck {
    /// Largest allowed rate difference between two clocks (ppm): twice the per-clock bound.
    bound_ppm: i128,
    window: Nanos,
    peers: [Peer; REPLICAS_MAX],
    last_probe: Option<Nanos>,
}

impl ClockCheck {
    /// A check for clocks each within `drift_ppm` of real time, estimated over `window`.
    pub fn new(drift_ppm: u64, window: Nanos) -> ClockCheck {
        assert!(window > 0);
        ClockCheck {
            bound_ppm: 2 * i128::from(drift_ppm),
            window,
            peers: Default::default(),
            last_probe: None,
        }
    }

    /// Whether probes are due at `now`; if so, the caller sends `ClockProbe { sent: now }`
    /// to every peer.
    pub fn probe_due(&mut self, now: Nanos) -> bool {
        let due = self
            .last_probe
            .is_none_or(|t| now >= t.saturating_add(self.window / 8) || now < t);
        if due {
            self.last_probe = Some(now);
        }
        due
    }

    /// An echo of our probe sent at `sent`, stamped `at` by `peer`, received at `now`.
    pub fn on_echo(&mut self, now: Nanos, peer: ReplicaId, sent: Nanos, at: Nanos) {
        let (window, bound) = (self.window, self.bound_ppm);
        let Some(p) = self.peers.get_mut(peer.index()) else {
            return;
        };
        // A long round trip says too little: its midpoint may be off by half of it.
        if sent > now || now - sent > window / RTT_FRACTION_MAX {
            return;
        }
        let s = Sample {
            sent,
            at,
            recv: now,
        };
        if let Some(last) = p.samples.back() {
            if sent < last.sent {
                return; // An older echo overtaken by a newer one.
            }
            if at < last.at {
                // The peer's clock went back: it restarted. Measure it afresh.
                *p = Peer::default();
            }
        }
        if p.samples.iter().any(|b| surely_beyond(b, &s, bound)) {
            p.verdict = Verdict::Beyond;
        } else if p.verdict == Verdict::Unknown
            && p.samples.iter().any(|b| surely_inside(b, &s, bound))
        {
            // Proven within before a whole window: short round trips make the proof quick.
            p.verdict = Verdict::Within;
        }
        if let Some(b) = p.samples.iter().find(|b| s.recv - b.recv >= window) {
            let drift = estimate_ppm(b, &s);
            p.drift_ppm = Some(drift as i64);
            p.verdict =
                if drift.abs() <= bound && !p.samples.iter().any(|b| surely_beyond(b, &s, bound)) {
                    Verdict::Within
                } else {
                    Verdict::Beyond
                };
        }
        let spaced = p
            .samples
            .back()
            .is_none_or(|l| s.recv - l.recv >= window / 8);
        if spaced {
            if p.samples.len() == SAMPLES_MAX {
                p.samples.pop_front();
            }
            p.samples.push_back(s);
        }
    }

    /// Forgets peers not heard from for two windows: what they say when back is measured
    /// afresh.
    pub fn tick(&mut self, now: Nanos) {
        for p in &mut self.peers {
            if p.samples
                .back()
                .is_some_and(|l| now.saturating_sub(l.recv) > 2 * self.window)
            {
                *p = Peer::default();
            }
        }
    }

    /// What is known of `peer`'s clock.
    pub fn verdict(&self, peer: ReplicaId) -> Verdict {
        self.peers
            .get(peer.index())
            .map_or(Verdict::Unknown, |p| p.verdict)
    }

    /// Peers whose clock is beyond the bound, as a bit mask.
    pub fn beyond_mask(&self) -> u8 {
        self.mask(Verdict::Beyond)
    }

    /// Peers whose clock is measured within the bound, as a bit mask.
    pub fn within_mask(&self) -> u8 {
        self.mask(Verdict::Within)
    }

    fn mask(&self, v: Verdict) -> u8 {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.verdict == v)
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// The largest rate difference measured to any peer (ppm, by absolute value, sign
    /// kept: positive when the peer's clock runs faster than ours).
    pub fn drift_ppm_max(&self) -> Option<i64> {
        self.peers
            .iter()
            .filter_map(|p| p.drift_ppm)
            .max_by_key(|d| d.unsigned_abs())
    }
}

/// The peer's elapsed time between `a` and `b` against ours, from the midpoints of both
/// round trips, as a difference in ppm.
fn estimate_ppm(a: &Sample, b: &Sample) -> i128 {
    let peer = i128::from(b.at) - i128::from(a.at);
    let ours =
        (i128::from(b.sent) + i128::from(b.recv) - i128::from(a.sent) - i128::from(a.recv)) / 2;
    if ours <= 0 {
        return 0;
    }
    peer * PPM / ours - PPM
}

/// Whether the rate ratio between `a` and `b` is inside `1 ± bound` for certain: its
/// whole interval is.
fn surely_inside(a: &Sample, b: &Sample, bound_ppm: i128) -> bool {
    let peer = i128::from(b.at) - i128::from(a.at);
    let ours_max = i128::from(b.recv) - i128::from(a.sent);
    let ours_min = i128::from(b.sent) - i128::from(a.recv);
    ours_min > 0
        && peer * PPM >= (PPM - bound_ppm) * ours_max
        && peer * PPM <= (PPM + bound_ppm) * ours_min
}

/// Whether the rate ratio between `a` and `b` is outside `1 ± bound` for certain: its
/// whole interval is.
fn surely_beyond(a: &Sample, b: &Sample, bound_ppm: i128) -> bool {
    let peer = i128::from(b.at) - i128::from(a.at);
    let ours_max = i128::from(b.recv) - i128::from(a.sent);
    let ours_min = i128::from(b.sent) - i128::from(a.recv);
    let fast = ours_max > 0 && peer * PPM > (PPM + bound_ppm) * ours_max;
    let slow = ours_min > 0 && peer * PPM < (PPM - bound_ppm) * ours_min;
    fast || slow
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    /// Echoes from a peer whose clock runs at `rate_ppm` against ours, one every 50 ms for
    /// `ms`, with a round trip of `rtt` (the peer reads its clock halfway).
    fn run(c: &mut ClockCheck, from: Nanos, ms: u64, rate_ppm: i64, rtt: Nanos) -> Nanos {
        run_offset(c, from, ms, rate_ppm, rtt, 7 * MS as i128)
    }

    /// The same, with the peer's clock reading `offset` more than ours at 0.
    fn run_offset(
        c: &mut ClockCheck,
        from: Nanos,
        ms: u64,
        rate_ppm: i64,
        rtt: Nanos,
        offset: i128,
    ) -> Nanos {
        let mut now = from;
        while now < from + ms * MS {
            let half = (now + rtt / 2) as i128;
            let at = (half + half * i128::from(rate_ppm) / PPM + offset) as Nanos;
            c.on_echo(now + rtt, ReplicaId(1), now, at);
            now += 50 * MS;
        }
        now
    }

    #[test]
    fn within_bound_is_trusted_after_a_window() {
        let mut c = ClockCheck::new(1_000, 1_000 * MS);
        let now = run(&mut c, 0, 500, 1_500, MS);
        assert_eq!(
            c.verdict(ReplicaId(1)),
            Verdict::Unknown,
            "less than a window"
        );
        run(&mut c, now, 1_000, 1_500, MS);
        assert_eq!(c.verdict(ReplicaId(1)), Verdict::Within);
        assert_eq!(c.within_mask(), 0b10);
        assert_eq!(c.beyond_mask(), 0);
        let d = c.drift_ppm_max().expect("measured");
        assert!((1_000..2_000).contains(&d), "{d}");
    }

    #[test]
    fn a_clock_ten_percent_slow_is_caught_within_a_fraction_of_a_window() {
        let mut c = ClockCheck::new(1_000, 1_000 * MS);
        run(&mut c, 0, 200, -100_000, MS);
        assert_eq!(
            c.verdict(ReplicaId(1)),
            Verdict::Beyond,
            "a proof needs no full window"
        );
        assert_eq!(c.beyond_mask(), 0b10);
        assert_eq!(c.within_mask(), 0);
    }

    #[test]
    fn rate_back_within_bound_is_trusted_again() {
        let mut c = ClockCheck::new(1_000, 1_000 * MS);
        // Slow for a second, then right: the peer's clock keeps its value and its rate
        // becomes 1 (simulated by echoes continuing from where it was).
        let mut now = 0;
        let mut at = 0;
        for i in 0..80 {
            let step = if i < 20 { 45 * MS } else { 50 * MS };
            c.on_echo(now + MS, ReplicaId(2), now, at);
            now += 50 * MS;
            at += step;
        }
        assert_eq!(c.verdict(ReplicaId(2)), Verdict::Within);
        assert_eq!(c.beyond_mask(), 0);
    }

    #[test]
    fn short_round_trips_prove_a_clock_within_before_a_window() {
        let mut c = ClockCheck::new(1_000, 1_000 * MS);
        run(&mut c, 0, 200, 500, MS / 20);
        assert_eq!(c.verdict(ReplicaId(1)), Verdict::Within);
        // A rate beyond the bound is never proven within, however short the round trips.
        let mut c = ClockCheck::new(1_000, 1_000 * MS);
        run(&mut c, 0, 900, 2_500, MS / 20);
        assert_ne!(c.verdict(ReplicaId(1)), Verdict::Within);
    }

    #[test]
    fn jitter_does_not_fake_drift() {
        let mut c = ClockCheck::new(1_000, 1_000 * MS);
        let mut now = 0;
        for i in 0..200u64 {
            // Round trips between 0.1 and 5 ms; the peer reads its clock anywhere inside.
            let rtt = MS / 10 + (i * 7919 % 49) * MS / 10;
            let at = now + rtt * (i % 3) / 2;
            c.on_echo(now + rtt, ReplicaId(1), now, at);
            now += 50 * MS;
        }
        assert_ne!(c.verdict(ReplicaId(1)), Verdict::Beyond);
    }

    #[test]
    fn restart_and_silence_reset_the_measure() {
        let mut c = ClockCheck::new(1_000, 1_000 * MS);
        let now = run(&mut c, 0, 1_500, 0, MS);
        assert_eq!(c.verdict(ReplicaId(1)), Verdict::Within);
        // The peer restarted: its clock starts near zero.
        let restart = -(now as i128);
        run_offset(&mut c, now, 1, 0, MS, restart);
        assert_eq!(c.verdict(ReplicaId(1)), Verdict::Unknown);
        let now = run_offset(&mut c, now + 50 * MS, 1_500, 0, MS, restart);
        assert_eq!(c.verdict(ReplicaId(1)), Verdict::Within);
        c.tick(now + 2_500 * MS);
        assert_eq!(c.verdict(ReplicaId(1)), Verdict::Unknown);
        // Late and stale echoes are ignored.
        c.on_echo(now + 900 * MS, ReplicaId(1), now, now);
        c.on_echo(now, ReplicaId(1), now + MS, now);
        assert_eq!(c.verdict(ReplicaId(1)), Verdict::Unknown);
        c.on_echo(now, ReplicaId(9), 0, 0);
    }

    #[test]
    fn probes_every_eighth_window() {
        let mut c = ClockCheck::new(1_000, 800 * MS);
        assert!(c.probe_due(0));
        assert!(!c.probe_due(99 * MS));
        assert!(c.probe_due(100 * MS));
    }
}
