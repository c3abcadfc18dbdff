//! Node: redis-cli and redis-benchmark work unchanged against a 3-replica cluster.
//! Needs Debian's redis-tools (scripts/test.sh installs it); under CI a missing tool fails.
mod node_support;
use std::process::Command;

use node_support::*;

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing: scripts/test.sh installs redis-tools"
        );
        eprintln!("SKIPPED: {name} is not installed (scripts/test.sh installs redis-tools)");
    }
    found
}

#[test]
fn redis_cli_and_redis_benchmark_run_without_errors() {
    if !tool("redis-cli") || !tool("redis-benchmark") {
        return;
    }
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
    assert!(
        !stdout.contains("rror") && !stderr.contains("rror"),
        "{stdout} {stderr}"
    );
    assert!(
        stdout.contains("SET:") && stdout.contains("GET:"),
        "{stdout}"
    );
}
