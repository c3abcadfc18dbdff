//! `on_drained(from)` follows every run of frames one read from `from` brought: a receiver
//! that leaves work until then (the shard proposes a read's forwards in one step) never
//! leaves it undone. Replica 0 sends bursts to replica 1; replica 1 records every message
//! and every drained call in order.

mod transport_support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use corepax::transport::Transport;
use transport_support::{TestMsg, config, reserve_addrs, run_executor, wait_for};

/// What replica 1 saw, in order: a message (its sequence number) or a drained call.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Seen {
    Msg(u64),
    Drained(u8),
}

const BURSTS: u64 = 50;
const PER_BURST: u64 = 40;

#[test]
fn every_message_is_followed_by_a_drained_call_from_its_sender() {
    run_executor("drained", || async {
        let addrs = reserve_addrs(2);
        let seen: Rc<RefCell<Vec<Seen>>> = Rc::default();
        let (on_msg, on_drained) = (seen.clone(), seen.clone());
        let t1 = Transport::start_with_payload(
            config(1, &addrs),
            move |_, msg: TestMsg, _| {
                if let TestMsg::Seq { n, .. } = msg {
                    on_msg.borrow_mut().push(Seen::Msg(n));
                }
            },
            move |from| on_drained.borrow_mut().push(Seen::Drained(from)),
        )
        .await
        .expect("transport starts");
        let t0 = Transport::<TestMsg>::start(config(0, &addrs), |_, _| {})
            .await
            .expect("transport starts");
        assert!(wait_for(|| t0.stats().peers[1].connected).await);

        let mut n = 0;
        for _ in 0..BURSTS {
            for _ in 0..PER_BURST {
                t0.send(1, &TestMsg::Seq { from: 0, n });
                n += 1;
            }
            glommio::timer::sleep(Duration::from_micros(200)).await;
        }
        let total = BURSTS * PER_BURST;
        let all_in = || {
            let s = seen.borrow();
            s.iter().filter(|x| matches!(x, Seen::Msg(_))).count() as u64 == total
                && matches!(s.last(), Some(Seen::Drained(_)))
        };
        assert!(
            wait_for(all_in).await,
            "not every message arrived and was drained"
        );

        check(&seen.borrow(), total);
        t0.stop().await;
        t1.stop().await;
    });
}

/// Messages in order, every drained call from replica 0 and after at least one message
/// (a read that brought no whole frame is not reported), fewer drained calls than messages.
fn check(s: &[Seen], total: u64) {
    let msgs: Vec<u64> = s
        .iter()
        .filter_map(|x| if let Seen::Msg(n) = x { Some(*n) } else { None })
        .collect();
    assert_eq!(msgs, (0..total).collect::<Vec<_>>());
    assert!(s.iter().all(|x| !matches!(x, Seen::Drained(f) if *f != 0)));
    for w in s.windows(2) {
        assert!(
            !(matches!(w[0], Seen::Drained(_)) && matches!(w[1], Seen::Drained(_))),
            "a drained call with no message before it"
        );
    }
    // Bursts were read in runs of several frames: fewer drained calls than messages.
    let drained = s.iter().filter(|x| matches!(x, Seen::Drained(_))).count() as u64;
    assert!(
        drained >= 1 && drained < total,
        "{drained} drained calls for {total} messages"
    );
}
