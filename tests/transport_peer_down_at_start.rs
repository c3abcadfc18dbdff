//! A peer that is down when the others start: sends to it are dropped and counted without
//! disturbing the other link, and once it starts the dialers find it and messages flow.

mod transport_support;

use std::cell::RefCell;
use std::rc::Rc;

use corepax::transport::Transport;
use transport_support::{TestMsg, config, reserve_addrs, run_executor, wait_for};

const MSGS: u64 = 500;

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

#[test]
fn peer_down_at_start_then_joins() {
    run_executor("peer-down", || async {
        let addrs = reserve_addrs(3);
        let (t0, _inbox0) = start(0, &addrs).await;
        let (t1, inbox1) = start(1, &addrs).await;
        assert!(wait_for(|| t0.stats().peers[1].connected && t1.stats().peers[0].connected).await);

        // Replica 2 is down: sends to it are dropped, sends to 1 are not held up.
        for n in 0..MSGS {
            t0.send(2, &TestMsg::Seq { from: 0, n });
            t0.send(1, &TestMsg::Seq { from: 0, n });
        }
        let s = t0.stats();
        assert_eq!(s.peers[2].drops_down, MSGS);
        assert!(!s.peers[2].connected);
        assert_eq!(t0.queued_bytes(2), 0, "nothing is queued for a down peer");
        assert!(wait_for(|| seqs_from(&inbox1, 0).len() as u64 == MSGS).await);
        assert_eq!(seqs_from(&inbox1, 0), (0..MSGS).collect::<Vec<_>>());
        // Both dialers have been retrying meanwhile.
        assert!(wait_for(|| t0.stats().peers[2].dial_failures >= 2).await);

        let (t2, inbox2) = start(2, &addrs).await;
        assert!(
            wait_for(|| {
                let (s0, s1, s2) = (t0.stats(), t1.stats(), t2.stats());
                s0.peers[2].connected
                    && s1.peers[2].connected
                    && s2.peers[0].connected
                    && s2.peers[1].connected
            })
            .await,
            "links to the late peer came up"
        );
        for n in 0..MSGS {
            t0.send(2, &TestMsg::Seq { from: 0, n });
            t1.send(2, &TestMsg::Seq { from: 1, n });
            t2.send(0, &TestMsg::Seq { from: 2, n });
        }
        assert!(wait_for(|| inbox2.borrow().len() as u64 == 2 * MSGS).await);
        assert_eq!(seqs_from(&inbox2, 0), (0..MSGS).collect::<Vec<_>>());
        assert_eq!(seqs_from(&inbox2, 1), (0..MSGS).collect::<Vec<_>>());
        let s0 = t0.stats();
        assert_eq!(s0.peers[2].drops_down, MSGS, "no new drops once connected");
        assert_eq!(s0.peers[2].frames_sent, MSGS);
        assert_eq!(s0.peers[2].connects, 1);
        assert!(wait_for(|| t0.stats().peers[2].frames_received == MSGS).await);

        t2.stop().await;
        t1.stop().await;
        t0.stop().await;
    });
}
