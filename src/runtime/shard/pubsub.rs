//! Publish/subscribe and key watches, delivered when this replica applies the log.
//!
//! A channel lives in the shard its name hashes to (as a key, hash tags included), so one
//! shard's log orders every message of it: `PUBLISH` is a log entry, and each replica,
//! when it applies that entry, puts the message in the mailbox of each of its own
//! subscribers. Every subscriber on every replica so sees one channel's messages in one
//! order. Patterns are held by every shard (a pattern matches channels of any shard).
//!
//! Key watches (`COREPAX.WATCH`) live in the shard of their keys: the shard keeps the
//! last changes it applied ([`History`]); a watch first gets the retained changes after
//! the version it resumes from, then each change as it is applied, in order.
//!
//! Nothing here is replicated or stored: subscriptions belong to connections of this
//! node, and the history starts again empty after a restart.

use bytes::Bytes;

use super::*;
use crate::protocol::Slot;
use crate::protocol::watch::{Change, Compacted, Event, EventRef, History, coalesced};
use crate::runtime::mailbox::{Mailbox, Push};

/// A connection, as the node numbers them.
pub type ConnId = u64;

/// What a connection asks of a shard's subscriptions, or a question about them.
#[derive(Debug)]
pub enum PubsubOp {
    /// Deliver these channels' messages to the mailbox.
    Subscribe(ConnId, Vec<Bytes>, Mailbox),
    /// Stop delivering these channels.
    Unsubscribe(ConnId, Vec<Bytes>),
    /// Deliver messages of channels matching these patterns.
    PSubscribe(ConnId, Vec<Bytes>, Mailbox),
    /// Stop delivering these patterns.
    PUnsubscribe(ConnId, Vec<Bytes>),
    /// Watch keys, first replaying the retained changes after a version if given.
    Watch {
        /// The connection.
        conn: ConnId,
        /// The keys (all of this shard).
        keys: Vec<Bytes>,
        /// Resume after this version; `None`: from now.
        from: Option<Slot>,
        /// Where changes go.
        mailbox: Mailbox,
    },
    /// End every key watch of the connection (`COREPAX.UNWATCH`).
    Unwatch(ConnId),
    /// Forget every subscription and watch of the connection (it closed or reset).
    Forget(ConnId),
    /// Subscribers of each channel (`PUBSUB NUMSUB`).
    NumSub(Vec<Bytes>),
    /// Channels with a subscriber, matching a pattern if given (`PUBSUB CHANNELS`).
    Channels(Option<Bytes>),
    /// Distinct patterns subscribed to (`PUBSUB NUMPAT`).
    NumPat,
    /// Connections a message of the channel reaches here (`PUBLISH`'s answer).
    Receivers(Bytes),
}

/// The answer to a [`PubsubOp`].
#[derive(Debug)]
pub enum PubsubAnswer {
    /// Done.
    Done,
    /// One count per channel asked.
    Counts(Vec<usize>),
    /// A count.
    Count(usize),
    /// Channel names.
    Channels(Vec<Bytes>),
    /// The watch started: it gets the changes after this version.
    Watching(Result<Slot, Compacted>),
}

/// What INFO shows of a shard's subscriptions and watches (this node's connections).
#[derive(Clone, Copy, Debug, Default)]
pub struct PubsubInfo {
    /// Channels with a subscriber.
    pub channels: usize,
    /// Pattern subscriptions.
    pub patterns: usize,
    /// Keys with a watcher.
    pub watched_keys: usize,
    /// Changes kept for watches to resume from.
    pub changes_kept: usize,
    /// The oldest version a watch may resume from.
    pub oldest_from: Slot,
}

/// One shard's subscribers and watches, and its change history.
pub(super) struct Pubsub {
    channels: HashMap<Bytes, Vec<(ConnId, Mailbox)>, MapHasher>,
    patterns: Vec<(Bytes, ConnId, Mailbox)>,
    /// Watchers by key: the connection, its mailbox, and the version it has seen up to.
    watches: HashMap<Bytes, Vec<(ConnId, Mailbox, Slot)>, MapHasher>,
    history: History,
    /// This step's changes while some key is watched: told at the step's end, a key
    /// changed twice in one slot once ([`Pubsub::end_of_step`]).
    step: Vec<Change>,
}

impl Pubsub {
    /// No subscriber, and a history complete after `applied` (what recovery applied was
    /// never reported).
    pub(super) fn new(history_max: usize, applied: Slot) -> Pubsub {
        Pubsub {
            channels: HashMap::default(),
            patterns: Vec::new(),
            watches: HashMap::default(),
            history: History::new(history_max, applied),
            step: Vec::new(),
        }
    }

    pub(super) fn info(&self) -> PubsubInfo {
        PubsubInfo {
            channels: self.channels.len(),
            patterns: self.patterns.len(),
            watched_keys: self.watches.len(),
            changes_kept: self.history.len(),
            oldest_from: self.history.floor(),
        }
    }

    fn publish(&mut self, channel: &Bytes, message: &Bytes) {
        if let Some(subs) = self.channels.get_mut(channel) {
            subs.retain(|(_, mb)| {
                mb.put(Push::Message {
                    channel: channel.clone(),
                    message: message.clone(),
                })
            });
            if subs.is_empty() {
                self.channels.remove(channel);
            }
        }
        self.patterns.retain(|(pattern, _, mb)| {
            !crate::protocol::glob::matches(pattern, channel)
                || mb.put(Push::PMessage {
                    pattern: pattern.clone(),
                    channel: channel.clone(),
                    message: message.clone(),
                })
        });
    }

    /// One event of a step, in order: a message goes out now; a change goes to the
    /// history now when nobody watches any key (its key copied there, nothing allocated
    /// for it), else at the end of the step with its watchers'.
    fn on_event(&mut self, event: EventRef<'_>, applied: Slot) {
        match event {
            EventRef::Change { key, version, kind } if self.watches.is_empty() => {
                // Nobody to tell: the history answers a key once per slot by itself.
                self.history.push(key, version, kind);
            }
            EventRef::Change { key, version, kind } => self.step.push(Change {
                key: Bytes::copy_from_slice(key),
                version,
                kind,
            }),
            EventRef::Other(Event::Message {
                channel, message, ..
            }) => self.publish(&channel, &message),
            EventRef::Other(Event::Change(c)) => self.step.push(c),
            EventRef::Other(Event::Reset) => {
                // The state was replaced: what the step changed before is not reported.
                self.step.clear();
                self.reset(applied);
            }
        }
    }

    /// The step's changes that wait for its end ([`Pubsub::on_event`]), to the history
    /// and their watchers.
    fn end_of_step(&mut self) {
        if self.step.is_empty() {
            return;
        }
        for c in coalesced(std::mem::take(&mut self.step)) {
            self.changed(c);
        }
    }

    fn changed(&mut self, change: Change) {
        self.history.push(&change.key, change.version, change.kind);
        let Some(watchers) = self.watches.get_mut(&change.key) else {
            return;
        };
        watchers.retain(|(_, mb, after)| {
            change.version <= *after || mb.put(Push::Change(change.clone()))
        });
        if watchers.is_empty() {
            self.watches.remove(&change.key);
        }
    }

    /// The state jumped to `applied` without reporting changes or messages: every watch
    /// ends, and every subscriber of this shard's channels (and every pattern subscriber)
    /// is disconnected, since it missed messages while connected.
    fn reset(&mut self, applied: Slot) {
        for (_, subs) in self.channels.drain() {
            subs.iter().for_each(|(_, mb)| mb.cut_off());
        }
        for (_, _, mb) in self.patterns.drain(..) {
            mb.cut_off();
        }
        self.history.reset(applied);
        let why = format!(
            "ERR watch lost changes: this replica installed a snapshot at version {applied}; \
             read the keys again and watch FROM {applied}"
        );
        for (_, watchers) in self.watches.drain() {
            for (_, mb, _) in watchers {
                mb.put(Push::Lost(why.clone()));
            }
        }
    }

    fn forget(&mut self, conn: ConnId) {
        self.channels.retain(|_, subs| {
            subs.retain(|(c, _)| *c != conn);
            !subs.is_empty()
        });
        self.patterns.retain(|(_, c, _)| *c != conn);
        self.unwatch(conn);
    }

    fn unwatch(&mut self, conn: ConnId) {
        self.watches.retain(|_, ws| {
            ws.retain(|(c, _, _)| *c != conn);
            !ws.is_empty()
        });
    }

    fn watch(
        &mut self,
        conn: ConnId,
        keys: Vec<Bytes>,
        from: Option<Slot>,
        mb: Mailbox,
        applied: Slot,
    ) -> Result<Slot, Compacted> {
        let after = match from {
            None => applied,
            Some(from) => {
                let replay = self.history.since(from, |k| keys.iter().any(|w| w == k))?;
                for c in replay {
                    mb.put(Push::Change(c));
                }
                from.max(applied)
            }
        };
        for k in keys {
            let ws = self.watches.entry(k).or_default();
            match ws.iter_mut().find(|(c, _, _)| *c == conn) {
                Some(w) => w.2 = after,
                None => ws.push((conn, mb.clone(), after)),
            }
        }
        Ok(after)
    }

    fn answer(&mut self, op: PubsubOp, applied: Slot) -> PubsubAnswer {
        match op {
            PubsubOp::Subscribe(conn, channels, mb) => {
                for ch in channels {
                    let subs = self.channels.entry(ch).or_default();
                    if !subs.iter().any(|(c, _)| *c == conn) {
                        subs.push((conn, mb.clone()));
                    }
                }
                PubsubAnswer::Done
            }
            PubsubOp::Unsubscribe(conn, channels) => {
                for ch in channels {
                    if let Some(subs) = self.channels.get_mut(&ch) {
                        subs.retain(|(c, _)| *c != conn);
                        if subs.is_empty() {
                            self.channels.remove(&ch);
                        }
                    }
                }
                PubsubAnswer::Done
            }
            PubsubOp::PSubscribe(conn, patterns, mb) => {
                for p in patterns {
                    if !self.patterns.iter().any(|(q, c, _)| *c == conn && *q == p) {
                        self.patterns.push((p, conn, mb.clone()));
                    }
                }
                PubsubAnswer::Done
            }
            PubsubOp::PUnsubscribe(conn, patterns) => {
                self.patterns
                    .retain(|(q, c, _)| *c != conn || !patterns.contains(q));
                PubsubAnswer::Done
            }
            PubsubOp::Watch {
                conn,
                keys,
                from,
                mailbox,
            } => PubsubAnswer::Watching(self.watch(conn, keys, from, mailbox, applied)),
            PubsubOp::Unwatch(conn) => {
                self.unwatch(conn);
                PubsubAnswer::Done
            }
            PubsubOp::Forget(conn) => {
                self.forget(conn);
                PubsubAnswer::Done
            }
            PubsubOp::NumSub(channels) => PubsubAnswer::Counts(
                channels
                    .iter()
                    .map(|ch| self.channels.get(ch).map_or(0, Vec::len))
                    .collect(),
            ),
            PubsubOp::Channels(pattern) => PubsubAnswer::Channels(
                self.channels
                    .keys()
                    .filter(|ch| {
                        pattern
                            .as_ref()
                            .is_none_or(|p| crate::protocol::glob::matches(p, ch))
                    })
                    .cloned()
                    .collect(),
            ),
            PubsubOp::NumPat => {
                let mut distinct: Vec<&Bytes> = self.patterns.iter().map(|(p, _, _)| p).collect();
                distinct.sort_unstable();
                distinct.dedup();
                PubsubAnswer::Count(distinct.len())
            }
            PubsubOp::Receivers(channel) => PubsubAnswer::Count(
                self.channels.get(&channel).map_or(0, Vec::len)
                    + self
                        .patterns
                        .iter()
                        .filter(|(p, _, _)| crate::protocol::glob::matches(p, &channel))
                        .count(),
            ),
        }
    }
}

impl Shard {
    /// Delivers what the last step applied: messages to subscribers, changes to the
    /// history and to watchers.
    pub(super) fn deliver_events(&self) {
        let mut r = self.replica.borrow_mut();
        let applied = r.applied_index();
        let mut ps = self.pubsub.borrow_mut();
        r.kv_mut().drain_events(|e| ps.on_event(e, applied));
        ps.end_of_step();
    }

    /// Subscribes, unsubscribes, watches or answers a question about them, on this shard.
    pub fn pubsub(&self, op: PubsubOp) -> PubsubAnswer {
        let applied = self.replica.borrow().applied_index();
        self.pubsub.borrow_mut().answer(op, applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::watch::ChangeKind;
    use crate::runtime::mailbox::mailbox;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// With nobody watching, a step's changes go to the history as they come; once a key
    /// is watched they wait for the step's end, a key changed twice in a slot told once;
    /// a reset drops what the step changed before it.
    #[test]
    fn a_steps_changes_reach_the_history_and_watchers_once_per_slot() {
        let set = |key: &'static [u8], version| EventRef::Change {
            key,
            version,
            kind: ChangeKind::Set,
        };
        let mut ps = Pubsub::new(100, 0);
        ps.on_event(set(b"a", 1), 1);
        ps.on_event(set(b"a", 1), 1);
        assert_eq!(ps.info().changes_kept, 2, "unwatched: kept as they come");
        ps.end_of_step();
        let (mb, mut inbox) = mailbox(1 << 20);
        assert_eq!(ps.watch(7, vec![b("a")], None, mb, 1), Ok(1));
        ps.on_event(set(b"a", 2), 2);
        ps.on_event(set(b"b", 2), 2);
        ps.on_event(set(b"a", 2), 2);
        assert_eq!(ps.info().changes_kept, 2, "watched: held to the step's end");
        assert_eq!(inbox.try_next(), None);
        ps.end_of_step();
        assert_eq!(ps.info().changes_kept, 4, "a and b at 2, once each");
        let a2 = Change {
            key: b("a"),
            version: 2,
            kind: ChangeKind::Set,
        };
        assert_eq!(inbox.try_next(), Some(Push::Change(a2)));
        assert_eq!(inbox.try_next(), None);
        ps.on_event(set(b"a", 3), 3);
        ps.on_event(EventRef::Other(Event::Reset), 9);
        ps.on_event(set(b"c", 10), 10);
        ps.end_of_step();
        assert!(
            matches!(inbox.try_next(), Some(Push::Lost(_))),
            "the watch ended"
        );
        assert_eq!(
            inbox.try_next(),
            None,
            "the change before the reset is not told"
        );
        assert_eq!(ps.info().changes_kept, 1, "only c, after the reset");
        assert_eq!(ps.info().oldest_from, 9);
    }

    #[test]
    fn messages_reach_channel_and_pattern_subscribers_in_order() {
        let mut ps = Pubsub::new(100, 0);
        let (mb1, mut in1) = mailbox(1 << 20);
        let (mb2, mut in2) = mailbox(1 << 20);
        ps.answer(PubsubOp::Subscribe(1, vec![b("news")], mb1), 0);
        ps.answer(PubsubOp::PSubscribe(2, vec![b("n*")], mb2), 0);
        ps.publish(&b("news"), &b("one"));
        ps.publish(&b("other"), &b("x"));
        ps.publish(&b("news"), &b("two"));
        let m = |msg: &str| Push::Message {
            channel: b("news"),
            message: b(msg),
        };
        assert_eq!(in1.try_next(), Some(m("one")));
        assert_eq!(in1.try_next(), Some(m("two")));
        assert_eq!(in1.try_next(), None);
        assert!(matches!(in2.try_next(), Some(Push::PMessage { message, .. }) if message == "one"));
        assert!(matches!(in2.try_next(), Some(Push::PMessage { message, .. }) if message == "two"));
        assert!(matches!(
            ps.answer(PubsubOp::Receivers(b("news")), 0),
            PubsubAnswer::Count(2)
        ));
        ps.answer(PubsubOp::Forget(1), 0);
        assert!(matches!(
            ps.answer(PubsubOp::Receivers(b("news")), 0),
            PubsubAnswer::Count(1)
        ));
    }

    #[test]
    fn a_watch_replays_what_it_missed_then_follows() {
        let mut ps = Pubsub::new(100, 0);
        let change = |k: &str, v| Change {
            key: b(k),
            version: v,
            kind: ChangeKind::Set,
        };
        ps.changed(change("a", 1));
        ps.changed(change("b", 2));
        ps.changed(change("a", 3));
        let (mb, mut inbox) = mailbox(1 << 20);
        let started = ps.watch(7, vec![b("a")], Some(1), mb, 3);
        assert_eq!(started, Ok(3));
        assert_eq!(inbox.try_next(), Some(Push::Change(change("a", 3))));
        assert_eq!(inbox.try_next(), None);
        ps.changed(change("a", 4));
        assert_eq!(inbox.try_next(), Some(Push::Change(change("a", 4))));
        let (mb, _) = mailbox(1 << 20);
        let mut small = Pubsub::new(1, 0);
        small.changed(change("a", 1));
        small.changed(change("a", 2));
        assert_eq!(
            small.watch(1, vec![b("a")], Some(0), mb, 2),
            Err(Compacted { oldest: 1 })
        );
    }

    #[test]
    fn a_key_changed_twice_in_a_slot_is_one_change() {
        let c = |k: &str, v, kind| Change {
            key: b(k),
            version: v,
            kind,
        };
        let out = coalesced(vec![
            c("a", 5, ChangeKind::Set),
            c("b", 5, ChangeKind::Set),
            c("a", 5, ChangeKind::Del),
            c("a", 6, ChangeKind::Set),
        ]);
        assert_eq!(
            out,
            vec![
                c("a", 5, ChangeKind::Del),
                c("b", 5, ChangeKind::Set),
                c("a", 6, ChangeKind::Set)
            ]
        );
    }
}
