//! Three replicas of one shard, each on its own executor thread, send to each other at once:
//! every message must arrive, in send order per link, with no drops and with sends coalesced
//! into far fewer write calls than messages; every other message is encoded once and its
//! frame sent to both peers (`Transport::send_frame`).

mod transport_support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corepax::transport::{Transport, TransportStats};
use transport_support::{TestMsg, config, reserve_addrs, run_executor, wait_for};

const REPLICAS: u8 = 3;
const MSGS_PER_LINK: u64 = 3_000;
/// Sends made back to back before yielding to the executor; bounds the writes per link.
const BURST: u64 = 50;

struct Outcome {
    /// Sequence numbers received, by sender.
    received: Vec<Vec<u64>>,
    links_up: bool,
    all_arrived: bool,
    stats: TransportStats,
}

#[test]
fn three_replicas_exchange_messages_in_order() {
    let addrs = reserve_addrs(usize::from(REPLICAS));
    let finished = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..REPLICAS)
        .map(|me| {
            let addrs = addrs.clone();
            let finished = finished.clone();
            std::thread::spawn(move || {
                run_executor(&format!("replica-{me}"), move || async move {
                    let received = Rc::new(RefCell::new(vec![Vec::new(); usize::from(REPLICAS)]));
                    let sink = received.clone();
                    let t = Transport::<TestMsg>::start(config(me, &addrs), move |from, msg| {
                        if let TestMsg::Seq { from: claimed, n } = msg {
                            // The sender's claim and the link it came on must agree.
                            let idx = if claimed == from {
                                usize::from(from)
                            } else {
                                usize::MAX
                            };
                            if let Some(v) = sink.borrow_mut().get_mut(idx) {
                                v.push(n);
                            }
                        }
                    })
                    .await
                    .expect("transport starts");
                    let peers: Vec<u8> = (0..REPLICAS).filter(|&p| p != me).collect();
                    let links_up = wait_for(|| {
                        let s = t.stats();
                        peers.iter().all(|&p| s.peers[usize::from(p)].connected)
                    })
                    .await;
                    for n in 0..MSGS_PER_LINK {
                        let msg = TestMsg::Seq { from: me, n };
                        if n % 2 == 0 {
                            for &p in &peers {
                                t.send(p, &msg);
                            }
                        } else {
                            // Every other message encoded once for all peers.
                            let mut frame = Vec::new();
                            corepax::wire::frame::encode(&msg, &mut frame).expect("encodes");
                            for &p in &peers {
                                t.send_frame(p, &frame);
                            }
                        }
                        if n % BURST == BURST - 1 {
                            glommio::timer::sleep(Duration::from_micros(200)).await;
                        }
                    }
                    let all_arrived = wait_for(|| {
                        let r = received.borrow();
                        peers
                            .iter()
                            .all(|&p| r[usize::from(p)].len() as u64 >= MSGS_PER_LINK)
                    })
                    .await;
                    // Two rounds, so no replica stops (closing links) before every
                    // replica has received everything and read its counters.
                    let replicas = usize::from(REPLICAS);
                    finished.fetch_add(1, Ordering::SeqCst);
                    wait_for(|| finished.load(Ordering::SeqCst) >= replicas).await;
                    let stats = t.stats();
                    finished.fetch_add(1, Ordering::SeqCst);
                    wait_for(|| finished.load(Ordering::SeqCst) >= 2 * replicas).await;
                    t.stop().await;
                    let received = received.borrow().clone();
                    Outcome {
                        received,
                        links_up,
                        all_arrived,
                        stats,
                    }
                })
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = threads
        .into_iter()
        .map(|h| h.join().expect("replica thread"))
        .collect();

    let expected: Vec<u64> = (0..MSGS_PER_LINK).collect();
    for (me, o) in outcomes.iter().enumerate() {
        assert!(o.links_up, "replica {me}: links did not come up");
        assert!(o.all_arrived, "replica {me}: not everything arrived");
        for peer in (0..usize::from(REPLICAS)).filter(|&p| p != me) {
            assert_eq!(
                o.received[peer], expected,
                "replica {me} from {peer}: lost or reordered"
            );
            let s = &o.stats.peers[peer];
            assert_eq!(s.frames_received, MSGS_PER_LINK, "replica {me} from {peer}");
            assert_eq!(s.frames_sent, MSGS_PER_LINK, "replica {me} to {peer}");
            assert_eq!(
                s.drops_down + s.drops_queue_full + s.drops_disconnect + s.drops_unencodable,
                0,
                "replica {me} to {peer}: {s:?}"
            );
            // Each burst is sent without yielding, so the writer can take it whole.
            assert!(
                s.writes <= MSGS_PER_LINK / BURST,
                "replica {me} to {peer}: {} writes for {} frames, no coalescing",
                s.writes,
                s.frames_sent
            );
            assert!(s.incoming_connected && s.connected);
        }
        assert_eq!(o.received[me], Vec::<u64>::new());
        assert_eq!(o.stats.conns_rejected, 0);
    }
}
