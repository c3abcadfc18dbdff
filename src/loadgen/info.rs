//! Counters a corepax server reports in INFO (the `reads_total:` line and the
//! `shardN_stats:` lines), read before and after a run so the result records what the read
//! path and the protocol did (leader changes, retransmissions, snapshots). Other RESP
//! servers have no such lines and are left alone.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// An INFO reply larger than this is not read (a corepax INFO is a few KiB).
const INFO_BYTES_MAX: usize = 1 << 20;
/// How long connecting, sending INFO and reading its reply may each take.
const INFO_TIMEOUT: Duration = Duration::from_secs(2);

/// The server's INFO text, or None if it does not answer in time or sensibly.
fn info(addr: SocketAddr) -> Option<String> {
    let timeout = INFO_TIMEOUT;
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(b"*1\r\n$4\r\nINFO\r\n").ok()?;
    let mut r = BufReader::new(s);
    let mut header = String::new();
    r.read_line(&mut header).ok()?;
    let len: usize = header.trim_end().strip_prefix('$')?.parse().ok()?;
    if len > INFO_BYTES_MAX {
        return None;
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

/// True once the corepax server at `addr` knows a leader for each of its shards.
pub fn every_shard_led(addr: SocketAddr) -> bool {
    info(addr).is_some_and(|text| shards_led(&text))
}

/// The leader each shard of the corepax server at `addr` knows (`shardN:…leader=L…`), in
/// shard order; None where it knows none. Empty for other servers.
pub fn leaders(addr: SocketAddr) -> Vec<Option<u64>> {
    info(addr).map_or_else(Vec::new, |text| parse_leaders(&text))
}

fn parse_leaders(text: &str) -> Vec<Option<u64>> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim_end().split_once(':')?;
            is_index(name.strip_prefix("shard")?).then_some(rest)
        })
        .map(|rest| {
            rest.split(',')
                .find_map(|kv| kv.strip_prefix("leader="))
                .and_then(|v| v.parse().ok())
        })
        .collect()
}

fn shards_led(text: &str) -> bool {
    let shards: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(name, _)| name.strip_prefix("shard").is_some_and(is_index))
        })
        .collect();
    !shards.is_empty() && shards.iter().all(|l| !l.contains("leader=none"))
}

/// The replication protocol the corepax server at `addr` runs (the `protocol:` line of its
/// INFO's `# Protocol` section); None for other servers.
pub fn protocol(addr: SocketAddr) -> Option<String> {
    info(addr).and_then(|text| parse_protocol(&text))
}

fn parse_protocol(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim_end().strip_prefix("protocol:"))
        .map(str::to_string)
}

/// CPU time (user + system, s) the server at `addr` has used so far, from the
/// `used_cpu_user` and `used_cpu_sys` lines of its INFO: Redis and corepax both have them.
pub fn cpu_s(addr: SocketAddr) -> Option<f64> {
    info(addr).and_then(|text| parse_cpu_s(&text))
}

fn parse_cpu_s(text: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim_end().strip_prefix(name)?.strip_prefix(':'))?
            .parse()
            .ok()
    };
    Some(field("used_cpu_user")? + field("used_cpu_sys")?)
}

/// Counters summed over servers (and shards).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// The numeric `key=value` pairs of the `reads_total:` line.
    pub reads: BTreeMap<String, u64>,
    /// Those of every `shardN_stats:` line.
    pub shards: BTreeMap<String, u64>,
}

/// The counters of every server in `addrs` that answers INFO.
pub fn counters(addrs: &[SocketAddr]) -> Counters {
    let mut sum = Counters::default();
    for text in addrs.iter().filter_map(|a| info(*a)) {
        for (k, v) in parse_reads_total(&text) {
            *sum.reads.entry(k).or_insert(0) += v;
        }
        for (k, v) in parse_shard_stats(&text) {
            *sum.shards.entry(k).or_insert(0) += v;
        }
    }
    sum
}

fn parse_reads_total(text: &str) -> Vec<(String, u64)> {
    parse_pairs(
        text.lines()
            .filter_map(|l| l.trim_end().strip_prefix("reads_total:")),
    )
}

/// `shard0_stats:a=1,b=2` and the like, every shard's pairs in one list.
fn parse_shard_stats(text: &str) -> Vec<(String, u64)> {
    parse_pairs(text.lines().filter_map(|l| {
        let (name, rest) = l.trim_end().split_once(':')?;
        let index = name.strip_prefix("shard")?.strip_suffix("_stats")?;
        is_index(index).then_some(rest)
    }))
}

/// A shard number as INFO writes it in `shardN…` names.
fn is_index(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The numeric `key=value` pairs of comma-separated lines.
fn parse_pairs<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, u64)> {
    lines
        .flat_map(|l| l.split(','))
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// `after - before`, key by key (counters only grow; a restarted server restarts them).
pub fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_reads_line_and_skips_text() {
        let text = "# Server\r\nrole:x\r\nreads_total:read_mode=digest,local=3,quorum=40,read_bytes_sent=900\r\n";
        let got = parse_reads_total(text);
        assert_eq!(
            got,
            vec![
                ("local".to_string(), 3),
                ("quorum".to_string(), 40),
                ("read_bytes_sent".to_string(), 900)
            ]
        );
        let before = BTreeMap::from([("quorum".to_string(), 10)]);
        let after: BTreeMap<_, _> = got.into_iter().collect();
        assert_eq!(delta(&before, &after)["quorum"], 30);
        assert!(parse_reads_total("# Server\r\nredis_version:7\r\n").is_empty());
    }

    #[test]
    fn the_protocol_line_names_the_protocol() {
        let text = "# Protocol\r\nprotocol:raft\r\nreplicas:3\r\n";
        assert_eq!(parse_protocol(text).as_deref(), Some("raft"));
        assert_eq!(parse_protocol("# Server\r\nredis_version:7\r\n"), None);
    }

    #[test]
    fn cpu_time_is_user_plus_system() {
        let redis = "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\n\
                     used_cpu_sys_children:9.000000\r\n";
        assert_eq!(parse_cpu_s(redis), Some(3.75));
        assert_eq!(parse_cpu_s("used_cpu_user:2.5\r\n"), None);
        assert_eq!(parse_cpu_s("used_cpu_user:x\r\nused_cpu_sys:1\r\n"), None);
    }

    #[test]
    fn leaders_are_read_per_shard_line() {
        let text = "shard0:leading=1,leader=2,commit_index=5\r\nshard0_stats:x=1\r\nshard1:leader=none\r\n";
        assert_eq!(parse_leaders(text), [Some(2), None]);
    }

    #[test]
    fn every_shard_led_needs_a_leader_on_each_shard_line() {
        let led = "shard0:leading=1,leader=0,keys=5\r\nshard1:leading=0,leader=2\r\n";
        assert!(shards_led(led));
        assert!(!shards_led(
            "shard0:leading=0,leader=none\r\nshard1:leader=2\r\n"
        ));
        assert!(!shards_led("# Server\r\nredis_version:7\r\n"));
        assert!(!shards_led("shard0_stats:commands=3\r\n"));
    }

    #[test]
    fn parses_every_shards_stats_line() {
        let text = "shard0:leading=1,keys=5\r\nshard0_stats:commands=3,became_leader=1\r\n\
                    shard1_stats:commands=4,became_leader=0\r\nshardx_stats:commands=9\r\n";
        let got = parse_shard_stats(text);
        assert_eq!(
            got,
            vec![
                ("commands".to_string(), 3),
                ("became_leader".to_string(), 1),
                ("commands".to_string(), 4),
                ("became_leader".to_string(), 0),
            ]
        );
    }
}
