//! Connections that speak garbage, claim another cluster, shard or replica, or corrupt a
//! frame after a good Hello are closed one by one, and the listener keeps serving real peers.

mod transport_support;

use std::cell::RefCell;
use std::rc::Rc;

use corepax::transport::Transport;
use corepax::wire::auth::Proof;
use corepax::wire::frame::{self, PROTOCOL_VERSION};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use transport_support::{
    CLUSTER_ID, TestMsg, closed_by_listener, config, frame_of, handshake, hello, reserve_addrs,
    run_executor, wait_for,
};

/// Connects to `addr`, writes `bytes`, and reports whether the server then closed the
/// connection (end of file or reset) within the wait limit, writing nothing (it answers
/// only a valid Hello).
async fn closed_after_sending(addr: std::net::SocketAddr, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("connect to the listener");
    s.write_all(bytes).await.expect("write");
    closed_by_listener(&mut s).await
}

fn hello_frame(cluster_id: u64, from_replica: u8, shard: u16, protocol_version: u16) -> Vec<u8> {
    frame_of(&corepax::wire::frame::Hello {
        cluster_id,
        shard,
        protocol_version,
        ..hello(from_replica)
    })
}

/// Completes the handshake as replica `from` (no cluster key), then writes `bytes`;
/// whether the listener closed the connection.
async fn closed_after_handshake(addr: std::net::SocketAddr, from: u8, bytes: &[u8]) -> bool {
    let (mut s, challenge) = handshake(addr, &hello(from), |_| Proof { tag: None }).await;
    assert_eq!(
        challenge.tag, None,
        "a listener without a key proves nothing"
    );
    s.write_all(bytes).await.expect("write");
    closed_by_listener(&mut s).await
}

#[test]
fn bad_connections_are_closed_and_listener_survives() {
    run_executor("reject-bad", || async {
        let addrs = reserve_addrs(3);
        let got = Rc::new(RefCell::new(Vec::new()));
        let sink = got.clone();
        let t0 = Transport::<TestMsg>::start(config(0, &addrs), move |from, msg| {
            sink.borrow_mut().push((from, msg));
        })
        .await
        .expect("transport starts");
        let addr = t0.local_addr();

        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "http garbage",
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            ),
            (
                "wrong cluster",
                hello_frame(CLUSTER_ID + 1, 1, 0, PROTOCOL_VERSION),
            ),
            (
                "wrong shard",
                hello_frame(CLUSTER_ID, 1, 3, PROTOCOL_VERSION),
            ),
            (
                "wrong version",
                hello_frame(CLUSTER_ID, 1, 0, PROTOCOL_VERSION + 1),
            ),
            (
                "claims to be us",
                hello_frame(CLUSTER_ID, 0, 0, PROTOCOL_VERSION),
            ),
            (
                "unknown replica",
                hello_frame(CLUSTER_ID, 9, 0, PROTOCOL_VERSION),
            ),
            (
                "checksum garbage",
                vec![4, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0],
            ),
        ];
        for (i, (name, bytes)) in cases.iter().enumerate() {
            assert!(
                closed_after_sending(addr, bytes).await,
                "{name}: connection left open"
            );
            let rejected = i as u64 + 1;
            assert!(
                wait_for(|| t0.stats().conns_rejected == rejected).await,
                "{name}: not counted"
            );
        }

        // A good handshake followed by a corrupted frame: closed as a frame error.
        let mut bytes = Vec::new();
        frame::encode(&TestMsg::Seq { from: 1, n: 0 }, &mut bytes).expect("encodes");
        frame::encode(&TestMsg::Seq { from: 1, n: 1 }, &mut bytes).expect("encodes");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        assert!(
            closed_after_handshake(addr, 1, &bytes).await,
            "corrupt frame: connection left open"
        );
        assert!(wait_for(|| t0.stats().conns_frame_errors == 1).await);
        // Frames before the bad one were delivered; the bad one was not.
        assert_eq!(*got.borrow(), vec![(1, TestMsg::Seq { from: 1, n: 0 })]);

        // A frame claiming more than frame_bytes_max is refused from its header alone.
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&0u64.to_le_bytes());
        assert!(
            closed_after_handshake(addr, 2, &bytes).await,
            "oversized frame: connection left open"
        );
        assert!(wait_for(|| t0.stats().conns_frame_errors == 2).await);

        // The listener still serves a real peer.
        let t1 = Transport::<TestMsg>::start(config(1, &addrs), |_, _| {})
            .await
            .expect("starts");
        assert!(wait_for(|| t1.stats().peers[0].connected).await);
        t1.send(0, &TestMsg::Seq { from: 1, n: 42 });
        assert!(
            wait_for(|| got.borrow().len() == 2).await,
            "message from a real peer arrived"
        );
        assert_eq!(got.borrow()[1], (1, TestMsg::Seq { from: 1, n: 42 }));
        let s = t0.stats();
        assert_eq!(s.conns_rejected, cases.len() as u64);
        assert_eq!(s.conns_accepted, cases.len() as u64 + 3);

        t1.stop().await;
        t0.stop().await;
    });
}
