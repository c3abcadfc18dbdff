//! A burst bigger than `send_queue_bytes_max`, sent without yielding, overflows the queue:
//! the overflow is dropped and counted, the queue never holds more than its limit, and what
//! was queued arrives complete and in order. Messages over `frame_bytes_max` are refused.

mod transport_support;

use std::cell::RefCell;
use std::rc::Rc;

use corepax::transport::Transport;
use transport_support::{TestMsg, config, reserve_addrs, run_executor, wait_for};

const QUEUE_BYTES_MAX: usize = 64 * 1024;
const BURST: u64 = 5_000;

#[test]
fn overflow_is_dropped_counted_and_bounded() {
    run_executor("queue-limit", || async {
        let addrs = reserve_addrs(2);
        let inbox = Rc::new(RefCell::new(Vec::new()));
        let sink = inbox.clone();
        let mut cfg0 = config(0, &addrs);
        cfg0.send_queue_bytes_max = QUEUE_BYTES_MAX;
        let t0 = Transport::<TestMsg>::start(cfg0, |_, _| {})
            .await
            .expect("starts");
        let t1 = Transport::<TestMsg>::start(config(1, &addrs), move |_, msg| {
            if let TestMsg::Seq { n, .. } = msg {
                sink.borrow_mut().push(n);
            }
        })
        .await
        .expect("starts");
        assert!(wait_for(|| t0.stats().peers[1].connected).await);

        // 19-byte frames × 5000 = 95 KB, over the 64 KiB queue; no yield, so the writer
        // cannot drain anything meanwhile.
        let mut queued_max = 0;
        for n in 0..BURST {
            t0.send(
                1,
                &TestMsg::Seq {
                    from: 0,
                    n: n + 1_000_000_000,
                },
            );
            queued_max = queued_max.max(t0.queued_bytes(1));
        }
        assert!(
            queued_max <= QUEUE_BYTES_MAX,
            "queue held {queued_max} bytes"
        );
        let s = t0.stats().peers[1];
        assert!(s.drops_queue_full > 0, "{s:?}");
        let accepted = BURST - s.drops_queue_full;
        assert!(accepted > 0);
        // Everything accepted arrives, and it is the prefix of the burst.
        assert!(wait_for(|| inbox.borrow().len() as u64 == accepted).await);
        let expected: Vec<u64> = (0..accepted).map(|n| n + 1_000_000_000).collect();
        assert_eq!(*inbox.borrow(), expected);

        // A message larger than frame_bytes_max (64 KiB in the test config) is refused
        // at send time rather than sent for the peer to reject.
        t0.send(1, &TestMsg::Blob(vec![0; 70_000]));
        assert_eq!(t0.stats().peers[1].drops_unencodable, 1);
        assert_eq!(t0.queued_bytes(1), 0);
        // Sends to ourselves or to an id outside the cluster are counted, not sent.
        t0.send(0, &TestMsg::Seq { from: 0, n: 0 });
        t0.send(200, &TestMsg::Seq { from: 0, n: 0 });
        assert_eq!(t0.stats().drops_unknown_peer, 2);

        t1.stop().await;
        t0.stop().await;
    });
}
