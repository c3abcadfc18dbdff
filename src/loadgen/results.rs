//! Results read back: result files named by a path, a folder or a pattern; what tells
//! their configurations apart; and the per-second figures of their interval logs.
use super::report::BenchResult;
use super::stats::{Percentiles, new_histogram};
use anyhow::Context;
use base64::Engine;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Result files one path, folder or pattern may name, at most.
pub const FILES_MAX: usize = 4096;

/// Name of the operation row that sums all operations.
pub const ALL_OPS: &str = "all";

/// A result read back, with the file it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The JSON file.
    pub path: PathBuf,
    /// Its contents.
    pub result: BenchResult,
}

/// Reads results: one JSON file, a folder (every `*.json` directly in it) or a pattern
/// with `*`, `?` or `[..]` (quoted, so this expands it), in name order.
pub fn load(spec: &str) -> anyhow::Result<Vec<Loaded>> {
    let p = Path::new(spec);
    let mut files: Vec<PathBuf> = if p.is_dir() {
        let mut v = Vec::new();
        for e in std::fs::read_dir(p).with_context(|| format!("cannot read folder {spec}"))? {
            let path = e?.path();
            if path.extension().is_some_and(|x| x == "json") {
                v.push(path);
            }
        }
        v
    } else if spec.contains(['*', '?', '[']) {
        glob::glob(spec)
            .with_context(|| format!("bad pattern {spec}"))?
            .collect::<Result<_, _>>()?
    } else {
        vec![p.to_path_buf()]
    };
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{spec}: no result files (*.json) there");
    }
    if files.len() > FILES_MAX {
        anyhow::bail!("{spec}: {} result files; at most {FILES_MAX}", files.len());
    }
    files.iter().map(|f| read(f)).collect()
}

/// Reads one result file; the error names the file and what is wrong with it.
pub fn read(path: &Path) -> anyhow::Result<Loaded> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let result: BenchResult = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a corepax result (the JSON `corepax bench --json` writes)",
            path.display()
        )
    })?;
    Ok(Loaded {
        path: path.to_path_buf(),
        result,
    })
}

/// The settings of a run, name → value as text: a sweep's configuration (its protocol
/// settings flattened, then its launch settings), else the target's kind and the node
/// flags it was given.
pub fn settings(r: &BenchResult) -> BTreeMap<String, String> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let mut out = BTreeMap::new();
    if let Some(serde_json::Value::Object(c)) = r.target_info.get("sweep_config") {
        if let Some(serde_json::Value::Object(p)) = c.get("protocol") {
            for (k, v) in p {
                out.insert(k.clone(), text(v));
            }
        }
        for (k, v) in c {
            if matches!(k.as_str(), "protocol" | "swept" | "workload") || v.is_null() {
                continue;
            }
            out.entry(k.clone()).or_insert_with(|| text(v));
        }
    } else {
        out.insert("target".into(), r.target.kind.clone());
        for key in ["protocol", "node_args"] {
            if let Some(v) = r.target_info.get(key) {
                out.insert(key.into(), text(v));
            }
        }
    }
    out
}

/// The names of the settings whose values differ among `runs`.
pub fn varying<'a>(runs: impl IntoIterator<Item = &'a BenchResult>) -> BTreeSet<String> {
    let all: Vec<BTreeMap<String, String>> = runs.into_iter().map(settings).collect();
    let names: BTreeSet<&String> = all.iter().flat_map(|m| m.keys()).collect();
    names
        .into_iter()
        .filter(|n| all.iter().any(|m| m.get(*n) != all[0].get(*n)))
        .cloned()
        .collect()
}

/// What tells a run apart from the others it is shown with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ident {
    /// The workload's name.
    pub workload: String,
    /// The settings named (those that vary), `name=value` joined by spaces; "" if none.
    pub setting: String,
}

impl Ident {
    /// The run's workload and its values of the settings `names`.
    pub fn of(r: &BenchResult, names: &BTreeSet<String>) -> Ident {
        let s = settings(r);
        let setting = names
            .iter()
            .map(|n| format!("{n}={}", s.get(n).map_or("-", String::as_str)))
            .collect::<Vec<_>>()
            .join(" ");
        Ident {
            workload: r.workload.name.clone(),
            setting,
        }
    }

    /// Workload and settings in one line.
    pub fn label(&self) -> String {
        if self.setting.is_empty() {
            self.workload.clone()
        } else {
            format!("{} {}", self.workload, self.setting)
        }
    }
}

/// Idents of runs shown together: each names the settings that vary among them.
pub fn idents(runs: &[&BenchResult]) -> Vec<Ident> {
    let names = varying(runs.iter().copied());
    runs.iter().map(|r| Ident::of(r, &names)).collect()
}

/// The figures of one operation (or [`ALL_OPS`]) of a result.
pub fn op<'a>(r: &'a BenchResult, name: &str) -> Option<&'a Percentiles> {
    if name == ALL_OPS {
        Some(&r.total)
    } else {
        r.ops.get(name)
    }
}

/// Per-second figures of one run, by operation (and [`ALL_OPS`]), from its interval log
/// (the `.hlog` beside the JSON, else the path the result names); None when there is no
/// readable log.
pub fn intervals(l: &Loaded) -> Option<BTreeMap<String, Vec<Percentiles>>> {
    let beside = l.path.with_extension("hlog");
    let path = if beside.is_file() {
        beside
    } else {
        PathBuf::from(l.result.hlog_path.as_deref()?)
    };
    let bytes = std::fs::read(path).ok()?;
    parse_interval_log(&bytes)
}

/// Reads an interval log as written by [`super::report::write_interval_log`].
pub fn parse_interval_log(bytes: &[u8]) -> Option<BTreeMap<String, Vec<Percentiles>>> {
    let mut de = Deserializer::new();
    let mut out: BTreeMap<String, Vec<Percentiles>> = BTreeMap::new();
    // The operations of one interval share its start; their sum is the ALL_OPS row.
    let mut all = new_histogram();
    let mut current: Option<(std::time::Duration, f64)> = None;
    for entry in IntervalLogIterator::new(bytes) {
        let LogEntry::Interval(h) = entry.ok()? else {
            continue;
        };
        let len_s = h.duration().as_secs_f64();
        if current.is_some_and(|(start, _)| start != h.start_timestamp()) {
            flush(&mut all, current.map_or(1.0, |c| c.1), &mut out);
        }
        current = Some((h.start_timestamp(), len_s));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.encoded_histogram())
            .ok()?;
        let hist: hdrhistogram::Histogram<u64> = de.deserialize(&mut raw.as_slice()).ok()?;
        all.add(&hist).ok()?;
        let tag = h.tag().map_or(ALL_OPS, |t| t.as_str());
        if tag != ALL_OPS {
            push(&mut out, tag, Percentiles::of(&hist, len_s, 0));
        }
    }
    flush(&mut all, current.map_or(1.0, |c| c.1), &mut out);
    (!out.is_empty()).then_some(out)
}

/// Ends an interval: its sum over operations becomes the [`ALL_OPS`] row.
fn flush(
    all: &mut hdrhistogram::Histogram<u64>,
    len_s: f64,
    out: &mut BTreeMap<String, Vec<Percentiles>>,
) {
    if !all.is_empty() {
        push(out, ALL_OPS, Percentiles::of(all, len_s, 0));
    }
    all.reset();
}

fn push(out: &mut BTreeMap<String, Vec<Percentiles>>, name: &str, p: Percentiles) {
    out.entry(name.to_string()).or_default().push(p);
}
