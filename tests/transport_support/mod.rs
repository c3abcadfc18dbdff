//! Helpers shared by the tests/transport_*.rs scenarios (a directory, so cargo does not
//! build it as a test of its own).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use corepax::transport::TransportConfig;
use corepax::wire::auth::{Challenge, NONCE_BYTES, Proof};
use corepax::wire::frame::{self, HELLO_FRAME_BYTES_MAX, Hello, PROTOCOL_VERSION};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use serde::{Deserialize, Serialize};

/// A stand-in for the protocol's Message enum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TestMsg {
    /// The n-th message `from` sent on one link, to check arrival and order.
    Seq { from: u8, n: u64 },
    /// Bulk payload.
    Blob(Vec<u8>),
}

/// Cluster id used by every test transport.
pub const CLUSTER_ID: u64 = 0xC0DE_BA5E;

/// Every wait in these tests gives up after this long, so a broken transport fails the test
/// instead of hanging it.
pub const WAIT_MS_MAX: u64 = 20_000;

/// Free loopback addresses for a cluster whose members must know each other before any
/// of them binds: bind port 0, note the port, release it.
pub fn reserve_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr"))
        .collect()
}

/// The config of replica `me` in a cluster whose members listen on `addrs`.
pub fn config(me: u8, addrs: &[SocketAddr]) -> TransportConfig {
    TransportConfig {
        cluster_id: CLUSTER_ID,
        cluster_key: None,
        me,
        shard: 0,
        listen: addrs[usize::from(me)],
        peers: addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (i != usize::from(me)).then_some(*a))
            .collect(),
        frame_bytes_max: 64 * 1024,
        send_queue_bytes_max: 1024 * 1024,
        reconnect_backoff_min_ms: 5,
        reconnect_backoff_max_ms: 200,
    }
}

/// Waits (on the glommio executor) until `cond` holds; false after `WAIT_MS_MAX`.
pub async fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
    true
}

/// Runs `f` to completion on a fresh glommio executor in its own thread.
pub fn run_executor<F, Fut, T>(name: &str, f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .name(name)
        .spawn(f)
        .expect("glommio executor starts")
        .join()
        .expect("executor thread completes")
}

/// The Hello replica `from_replica` of our cluster sends to shard 0.
pub fn hello(from_replica: u8) -> Hello {
    Hello {
        cluster_id: CLUSTER_ID,
        from_replica,
        shard: 0,
        protocol_version: PROTOCOL_VERSION,
        nonce: [7; NONCE_BYTES],
    }
}

/// `msg` as one frame.
pub fn frame_of<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(msg, &mut out).expect("encodes");
    out
}

/// Connects to `addr` as a dialer would: writes `hello`, reads the listener's Challenge and
/// writes the Proof `prove` makes of it. Returns the stream and the Challenge.
pub async fn handshake(
    addr: SocketAddr,
    hello: &Hello,
    prove: impl FnOnce(&Challenge) -> Proof,
) -> (TcpStream, Challenge) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&frame_of(hello)).await.expect("write Hello");
    s.set_read_timeout(Some(Duration::from_millis(WAIT_MS_MAX)))
        .expect("read timeout");
    let mut buf = Vec::new();
    let challenge = loop {
        if let Some((c, _)) =
            frame::decode::<Challenge>(&buf, HELLO_FRAME_BYTES_MAX).expect("a valid Challenge")
        {
            break c;
        }
        let mut chunk = [0u8; 128];
        let n = s.read(&mut chunk).await.expect("read the Challenge");
        assert!(n > 0, "closed before the Challenge");
        buf.extend_from_slice(&chunk[..n]);
    };
    let proof = prove(&challenge);
    s.write_all(&frame_of(&proof)).await.expect("write Proof");
    (s, challenge)
}

/// Whether the listener closes `s` (end of file or reset) within the wait limit, without
/// writing anything more.
pub async fn closed_by_listener(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(WAIT_MS_MAX)))
        .expect("read timeout");
    let mut buf = [0u8; 16];
    match s.read(&mut buf).await {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::TimedOut,
    }
}
