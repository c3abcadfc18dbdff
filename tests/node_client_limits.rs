//! Node: `maxclients` answers one connection too many with Redis's error and closes it;
//! client input held beyond the shard's share of `client_input_bytes_max` closes the
//! connection that grew it, with an error; the node keeps serving.
mod node_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use corepax::wire::resp::Value;
use node_support::*;

const MAXCLIENTS: usize = 10;

#[test]
fn client_count_and_input_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let input_max = (SHARDS * (16 << 20)).to_string();
    let cluster = Cluster::start(
        1,
        dir.path(),
        &[
            "--maxclients",
            &MAXCLIENTS.to_string(),
            "--client-input-bytes-max",
            &input_max,
        ],
    );
    let addr = cluster.clients[0];

    // maxclients: the node's own leader probes closed already; fill every place.
    let mut open: Vec<Client> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while open.len() < MAXCLIENTS {
        let mut c = Client::connect(addr).unwrap();
        match c.cmd(&["PING"]) {
            Ok(Value::Simple(s)) if s == "PONG" => open.push(c),
            // A probe connection of the test harness may still hold a place for a moment.
            other => {
                assert!(Instant::now() < deadline, "place {}: {other:?}", open.len());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let mut extra = Client::connect(addr).unwrap();
    let v = extra.read_reply().unwrap();
    assert!(
        matches!(&v, Value::Error(e) if e == "ERR max number of clients reached"),
        "{v:?}"
    );
    assert!(extra.read_reply().is_err(), "closed after the error");
    // A place given back is taken again.
    open.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::connect(addr).unwrap();
        if let Ok(Value::Simple(s)) = c.cmd(&["PING"]) {
            assert_eq!(s, "PONG");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was never given out"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(open);

    // Input: 8 connections each hold 6 MB of one unfinished 16 MB SET. Two shards share
    // them, so one shard holds at least 4 × 6 MB, over its 16 MiB share.
    std::thread::sleep(Duration::from_millis(200));
    let chunk = vec![b'x'; 1 << 20];
    let mut streams = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$16000000\r\n");
        for _ in 0..6 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
        streams.push(s);
    }
    let mut refused = 0;
    for s in &mut streams {
        s.set_read_timeout(Some(Duration::from_millis(1_000)))
            .unwrap();
        let mut buf = Vec::new();
        let mut b = [0u8; 512];
        while let Ok(n) = s.read(&mut b) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&b[..n]);
        }
        let text = String::from_utf8_lossy(&buf);
        if text.starts_with("-ERR client input buffers of this shard hold") {
            refused += 1;
        } else {
            assert!(text.is_empty(), "unexpected answer: {text}");
        }
    }
    assert!(refused >= 1, "no connection was refused");
    assert!(
        refused <= 6,
        "{refused} refused: more than needed to stay under the limit"
    );
    drop(streams);

    // Still serving, and the freed input budget takes a large command again.
    let mut c = Client::connect(addr).unwrap();
    let big = "y".repeat(8 << 20);
    assert!(is_ok(&c.set("big", &big).unwrap()));
    assert_eq!(
        bulk(&c.cmd(&["GET", "big"]).unwrap()).map(|v| v.len()),
        Some(big.len())
    );
}
