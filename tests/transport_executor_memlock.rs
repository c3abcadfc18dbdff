//! glommio refuses to start an executor when RLIMIT_MEMLOCK is below 512 KiB and registers
//! `io_memory` (10 MiB by default) with each of its three io_uring rings. This checks that
//! the default builder, the node's `io_memory` and a small one all start and run a
//! transport under this machine's limit, and that each either pinned its three buffers
//! (VmPin grows by 3 × `io_memory`) or, only where that exceeds the limit, went without
//! them: the finding in src/transport/mod.rs.

mod transport_support;

use corepax::transport::Transport;
use transport_support::{TestMsg, config, reserve_addrs};

fn memlock_limit_bytes() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    assert_eq!(rc, 0, "getrlimit");
    lim.rlim_cur
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// VmPin (KiB) once it has not changed for 100 ms (at most 3 s): the kernel tears down a
/// stopped executor's io_uring rings in the background and unpins their buffers then, so a
/// reading taken too soon after one executor stops can fall while the next one runs (CI saw
/// the small executor's 1,536 KiB hidden that way: it "grew by 0").
fn settled_vmpin_kib() -> u64 {
    const STEP: std::time::Duration = std::time::Duration::from_millis(20);
    const STABLE_STEPS: u32 = 5;
    const MAX_STEPS: u32 = 150;
    let read = || proc_status_kib("VmPin:").expect("/proc/self/status has VmPin");
    let mut last = read();
    let mut stable = 0;
    for _ in 0..MAX_STEPS {
        std::thread::sleep(STEP);
        let now = read();
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
        if stable == STABLE_STEPS {
            break;
        }
    }
    last
}

/// Runs a transport on an executor built by `builder`; returns VmPin (KiB) while it ran.
fn start_and_stop(builder: glommio::LocalExecutorBuilder) -> Option<u64> {
    builder
        .spawn(|| async {
            let addrs = reserve_addrs(2);
            let t = Transport::<TestMsg>::start(config(0, &addrs), |_, _| {})
                .await
                .expect("transport starts");
            let pinned = proc_status_kib("VmPin:");
            t.stop().await;
            pinned
        })
        .expect("executor starts")
        .join()
        .expect("executor runs")
}

/// io_uring rings glommio registers `io_memory` with, per executor.
const RINGS: u64 = 3;
/// glommio's `io_memory` when none is given.
const IO_MEMORY_DEFAULT_BYTES: u64 = 10 << 20;
/// The smallest RLIMIT_MEMLOCK glommio starts an executor under.
const MEMLOCK_MIN_BYTES: u64 = 512 << 10;

#[test]
fn executors_start_under_this_memlock_limit() {
    let limit = memlock_limit_bytes();
    eprintln!("RLIMIT_MEMLOCK = {} KiB", limit / 1024);
    assert!(
        limit >= MEMLOCK_MIN_BYTES,
        "RLIMIT_MEMLOCK {limit} B is below the {MEMLOCK_MIN_BYTES} B glommio needs to start"
    );
    let node = corepax::runtime::node::IO_MEMORY_BYTES as u64;
    for (what, io_memory, builder) in [
        (
            "default",
            IO_MEMORY_DEFAULT_BYTES,
            glommio::LocalExecutorBuilder::default(),
        ),
        (
            "node",
            node,
            glommio::LocalExecutorBuilder::default().io_memory(node as usize),
        ),
        (
            "small",
            MEMLOCK_MIN_BYTES,
            glommio::LocalExecutorBuilder::default().io_memory(MEMLOCK_MIN_BYTES as usize),
        ),
    ] {
        // What an executor pinned may stay pinned after it stops (glommio keeps it), so each
        // is measured against what was pinned just before it started.
        let before = settled_vmpin_kib();
        let pinned = start_and_stop(builder).expect("VmPin while the executor ran");
        let grew_kib = pinned.saturating_sub(before);
        let registered_kib = RINGS * io_memory / 1024;
        eprintln!(
            "{what} io_memory ({} KiB): VmPin grew by {grew_kib} KiB",
            io_memory / 1024
        );
        assert!(
            grew_kib == registered_kib || (grew_kib == 0 && RINGS * io_memory > limit),
            "{what} io_memory of {io_memory} B: VmPin grew by {grew_kib} KiB, expected \
             {registered_kib} KiB (or nothing, only above the memlock limit)"
        );
    }
    // The node's executors register their buffers wherever they start: under the limit
    // even without CAP_IPC_LOCK.
    assert!(
        RINGS * node <= limit,
        "the node's io_memory ({node} B) × {RINGS} rings exceeds RLIMIT_MEMLOCK ({limit} B)"
    );
}
