//! Configuration: cluster-wide protocol settings, which must match on every replica, and
//! each node's own settings ([`node`]).
//!
//! Every limit is a named `*_max`; units are last in names. Files are TOML with
//! `deny_unknown_fields`, and [`ProtocolConfig::validate`] names the field and what is allowed.

use serde::{Deserialize, Serialize};

pub mod node;

pub use node::{
    NODE_SETTINGS, NodeConfig, NodeFile, NodeSetting, PEER_PORTS_PER_REPLICA, SHARDS_MAX,
};

/// Replicas in a group, at most: ballots carry the node id in a byte and votes are a bitmask.
pub const REPLICAS_MAX: usize = 7;

/// How reads are served. Selectable per run so modes can be compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    /// A read is a command through the log, like a write. Always linearizable.
    #[default]
    Log,
    /// The leader answers reads locally while a majority grants it a lease; acceptors
    /// promise no other leader until the lease they granted ran out.
    LeaderLease,
    /// Paxos Quorum Leases: every holder answers reads locally under a lease granted by a
    /// majority; a write commits only once every holder has it (or its lease ran out).
    QuorumLease,
    /// A quorum read: the local value, and digests (xxh3 of value and version) from the
    /// rest of a majority; the freshest copy is fetched on a mismatch and stale replicas
    /// are repaired.
    Digest,
    /// Like `digest`, but every replica of the quorum sends its full value: the baseline
    /// digest reads are measured against.
    Quorum,
    /// Raft only: the leader notes its commit index, confirms it still leads with a
    /// heartbeat round a quorum answers, and serves the read once it applied that index.
    ReadIndex,
}

impl ReadMode {
    /// Every mode, in the order reports list them.
    pub const ALL: [ReadMode; 6] = [
        ReadMode::Log,
        ReadMode::LeaderLease,
        ReadMode::QuorumLease,
        ReadMode::Digest,
        ReadMode::Quorum,
        ReadMode::ReadIndex,
    ];

    /// Whether a read-only command goes through the log like a write.
    pub fn reads_through_log(self) -> bool {
        match self {
            ReadMode::Log => true,
            ReadMode::LeaderLease
            | ReadMode::QuorumLease
            | ReadMode::Digest
            | ReadMode::Quorum
            | ReadMode::ReadIndex => false,
        }
    }

    /// Whether replicas other than the leader answer reads (under their quorum lease, or
    /// by running a quorum read). Such a replica must know the writes in its log it has
    /// not applied yet.
    pub fn reads_away_from_leader(self) -> bool {
        match self {
            ReadMode::Log | ReadMode::LeaderLease | ReadMode::ReadIndex => false,
            ReadMode::QuorumLease | ReadMode::Digest | ReadMode::Quorum => true,
        }
    }

    /// Who holds read leases, in the modes that use them.
    pub fn leases(self) -> Option<LeaseHolders> {
        match self {
            ReadMode::Log | ReadMode::Digest | ReadMode::Quorum | ReadMode::ReadIndex => None,
            ReadMode::LeaderLease => Some(LeaseHolders::Leader),
            ReadMode::QuorumLease => Some(LeaseHolders::Configured),
        }
    }

    /// Whether a quorum read collects full values from every replica rather than digests;
    /// false in the modes that run no quorum reads.
    pub fn quorum_read_sends_values(self) -> bool {
        match self {
            ReadMode::Quorum => true,
            ReadMode::Log
            | ReadMode::LeaderLease
            | ReadMode::QuorumLease
            | ReadMode::Digest
            | ReadMode::ReadIndex => false,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ReadMode::Log => "log",
            ReadMode::LeaderLease => "leader-lease",
            ReadMode::QuorumLease => "quorum-lease",
            ReadMode::Digest => "digest",
            ReadMode::Quorum => "quorum",
            ReadMode::ReadIndex => "read-index",
        }
    }
}

impl std::str::FromStr for ReadMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReadMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| ConfigError::Invalid {
                field: "read_mode",
                allowed: "log, leader-lease, quorum-lease, digest, quorum, read-index".into(),
                got: s.into(),
            })
    }
}

impl std::fmt::Display for ReadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The replication protocol a group runs. Selectable per run so protocols can be compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Multi-Paxos with a stable leader (`protocol::paxos`).
    #[default]
    Multipaxos,
    /// Raft (`protocol::raft`): pre-vote, term-start no-op, commit by counting only
    /// entries of the leader's term.
    Raft,
}

impl Protocol {
    /// Every protocol, in the order reports list them.
    pub const ALL: [Protocol; 2] = [Protocol::Multipaxos, Protocol::Raft];

    fn name(self) -> &'static str {
        match self {
            Protocol::Multipaxos => "multipaxos",
            Protocol::Raft => "raft",
        }
    }

    /// Whether a group running this protocol can serve reads in `mode`.
    pub fn supports_read_mode(self, mode: ReadMode) -> bool {
        match self {
            Protocol::Multipaxos => mode != ReadMode::ReadIndex,
            Protocol::Raft => matches!(
                mode,
                ReadMode::Log | ReadMode::ReadIndex | ReadMode::LeaderLease
            ),
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ConfigError::Invalid {
                field: "protocol",
                allowed: "multipaxos, raft".into(),
                got: s.into(),
            })
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who holds read leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseHolders {
    /// The leader alone (`leader-lease`).
    Leader,
    /// The replicas in `lease_holders`, all of them by default (`quorum-lease`).
    Configured,
}

/// When a digest or quorum read repairs the stale replicas it found, relative to its reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadRepair {
    /// The reply waits until the repaired replicas confirmed (or a timeout passed).
    #[default]
    Blocking,
    /// The reply goes out at once; repairs follow.
    Async,
}

impl std::str::FromStr for ReadRepair {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "blocking" => Ok(ReadRepair::Blocking),
            "async" => Ok(ReadRepair::Async),
            _ => Err(ConfigError::Invalid {
                field: "read_repair",
                allowed: "blocking, async".into(),
                got: s.into(),
            }),
        }
    }
}

impl std::fmt::Display for ReadRepair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReadRepair::Blocking => "blocking",
            ReadRepair::Async => "async",
        })
    }
}

/// A configuration value out of range, or unknown.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `field` has value `got`; `allowed` says what it may be.
    #[error("invalid `{field}` = {got}: allowed {allowed}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is allowed.
        allowed: String,
        /// What was given.
        got: String,
    },
    /// `field` has no value and no default: a node file or flag must give it.
    #[error("`{field}` is required")]
    Missing {
        /// The missing field.
        field: &'static str,
    },
}

/// The clock drift allowance is at most 10%: lease arithmetic assumes a small rate error.
pub const MAX_CLOCK_DRIFT_PPM_MAX: u64 = 100_000;
/// The largest allowed `snapshot_chunk_bytes_max`: a quarter of the 64 MiB peer frame,
/// leaving room for one item over the soft limit and for encoding overhead.
pub const SNAPSHOT_CHUNK_BYTES_LIMIT: usize = crate::limits::PEER_FRAME_BYTES_MAX / 4;

/// A value a protocol setting holds, in the text form of flags, sweep matrices and INFO.
pub trait SettingValue: Sized {
    /// Reads the text form; the error names `field`.
    fn parse_setting(field: &'static str, s: &str) -> Result<Self, ConfigError>;
    /// Writes the text form `parse_setting` reads.
    fn render_setting(&self) -> String;
}

macro_rules! whole_number_setting {
    ($($t:ty),+) => {$(
        impl SettingValue for $t {
            fn parse_setting(field: &'static str, s: &str) -> Result<Self, ConfigError> {
                s.trim().parse().map_err(|_| invalid(field, "a whole number", s))
            }
            fn render_setting(&self) -> String {
                self.to_string()
            }
        }
    )+};
}
whole_number_setting!(usize, u64, u8);

macro_rules! named_setting {
    ($($t:ty),+) => {$(
        impl SettingValue for $t {
            fn parse_setting(_field: &'static str, s: &str) -> Result<Self, ConfigError> {
                s.trim().parse()
            }
            fn render_setting(&self) -> String {
                self.to_string()
            }
        }
    )+};
}
named_setting!(ReadMode, ReadRepair, Protocol);

/// Replica ids, comma-separated; empty for none.
impl SettingValue for Vec<u8> {
    fn parse_setting(field: &'static str, s: &str) -> Result<Self, ConfigError> {
        s.split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(|id| {
                id.parse()
                    .map_err(|_| invalid(field, "comma-separated replica ids", s))
            })
            .collect()
    }
    fn render_setting(&self) -> String {
        self.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
    }
}

/// One protocol setting as flags, sweep matrices and INFO see it; [`SETTINGS`] lists them.
#[derive(Debug)]
pub struct Setting {
    /// Its key in TOML, sweep matrices and INFO; the flag is the same with `-` for `_`.
    pub name: &'static str,
    /// What it means: the field's documentation.
    pub doc: &'static str,
    /// Its own allowed range (none if only other settings bound it).
    pub allowed: fn() -> Option<String>,
    /// Its value in `cfg`, as text.
    pub get: fn(&ProtocolConfig) -> String,
    /// Sets it in `cfg` from text (not yet validated against the other settings).
    pub set: fn(&mut ProtocolConfig, &str) -> Result<(), ConfigError>,
}

impl Setting {
    /// The setting called `name` (its TOML key).
    pub fn named(name: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|s| s.name == name)
    }

    /// Its command-line flag, without the leading `--`.
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }

    /// Whether `node`, `cluster` and sweep matrices set it: `replicas` follows from
    /// `--peers` in a node and is a launcher's own `--replicas` elsewhere.
    pub fn is_flag(&self) -> bool {
        self.name != "replicas"
    }

    /// Its documentation on one line.
    pub fn doc_line(&self) -> String {
        self.doc.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The first sentence of its documentation, for short help.
    pub fn summary(&self) -> String {
        let text = self.doc_line();
        match text.find(". ") {
            Some(end) => text[..=end].to_string(),
            None => text,
        }
    }
}

fn invalid(field: &'static str, allowed: &str, got: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        field,
        allowed: allowed.into(),
        got: got.to_string(),
    }
}

fn check(
    ok: bool,
    field: &'static str,
    allowed: &str,
    got: impl ToString,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(invalid(field, allowed, got))
    }
}

/// Checks `v` against `range`; the error shows the range as written (`1..=4096`).
fn in_range<T, R>(field: &'static str, v: &T, range: R) -> Result<(), ConfigError>
where
    T: PartialOrd + std::fmt::Display,
    R: std::ops::RangeBounds<T> + std::fmt::Debug,
{
    check(range.contains(v), field, &format!("{range:?}"), v)
}

/// Declares every protocol setting once: its documentation, type, default and (where it
/// has one of its own) allowed range. From this come the `ProtocolConfig` fields (and
/// with them the TOML keys), its `Default`, the range checks of `validate`, and
/// [`SETTINGS`], from which the flags, sweep axes and INFO are made.
macro_rules! protocol_settings {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty = $default:expr $(, allowed $range:expr)?;
    )+) => {
        /// Cluster-wide replication settings. Must be equal on every replica of a cluster.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct ProtocolConfig {
            $($(#[doc = $doc])+ pub $field: $ty,)+
        }

        impl Default for ProtocolConfig {
            fn default() -> Self {
                ProtocolConfig { $($field: $default,)+ }
            }
        }

        /// Every protocol setting, in declaration order.
        pub static SETTINGS: &[Setting] = &[$(
            Setting {
                name: stringify!($field),
                doc: concat!($($doc, "\n"),+),
                allowed: || None::<String> $(.or_else(|| Some(format!("{:?}", $range))))?,
                get: |c| c.$field.render_setting(),
                set: |c, s| {
                    c.$field = SettingValue::parse_setting(stringify!($field), s)?;
                    Ok(())
                },
            },
        )+];

        impl ProtocolConfig {
            /// Checks each setting that has a range of its own against it.
            fn check_ranges(&self) -> Result<(), ConfigError> {
                $($(in_range(stringify!($field), &self.$field, $range)?;)?)+
                Ok(())
            }
        }
    };
}

protocol_settings! {
    /// The replication protocol: multipaxos, raft. Raft serves reads in `log`,
    /// `read-index` and `leader-lease` mode.
    protocol: Protocol = Protocol::Multipaxos;
    /// Replicas per group (3 or 5 usual).
    replicas: usize = 3, allowed 1..=REPLICAS_MAX;
    /// Commands per slot, at most.
    batch_max: usize = 256, allowed 1..=65_536;
    /// Encoded command bytes per slot, at most (a single larger command still gets a slot;
    /// commands are at most `limits::COMMAND_BYTES_MAX`). At most
    /// `limits::BATCH_BYTES_LIMIT`, so every batch fits one WAL record.
    batch_bytes_max: usize = 1 << 20, allowed 1..=crate::limits::BATCH_BYTES_LIMIT;
    /// How long the leader may hold a partial batch waiting for more commands (µs);
    /// 0 = never.
    batch_delay_us: u64 = 0, allowed ..=100_000;
    /// Slots the leader keeps in flight (proposed, not yet chosen).
    pipeline_depth: usize = 32, allowed 1..=4096;
    /// A follower that hears nothing from a leader for this long (ms; plus a random part
    /// of up to the same again) starts an election. At least twice the heartbeat interval.
    election_timeout_ms: u64 = 500;
    /// The leader sends a commit/heartbeat at least this often (ms).
    heartbeat_interval_ms: u64 = 50, allowed 1..;
    /// Multi-Paxos with three replicas: a follower learns a slot chosen from its own
    /// durable accept and the leader's vote, and answers the commands it forwarded itself
    /// (not in quorum-lease mode; see docs/ARCHITECTURE.md, "Early learning"). Raft
    /// followers learn only from the leader's commit index: turn this off to compare the
    /// two on the same message pattern.
    early_learning: bool = true;
    /// Multi-Paxos, when the followers alone make a quorum (three replicas): a leader with
    /// no other slot in flight writes its own accept without a sync of its own, so the
    /// followers' records are not queued behind it on a shared disk, and the slot is
    /// chosen by the followers' durable votes. The leader's vote counts only once its
    /// record is durable (the next sync, or a tick later); it syncs at once when the second
    /// follower's vote has not come `lazy_sync_wait_us` after the first. Slots that carry
    /// forwarded commands (early learning needs the leader's durable vote) are synced as
    /// always, and so is every slot in quorum-lease mode (see docs/ARCHITECTURE.md, "Lazy
    /// leader sync"). Only for batches of at least `lazy_sync_batch_min` commands.
    lazy_leader_sync: bool = true;
    /// With `lazy_leader_sync`: the fewest client commands a batch carries for its slot to
    /// be written lazily; smaller batches are synced. A lazy slot waits for both followers'
    /// disks, not the faster two of three: a lone write's p99 was up to 4× longer for it.
    /// A batch this large means many clients wait, and then the write a lazy slot saves
    /// counts more (50 one-request clients: 3–14 % more SETs/s, docs/ARCHITECTURE.md).
    lazy_sync_batch_min: usize = 8, allowed 1..;
    /// With `lazy_leader_sync`: how long (µs) after a lazy slot's first follower vote the
    /// leader waits for the second before it syncs its own record.
    lazy_sync_wait_us: u64 = 200, allowed 1..=1_000_000;
    /// Chosen slots per catch-up message, at most.
    catchup_chunk_max: usize = 64, allowed 1..=4096;
    /// Client commands queued at the leader waiting for a slot, at most; beyond it
    /// requests are refused with a busy error. At least `batch_max`.
    proposal_queue_max: usize = 65_536;
    /// Replies remembered per client for exactly-once retries, at most.
    client_window_max: usize = 4096, allowed 1..;
    /// Client sessions remembered per group, at most (the oldest is forgotten).
    clients_max: usize = 4096, allowed 1..;
    /// How reads are served: log, leader-lease, quorum-lease, digest, quorum (Multi-Paxos),
    /// read-index (Raft; Raft also serves log and leader-lease).
    read_mode: ReadMode = ReadMode::Log;
    /// How long a lease lasts (ms), on the clock of the replica that grants it. At least
    /// twice the heartbeat interval, since leases are renewed every heartbeat.
    lease_ms: u64 = 400, allowed ..=60_000;
    /// The most any replica's clock rate may differ from real time, in parts per million.
    /// Every lease decision allows for it: holders stop early, waiters wait longer.
    max_clock_drift_ppm: u64 = 1_000, allowed ..=MAX_CLOCK_DRIFT_PPM_MAX;
    /// Lease modes: each replica measures every peer's clock rate against its own over at
    /// least this long (ms); a peer beyond twice `max_clock_drift_ppm` stops lease reads
    /// until it is back within (see docs/ARCHITECTURE.md, "Clock-rate check").
    clock_check_window_ms: u64 = 1_000, allowed 10..=600_000;
    /// Replicas that hold quorum leases (`quorum-lease` mode), comma-separated ids;
    /// empty = every replica.
    lease_holders: Vec<u8> = Vec::new();
    /// When digest and quorum reads repair stale replicas: blocking, async.
    read_repair: ReadRepair = ReadRepair::Blocking;
    /// Bytes of state per snapshot chunk sent to a lagging replica, roughly (keys, values
    /// and a small per-item overhead); a single larger item still gets a chunk. Well
    /// below the peer frame limit, so a snapshot of any size crosses in bounded frames.
    snapshot_chunk_bytes_max: usize = 1 << 20, allowed 1..=SNAPSHOT_CHUNK_BYTES_LIMIT;
    /// Memory of applied log entries kept, at most, for followers that lag a little (one
    /// that lags more gets a snapshot): their keys and values plus a fixed cost per
    /// command (`message::batch_memory_bytes`); 0 = keep them until a snapshot compacts
    /// the log. Once applied, an entry's keys and values are also in the state machine,
    /// so this bounds what the log costs in memory beyond the state. The write-ahead log
    /// on disk keeps every record until the next snapshot either way.
    log_retain_bytes: u64 = 16 << 20;
}

impl ProtocolConfig {
    /// Checks every field; the error names the first bad one and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_ranges()?;
        check(
            self.election_timeout_ms >= 2 * self.heartbeat_interval_ms,
            "election_timeout_ms",
            ">= 2 * heartbeat_interval_ms",
            self.election_timeout_ms,
        )?;
        check(
            self.proposal_queue_max >= self.batch_max,
            "proposal_queue_max",
            ">= batch_max",
            self.proposal_queue_max,
        )?;
        check(
            self.lease_ms >= 2 * self.heartbeat_interval_ms,
            "lease_ms",
            ">= 2 * heartbeat_interval_ms (leases are renewed every heartbeat)",
            self.lease_ms,
        )?;
        check(
            self.lease_holders
                .iter()
                .all(|h| usize::from(*h) < self.replicas),
            "lease_holders",
            "replica ids below `replicas`",
            format!("{:?}", self.lease_holders),
        )?;
        if !self.protocol.supports_read_mode(self.read_mode) {
            let served: Vec<String> = ReadMode::ALL
                .into_iter()
                .filter(|m| self.protocol.supports_read_mode(*m))
                .map(|m| m.to_string())
                .collect();
            let allowed = format!(
                "with protocol = {}: {} (or change protocol)",
                self.protocol,
                served.join(", ")
            );
            return Err(invalid("read_mode", &allowed, self.read_mode));
        }
        Ok(())
    }

    /// The replicas holding quorum leases, as a bit mask.
    pub fn lease_holder_mask(&self) -> u8 {
        if self.lease_holders.is_empty() {
            ((1u16 << self.replicas) - 1) as u8
        } else {
            self.lease_holders.iter().fold(0, |m, h| m | 1 << h)
        }
    }

    /// Votes needed to choose a value or win an election.
    pub fn quorum(&self) -> usize {
        self.replicas / 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ProtocolConfig::default().validate(), Ok(()));
    }

    #[test]
    fn invalid_field_is_named() {
        let cfg = ProtocolConfig {
            pipeline_depth: 0,
            ..ProtocolConfig::default()
        };
        let err = cfg.validate().unwrap_err();
        assert!(err.to_string().contains("pipeline_depth"), "{err}");
        assert!(err.to_string().contains("1..=4096"), "{err}");
    }

    #[test]
    fn unknown_toml_key_is_rejected() {
        let err = toml::from_str::<ProtocolConfig>("batch_maxx = 3").unwrap_err();
        assert!(err.to_string().contains("batch_maxx"), "{err}");
    }

    #[test]
    fn every_setting_is_a_toml_key_and_reads_back_what_it_writes() {
        let toml::Value::Table(keys) = toml::Value::try_from(ProtocolConfig::default()).unwrap()
        else {
            panic!("a config is a table");
        };
        let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        let mut toml_keys: Vec<&str> = keys.keys().map(String::as_str).collect();
        toml_keys.sort_unstable();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, toml_keys);
        let cfg = ProtocolConfig {
            lease_holders: vec![0, 2],
            read_mode: ReadMode::QuorumLease,
            read_repair: ReadRepair::Async,
            batch_max: 7,
            ..ProtocolConfig::default()
        };
        let mut copy = ProtocolConfig::default();
        for s in SETTINGS {
            (s.set)(&mut copy, &(s.get)(&cfg)).unwrap();
        }
        assert_eq!(copy, cfg);
    }

    #[test]
    fn protocol_is_a_setting_and_raft_refuses_read_modes_it_lacks() {
        let s = Setting::named("protocol").unwrap();
        let mut cfg = ProtocolConfig::default();
        assert_eq!((s.get)(&cfg), "multipaxos");
        (s.set)(&mut cfg, "raft").unwrap();
        assert_eq!(cfg.protocol, Protocol::Raft);
        assert!(cfg.validate().is_ok());
        let err = (s.set)(&mut cfg, "zab").unwrap_err().to_string();
        assert!(err.contains("protocol") && err.contains("zab"), "{err}");
        cfg.read_mode = ReadMode::LeaderLease;
        assert!(cfg.validate().is_ok());
        cfg.read_mode = ReadMode::Digest;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("read_mode") && err.contains("protocol = raft"),
            "{err}"
        );
        assert!(err.contains("log, leader-lease, read-index"), "{err}");
    }

    #[test]
    fn a_setting_refuses_text_of_the_wrong_kind_by_name() {
        let mut cfg = ProtocolConfig::default();
        for (name, bad) in [
            ("batch_max", "many"),
            ("read_mode", "fast"),
            ("lease_holders", "0,x"),
        ] {
            let s = Setting::named(name).unwrap();
            let err = (s.set)(&mut cfg, bad).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        assert_eq!(cfg, ProtocolConfig::default());
    }

    #[test]
    fn a_range_is_checked_at_both_ends() {
        for (batch_max, ok) in [(0, false), (1, true), (65_536, true), (65_537, false)] {
            let cfg = ProtocolConfig {
                batch_max,
                ..ProtocolConfig::default()
            };
            assert_eq!(cfg.validate().is_ok(), ok, "batch_max {batch_max}");
        }
    }

    #[test]
    fn read_mode_questions() {
        let away: Vec<ReadMode> = ReadMode::ALL
            .into_iter()
            .filter(|m| m.reads_away_from_leader())
            .collect();
        assert_eq!(
            away,
            [ReadMode::QuorumLease, ReadMode::Digest, ReadMode::Quorum]
        );
        for m in ReadMode::ALL {
            assert_eq!(m.reads_through_log(), m == ReadMode::Log, "{m}");
            // Every mode but `log` serves reads on a path of its own: a lease, a quorum read
            // or a leadership check.
            assert_eq!(
                !m.reads_through_log(),
                m.leases().is_some() || m.reads_away_from_leader() || m == ReadMode::ReadIndex,
                "{m}"
            );
        }
    }
}
