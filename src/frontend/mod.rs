//! RESP listener: every shard accepts on the node's client port (SO_REUSEPORT lets the
//! kernel spread connections), decodes pipelined commands, routes each key to the shard
//! that owns it, and writes the replies in order with one write per pipeline.

mod clients;
mod commands;
mod conn;
mod info;
mod lists;
mod parse;
mod pubsub;
mod scan;
mod txn;

use std::rc::Rc;

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;

use crate::runtime::node::Local;
use crate::wire::command::{CommandDecoder, Decoded};
use crate::wire::resp::{self, Limits};

pub use commands::{Outcome, Proto};

/// Commands of one pipeline handled before their replies are written, at most.
const PIPELINE_MAX: usize = 1024;
/// Pause after a failed accept (out of file descriptors, say) before the next.
const ACCEPT_ERROR_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// Accepts clients on this shard until the process stops.
pub async fn serve(local: Rc<Local>) -> anyhow::Result<()> {
    let addr = local.cfg.client_addr;
    // Shared by every shard of the node (SO_REUSEPORT).
    let listener = crate::transport::bind_listener(addr, true)
        .map_err(|e| anyhow::anyhow!("binding the client address {addr}: {e}"))?;
    if local.shard.index == 0 {
        println!(
            "corepax node {} ready: clients on {addr}, {} shards",
            local.cfg.id, local.shards
        );
    }
    loop {
        match listener.accept().await {
            Ok(mut stream) => {
                let Some(slot) = clients::ClientSlot::take(local.cfg.maxclients) else {
                    // Like Redis: accept, say why, close.
                    glommio::spawn_local(async move {
                        let _ = stream
                            .write_all(b"-ERR max number of clients reached\r\n")
                            .await;
                    })
                    .detach();
                    continue;
                };
                let local = local.clone();
                glommio::spawn_local(async move {
                    let _ = connection(local, stream).await;
                    drop(slot);
                })
                .detach();
            }
            Err(e) => {
                eprintln!("accept on {addr}: {e}");
                glommio::timer::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

/// Bytes a connection reads ahead while a blocking pop waits (commands pipelined after
/// it wait for it, as in Redis); beyond that it stops reading until the pop answers.
const BLOCKED_READ_AHEAD_BYTES: usize = 64 << 10;

/// Awaits a blocking pop while reading the socket, so a client that closes its connection
/// is noticed: `None` then (or on a read error), and the pop is dropped.
async fn until_closed(
    mut pop: std::pin::Pin<Box<dyn std::future::Future<Output = Outcome>>>,
    stream: &mut TcpStream,
    decoder: &mut CommandDecoder,
    input: &mut clients::InputShare,
) -> Option<Outcome> {
    enum Next {
        Done(Outcome),
        Read(std::io::Result<usize>),
    }
    loop {
        let read = async {
            if decoder.buffered() > BLOCKED_READ_AHEAD_BYTES {
                std::future::pending::<()>().await;
            }
            Next::Read(clients::read_some(stream, decoder, || {}).await)
        };
        let done = async { Next::Done(pop.as_mut().await) };
        match futures_lite::future::or(done, read).await {
            Next::Done(o) => return Some(o),
            Next::Read(Ok(0) | Err(_)) => return None,
            Next::Read(Ok(_)) => {
                if input.grown(decoder).is_err() {
                    return None;
                }
            }
        }
    }
}

/// Pushes written to the client in one write, at most, and bytes after which no more
/// are added to it.
const PUSHES_PER_WRITE_MAX: usize = 256;
const PUSH_WRITE_BYTES: usize = 256 << 10;

/// Writes what shards put in the connection's mailbox until the client sends something:
/// `Some(bytes read)` (0 at the end of the stream), or `None` if the connection fell too
/// far behind and is cut off.
async fn pushes_until_input(
    stream: &mut TcpStream,
    decoder: &mut CommandDecoder,
    subs: &mut pubsub::Subs,
    proto: Proto,
    out: &mut Vec<u8>,
) -> std::io::Result<Option<usize>> {
    enum Next {
        Push(Option<crate::runtime::mailbox::Push>),
        Read(std::io::Result<usize>),
    }
    loop {
        let read = async { Next::Read(clients::read_some(stream, decoder, || {}).await) };
        let push = async { Next::Push(subs.inbox.next().await) };
        let first = match futures_lite::future::or(read, push).await {
            Next::Read(r) => return r.map(Some),
            Next::Push(None) => return Ok(None),
            Next::Push(Some(p)) => p,
        };
        let mut counted = subs.encode(first, out, proto);
        for _ in 1..PUSHES_PER_WRITE_MAX {
            if out.len() >= PUSH_WRITE_BYTES {
                break;
            }
            match subs.inbox.try_next() {
                Some(p) => counted += subs.encode(p, out, proto),
                None => break,
            }
        }
        let write = async { Some(stream.write_all(&out[..]).await) };
        let cut = async {
            subs.inbox.cut_off().await;
            None
        };
        match futures_lite::future::or(write, cut).await {
            Some(r) => r?,
            None => return Ok(None),
        }
        out.clear();
        if out.capacity() > 2 * PUSH_WRITE_BYTES {
            *out = Vec::new(); // A large message passed: give its buffer back.
        }
        subs.inbox.written(counted);
    }
}

async fn connection(local: Rc<Local>, stream: TcpStream) -> std::io::Result<()> {
    let mut conn = conn::Conn::new(local.cfg.requirepass.is_some());
    let result = serve_connection(&local, stream, &mut conn).await;
    pubsub::closed(&local, &mut conn);
    result
}

/// Starts a pipeline's decoded commands in order: the items its reads read prefetched
/// first, its lease reads sharing one clock reading while the replica does not step.
fn start_pipeline(
    local: &Rc<Local>,
    conn: &mut conn::Conn,
    decoder: &mut CommandDecoder,
    decoded: &mut Vec<Decoded>,
    pending: &mut Vec<(commands::Pending, commands::Proto)>,
) {
    if decoded.len() > 1 {
        commands::prefetch_reads(
            local,
            decoded.iter().filter_map(|d| match d {
                Decoded::Command(args) => Some(&args[..]),
                Decoded::NotACommand(_) | Decoded::TooLarge { .. } => None,
            }),
        );
    }
    local.shard.sharing_one_clock_reading(|| {
        for d in decoded.drain(..) {
            let p = match d {
                Decoded::Command(mut args) => {
                    let p = commands::start(local, conn, &mut args);
                    decoder.recycle(args);
                    p
                }
                Decoded::NotACommand(e) => commands::Pending::Ready(Outcome::Error(e.into())),
                Decoded::TooLarge { bytes, bytes_max } => commands::Pending::Ready(Outcome::Error(
                    format!("ERR command of {bytes} bytes exceeds the limit of {bytes_max} bytes"),
                )),
            };
            pending.push((p, conn.proto));
        }
    });
}

async fn serve_connection(
    local: &Rc<Local>,
    mut stream: TcpStream,
    conn: &mut conn::Conn,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let limits = Limits {
        bulk_bytes_max: local.cfg.client_bulk_bytes_max,
        array_len_max: local.cfg.client_array_len_max,
        depth_max: 1,
        ..Limits::default()
    };
    // Commands larger than this cannot be logged by any replica: refused here, before
    // anything is proposed, while the connection goes on with the next command.
    let mut decoder = CommandDecoder::new(limits, crate::limits::COMMAND_BYTES_MAX);
    let mut input = clients::InputShare::new(local.cfg.client_input_bytes_max / local.shards);
    // Grown on demand and released while the client is idle (see `clients::read_some`).
    let mut out: Vec<u8> = Vec::new();
    let mut pending = Vec::new();
    let mut decoded = Vec::new();
    // Each reply is written in the RESP version in force when its command arrived (a
    // HELLO's own reply already in the new one).
    loop {
        if conn.subs.as_ref().is_some_and(|s| s.inbox.overflowed()) {
            return Ok(()); // Too far behind its subscriptions: cut off, as Redis does.
        }
        let mut close = false;
        let mut bad = None;
        // Decoded first, then started: the reads of a pipeline are prefetched together.
        while pending.len() + decoded.len() < PIPELINE_MAX {
            match decoder.next_command() {
                Ok(Some(d)) => decoded.push(d),
                Ok(None) => break,
                Err(e) => {
                    bad = Some(e);
                    close = true;
                    break;
                }
            }
        }
        start_pipeline(local, conn, &mut decoder, &mut decoded, &mut pending);
        if let Some(e) = bad {
            // No partial apply: commands decoded before the bad frame still run and get
            // answers; then the error, then the connection closes (the framing is lost:
            // what follows cannot be told from data).
            pending.push((
                commands::Pending::Ready(Outcome::Error(format!("ERR Protocol error: {e}"))),
                conn.proto,
            ));
        }
        input.taken(&decoder);
        if pending.is_empty() {
            // Read only when every whole command was answered: a client may send a
            // pipeline longer than PIPELINE_MAX and wait for all of it.
            let proto = conn.proto;
            let n = if let Some(subs) = conn.subs.as_mut() {
                // Meanwhile, write what its subscriptions and watches deliver.
                match pushes_until_input(&mut stream, &mut decoder, subs, proto, &mut out).await? {
                    Some(n) => n,
                    None => return Ok(()),
                }
            } else {
                clients::read_some(&mut stream, &mut decoder, || {
                    if out.capacity() > clients::IDLE_OUT_KEEP_BYTES {
                        out = Vec::new();
                    }
                    if pending.capacity() > clients::IDLE_PENDING_KEEP {
                        pending = Vec::new();
                    }
                    if decoded.capacity() > clients::IDLE_PENDING_KEEP {
                        decoded = Vec::new();
                    }
                })
                .await?
            };
            if n == 0 {
                return Ok(());
            }
            if let Err(e) = input.grown(&decoder) {
                Outcome::Error(e).encode(&mut out, conn.proto);
                stream.write_all(&out).await?;
                return Ok(());
            }
            continue;
        }
        let mut waited = false;
        for (p, proto) in pending.drain(..) {
            waited |= !matches!(p, commands::Pending::Ready(_));
            let o = match p {
                commands::Pending::Blocking(f) => {
                    match until_closed(f, &mut stream, &mut decoder, &mut input).await {
                        Some(o) => o,
                        // The client went away: dropping the pop cancels it.
                        None => return Ok(()),
                    }
                }
                p => p.finish().await,
            };
            match o {
                Outcome::Quit => {
                    resp::encode_simple(&mut out, "OK");
                    close = true;
                    break; // Like redis-server: nothing after QUIT is answered.
                }
                o => o.encode(&mut out, proto),
            }
        }
        pending.clear();
        if waited && !out.is_empty() {
            // The connections an applied slot answers are woken together. Each encodes its
            // replies now and sends them after every other one has: the slot's replies
            // then leave in one run of sends, back to back, as Redis writes its replies
            // after an fsync, instead of one send per connection with the next one's
            // bookkeeping between. A client on another core then finds several replies
            // per wake-up rather than keeping up with them one by one (pipelined SETs:
            // its CPU per request −10 %, the leader's −6 %, results/reply-burst-20261204/).
            futures_lite::future::yield_now().await;
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if close {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    /// These executors do no file IO: the least io_memory glommio takes.
    const TEST_IO_MEMORY_BYTES: usize = 512 << 10;

    use std::io::Read;

    /// A port was last used by another kind of listener (a peer listener, which sets only
    /// SO_REUSEADDR) whose side of a connection closed first, as a killed node's kernel
    /// closes it: that side sits in TIME_WAIT. A client listener must still bind the port
    /// (tests pick ports a finished test may have used; a node may restart onto it).
    #[test]
    fn binds_a_port_whose_old_connections_are_in_time_wait() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let old = std::net::TcpListener::bind(addr).expect("first bind");
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            let mut buf = [0u8; 8];
            // EOF once the server side closed; then the client closes too.
            let _ = s.read(&mut buf);
        });
        let (accepted, _) = old.accept().expect("accept");
        drop(accepted);
        client.join().expect("client");
        drop(old);
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(TEST_IO_MEMORY_BYTES)
            .make()
            .expect("executor");
        // A restarted node's check does not take its old connections for another node.
        crate::transport::check_port_free(addr).expect("free with an old connection in TIME_WAIT");
        ex.run(async move {
            crate::transport::bind_listener(addr, true)
                .expect("bind with an old connection in TIME_WAIT");
        });
    }

    /// The client port is shared by the node's shards; a peer port never is, so a second
    /// node configured onto it fails to start instead of taking half its connections. A
    /// node checks its client port first (`check_port_free`) for the same reason.
    #[test]
    fn only_a_shared_listener_shares_its_port() {
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(TEST_IO_MEMORY_BYTES)
            .make()
            .expect("executor");
        ex.run(async {
            let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            let shared = crate::transport::bind_listener(any, true).expect("bind");
            let addr = shared.local_addr().expect("address");
            crate::transport::bind_listener(addr, true).expect("a second shard binds too");
            // What a second node checks before its shards bind: taken.
            assert!(crate::transport::check_port_free(addr).is_err());
            let peer = crate::transport::bind_listener(any, false).expect("bind");
            let addr = peer.local_addr().expect("address");
            assert!(crate::transport::bind_listener(addr, false).is_err());
            assert!(crate::transport::bind_listener(addr, true).is_err());
        });
    }
}
