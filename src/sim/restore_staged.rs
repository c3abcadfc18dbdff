//! A staged restore (`SimConfig::restore_staged`, `--restore-staged`, hidden): the
//! older-copy fault arranged so that a forgotten acknowledgement matters, which the random
//! fault (`restore.rs`) rarely does. Three replicas; instead of random faults:
//!
//! 1. Once a leader leads with every replica up, a follower's (the victim's) storage is
//!    copied and the third replica (the outsider) is cut off: from now on the leader's
//!    writes are acknowledged by the leader and the victim only.
//! 2. At the next fault event the victim crashes (it reconnects to the outsider), and it
//!    restarts from the copy: its storage lacks entries (Raft) or accepts (Multi-Paxos)
//!    it acknowledged. Its restart check hears the leader, which saw those.
//! 3. Once its check is over, the leader is cut off: the one peer holding the writes is
//!    out of the next election, which the victim and the outsider hold alone. A replica
//!    that heeds the check is a learner and does not vote, so no leader is elected until
//!    the old one is back; one that ignores it (`--bug ignore-stale-data`) elects a leader
//!    without the acknowledged writes, and they are lost.
//! 4. Every link heals at the following fault event; later ones do nothing.
//!
//! If the leader changes before stage 3, the scenario gives up and heals the links.

use super::*;

/// Where the staged scenario is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// Waiting for a leader with every replica up.
    Start,
    /// The victim's storage was copied and the outsider cut off.
    Copied(Roles),
    /// The victim crashed; it restarts from the copy.
    Crashed(Roles),
    /// The victim restarted from the copy and checks it with its peers.
    Restored(Roles),
    /// The leader was cut off after the victim's check.
    LeaderCut,
    /// Over (done or given up).
    Over,
}

/// The three replicas' parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Roles {
    leader: ReplicaId,
    victim: ReplicaId,
    outsider: ReplicaId,
}

impl Sim {
    /// At a fault event of a staged run: the next stage (see the module doc).
    pub(super) fn staged_fault(&mut self) {
        match self.staged {
            Stage::Start => self.staged_copy(),
            Stage::Copied(roles) => {
                if !self.still_leads(roles.leader) {
                    return self.staged_give_up();
                }
                self.crash(roles.victim);
                self.set_link(roles.victim, roles.outsider, false);
                self.staged = Stage::Crashed(roles);
            }
            Stage::LeaderCut => {
                self.heal_links();
                self.staged = Stage::Over;
            }
            Stage::Crashed(_) | Stage::Restored(_) | Stage::Over => {}
        }
    }

    /// Stage 1: copies a follower's storage and cuts the third replica off.
    fn staged_copy(&mut self) {
        let live: Vec<&Consensus> = self
            .nodes
            .iter()
            .filter_map(|n| n.replica.as_ref())
            .collect();
        if self.cfg.replicas != 3 || live.len() != 3 {
            return;
        }
        let Some(leader) = live.iter().find(|r| r.is_leading()).map(|r| r.id()) else {
            return;
        };
        if live.iter().any(|r| r.recovering() || r.restart_checking()) {
            return;
        }
        let others: Vec<ReplicaId> = (0..3)
            .map(|i| ReplicaId(i as u8))
            .filter(|r| *r != leader)
            .collect();
        let pick = self.rng.random_range(0..2);
        let roles = Roles {
            leader,
            victim: others[pick],
            outsider: others[1 - pick],
        };
        self.copy_storage_now(roles.victim);
        for other in [roles.leader, roles.victim] {
            self.set_link(roles.outsider, other, true);
        }
        self.staged = Stage::Copied(roles);
        self.log(|| format!("staged restore: {roles:?}; outsider cut off"));
    }

    /// Stage 2, at a restart: the victim starts from its copy.
    pub(super) fn staged_restart(&mut self, node: ReplicaId) {
        if let Stage::Crashed(roles) = self.staged
            && roles.victim == node
        {
            self.restore_copy_now(node);
            self.staged = Stage::Restored(roles);
        }
    }

    /// Stage 3, after a step: once the victim's check is over, the leader is cut off.
    pub(super) fn staged_after_step(&mut self, node: ReplicaId) {
        let Stage::Restored(roles) = self.staged else {
            return;
        };
        if node != roles.victim
            || self.nodes[node.index()]
                .replica
                .as_ref()
                .is_none_or(Consensus::restart_checking)
        {
            return;
        }
        if !self.still_leads(roles.leader) {
            return self.staged_give_up();
        }
        for other in [roles.victim, roles.outsider] {
            self.set_link(roles.leader, other, true);
        }
        self.staged = Stage::LeaderCut;
        self.log(|| format!("staged restore: leader {} cut off", roles.leader));
    }

    fn still_leads(&self, leader: ReplicaId) -> bool {
        self.nodes[leader.index()]
            .replica
            .as_ref()
            .is_some_and(Consensus::is_leading)
    }

    fn staged_give_up(&mut self) {
        self.heal_links();
        self.staged = Stage::Over;
        self.log(|| "staged restore: the leader changed; given up".into());
    }

    /// Cuts (or heals) the links between `a` and `b`, both ways.
    fn set_link(&mut self, a: ReplicaId, b: ReplicaId, cut: bool) {
        self.cut[a.index()][b.index()] = cut;
        self.cut[b.index()][a.index()] = cut;
    }

    fn heal_links(&mut self) {
        for row in &mut self.cut {
            row.fill(false);
        }
    }
}
