//! Free local ports for the servers the load generator starts (and the node tests).
//!
//! Ports come from below the kernel's ephemeral range: a port in that range can be taken,
//! between the check and the server's bind, by any outgoing connection on the machine
//! (the load generator's own, or a node's to its peers). Each run is checked free by
//! binding every port of it, and is handed out once in this process until its
//! [`Reservation`] is dropped; two processes can still pick the same run at the same
//! moment, which a launcher meets by trying again (see `launch`).
use std::net::TcpListener;
use std::ops::Range;
use std::sync::Mutex;

/// The lowest port handed out.
pub const PORT_LOW: u16 = 10_000;
/// The ephemeral range's first port when /proc does not say (Linux's default).
const EPHEMERAL_LOW_DEFAULT: u16 = 32_768;

/// Runs handed out in this process and not yet released.
static HANDED_OUT: Mutex<Vec<Range<u16>>> = Mutex::new(Vec::new());

/// Runs of consecutive free ports, one per length asked for, disjoint, held for this
/// process until dropped.
#[derive(Debug)]
pub struct Reservation {
    runs: Vec<Range<u16>>,
    handed_out: &'static Mutex<Vec<Range<u16>>>,
}

impl Reservation {
    /// The first port of run `i`.
    pub fn start(&self, i: usize) -> u16 {
        self.runs[i].start
    }

    /// The runs, in the order asked for.
    pub fn runs(&self) -> &[Range<u16>] {
        &self.runs
    }

    /// Never hands these ports out again in this process (a node test restarts nodes on
    /// the same ports long after).
    pub fn keep(self) -> Vec<Range<u16>> {
        let runs = self.runs.clone();
        std::mem::forget(self);
        runs
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut out = self.handed_out.lock().unwrap_or_else(|e| e.into_inner());
        out.retain(|r| !self.runs.contains(r));
    }
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(EPHEMERAL_LOW_DEFAULT)
}

/// Reserves one run of free ports on 127.0.0.1 per entry of `lens`, below the ephemeral
/// range.
pub fn reserve(lens: &[u16]) -> std::io::Result<Reservation> {
    reserve_in(&HANDED_OUT, lens, PORT_LOW..ephemeral_low())
}

/// As [`reserve`], within `window`, with the runs `handed_out` kept apart.
fn reserve_in(
    handed_out: &'static Mutex<Vec<Range<u16>>>,
    lens: &[u16],
    window: Range<u16>,
) -> std::io::Result<Reservation> {
    let mut out = handed_out.lock().unwrap_or_else(|e| e.into_inner());
    let mut runs: Vec<Range<u16>> = Vec::with_capacity(lens.len());
    for &n in lens {
        let run = pick(n, &window, |r| {
            out.iter()
                .chain(&runs)
                .any(|h| h.start < r.end && r.start < h.end)
        })
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "no {n} consecutive free ports in {}..{}",
                    window.start, window.end
                ),
            )
        })?;
        runs.push(run);
    }
    out.extend(runs.iter().cloned());
    Ok(Reservation { runs, handed_out })
}

/// A run of `n` ports in `window`, not `taken`, each of which binds on 127.0.0.1 now:
/// every start tried once, from a random one on (so processes seldom try the same).
fn pick(n: u16, window: &Range<u16>, taken: impl Fn(&Range<u16>) -> bool) -> Option<Range<u16>> {
    let last_start = window.end.checked_sub(n).filter(|s| *s >= window.start)?;
    let starts = last_start - window.start + 1;
    let first = rand::random_range(0..starts);
    (0..starts).find_map(|i| {
        let start = window.start + (first + i) % starts;
        let run = start..start + n;
        let free = !taken(&run)
            && run
                .clone()
                .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        free.then_some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: &Range<u16>, b: &Range<u16>) -> bool {
        a.start < b.end && b.start < a.end
    }

    #[test]
    fn runs_are_free_disjoint_and_below_the_ephemeral_range() {
        let r = reserve(&[3, 192]).unwrap();
        let eph = ephemeral_low();
        assert_eq!(r.runs()[0].len(), 3);
        assert_eq!(r.runs()[1].len(), 192);
        assert!(!overlap(&r.runs()[0], &r.runs()[1]), "{:?}", r.runs());
        for run in r.runs() {
            assert!(run.start >= PORT_LOW && run.end <= eph, "{run:?} vs {eph}");
            for p in run.clone() {
                TcpListener::bind(("127.0.0.1", p)).unwrap();
            }
        }
    }

    /// A window of its own per test, kept from the other tests (they run side by side),
    /// and a registry of its own for the runs handed out within it.
    fn window(n: u16) -> (&'static Mutex<Vec<Range<u16>>>, Range<u16>) {
        let r = reserve(&[n]).unwrap().keep();
        (Box::leak(Box::new(Mutex::new(Vec::new()))), r[0].clone())
    }

    #[test]
    fn a_run_is_not_handed_out_again_until_released() {
        let (h, w) = window(5);
        let a = reserve_in(h, &[5], w.clone()).unwrap();
        assert_eq!(a.runs()[0], w);
        reserve_in(h, &[1], w.clone()).unwrap_err();
        drop(a);
        let b = reserve_in(h, &[5], w.clone()).unwrap();
        assert_eq!(b.runs()[0], w);
        // Kept, never again.
        b.keep();
        reserve_in(h, &[1], w).unwrap_err();
    }

    #[test]
    fn a_port_in_use_is_never_in_a_run() {
        let (h, w) = window(8);
        let _busy = TcpListener::bind(("127.0.0.1", w.start + 3)).unwrap();
        // Only w.start+4..w.start+8 holds four free ports in a row.
        for _ in 0..20 {
            let r = reserve_in(h, &[4], w.clone()).unwrap();
            assert_eq!(r.runs()[0], w.start + 4..w.end);
        }
        let err = reserve_in(h, &[5], w.clone()).unwrap_err();
        assert!(
            err.to_string().contains("no 5 consecutive free ports"),
            "{err}"
        );
    }

    #[test]
    fn one_reservation_never_overlaps_itself() {
        // Wherever the first run of 3 lands in 9 ports, 3 more fit beside it.
        let (h, w) = window(9);
        for _ in 0..20 {
            let r = reserve_in(h, &[3, 3], w.clone()).unwrap();
            assert!(!overlap(&r.runs()[0], &r.runs()[1]), "{:?}", r.runs());
        }
        reserve_in(h, &[4, 6], w).unwrap_err();
    }
}
