//! Node: redis-cli and redis-benchmark work unchanged against a 3-replica cluster.
//! Needs Debian's redis-tools (scripts/test.sh installs it); a missing tool fails the test.
mod node_support;
use std::process::Command;

use node_support::*;

/// Fails when `name` is missing: scripts/test.sh installs redis-tools, and a skipped test
/// would pass while proving nothing.
fn require_tool(name: &str) {
    assert!(
        Command::new(name).arg("--version").output().is_ok(),
        "{name} is missing: run ./scripts/test.sh, which installs redis-tools"
    );
}

#[test]
fn redis_cli_and_redis_benchmark_run_without_errors() {
    require_tool("redis-cli");
    require_tool("redis-benchmark");
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let port = |i: usize| cluster.clients[i].port().to_string();
    let cli = |i: usize, args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port(i)])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(cli(0, &["SET", "greeting", "hello"]), "OK");
    assert_eq!(cli(1, &["GET", "greeting"]), "hello");
    assert_eq!(cli(2, &["PING"]), "PONG");
    assert!(cli(2, &["INFO"]).contains("role:"));
    assert!(cli(0, &["DBSIZE"]).parse::<u64>().is_ok());

    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port(0)])
        .args(["-t", "set,get", "-n", "5000", "-c", "20", "-P", "8", "-q"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "redis-benchmark failed: {stdout} {stderr}"
    );
    // With -q every line is "TEST: N requests per second, ..." (redis-benchmark prints
    // error replies on lines of their own), so each line must read as that, and both
    // tests must have run at a positive rate.
    let mut rates = std::collections::BTreeMap::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // -q redraws its progress with carriage returns: the final figure is the last part.
        let last = line.rsplit('\r').next().unwrap_or(line).trim();
        let (test, rest) = last
            .split_once(": ")
            .unwrap_or_else(|| panic!("unexpected redis-benchmark line {last:?}\n{stdout}"));
        let rate: f64 = rest
            .split_once(" requests per second")
            .and_then(|(n, _)| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected redis-benchmark line {last:?}\n{stdout}"));
        rates.insert(test.to_string(), rate);
    }
    for test in ["SET", "GET"] {
        assert!(
            rates.get(test).is_some_and(|r| *r > 0.0),
            "no {test} rate in {stdout}"
        );
    }
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("ERR") || l.contains("Error")),
        "{stderr}"
    );
}
