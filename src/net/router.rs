//! The router: one thread that reads every IP packet the namespaces send into their TUN
//! devices, holds it for its link's delay (plus jitter, behind the link's rate limit),
//! drops it for loss or a cut, and writes it into the destination's TUN device. Faults
//! are set through a Unix socket (see [`super::Control`]), one line per command.
//!
//! A link keeps its packets in order (a due time never passes the one before it, as on
//! one path; `tc netem` reorders instead when jitter exceeds the gap between packets).

use super::profile::{Distribution, Link};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Bytes a link may hold (queued behind its rate or delay) before it drops packets.
const LINK_QUEUE_BYTES_MAX: usize = 32 << 20;
/// Largest packet read from a TUN device.
const PACKET_BYTES_MAX: usize = 65_536;
/// Packets read from one device per wake-up before the others get their turn.
const READS_PER_WAKE: usize = 64;
/// Longest sleep between checks of the stop flag.
const IDLE_WAKE: Duration = Duration::from_millis(50);
/// How long a control client may take to send its line.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters of what the router did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Packets delivered.
    pub delivered: u64,
    /// Dropped by a cut.
    pub cut: u64,
    /// Dropped by loss.
    pub lost: u64,
    /// Dropped because a link's queue, or the destination device, was full.
    pub full: u64,
    /// Not for any node of the network (IPv6, other addresses).
    pub foreign: u64,
}

struct LinkState {
    link: Link,
    cut: bool,
    loss_percent: Option<f64>,
    queue: VecDeque<(Instant, Vec<u8>)>,
    queued_bytes: usize,
    last_due: Instant,
    free_at: Instant,
}

/// The router's state: the devices, their addresses, every directed link.
pub struct Router {
    tuns: Vec<OwnedFd>,
    base: Ipv4Addr,
    profile_links: Vec<Vec<Link>>,
    links: Vec<Vec<LinkState>>,
    control: UnixListener,
    stats: Stats,
    rng: rand::rngs::StdRng,
}

impl Router {
    /// A router between `tuns[i]` (the device of the node with address `base + i + 1`),
    /// each link as `links[from][to]` says, taking commands on `control`.
    pub fn new(
        tuns: Vec<OwnedFd>,
        base: Ipv4Addr,
        links: Vec<Vec<Link>>,
        control: UnixListener,
    ) -> Router {
        let now = Instant::now();
        let state = links
            .iter()
            .map(|row| {
                row.iter()
                    .map(|l| LinkState {
                        link: *l,
                        cut: false,
                        loss_percent: None,
                        queue: VecDeque::new(),
                        queued_bytes: 0,
                        last_due: now,
                        free_at: now,
                    })
                    .collect()
            })
            .collect();
        Router {
            tuns,
            base,
            profile_links: links,
            links: state,
            control,
            stats: Stats::default(),
            rng: rand::SeedableRng::from_rng(&mut rand::rng()),
        }
    }

    /// Routes until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        // Sleeps end when asked, not up to 50 µs later.
        // SAFETY: prctl(2) on this thread's timer slack only.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        let _ = self.control.set_nonblocking(true);
        let mut buf = vec![0u8; PACKET_BYTES_MAX];
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self.next_due().map_or(IDLE_WAKE, |d| {
                d.saturating_duration_since(now).min(IDLE_WAKE)
            });
            let ready = self.poll(wait);
            for (i, r) in ready.iter().enumerate().take(self.tuns.len()) {
                if *r {
                    self.read_from(i, &mut buf);
                }
            }
            if ready.last().copied().unwrap_or(false) {
                self.serve_control();
            }
            self.deliver(Instant::now());
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.links
            .iter()
            .flatten()
            .filter_map(|l| l.queue.front().map(|(d, _)| *d))
            .min()
    }

    /// Which descriptors are readable (the devices, then the control socket).
    fn poll(&self, wait: Duration) -> Vec<bool> {
        let mut fds: Vec<libc::pollfd> = self
            .tuns
            .iter()
            .map(|t| t.as_raw_fd())
            .chain(std::iter::once(self.control.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: ppoll(2) on the array above, with its length; no signal mask.
        let n = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        fds.iter()
            .map(|p| n > 0 && p.revents & libc::POLLIN != 0)
            .collect()
    }

    fn read_from(&mut self, from: usize, buf: &mut [u8]) {
        for _ in 0..READS_PER_WAKE {
            // SAFETY: read(2) into the buffer, at most its length.
            let n = unsafe {
                libc::read(
                    self.tuns[from].as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n <= 0 {
                return;
            }
            let packet = &buf[..n as usize];
            match self.destination(packet) {
                Some(to) if to != from => self.enqueue(from, to, packet, Instant::now()),
                _ => self.stats.foreign += 1,
            }
        }
    }

    /// The node an IPv4 packet is addressed to.
    fn destination(&self, p: &[u8]) -> Option<usize> {
        if p.len() < 20 || p[0] >> 4 != 4 {
            return None;
        }
        let dst = u32::from(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
        let i = dst.checked_sub(u32::from(self.base))?.checked_sub(1)? as usize;
        (i < self.tuns.len()).then_some(i)
    }

    fn enqueue(&mut self, from: usize, to: usize, packet: &[u8], now: Instant) {
        let jitter = self.sample_jitter(from, to);
        let l = &mut self.links[from][to];
        if l.cut {
            self.stats.cut += 1;
            return;
        }
        let loss = l.loss_percent.unwrap_or(l.link.loss_percent);
        if loss > 0.0 && rand::Rng::random_range(&mut self.rng, 0.0..100.0) < loss {
            self.stats.lost += 1;
            return;
        }
        if l.queued_bytes + packet.len() > LINK_QUEUE_BYTES_MAX {
            self.stats.full += 1;
            return;
        }
        let mut sent = now;
        if l.link.rate_mbit > 0.0 {
            let bits = (packet.len() * 8) as f64;
            l.free_at =
                l.free_at.max(now) + Duration::from_secs_f64(bits / (l.link.rate_mbit * 1e6));
            sent = l.free_at;
        }
        let delay = (l.link.delay_ms + jitter).max(0.0);
        let due = (sent + Duration::from_secs_f64(delay / 1e3)).max(l.last_due);
        l.last_due = due;
        l.queued_bytes += packet.len();
        l.queue.push_back((due, packet.to_vec()));
    }

    fn sample_jitter(&mut self, from: usize, to: usize) -> f64 {
        let link = self.links[from][to].link;
        if link.jitter_ms <= 0.0 {
            return 0.0;
        }
        let u = |r: &mut rand::rngs::StdRng| rand::Rng::random_range(r, f64::EPSILON..1.0);
        match link.distribution {
            Distribution::Uniform => link.jitter_ms * (2.0 * u(&mut self.rng) - 1.0),
            Distribution::Normal => {
                // Box-Muller, cut at ±3 σ.
                let (u1, u2) = (u(&mut self.rng), u(&mut self.rng));
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                link.jitter_ms * z.clamp(-3.0, 3.0)
            }
        }
    }

    fn deliver(&mut self, now: Instant) {
        for row in self.links.iter_mut() {
            for (to, l) in row.iter_mut().enumerate() {
                while l.queue.front().is_some_and(|(d, _)| *d <= now) {
                    let Some((_, p)) = l.queue.pop_front() else {
                        break;
                    };
                    l.queued_bytes -= p.len();
                    // SAFETY: write(2) of the packet's bytes to the destination device.
                    let n = unsafe {
                        libc::write(self.tuns[to].as_raw_fd(), p.as_ptr().cast(), p.len())
                    };
                    if n == p.len() as isize {
                        self.stats.delivered += 1;
                    } else {
                        self.stats.full += 1;
                    }
                }
            }
        }
    }

    fn serve_control(&mut self) {
        while let Ok((stream, _)) = self.control.accept() {
            let _ = self.serve_client(stream);
        }
    }

    fn serve_client(&mut self, stream: UnixStream) -> std::io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(CONTROL_TIMEOUT))?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        let reply = match self.command(line.trim()) {
            Ok(s) => format!("ok {s}\n"),
            Err(e) => format!("error {e}\n"),
        };
        (&stream).write_all(reply.as_bytes())
    }

    /// Applies one control command; see [`super::Control`].
    fn command(&mut self, line: &str) -> Result<String, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let n = self.links.len();
        let node = |w: Option<&&str>| -> Result<usize, String> {
            let i: usize = w
                .ok_or("missing node")?
                .parse()
                .map_err(|_| "a node is a number")?;
            if i < n {
                Ok(i)
            } else {
                Err(format!("node {i} does not exist (0..{n})"))
            }
        };
        match words.first().copied() {
            Some("cut") => {
                let (a, b) = (node(words.get(1))?, node(words.get(2))?);
                self.links[a][b].cut = true;
            }
            Some("isolate") => {
                let a = node(words.get(1))?;
                for b in 0..n {
                    self.links[a][b].cut = true;
                    self.links[b][a].cut = true;
                }
            }
            Some("loss") => {
                let (a, b) = (node(words.get(1))?, node(words.get(2))?);
                let p: f64 = words
                    .get(3)
                    .and_then(|w| w.parse().ok())
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or("loss takes a percentage in 0..=100")?;
                self.links[a][b].loss_percent = Some(p);
            }
            Some("heal") => {
                for (row, prof) in self.links.iter_mut().zip(&self.profile_links) {
                    for (l, p) in row.iter_mut().zip(prof) {
                        l.cut = false;
                        l.loss_percent = None;
                        l.link = *p;
                    }
                }
            }
            Some("stats") => {}
            _ => {
                return Err(format!(
                    "unknown command {line:?}: cut A B | isolate A | loss A B PCT | heal | stats"
                ));
            }
        }
        let s = self.stats;
        Ok(format!(
            "delivered={} cut={} lost={} full={} foreign={}",
            s.delivered, s.cut, s.lost, s.full, s.foreign
        ))
    }
}

/// Starts the router on a thread of its own; it stops when `stop` is set.
pub fn spawn(
    router: Router,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("corepax-net-router".into())
        .spawn(move || router.run(&stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(link: Link) -> (Router, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let control = UnixListener::bind(dir.path().join("s")).unwrap();
        let links = vec![vec![link; 2]; 2];
        (
            Router::new(Vec::new(), Ipv4Addr::new(10, 0, 0, 0), links, control),
            dir,
        )
    }

    fn dues(r: &Router, now: Instant) -> Vec<f64> {
        r.links[0][1]
            .queue
            .iter()
            .map(|(d, _)| (*d - now).as_secs_f64() * 1e3)
            .collect()
    }

    #[test]
    fn a_rate_spaces_packets_and_the_delay_follows() {
        let (mut r, _d) = router(Link {
            delay_ms: 10.0,
            rate_mbit: 8.0, // one byte per µs
            ..Link::default()
        });
        let now = Instant::now();
        for _ in 0..3 {
            r.enqueue(0, 1, &[0; 1000], now);
        }
        let d = dues(&r, now);
        for (got, want) in d.iter().zip([11.0, 12.0, 13.0]) {
            assert!((got - want).abs() < 1e-6, "{d:?}");
        }
    }

    #[test]
    fn jitter_never_reorders_a_link_and_stays_within_its_bounds() {
        let (mut r, _d) = router(Link {
            delay_ms: 5.0,
            jitter_ms: 2.0,
            distribution: Distribution::Uniform,
            ..Link::default()
        });
        let now = Instant::now();
        for _ in 0..200 {
            r.enqueue(0, 1, &[0; 100], now);
        }
        // A burst: each packet waits for the one ahead of it.
        let d = dues(&r, now);
        assert!(d.windows(2).all(|w| w[0] <= w[1]), "in order");
        assert!(d.iter().all(|x| (3.0..=7.0).contains(x)), "{d:?}");
        // Packets further apart than the jitter's range each get their own draw.
        r.links[0][1].queue.clear();
        for k in 0..200 {
            r.enqueue(0, 1, &[0; 100], now + Duration::from_millis(10 * k));
        }
        let d: Vec<f64> = dues(&r, now)
            .iter()
            .enumerate()
            .map(|(k, x)| x - 10.0 * k as f64)
            .collect();
        let (lo, hi) = d
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
        assert!(lo >= 3.0 - 1e-9 && hi <= 7.0 + 1e-9, "{lo} {hi}");
        assert!(lo < 4.0 && hi > 6.0, "jitter spreads the delays: {lo} {hi}");
    }

    #[test]
    fn commands_cut_add_loss_heal_and_refuse_nonsense() {
        let (mut r, _d) = router(Link::default());
        let now = Instant::now();
        r.command("cut 0 1").unwrap();
        r.enqueue(0, 1, &[0; 10], now);
        r.enqueue(1, 0, &[0; 10], now);
        assert_eq!(
            (r.stats.cut, r.links[1][0].queue.len()),
            (1, 1),
            "one way only"
        );
        r.command("heal").unwrap();
        r.command("loss 0 1 100").unwrap();
        r.enqueue(0, 1, &[0; 10], now);
        assert_eq!(r.stats.lost, 1);
        r.command("isolate 1").unwrap();
        r.enqueue(1, 0, &[0; 10], now);
        assert_eq!(r.stats.cut, 2);
        let stats = r.command("heal").unwrap();
        assert!(stats.contains("cut=2 lost=1"), "{stats}");
        r.enqueue(0, 1, &[0; 10], now);
        assert_eq!(r.links[0][1].queue.len(), 1, "healed: back to the profile");
        for bad in ["cut 0 7", "loss 0 1 101", "jump", "cut x 1"] {
            assert!(r.command(bad).is_err(), "{bad}");
        }
    }
}
