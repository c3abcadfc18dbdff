//! What the machine did while a run was measured: the load generator's own CPU (this
//! process, every thread: `runtime::process_cpu_s`, as a node's INFO reads its own) and
//! how busy all the cores were (`/proc/stat`). On a laptop the
//! load generator and a local cluster share the cores, so a latency measured on a busy
//! machine is partly the scheduler's: the result says how busy it was.

use serde::{Deserialize, Serialize};

/// The machine's clocks at one moment (seconds of CPU time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Clocks {
    /// This process's user + system time.
    own_s: f64,
    /// Every core's time not idle and not waiting for I/O.
    busy_s: f64,
    /// Every core's time.
    all_s: f64,
}

/// The machine over a measured window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineUse {
    /// CPU seconds the load generator used (every thread of its process, not the servers
    /// it started).
    pub loadgen_cpu_s: f64,
    /// Share of all cores' time that was busy (not idle, not waiting for I/O), 0..=1:
    /// every process's, the servers', the load generator's and the kernel's.
    pub busy_share: f64,
    /// The cores that share is of.
    pub cores: usize,
}

/// Clock ticks per second of `/proc`'s counters.
fn ticks_per_s() -> f64 {
    // SAFETY: sysconf(3) reads a constant; no memory is touched.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// (busy, all) ticks from `/proc/stat`'s first line: `cpu user nice system idle iowait
/// irq softirq steal ...` (guest times are already in user and nice).
fn machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?;
    let mut f = line.split_whitespace();
    if f.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = f.take(8).map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = v[..] else {
        return None;
    };
    let busy = user + nice + system + irq + softirq + steal;
    Some((busy, busy + idle + iowait))
}

/// The clocks now, or None where `/proc` does not say.
pub(super) fn clocks() -> Option<Clocks> {
    let (busy, all) = machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let (user_s, sys_s) = crate::runtime::process_cpu_s();
    let hz = ticks_per_s();
    Some(Clocks {
        own_s: user_s + sys_s,
        busy_s: busy as f64 / hz,
        all_s: all as f64 / hz,
    })
}

/// What the machine did between two readings.
pub(super) fn between(a: Clocks, b: Clocks) -> Option<MachineUse> {
    let all = b.all_s - a.all_s;
    (all > 0.0).then(|| MachineUse {
        loadgen_cpu_s: (b.own_s - a.own_s).max(0.0),
        busy_share: ((b.busy_s - a.busy_s) / all).clamp(0.0, 1.0),
        cores: online_cores(),
    })
}

/// The machine's online cores: what `/proc/stat`'s busy share is of (a thread pinned to
/// one core has an `available_parallelism` of 1).
pub fn online_cores() -> usize {
    // SAFETY: sysconf(3) reads a constant; no memory is touched.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_line_splits_busy_from_idle_and_io_wait() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        assert_eq!(machine_ticks(stat), Some((160, 1000)));
        assert_eq!(machine_ticks("intr 1 2 3\n"), None);
        assert_eq!(machine_ticks("cpu 1 2 3\n"), None);
    }

    #[test]
    fn busy_work_in_this_process_shows_in_both_clocks() {
        let a = clocks().expect("/proc on Linux");
        // Spin until this process's clock has moved 50 ms (however many tests share the
        // cores meanwhile), within a wall-clock bound that only broken clocks reach.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut x = 0u64;
        let m = loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let m = between(a, clocks().unwrap());
            if m.is_some_and(|m| m.loadgen_cpu_s >= 0.05) {
                break m.unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "{m:?} after 30 s");
        };
        assert!(m.busy_share > 0.0 && m.busy_share <= 1.0, "{m:?}");
        assert!(m.cores >= 1);
    }
}
