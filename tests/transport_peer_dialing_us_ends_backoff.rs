//! A link in a long backoff wait redials as soon as the peer it waits for dials us: a
//! restarted replica reaches its peers at once, and they reach it back within a round trip
//! rather than after their longest backoff (its restart check needs their answers).

mod transport_support;

use std::time::{Duration, Instant};

use corepax::transport::Transport;
use transport_support::{TestMsg, config, reserve_addrs, run_executor};

/// Each dialer's wait between attempts: far longer than the test allows for the redial.
const BACKOFF_MS: u64 = 30_000;

async fn start(me: u8, addrs: &[std::net::SocketAddr]) -> Transport<TestMsg> {
    let mut cfg = config(me, addrs);
    cfg.reconnect_backoff_min_ms = BACKOFF_MS;
    cfg.reconnect_backoff_max_ms = BACKOFF_MS;
    Transport::start(cfg, |_, _| {})
        .await
        .expect("transport starts")
}

#[test]
fn a_peer_that_dials_us_ends_our_backoff() {
    run_executor("peer-dials-us", || async {
        let addrs = reserve_addrs(2);
        let t0 = start(0, &addrs).await;
        // Replica 1 is not up: replica 0's first dial fails and it waits BACKOFF_MS.
        let deadline = Instant::now() + Duration::from_secs(10);
        while t0.stats().peers[1].dial_failures == 0 {
            assert!(Instant::now() < deadline, "the first dial never failed");
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        let t1 = start(1, &addrs).await;
        let started = Instant::now();
        while !t0.stats().peers[1].connected {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "replica 0 waited out its {BACKOFF_MS} ms backoff although replica 1 dialed it: {:?}",
                t0.stats().peers[1]
            );
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            t0.stats().peers[1].dial_failures,
            1,
            "one failed dial, then the one that held"
        );
        t1.stop().await;
        t0.stop().await;
    });
}
