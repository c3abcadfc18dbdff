//! Helpers shared by the tests/transport_*.rs scenarios (a directory, so cargo does not
//! build it as a test of its own).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use corepax::transport::TransportConfig;
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
