//! Node: malformed RESP, oversized bulks and arrays, unknown commands get an error reply;
//! broken frames close the connection; the node keeps serving and applies nothing partial.
//! A bad `--cpus` stops the node at start with an error naming the field.
mod node_support;
use std::io::Read;

use corepax::wire::resp::Value;
use node_support::*;

fn is_err_with(v: &Value, text: &str) -> bool {
    matches!(v, Value::Error(e) if e.contains(text))
}

#[test]
fn bad_input_gets_errors_and_never_crashes_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let addr = cluster.clients[0];

    let mut c = Client::connect(addr).unwrap();
    let v = c.cmd(&["NOSUCHCMD", "a"]).unwrap();
    assert!(is_err_with(&v, "unknown command"), "{v:?}");
    let v = c.cmd(&["GET"]).unwrap();
    assert!(is_err_with(&v, "wrong number of arguments"), "{v:?}");
    let v = c.cmd(&["SET", "k", "v", "EX", "ten"]).unwrap();
    assert!(is_err_with(&v, "invalid expire time"), "{v:?}");
    let v = c.cmd(&["SET", "k", "v", "LATER"]).unwrap();
    assert!(is_err_with(&v, "LATER"), "{v:?}");
    // The connection is still usable after command errors.
    assert!(is_ok(&c.cmd(&["SET", "k", "v"]).unwrap()));

    // A malformed frame: a good command, then garbage in a bulk length.
    let mut c = Client::connect(addr).unwrap();
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$4\r\nkeyA\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$x\r\n")
        .unwrap();
    assert!(
        is_ok(&c.read_reply().unwrap()),
        "the command before the bad frame runs"
    );
    let v = c.read_reply().unwrap();
    assert!(is_err_with(&v, "Protocol error"), "{v:?}");
    assert!(
        c.read_reply().is_err(),
        "the connection closes after a protocol error"
    );

    // A bulk longer than the limit (16 MiB by default) is refused before it is read.
    let mut c = Client::connect(addr).unwrap();
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$4\r\nkeyB\r\n$999999999\r\n")
        .unwrap();
    let v = c.read_reply().unwrap();
    assert!(is_err_with(&v, "Protocol error"), "{v:?}");

    // An array longer than the limit.
    let mut c = Client::connect(addr).unwrap();
    c.send_raw(b"*99999999\r\n").unwrap();
    let v = c.read_reply().unwrap();
    assert!(is_err_with(&v, "Protocol error"), "{v:?}");

    // Random bytes.
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    use std::io::Write;
    raw.write_all(&[0xff, 0x00, b'*', b'-', b'2', b'\r', b'\n', 0x13])
        .unwrap();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut sink = Vec::new();
    let _ = raw.read_to_end(&mut sink);

    // Nothing partial was applied, and the node still serves.
    let mut c = Client::connect(addr).unwrap();
    assert_eq!(
        bulk(&c.cmd(&["GET", "keyA"]).unwrap()).as_deref(),
        Some("1")
    );
    assert_eq!(bulk(&c.cmd(&["GET", "keyB"]).unwrap()), None);
    assert_eq!(c.cmd(&["PING"]).unwrap(), Value::Simple("PONG".into()));
}

#[test]
fn empty_lines_are_ignored_like_redis() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let mut c = Client::connect(cluster.clients[0]).unwrap();
    c.send_raw(b"\r\n\r\nPING\r\n").unwrap();
    assert_eq!(c.read_reply().unwrap(), Value::Simple("PONG".into()));
}

#[test]
fn a_core_that_is_not_online_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_ports(2);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corepax"))
        .args(["node", "--id", "0", "--client-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--peers")
        .arg(format!("127.0.0.1:{}", port + 1))
        .arg("--data")
        .arg(dir.path())
        .args(["--shards", "1", "--cpus", "4095"])
        .output()
        .expect("run corepax node");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid `cpus`: core 4095 is not online"),
        "{stderr}"
    );
}

/// Replies still go when the connection ends in order: those before a QUIT (its own
/// `+OK` too) and those before the client's end of stream (a half-close) arrive before
/// the socket closes, whatever way the node writes them (a writer that defers its sends
/// must flush them first). After QUIT nothing is answered.
#[test]
fn replies_before_quit_or_end_of_stream_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let addr = cluster.clients[0];

    let mut c = Client::connect(addr).unwrap();
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nq\r\n$1\r\n1\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n")
        .unwrap();
    assert!(is_ok(&c.read_reply().unwrap()), "the SET's reply");
    let v = c.read_reply().unwrap();
    assert!(matches!(&v, Value::Simple(s) if s == "PONG"), "{v:?}");
    assert!(is_ok(&c.read_reply().unwrap()), "QUIT's own reply");
    assert!(
        c.read_reply().is_err(),
        "closed: the PING after QUIT is not answered"
    );

    let mut c = Client::connect(addr).unwrap();
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nh\r\n$1\r\n2\r\n*2\r\n$3\r\nGET\r\n$1\r\nh\r\n")
        .unwrap();
    c.shutdown_write().unwrap();
    assert!(is_ok(&c.read_reply().unwrap()), "the SET's reply");
    assert_eq!(bulk(&c.read_reply().unwrap()).as_deref(), Some("2"));
    assert!(c.read_reply().is_err(), "closed after the replies");
}
