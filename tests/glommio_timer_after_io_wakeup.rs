//! A timer fires even when its executor was woken by IO just before it is due.
//!
//! The patched glommio (vendor/glommio/COREPAX-PATCH.md) keeps a pending timer across the
//! passes of its reactor instead of cancelling and re-arming it. Its first version lost
//! wake-ups two ways (the load generator's open loop hung at its end): a kept timer that
//! fired between the check that it was pending and the sleep had its completion consumed,
//! and the executor slept on a timer that had already fired; and a kept timer firing just
//! before the executor ran its tasks made it park with runnable tasks (here: the task a
//! receive had just woken). Each round races an IO wake-up (the reply of an echo thread,
//! which arrives while the executor sleeps with the timer armed) against a short sleep
//! that nothing but its timer can end; a lost wake-up stops the rounds, which the
//! watchdog reports.
use glommio::net::UdpSocket;
use glommio::{LocalExecutorBuilder, timer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ROUNDS: u64 = 40_000;
/// No round takes this long unless its timer was lost (a round is tens of µs).
const STALL: Duration = Duration::from_secs(5);

/// xorshift64: the rounds' sleeps and the echo's delays, the same in every run.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Answers each datagram after a busy wait of 0–30 µs, until an empty one.
fn echo(socket: std::net::UdpSocket) {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut buf = [0u8; 8];
    loop {
        let (n, from) = socket.recv_from(&mut buf).expect("echo recv");
        if n == 0 {
            return;
        }
        let until = Instant::now() + Duration::from_nanos(next(&mut seed) % 30_000);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        socket.send_to(&buf[..n], from).expect("echo send");
    }
}

#[test]
fn a_short_sleep_ends_after_an_io_wakeup() {
    let echo_socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let echo_addr = echo_socket.local_addr().expect("addr");
    let echo_thread = std::thread::spawn(move || echo(echo_socket));
    let done = Arc::new(AtomicU64::new(0));
    let rounds = done.clone();
    // What the current round waits for: 0 the send, 1 the echo, 2 the timer.
    let stage = Arc::new(AtomicU64::new(0));
    let at = stage.clone();
    let executor = std::thread::spawn(move || {
        LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .make()
            .expect("executor")
            .run(async move {
                let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
                let mut seed = 0x9E37_79B9_7F4A_7C15u64;
                let mut buf = [0u8; 8];
                for i in 0..ROUNDS {
                    let nap = Duration::from_nanos(next(&mut seed) % 100_000);
                    let sleeper = glommio::spawn_local(timer::sleep(nap));
                    at.store(0, Ordering::Relaxed);
                    socket
                        .send_to(&i.to_le_bytes(), echo_addr)
                        .await
                        .expect("send");
                    at.store(1, Ordering::Relaxed);
                    socket.recv_from(&mut buf).await.expect("recv");
                    at.store(2, Ordering::Relaxed);
                    sleeper.await;
                    rounds.store(i + 1, Ordering::Relaxed);
                }
                socket.send_to(&[], echo_addr).await.expect("stop the echo");
            });
    });
    let mut seen = 0;
    let mut since = Instant::now();
    while !executor.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        let now = done.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            since = Instant::now();
        }
        assert!(
            since.elapsed() < STALL,
            "no round ended for {STALL:?} after {seen} of {ROUNDS}, waiting for {}: a wake-up was lost",
            ["the send", "the echo", "the timer"][stage.load(Ordering::Relaxed) as usize]
        );
    }
    executor.join().expect("executor thread");
    echo_thread.join().expect("echo thread");
    assert_eq!(done.load(Ordering::Relaxed), ROUNDS);
}
