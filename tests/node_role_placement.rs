//! Node: executors placed by role (`--leader-cpus`, `--follower-cpus`) run on their
//! leader core while their shard leads and on the followers' cores otherwise, as the
//! kernel reports it (INFO `cores=`, read with sched_getaffinity on the shard's own
//! thread); with `--follower-sched-batch true`, followers run at SCHED_BATCH and leaders
//! do not (INFO `sched=`, sched_getscheduler). After the leader is killed, the new
//! leader's executor is placed as one. The cores test needs two online cores: with one,
//! it says so and checks nothing. A leader core that is not online is refused at start,
//! by the setting's name.
mod node_support;
use std::time::Duration;

use node_support::*;

/// The leader of each shard, if every live node's shard `s` executor shows INFO `field`
/// as `want(s, leads)` says; otherwise what is misplaced.
fn placed_by_role(
    cluster: &Cluster,
    field: &str,
    want: &dyn Fn(usize, bool) -> String,
) -> Result<Vec<usize>, String> {
    let mut leaders = Vec::new();
    for (s, leader) in cluster.leaders().iter().enumerate() {
        let leader = leader.ok_or(format!("shard {s} has no leader"))?;
        for n in (0..cluster.clients.len()).filter(|&n| cluster.is_up(n)) {
            let want = want(s, n == leader);
            let got = cluster.shard_text(n, s, field);
            if got != want {
                return Err(format!(
                    "node {n}, shard {s} (leader: node {leader}): {field}={got}, not {want}"
                ));
            }
        }
        leaders.push(leader);
    }
    Ok(leaders)
}

/// Waits (5 s at most: a leader is placed at the step that made it leader, INFO may
/// come just before) until the executors are placed by role; the leaders.
fn wait_placed(cluster: &Cluster, field: &str, want: &dyn Fn(usize, bool) -> String) -> Vec<usize> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match placed_by_role(cluster, field, want) {
            Ok(leaders) => return leaders,
            Err(e) if std::time::Instant::now() > deadline => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Checks the placement, kills shard 0's leader, checks it again with the new leader.
fn placed_then_failover(cluster: &mut Cluster, field: &str, want: &dyn Fn(usize, bool) -> String) {
    let victim = wait_placed(cluster, field, want)[0];
    cluster.kill9(victim);
    cluster.wait_for_leaders(Duration::from_secs(10));
    let after = wait_placed(cluster, field, want);
    assert_ne!(after[0], victim, "shard 0 has a new leader");
}

#[test]
fn executors_follow_their_role_to_their_cores_and_move_after_a_failover() {
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    if online < 2 || corepax::runtime::affinity::process_cores()[..2] != [0, 1] {
        eprintln!("needs cores 0 and 1: nothing checked on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(
        3,
        dir.path(),
        &["--leader-cpus", "0,1", "--follower-cpus", "0,1"],
    );
    let cores = |s: usize, leads: bool| if leads { s.to_string() } else { "0-1".into() };
    placed_then_failover(&mut cluster, "cores", &cores);
}

#[test]
fn followers_run_at_sched_batch_and_leaders_do_not_after_a_failover_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(3, dir.path(), &["--follower-sched-batch", "true"]);
    let sched = |_: usize, leads: bool| if leads { "normal" } else { "batch" }.to_string();
    placed_then_failover(&mut cluster, "sched", &sched);
}

#[test]
fn a_leader_core_that_is_not_online_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let client = format!("127.0.0.1:{}", free_ports(1));
    let peer = format!("127.0.0.1:{}", free_ports(SHARDS as u16));
    let args: Vec<std::ffi::OsString> = [
        "--id",
        "0",
        "--client-addr",
        &client,
        "--peers",
        &peer,
        "--data",
        &dir.path().join("node-0").display().to_string(),
        "--shards",
        "2",
        "--no-pin",
        "--leader-cpus",
        "0,1000",
        "--follower-cpus",
        "0",
    ]
    .iter()
    .map(Into::into)
    .collect();
    let stderr = node_refused(&args);
    assert!(
        stderr.contains("invalid `leader_cpus`: core 1000 is not online"),
        "{stderr}"
    );
}
