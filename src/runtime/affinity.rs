//! Which cores a thread may run on (sched_getaffinity/sched_setaffinity): read for INFO
//! and the launchers' core lists, set by executors that follow their role
//! ([`RolePlacement`]) and by the load generator's wake-up probe.

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

/// An executor that runs on one set of cores while its shard leads its group and on
/// another while it follows (node settings `leader_cpus`, `follower_cpus`). Replicas
/// sharing a machine with fewer cores than their executors otherwise let the scheduler
/// put a follower, woken by the leader's accept, on the leader's core, where it preempts
/// the leader before its own WAL write (results/placement-20261207/); a leader on a core
/// of its own is not delayed by its followers wherever the election put it.
#[derive(Debug)]
pub struct RolePlacement {
    shard: usize,
    leader_cores: Vec<usize>,
    follower_cores: Vec<usize>,
    /// The role the thread was last placed for (None: not yet).
    placed_leading: Cell<Option<bool>>,
}

impl RolePlacement {
    /// Shard `shard`'s placement, its executor (the calling thread) moved to the
    /// followers' cores (a shard starts as a follower); None when the node does not
    /// place by role.
    pub fn start(
        shard: usize,
        leader_cpus: &[usize],
        follower_cpus: &[usize],
    ) -> Option<RolePlacement> {
        let lead = *leader_cpus.get(shard)?;
        if follower_cpus.is_empty() {
            return None;
        }
        let placement = RolePlacement {
            shard,
            leader_cores: vec![lead],
            follower_cores: follower_cpus.to_vec(),
            placed_leading: Cell::new(None),
        };
        placement.follow(false);
        Some(placement)
    }

    /// Moves the calling thread (the shard's executor) to its role's cores, if it is
    /// not already there. A failure is logged and leaves the thread where it was: a
    /// placement is a speed matter, never a correctness one.
    pub fn follow(&self, leading: bool) {
        if self.placed_leading.get() == Some(leading) {
            return;
        }
        self.placed_leading.set(Some(leading));
        let (cores, role) = if leading {
            (&self.leader_cores, "leader")
        } else {
            (&self.follower_cores, "follower")
        };
        if let Err(e) = set_thread_cores(cores) {
            eprintln!(
                "shard {}: cannot move to the {role} cores {}: {e}; it runs where it was",
                self.shard,
                cores_text(cores)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let p = RolePlacement::start(0, &[a], &[b]).unwrap();
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

    #[test]
    fn no_placement_without_both_lists() {
        assert!(RolePlacement::start(0, &[], &[1]).is_none());
        assert!(RolePlacement::start(0, &[0], &[]).is_none());
        assert!(RolePlacement::start(1, &[0], &[1]).is_none());
    }
}
