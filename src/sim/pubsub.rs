//! Publish/subscribe in the simulator (`--pubsub`): every write of a client also
//! publishes its value on a channel (in one transaction), each replica's state machine
//! reports the messages it applies, and the checker proves atomic broadcast: what each
//! replica delivered while it ran live is a gap-free run of one common sequence, with
//! nothing a replica did not apply from the agreed log.
//!
//! A replica's deliveries are cut into segments: one per life (a crash ends it; what a
//! restarted replica replays is not delivered), and a new one after a snapshot install
//! (the node disconnects its subscribers then: they missed what the snapshot skipped).
//!
//! `--bug deliver-on-receipt` (hidden) delivers a message when a replica *receives* an
//! accept carrying it instead of when it applies the chosen entry: retransmitted,
//! reordered or never-chosen accepts then show up, and the checker fails the seed.

use super::*;
use crate::protocol::watch::Event as KvEvent;

/// The channel of a client write to key `key`: two channels, so each holds the messages
/// of several keys.
pub(super) fn channel_of(key: usize) -> Bytes {
    Bytes::from(format!("ch{}", key % 2))
}

/// One run of a replica's live deliveries: (slot, channel, message) in delivery order.
#[derive(Debug)]
struct Segment {
    node: ReplicaId,
    got: Vec<(Slot, Bytes, Bytes)>,
}

/// What every replica delivered.
#[derive(Debug, Default)]
pub(super) struct Deliveries {
    segments: Vec<Segment>,
    /// Each replica's open segment.
    open: HashMap<ReplicaId, usize>,
}

impl Deliveries {
    fn start(&mut self, node: ReplicaId) {
        self.segments.push(Segment {
            node,
            got: Vec::new(),
        });
        self.open.insert(node, self.segments.len() - 1);
    }

    fn record(&mut self, node: ReplicaId, slot: Slot, channel: Bytes, message: Bytes) {
        if let Some(&i) = self.open.get(&node) {
            self.segments[i].got.push((slot, channel, message));
        }
    }

    /// Messages delivered, in all.
    pub(super) fn count(&self) -> usize {
        self.segments.iter().map(|s| s.got.len()).sum()
    }
}

impl Sim {
    /// A replica starts (or restarts, after its recovery): from now on it reports what it
    /// applies, in a new segment.
    pub(super) fn pubsub_start(&mut self, node: ReplicaId) {
        if !self.cfg.pubsub {
            return;
        }
        if let Some(r) = self.nodes[node.index()].replica.as_mut() {
            r.kv_mut().record_events(true);
        }
        self.deliveries.start(node);
    }

    /// Takes what a step applied: messages delivered (unless they are delivered on
    /// receipt, the bug), a snapshot install opens a new segment.
    pub(super) fn pubsub_after_step(&mut self, node: ReplicaId) {
        if !self.cfg.pubsub {
            return;
        }
        let Some(r) = self.nodes[node.index()].replica.as_mut() else {
            return;
        };
        for ev in r.kv_mut().take_events() {
            match ev {
                KvEvent::Message {
                    slot,
                    channel,
                    message,
                } if !self.cfg.bug_deliver_on_receipt => {
                    self.deliveries.record(node, slot, channel, message);
                }
                KvEvent::Reset => self.deliveries.start(node),
                _ => {}
            }
        }
    }

    /// The bug: a replica delivers the messages of an accept as it receives it.
    pub(super) fn pubsub_on_receipt(&mut self, node: ReplicaId, msg: &Message) {
        if !self.cfg.bug_deliver_on_receipt {
            return;
        }
        if let Message::Accept { slot, batch, .. } = msg {
            for req in batch.iter() {
                for (channel, message) in publishes(&req.cmd) {
                    self.deliveries.record(node, *slot, channel, message);
                }
            }
        }
    }

    /// Every segment is a gap-free run of one sequence of (slot, messages of the slot),
    /// each slot's messages among those the agreed log holds there.
    pub(super) fn check_pubsub(&mut self) {
        if !self.cfg.pubsub {
            return;
        }
        let mut violations = Vec::new();
        // Slot → what the first segment to deliver it delivered.
        let mut agreed: BTreeMap<Slot, SlotMessages> = BTreeMap::new();
        let mut runs: Vec<(ReplicaId, Vec<(Slot, SlotMessages)>)> = Vec::new();
        for seg in &self.deliveries.segments {
            let mut by_slot: Vec<(Slot, SlotMessages)> = Vec::new();
            for (slot, ch, msg) in &seg.got {
                match by_slot.last_mut() {
                    Some((s, list)) if s == slot => list.push((ch.clone(), msg.clone())),
                    Some((s, _)) if *s > *slot => violations.push(format!(
                        "replica {} delivered slot {slot} after slot {s}",
                        seg.node
                    )),
                    _ => by_slot.push((*slot, vec![(ch.clone(), msg.clone())])),
                }
            }
            for (slot, list) in &by_slot {
                let in_log = self.applied_at.get(slot).map_or_else(Vec::new, |b| {
                    b.iter().flat_map(|r| publishes(&r.cmd)).collect::<Vec<_>>()
                });
                if !is_subsequence(list, &in_log) {
                    violations.push(format!(
                        "replica {} delivered {} at slot {slot}, which the agreed log holds as {}",
                        seg.node,
                        describe(list),
                        describe(&in_log)
                    ));
                }
                match agreed.get(slot) {
                    Some(first) if first != list => violations.push(format!(
                        "replica {} delivered {} at slot {slot}, another replica {}",
                        seg.node,
                        describe(list),
                        describe(first)
                    )),
                    Some(_) => {}
                    None => {
                        agreed.insert(*slot, list.clone());
                    }
                }
            }
            runs.push((seg.node, by_slot));
        }
        for (node, by_slot) in &runs {
            let (Some(lo), Some(hi)) = (
                by_slot.first().map(|(s, _)| *s),
                by_slot.last().map(|(s, _)| *s),
            ) else {
                continue;
            };
            let mine: std::collections::HashSet<Slot> = by_slot.iter().map(|(s, _)| *s).collect();
            if let Some((missed, _)) = agreed.range(lo..=hi).find(|(s, _)| !mine.contains(*s)) {
                violations.push(format!(
                    "replica {node} delivered slots {lo} and {hi} but missed slot {missed} in between"
                ));
            }
        }
        violations.truncate(5);
        self.violations.extend(violations);
    }
}

/// What a replica delivered at one slot: (channel, message) in order.
type SlotMessages = Vec<(Bytes, Bytes)>;

/// The (channel, message) pairs a command publishes, in order.
fn publishes(cmd: &Command) -> Vec<(Bytes, Bytes)> {
    match cmd {
        Command::Publish { channel, message } => vec![(channel.clone(), message.clone())],
        Command::Multi(cmds) | Command::Watched { cmds, .. } => {
            cmds.iter().flat_map(publishes).collect()
        }
        _ => Vec::new(),
    }
}

/// Whether `part` is `whole` with some items left out (a retry the session answered
/// from memory is not applied again), order kept.
fn is_subsequence(part: &[(Bytes, Bytes)], whole: &[(Bytes, Bytes)]) -> bool {
    let mut rest = whole.iter();
    part.iter().all(|p| rest.any(|w| w == p))
}

fn describe(list: &[(Bytes, Bytes)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(c, m)| {
            format!(
                "{}:{}",
                String::from_utf8_lossy(c),
                String::from_utf8_lossy(m)
            )
        })
        .collect();
    format!("[{}]", items.join(" "))
}
