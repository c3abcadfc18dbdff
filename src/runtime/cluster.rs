//! `corepax cluster`: a local cluster of node processes on 127.0.0.1, for trying corepax,
//! for tests and for benchmarks. Prints the endpoints, forwards Ctrl-C and stops the nodes.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cli::ClusterArgs;

/// How long the nodes get to start listening.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the cluster until SIGINT or SIGTERM, or until fewer than a majority of its nodes
/// run. A minority may die (kill -9 one to watch the others carry on): a replicated
/// cluster keeps serving then, so this one keeps running too.
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let n = usize::from(args.replicas);
    // All replicas share this machine: one shard per core in total, not per node, or the
    // executors oversubscribe the cores and every cross-shard hop waits for the scheduler.
    let shards = args
        .shards
        .unwrap_or_else(|| (crate::cli::num_cpus() / n).max(1));
    anyhow::ensure!(
        (1..=crate::config::SHARDS_MAX).contains(&shards),
        "invalid `--shards` = {shards}: allowed 1..=64"
    );
    let peer_base = match args.peer_port {
        Some(p) => p,
        None => args.base_port.checked_add(1000).ok_or_else(|| {
            anyhow::anyhow!(
                "--base-port {} leaves no room for peer ports",
                args.base_port
            )
        })?,
    };
    let peer_port = |i: usize| -> anyhow::Result<u16> {
        u16::try_from(usize::from(peer_base) + 64 * i)
            .map_err(|_| anyhow::anyhow!("peer port out of range for replica {i}"))
    };
    let mut peers = Vec::with_capacity(n);
    for i in 0..n {
        peers.push(format!("127.0.0.1:{}", peer_port(i)?));
    }
    let client = |i: usize| -> anyhow::Result<SocketAddr> {
        let port = u16::try_from(usize::from(args.base_port) + i)
            .map_err(|_| anyhow::anyhow!("client port out of range for replica {i}"))?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    };
    // Pinned, each replica gets cores of its own; with fewer cores than executors in
    // all, pinning would stack several executors on one core while others idle (each
    // node alone would pin to the first cores), so they run unpinned and the kernel
    // balances them.
    let cpus = crate::cli::num_cpus();
    let cores = (!args.no_pin && n * shards <= cpus).then_some(shards);
    if !args.no_pin && cores.is_none() {
        eprintln!("note: {n} replicas × {shards} shards > {cpus} cores: executors run unpinned");
    }
    std::fs::create_dir_all(&args.data)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", args.data.display()))?;
    let exe = std::env::current_exe()?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;

    let mut children: Vec<Child> = Vec::with_capacity(n);
    let mut endpoints = Vec::with_capacity(n);
    for i in 0..n {
        let addr = client(i)?;
        let mut cmd = Command::new(&exe);
        cmd.arg("node")
            .arg("--id")
            .arg(i.to_string())
            .arg("--client-addr")
            .arg(addr.to_string())
            .arg("--peers")
            .arg(peers.join(","))
            .arg("--data")
            .arg(args.data.join(format!("node-{i}")))
            .arg("--shards")
            .arg(shards.to_string())
            .arg("--anti-entropy-interval-ms")
            .arg(args.anti_entropy_interval_ms.to_string())
            .args(args.protocol.to_args());
        if args.no_fsync {
            cmd.arg("--no-fsync");
        }
        match &cores {
            Some(per_node) => {
                let cpus: Vec<String> = (i * per_node..(i + 1) * per_node)
                    .map(|c| c.to_string())
                    .collect();
                cmd.arg("--cpus").arg(cpus.join(","));
            }
            None => {
                cmd.arg("--no-pin");
            }
        }
        if args.debug {
            cmd.arg("--debug");
        }
        if let Some(v) = args.snapshot_interval_slots {
            cmd.arg("--snapshot-interval-slots").arg(v.to_string());
        }
        match cmd.spawn() {
            Ok(c) => children.push(c),
            Err(e) => {
                stop_all(&mut children);
                anyhow::bail!("starting node {i}: {e}");
            }
        }
        endpoints.push(addr);
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    for (i, addr) in endpoints.iter().enumerate() {
        loop {
            if TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = children[i].try_wait() {
                stop_all(&mut children);
                anyhow::bail!("node {i} exited during start-up: {status}");
            }
            if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
                stop_all(&mut children);
                anyhow::bail!("node {i} did not listen on {addr} within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let list: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    println!(
        "corepax cluster ready: {n} replicas × {shards} shards{}; anti-entropy {}; clients: {}",
        if args.no_fsync {
            " (NO FSYNC: not durable)"
        } else {
            ""
        },
        if args.anti_entropy_interval_ms == 0 {
            "off".to_string()
        } else {
            format!("every {} ms", args.anti_entropy_interval_ms)
        },
        list.join(",")
    );
    println!("ready: {}", list.join(","));
    let mut running = vec![true; n];
    while !stop.load(Ordering::Relaxed) {
        for (i, c) in children.iter_mut().enumerate() {
            if running[i]
                && let Ok(Some(status)) = c.try_wait()
            {
                running[i] = false;
                let alive = running.iter().filter(|r| **r).count();
                if alive > n / 2 {
                    eprintln!("node {i} exited: {status}; {alive} of {n} nodes still run");
                } else {
                    eprintln!(
                        "node {i} exited: {status}; {alive} of {n} nodes is no majority; stopping the cluster"
                    );
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop_all(&mut children);
    println!("corepax cluster stopped");
    Ok(())
}

/// Sends SIGTERM to every node and waits for it; SIGKILL after a grace period.
fn stop_all(children: &mut [Child]) {
    for c in children.iter() {
        // SAFETY: kill(2) with a pid we spawned and have not reaped; no memory is shared.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for c in children.iter_mut() {
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}
