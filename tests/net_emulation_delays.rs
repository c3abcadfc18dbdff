//! The emulated network delays packets between namespaces as its profile says: one-way
//! delays measured with timestamps (every namespace shares the machine's monotonic clock)
//! match each directed link's within 10%; a cut drops everything one way only; heal
//! restores it. Needs root and /dev/net/tun (CI runs as root): without them it fails,
//! saying so.

use corepax::net::{Network, Profile, node_addr};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const PROFILE: &str = r#"
regions = ["a", "b", "c"]
[[link]]
from = "a"
to = "b"
delay_ms = 3.0
[[link]]
from = "b"
to = "a"
delay_ms = 6.0
[[link]]
between = ["a", "c"]
delay_ms = 4.0
jitter_ms = 0.2
distribution = "normal"
[[link]]
between = ["b", "c"]
delay_ms = 2.0
"#;

const PORT: u16 = 7000;
const PROBES: usize = 25;

fn need_root() {
    if let Some(m) = corepax::net::missing_capability() {
        panic!("this test needs what network emulation needs: {m}");
    }
}

/// Median one-way delay (ms) of probes from node `a` to node `b`, or None if none arrived.
fn one_way_ms(net: &Network, a: usize, b: usize, base: Instant) -> Option<f64> {
    let rx = net
        .ns(b)
        .run(|| UdpSocket::bind(SocketAddr::from((node_addr(b), PORT))))
        .unwrap()
        .unwrap();
    let tx = net
        .ns(a)
        .run(|| UdpSocket::bind(SocketAddr::from((node_addr(a), 0))))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let to = SocketAddr::from((node_addr(b), PORT));
    let recv = std::thread::spawn(move || {
        let mut delays = Vec::new();
        let mut buf = [0u8; 16];
        while let Ok(n) = rx.recv(&mut buf) {
            if n == 16 {
                let sent = u128::from_le_bytes(buf);
                delays.push((base.elapsed().as_nanos() - sent) as f64 / 1e6);
            }
        }
        delays
    });
    for _ in 0..PROBES {
        tx.send_to(&base.elapsed().as_nanos().to_le_bytes(), to)
            .unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    let mut d = recv.join().unwrap();
    d.sort_by(f64::total_cmp);
    (!d.is_empty()).then(|| d[d.len() / 2])
}

#[test]
fn one_way_delays_match_the_profile_and_cuts_are_one_way() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::from_toml(PROFILE, "test").unwrap();
    let links = profile.link_matrix(3).unwrap();
    let net = Network::start("test", &profile, 3, dir.path()).unwrap();
    let base = Instant::now();
    for (a, row) in links.iter().enumerate() {
        for (b, link) in row.iter().enumerate() {
            if a == b {
                continue;
            }
            let want = link.delay_ms;
            let got = one_way_ms(&net, a, b, base).expect("probes arrive");
            assert!(
                (got - want).abs() <= want * 0.1,
                "{a} -> {b}: measured {got:.3} ms, profile {want} ms"
            );
        }
    }
    let control = net.control();
    control.cut(0, 1).unwrap();
    assert_eq!(one_way_ms(&net, 0, 1, base), None, "cut 0 -> 1 drops");
    assert!(one_way_ms(&net, 1, 0, base).is_some(), "1 -> 0 still flows");
    control.heal().unwrap();
    assert!(one_way_ms(&net, 0, 1, base).is_some(), "healed");
    let stats = control.send("stats").unwrap();
    assert!(stats.contains("cut="), "{stats}");
}
