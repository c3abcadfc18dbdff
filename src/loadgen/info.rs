//! Counters a corepax server reports in INFO (`reads_total:` line), read before and after a
//! run so the result records what the read path did. Other RESP servers have no such line
//! and are left alone.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// An INFO reply larger than this is not read (a corepax INFO is a few KiB).
const INFO_BYTES_MAX: usize = 1 << 20;

/// The server's INFO text, or None if it does not answer in time or sensibly.
fn info(addr: SocketAddr) -> Option<String> {
    let timeout = Duration::from_secs(2);
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

/// The numeric `key=value` pairs of the `reads_total:` line, summed over `addrs`.
pub fn read_counters(addrs: &[SocketAddr]) -> BTreeMap<String, u64> {
    let mut sum = BTreeMap::new();
    for text in addrs.iter().filter_map(|a| info(*a)) {
        for (k, v) in parse_reads_total(&text) {
            *sum.entry(k).or_insert(0) += v;
        }
    }
    sum
}

fn parse_reads_total(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| l.trim_end().strip_prefix("reads_total:"))
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
}
