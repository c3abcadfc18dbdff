//! The flags of node settings, one per entry of [`NODE_SETTINGS`]: every setting for
//! `corepax node`, those a launcher does not choose per replica for `corepax cluster`.

use crate::config::{ConfigError, NODE_SETTINGS, NodeFile, NodeSetting, node::FlagKind};

/// Defaults `corepax cluster` uses instead of a node's: it serves benchmarks, which measure
/// the request path, so periodic anti-entropy is off unless asked for.
pub const CLUSTER_DEFAULTS: &[(&str, &str)] = &[("anti_entropy_interval_ms", "0")];

/// Node settings as flags (`CLUSTER`: the flags of `corepax cluster`, which apply to every
/// node it starts); unset flags keep the node file's value or the default.
#[derive(Debug, Clone, Default)]
pub struct NodeFlags<const CLUSTER: bool> {
    /// The flags given (and for a cluster, its defaults of those not given): setting and
    /// value as text, each parsed once already.
    pub given: Vec<(&'static NodeSetting, String)>,
}

impl<const CLUSTER: bool> NodeFlags<CLUSTER> {
    /// The settings that have a flag here.
    fn settings() -> impl Iterator<Item = &'static NodeSetting> {
        NODE_SETTINGS.iter().filter(|s| !(CLUSTER && s.per_node))
    }

    /// The default shown and used here, if it is not the node's.
    fn own_default(s: &NodeSetting) -> Option<&'static str> {
        CLUSTER_DEFAULTS
            .iter()
            .find(|(name, _)| CLUSTER && *name == s.name)
            .map(|(_, v)| *v)
    }

    /// The settings given, each optional as in a node file.
    pub fn file(&self) -> Result<NodeFile, ConfigError> {
        let mut file = NodeFile::default();
        for (s, v) in &self.given {
            (s.set)(&mut file, v)?;
        }
        Ok(file)
    }
}

impl<const CLUSTER: bool> clap::FromArgMatches for NodeFlags<CLUSTER> {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let given = Self::settings()
            .filter_map(|s| {
                let value = match s.kind {
                    FlagKind::Value => m.get_one::<String>(s.name).cloned(),
                    FlagKind::Switch(sets) => m.get_flag(s.name).then(|| sets.to_string()),
                };
                Some((s, value.or_else(|| Self::own_default(s).map(String::from))?))
            })
            .collect();
        Ok(NodeFlags { given })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<const CLUSTER: bool> clap::Args for NodeFlags<CLUSTER> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Self::settings().fold(cmd, |cmd, s| {
            let key_flag = s.name.replace('_', "-");
            let mut arg = clap::Arg::new(s.name).long(s.flag());
            if s.flag() != key_flag {
                arg = arg.alias(key_flag);
            }
            cmd.arg(match s.kind {
                FlagKind::Switch(_) => arg
                    .action(clap::ArgAction::SetTrue)
                    .help(s.summary())
                    .long_help(s.doc_line()),
                FlagKind::Value => {
                    // Checked as it is parsed, so a bad value is a usage error naming the flag.
                    let parse = move |v: &str| {
                        (s.set)(&mut NodeFile::default(), v)
                            .map(|()| v.to_string())
                            .map_err(|e| e.to_string())
                    };
                    let default = Self::own_default(s)
                        .map(String::from)
                        .or_else(|| (s.default)());
                    let mut notes = match default.as_deref() {
                        None => String::new(),
                        Some("") => " [default: none]".to_string(),
                        Some(v) => format!(" [default: {v}]"),
                    };
                    if let Some(range) = (s.allowed)() {
                        notes = match notes.strip_suffix(']') {
                            Some(open) => format!("{open}; allowed: {range}]"),
                            None => format!(" [allowed: {range}]"),
                        };
                    }
                    arg.value_name("VALUE")
                        .help(s.summary() + &notes)
                        .long_help(s.doc_line() + &notes)
                        .value_parser(parse)
                }
            })
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Node {
        #[command(flatten)]
        node: NodeFlags<false>,
    }

    #[derive(Parser, Debug)]
    struct Cluster {
        #[command(flatten)]
        node: NodeFlags<true>,
    }

    #[test]
    fn every_node_flag_of_earlier_versions_still_parses_and_applies() {
        let argv = [
            "x",
            "--id",
            "1",
            "--client-addr",
            "127.0.0.1:7000",
            "--peers",
            "127.0.0.1:8000,127.0.0.1:8100",
            "--data",
            "d",
            "--shards",
            "2",
            "--no-pin",
            "--cpus",
            "0,1",
            "--no-fsync",
            "--debug",
            "--cluster-id",
            "5",
            "--cluster-key-file",
            "k",
            "--requirepass",
            "pw",
            "--maxclients",
            "9",
            "--client-input-bytes-max",
            "33554432",
            "--snapshot-interval-slots",
            "77",
            "--log-retain-slots",
            "8",
            "--anti-entropy-interval-ms",
            "0",
        ];
        let flags = Node::try_parse_from(argv).unwrap().node;
        let mut file = flags.file().unwrap();
        file.protocol = Some(crate::config::ProtocolConfig {
            replicas: 2,
            ..Default::default()
        });
        let cfg = file.into_config().unwrap();
        assert_eq!(cfg.id, 1);
        assert_eq!(cfg.client_addr, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(cfg.peers.len(), 2);
        assert_eq!(cfg.data_dir, std::path::PathBuf::from("d"));
        assert_eq!(
            (cfg.shards, cfg.pin, cfg.cpus.clone()),
            (2, false, vec![0, 1])
        );
        assert!(cfg.no_fsync && cfg.debug);
        assert_eq!(cfg.cluster_id, 5);
        assert_eq!(cfg.cluster_key_file, Some("k".into()));
        assert_eq!(cfg.requirepass.as_deref(), Some("pw"));
        assert_eq!((cfg.maxclients, cfg.client_input_bytes_max), (9, 32 << 20));
        assert_eq!((cfg.snapshot_interval_slots, cfg.log_retain_slots), (77, 8));
        assert_eq!(cfg.anti_entropy_interval_ms, 0);
        assert_eq!(cfg.validate(), Ok(()));
        // The key's own spelling is an alias of a renamed flag.
        let alias = Node::try_parse_from(["x", "--data-dir", "e"]).unwrap().node;
        assert_eq!(alias.file().unwrap().data_dir, Some("e".into()));
    }

    #[test]
    fn unset_node_flags_give_nothing_and_bad_values_are_usage_errors_naming_the_flag() {
        let flags = Node::try_parse_from(["x"]).unwrap().node;
        assert_eq!(flags.file().unwrap(), NodeFile::default());
        for (flag, bad) in [
            ("--client-addr", "nowhere"),
            ("--maxclients", "lots"),
            ("--peers", "127.0.0.1:1,x"),
        ] {
            let err = Node::try_parse_from(["x", flag, bad])
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag) && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn cluster_flags_leave_out_per_node_settings_and_keep_their_own_defaults() {
        assert!(Cluster::try_parse_from(["x", "--id", "1"]).is_err());
        assert!(Cluster::try_parse_from(["x", "--data", "d"]).is_err());
        let plain = Cluster::try_parse_from(["x"]).unwrap().node.file().unwrap();
        assert_eq!(plain.anti_entropy_interval_ms, Some(0));
        let set = Cluster::try_parse_from(["x", "--anti-entropy-interval-ms", "300", "--no-fsync"])
            .unwrap()
            .node
            .file()
            .unwrap();
        assert_eq!(set.anti_entropy_interval_ms, Some(300));
        assert_eq!(set.no_fsync, Some(true));
        assert_eq!(set.pin, None);
    }

    #[test]
    fn help_shows_a_node_settings_default_and_range() {
        use clap::CommandFactory;
        let help = Node::command().render_help().to_string();
        assert!(help.contains("--maxclients"), "{help}");
        assert!(help.contains("[default: 10000; allowed: 1..]"), "{help}");
        assert!(help.contains("[allowed: 1..=64]"), "{help}");
        let help = Cluster::command().render_help().to_string();
        assert!(help.contains("[default: 0]"), "{help}");
    }
}
