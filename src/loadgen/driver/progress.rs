//! The calling thread's side of a run: merges the cores' per-second intervals, shows
//! progress, and reads the targets' CPU time.
use super::{INTERVAL, Interval, Msg, OpenCounters, Plan, Progress};
use crate::loadgen::stats::{OpStats, new_histogram};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often the progress spinner redraws.
const SPINNER_TICK: Duration = Duration::from_millis(200);
/// How long after a run should have ended (and its request timeout passed) the caller
/// still waits for a core that has not reported: one that panicked never does.
const CORE_REPORT_GRACE: Duration = Duration::from_secs(30);
/// The shortest length given to the final, partial interval (its rate divides by it).
const INTERVAL_MIN: Duration = Duration::from_millis(1);

const _: () = assert!(INTERVAL_MIN.as_nanos() <= INTERVAL.as_nanos());

/// Each target's CPU time so far (s), if its INFO says.
pub(super) fn read_server_cpu(targets: &[SocketAddr]) -> Vec<(SocketAddr, Option<f64>)> {
    targets
        .iter()
        .map(|a| (*a, crate::loadgen::info::cpu_s(*a)))
        .collect()
}

/// Receives interval messages until every core is done; shows progress.
pub(super) fn collect(
    rx: &crossbeam_channel::Receiver<Msg>,
    plan: &Plan,
    progress: Progress,
) -> (Vec<Interval>, Instant, OpenCounters) {
    let bar = (progress == Progress::Bar).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(SPINNER_TICK);
        b
    });
    let mut pending: BTreeMap<u64, (usize, Interval)> = BTreeMap::new();
    let mut done_cores = 0;
    let mut finished = plan.start;
    let mut open = OpenCounters::default();
    let mut shown = 0u64;
    // A core that panicked never reports; give up on it well after the run should end.
    let give_up = plan.end + Duration::from_millis(plan.w.timeout_ms) + CORE_REPORT_GRACE;
    while done_cores < plan.cores {
        let Ok(msg) = rx.recv_timeout(INTERVAL) else {
            if Instant::now() > give_up {
                break;
            }
            continue;
        };
        match msg {
            Msg::Interval {
                idx,
                ops_all,
                stats,
            } => {
                let e = pending.entry(idx).or_insert_with(|| {
                    (
                        0,
                        Interval {
                            start: INTERVAL * idx as u32,
                            length: INTERVAL,
                            stats: OpStats::default(),
                            ops_all: 0,
                        },
                    )
                });
                e.0 += 1;
                e.1.ops_all += ops_all;
                e.1.stats.merge(&stats);
                if e.0 >= plan.cores && idx >= shown {
                    shown = idx + 1;
                    show(&e.1, plan, progress, bar.as_ref());
                }
            }
            Msg::Done {
                finished: f,
                open: o,
            } => {
                done_cores += 1;
                finished = finished.max(f);
                open.merge(&o);
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut intervals: Vec<Interval> = pending.into_values().map(|(_, i)| i).collect();
    // The final flush covers only the part of its second before the run ended.
    if let Some(last) = intervals.last_mut() {
        let left = finished.saturating_duration_since(plan.start + last.start);
        last.length = left.clamp(INTERVAL_MIN, INTERVAL);
    }
    (intervals, finished, open)
}

fn show(i: &Interval, plan: &Plan, progress: Progress, bar: Option<&indicatif::ProgressBar>) {
    let t = i.start + i.length;
    if plan.start + i.start >= plan.end {
        // The final flush after the end: its requests count, but it is no second of load.
        return;
    }
    let warm = plan.start + i.start + i.length <= plan.measure_start;
    let mut all = new_histogram();
    for h in &i.stats.hist {
        all.add(h).expect("same bounds");
    }
    let p99 = if all.is_empty() {
        "-".to_string()
    } else {
        format!("{:.0} µs", all.value_at_quantile(0.99) as f64 / 1000.0)
    };
    let line = format!(
        "t={:>4}s {}{:>10.0} ops/s  p99 {}  errors {}",
        t.as_secs(),
        if warm { "(warm-up) " } else { "" },
        i.ops_all as f64 / i.length.as_secs_f64(),
        p99,
        i.stats.error_kinds.values().sum::<u64>()
    );
    match (progress, bar) {
        (Progress::Bar, Some(b)) => b.set_message(line),
        (Progress::Lines, _) => eprintln!("{line}"),
        _ => {}
    }
}
