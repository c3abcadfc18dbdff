//! Which shard owns a key, and the record of that rule in a data directory.
//!
//! A key is placed by the xxh3 of its hash tag, as Redis Cluster places keys in slots: if
//! the key holds a `{` and, after it, a `}` with at least one byte between them, only the
//! bytes between the first `{` and the next `}` are hashed; otherwise the whole key. Keys
//! that share a tag (`{user:7}:cart`, `{user:7}:orders`) share a shard, so one transaction
//! may name them all.
//!
//! Where a key lives depends on this rule and on the shard count, so a data directory
//! records both (the file [`SHARDING_FILE`]) and a node refuses a directory written under
//! another: its keys would silently be looked for in the wrong shard. Builds before hash
//! tags wrote no such file and hashed whole keys; their directories are taken as they are
//! only with one shard (where every key lives in shard 0 whatever the rule).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file in a data directory that names how keys were placed in its shards.
pub const SHARDING_FILE: &str = "sharding.toml";

/// The placement rule this build uses (the only one it reads).
pub const SCHEME: &str = "xxh3-hash-tag";

/// The part of `key` that decides its shard: its hash tag, or the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = memchr::memchr(b'{', key)
        && let Some(len) = memchr::memchr(b'}', &key[open + 1..])
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// The shard that owns `key`.
pub fn shard_of(key: &[u8], shards: usize) -> usize {
    if shards == 1 {
        return 0; // Not worth a hash of every key (1 % of a lease GET's CPU).
    }
    (xxhash_rust::xxh3::xxh3_64(hash_tag(key)) % shards as u64) as usize
}

/// What [`SHARDING_FILE`] holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    /// The placement rule.
    scheme: String,
    /// Shards per node.
    shards: usize,
}

/// Checks that the data directory `dir` placed keys as this build does with `shards`
/// shards, and records it in a directory that has no record yet. Errors name the cause
/// and what to do.
pub fn check_data_dir(dir: &Path, shards: usize) -> anyhow::Result<()> {
    let path = dir.join(SHARDING_FILE);
    let ours = Record {
        scheme: SCHEME.into(),
        shards,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let found: Record = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            if found.scheme != ours.scheme {
                anyhow::bail!(
                    "{} says its keys were placed in shards by `{}`, which this build does not \
                     know (it places them by `{SCHEME}`): start it with an empty data directory",
                    path.display(),
                    found.scheme
                );
            }
            if found.shards != shards {
                anyhow::bail!(
                    "data directory {} holds {} shards but this node runs {shards}: keys would \
                     be looked for in the wrong shard; start with --shards {} (or an empty data \
                     directory)",
                    dir.display(),
                    found.shards,
                    found.shards
                );
            }
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
    }
    let shard_dirs = shard_dirs(dir)?;
    if shard_dirs.iter().any(|&i| i >= shards) || (shards > 1 && !shard_dirs.is_empty()) {
        anyhow::bail!(
            "data directory {} was written by a corepax build that placed keys in shards by \
             hashing the whole key ({} shard folders, no {SHARDING_FILE}); this build hashes \
             only a key's hash tag (the part between the first `{{` and the next `}}`), so \
             keys holding braces would be looked for in another shard than the one that \
             stored them. Start with an empty data directory and copy the keys over with a \
             client (SCAN, GET, SET), or keep running the older build",
            dir.display(),
            shard_dirs.len()
        );
    }
    write_record(&path, &ours)
}

/// The shard indices of the `shard-<i>` folders in `dir`.
fn shard_dirs(dir: &Path) -> anyhow::Result<Vec<usize>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("listing {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| anyhow::anyhow!("listing {}: {e}", dir.display()))?;
        let name = entry.file_name();
        if let Some(i) = name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .and_then(|i| i.parse::<usize>().ok())
        {
            found.push(i);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Writes the record durably: a temporary file, synced, renamed, the directory synced.
fn write_record(path: &Path, record: &Record) -> anyhow::Result<()> {
    use std::io::Write;
    let text = format!(
        "# How keys are placed in this data directory's shards (written by corepax; a node \
         refuses the directory if its own rule differs).\n{}",
        toml::to_string(record).map_err(|e| anyhow::anyhow!("encoding {SHARDING_FILE}: {e}"))?
    );
    let tmp = path.with_extension("toml.tmp");
    let fail = |what: &str, e: std::io::Error| anyhow::anyhow!("{what} {}: {e}", tmp.display());
    let mut f = std::fs::File::create(&tmp).map_err(|e| fail("creating", e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| fail("writing", e))?;
    f.sync_all().map_err(|e| fail("syncing", e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail("renaming", e))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| anyhow::anyhow!("syncing {}: {e}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags_follow_redis_cluster() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(
            hash_tag(b"foo{}{bar}"),
            b"foo{}{bar}",
            "an empty tag hashes the key"
        );
        assert_eq!(
            hash_tag(b"foo{{bar}}zap"),
            b"{bar",
            "from the first {{ to the next }}"
        );
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar", "only the first tag");
        assert_eq!(hash_tag(b"no-tag"), b"no-tag");
        assert_eq!(hash_tag(b"open{only"), b"open{only");
        assert_eq!(
            hash_tag(b"}close{"),
            b"}close{",
            "a }} before the {{ does not count"
        );
        assert_eq!(hash_tag(b""), b"");
        for shards in 1..8 {
            assert_eq!(
                shard_of(b"{u7}:cart", shards),
                shard_of(b"{u7}:orders", shards)
            );
            assert_eq!(shard_of(b"{u7}:cart", shards), shard_of(b"u7", shards));
        }
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("corepax-sharding-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_data_dir_records_its_rule_and_refuses_another() {
        let dir = temp_dir("record");
        check_data_dir(&dir, 2).unwrap();
        let text = std::fs::read_to_string(dir.join(SHARDING_FILE)).unwrap();
        assert!(text.contains(SCHEME), "{text}");
        std::fs::create_dir(dir.join("shard-0")).unwrap();
        check_data_dir(&dir, 2).unwrap();
        let e = check_data_dir(&dir, 3).unwrap_err().to_string();
        assert!(e.contains("holds 2 shards but this node runs 3"), "{e}");
        std::fs::write(
            dir.join(SHARDING_FILE),
            "scheme = \"xxh3-key\"\nshards = 2\n",
        )
        .unwrap();
        let e = check_data_dir(&dir, 2).unwrap_err().to_string();
        assert!(
            e.contains("`xxh3-key`, which this build does not know"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_data_dir_of_a_build_without_hash_tags_is_refused_with_several_shards() {
        let dir = temp_dir("old");
        std::fs::create_dir(dir.join("shard-0")).unwrap();
        std::fs::create_dir(dir.join("shard-1")).unwrap();
        let e = check_data_dir(&dir, 2).unwrap_err().to_string();
        assert!(e.contains("hashing the whole key"), "{e}");
        assert!(!dir.join(SHARDING_FILE).exists(), "nothing recorded");
        let e = check_data_dir(&dir, 1).unwrap_err().to_string();
        assert!(
            e.contains("hashing the whole key"),
            "a shard beyond the count: {e}"
        );
        std::fs::remove_dir_all(dir.join("shard-1")).unwrap();
        // One shard: every key lives in shard 0 whatever the rule.
        check_data_dir(&dir, 1).unwrap();
        assert!(dir.join(SHARDING_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
