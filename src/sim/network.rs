//! The simulated network: delays, losses, duplicates, and what replicas send each other.

use super::*;

/// What replicas send each other: the runtime's peer messages that the simulated group
/// uses.
#[derive(Clone, Debug)]
pub(super) enum Wire {
    /// A protocol core's message.
    Core(Message),
    /// A command forwarded to the leader, by a node's client path (`answered_there`: a
    /// command the forwarding node answers itself when it applies it).
    Forward {
        id: u64,
        req: Request,
        answered_there: bool,
    },
    /// The leader's answer to it.
    ForwardReply { id: u64, reply: ClientReply },
}

pub(super) fn describe_wire(msg: &Wire) -> String {
    match msg {
        Wire::Core(m) => describe(m),
        Wire::Forward { id, req, .. } => format!(
            "forward #{id} c{}#{}:{}",
            req.client,
            req.seq,
            short_cmd(&req.cmd)
        ),
        Wire::ForwardReply { id, reply } => format!("forward reply #{id} {reply:?}"),
    }
}

pub(super) fn describe(msg: &Message) -> String {
    match msg {
        Message::Prepare { ballot, from_slot } => format!("prepare b{ballot} from {from_slot}"),
        Message::Promise {
            ballot,
            chosen_through,
            entries,
        } => format!(
            "promise b{ballot} chosen through {chosen_through}, {} entries",
            entries.len()
        ),
        Message::InstallSnapshot { chunk } => format!(
            "snapshot chunk at slot {}: items {}+{} of {}",
            chunk.last_included,
            chunk.offset,
            chunk.entries.len() + chunk.sessions.len(),
            chunk.items_total
        ),
        Message::SnapshotChunkRequest {
            last_included,
            offset,
        } => format!("snapshot chunk request at slot {last_included} from item {offset}"),
        Message::Reject { promised } => format!("reject (promised b{promised})"),
        Message::Accept {
            ballot,
            slot,
            batch,
            commit,
        } => format!(
            "accept b{ballot} slot {slot} {} commit {commit}",
            describe_batch(batch)
        ),
        Message::Accepted {
            ballot,
            slot,
            holders,
            lease_left,
        } => format!(
            "accepted b{ballot} slot {slot} holders {holders:#b} for {:.3}ms",
            *lease_left as f64 / MS as f64
        ),
        Message::LeaseRequest { seq, ballot } => format!("lease request #{seq} b{ballot}"),
        Message::LeaseGrant { seq, fence } => format!("lease grant #{seq} fence {fence}"),
        Message::ReadQuery { id, keys, full } => {
            format!("read query #{id} {} keys full={full}", keys.len())
        }
        Message::ReadReport { id, view } => {
            format!("read report #{id} applied {} {:?}", view.applied, view.keys)
        }
        Message::ReadRepair { id, entries } => {
            format!("read repair #{id} {} entries", entries.len())
        }
        Message::ReadRepaired { id } => format!("read repaired #{id}"),
        Message::Commit { ballot, commit } => format!("commit b{ballot} through {commit}"),
        Message::CatchUpRequest { from_slot } => format!("catch-up request from {from_slot}"),
        Message::CatchUp { entries, commit } => {
            format!("catch-up {} entries, commit {commit}", entries.len())
        }
        Message::RecoveryQuery => "recovery query".to_string(),
        Message::ClockProbe { sent } => format!("clock probe sent {sent}"),
        Message::ClockEcho { sent, at } => format!("clock echo sent {sent} at {at}"),
        Message::RestartQuery => "restart query".to_string(),
        Message::RestartReport { promised, accepted } => {
            format!("restart report: promised b{promised}, accepted {accepted:?}")
        }
        Message::Raft(m) => describe_raft(m),
        Message::RecoveryReport {
            promised,
            recovering,
            leading,
        } => format!(
            "recovery report: promised b{promised} recovering={recovering} leading {}",
            leading.map_or("-".to_string(), |(b, s)| format!(
                "b{b} proposed through {s}"
            ))
        ),
    }
}

fn describe_raft(msg: &crate::protocol::raft::Msg) -> String {
    use crate::protocol::raft::{AppendOutcome, Msg};
    match msg {
        Msg::PreVote {
            term,
            last_index,
            last_term,
        } => format!("pre-vote t{term} last {last_index}@t{last_term}"),
        Msg::PreVoteReply { term, granted } => format!("pre-vote reply t{term} {granted}"),
        Msg::RequestVote {
            term,
            last_index,
            last_term,
        } => format!("request vote t{term} last {last_index}@t{last_term}"),
        Msg::VoteReply { term, granted } => format!("vote reply t{term} {granted}"),
        Msg::Append {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
        } => {
            let batches: Vec<String> = entries
                .iter()
                .map(|(t, b)| format!("t{t}{}", describe_batch(b)))
                .collect();
            format!(
                "append t{term} after {prev_index}@t{prev_term} {} commit {commit}",
                batches.join(" ")
            )
        }
        Msg::AppendReply { term, outcome } => match outcome {
            AppendOutcome::Ok { match_index } => format!("append ok t{term} through {match_index}"),
            AppendOutcome::Conflict { index, term: t } => {
                format!("append conflict t{term}: from {index} (term {t:?})")
            }
        },
        Msg::InstallSnapshot {
            term,
            last_term,
            chunk,
        } => format!(
            "install snapshot t{term} at {}@t{last_term}, items {}.. of {}",
            chunk.last_included, chunk.offset, chunk.items_total
        ),
        Msg::SnapshotChunkRequest {
            term,
            last_included,
            offset,
        } => format!("snapshot chunk request t{term} at {last_included} from {offset}"),
        Msg::RecoveryQuery { last_index } => format!("recovery query, last {last_index}"),
        Msg::RecoveryReport {
            term,
            recovering,
            leading,
        } => format!("recovery report t{term} recovering {recovering} leading {leading:?}"),
        Msg::InstallSnapshotReply { term, last_index } => {
            format!("snapshot installed t{term} through {last_index}")
        }
        Msg::ReadProbe { term, seq } => format!("read probe t{term} #{seq}"),
        Msg::ReadProbeAck { term, seq } => format!("read probe ack t{term} #{seq}"),
        Msg::LeaseRequest { term, seq } => format!("lease request t{term} #{seq}"),
        Msg::LeaseGrant { term, seq } => format!("lease grant t{term} #{seq}"),
        Msg::RestartQuery => "restart query".to_string(),
        Msg::RestartReport {
            term,
            voted_in,
            stored,
        } => format!("restart report t{term} voted in {voted_in:?} stored {stored:?}"),
    }
}

pub(super) fn describe_batch(b: &Batch) -> String {
    let cmds: Vec<String> = b
        .iter()
        .map(|r| match &r.cmd {
            Command::Noop => "noop".to_string(),
            cmd => format!("c{}#{}:{}", r.client, r.seq, short_cmd(cmd)),
        })
        .collect();
    format!("[{}]", cmds.join(" "))
}

pub(super) fn short_cmd(cmd: &Command) -> String {
    let s = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    match cmd {
        Command::Get(k) => format!("get {}", s(k)),
        Command::Set(k, v) => format!("set {} {}", s(k), s(v)),
        Command::Del(ks) => format!("del {}", ks.iter().map(s).collect::<Vec<_>>().join(" ")),
        other => format!("{other:?}"),
    }
}

impl Sim {
    pub(super) fn net_delay(&mut self) -> Nanos {
        if self.faults_on && self.rng.random_bool(0.05) {
            self.rng.random_range(5 * MS..60 * MS)
        } else {
            self.rng.random_range(100 * US..2 * MS)
        }
    }

    pub(super) fn net_send(&mut self, from: ReplicaId, to: ReplicaId, msg: Wire) {
        let dropped = self.cut[from.index()][to.index()] || self.rng.random_bool(self.loss);
        if dropped && !self.restore_check_msg(from, to, &msg) {
            return;
        }
        let copies = if self.rng.random_bool(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.net_delay();
            let incarnation = self.nodes[to.index()].incarnation;
            self.schedule(
                delay,
                Event::Deliver {
                    to,
                    from,
                    incarnation,
                    msg: msg.clone(),
                },
            );
        }
    }

    /// A message from a peer arrives at a live replica.
    pub(super) fn deliver(&mut self, to: ReplicaId, from: ReplicaId, msg: Wire) {
        let now = self.clock(to);
        let n = &mut self.nodes[to.index()];
        let r = n.replica.as_mut().expect("checked");
        match msg {
            Wire::Core(msg) => {
                if self.cfg.bug_deliver_on_receipt {
                    self.pubsub_on_receipt(to, &msg);
                }
                let r = self.nodes[to.index()].replica.as_mut().expect("checked");
                r.on_message(now, from, msg);
                self.after_step(to);
            }
            Wire::Forward {
                id,
                req,
                answered_there,
            } => {
                n.client.on_forward(from, id, req, answered_there);
                self.drive_client(to);
            }
            Wire::ForwardReply { id, reply } => {
                let view = LeaderView::of(r);
                n.client.on_forward_reply(now, id, reply, view);
                self.drive_client(to);
            }
        }
    }
}
