//! glommio refuses to start an executor when RLIMIT_MEMLOCK is below 512 KiB and registers
//! `io_memory` (10 MiB by default) with io_uring. This checks that the default builder and
//! a small `io_memory` both start and run a transport under this machine's limit, and prints
//! what was pinned, so the finding in src/transport/mod.rs stays true.

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

#[test]
fn executors_start_under_this_memlock_limit() {
    let limit = memlock_limit_bytes();
    eprintln!("RLIMIT_MEMLOCK = {} KiB", limit / 1024);
    let pinned_default = start_and_stop(glommio::LocalExecutorBuilder::default());
    eprintln!("default io_memory (10 MiB): VmPin = {pinned_default:?} KiB");
    let pinned_small =
        start_and_stop(glommio::LocalExecutorBuilder::default().io_memory(512 * 1024));
    eprintln!("io_memory 512 KiB: VmPin = {pinned_small:?} KiB");
}
