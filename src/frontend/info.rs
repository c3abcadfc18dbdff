//! INFO: the node's settings, each shard's state and counters, summed read counters, and
//! the sections Redis tools read (CPU, keyspace).

use std::fmt::Write as _;
use std::rc::Rc;

use crate::config::NodeConfig;
use crate::runtime::node::Local;
use crate::runtime::shard::ShardInfo;

/// The INFO text: Redis's sections where a tool expects them, and the shards' state.
pub(super) async fn info_text(local: &Rc<Local>) -> String {
    let infos = local.infos().await;
    let mut s = String::new();
    server(&mut s, local);
    replication(&mut s, &infos);
    stats(&mut s, &local.cfg, &infos);
    reads(&mut s, &local.cfg, &infos);
    // Named and formatted as Redis does, so a tool reads both servers' CPU the same way.
    let (user_s, sys_s) = crate::runtime::process_cpu_s();
    let _ = write!(
        s,
        "\r\n# CPU\r\nused_cpu_sys:{sys_s:.6}\r\nused_cpu_user:{user_s:.6}\r\n"
    );
    let keys: usize = infos.iter().map(|i| i.keys).sum();
    let _ = write!(
        s,
        "\r\n# Keyspace\r\ndb0:keys={keys},expires=0,avg_ttl=0\r\n"
    );
    s
}

/// `# Server`: the node; `# Protocol`: every protocol setting, from the settings table.
fn server(s: &mut String, local: &Local) {
    let cfg = &local.cfg;
    let _ = write!(
        s,
        "# Server\r\ncorepax_version:{}\r\nnode_id:{}\r\nshards:{}\r\nfsync:{}\r\n\r\n\
         # Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nclient_input_bytes_max:{}\r\n\r\n\
         # Protocol\r\n",
        env!("CARGO_PKG_VERSION"),
        cfg.id,
        local.shards,
        if cfg.no_fsync {
            "OFF (--no-fsync: not durable)"
        } else {
            "on"
        },
        super::clients::ClientSlot::open(),
        cfg.maxclients,
        cfg.client_input_bytes_max,
    );
    for setting in crate::config::SETTINGS {
        let _ = write!(s, "{}:{}\r\n", setting.name, (setting.get)(&cfg.protocol));
    }
    s.push_str("\r\n# Replication\r\n");
}

/// `# Replication`: the role (Redis's words) and each shard's group state.
fn replication(s: &mut String, infos: &[ShardInfo]) {
    let leading = infos.iter().filter(|i| i.leading).count();
    let role = if leading == infos.len() {
        "master"
    } else if leading == 0 {
        "slave"
    } else {
        "mixed"
    };
    let _ = write!(s, "role:{role}\r\nshards_led:{leading}\r\n");
    for i in infos {
        let leader = i.leader.map_or("none".to_string(), |l| l.to_string());
        let _ = write!(
            s,
            "shard{}:leading={},{},recovering={},leader={},commit_index={},applied_index={},keys={},growth_keys_left={},merkle_root={:016x},merkle_bytes={},log_entries={},log_applied_bytes={},sync_max_ms={},snapshot_pause_max_us={},peers_connected={},disk_full={},cores={},sched={},storage={}\r\n",
            i.index,
            i.leading as u8,
            i.epoch,
            i.recovering as u8,
            leader,
            i.commit_index,
            i.applied_index,
            i.keys,
            i.growth_keys_left,
            i.merkle_root,
            i.merkle_bytes,
            i.log_entries,
            i.log_applied_bytes,
            i.sync_times.max_ms,
            i.counters.snapshot_pause_max_us,
            i.peers_connected,
            u8::from(i.disk_full),
            i.cores,
            if i.sched_batch { "batch" } else { "normal" },
            i.storage_error.as_deref().unwrap_or("ok"),
        );
    }
}

/// `# Stats`: each shard's counters, and its anti-entropy.
fn stats(s: &mut String, cfg: &NodeConfig, infos: &[ShardInfo]) {
    s.push_str("\r\n# Stats\r\n");
    for i in infos {
        let _ = write!(
            s,
            "shard{}_stats:commands={},forwarded={},errors={},records_persisted={},\
             records_logged_as_received={},frames_sent_as_logged={},syncs={},\
             elections_started={},became_leader={},slots_proposed={},commands_proposed={},\
             accepts_retransmitted={},catchups_requested={},requests_busy={},\
             requests_too_large={},batches_too_large={},records_too_large={},snapshots_sent={},snapshots_installed={},log_slots_trimmed={},\
             snapshots_written={},snapshot_freeze_us={},snapshot_write_ms={},\
             ticks={},executor_stalls={},executor_stall_ms={},syncs_slow={},syncs_slow_ms={},held_dropped={},storage_full_step_downs={},stale_data_detected={},slots_learned_early={},forwards_answered_early={}\r\n",
            i.index,
            i.counters.commands,
            i.counters.forwarded,
            i.counters.errors,
            i.counters.records_persisted,
            i.counters.records_logged_as_received,
            i.counters.frames_sent_as_logged,
            i.counters.syncs,
            i.stats.elections_started,
            i.stats.became_leader,
            i.stats.slots_proposed,
            i.stats.commands_proposed,
            i.stats.accepts_retransmitted,
            i.stats.catchups_requested,
            i.stats.requests_busy,
            i.stats.requests_too_large,
            i.stats.batches_too_large,
            i.counters.records_too_large,
            i.stats.snapshots_sent,
            i.stats.snapshots_installed,
            i.stats.log_slots_trimmed,
            i.counters.snapshots_written,
            i.counters.snapshot_freeze_us,
            i.counters.snapshot_write_ms,
            i.counters.ticks,
            i.counters.executor_stalls,
            i.counters.executor_stall_ms,
            i.sync_times.slow,
            i.sync_times.slow_ms,
            i.stats.held_dropped,
            i.stats.storage_full_step_downs,
            i.stats.stale_data_detected,
            i.stats.slots_learned_early,
            i.stats.forwards_answered_early,
        );
    }
    // Where a request's time goes, as averages (µs) over everything answered so far:
    // submission to answer in the shard (by its own core, or through a forward), the wait
    // of a batch in the leader's queue, a proposal's time to chosen, and one WAL sync
    // (and how many syncs started while another was in flight).
    let avg = |sum_ns: u64, n: u64| sum_ns.checked_div(n).unwrap_or(0) / 1000;
    for i in infos {
        let (c, st, sy) = (&i.client_times, &i.stats, &i.sync_times);
        let _ = write!(
            s,
            "shard{}_latency:answered_local={},answered_local_avg_us={},\
             answered_forwarded={},answered_forwarded_avg_us={},\
             slots_led={},queue_wait_avg_us={},propose_to_chosen_avg_us={},\
             slots_lazy={},lazy_syncs_forced={},syncs={},sync_avg_us={},syncs_overlapped={}\r\n",
            i.index,
            c.local,
            avg(c.local_ns, c.local),
            c.forwarded,
            avg(c.forwarded_ns, c.forwarded),
            st.slots_chosen_led,
            avg(st.queue_wait_ns, st.slots_proposed),
            avg(st.commit_wait_ns, st.slots_chosen_led),
            st.slots_lazy,
            st.lazy_syncs_forced,
            sy.count,
            avg(sy.total_us.saturating_mul(1000), sy.count),
            sy.overlapped,
        );
    }
    for i in infos {
        let _ = write!(
            s,
            "shard{}_anti_entropy:interval_ms={},rounds={},keys_repaired={},keys_persisted={},failures={},snapshots={}\r\n",
            i.index,
            cfg.anti_entropy_interval_ms,
            i.counters.anti_entropy_rounds,
            i.counters.anti_entropy_keys_repaired,
            i.counters.anti_entropy_keys_persisted,
            i.counters.anti_entropy_failures,
            i.counters.anti_entropy_snapshots,
        );
    }
    for i in infos {
        let p = &i.pubsub;
        let _ = write!(
            s,
            "shard{}_pubsub:channels={},patterns={},watched_keys={},changes_kept={},oldest_from={}\r\n",
            i.index, p.channels, p.patterns, p.watched_keys, p.changes_kept, p.oldest_from,
        );
    }
}

/// `# Reads`: one line summed over shards.
fn reads(s: &mut String, cfg: &NodeConfig, infos: &[ShardInfo]) {
    s.push_str("\r\n# Reads\r\n");
    let mut total = crate::protocol::Stats::default();
    let (mut read_bytes, mut lease_bytes, mut forwards_at_once) = (0, 0, 0);
    for i in infos {
        total.add(&i.stats);
        read_bytes += i.counters.read_bytes_sent;
        lease_bytes += i.counters.lease_bytes_sent;
        forwards_at_once += i.counters.forwards_read_at_once;
    }
    // One line summed over shards, `key=value` pairs, for tools (the load generator).
    let _ = write!(
        s,
        "reads_total:read_mode={},local={},quorum={},log={},redirected={},lease_read_waits={},\
         lease_write_waits={},lease_revocations={},promises_deferred={},digest_mismatches={},\
         fetches={},repairs={},repairs_installed={},read_bytes_sent={},lease_bytes_sent={},\
         clock_checks_failed={},leases_untrusted={},forwards_at_once={}\r\n",
        cfg.protocol.read_mode,
        total.reads_local,
        total.reads_quorum,
        total.reads_log,
        total.reads_redirected,
        total.lease_read_waits,
        total.lease_write_waits,
        total.lease_revocations,
        total.promises_deferred,
        total.digest_mismatches,
        total.read_fetches,
        total.read_repairs,
        total.repairs_installed,
        read_bytes,
        lease_bytes,
        total.clock_checks_failed,
        total.leases_untrusted,
        forwards_at_once,
    );
    for i in infos {
        let c = &i.clocks;
        let _ = write!(
            s,
            "shard{}_clocks:trusted={},peers_within={:#b},peers_beyond={:#b},drift_ppm_max={}\r\n",
            i.index,
            u8::from(c.trusted),
            c.within_mask,
            c.beyond_mask,
            c.drift_ppm_max
                .map_or("unknown".to_string(), |d| d.to_string()),
        );
    }
}
