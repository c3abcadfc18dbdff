//! A peer's transport is stopped mid-stream and restarted on the same port: the others see
//! the link drop, redial with exponential backoff (not a busy loop) while it is gone, and
//! reconnect; messages sent after that arrive in order.

mod transport_support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use corepax::transport::Transport;
use transport_support::{TestMsg, config, reserve_addrs, run_executor, wait_for};

/// How long replica 2 stays down.
const OUTAGE_MS: u64 = 1_000;

type Inbox = Rc<RefCell<Vec<(u8, u64)>>>;

async fn start(me: u8, addrs: &[std::net::SocketAddr]) -> (Transport<TestMsg>, Inbox) {
    let inbox: Inbox = Rc::new(RefCell::new(Vec::new()));
    let sink = inbox.clone();
    let t = Transport::start(config(me, addrs), move |from, msg| {
        if let TestMsg::Seq { n, .. } = msg {
            sink.borrow_mut().push((from, n));
        }
    })
    .await
    .expect("transport starts");
    (t, inbox)
}

fn seqs_from(inbox: &Inbox, from: u8) -> Vec<u64> {
    inbox
        .borrow()
        .iter()
        .filter(|(f, _)| *f == from)
        .map(|(_, n)| *n)
        .collect()
}

fn strictly_increasing(v: &[u64]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn peer_restart_reconnects_with_backoff() {
    run_executor("peer-restart", || async {
        let addrs = reserve_addrs(3);
        let (t0, _) = start(0, &addrs).await;
        let (t1, _) = start(1, &addrs).await;
        let (t2, inbox2) = start(2, &addrs).await;
        assert!(wait_for(|| t0.stats().peers[2].connected && t1.stats().peers[2].connected).await);

        // Stream from 0 to 2 until some of it has arrived, then kill 2 mid-stream.
        let mut n = 0u64;
        while seqs_from(&inbox2, 0).len() < 200 {
            t0.send(2, &TestMsg::Seq { from: 0, n });
            n += 1;
            if n.is_multiple_of(16) {
                glommio::timer::sleep(Duration::from_micros(100)).await;
            }
            assert!(n < 1_000_000, "stream to replica 2 never arrived");
        }
        let before_stop = seqs_from(&inbox2, 0);
        assert!(strictly_increasing(&before_stop));
        t2.stop().await;

        assert!(
            wait_for(|| !t0.stats().peers[2].connected && !t1.stats().peers[2].connected).await,
            "the others noticed the stop"
        );
        // Keep sending while it is down: dropped and counted, never blocking.
        let failures_at_down = t0.stats().peers[2].dial_failures;
        let deadline = std::time::Instant::now() + Duration::from_millis(OUTAGE_MS);
        while std::time::Instant::now() < deadline {
            t0.send(2, &TestMsg::Seq { from: 0, n });
            n += 1;
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let s0 = t0.stats().peers[2];
        assert!(s0.drops_down > 0, "{s0:?}");
        let failed_dials = s0.dial_failures - failures_at_down;
        // Backoff 5 ms doubling to 200 ms: about 9 dials in a second. A fixed 5 ms retry
        // would make ~200; no retry at all would make 0.
        assert!(
            (2..=30).contains(&failed_dials),
            "{failed_dials} failed dials in {OUTAGE_MS} ms"
        );

        let (t2, inbox2) = start(2, &addrs).await;
        assert!(
            wait_for(|| t0.stats().peers[2].connected && t1.stats().peers[2].connected).await,
            "the others reconnected"
        );
        let s0 = t0.stats().peers[2];
        assert_eq!(s0.reconnects, 1, "{s0:?}");
        assert_eq!(t1.stats().peers[2].reconnects, 1);

        let first_after = n;
        for _ in 0..500 {
            t0.send(2, &TestMsg::Seq { from: 0, n });
            t1.send(2, &TestMsg::Seq { from: 1, n });
            n += 1;
        }
        let after: Vec<u64> = (first_after..n).collect();
        assert!(wait_for(|| seqs_from(&inbox2, 0).len() == after.len()).await);
        assert_eq!(
            seqs_from(&inbox2, 0),
            after,
            "everything sent after reconnecting arrives in order"
        );
        assert!(wait_for(|| seqs_from(&inbox2, 1).len() == after.len()).await);
        assert_eq!(seqs_from(&inbox2, 1), after);
        // The restarted replica dials out too.
        assert!(
            wait_for(|| t2.stats().peers[0].connected && t0.stats().peers[2].incoming_connected)
                .await
        );

        t2.stop().await;
        t1.stop().await;
        t0.stop().await;
    });
}
