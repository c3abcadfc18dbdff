//! A `corepax bench` that is killed (SIGTERM from `timeout`, SIGINT from Ctrl-C) takes its
//! embedded cluster along. The cluster runs in its own process group, so the terminal's
//! Ctrl-C never reached it, and it ran on after the load generator died. One whose result
//! cannot be stored stops before it starts anything.
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pids of `pid`'s children (every thread's).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|rest| rest.trim().to_string()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// `corepax bench` of the default workload for 60 s, its result written into `dir`.
fn bench_command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corepax"));
    cmd.args([
        "bench",
        "--duration",
        "60",
        "--half-load",
        "0",
        "--no-preload",
    ])
    .arg("--json")
    .arg(dir.join("result.json"));
    cmd
}

/// Where `bench` puts the bench's standard error: read when it exits early.
fn stderr_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("bench.stderr")
}

fn bench(dir: &std::path::Path) -> Child {
    let mut cmd = bench_command(dir);
    let err = std::fs::File::create(stderr_path(dir)).expect("create the stderr file");
    cmd.stdout(Stdio::null()).stderr(err);
    // SAFETY: signal(2) only, in the child before exec: SIGINT kills it even when this
    // test runs with SIGINT ignored (a shell's background job).
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    cmd.spawn().expect("start corepax bench")
}

/// Waits until the bench has started its cluster and returns the cluster's pid.
fn cluster_of(bench: &mut Child, dir: &std::path::Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(&pid) = children(bench.id()).first() {
            // The cluster's own nodes show it is up.
            if !children(pid).is_empty() {
                return pid;
            }
        }
        if let Some(status) = bench.try_wait().unwrap() {
            let err = std::fs::read_to_string(stderr_path(dir)).unwrap_or_default();
            panic!("bench exited early ({status}); its stderr:\n{err}");
        }
        assert!(
            Instant::now() < deadline,
            "bench started no cluster in 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn killed_with(signal: libc::c_int) {
    let dir = tempfile::tempdir().unwrap();
    let mut b = bench(dir.path());
    let cluster = cluster_of(&mut b, dir.path());
    let nodes = children(cluster);
    // SAFETY: kill(2) on a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(b.id() as libc::pid_t, signal) }, 0);
    b.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(cluster) || nodes.iter().any(|&n| alive(n)) {
        if Instant::now() > deadline {
            let left = (alive(cluster), nodes.iter().filter(|&&n| alive(n)).count());
            // SAFETY: kill(2) of the process group the bench gave its cluster.
            unsafe { libc::kill(-(cluster as libc::pid_t), libc::SIGKILL) };
            panic!(
                "20 s after the bench died of signal {signal}: cluster alive {}, {} nodes alive",
                left.0, left.1
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_stops_the_embedded_cluster() {
    killed_with(libc::SIGTERM);
}

#[test]
fn sigint_stops_the_embedded_cluster() {
    killed_with(libc::SIGINT);
}

#[test]
fn a_result_path_that_cannot_be_stored_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // The result's directory would be a regular file: it cannot be created.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let out = bench_command(&file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot create the directory") && err.contains(&*file.to_string_lossy()),
        "the error names the directory: {err}"
    );
    assert!(!err.contains("target:"), "a target was started: {err}");
}
