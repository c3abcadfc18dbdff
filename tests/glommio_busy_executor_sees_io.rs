//! An executor that never runs out of tasks still sees its I/O complete.
//!
//! The patched glommio (vendor/glommio/COREPAX-PATCH.md) sets its main io_uring ring up with
//! `IORING_SETUP_DEFER_TASKRUN` where the kernel has it: the kernel then posts the ring's
//! completions only when the executor's thread asks for them in `io_uring_enter`. An
//! executor that goes to sleep asks (its wait does); one kept busy by runnable tasks never
//! sleeps, and asks only because each reactor poll does when the kernel flags held work.
//! Without that, the receive below waits until the busy task gives up, and the test fails.
use futures_lite::AsyncReadExt;
use glommio::LocalExecutorBuilder;
use glommio::net::TcpStream;
use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The executor's preemption period: the busy task runs this long between two polls of
/// the reactor, which is where the connect and the receive go to the ring.
const PREEMPT: Duration = Duration::from_millis(10);
/// When the peer answers after the connection: by then the receive has long gone to the
/// ring and found nothing (a poll armed on data already there completes at once, without
/// the kernel holding anything back).
const ANSWER_AFTER: Duration = Duration::from_millis(300);
/// How long the busy task keeps the executor running before it gives up.
const GIVE_UP: Duration = Duration::from_secs(10);

#[test]
fn a_receive_completes_while_another_task_keeps_the_executor_busy() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        std::thread::sleep(ANSWER_AFTER);
        socket.write_all(b"ping").expect("write");
        socket
    });
    let seen_while_busy = LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .preempt_timer(PREEMPT)
        .make()
        .expect("executor")
        .run(async move {
            let received = Rc::new(Cell::new(false));
            let busy = glommio::spawn_local({
                let received = received.clone();
                async move {
                    let start = Instant::now();
                    while !received.get() && start.elapsed() < GIVE_UP {
                        futures_lite::future::yield_now().await;
                    }
                    received.get()
                }
            });
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).await.expect("receive");
            assert_eq!(&buf, b"ping");
            received.set(true);
            busy.await
        });
    drop(peer.join().expect("peer thread"));
    assert!(
        seen_while_busy,
        "the receive completed only after the busy task gave up ({GIVE_UP:?}): the executor \
         did not collect the kernel's held completions while it had tasks to run"
    );
}
