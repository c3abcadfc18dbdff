use super::*;
use crate::loadgen::testdata::{Synthetic, write as synthetic};

/// Three runs of a sweep over read modes, with server counters.
fn runs(dir: &Path) -> Vec<Loaded> {
    for (i, m) in ["log", "leader-lease", "quorum"].iter().enumerate() {
        let s = Synthetic {
            latency: 1.0 + i as f64,
            sweep: Some(serde_json::json!({"read_mode": m, "replicas": 3})),
            ..Synthetic::default()
        };
        synthetic(dir, &format!("run-{i:03}.json"), &s);
    }
    let mut loaded = results::load(dir.to_str().expect("utf-8")).expect("load");
    loaded[2].result.target_info.insert(
        "shard_counters".into(),
        serde_json::json!({"syncs_slow": 7, "executor_stalls": 2, "became_leader": 1}),
    );
    loaded[1].result.machine = Some(crate::loadgen::driver::MachineUse {
        loadgen_cpu_s: 1.5,
        busy_share: 0.836,
        cores: 2,
    });
    loaded
}

#[test]
fn the_page_holds_table_plots_commands_and_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = runs(dir.path());
    let page = html("test sweep", &loaded).expect("page");
    let dom = tl::parse(&page, tl::ParserOptions::default()).expect("HTML parses");
    let parser = dom.parser();
    let count = |sel: &str| dom.query_selector(sel).map_or(0, |q| q.count());
    assert_eq!(count("svg"), 2, "two plots inlined");
    assert_eq!(count("script"), 0, "no script");
    let tbody = dom
        .query_selector("tbody")
        .and_then(|mut q| q.next())
        .and_then(|h| h.get(parser))
        .expect("the runs' table body");
    let lines = tbody.children().map_or(0, |c| {
        c.top()
            .iter()
            .filter_map(|h| h.get(parser)?.as_tag())
            .filter(|t| t.name().as_utf8_str() == "tr")
            .count()
    });
    assert_eq!(lines, 3, "a line per run");
    let title = dom
        .query_selector("title")
        .and_then(|mut q| q.next())
        .and_then(|h| h.get(parser))
        .map(|n| n.inner_text(parser).to_string())
        .expect("title");
    assert_eq!(title, "corepax results: test sweep");
    let text = |needle: &str| assert!(page.contains(needle), "{needle} missing");
    text("leader-lease");
    text(&loaded[0].result.command);
    text("slow syncs");
    text("<td class=\"num\">7</td>");
    text("machine busy");
    text("<td class=\"num\">84 %</td>");
    text("p99.99");
    // One run alone: its latency curve, no scatter of one point.
    let one = html("one", &loaded[..1]).expect("page");
    assert_eq!(one.matches("<svg").count(), 1);
}

/// Reports, in a real headless browser, the rendered size of each SVG of the page, or
/// the console messages it logged (a page without script logs none unless it is broken).
fn render_in_chromium(page: &str, dir: &Path) -> Result<Vec<(u32, u32)>, String> {
    let probe = "<script>addEventListener('load', () => { const p = document.createElement('pre'); \
        p.id = 'probe'; p.textContent = [...document.querySelectorAll('svg')].map(e => { \
        const r = e.getBoundingClientRect(); return Math.round(r.width) + 'x' + Math.round(r.height); \
        }).join(' '); document.body.appendChild(p); });</script>";
    let probed = page.replacen("</body>", &format!("{probe}</body>"), 1);
    let file = dir.join("probe.html");
    std::fs::write(&file, probed).map_err(|e| e.to_string())?;
    let out = std::process::Command::new("timeout")
        .args([
            "60",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("file://{}", file.display()))
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    if !console.is_empty() {
        return Err(console.join("\n"));
    }
    let dom = String::from_utf8_lossy(&out.stdout);
    let probe = dom
        .split("<pre id=\"probe\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .ok_or_else(|| {
            format!(
                "no probe in the rendered page (rc {:?}): {stderr}",
                out.status
            )
        })?;
    Ok(probe
        .split_whitespace()
        .filter_map(|s| s.split_once('x'))
        .filter_map(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .collect())
}

#[test]
fn the_page_renders_in_headless_chromium_without_console_errors() {
    let found = std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    // scripts/test.sh installs Debian's chromium; missing, the test fails rather than
    // passing without having looked.
    assert!(
        found,
        "chromium is not installed: run ./scripts/test.sh, which installs it"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = runs(dir.path());
    let page = html("test sweep", &loaded).expect("page");
    let sizes = render_in_chromium(&page, dir.path()).expect("renders without console errors");
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert!(
        sizes.iter().all(|(w, h)| *w >= 800 && *h >= 400),
        "{sizes:?}"
    );
    // The check sees a broken page.
    let broken = page.replacen("</body>", "<script>no_such_function();</script></body>", 1);
    let err = render_in_chromium(&broken, dir.path()).expect_err("a script error is seen");
    assert!(err.contains("no_such_function"), "{err}");
}
