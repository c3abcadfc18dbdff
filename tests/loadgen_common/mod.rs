//! A tiny RESP server for load generator tests: answers GET/SET/DEL/MGET, counts
//! commands, and can stall every reply once for a while (a GC pause, a disk hiccup).
#![allow(dead_code)]
use corepax::wire::resp::{self, Limits, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Stall every reply once: `after` the first command, for `pause`.
#[derive(Clone, Copy, Debug)]
pub struct Stall {
    pub after: Duration,
    pub pause: Duration,
}

#[derive(Default)]
struct StallState {
    first: Option<Instant>,
    until: Option<Instant>,
    done: bool,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub commands: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl TestServer {
    pub fn start(stall: Option<Stall>) -> TestServer {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("addr");
        let commands = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(StallState::default()));
        let (c, s) = (commands.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((conn, _)) => {
                        let (c, s, st) = (c.clone(), s.clone(), state.clone());
                        std::thread::spawn(move || serve(conn, c, s, st, stall));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TestServer {
            addr,
            commands,
            stop,
        }
    }
}

fn serve(
    mut conn: TcpStream,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<StallState>>,
    stall: Option<Stall>,
) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_nodelay(true);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let n = match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        buf.extend_from_slice(&chunk[..n]);
        out.clear();
        let mut used = 0;
        while let Ok(Some((v, k))) = resp::decode(&buf[used..], &Limits::default()) {
            used += k;
            // INFO is how the load generator reads a server's CPU time around a run, not a
            // request of the workload.
            if !is_info(&v) {
                count.fetch_add(1, Ordering::Relaxed);
            }
            reply(&v, &mut out);
        }
        buf.drain(..used);
        if let Some(st) = stall {
            let until = {
                let mut g = state.lock().expect("lock");
                let now = Instant::now();
                let first = *g.first.get_or_insert(now);
                if !g.done && now >= first + st.after {
                    g.done = true;
                    g.until = Some(now + st.pause);
                }
                g.until
            };
            if let Some(u) = until {
                let now = Instant::now();
                if u > now {
                    std::thread::sleep(u - now);
                }
            }
        }
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

fn is_info(v: &Value) -> bool {
    matches!(v, Value::Array(Some(args))
        if matches!(args.first(), Some(Value::Bulk(Some(b))) if b.eq_ignore_ascii_case(b"INFO")))
}

fn reply(v: &Value, out: &mut Vec<u8>) {
    let Value::Array(Some(args)) = v else {
        resp::encode_error(out, "ERR expected a command");
        return;
    };
    let name = match args.first() {
        Some(Value::Bulk(Some(b))) => b.to_ascii_uppercase(),
        _ => b"?".to_vec(),
    };
    match &name[..] {
        b"GET" => resp::encode_bulk(out, None),
        b"DEL" => resp::encode_integer(out, 1),
        b"MGET" => {
            resp::encode_array_header(out, Some(args.len() - 1));
            for _ in 1..args.len() {
                resp::encode_bulk(out, None);
            }
        }
        _ => resp::encode_simple(out, "OK"),
    }
}

/// A small workload for tests (no preload, no warm-up): `top` adds or overrides
/// top-level fields, `load` is the body of the `[load]` section.
pub fn workload(top: &str, load: &str) -> corepax::loadgen::workload::Workload {
    let text = format!(
        r#"
name = "test"
record_count = 1000
preload = false
{top}
[keys]
distribution = "uniform"
[value]
size_bytes = 16
[mix]
get = 0.5
set = 0.5
[load]
{load}
"#
    );
    corepax::loadgen::workload::Workload::from_toml(&text, "test").expect("valid test workload")
}
