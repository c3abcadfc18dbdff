//! Settings of one node (replica process), each declared once in `node_settings!`.
//!
//! From that list come the `NodeConfig` fields, the TOML keys of a node file (read through
//! [`NodeFile`], the same fields each optional, so a missing one takes its default or is
//! reported by name), the defaults, the range checks of [`NodeConfig::validate`] (checks
//! relating settings are written there), and [`NODE_SETTINGS`], a table of name, flag,
//! documentation, default and setter from which the flags of `corepax node` (every setting)
//! and `corepax cluster` (those not chosen per replica) are made.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, ProtocolConfig, SettingValue, check, in_range, invalid};

/// Shards per node, at most (peer ports of a node are `peer_addr.port() + shard`).
pub const SHARDS_MAX: usize = 64;
/// Peer ports each replica of a local cluster (`corepax cluster`, the load generator's
/// embedded one) reserves: one per shard, as many as a node may have. Shard s of replica
/// i listens on `peer_port + PEER_PORTS_PER_REPLICA·i + s`.
pub const PEER_PORTS_PER_REPLICA: usize = SHARDS_MAX;

/// The shortest anti-entropy interval accepted (other than 0, off): a round compares roots
/// with every peer, so much more often than this is busy work.
pub const ANTI_ENTROPY_INTERVAL_MS_MIN: u64 = 50;
/// The longest anti-entropy interval accepted: a day.
pub const ANTI_ENTROPY_INTERVAL_MS_MAX: u64 = 86_400_000;

/// A production node compares its replicas every 30 s: a matching root costs one round trip
/// per peer, and divergence (lost log records, bit rot) is repaired within a minute.
/// Benchmark launchers (`corepax cluster`, the load generator) pass 0 unless asked.
pub const ANTI_ENTROPY_INTERVAL_MS_DEFAULT: u64 = 30_000;
/// The most changes a shard may keep for key watches.
pub const WATCH_HISTORY_MAX: usize = 10_000_000;

/// The smallest `client_input_bytes_max` accepted, per shard: room for one command of
/// the largest size.
pub const CLIENT_INPUT_BYTES_PER_SHARD_MIN: usize = crate::limits::COMMAND_BYTES_MAX;
const _: () = assert!(SHARDS_MAX * CLIENT_INPUT_BYTES_PER_SHARD_MIN <= 1 << 30);

/// How a node setting is given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    /// `--flag VALUE`, the value in the setting's text form.
    Value,
    /// `--flag` alone, which gives the setting this text (`--no-pin` sets `pin` false).
    Switch(&'static str),
}

/// One node setting as flags and files see it; [`NODE_SETTINGS`] lists them.
#[derive(Debug)]
pub struct NodeSetting {
    /// Its key in a node's TOML file.
    pub name: &'static str,
    /// Its command-line flag (without `--`) when not the key with `-` for `_`.
    pub flag_name: Option<&'static str>,
    /// Whether the flag takes a value or is a switch.
    pub kind: FlagKind,
    /// What it means: the field's documentation.
    pub doc: &'static str,
    /// Its default as text; `None` when a file or flag must give it.
    pub default: fn() -> Option<String>,
    /// Its own allowed range (none if only other settings bound it).
    pub allowed: fn() -> Option<String>,
    /// Whether a launcher chooses it for each replica (addresses, ids, folders, cores), so
    /// `corepax cluster` has no flag for it.
    pub per_node: bool,
    /// Its value in `cfg`, as text.
    pub get: fn(&NodeConfig) -> String,
    /// Sets it in `file` from text (not yet validated against the other settings).
    pub set: fn(&mut NodeFile, &str) -> Result<(), ConfigError>,
}

impl NodeSetting {
    /// The setting called `name` (its TOML key).
    pub fn named(name: &str) -> Option<&'static NodeSetting> {
        NODE_SETTINGS.iter().find(|s| s.name == name)
    }

    /// Its command-line flag, without the leading `--`.
    pub fn flag(&self) -> String {
        self.flag_name
            .map_or_else(|| self.name.replace('_', "-"), String::from)
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

/// Whether a setting is marked `per node`.
macro_rules! per_node {
    () => {
        false
    };
    (node) => {
        true
    };
}

/// `Some(default)`, or `None` for a setting without one.
macro_rules! default_of {
    () => {
        None
    };
    ($default:expr) => {
        Some($default)
    };
}

/// A setting's default, or (without one) the error naming it, returned.
macro_rules! default_or_missing {
    ($field:ident) => {
        return Err(ConfigError::Missing {
            field: stringify!($field),
        })
    };
    ($field:ident $default:expr) => {
        $default
    };
}

/// A value flag, or a switch that sets `sets`.
macro_rules! flag_kind {
    () => {
        FlagKind::Value
    };
    ($sets:literal) => {
        FlagKind::Switch($sets)
    };
}

/// Declares every node setting once: documentation, type, default (none: required),
/// allowed range, flag name (the key with `-` for `_` unless given), switch (a flag without
/// value that sets this text) and `per node` (a launcher picks it per replica).
macro_rules! node_settings {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty $(= $default:expr)?
            $(, allowed $range:expr)?
            $(, flag $flag:literal)?
            $(, switch $sets:literal)?
            $(, per $per:ident)?;
    )+) => {
        /// Settings of one node (replica process). `protocol` must match on every replica.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "NodeFile")]
        pub struct NodeConfig {
            $($(#[doc = $doc])+ pub $field: $ty,)+
            /// The replication protocol (`[protocol]` of a node file).
            pub protocol: ProtocolConfig,
        }

        /// A node file as read, or flags as given: every setting optional. A missing one
        /// takes its default ([`NodeFile::into_config`]) or is reported by name.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct NodeFile {
            $($(#[doc = $doc])+ #[serde(default)] pub $field: Option<$ty>,)+
            /// The `[protocol]` table.
            #[serde(default)]
            pub protocol: Option<ProtocolConfig>,
        }

        impl NodeFile {
            /// The configuration: each setting from here or its default; the error names
            /// the first setting that has neither.
            pub fn into_config(self) -> Result<NodeConfig, ConfigError> {
                Ok(NodeConfig {
                    $($field: match self.$field {
                        Some(v) => v,
                        None => default_or_missing!($field $($default)?),
                    },)+
                    protocol: self.protocol.unwrap_or_default(),
                })
            }

            /// Takes every setting `over` gives over this one's.
            pub fn overlay(&mut self, over: NodeFile) {
                $(if over.$field.is_some() {
                    self.$field = over.$field;
                })+
                if over.protocol.is_some() {
                    self.protocol = over.protocol;
                }
            }
        }

        /// Every node setting, in declaration order.
        pub static NODE_SETTINGS: &[NodeSetting] = &[$(
            NodeSetting {
                name: stringify!($field),
                flag_name: default_of!($($flag)?),
                kind: flag_kind!($($sets)?),
                doc: concat!($($doc, "\n"),+),
                default: || default_of!($($default)?).map(|v: $ty| v.render_setting()),
                allowed: || None::<String> $(.or_else(|| Some(format!("{:?}", $range))))?,
                per_node: per_node!($($per)?),
                get: |c| c.$field.render_setting(),
                set: |f, s| {
                    f.$field = Some(SettingValue::parse_setting(stringify!($field), s)?);
                    Ok(())
                },
            },
        )+];

        impl NodeConfig {
            /// Checks each setting that has a range of its own against it.
            fn check_ranges(&self) -> Result<(), ConfigError> {
                $($(in_range(stringify!($field), &self.$field, $range)?;)?)+
                Ok(())
            }
        }
    };
}

node_settings! {
    /// This replica's id: its index in `peers`.
    id: u8, per node;
    /// Where clients connect (RESP). Every shard accepts on it (SO_REUSEPORT).
    client_addr: SocketAddr, per node;
    /// Every replica's peer base address, by id, comma-separated on the command line;
    /// shard i of a replica listens on its port + i.
    peers: Vec<SocketAddr>, per node;
    /// Where the WAL lives, one folder per shard.
    data_dir: PathBuf, flag "data", per node;
    /// Shards (executors, Paxos groups) per node; equal on every replica. Required in a
    /// node file; `corepax node` without one runs one per core, `corepax cluster` cores ÷
    /// replicas (every replica runs on the one machine).
    shards: usize, allowed 1..=SHARDS_MAX;
    /// Pin each shard's executor to its own core (`--no-pin`: do not).
    pin: bool = true, flag "no-pin", switch "false";
    /// The cores pinned executors may use, comma-separated (empty: all online cores).
    /// Replicas sharing a machine need disjoint sets, or their executors all pin to the
    /// first cores.
    cpus: Vec<usize> = Vec::new(), per node;
    /// Placement by role, for replicas sharing a machine with fewer cores than their
    /// executors (with `--no-pin`): the core each shard's executor runs on while it leads
    /// its group, one per shard in shard order; empty: no placement by role.
    /// `corepax cluster --place-by-role` sets it on such a machine, so a leader has a core
    /// of its own wherever the election puts it.
    leader_cpus: Vec<usize> = Vec::new(), per node;
    /// The cores the executors of following shards share while `leader_cpus` is set.
    follower_cpus: Vec<usize> = Vec::new(), per node;
    /// While a shard follows, its executor runs at `SCHED_BATCH` (back to `SCHED_OTHER`
    /// while it leads): woken, a follower does not preempt the thread running on its core,
    /// so a leader sharing the machine is not switched out by its own followers. For
    /// replicas sharing a machine; `corepax cluster` sets it when executors run unpinned.
    follower_sched_batch: bool = false;
    /// Skip fdatasync. Benchmarks only: acknowledged writes can be lost on power failure.
    no_fsync: bool = false, switch "true";
    /// Identifies the cluster in peer handshakes.
    cluster_id: u64 = 0;
    /// A file holding the cluster's shared secret (at least 16 bytes; whitespace around it
    /// is ignored): peer connections prove they hold it (HMAC-SHA256 over fresh nonces
    /// from both sides). Without it anyone who reaches the peer ports can pose as a replica.
    cluster_key_file: Option<PathBuf> = None, per node;
    /// Clients must `AUTH` with this password (as Redis's `requirepass`) before any other
    /// command. A flag is visible in the process list: prefer the node file.
    requirepass: Option<String> = None;
    /// Allows debug commands that bypass replication.
    debug: bool = false, switch "true";
    /// A client command gives up (and the client gets an error) after this long (ms).
    request_timeout_ms: u64 = 5_000, allowed 10..;
    /// Bulk string bytes a client may send, at most.
    client_bulk_bytes_max: usize = 16 << 20, allowed 1..;
    /// Arguments in one client command, at most.
    client_array_len_max: usize = 65_536, allowed 3..;
    /// Client connections open at once, at most (as Redis's `maxclients`); one more is
    /// answered `-ERR max number of clients reached` and closed.
    maxclients: usize = 10_000, allowed 1..;
    /// Bytes of client input (partial commands, and whole ones not yet started) the node
    /// holds for all its connections together, at most, split evenly among its shards;
    /// a connection whose input would pass it is answered with an error and closed (as
    /// Redis's `client-query-buffer-limit`, but for the node). At least one command of the
    /// largest size per shard.
    client_input_bytes_max: usize = 1 << 30;
    /// Snapshot the state machine (and truncate the WAL) every this many applied slots.
    snapshot_interval_slots: u64 = 50_000, allowed 1..;
    /// Log slots kept in memory after a snapshot, for followers that lag a little; one
    /// that lags more gets a snapshot.
    log_retain_slots: u64 = 10_000;
    /// Each shard runs anti-entropy against every other replica this often (ms, from the
    /// end of one round to the start of the next); 0 = never (only `COREPAX.REPAIR`).
    anti_entropy_interval_ms: u64 = ANTI_ENTROPY_INTERVAL_MS_DEFAULT;
    /// Key changes each shard keeps for key watches to resume from (`COREPAX.WATCH …
    /// FROM version`); a watch from an older version is refused as compacted. 0 keeps
    /// none: watches then only follow live changes. Each takes 48 bytes and a copy of its
    /// key, so the default is under 1 MB per shard with short keys.
    watch_history_max: usize = 10_000, allowed 0..=WATCH_HISTORY_MAX;
}

impl TryFrom<NodeFile> for NodeConfig {
    type Error = ConfigError;
    fn try_from(file: NodeFile) -> Result<NodeConfig, ConfigError> {
        file.into_config()
    }
}

impl SettingValue for bool {
    fn parse_setting(field: &'static str, s: &str) -> Result<Self, ConfigError> {
        s.trim()
            .parse()
            .map_err(|_| invalid(field, "true or false", s))
    }
    fn render_setting(&self) -> String {
        self.to_string()
    }
}

macro_rules! text_setting {
    ($($t:ty => $what:literal),+) => {$(
        impl SettingValue for $t {
            fn parse_setting(field: &'static str, s: &str) -> Result<Self, ConfigError> {
                s.trim().parse().map_err(|_| invalid(field, $what, s))
            }
            fn render_setting(&self) -> String {
                self.to_string()
            }
        }
    )+};
}
text_setting!(SocketAddr => "an address (IP:PORT)", String => "text");

impl SettingValue for PathBuf {
    fn parse_setting(field: &'static str, s: &str) -> Result<Self, ConfigError> {
        check(!s.is_empty(), field, "a path", "nothing")?;
        Ok(PathBuf::from(s))
    }
    fn render_setting(&self) -> String {
        self.display().to_string()
    }
}

/// A setting that may be absent: `None` shows as nothing.
impl<T: SettingValue> SettingValue for Option<T> {
    fn parse_setting(field: &'static str, s: &str) -> Result<Self, ConfigError> {
        T::parse_setting(field, s).map(Some)
    }
    fn render_setting(&self) -> String {
        self.as_ref().map_or_else(String::new, T::render_setting)
    }
}

macro_rules! list_setting {
    ($($t:ty => $what:literal),+) => {$(
        /// Comma-separated; empty for none.
        impl SettingValue for Vec<$t> {
            fn parse_setting(field: &'static str, s: &str) -> Result<Self, ConfigError> {
                s.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| v.parse().map_err(|_| invalid(field, $what, s)))
                    .collect()
            }
            fn render_setting(&self) -> String {
                self.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
            }
        }
    )+};
}
list_setting!(
    SocketAddr => "comma-separated addresses (IP:PORT)",
    usize => "comma-separated core numbers"
);

impl NodeConfig {
    /// A node with these addresses and shards, every other setting at its default (the
    /// protocol's `replicas` from `peers`).
    pub fn new(
        id: u8,
        client_addr: SocketAddr,
        peers: Vec<SocketAddr>,
        data_dir: PathBuf,
        shards: usize,
    ) -> NodeConfig {
        let replicas = peers.len();
        let file = NodeFile {
            id: Some(id),
            client_addr: Some(client_addr),
            peers: Some(peers),
            data_dir: Some(data_dir),
            shards: Some(shards),
            protocol: Some(ProtocolConfig {
                replicas,
                ..ProtocolConfig::default()
            }),
            ..NodeFile::default()
        };
        match file.into_config() {
            Ok(cfg) => cfg,
            Err(e) => unreachable!("every setting without a default is given: {e}"),
        }
    }

    /// Checks every field; the error names the first bad one and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.protocol.validate()?;
        self.check_ranges()?;
        check(
            self.peers.len() == self.protocol.replicas,
            "peers",
            &format!("one address per replica ({})", self.protocol.replicas),
            self.peers.len(),
        )?;
        check(
            usize::from(self.id) < self.peers.len(),
            "id",
            &format!("0..{}", self.peers.len()),
            self.id,
        )?;
        check(
            self.client_input_bytes_max / self.shards >= CLIENT_INPUT_BYTES_PER_SHARD_MIN,
            "client_input_bytes_max",
            &format!(
                ">= {CLIENT_INPUT_BYTES_PER_SHARD_MIN} per shard (one command of the largest size)"
            ),
            self.client_input_bytes_max,
        )?;
        check(
            self.anti_entropy_interval_ms == 0
                || (ANTI_ENTROPY_INTERVAL_MS_MIN..=ANTI_ENTROPY_INTERVAL_MS_MAX)
                    .contains(&self.anti_entropy_interval_ms),
            "anti_entropy_interval_ms",
            "0 (off) or 50..=86400000",
            self.anti_entropy_interval_ms,
        )?;
        if !self.leader_cpus.is_empty() || !self.follower_cpus.is_empty() {
            check(
                self.leader_cpus.len() == self.shards,
                "leader_cpus",
                &format!("one core per shard ({})", self.shards),
                self.leader_cpus.render_setting(),
            )?;
            check(
                !self.follower_cpus.is_empty(),
                "follower_cpus",
                "at least one core while leader_cpus is set",
                "none",
            )?;
            check(
                !self.pin,
                "pin",
                "false (--no-pin) with leader_cpus: executors follow their role instead",
                self.pin,
            )?;
        }
        for (i, a) in self.peers.iter().enumerate() {
            check(
                usize::from(a.port()) + self.shards <= usize::from(u16::MAX),
                "peers",
                "ports that leave room for one port per shard",
                format!("{a} (replica {i})"),
            )?;
        }
        Ok(())
    }

    /// The peer address of `replica`'s shard `shard`.
    pub fn peer_addr(&self, replica: usize, shard: usize) -> SocketAddr {
        let mut a = self.peers[replica];
        a.set_port(a.port() + shard as u16);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(anti_entropy_interval_ms: u64) -> NodeConfig {
        let peers = ["127.0.0.1:8379", "127.0.0.1:8443", "127.0.0.1:8507"];
        let mut cfg = NodeConfig::new(
            0,
            "127.0.0.1:7379".parse().unwrap(),
            peers.iter().map(|p| p.parse().unwrap()).collect(),
            "data".into(),
            1,
        );
        cfg.anti_entropy_interval_ms = anti_entropy_interval_ms;
        cfg
    }

    const MINIMAL: &str = "id = 1\nclient_addr = \"127.0.0.1:1\"\npeers = [\"127.0.0.1:2\"]\n\
                           data_dir = \"d\"\nshards = 1\n";

    #[test]
    fn anti_entropy_interval_is_off_or_in_bounds() {
        assert_eq!(node(0).validate(), Ok(()));
        assert_eq!(node(ANTI_ENTROPY_INTERVAL_MS_DEFAULT).validate(), Ok(()));
        assert_eq!(node(ANTI_ENTROPY_INTERVAL_MS_MIN).validate(), Ok(()));
        for bad in [
            1,
            ANTI_ENTROPY_INTERVAL_MS_MIN - 1,
            ANTI_ENTROPY_INTERVAL_MS_MAX + 1,
        ] {
            let err = node(bad).validate().unwrap_err();
            assert!(
                err.to_string().contains("anti_entropy_interval_ms"),
                "{err}"
            );
        }
    }

    #[test]
    fn placement_by_role_needs_a_core_per_shard_followers_cores_and_no_pin() {
        let mut cfg = node(0);
        cfg.pin = false;
        cfg.leader_cpus = vec![0];
        cfg.follower_cpus = vec![1];
        assert_eq!(cfg.validate(), Ok(()));
        type Spoil = fn(&mut NodeConfig);
        let bad_ones: [(Spoil, &str); 4] = [
            (|c| c.leader_cpus = vec![0, 1], "leader_cpus"),
            (|c| c.leader_cpus.clear(), "leader_cpus"),
            (|c| c.follower_cpus.clear(), "follower_cpus"),
            (|c| c.pin = true, "pin"),
        ];
        for (bad, field) in bad_ones {
            let mut c = cfg.clone();
            bad(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn a_node_file_takes_each_default_and_names_a_missing_required_setting() {
        let cfg: NodeConfig = toml::from_str(MINIMAL).unwrap();
        assert_eq!(
            cfg.anti_entropy_interval_ms,
            ANTI_ENTROPY_INTERVAL_MS_DEFAULT
        );
        assert_eq!((cfg.pin, cfg.no_fsync, cfg.debug), (true, false, false));
        assert_eq!(cfg.request_timeout_ms, 5_000);
        assert_eq!(cfg.maxclients, 10_000);
        assert_eq!(cfg.client_bulk_bytes_max, 16 << 20);
        assert_eq!((cfg.cluster_key_file, cfg.requirepass), (None, None));
        assert_eq!(cfg.protocol, ProtocolConfig::default());
        // Every default the table shows is the one a file without the key gets.
        let file = toml::Value::try_from(node(ANTI_ENTROPY_INTERVAL_MS_DEFAULT)).unwrap();
        for s in NODE_SETTINGS {
            let Some(default) = (s.default)() else {
                assert!(matches!(
                    s.name,
                    "id" | "client_addr" | "peers" | "data_dir" | "shards"
                ));
                continue;
            };
            let parsed: NodeConfig = toml::from_str(MINIMAL).unwrap();
            assert_eq!((s.get)(&parsed), default, "{}", s.name);
            assert!(
                file.get(s.name).is_some() || default.is_empty(),
                "{} is a TOML key",
                s.name
            );
        }
        for required in ["id", "client_addr", "peers", "data_dir", "shards"] {
            let text: String = MINIMAL
                .lines()
                .filter(|l| !l.starts_with(&format!("{required} =")))
                .map(|l| format!("{l}\n"))
                .collect();
            let err = toml::from_str::<NodeConfig>(&text).unwrap_err().to_string();
            assert!(err.contains(&format!("`{required}` is required")), "{err}");
        }
    }

    #[test]
    fn a_node_file_reads_each_key_and_refuses_unknown_ones() {
        let text = format!(
            "{MINIMAL}pin = false\nno_fsync = true\nmaxclients = 7\n\
             requirepass = \"pw\"\nanti_entropy_interval_ms = 0\n[protocol]\nbatch_max = 9\n"
        );
        let cfg: NodeConfig = toml::from_str(&text).unwrap();
        assert!(!cfg.pin && cfg.no_fsync);
        assert_eq!(cfg.maxclients, 7);
        assert_eq!(cfg.requirepass.as_deref(), Some("pw"));
        assert_eq!(cfg.anti_entropy_interval_ms, 0);
        assert_eq!(cfg.protocol.batch_max, 9);
        let back: NodeConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        let err = toml::from_str::<NodeConfig>(&format!("{MINIMAL}max_clients = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_clients"), "{err}");
    }

    #[test]
    fn a_bad_node_value_is_refused_naming_the_setting() {
        let mut file = NodeFile::default();
        for (name, bad) in [
            ("client_addr", "localhost"),
            ("peers", "127.0.0.1:1,x"),
            ("maxclients", "-1"),
            ("cpus", "0,a"),
            ("id", "300"),
        ] {
            let s = NodeSetting::named(name).unwrap();
            let err = (s.set)(&mut file, bad).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(bad), "{err}");
        }
        assert_eq!(file, NodeFile::default());
        for (name, bad) in [
            ("maxclients", 0),
            ("request_timeout_ms", 9),
            ("shards", SHARDS_MAX + 1),
        ] {
            let mut cfg = node(0);
            let s = NodeSetting::named(name).unwrap();
            let mut file = NodeFile::default();
            (s.set)(&mut file, &bad.to_string()).unwrap();
            let mut whole: NodeFile = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
            whole.overlay(file);
            cfg = whole.into_config().unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
