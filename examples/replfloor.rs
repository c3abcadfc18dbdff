//! The floor of one replicated durable write on this machine, without corepax: the least a
//! leader and its followers must do for one client's write, done with blocking calls and
//! nothing else (no executor, no batching logic, no state machine).
//!
//! Serves RESP on `PORT`, answering `PING` with `+PONG` and every other command `+OK` (so
//! `redis-benchmark -t set` drives it; its CONFIG GET at start gets `+OK` too, and it
//! warns). For each read from a client that brought any command but `PING` (one slot:
//! group commit), the leader sends a 64-byte accept to each follower
//! over loopback TCP, writes its own 4 KiB record with `O_DIRECT | O_DSYNC` into a
//! pre-written file, then waits for the first follower's acknowledgement: a quorum of
//! leader + one follower. Each follower writes its record the same way and acknowledges.
//! Leader and followers are threads of this process, each with its own file in `DIR`.
//! With 0 followers it is one durable write per request, as Redis `appendfsync always`.
//! With `lazy` last, the leader writes nothing and waits for every follower's
//! acknowledgement instead: the floor under corepax's lazy leader sync. With `via` last,
//! clients reach the leader through a forwarder (a thread relaying each client's bytes to
//! the leader and its answers back over loopback TCP, as a follower forwards a write):
//! the floor of one write sent to a follower. With `group` last, the leader serves every
//! client at once, as Redis does: one `poll` over the clients, the commands of all that
//! were readable in one slot (group commit), then their answers: the floor of many
//! clients' writes (the other modes serve one client at a time).
//!
//! `scripts/floor.sh` runs it beside corepax and Redis (`floor-3-replicas`: 2 followers).
//!
//! ```text
//! cargo build --release --example replfloor
//! target/release/examples/replfloor PORT FOLLOWERS DIR [lazy|via|group]
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

const BLOCK: usize = 4096;
/// Records go round-robin over a pre-written file of this many blocks (16 MiB): no write
/// allocates.
const FILE_BLOCKS: u64 = 4096;

/// One 4 KiB-aligned block, as `O_DIRECT` wants.
struct Block {
    ptr: *mut u8,
}

impl Block {
    fn layout() -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(BLOCK, BLOCK).expect("a valid layout")
    }

    fn new() -> Block {
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(Self::layout()) };
        assert!(!ptr.is_null(), "out of memory");
        Block { ptr }
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` holds BLOCK bytes, owned by this block.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, BLOCK) }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, Self::layout()) }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A pre-written, synced file opened for durable direct writes.
fn open_log(dir: &str, name: &str) -> Result<File> {
    let path = format!("{dir}/{name}");
    std::fs::write(&path, vec![0u8; BLOCK * FILE_BLOCKS as usize])?;
    File::open(&path)?.sync_all()?;
    Ok(OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(&path)?)
}

fn durable_write(file: &File, block: &mut Block, slot: u64) -> std::io::Result<()> {
    block.bytes()[..8].copy_from_slice(&slot.to_le_bytes());
    file.write_all_at(block.bytes(), (slot % FILE_BLOCKS) * BLOCK as u64)
}

fn follower(listener: TcpListener, file: File) -> Result<()> {
    let (mut leader, _) = listener.accept()?;
    leader.set_nodelay(true)?;
    let mut block = Block::new();
    let mut accept = [0u8; 64];
    while leader.read_exact(&mut accept).is_ok() {
        let slot = u64::from_le_bytes(accept[..8].try_into()?);
        durable_write(&file, &mut block, slot)?;
        leader.write_all(&slot.to_le_bytes())?;
    }
    Ok(())
}

/// Removes the complete RESP commands (arrays of bulk strings) at the front of `buf` and
/// appends their answers to `replies`: `+PONG` for `PING`, `+OK` for the rest. Returns how
/// many were not `PING` (they need a durable write).
fn take_commands(buf: &mut Vec<u8>, replies: &mut Vec<u8>) -> usize {
    /// The number on the line at `at` (after its type byte) and where the next line starts.
    fn line(b: &[u8], at: usize) -> Option<(usize, usize)> {
        let end = at + b.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let n = std::str::from_utf8(b.get(at + 1..end)?)
            .ok()?
            .parse()
            .ok()?;
        Some((n, end + 2))
    }
    let (mut writes, mut done) = (0, 0);
    'frames: while done < buf.len() {
        let Some((items, mut at)) = line(buf, done) else {
            break;
        };
        let mut ping = false;
        for item in 0..items {
            let Some((len, data)) = line(buf, at) else {
                break 'frames;
            };
            at = data + len + 2;
            if at > buf.len() {
                break 'frames;
            }
            ping |= item == 0 && buf[data..data + len].eq_ignore_ascii_case(b"PING");
        }
        done = at;
        if ping {
            replies.extend_from_slice(b"+PONG\r\n");
        } else {
            replies.extend_from_slice(b"+OK\r\n");
            writes += 1;
        }
    }
    buf.drain(..done);
    writes
}

/// The leader's side: the followers' connections and what each acknowledged.
struct Leader {
    own: File,
    block: Block,
    slot: u64,
    followers: Vec<TcpStream>,
    acked: Vec<u64>,
    /// No write of our own; every follower's acknowledgement instead of one.
    lazy: bool,
}

impl Leader {
    /// One slot: accepts out, our own durable write, then a follower's acknowledgement.
    fn replicate(&mut self) -> Result<()> {
        self.slot += 1;
        let mut accept = [0u8; 64];
        accept[..8].copy_from_slice(&self.slot.to_le_bytes());
        for f in &mut self.followers {
            f.write_all(&accept)?;
        }
        if !self.lazy {
            durable_write(&self.own, &mut self.block, self.slot)?;
        }
        let waiting = |acked: &[u64], slot| {
            if self.lazy {
                acked.iter().any(|&a| a < slot)
            } else {
                acked.iter().all(|&a| a < slot)
            }
        };
        while !self.followers.is_empty() && waiting(&self.acked, self.slot) {
            let mut fds: Vec<libc::pollfd> = self
                .followers
                .iter()
                .map(|f| libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
            if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            for (i, fd) in fds.iter().enumerate() {
                if fd.revents != 0 {
                    let mut ack = [0u8; 8];
                    self.followers[i].read_exact(&mut ack)?;
                    self.acked[i] = u64::from_le_bytes(ack);
                }
            }
        }
        Ok(())
    }

    /// Every client at once (`group`): each round polls the listener and the clients, reads
    /// once from each readable client, replicates one slot for all their writes, then
    /// answers them. A client that closes or fails is dropped.
    fn serve_group(&mut self, listener: &TcpListener) -> Result<()> {
        struct Client {
            stream: TcpStream,
            buf: Vec<u8>,
            replies: Vec<u8>,
        }
        let mut clients: Vec<Client> = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
                .chain(clients.iter().map(|c| c.stream.as_raw_fd()))
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
            if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            let mut writes = 0;
            let mut gone = Vec::new();
            // A readable socket's one read does not block.
            for (i, fd) in fds[1..].iter().enumerate() {
                if fd.revents == 0 {
                    continue;
                }
                let client = &mut clients[i];
                match client.stream.read(&mut chunk) {
                    Ok(0) | Err(_) => gone.push(i),
                    Ok(got) => {
                        client.buf.extend_from_slice(&chunk[..got]);
                        writes += take_commands(&mut client.buf, &mut client.replies);
                    }
                }
            }
            if writes > 0 {
                self.replicate()?;
            }
            for (i, client) in clients.iter_mut().enumerate() {
                if !client.replies.is_empty() {
                    if client.stream.write_all(&client.replies).is_err() {
                        gone.push(i);
                    }
                    client.replies.clear();
                }
            }
            gone.sort_unstable();
            gone.dedup();
            for i in gone.into_iter().rev() {
                clients.swap_remove(i);
            }
            if fds[0].revents != 0 {
                let (stream, _) = listener.accept()?;
                stream.set_nodelay(true)?;
                clients.push(Client {
                    stream,
                    buf: Vec::new(),
                    replies: Vec::new(),
                });
            }
        }
    }

    fn serve(&mut self, mut client: TcpStream) -> Result<()> {
        client.set_nodelay(true)?;
        let (mut buf, mut replies, mut chunk) = (Vec::new(), Vec::new(), vec![0u8; 64 * 1024]);
        loop {
            let got = client.read(&mut chunk)?;
            if got == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..got]);
            if take_commands(&mut buf, &mut replies) > 0 {
                self.replicate()?;
            }
            if !replies.is_empty() {
                client.write_all(&replies)?;
                replies.clear();
            }
        }
    }
}

/// Relays one client to the leader at `leader` and the leader's answers back, each way
/// on a thread of its own, until either side closes.
fn forward(client: TcpStream, leader: std::net::SocketAddr) -> Result<()> {
    let upstream = TcpStream::connect(leader)?;
    upstream.set_nodelay(true)?;
    client.set_nodelay(true)?;
    let (mut from_client, mut to_leader) = (client.try_clone()?, upstream.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_leader);
        let _ = to_leader.shutdown(std::net::Shutdown::Write);
    });
    let (mut from_leader, mut to_client) = (upstream, client);
    let _ = std::io::copy(&mut from_leader, &mut to_client);
    let _ = to_client.shutdown(std::net::Shutdown::Both);
    let _ = up.join();
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (port, followers, dir, mode) = match &args[..] {
        [_, port, followers, dir] => (port, followers, dir, ""),
        [_, port, followers, dir, mode] if ["lazy", "via", "group"].contains(&mode.as_str()) => {
            (port, followers, dir, mode.as_str())
        }
        _ => return Err("usage: replfloor PORT FOLLOWERS DIR [lazy|via|group]".into()),
    };
    let mut streams = Vec::new();
    for i in 0..followers.parse::<usize>()? {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let file = open_log(dir, &format!("follower-{i}"))?;
        std::thread::spawn(move || {
            if let Err(e) = follower(listener, file) {
                eprintln!("follower {i}: {e}");
            }
        });
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let mut leader = Leader {
        own: open_log(dir, "leader")?,
        block: Block::new(),
        slot: 0,
        acked: vec![0; streams.len()],
        followers: streams,
        lazy: mode == "lazy",
    };
    let public = TcpListener::bind(format!("127.0.0.1:{port}"))?;
    let clients = if mode == "via" {
        let inner = TcpListener::bind("127.0.0.1:0")?;
        let at = inner.local_addr()?;
        std::thread::spawn(move || {
            for client in public.incoming() {
                let served = client.map_err(Into::into).and_then(|c| forward(c, at));
                if let Err(e) = served {
                    eprintln!("forwarder: {e}");
                }
            }
        });
        inner
    } else {
        public
    };
    if mode == "group" {
        return leader.serve_group(&clients);
    }
    // One client at a time, as the floor is measured.
    for client in clients.incoming() {
        if let Err(e) = leader.serve(client?) {
            eprintln!("client: {e}");
        }
    }
    Ok(())
}
