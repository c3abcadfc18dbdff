//! Peer transport throughput: 64-byte frames one way over loopback, sender and receiver
//! each in its own glommio executor thread, against raw blocking sockets in the same run
//! (DESIGN §6: ~250k msgs/s at one message per write, ~3.9M msgs/s at 16 per write).
//!
//! Run: `cargo bench --bench transport`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use corepax::transport::{Transport, TransportConfig};
use corepax::wire::frame::FRAME_HEADER_BYTES;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Bytes of one frame on the wire, header included (as in DESIGN §6's 64 B messages).
const FRAME_BYTES: usize = 64;
/// Payload bytes that make a `BenchMsg::Data` frame exactly FRAME_BYTES long: postcard
/// spends one byte on the variant and one on the length.
const DATA_BYTES: usize = FRAME_BYTES - FRAME_HEADER_BYTES - 2;
/// Measured window per case, after the warm-up.
const MEASURE_MS: u64 = 2_000;
const WARMUP_MS: u64 = 300;
const SEND_QUEUE_BYTES_MAX: usize = 1024 * 1024;

/// Carries `Bytes`, as a real message's keys and values would: serde writes it as one
/// byte string, while a `Vec<u8>` goes element by element (see the codec line).
#[derive(Debug, Serialize, Deserialize)]
enum BenchMsg {
    Data(Bytes),
}

/// The same message with a `Vec<u8>`, for the codec comparison only.
#[derive(Debug, Serialize, Deserialize)]
enum BenchMsgVec {
    Data(Vec<u8>),
}

/// How the sender paces itself between yields to the executor.
#[derive(Debug, Clone, Copy)]
enum Pacing {
    /// Send this many, then yield (the writer runs and takes what is queued).
    Burst(usize),
    /// Keep the queue filled up to half its limit.
    Saturate,
}

struct Measured {
    msgs_per_s: f64,
    frames_per_write: f64,
    drops: u64,
}

fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    ls.iter().map(|l| l.local_addr().expect("addr")).collect()
}

fn config(me: u8, addrs: &[SocketAddr]) -> TransportConfig {
    TransportConfig {
        cluster_id: 7,
        cluster_key: None,
        me,
        shard: 0,
        listen: addrs[usize::from(me)],
        peers: (0..addrs.len())
            .map(|i| (i != usize::from(me)).then_some(addrs[i]))
            .collect(),
        frame_bytes_max: 64 * 1024,
        send_queue_bytes_max: SEND_QUEUE_BYTES_MAX,
        reconnect_backoff_min_ms: 5,
        reconnect_backoff_max_ms: 100,
    }
}

fn executor(name: &str) -> glommio::LocalExecutorBuilder {
    // Small io_memory: sockets do not use it, and two executors need not pin 60 MiB.
    glommio::LocalExecutorBuilder::default()
        .name(name)
        .io_memory(512 * 1024)
}

fn run_transport(pacing: Pacing) -> Measured {
    let addrs = free_addrs(2);
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // The receiver outlives the sender, so its closing is not counted as the sender's drops.
    let tx_done = Arc::new(AtomicBool::new(false));

    let rx = {
        let (addrs, received, stop) = (addrs.clone(), received.clone(), tx_done.clone());
        executor("bench-rx")
            .spawn(move || async move {
                let counter = received.clone();
                let t = Transport::<BenchMsg>::start(config(1, &addrs), move |_, msg| {
                    let BenchMsg::Data(d) = msg;
                    debug_assert_eq!(d.len(), DATA_BYTES);
                    counter.fetch_add(1, Ordering::Relaxed);
                })
                .await
                .expect("receiver starts");
                while !stop.load(Ordering::Relaxed) {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                }
                t.stop().await;
            })
            .expect("receiver executor")
    };
    let tx = {
        let (addrs, stop) = (addrs.clone(), stop.clone());
        executor("bench-tx")
            .spawn(move || async move {
                let t = Transport::<BenchMsg>::start(config(0, &addrs), |_, _| {})
                    .await
                    .expect("sender starts");
                while !t.stats().peers[1].connected {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                let msg = BenchMsg::Data(Bytes::from(vec![0xAB; DATA_BYTES]));
                while !stop.load(Ordering::Relaxed) {
                    match pacing {
                        Pacing::Burst(n) => {
                            for _ in 0..n {
                                t.send(1, &msg);
                            }
                            // Back off rather than overflow the queue when the socket is
                            // the bottleneck; otherwise just let the writer run.
                            if t.queued_bytes(1) >= SEND_QUEUE_BYTES_MAX / 2 {
                                glommio::timer::sleep(Duration::from_micros(100)).await;
                            } else {
                                futures_lite::future::yield_now().await;
                            }
                        }
                        Pacing::Saturate => {
                            while t.queued_bytes(1) < SEND_QUEUE_BYTES_MAX / 2 {
                                t.send(1, &msg);
                            }
                            glommio::timer::sleep(Duration::from_micros(100)).await;
                        }
                    }
                }
                let s = t.stats().peers[1];
                t.stop().await;
                s
            })
            .expect("sender executor")
    };

    std::thread::sleep(Duration::from_millis(WARMUP_MS));
    let (n0, t0) = (received.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_millis(MEASURE_MS));
    let (n1, t1) = (received.load(Ordering::Relaxed), Instant::now());
    stop.store(true, Ordering::Relaxed);
    let s = tx.join().expect("sender ran");
    tx_done.store(true, Ordering::Relaxed);
    rx.join().expect("receiver ran");
    Measured {
        msgs_per_s: (n1 - n0) as f64 / (t1 - t0).as_secs_f64(),
        frames_per_write: s.frames_sent as f64 / s.writes.max(1) as f64,
        drops: s.drops_down + s.drops_queue_full + s.drops_disconnect + s.drops_unencodable,
    }
}

/// Blocking std sockets, `per_write` 64-byte messages per write call: the floor the
/// transport is compared against, measured in the same run.
fn run_raw(per_write: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let bytes = bytes.clone();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        })
    };
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            let batch = vec![0xABu8; FRAME_BYTES * per_write];
            while !stop.load(Ordering::Relaxed) {
                if s.write_all(&batch).is_err() {
                    break;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(WARMUP_MS));
    let (b0, t0) = (bytes.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_millis(MEASURE_MS));
    let (b1, t1) = (bytes.load(Ordering::Relaxed), Instant::now());
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    reader.join().expect("reader");
    (b1 - b0) as f64 / FRAME_BYTES as f64 / (t1 - t0).as_secs_f64()
}

/// Encode and decode alone, no sockets: the per-message CPU cost on each side. Batches
/// reuse one buffer, so page faults on fresh memory are not counted.
fn run_codec<M: Serialize + DeserializeOwned>(msg: M) -> (f64, f64) {
    const BATCH: usize = 1_000;
    const ROUNDS: usize = 1_000;
    let mut buf = Vec::with_capacity(BATCH * FRAME_BYTES);
    let t0 = Instant::now();
    for _ in 0..ROUNDS {
        buf.clear();
        for _ in 0..BATCH {
            corepax::wire::frame::encode(&msg, &mut buf).expect("encodes");
        }
        std::hint::black_box(&buf);
    }
    let encode_ns = t0.elapsed().as_nanos() as f64 / (BATCH * ROUNDS) as f64;
    let t1 = Instant::now();
    for _ in 0..ROUNDS {
        let mut pos = 0;
        let mut n = 0;
        while let Ok(Some((m, used))) = corepax::wire::frame::decode::<M>(&buf[pos..], 64 * 1024) {
            std::hint::black_box(m);
            pos += used;
            n += 1;
        }
        assert_eq!(n, BATCH);
    }
    let decode_ns = t1.elapsed().as_nanos() as f64 / (BATCH * ROUNDS) as f64;
    (encode_ns, decode_ns)
}

fn main() {
    let mut probe = Vec::new();
    corepax::wire::frame::encode(
        &BenchMsg::Data(Bytes::from(vec![0; DATA_BYTES])),
        &mut probe,
    )
    .expect("bench message encodes");
    assert_eq!(probe.len(), FRAME_BYTES, "bench frame size");
    println!("command: cargo bench --bench transport");
    println!(
        "config: {FRAME_BYTES}-byte frames one way over 127.0.0.1, sender and receiver in two \
         glommio executors (unpinned), send_queue_bytes_max {SEND_QUEUE_BYTES_MAX}, \
         warm-up {WARMUP_MS} ms, measured {MEASURE_MS} ms per case"
    );
    let (encode_ns, decode_ns) = run_codec(BenchMsg::Data(Bytes::from(vec![0xAB; DATA_BYTES])));
    println!(
        "codec alone, Bytes payload: encode {encode_ns:.0} ns/frame, decode {decode_ns:.0} ns/frame"
    );
    let (encode_ns, decode_ns) = run_codec(BenchMsgVec::Data(vec![0xAB; DATA_BYTES]));
    println!(
        "codec alone, Vec<u8> payload: encode {encode_ns:.0} ns/frame, decode {decode_ns:.0} ns/frame"
    );
    println!(
        "{:<34} {:>14} {:>16} {:>8}",
        "case", "msgs/s", "frames/write", "drops"
    );
    for per_write in [1, 16] {
        let rate = run_raw(per_write);
        println!(
            "{:<34} {:>14.0} {:>16} {:>8}",
            format!("raw std socket, {per_write} per write"),
            rate,
            per_write,
            "-"
        );
    }
    for pacing in [Pacing::Burst(1), Pacing::Burst(16), Pacing::Saturate] {
        let m = run_transport(pacing);
        let name = match pacing {
            Pacing::Burst(n) => format!("transport, {n} send(s) per yield"),
            Pacing::Saturate => "transport, queue kept half full".to_string(),
        };
        println!(
            "{:<34} {:>14.0} {:>16.1} {:>8}",
            name, m.msgs_per_s, m.frames_per_write, m.drops
        );
    }
}
