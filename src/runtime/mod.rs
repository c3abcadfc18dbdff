//! glommio runtime: executors pinned per core, shard loop, WAL, snapshots.
pub mod affinity;
pub mod disk;
pub mod mailbox;
pub mod node;
pub mod shard;
pub mod sharding;
pub mod snapshot;
pub mod wal;

/// User and system CPU time of this process so far (s): every thread, executors and the
/// blocking pool alike (a node's INFO `used_cpu_*`, the load generator's own CPU).
pub fn process_cpu_s() -> (f64, f64) {
    cpu_s(libc::RUSAGE_SELF)
}

/// User and system CPU time of the calling thread so far (s).
pub fn thread_cpu_s() -> (f64, f64) {
    cpu_s(libc::RUSAGE_THREAD)
}

/// getrusage(2)'s user and system time for `who` (s).
fn cpu_s(who: libc::c_int) -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given, which lives on this stack.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF and RUSAGE_THREAD are always valid, so the call
    // cannot fail.
    let rc = unsafe { libc::getrusage(who, &mut usage) };
    if rc != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}
