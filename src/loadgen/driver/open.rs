//! The open loop: requests due at a target rate, latency counted from the due time.
use super::{
    OPEN_LOOP_GRACE, READ_POLL, RECONNECT_DELAY, Shard, WRITE_BUFFER_BYTES, connect_conn,
    key_chooser,
};
use crate::loadgen::client::{ConnError, InFlight, Reply, ReplyReader, RequestGen};
use crate::loadgen::workload::{Arrival, Op};
use futures_lite::AsyncWriteExt;
use futures_lite::io::{ReadHalf, WriteHalf};
use glommio::net::TcpStream;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The due-time schedule of one open-loop connection; survives reconnects, so requests
/// due while disconnected are sent late and their latency shows it.
struct Schedule {
    rng: ChaCha8Rng,
    /// Arrivals per second.
    arrivals_per_s: f64,
    arrival: Arrival,
    /// Requests per arrival, and how many of the current arrival's are still to come.
    burst: usize,
    left_in_burst: usize,
    due: Instant,
}

impl Schedule {
    fn new(rng: ChaCha8Rng, rate_per_s: f64, arrival: Arrival, burst: usize, due: Instant) -> Self {
        Schedule {
            rng,
            arrivals_per_s: rate_per_s / burst as f64,
            arrival,
            burst,
            left_in_burst: burst,
            due,
        }
    }

    /// The next request's due time: the same as this one's within a burst.
    fn advance(&mut self) {
        if self.left_in_burst > 1 {
            self.left_in_burst -= 1;
            return;
        }
        self.left_in_burst = self.burst;
        let gap_s = match self.arrival {
            Arrival::Uniform => 1.0 / self.arrivals_per_s,
            Arrival::Poisson => {
                let u: f64 = self.rng.random();
                -(1.0 - u).ln() / self.arrivals_per_s
            }
        };
        self.due += Duration::from_secs_f64(gap_s);
    }
}

/// What the writer and the reader of one open-loop connection share.
struct Conn {
    shard: Rc<Shard>,
    /// Requests sent and not answered, in order.
    inflight: RefCell<VecDeque<InFlight>>,
    /// Read-modify-writes whose read came back: their SET is sent next.
    followups: RefCell<VecDeque<(u64, Instant)>>,
    /// The writer has sent its last request.
    writer_done: Cell<bool>,
    /// The connection failed (either side).
    broken: Cell<bool>,
    /// Requests that may still be sent before replies come back.
    permits: glommio::sync::Semaphore,
}

/// Open loop: a writer sends requests as they fall due (all due ones in one write); a
/// reader matches replies in order. Latency counts from the due time.
pub(super) async fn open_conn(shard: Rc<Shard>, g: usize) {
    let plan = shard.plan.clone();
    let rate = plan.w.load.rate_per_s.unwrap_or(1.0) / plan.w.connections as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(plan.w.seed ^ ((g as u64 + 1) << 20));
    let burst = plan.w.load.burst.max(1);
    let phase: f64 = rng.random::<f64>() * burst as f64 / rate;
    let due = plan.start + Duration::from_secs_f64(phase);
    let mut sched = Schedule::new(rng, rate, plan.w.load.arrival, burst, due);
    let mut generator = RequestGen::new(&plan.w, g, key_chooser(&plan), plan.value.clone());
    loop {
        if sched.due >= plan.end || Instant::now() >= plan.end + OPEN_LOOP_GRACE {
            break;
        }
        let Some(s) = connect_conn(&shard, g, READ_POLL).await else {
            continue;
        };
        let (rd, mut wr) = futures_lite::io::split(s);
        let conn = Rc::new(Conn {
            shard: shard.clone(),
            inflight: RefCell::default(),
            followups: RefCell::default(),
            writer_done: Cell::new(false),
            broken: Cell::new(false),
            permits: glommio::sync::Semaphore::new(plan.w.load.outstanding_max as u64),
        });
        let reader = glommio::spawn_local(read_replies(conn.clone(), rd));
        write_requests(&conn, &mut sched, &mut generator, &mut wr).await;
        conn.writer_done.set(true);
        reader.await;
        if !conn.broken.get() {
            break;
        }
        shard.connection_failed();
        glommio::timer::sleep(RECONNECT_DELAY).await;
    }
    // Requests that fell due before the end but were never sent.
    let mut missed = 0;
    while sched.due < plan.end {
        missed += 1;
        sched.advance();
    }
    let mut o = shard.open.borrow_mut();
    o.missed += missed;
    o.intended += missed;
}

/// The reader: matches replies to requests in order until the writer is done and every
/// request is answered, or the connection fails (then the requests in flight fail).
async fn read_replies(conn: Rc<Conn>, mut rd: ReadHalf<TcpStream>) {
    let shard = &conn.shard;
    let timeout = Duration::from_millis(shard.plan.w.timeout_ms);
    let mut reader = ReplyReader::default();
    let result: Result<(), ConnError> = loop {
        if conn.broken.get() {
            break Err(ConnError::Io(std::io::ErrorKind::BrokenPipe.into()));
        }
        if conn.writer_done.get() && conn.inflight.borrow().is_empty() {
            break Ok(());
        }
        let at = reader.filled_at();
        match reader.next_buffered() {
            Err(e) => break Err(e),
            Ok(Some(r)) => {
                let Some(f) = conn.inflight.borrow_mut().pop_front() else {
                    break Err(ConnError::Protocol(
                        crate::wire::resp::RespError::BadLineEnd,
                    ));
                };
                match (r, f.rmw_key) {
                    (Reply::Ok, Some(k)) => conn.followups.borrow_mut().push_back((k, f.start)),
                    _ => {
                        conn.permits.signal(1);
                        shard.complete(f, r, at);
                    }
                }
            }
            Ok(None) => match reader.fill(&mut rd).await {
                Ok(()) => {}
                Err(ConnError::Timeout) => {
                    let oldest = conn.inflight.borrow().front().map(|f| f.start);
                    if let Some(t) = oldest
                        && Instant::now().saturating_duration_since(t) > timeout
                    {
                        break Err(ConnError::Timeout);
                    }
                }
                Err(e) => break Err(e),
            },
        }
    };
    if let Err(e) = result {
        shard.fail(conn.inflight.borrow_mut().drain(..), &e);
        conn.broken.set(true);
        conn.permits.close();
    }
}

/// The writer: sends the follow-up SETs and every request due (within the pipeline and
/// the permits) in one write, then sleeps until the next is due; until the end (or the
/// grace after it) or the connection breaks.
async fn write_requests(
    conn: &Conn,
    sched: &mut Schedule,
    generator: &mut RequestGen,
    wr: &mut WriteHalf<TcpStream>,
) {
    let plan = &conn.shard.plan;
    let mut wbuf = Vec::with_capacity(WRITE_BUFFER_BYTES);
    let pipeline = plan.w.pipeline;
    loop {
        if conn.broken.get() {
            break;
        }
        let now = Instant::now();
        let due = sched.due;
        if due >= plan.end {
            break;
        }
        if now >= plan.end + OPEN_LOOP_GRACE {
            break;
        }
        if due > now {
            glommio::timer::sleep(due - now).await;
        }
        wbuf.clear();
        let mut n = 0;
        let now = Instant::now();
        while let Some((k, start)) = conn.followups.borrow_mut().pop_front() {
            generator.encode_set(&mut wbuf, k);
            conn.inflight.borrow_mut().push_back(InFlight {
                op: Op::Rmw,
                rmw_key: None,
                start,
                sent: now,
            });
            n += 1;
        }
        let mut sends = 0;
        loop {
            let now = Instant::now();
            let due = sched.due;
            if due > now || due >= plan.end || sends >= pipeline {
                break;
            }
            if !conn.permits.try_acquire(1).unwrap_or(false) {
                if n > 0 {
                    break;
                }
                if conn.permits.acquire(1).await.is_err() {
                    break;
                }
            }
            let sent_at = Instant::now();
            {
                let mut o = conn.shard.open.borrow_mut();
                let lag = sent_at.saturating_duration_since(due);
                o.lag_max = o.lag_max.max(lag);
                if due >= plan.measure_start {
                    let _ = o.lag.record(lag.as_micros() as u64);
                }
                o.intended += 1;
                if sent_at <= plan.end {
                    o.on_time += 1;
                }
            }
            let mut f = generator.next(&mut wbuf, due);
            f.sent = sent_at;
            conn.inflight.borrow_mut().push_back(f);
            sched.advance();
            n += 1;
            sends += 1;
        }
        if n > 0 && wr.write_all(&wbuf).await.is_err() {
            conn.broken.set(true);
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;
    use crate::loadgen::workload::Arrival;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::time::{Duration, Instant};

    fn dues(burst: usize, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let rng = ChaCha8Rng::seed_from_u64(7);
        let mut s = Schedule::new(rng, 1000.0, Arrival::Uniform, burst, start);
        (0..n)
            .map(|_| {
                let d = s.due - start;
                s.advance();
                d
            })
            .collect()
    }

    #[test]
    fn a_burst_is_due_at_once_and_bursts_keep_the_request_rate() {
        let ms = Duration::from_millis;
        assert_eq!(dues(1, 3), [ms(0), ms(1), ms(2)]);
        // 1000 requests/s in bursts of 4: an arrival every 4 ms.
        let d = dues(4, 9);
        assert_eq!(&d[..4], [ms(0); 4]);
        assert_eq!(&d[4..8], [ms(4); 4]);
        assert_eq!(d[8], ms(8));
    }
}
