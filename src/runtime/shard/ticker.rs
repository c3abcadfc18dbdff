//! The shard's ticker: drives the replica's and the client path's timers, flushes lazy WAL
//! records, follows the wall clock and the disk, starts snapshots, counts executor stalls.
//!
//! A busy shard ticks every [`TICK_INTERVAL`]. One with nothing to do (no command, no
//! record, nobody waiting, for [`IDLE_AFTER`]) ticks every [`Idle::interval`] instead,
//! which still sends heartbeats and clock probes on time, and a command wakes it at once;
//! while its map grows it keeps the busy tick ([`next_interval`]).
//! At 200 ticks a second an idle replica spent about 2% of a core on this machine, most of
//! it the cost of waking a thread in a VM; the idle interval (50 ms by default) cuts those
//! wake-ups by ten.

use super::*;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// How often a busy shard's timers are driven. Heartbeats are 50 ms apart by default;
/// 5 ms keeps timers (batch delay, lazy records, deadlines) precise enough.
pub(super) const TICK_INTERVAL: Duration = Duration::from_millis(5);
/// The longest tick of an idle shard.
const IDLE_TICK_MAX: Duration = Duration::from_millis(50);
/// Quiet time after which a shard counts as idle.
const IDLE_AFTER: Duration = Duration::from_millis(200);
/// A tick this late counts as an executor stall (INFO `executor_stalls`).
pub(super) const STALL_REPORTED: Duration = Duration::from_millis(20);
const _: () = assert!(TICK_INTERVAL.as_nanos() <= IDLE_TICK_MAX.as_nanos());
const _: () = assert!(IDLE_TICK_MAX.as_nanos() < IDLE_AFTER.as_nanos());

/// Whether the ticker sleeps its idle interval, and the waker that ends that sleep.
pub(super) struct Idle {
    /// The idle tick: at most a heartbeat interval, and a quarter of the election
    /// timeout, the lease and the clock-check window (50 ms by default). A timer never
    /// fires early, so each idle tick of a leader that sent its last heartbeat on a tick
    /// finds the next one due and sends it on time; one sent between ticks goes out at
    /// most an interval late, and a follower notices a silent leader at most an interval
    /// after its election timeout: a quarter of the timeout or lease at most.
    interval: Duration,
    sleeping: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Idle {
    pub(super) fn new(cfg: &crate::config::ProtocolConfig) -> Idle {
        let quarter = |ms: u64| Duration::from_millis(ms) / 4;
        Idle {
            interval: Duration::from_millis(cfg.heartbeat_interval_ms)
                .min(quarter(cfg.election_timeout_ms))
                .min(quarter(cfg.lease_ms))
                .min(quarter(cfg.clock_check_window_ms))
                .clamp(TICK_INTERVAL, IDLE_TICK_MAX),
            sleeping: Cell::new(false),
            waker: Cell::new(None),
        }
    }

    /// The shard has work: an idle sleep ends now.
    pub(super) fn wake(&self) {
        if self.sleeping.replace(false)
            && let Some(w) = self.waker.take()
        {
            w.wake();
        }
    }

    /// Sleeps `interval`, or less if [`Idle::wake`] is called meanwhile.
    async fn sleep(&self, interval: Duration) {
        if interval <= TICK_INTERVAL {
            glommio::timer::sleep(interval).await;
            return;
        }
        self.sleeping.set(true);
        let woken = poll_fn(|cx| {
            if self.sleeping.get() {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        futures_lite::future::or(glommio::timer::sleep(interval), woken).await;
        self.sleeping.set(false);
        self.waker.set(None);
    }
}

impl Shard {
    /// The ticker's loop (see the module docs).
    pub(super) async fn run_ticker(self: Rc<Self>) {
        let mut last = Instant::now();
        let mut interval = TICK_INTERVAL;
        let mut seen = self.activity();
        let mut quiet_since = last;
        loop {
            self.ticker.sleep(interval).await;
            // A tick much later than asked for: the executor was blocked or its thread
            // not scheduled; either way every request here waited as long.
            let late = last.elapsed().saturating_sub(interval);
            last = Instant::now();
            if late >= STALL_REPORTED {
                let mut c = self.counters.borrow_mut();
                c.executor_stalls += 1;
                c.executor_stall_ms += late.as_millis() as u64;
            }
            self.counters.borrow_mut().ticks += 1;
            self.tick();
            let now_seen = self.activity();
            if now_seen != seen || self.has_waiters() {
                seen = now_seen;
                quiet_since = last;
            }
            interval = next_interval(
                last.duration_since(quiet_since),
                self.growing(),
                self.ticker.interval,
            );
        }
    }

    /// One tick's work.
    fn tick(self: &Rc<Self>) {
        let now = self.now();
        self.wal.flush();
        self.sync_wall_clock();
        self.follow_disk_full(now);
        self.step(|r| r.on_tick(now));
        self.tick_client();
        if self.snapshot_due() {
            self.snapshot_running.set(true);
            let s = self.clone();
            glommio::spawn_local(async move {
                // A failure is reported inside; the WAL still holds everything.
                let _ = s.write_snapshot().await;
            })
            .detach();
        }
    }

    /// Counts that move whenever the shard has work: commands submitted here and records
    /// logged (a follower's accepts, a leader's proposals).
    fn activity(&self) -> (u64, u64) {
        let c = self.counters.borrow();
        (c.commands, c.records_persisted)
    }

    /// The map grows (`kv/map.rs`): its ticks move what writes do not.
    fn growing(&self) -> bool {
        self.replica.borrow().kv().growth_keys_left() > 0
    }

    /// Someone waits on a timer: a local caller (back-offs, resends, deadlines) or a
    /// record not yet durable.
    fn has_waiters(&self) -> bool {
        !self.callers.borrow().is_empty() || !self.persisting.borrow().is_empty()
    }
}

/// The next tick's interval: the idle one once the shard was quiet for [`IDLE_AFTER`],
/// unless its map grows. A growth's ticks move [`GROW_TICK_ITEMS`] each, so at the idle
/// interval a million-item growth would take ~25 s to end (measured: ~195k items in 3 s),
/// with lookups of keys not yet moved probing both tables all that time; at the busy one
/// it ends in ~2.5 s, for ~1% of a core.
///
/// [`GROW_TICK_ITEMS`]: crate::protocol::consensus::GROW_TICK_ITEMS
fn next_interval(quiet_for: Duration, growing: bool, idle: Duration) -> Duration {
    if quiet_for >= IDLE_AFTER && !growing {
        idle
    } else {
        TICK_INTERVAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProtocolConfig;

    fn interval(f: impl FnOnce(&mut ProtocolConfig)) -> Duration {
        let mut cfg = ProtocolConfig::default();
        f(&mut cfg);
        Idle::new(&cfg).interval
    }

    #[test]
    fn the_idle_tick_is_a_heartbeat_within_a_quarter_of_every_timeout() {
        // The defaults: 50 ms heartbeats, 500 ms election timeout, 400 ms lease.
        assert_eq!(interval(|_| {}), Duration::from_millis(50));
        // The shortest election timeout and lease the config allows (2 heartbeats).
        assert_eq!(
            interval(|c| {
                c.election_timeout_ms = 100;
                c.lease_ms = 100;
            }),
            Duration::from_millis(25)
        );
        assert_eq!(interval(|c| c.lease_ms = 120), Duration::from_millis(30));
        assert_eq!(
            interval(|c| c.clock_check_window_ms = 100),
            Duration::from_millis(25)
        );
        // Short heartbeats tick as often; long ones no less often than IDLE_TICK_MAX.
        assert_eq!(
            interval(|c| c.heartbeat_interval_ms = 10),
            Duration::from_millis(10)
        );
        assert_eq!(
            interval(|c| {
                c.heartbeat_interval_ms = 400;
                c.election_timeout_ms = 4000;
                c.lease_ms = 4000;
                c.clock_check_window_ms = 4000;
            }),
            IDLE_TICK_MAX
        );
        // Never below the busy tick.
        assert_eq!(interval(|c| c.heartbeat_interval_ms = 1), TICK_INTERVAL);
    }

    #[test]
    fn a_quiet_shard_ticks_at_the_idle_interval_unless_its_map_grows() {
        let idle = Duration::from_millis(50);
        assert_eq!(next_interval(IDLE_AFTER, false, idle), idle);
        assert_eq!(next_interval(IDLE_AFTER * 10, false, idle), idle);
        assert_eq!(next_interval(IDLE_AFTER / 2, false, idle), TICK_INTERVAL);
        assert_eq!(next_interval(IDLE_AFTER, true, idle), TICK_INTERVAL);
        assert_eq!(next_interval(IDLE_AFTER * 10, true, idle), TICK_INTERVAL);
    }
}
