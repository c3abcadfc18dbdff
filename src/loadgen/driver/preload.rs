//! Preload: every record SET once before the run, spread over the workload's connections.
use super::{DriverError, PRELOAD_PIPELINE, RunConfig, WRITE_BUFFER_BYTES, connect, placement};
use crate::loadgen::client::{Reply, ReplyReader, RequestGen, value_bytes};
use crate::loadgen::workload::{KeyChooser, Workload};
use futures_lite::AsyncWriteExt;
use glommio::LocalExecutorPoolBuilder;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// SETs every record once, spreading records over the workload's connections.
pub(super) fn preload(cfg: &RunConfig, cores: usize) -> Result<(u64, f64), DriverError> {
    let w = cfg.workload.clone();
    let targets = cfg.targets.clone();
    let t0 = Instant::now();
    let value = value_bytes(&w);
    let next_shard = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles = LocalExecutorPoolBuilder::new(placement(cfg.pinned, cores))
        .name("preload")
        .on_all_shards(move || {
            let (w, targets, value) = (w.clone(), targets.clone(), value.clone());
            let me = next_shard.fetch_add(1, Ordering::Relaxed);
            async move {
                let conns = w.connections;
                let mut tasks = Vec::new();
                for g in (me..conns).step_by(cores) {
                    let (w, value) = (w.clone(), value.clone());
                    let addr = targets[g % targets.len()];
                    tasks.push(glommio::spawn_local(async move {
                        preload_conn(&w, addr, g, conns, value).await
                    }));
                }
                let mut out = Ok(0u64);
                for t in tasks {
                    match (t.await, &mut out) {
                        (Ok(n), Ok(total)) => *total += n,
                        (Err(e), Ok(_)) => out = Err(e),
                        _ => {}
                    }
                }
                out
            }
        })
        .map_err(|e| DriverError::Pool(e.to_string()))?;
    let mut records = 0;
    for r in handles.join_all() {
        records += r
            .map_err(|e| DriverError::Pool(e.to_string()))?
            .map_err(DriverError::Preload)?;
    }
    Ok((records, t0.elapsed().as_secs_f64()))
}

pub(super) async fn preload_conn(
    w: &Workload,
    addr: SocketAddr,
    g: usize,
    conns: usize,
    value: Arc<Vec<u8>>,
) -> Result<u64, String> {
    let keys = KeyChooser::new(w, Arc::new(AtomicU64::new(w.record_count)));
    let mut generator = RequestGen::new(w, g, keys, value);
    let mut s = connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_millis(w.timeout_ms)))
        .map_err(|e| e.to_string())?;
    let mut reader = ReplyReader::default();
    let mut wbuf = Vec::with_capacity(WRITE_BUFFER_BYTES);
    let mut k = g as u64;
    while k < w.record_count {
        wbuf.clear();
        let mut n = 0;
        while n < PRELOAD_PIPELINE && k < w.record_count {
            generator.encode_set(&mut wbuf, k);
            k += conns as u64;
            n += 1;
        }
        s.write_all(&wbuf)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        while n > 0 {
            match reader.next_buffered().map_err(|e| format!("{addr}: {e}"))? {
                Some(Reply::Ok) => n -= 1,
                Some(Reply::Err(word)) => return Err(format!("{addr}: SET failed with {word}")),
                None => reader
                    .fill(&mut s)
                    .await
                    .map_err(|e| format!("{addr}: {e}"))?,
            }
        }
    }
    Ok(w.record_count
        .saturating_sub(g as u64)
        .div_ceil(conns as u64))
}
