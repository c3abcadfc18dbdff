//! Anti-entropy between two replicas of one group: compare Merkle trees top-down, descend
//! only into differing subtrees, exchange the entries of differing leaves, repair by a rule
//! that never installs anything a correct replica would not hold.
//!
//! # Session
//!
//! The initiator ([`AntiEntropy`]) drives; the responder ([`Responder`]) keeps no session
//! state and answers each request from its current tree, so a lost or repeated message
//! cannot wedge it. One request is in flight at a time; every request gets one reply.
//!
//! ```text
//! initiator                         responder
//! Root{depth, root}            →    Done (equal: 1 round trip)   or  Children(root)
//! GetChildren{level, parents}  →    Children{level+1, digests}    (once per level, chunked)
//! GetEntries{leaves, push}     →    Entries{applied, entries}     (differing leaves, chunked)
//! Push{entries}                →    Done                          (what is left to push)
//! ```
//!
//! Both sides rebuild their tree incrementally before reading it. Writes may continue
//! during a session; a subtree that changes meanwhile is simply compared in its new state,
//! and whatever a session misses the next one finds.
//!
//! # Repair rule ([`repair_verdict`])
//!
//! Every replica applies the same log in slot order, so a correct replica that has applied
//! slots `1..=a` holds, for each key, exactly the state the prefix `1..=a` leaves. Replicas
//! that lag are fixed by the log (catch-up, snapshots); anti-entropy is for replicas whose
//! state *diverged* from their own applied prefix (lost log records, bit rot, bugs).
//!
//! The receiver R (horizon `h`: its applied index, never above its commit index) installs
//! the sender S's entry `k@v` (S had applied `a_S` when it read it) only if all hold:
//! 1. `v ≤ a_S`: otherwise the message is malformed.
//! 2. `v ≤ h`: the write is committed and R has applied past it, so R's state should reflect
//!    it. A newer write reaches R through the log; installing it early would let log replay
//!    of older slots regress the key for a while.
//! 3. `a_S ≥ h`: S has applied every slot R has. S holds `k@v`, so no slot in `(v, a_S]`
//!    wrote or deleted `k`, hence none in `(v, h]`: the true state of `k` at R's horizon
//!    is exactly `k@v`. If S is behind R, a delete or overwrite R applied after `a_S` would
//!    be undone (a resurrected key), so R keeps its state.
//! 4. R's own entry is absent or older than `v`: never replace a newer version with an older
//!    one. An equal version with a different value means one side is corrupt and nothing
//!    says which: it is counted as a conflict and left alone.
//!
//! Under this rule R installs exactly the state a correct replica would hold at `h`,
//! provided S is correct.
//!
//! **Deletions.** Anti-entropy never deletes. A key present on one side and absent on the
//! other is resolved toward presence, by the rule above, or left alone. Absence carries no
//! version (there are no tombstones), so it cannot be told apart from loss: a replica that
//! lost keys would, under an "absence is authoritative once `applied ≥ version`" rule,
//! delete them from every healthy replica and spread its loss. Real deletes travel through
//! the log. The cost: an entry resurrected by a bug on some replica is not removed by
//! anti-entropy; it shows up as a difference every session reports (`Outcome::kept`,
//! `ResponderStats::kept`), and comparing replicas' `Kv::digest` flags it. Tombstones with a version (kept until every
//! replica has applied past them) would let absence win soundly; we have not needed them.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{FANOUT, MerkleTree, nodes_at};
use crate::protocol::kv::{Entry, EntryRef, Item, Kv};
use crate::protocol::types::Slot;

/// Size limits of a session's messages; both replicas must use the same ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Parents per `GetChildren` (a reply carries `FANOUT` digests per parent).
    pub parents_per_msg_max: usize,
    /// Leaves per `GetEntries`.
    pub leaves_per_msg_max: usize,
    /// Entries per `Entries`, `GetEntries.push` or `Push`; a reply always completes at least
    /// one leaf, so it may exceed this by one leaf's entries.
    pub entries_per_msg_max: usize,
}

impl Default for SessionLimits {
    fn default() -> SessionLimits {
        SessionLimits {
            parents_per_msg_max: 256,
            leaves_per_msg_max: 1024,
            entries_per_msg_max: 4096,
        }
    }
}

/// Why a responder refused a request; the session ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Refusal {
    /// The trees have different depths.
    DepthMismatch {
        /// The responder's depth.
        ours: u8,
    },
    /// A level outside the tree, or a leaf level where inner nodes were expected.
    BadLevel,
    /// A node or leaf index outside its level, or indices not strictly ascending.
    BadIndex,
    /// More items than the session limits allow.
    TooMany,
    /// A reply the initiator could not use (wrong count, leaves it did not ask for).
    BadReply,
}

/// Anti-entropy messages between two replicas of one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MerkleMsg {
    /// Initiator → responder, first: its depth and root. Answered by `Done` if the roots
    /// are equal, else by `Children` of the root.
    Root {
        /// The initiator's tree depth.
        depth: u8,
        /// The initiator's root digest.
        digest: u64,
    },
    /// Initiator → responder: the children of these nodes, which differ.
    GetChildren {
        /// Level of the parents (`1..depth`).
        level: u8,
        /// Parent indices, strictly ascending.
        parents: Vec<u32>,
    },
    /// Responder → initiator: `FANOUT` child digests per requested parent, in order.
    Children {
        /// Level of the children.
        level: u8,
        /// The digests.
        digests: Vec<u64>,
    },
    /// Initiator → responder: its entries in these leaves, which differ; and entries for
    /// the responder to install if [`repair_verdict`] allows.
    GetEntries {
        /// Leaf indices, strictly ascending.
        leaves: Vec<u32>,
        /// The initiator's applied index when it read `push`.
        applied: Slot,
        /// Entries the initiator holds newer than the responder, or the responder lacks.
        push: Vec<(Bytes, Entry)>,
    },
    /// Responder → initiator: every entry of the first `complete` requested leaves.
    Entries {
        /// The responder's applied index when it read them.
        applied: Slot,
        /// How many of the requested leaves (a prefix) these entries cover.
        complete: u32,
        /// The entries.
        entries: Vec<(Bytes, Entry)>,
    },
    /// Initiator → responder: entries left to push after the last `GetEntries`.
    Push {
        /// The initiator's applied index when it read them.
        applied: Slot,
        /// The entries.
        entries: Vec<(Bytes, Entry)>,
    },
    /// Responder → initiator: roots equal, or the push is handled.
    Done,
    /// Responder → initiator: the request broke a rule.
    Refused(Refusal),
}

impl MerkleMsg {
    /// Bytes this message takes with fixed-width integers (u64 = 8, u32 and lengths = 4):
    /// an upper bound of its varint (postcard) encoding, used for the session's byte counts.
    pub fn size_bytes(&self) -> usize {
        fn entries(es: &[(Bytes, Entry)]) -> usize {
            4 + es
                .iter()
                .map(|(k, e)| entry_size_bytes(k, e))
                .sum::<usize>()
        }
        1 + match self {
            MerkleMsg::Root { .. } => 1 + 8,
            MerkleMsg::GetChildren { parents, .. } => 1 + 4 + 4 * parents.len(),
            MerkleMsg::Children { digests, .. } => 1 + 4 + 8 * digests.len(),
            MerkleMsg::GetEntries { leaves, push, .. } => 4 + 4 * leaves.len() + 8 + entries(push),
            MerkleMsg::Entries { entries: es, .. } => 8 + 4 + entries(es),
            MerkleMsg::Push { entries: es, .. } => 8 + entries(es),
            MerkleMsg::Done => 0,
            MerkleMsg::Refused(_) => 2,
        }
    }
}

/// Bytes one entry takes in a message (length-prefixed key and value, and the version).
pub fn entry_size_bytes(key: &[u8], entry: &Entry) -> usize {
    4 + key.len() + 4 + entry.value.len() + 8
}

/// What [`repair_verdict`] decided for one entry from the other replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Install it: it is the state of the key at our horizon.
    Install,
    /// We hold the same entry.
    Same,
    /// We hold a newer version.
    OursNewer,
    /// We hold the same version with another value: one side is corrupt; left alone.
    Conflict,
    /// Its version is beyond our horizon; the log will bring it.
    NotApplied,
    /// The sender had applied less than we have; its entry may predate a write or delete
    /// we applied.
    SenderBehind,
    /// Its version is 0 or beyond the sender's own applied index: a bad message.
    Invalid,
}

/// The repair rule (module doc): may we install `theirs`, read by a replica that had
/// applied `their_applied`, given `ours` and our horizon `commit_index` (pass the applied
/// index, which is never above the commit index; see rule 2)?
pub fn repair_verdict(
    ours: Option<EntryRef<'_>>,
    theirs: &Entry,
    their_applied: Slot,
    commit_index: Slot,
) -> Verdict {
    if theirs.version == 0 || theirs.version > their_applied {
        return Verdict::Invalid;
    }
    if let Some(o) = ours {
        if o.version == theirs.version {
            return if o.same_value(&theirs.entry_ref()) {
                Verdict::Same
            } else {
                Verdict::Conflict
            };
        }
        if o.version > theirs.version {
            return Verdict::OursNewer;
        }
    }
    if theirs.version > commit_index {
        return Verdict::NotApplied;
    }
    if their_applied < commit_index {
        return Verdict::SenderBehind;
    }
    Verdict::Install
}

/// Counts of verdicts that kept our state, for the outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// We held a newer version.
    pub ours_newer: u64,
    /// Same version, different value.
    pub conflicts: u64,
    /// Beyond our horizon.
    pub not_applied: u64,
    /// The sender was behind us.
    pub sender_behind: u64,
    /// Bad entries (version 0 or beyond the sender's applied index, or outside the leaves
    /// asked for).
    pub invalid: u64,
}

impl Kept {
    fn count(&mut self, v: Verdict) {
        match v {
            Verdict::Install | Verdict::Same => {}
            Verdict::OursNewer => self.ours_newer += 1,
            Verdict::Conflict => self.conflicts += 1,
            Verdict::NotApplied => self.not_applied += 1,
            Verdict::SenderBehind => self.sender_behind += 1,
            Verdict::Invalid => self.invalid += 1,
        }
    }
}

/// The initiator's account of a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Node digests compared (root included).
    pub compared_nodes: u64,
    /// Leaves found different.
    pub differing_leaves: u64,
    /// Entries sent to the responder (pushes).
    pub entries_sent: u64,
    /// Entries received from the responder.
    pub entries_received: u64,
    /// Bytes of the messages sent.
    pub bytes_sent: u64,
    /// Bytes of the messages received.
    pub bytes_received: u64,
    /// Requests sent; each got one reply.
    pub round_trips: u64,
    /// Entries the initiator should install (`Kv::install`), in the order found.
    pub repairs: Vec<(Bytes, Entry)>,
    /// Entries from the responder that the rule did not install here.
    pub kept: Kept,
    /// Set when the responder refused a request or replied nonsense.
    pub failed: Option<Refusal>,
}

impl Outcome {
    /// Bytes both ways.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Awaiting {
    /// Children at `level` of the parents asked (for the root: `[0]`).
    Children { level: u8, parents: Vec<u32> },
    /// Entries of these leaves.
    Entries { leaves: Vec<u32> },
    /// The `Done` closing a push or an equal root.
    Done,
    /// Nothing: the session is over.
    Nothing,
}

/// The initiator of an anti-entropy session (module doc).
#[derive(Clone, Debug)]
pub struct AntiEntropy {
    limits: SessionLimits,
    depth: u8,
    awaiting: Awaiting,
    /// Differing nodes at `frontier_level` whose children are not asked for yet.
    frontier: VecDeque<u32>,
    frontier_level: u8,
    /// Differing nodes one level below the frontier, found so far.
    next: Vec<u32>,
    /// Differing leaves whose entries are not asked for yet.
    leaves: VecDeque<u32>,
    /// Entries to send the responder, each with our applied index when we read it: a push
    /// must claim the index its entries were read at, not a later one (rule 3). At most
    /// `entries_per_msg_max` plus our entries in `leaves_per_msg_max` leaves.
    push: VecDeque<(Slot, Bytes, Entry)>,
    outcome: Outcome,
    /// Replies that did not match what was awaited.
    ignored: u64,
}

impl AntiEntropy {
    /// Starts a session: rebuilds our tree and returns the first message (`Root`).
    pub fn start(kv: &mut Kv, limits: SessionLimits) -> (AntiEntropy, MerkleMsg) {
        assert!(limits.parents_per_msg_max >= 1);
        assert!(limits.leaves_per_msg_max >= 1);
        assert!(limits.entries_per_msg_max >= 1);
        let tree = kv.merkle_mut();
        tree.rebuild_incremental();
        let msg = MerkleMsg::Root {
            depth: tree.depth(),
            digest: tree.root(),
        };
        let mut session = AntiEntropy {
            limits,
            depth: tree.depth(),
            awaiting: Awaiting::Children {
                level: 1,
                parents: vec![0],
            },
            frontier: VecDeque::new(),
            frontier_level: 0,
            next: Vec::new(),
            leaves: VecDeque::new(),
            push: VecDeque::new(),
            outcome: Outcome {
                compared_nodes: 1,
                ..Outcome::default()
            },
            ignored: 0,
        };
        session.sent(&msg);
        (session, msg)
    }

    /// True when the session is over (converged, finished or failed).
    pub fn is_done(&self) -> bool {
        self.awaiting == Awaiting::Nothing
    }

    /// What the session found and did so far.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// Ends the session and hands over its outcome.
    pub fn into_outcome(self) -> Outcome {
        self.outcome
    }

    /// Entries queued to push to the responder.
    pub fn pending_pushes(&self) -> usize {
        self.push.len()
    }

    /// Replies that matched nothing awaited, dropped.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Takes the repairs found so far, to install them before the next message.
    pub fn take_repairs(&mut self) -> Vec<(Bytes, Entry)> {
        std::mem::take(&mut self.outcome.repairs)
    }

    /// A reply from the responder; returns the next request, if any. `applied` is our
    /// applied index now (the horizon of [`repair_verdict`]).
    pub fn on_msg(&mut self, kv: &mut Kv, applied: Slot, msg: MerkleMsg) -> Option<MerkleMsg> {
        self.outcome.bytes_received += msg.size_bytes() as u64;
        let awaiting = std::mem::replace(&mut self.awaiting, Awaiting::Nothing);
        let result = match (awaiting, msg) {
            (Awaiting::Nothing, _) => {
                self.ignored += 1;
                return None;
            }
            (_, MerkleMsg::Refused(r)) => Err(r),
            (Awaiting::Children { level: 1, .. }, MerkleMsg::Done) => Ok(()),
            (Awaiting::Done, MerkleMsg::Done) => Ok(()),
            (Awaiting::Children { level, parents }, MerkleMsg::Children { level: l, digests })
                if l == level =>
            {
                self.on_children(kv, level, &parents, &digests)
            }
            (
                Awaiting::Entries { leaves },
                MerkleMsg::Entries {
                    applied: their_applied,
                    complete,
                    entries,
                },
            ) => self.on_entries(kv, applied, their_applied, &leaves, complete, entries),
            (awaiting, _) => {
                // Not the reply we wait for (late or duplicated): keep waiting.
                self.ignored += 1;
                self.awaiting = awaiting;
                return None;
            }
        };
        if let Err(r) = result {
            self.outcome.failed = Some(r);
            return None;
        }
        let next = self.next_request(applied);
        if let Some(m) = &next {
            self.sent(m);
        }
        self.check_invariants();
        next
    }

    fn sent(&mut self, msg: &MerkleMsg) {
        self.outcome.bytes_sent += msg.size_bytes() as u64;
        self.outcome.round_trips += 1;
    }

    fn on_children(
        &mut self,
        kv: &mut Kv,
        level: u8,
        parents: &[u32],
        digests: &[u64],
    ) -> Result<(), Refusal> {
        if digests.len() != parents.len() * FANOUT {
            return Err(Refusal::BadReply);
        }
        let tree = kv.merkle_mut();
        tree.rebuild_incremental();
        for (&parent, theirs) in parents.iter().zip(digests.chunks_exact(FANOUT)) {
            let ours = tree.children(level, parent);
            for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
                self.outcome.compared_nodes += 1;
                if a == b {
                    continue;
                }
                let child = parent * FANOUT as u32 + i as u32;
                if level == self.depth {
                    self.outcome.differing_leaves += 1;
                    self.leaves.push_back(child);
                } else {
                    self.next.push(child);
                }
            }
        }
        Ok(())
    }

    fn on_entries(
        &mut self,
        kv: &mut Kv,
        applied: Slot,
        their_applied: Slot,
        asked: &[u32],
        complete: u32,
        theirs: Vec<(Bytes, Entry)>,
    ) -> Result<(), Refusal> {
        let complete = complete as usize;
        if complete == 0 || complete > asked.len() {
            return Err(Refusal::BadReply);
        }
        // Leaves the responder did not get to go back to the front of the queue.
        for &leaf in asked[complete..].iter().rev() {
            self.leaves.push_front(leaf);
        }
        let covered = &asked[..complete];
        let (_, ours) = entries_in_leaves(kv, covered, usize::MAX);
        self.outcome.entries_received += theirs.len() as u64;
        let mut theirs_by_key: HashMap<Bytes, Entry> = HashMap::with_capacity(theirs.len());
        for (key, entry) in theirs {
            if covered.binary_search(&kv.merkle().leaf_of(&key)).is_err() {
                self.outcome.kept.invalid += 1;
                continue;
            }
            let verdict = repair_verdict(
                kv.get(&key).map(Item::entry_ref),
                &entry,
                their_applied,
                applied,
            );
            self.outcome.kept.count(verdict);
            if verdict == Verdict::Install {
                self.outcome.repairs.push((key.clone(), entry.clone()));
            }
            theirs_by_key.insert(key, entry);
        }
        for (key, entry) in ours {
            let newer = theirs_by_key
                .get(&key)
                .is_none_or(|t| t.version < entry.version);
            if newer {
                self.push.push_back((applied, key, entry));
            }
        }
        Ok(())
    }

    /// The next request: descend a level, fetch leaves, push, or end.
    fn next_request(&mut self, applied: Slot) -> Option<MerkleMsg> {
        if self.frontier.is_empty() && !self.next.is_empty() {
            // Replies come parent by parent in ascending order, so `next` is ascending.
            self.frontier.extend(self.next.drain(..));
            self.frontier_level += 1;
        }
        if !self.frontier.is_empty() {
            let n = self.frontier.len().min(self.limits.parents_per_msg_max);
            let parents: Vec<u32> = self.frontier.drain(..n).collect();
            self.awaiting = Awaiting::Children {
                level: self.frontier_level + 1,
                parents: parents.clone(),
            };
            return Some(MerkleMsg::GetChildren {
                level: self.frontier_level,
                parents,
            });
        }
        let push_n = self.push.len().min(self.limits.entries_per_msg_max);
        // Fetch more leaves only while the push queue is short: it then never holds more
        // than `entries_per_msg_max` plus our entries of one request's leaves.
        if !self.leaves.is_empty() && self.push.len() < self.limits.entries_per_msg_max {
            let n = self.leaves.len().min(self.limits.leaves_per_msg_max);
            let leaves: Vec<u32> = self.leaves.drain(..n).collect();
            let (read_at, push) = self.take_push(push_n, applied);
            self.awaiting = Awaiting::Entries {
                leaves: leaves.clone(),
            };
            return Some(MerkleMsg::GetEntries {
                leaves,
                applied: read_at,
                push,
            });
        }
        if push_n > 0 {
            let (read_at, entries) = self.take_push(push_n, applied);
            self.awaiting = Awaiting::Done;
            return Some(MerkleMsg::Push {
                applied: read_at,
                entries,
            });
        }
        None
    }

    /// Up to `n` queued pushes, and the applied index they may claim: the lowest one they
    /// were read at (the first, as the queue is in reading order), `applied` if none.
    fn take_push(&mut self, n: usize, applied: Slot) -> (Slot, Vec<(Bytes, Entry)>) {
        let read_at = self.push.front().map_or(applied, |(a, _, _)| *a);
        let entries: Vec<(Bytes, Entry)> = self
            .push
            .drain(..n)
            .map(|(a, k, e)| {
                assert!(a >= read_at);
                (k, e)
            })
            .collect();
        self.outcome.entries_sent += entries.len() as u64;
        (read_at, entries)
    }

    fn check_invariants(&self) {
        assert!(self.frontier_level < self.depth || self.frontier.is_empty());
        assert!(
            self.frontier
                .iter()
                .zip(self.frontier.iter().skip(1))
                .all(|(a, b)| a < b)
        );
        if self.awaiting == Awaiting::Nothing {
            assert!(self.frontier.is_empty() && self.next.is_empty());
            assert!(self.outcome.failed.is_some() || self.leaves.is_empty());
        }
    }
}

/// What the responder does with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The reply to send back (none for messages that are not requests).
    pub reply: Option<MerkleMsg>,
    /// Entries to install here (`Kv::install`) before handling the next request.
    pub repairs: Vec<(Bytes, Entry)>,
}

/// The responder's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponderStats {
    /// Requests answered.
    pub requests: u64,
    /// Requests refused.
    pub refused: u64,
    /// Messages that were not requests, dropped.
    pub ignored: u64,
    /// Bytes of the replies.
    pub bytes_sent: u64,
    /// Entries sent in replies.
    pub entries_sent: u64,
    /// Pushed entries accepted for installation.
    pub repairs: u64,
    /// Pushed entries the rule kept out.
    pub kept: Kept,
}

/// The responder side: stateless across requests, apart from counters.
#[derive(Clone, Debug, Default)]
pub struct Responder {
    limits: SessionLimits,
    stats: ResponderStats,
}

impl Responder {
    /// A responder enforcing `limits`.
    pub fn new(limits: SessionLimits) -> Responder {
        Responder {
            limits,
            stats: ResponderStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &ResponderStats {
        &self.stats
    }

    /// Answers one request from the initiator; `applied` is our applied index now.
    pub fn on_msg(&mut self, kv: &mut Kv, applied: Slot, msg: &MerkleMsg) -> Response {
        let mut repairs = Vec::new();
        let reply = match self.answer(kv, applied, msg, &mut repairs) {
            Ok(Some(reply)) => reply,
            Ok(None) => {
                self.stats.ignored += 1;
                return Response {
                    reply: None,
                    repairs,
                };
            }
            Err(r) => {
                self.stats.refused += 1;
                MerkleMsg::Refused(r)
            }
        };
        self.stats.requests += 1;
        self.stats.bytes_sent += reply.size_bytes() as u64;
        Response {
            reply: Some(reply),
            repairs,
        }
    }

    fn answer(
        &mut self,
        kv: &mut Kv,
        applied: Slot,
        msg: &MerkleMsg,
        repairs: &mut Vec<(Bytes, Entry)>,
    ) -> Result<Option<MerkleMsg>, Refusal> {
        let tree = kv.merkle_mut();
        tree.rebuild_incremental();
        let depth = tree.depth();
        Ok(Some(match msg {
            MerkleMsg::Root { depth: d, digest } => {
                if *d != depth {
                    return Err(Refusal::DepthMismatch { ours: depth });
                }
                if *digest == tree.root() {
                    MerkleMsg::Done
                } else {
                    MerkleMsg::Children {
                        level: 1,
                        digests: tree.children(1, 0).to_vec(),
                    }
                }
            }
            MerkleMsg::GetChildren { level, parents } => {
                if *level >= depth {
                    return Err(Refusal::BadLevel);
                }
                check_indices(parents, nodes_at(*level), self.limits.parents_per_msg_max)?;
                let mut digests = Vec::with_capacity(parents.len() * FANOUT);
                for &p in parents {
                    digests.extend_from_slice(tree.children(level + 1, p));
                }
                MerkleMsg::Children {
                    level: level + 1,
                    digests,
                }
            }
            MerkleMsg::GetEntries {
                leaves,
                applied: their_applied,
                push,
            } => {
                check_indices(leaves, nodes_at(depth), self.limits.leaves_per_msg_max)?;
                self.accept_push(kv, applied, *their_applied, push, repairs)?;
                let (complete, entries) =
                    entries_in_leaves(kv, leaves, self.limits.entries_per_msg_max);
                self.stats.entries_sent += entries.len() as u64;
                MerkleMsg::Entries {
                    applied,
                    complete: complete as u32,
                    entries,
                }
            }
            MerkleMsg::Push {
                applied: their_applied,
                entries,
            } => {
                self.accept_push(kv, applied, *their_applied, entries, repairs)?;
                MerkleMsg::Done
            }
            MerkleMsg::Children { .. }
            | MerkleMsg::Entries { .. }
            | MerkleMsg::Done
            | MerkleMsg::Refused(_) => return Ok(None),
        }))
    }

    fn accept_push(
        &mut self,
        kv: &Kv,
        applied: Slot,
        their_applied: Slot,
        push: &[(Bytes, Entry)],
        repairs: &mut Vec<(Bytes, Entry)>,
    ) -> Result<(), Refusal> {
        if push.len() > self.limits.entries_per_msg_max {
            return Err(Refusal::TooMany);
        }
        for (key, entry) in push {
            let verdict = repair_verdict(
                kv.get(key).map(Item::entry_ref),
                entry,
                their_applied,
                applied,
            );
            self.stats.kept.count(verdict);
            if verdict == Verdict::Install {
                self.stats.repairs += 1;
                repairs.push((key.clone(), entry.clone()));
            }
        }
        Ok(())
    }
}

/// Indices must be strictly ascending, below `bound`, and at most `count_max`.
fn check_indices(indices: &[u32], bound: usize, count_max: usize) -> Result<(), Refusal> {
    if indices.len() > count_max {
        return Err(Refusal::TooMany);
    }
    if indices.is_empty() || !indices.windows(2).all(|w| w[0] < w[1]) {
        return Err(Refusal::BadIndex);
    }
    if indices.last().is_some_and(|&i| i as usize >= bound) {
        return Err(Refusal::BadIndex);
    }
    Ok(())
}

/// The entries of `leaves` (strictly ascending), leaf by leaf, stopping once
/// `entries_max` is reached after a whole leaf; returns how many leaves are complete.
/// Scans the whole map: the map is not indexed by leaf, and a scan costs less memory than
/// an index would (sessions are rare, writes are not).
pub fn entries_in_leaves(
    kv: &Kv,
    leaves: &[u32],
    entries_max: usize,
) -> (usize, Vec<(Bytes, Entry)>) {
    let tree: &MerkleTree = kv.merkle();
    let mut buckets: Vec<Vec<(Bytes, Entry)>> = vec![Vec::new(); leaves.len()];
    for item in kv.iter() {
        if let Ok(i) = leaves.binary_search(&tree.leaf_of(item.key())) {
            buckets[i].push((item.key_bytes(), item.entry()));
        }
    }
    let mut out = Vec::new();
    let mut complete = 0;
    for bucket in buckets {
        if complete > 0 && out.len() + bucket.len() > entries_max {
            break;
        }
        out.extend(bucket);
        complete += 1;
    }
    (complete, out)
}
