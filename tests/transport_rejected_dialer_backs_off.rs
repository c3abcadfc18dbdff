//! A peer that accepts our connection and then refuses the Hello (here: it belongs to another
//! cluster) closes each connection at once; the dialer must back off exponentially rather
//! than reconnect in a tight loop at the minimum backoff.

mod transport_support;

use std::time::Duration;

use corepax::transport::Transport;
use transport_support::{CLUSTER_ID, TestMsg, config, reserve_addrs, run_executor, wait_for};

const WATCH_MS: u64 = 1_000;

#[test]
fn dialer_refused_at_hello_backs_off() {
    run_executor("rejected-dialer", || async {
        let addrs = reserve_addrs(2);
        let mut foreign = config(1, &addrs);
        foreign.cluster_id = CLUSTER_ID + 1;
        let t1 = Transport::<TestMsg>::start(foreign, |_, _| {})
            .await
            .expect("starts");
        let t0 = Transport::<TestMsg>::start(config(0, &addrs), |_, _| {})
            .await
            .expect("starts");
        assert!(
            wait_for(|| t1.stats().conns_rejected >= 1).await,
            "the Hello was refused"
        );

        let rejected_before = t1.stats().conns_rejected;
        glommio::timer::sleep(Duration::from_millis(WATCH_MS)).await;
        let attempts = t1.stats().conns_rejected - rejected_before;
        // Backoff 5 ms doubling to 200 ms gives about 8 in a second; staying at 5 ms
        // would give well over 100.
        assert!(
            (1..=30).contains(&attempts),
            "{attempts} connections in {WATCH_MS} ms"
        );
        assert_eq!(t1.stats().peers[0].frames_received, 0);

        t0.stop().await;
        t1.stop().await;
    });
}
