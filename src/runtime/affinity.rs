//! Which cores a thread may run on (sched_getaffinity/sched_setaffinity) and its
//! scheduling policy (`SCHED_BATCH` or `SCHED_OTHER`): read for INFO and the launchers'
//! core lists, set by executors that follow their role ([`RolePlacement`]) and by the
//! load generator's wake-up probe.

use std::cell::Cell;
use std::io;

/// The cores `pid` may run on, ascending (0: the calling thread; a process id: its main
/// thread).
pub fn allowed_cores(pid: libc::pid_t) -> io::Result<Vec<usize>> {
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`,
    // a zeroed local; CPU_ISSET reads within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// The cores this process may use (its main thread's mask: the calling thread may be
/// pinned to fewer), ascending; empty if the kernel does not say.
pub fn process_cores() -> Vec<usize> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    allowed_cores(pid).unwrap_or_default()
}

/// Lets the calling thread run on `cores` only (it moves at once if it is elsewhere).
pub fn set_thread_cores(cores: &[usize]) -> io::Result<()> {
    let setsize = libc::CPU_SETSIZE as usize;
    if let Some(bad) = cores.iter().find(|&&c| c >= setsize) {
        return Err(io::Error::other(format!(
            "core {bad} is beyond the {setsize} a cpu_set_t holds"
        )));
    }
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes within it for cores
    // below CPU_SETSIZE (checked above), and sched_setaffinity reads exactly
    // size_of::<cpu_set_t>() bytes of it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cores {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `0-2,5`: a core list as the kernel writes one (`Cpus_allowed_list`, `taskset -c`).
pub fn cores_text(cores: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cores.len() {
        let start = cores[i];
        let mut end = start;
        while i + 1 < cores.len() && cores[i + 1] == end + 1 {
            i += 1;
            end = cores[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end == start {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

/// Whether the calling thread runs at `SCHED_BATCH` (else, for a node's threads,
/// `SCHED_OTHER`).
pub fn thread_is_batch() -> bool {
    // SAFETY: sched_getscheduler takes a thread id (0: the caller) and touches no memory.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_BATCH }
}

/// Runs the calling thread at `SCHED_BATCH` (`batch`) or `SCHED_OTHER`. A woken batch
/// thread does not preempt the thread running on the core it lands on; it waits for that
/// one to sleep or use up its slice. Either policy needs no privilege.
pub fn set_thread_batch(batch: bool) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    let policy = if batch {
        libc::SCHED_BATCH
    } else {
        libc::SCHED_OTHER
    };
    // SAFETY: sched_setscheduler reads `param`, a live local, and acts on the calling
    // thread (0) only.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How a shard's executor runs as its shard leads or follows, for replicas sharing a
/// machine: on its own core while it leads and on the followers' cores while it follows
/// (node settings `leader_cpus`, `follower_cpus`), and/or at `SCHED_BATCH` while it
/// follows (`follower_sched_batch`). Left alone, the scheduler often puts a follower,
/// woken by the leader's accept, on the leader's core, where it preempts the leader
/// before its own WAL write (results/placement-20261207/); a follower at `SCHED_BATCH`
/// waits there instead, or runs on another core if one is free.
#[derive(Debug)]
pub struct RolePlacement {
    shard: usize,
    /// The cores while leading and while following, if it places by cores.
    cores: Option<(Vec<usize>, Vec<usize>)>,
    /// Whether a following executor runs at `SCHED_BATCH`.
    batch_follower: bool,
    /// The role the thread was last placed for (None: not yet).
    placed_leading: Cell<Option<bool>>,
}

impl RolePlacement {
    /// Shard `shard`'s placement under `cfg`, its executor (the calling thread) placed as
    /// a follower (a shard starts as one); None when the node does not place by role.
    pub fn start(shard: usize, cfg: &crate::config::NodeConfig) -> Option<RolePlacement> {
        let cores = cfg
            .leader_cpus
            .get(shard)
            .filter(|_| !cfg.follower_cpus.is_empty())
            .map(|&lead| (vec![lead], cfg.follower_cpus.clone()));
        if cores.is_none() && !cfg.follower_sched_batch {
            return None;
        }
        let placement = RolePlacement {
            shard,
            cores,
            batch_follower: cfg.follower_sched_batch,
            placed_leading: Cell::new(None),
        };
        placement.follow(false);
        Some(placement)
    }

    /// Places the calling thread (the shard's executor) for its role, if it is not
    /// already. A failure is logged and leaves the thread as it was: a placement is a
    /// speed matter, never a correctness one.
    pub fn follow(&self, leading: bool) {
        if self.placed_leading.get() == Some(leading) {
            return;
        }
        self.placed_leading.set(Some(leading));
        let role = if leading { "leader" } else { "follower" };
        if let Some((lead, follow)) = &self.cores {
            let cores = if leading { lead } else { follow };
            if let Err(e) = set_thread_cores(cores) {
                eprintln!(
                    "shard {}: cannot move to the {role} cores {}: {e}; it runs where it was",
                    self.shard,
                    cores_text(cores)
                );
            }
        }
        if self.batch_follower
            && let Err(e) = set_thread_batch(!leading)
        {
            eprintln!(
                "shard {}: cannot set the {role}'s scheduling policy: {e}; it runs as it was",
                self.shard
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;

    #[test]
    fn a_core_list_is_written_in_ranges() {
        assert_eq!(cores_text(&[]), "");
        assert_eq!(cores_text(&[3]), "3");
        assert_eq!(cores_text(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }

    #[test]
    fn a_thread_moves_to_its_role_cores_and_back() {
        let mine = allowed_cores(0).unwrap();
        let [a, b, ..] = mine[..] else {
            eprintln!("one core: nothing to move between");
            return;
        };
        std::thread::spawn(move || {
            let p = RolePlacement::start(0, &placing(&[a], &[b], false)).unwrap();
            assert_eq!(allowed_cores(0).unwrap(), [b]);
            p.follow(true);
            assert_eq!(allowed_cores(0).unwrap(), [a]);
            p.follow(false);
            assert_eq!(allowed_cores(0).unwrap(), [b]);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_core_beyond_the_set_is_an_error_not_a_write_past_it() {
        let err = set_thread_cores(&[libc::CPU_SETSIZE as usize]).unwrap_err();
        assert!(err.to_string().contains("beyond"), "{err}");
    }

    /// A node configuration placing by these cores and policy.
    fn placing(leader_cpus: &[usize], follower_cpus: &[usize], batch: bool) -> NodeConfig {
        let mut cfg = NodeConfig::new(
            0,
            "127.0.0.1:1".parse().unwrap(),
            vec!["127.0.0.1:2".parse().unwrap()],
            "d".into(),
            1,
        );
        cfg.leader_cpus = leader_cpus.to_vec();
        cfg.follower_cpus = follower_cpus.to_vec();
        cfg.follower_sched_batch = batch;
        cfg
    }

    #[test]
    fn a_follower_runs_at_sched_batch_and_a_leader_does_not() {
        std::thread::spawn(|| {
            let p = RolePlacement::start(0, &placing(&[], &[], true)).unwrap();
            assert!(thread_is_batch());
            p.follow(true);
            assert!(!thread_is_batch());
            p.follow(false);
            assert!(thread_is_batch());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn no_placement_without_both_lists_or_the_policy() {
        assert!(RolePlacement::start(0, &placing(&[], &[1], false)).is_none());
        assert!(RolePlacement::start(0, &placing(&[0], &[], false)).is_none());
        assert!(RolePlacement::start(1, &placing(&[0], &[1], false)).is_none());
    }
}
