//! Node: SCAN and KEYS over the shards of a 3-replica cluster. A key present for a whole
//! scan is returned at least once while other keys are written and removed meanwhile;
//! `TYPE` tells lists from strings; redis-cli's `--scan` walks every key.
mod node_support;

use std::collections::HashSet;
use std::time::Duration;

use corepax::wire::resp::Value;
use node_support::*;

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(Some(items)) => items.iter().filter_map(bulk).collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// One SCAN step: the next cursor and the keys.
fn step(c: &mut Client, cursor: &str, extra: &[&str]) -> (String, Vec<String>) {
    let mut args = vec!["SCAN", cursor];
    args.extend_from_slice(extra);
    match c.cmd(&args).unwrap() {
        Value::Array(Some(parts)) if parts.len() == 2 => {
            (bulk(&parts[0]).expect("a cursor"), strings(&parts[1]))
        }
        other => panic!("SCAN answered {other:?}"),
    }
}

/// A whole scan with these options, in steps: the keys.
fn scan_all(c: &mut Client, extra: &[&str]) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, keys) = step(c, &cursor, extra);
        found.extend(keys);
        if next == "0" {
            return found;
        }
        cursor = next;
    }
}

#[test]
fn scan_returns_keys_present_throughout_while_others_change() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(3, dir.path(), &[]);
    let mut c = Client::connect(cluster.clients[0]).unwrap();
    let stay: Vec<String> = (0..300).map(|i| format!("stay:{i}")).collect();
    for chunk in stay.chunks(50) {
        let mut args = vec!["MSET"];
        for k in chunk {
            args.extend_from_slice(&[k.as_str(), "v"]);
        }
        assert!(is_ok(&c.cmd(&args).unwrap()));
    }
    assert!(is_ok(&c.cmd(&["SET", "gone:before", "v"]).unwrap()));
    assert_eq!(c.cmd(&["DEL", "gone:before"]).unwrap(), Value::Integer(1));
    assert_eq!(c.cmd(&["RPUSH", "list:a", "x"]).unwrap(), Value::Integer(1));
    assert_eq!(
        c.cmd(&["LPUSH", "list:b", "y", "z"]).unwrap(),
        Value::Integer(2)
    );
    cluster.wait_states_agree(Duration::from_secs(10));

    // Scan node 1 in small steps while another client adds and removes keys.
    let writer_addr = cluster.clients[2];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (stop_writer, writes_done) = (stop.clone(), writes.clone());
    let writer = std::thread::spawn(move || {
        let mut w = Client::connect(writer_addr).unwrap();
        let mut i = 0;
        while !stop_writer.load(std::sync::atomic::Ordering::Relaxed) {
            assert!(is_ok(&w.cmd(&["SET", &format!("churn:{i}"), "v"]).unwrap()));
            if i % 2 == 0 {
                w.cmd(&["DEL", &format!("churn:{}", i / 2)]).unwrap();
            }
            i += 1;
            writes_done.store(i, std::sync::atomic::Ordering::Relaxed);
        }
        i
    });
    // The scan starts once the writer writes: a scan of a few hundred keys can end before
    // a new thread has even connected (CI saw "0 writes during 59 steps").
    wait_until("the writer's first write", Duration::from_secs(10), || {
        writes.load(std::sync::atomic::Ordering::Relaxed) > 0
    });
    let mut scanner = Client::connect(cluster.clients[1]).unwrap();
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    let mut steps = 0;
    loop {
        let (next, keys) = step(&mut scanner, &cursor, &["COUNT", "5"]);
        seen.extend(keys);
        steps += 1;
        assert!(steps < 100_000, "the scan does not end");
        if next == "0" {
            break;
        }
        cursor = next;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(
        written > 0 && steps > 2,
        "{written} writes during {steps} steps"
    );
    let seen: HashSet<String> = seen.into_iter().collect();
    for k in &stay {
        assert!(
            seen.contains(k),
            "{k} was present throughout and never returned"
        );
    }
    assert!(
        !seen.contains("gone:before"),
        "a key removed before the scan"
    );
    assert!(
        seen.iter().all(|k| ["stay:", "churn:", "list:"]
            .iter()
            .any(|p| k.starts_with(p))),
        "a key never written"
    );

    // MATCH and TYPE filter; KEYS uses the same patterns.
    let mut matched = HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, keys) = step(
            &mut scanner,
            &cursor,
            &["MATCH", "stay:1?", "COUNT", "1000"],
        );
        matched.extend(keys);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let want: HashSet<String> = (10..20).map(|i| format!("stay:{i}")).collect();
    assert_eq!(matched, want);
    let keys: HashSet<String> = strings(&scanner.cmd(&["KEYS", "stay:1?"]).unwrap())
        .into_iter()
        .collect();
    assert_eq!(keys, want);
    assert_eq!(
        step(&mut scanner, "0", &["TYPE", "hash", "COUNT", "1000"])
            .1
            .len(),
        0
    );
    // Lists are keys of their own type.
    let lists: HashSet<String> = ["list:a", "list:b"].map(String::from).into();
    assert!(lists.is_subset(&seen), "SCAN without TYPE returns lists");
    assert_eq!(
        scan_all(&mut scanner, &["TYPE", "list", "COUNT", "50"]),
        lists
    );
    let strings_only = scan_all(&mut scanner, &["TYPE", "string", "COUNT", "50"]);
    assert!(strings_only.contains("stay:0") && strings_only.is_disjoint(&lists));
    let keys: HashSet<String> = strings(&scanner.cmd(&["KEYS", "list:*"]).unwrap())
        .into_iter()
        .collect();
    assert_eq!(keys, lists);
    let e = scanner.cmd(&["SCAN", "0", "NOSUCH", "x"]).unwrap();
    assert!(
        matches!(&e, Value::Error(m) if m.contains("NOSUCH")),
        "{e:?}"
    );
    let e = scanner.cmd(&["SCAN", "banana"]).unwrap();
    assert!(
        matches!(&e, Value::Error(m) if m.contains("invalid cursor")),
        "{e:?}"
    );

    // redis-cli --scan walks every key through its cursors.
    let out = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.clients[0].port().to_string(),
        ])
        .args(["--scan", "--pattern", "stay:*"])
        .output()
        .expect("redis-cli is missing: run ./scripts/test.sh, which installs redis-tools");
    assert!(
        out.status.success(),
        "redis-cli --scan: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: HashSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(listed, stay.iter().cloned().collect::<HashSet<_>>());
}
