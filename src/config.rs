//! Configuration: cluster-wide protocol settings, which must match on every replica.
//!
//! Every limit is a named `*_max`; units are last in names. Files are TOML with
//! `deny_unknown_fields`, and [`ProtocolConfig::validate`] names the field and what is allowed.

use serde::{Deserialize, Serialize};

/// Replicas in a group, at most: ballots carry the node id in a byte and votes are a bitmask.
pub const REPLICAS_MAX: usize = 7;

/// How reads are served. Selectable per run so modes can be compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    /// A read is a command through the log, like a write. Always linearizable.
    #[default]
    Log,
}

impl std::str::FromStr for ReadMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "log" => Ok(ReadMode::Log),
            _ => Err(ConfigError::Invalid {
                field: "read_mode",
                allowed: "log".into(),
                got: s.into(),
            }),
        }
    }
}

impl std::fmt::Display for ReadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadMode::Log => f.write_str("log"),
        }
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
}

/// Cluster-wide Multi-Paxos settings. Must be equal on every replica of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolConfig {
    /// Replicas per group (3 or 5 usual; 1..=REPLICAS_MAX).
    pub replicas: usize,
    /// Slots the leader keeps in flight (proposed, not yet chosen).
    pub pipeline_depth: usize,
    /// Commands per slot, at most.
    pub batch_max: usize,
    /// Encoded command bytes per slot, at most (a single larger command still gets a slot).
    pub batch_bytes_max: usize,
    /// How long the leader may hold a partial batch waiting for more commands; 0 = never.
    pub batch_delay_us: u64,
    /// A follower that hears nothing from a leader for this long (plus a random part of
    /// up to the same again) starts an election.
    pub election_timeout_ms: u64,
    /// The leader sends a commit/heartbeat at least this often.
    pub heartbeat_interval_ms: u64,
    /// Chosen slots per catch-up message, at most.
    pub catchup_chunk_max: usize,
    /// Client commands queued at the leader waiting for a slot, at most; beyond it
    /// requests are refused with a busy error.
    pub proposal_queue_max: usize,
    /// Replies remembered per client for exactly-once retries, at most.
    pub client_window_max: usize,
    /// Client sessions remembered per group, at most (the oldest is forgotten).
    pub clients_max: usize,
    /// How reads are served.
    pub read_mode: ReadMode,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            replicas: 3,
            pipeline_depth: 32,
            batch_max: 256,
            batch_bytes_max: 1 << 20,
            batch_delay_us: 0,
            election_timeout_ms: 500,
            heartbeat_interval_ms: 50,
            catchup_chunk_max: 64,
            proposal_queue_max: 65_536,
            client_window_max: 4096,
            clients_max: 4096,
            read_mode: ReadMode::Log,
        }
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
        Err(ConfigError::Invalid {
            field,
            allowed: allowed.into(),
            got: got.to_string(),
        })
    }
}

impl ProtocolConfig {
    /// Checks every field; the error names the first bad one and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=REPLICAS_MAX).contains(&self.replicas),
            "replicas",
            "1..=7",
            self.replicas,
        )?;
        check(
            (1..=4096).contains(&self.pipeline_depth),
            "pipeline_depth",
            "1..=4096",
            self.pipeline_depth,
        )?;
        check(
            (1..=65_536).contains(&self.batch_max),
            "batch_max",
            "1..=65536",
            self.batch_max,
        )?;
        check(
            (1..=64 << 20).contains(&self.batch_bytes_max),
            "batch_bytes_max",
            "1..=67108864",
            self.batch_bytes_max,
        )?;
        check(
            self.batch_delay_us <= 100_000,
            "batch_delay_us",
            "0..=100000",
            self.batch_delay_us,
        )?;
        check(
            self.heartbeat_interval_ms >= 1,
            "heartbeat_interval_ms",
            ">= 1",
            self.heartbeat_interval_ms,
        )?;
        check(
            self.election_timeout_ms >= 2 * self.heartbeat_interval_ms,
            "election_timeout_ms",
            ">= 2 * heartbeat_interval_ms",
            self.election_timeout_ms,
        )?;
        check(
            (1..=4096).contains(&self.catchup_chunk_max),
            "catchup_chunk_max",
            "1..=4096",
            self.catchup_chunk_max,
        )?;
        check(
            self.proposal_queue_max >= self.batch_max,
            "proposal_queue_max",
            ">= batch_max",
            self.proposal_queue_max,
        )?;
        check(
            self.client_window_max >= 1,
            "client_window_max",
            ">= 1",
            self.client_window_max,
        )?;
        check(
            self.clients_max >= 1,
            "clients_max",
            ">= 1",
            self.clients_max,
        )?;
        Ok(())
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
}
