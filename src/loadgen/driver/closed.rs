//! The closed loop: a fixed number of requests in flight per connection.
use super::{RECONNECT_DELAY, Shard, WRITE_BUFFER_BYTES, connect_conn, key_chooser};
use crate::loadgen::client::{ConnError, InFlight, Reply, ReplyReader, RequestGen};
use crate::loadgen::workload::Op;
use futures_lite::AsyncWriteExt;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Closed loop: write a whole pipeline in one write, read every reply, repeat.
pub(super) async fn closed_conn(shard: &Shard, g: usize) {
    let plan = &shard.plan;
    let mut generator = RequestGen::new(&plan.w, g, key_chooser(plan), plan.value.clone());
    let mut followups: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut wbuf = Vec::with_capacity(WRITE_BUFFER_BYTES);
    let mut inflight: VecDeque<InFlight> = VecDeque::with_capacity(plan.w.pipeline);
    let timeout = Duration::from_millis(plan.w.timeout_ms);
    // Connect early, but send nothing before the common start.
    let mut first = true;
    while !shard.finished() {
        let Some(mut s) = connect_conn(shard, g, timeout).await else {
            continue;
        };
        let mut reader = ReplyReader::default();
        followups.clear();
        if first {
            first = false;
            let now = Instant::now();
            if plan.start > now {
                glommio::timer::sleep(plan.start - now).await;
            }
        }
        let result: Result<(), ConnError> = async {
            while !shard.finished() {
                wbuf.clear();
                inflight.clear();
                let now = Instant::now();
                for _ in 0..plan.w.pipeline {
                    match followups.pop_front() {
                        Some((k, start)) => {
                            generator.encode_set(&mut wbuf, k);
                            inflight.push_back(InFlight {
                                op: Op::Rmw,
                                rmw_key: None,
                                start,
                                sent: now,
                            });
                        }
                        None => inflight.push_back(generator.next(&mut wbuf, now)),
                    }
                }
                s.write_all(&wbuf).await?;
                while let Some(f) = inflight.front().copied() {
                    let at = reader.filled_at();
                    match reader.next_buffered()? {
                        None => reader.fill(&mut s).await?,
                        Some(r) => {
                            inflight.pop_front();
                            match (r, f.rmw_key) {
                                (Reply::Ok, Some(k)) => followups.push_back((k, f.start)),
                                _ => shard.complete(f, r, at),
                            }
                        }
                    }
                }
                glommio::yield_if_needed().await;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            shard.fail(inflight.drain(..), &e);
            shard.connection_failed();
            if !shard.finished() {
                glommio::timer::sleep(RECONNECT_DELAY).await;
            }
        }
    }
}
