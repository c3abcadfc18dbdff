//! With a cluster key, a connection that names a real replica but cannot prove it holds the
//! key (no proof, a proof made with another key, the listener's own tag sent back) is
//! refused at the handshake and never replaces that replica's established link; nodes
//! without the key, or with another, never link with a keyed node in either direction.

mod transport_support;

use std::cell::RefCell;
use std::rc::Rc;

use corepax::transport::Transport;
use corepax::wire::auth::{Challenge, ClusterKey, Proof, Side};
use corepax::wire::frame::Hello;
use transport_support::{
    TestMsg, closed_by_listener, config, handshake, hello, reserve_addrs, run_executor, wait_for,
};

fn key(text: &str) -> ClusterKey {
    ClusterKey::from_file_contents(text.as_bytes()).expect("a valid key")
}

const KEY: &str = "the cluster's shared secret, 41 bytes long";

#[test]
fn a_peer_without_the_key_is_refused_and_the_real_link_stays() {
    run_executor("peer-auth", || async {
        let addrs = reserve_addrs(3);
        let keyed = |me: u8| {
            let mut c = config(me, &addrs);
            c.cluster_key = Some(key(KEY));
            c
        };
        let got = Rc::new(RefCell::new(Vec::new()));
        let sink = got.clone();
        let t0 = Transport::<TestMsg>::start(keyed(0), move |from, msg| {
            sink.borrow_mut().push((from, msg));
        })
        .await
        .expect("transport 0 starts");
        let t1 = Transport::<TestMsg>::start(keyed(1), |_, _| {})
            .await
            .expect("transport 1 starts");
        assert!(wait_for(|| t1.stats().peers[0].connected).await);
        assert!(wait_for(|| t0.stats().peers[1].incoming_connected).await);
        t1.send(0, &TestMsg::Seq { from: 1, n: 0 });
        assert!(wait_for(|| got.borrow().len() == 1).await);

        // Forgers naming replica 1: each is refused after its Proof.
        let wrong = key("not the cluster's secret at all");
        type Forge = Box<dyn Fn(&Hello, &Challenge) -> Proof>;
        let forgeries: Vec<(&str, Forge)> = vec![
            ("no proof", Box::new(|_, _| Proof { tag: None })),
            (
                "proof made with another key",
                Box::new(move |h, c| Proof {
                    tag: Some(wrong.tag(Side::Dialer, h, 0, &c.nonce)),
                }),
            ),
            (
                "the listener's own tag sent back",
                Box::new(|_, c| Proof { tag: c.tag }),
            ),
        ];
        let real = key(KEY);
        for (i, (name, forge)) in forgeries.iter().enumerate() {
            let h = Hello {
                nonce: [i as u8; 16],
                ..hello(1)
            };
            let (mut s, challenge) = handshake(t0.local_addr(), &h, |c| forge(&h, c)).await;
            // The listener proved itself to us before asking anything of us.
            let tag = challenge
                .tag
                .expect("a keyed listener proves it holds the key");
            assert!(real.verify(Side::Acceptor, &h, 0, &challenge.nonce, &tag));
            assert!(closed_by_listener(&mut s).await, "{name}: left open");
            assert!(
                wait_for(|| t0.stats().conns_rejected == i as u64 + 1).await,
                "{name}: not counted as rejected"
            );
            assert!(t0.stats().peers[1].incoming_connected, "{name}");
        }
        // The real link was never replaced: same connection, and it still carries frames.
        assert_eq!(t1.stats().peers[0].connects, 1);
        t1.send(0, &TestMsg::Seq { from: 1, n: 1 });
        assert!(wait_for(|| got.borrow().len() == 2).await);
        assert_eq!(got.borrow()[1], (1, TestMsg::Seq { from: 1, n: 1 }));

        // A replica 2 with no key, and one with another key: refused as a dialer, and it
        // refuses the keyed dialers.
        for (name, cluster_key) in [
            ("no key", None),
            ("another key", Some(key("another key, same length!!"))),
        ] {
            let rejected_before = t0.stats().conns_rejected;
            let mut c = config(2, &addrs);
            c.cluster_key = cluster_key;
            // The previous round's listener on this port is closed by the executor a
            // moment after its stop returns: retry the bind briefly.
            let mut t2 = None;
            for _ in 0..100 {
                if let Ok(t) = Transport::<TestMsg>::start(c.clone(), |_, _| {}).await {
                    t2 = Some(t);
                    break;
                }
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
            let t2 = t2.expect("transport 2 starts");
            assert!(
                wait_for(|| t2.stats().peers[0].dial_failures >= 1).await,
                "{name}: its dial to replica 0 failed"
            );
            assert!(
                wait_for(|| t2.stats().conns_rejected >= 1).await,
                "{name}: it refused a keyed dialer"
            );
            assert!(t0.stats().conns_rejected > rejected_before, "{name}");
            let s = t2.stats();
            assert!(!s.peers[0].connected && !s.peers[1].connected, "{name}");
            assert!(!t0.stats().peers[2].connected, "{name}");
            assert!(!t0.stats().peers[2].incoming_connected, "{name}");
            t2.stop().await;
        }
        assert_eq!(t1.stats().peers[0].connects, 1);
        assert_eq!(got.borrow().len(), 2);

        t1.stop().await;
        t0.stop().await;
    });
}
