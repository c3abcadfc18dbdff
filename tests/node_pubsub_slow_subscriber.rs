//! Node: a subscriber that stops reading is disconnected once more than its bound
//! (32 MiB) waits for it, while publishing goes on (a test of its own: it pushes 48 MiB
//! through three logs, which should not share the disk with other clusters starting).
mod node_support;

use std::time::{Duration, Instant};

use corepax::wire::resp::Value;
use node_support::*;

fn corepax_command(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    corepax::wire::resp::encode_command(&mut out, args);
    out
}

/// A subscriber that stops reading is disconnected once more than the bound (32 MiB)
/// waits for it, and the log goes on: publishing never waits for it.
#[test]
fn a_subscriber_that_does_not_read_is_cut_off() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    // 48 MiB go through every replica's log: without fsync, the test is about the
    // mailbox, not the disk.
    let cluster = Cluster::start(3, dir.path(), &["--no-fsync"]);
    let mut slow = std::net::TcpStream::connect(cluster.clients[0]).unwrap();
    std::io::Write::write_all(&mut slow, &corepax_command(&["SUBSCRIBE", "firehose"])).unwrap();
    let mut publisher = Client::connect(cluster.clients[0]).unwrap();
    let message = "x".repeat(1 << 20);
    let started = Instant::now();
    let mut receivers = Vec::new();
    for _ in 0..48 {
        match publisher.cmd(&["PUBLISH", "firehose", &message]).unwrap() {
            Value::Integer(n) => receivers.push(n),
            other => panic!("PUBLISH answered {other:?}"),
        }
    }
    let took = started.elapsed();
    assert_eq!(receivers[0], 1, "subscribed at first");
    assert_eq!(
        *receivers.last().unwrap(),
        0,
        "cut off by the end: {receivers:?}"
    );
    // What the node wrote before cutting it off is there to read, then the end.
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0usize;
    loop {
        match slow.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    assert!(
        read < 40 << 20,
        "read {read} bytes: more than the bound plus socket buffers"
    );
    eprintln!("48 MiB published in {took:?}; the slow subscriber read {read} bytes before the end");
}
