//! `SUBSCRIBE`, `PSUBSCRIBE`, their `UN…`, `PUBLISH`, `PUBSUB` and `COREPAX.WATCH`: the
//! connection's side of publish/subscribe through the log and of key watches (the
//! shard's side is `runtime::shard::pubsub`).
//!
//! A connection with a subscription or a watch has a mailbox that shards put messages
//! and changes in; the connection writes them between replies, as pushes (RESP2 arrays,
//! RESP3 `>` pushes). In RESP2, such a connection takes only the commands Redis allows in
//! subscribe mode.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use bytes::Bytes;

use super::commands::{Outcome, Pending, Proto, err};
use super::conn::Conn;
use crate::protocol::Command;
use crate::protocol::watch::Compacted;
use crate::runtime::mailbox::{Inbox, MAILBOX_BYTES_MAX, Mailbox, Push, mailbox};
use crate::runtime::node::{Local, shard_of};
use crate::runtime::shard::{PubsubAnswer, PubsubOp};

/// Ids that name a connection's subscriptions to the shards: a new one after `RESET`,
/// so forgetting the old ones in the background cannot remove newer ones.
static NEXT_SUBS_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A connection's subscriptions and watches, and its mailbox.
pub(super) struct Subs {
    id: u64,
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    /// Keys watched (shared with the `COREPAX.WATCH` in flight, which takes its keys
    /// back if the shard refuses it).
    watched: Rc<RefCell<BTreeSet<Bytes>>>,
    mailbox: Mailbox,
    pub(super) inbox: Inbox,
}

impl std::fmt::Debug for Subs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subs")
            .field("channels", &self.channels.len())
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

impl Subs {
    fn new() -> Subs {
        let (mailbox, inbox) = mailbox(MAILBOX_BYTES_MAX);
        Subs {
            id: NEXT_SUBS_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            watched: Rc::default(),
            mailbox,
            inbox,
        }
    }

    /// Redis's count: channels and patterns subscribed to.
    fn count(&self) -> i64 {
        (self.channels.len() + self.patterns.len()) as i64
    }

    /// Whether the connection receives pushes (RESP2 then takes only a few commands).
    pub(super) fn active(&self) -> bool {
        self.count() > 0 || !self.watched.borrow().is_empty()
    }

    /// Encodes `push` into `out` if the connection still wants it (it may have
    /// unsubscribed since it was put); returns the bytes it counted in the mailbox.
    pub(super) fn encode(&self, push: Push, out: &mut Vec<u8>, proto: Proto) -> usize {
        let size = push.size_bytes();
        let bulk = |b: &Bytes| Outcome::Bulk(Some(b.clone()));
        let text = |s: &'static str| Outcome::Bulk(Some(Bytes::from_static(s.as_bytes())));
        let items = match push {
            Push::Message { channel, message } if self.channels.contains(&channel) => {
                vec![text("message"), bulk(&channel), bulk(&message)]
            }
            Push::PMessage {
                pattern,
                channel,
                message,
            } if self.patterns.contains(&pattern) => vec![
                text("pmessage"),
                bulk(&pattern),
                bulk(&channel),
                bulk(&message),
            ],
            Push::Change(c) if self.watched.borrow().contains(&c.key) => vec![
                text("change"),
                bulk(&c.key),
                Outcome::Int(i64::try_from(c.version).unwrap_or(i64::MAX)),
                text(c.kind.name()),
            ],
            Push::Lost(why) => {
                self.watched.borrow_mut().clear();
                vec![text("lost"), Outcome::Bulk(Some(Bytes::from(why)))]
            }
            _ => return size,
        };
        Outcome::Push(items).encode(out, proto);
        size
    }
}

/// The commands a RESP2 connection with subscriptions may run, as in Redis.
pub(super) fn allowed_in_push_mode(name: &str) -> bool {
    matches!(
        name,
        "SUBSCRIBE"
            | "PSUBSCRIBE"
            | "UNSUBSCRIBE"
            | "PUNSUBSCRIBE"
            | "PING"
            | "QUIT"
            | "RESET"
            | "COREPAX.WATCH"
            | "COREPAX.UNWATCH"
    )
}

/// Redis's refusal of another command in RESP2 subscribe mode.
pub(super) fn refused_in_push_mode(name: &str) -> Outcome {
    Outcome::Error(format!(
        "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET \
         are allowed in this context",
        name.to_ascii_lowercase()
    ))
}

fn push3(kind: &'static str, name: Option<Bytes>, n: i64) -> Outcome {
    Outcome::Push(vec![
        Outcome::Bulk(Some(Bytes::from_static(kind.as_bytes()))),
        Outcome::Bulk(name),
        Outcome::Int(n),
    ])
}

/// Channels grouped by their shard.
fn by_owner(local: &Local, names: &[Bytes]) -> Vec<(usize, Vec<Bytes>)> {
    let mut groups: Vec<(usize, Vec<Bytes>)> = Vec::new();
    for n in names {
        let s = shard_of(n, local.shards);
        match groups.iter_mut().find(|g| g.0 == s) {
            Some(g) => g.1.push(n.clone()),
            None => groups.push((s, vec![n.clone()])),
        }
    }
    groups
}

/// Runs `ops` one after the other, then answers `done`.
fn after(local: &Rc<Local>, ops: Vec<(usize, PubsubOp)>, done: Outcome) -> Pending {
    let local = local.clone();
    Pending::Waiting(Box::pin(async move {
        for (s, op) in ops {
            if local.pubsub(s, op).await.is_none() {
                return Outcome::Error(format!("ERR shard {s} is gone"));
            }
        }
        done
    }))
}

/// `SUBSCRIBE`, `UNSUBSCRIBE`, `PSUBSCRIBE` and `PUNSUBSCRIBE`.
pub(super) fn subscription(
    local: &Rc<Local>,
    conn: &mut Conn,
    name: &str,
    args: &[Bytes],
) -> Pending {
    let subs = conn.subs.get_or_insert_with(Subs::new);
    let id = subs.id;
    let patterns = name.starts_with('P');
    let subscribe = !name.contains("UNSUB");
    if subscribe && args.is_empty() {
        return Pending::Ready(Outcome::Error(format!(
            "ERR wrong number of arguments for '{}' command",
            name.to_ascii_lowercase()
        )));
    }
    let kind = match (patterns, subscribe) {
        (false, true) => "subscribe",
        (false, false) => "unsubscribe",
        (true, true) => "psubscribe",
        (true, false) => "punsubscribe",
    };
    let targets: Vec<Bytes> = match (args.is_empty(), patterns) {
        (false, _) => args.to_vec(),
        (true, false) => subs.channels.iter().cloned().collect(),
        (true, true) => subs.patterns.iter().cloned().collect(),
    };
    let mut replies = Vec::with_capacity(targets.len().max(1));
    for t in &targets {
        let set = if patterns {
            &mut subs.patterns
        } else {
            &mut subs.channels
        };
        if subscribe {
            set.insert(t.clone());
        } else {
            set.remove(t);
        }
        replies.push(push3(kind, Some(t.clone()), subs.count()));
    }
    if targets.is_empty() {
        replies.push(push3(kind, None, subs.count()));
    }
    let mb = subs.mailbox.clone();
    let ops: Vec<(usize, PubsubOp)> = if patterns {
        (0..local.shards)
            .map(|s| {
                let op = if subscribe {
                    PubsubOp::PSubscribe(id, targets.clone(), mb.clone())
                } else {
                    PubsubOp::PUnsubscribe(id, targets.clone())
                };
                (s, op)
            })
            .collect()
    } else {
        by_owner(local, &targets)
            .into_iter()
            .map(|(s, chans)| {
                let op = if subscribe {
                    PubsubOp::Subscribe(id, chans, mb.clone())
                } else {
                    PubsubOp::Unsubscribe(id, chans)
                };
                (s, op)
            })
            .collect()
    };
    after(local, ops, Outcome::Several(replies))
}

/// `PUBLISH channel message`: one log entry on the channel's shard; answers how many
/// connections of this node receive it.
pub(super) fn publish(local: &Rc<Local>, channel: Bytes, message: Bytes) -> Pending {
    let owner = shard_of(&channel, local.shards);
    let local = local.clone();
    Pending::Waiting(Box::pin(async move {
        let cmd = Command::Publish {
            channel: channel.clone(),
            message,
        };
        if let Err(e) = local.command(owner, cmd).await {
            return err(e);
        }
        match local.pubsub(owner, PubsubOp::Receivers(channel)).await {
            Some(PubsubAnswer::Count(n)) => Outcome::Int(n as i64),
            _ => Outcome::Int(0),
        }
    }))
}

/// `PUBSUB CHANNELS [pattern] | NUMSUB [channel …] | NUMPAT`, about this node's
/// connections.
pub(super) fn pubsub(local: &Rc<Local>, args: &[Bytes]) -> Pending {
    let sub = args
        .first()
        .map(|s| String::from_utf8_lossy(s).to_ascii_uppercase())
        .unwrap_or_default();
    let local = local.clone();
    match (sub.as_str(), args.len()) {
        ("CHANNELS", 1 | 2) => {
            let pattern = args.get(1).cloned();
            Pending::Waiting(Box::pin(async move {
                let mut all = Vec::new();
                for s in 0..local.shards {
                    if let Some(PubsubAnswer::Channels(chans)) =
                        local.pubsub(s, PubsubOp::Channels(pattern.clone())).await
                    {
                        all.extend(chans.into_iter().map(Some));
                    }
                }
                Outcome::Array(all)
            }))
        }
        ("NUMSUB", _) => {
            let channels = args[1..].to_vec();
            Pending::Waiting(Box::pin(async move {
                let mut out = Vec::with_capacity(2 * channels.len());
                for ch in channels {
                    let owner = shard_of(&ch, local.shards);
                    let n = match local
                        .pubsub(owner, PubsubOp::NumSub(vec![ch.clone()]))
                        .await
                    {
                        Some(PubsubAnswer::Counts(c)) => c.first().copied().unwrap_or(0),
                        _ => 0,
                    };
                    out.push(Outcome::Bulk(Some(ch)));
                    out.push(Outcome::Int(n as i64));
                }
                Outcome::Nested(out)
            }))
        }
        ("NUMPAT", 1) => Pending::Waiting(Box::pin(async move {
            // Every shard holds every pattern: this one answers for the node.
            let s = local.shard.index;
            match local.pubsub(s, PubsubOp::NumPat).await {
                Some(PubsubAnswer::Count(n)) => Outcome::Int(n as i64),
                _ => Outcome::Int(0),
            }
        })),
        _ => Pending::Ready(Outcome::Error(format!(
            "ERR unknown or unsupported PUBSUB subcommand '{}' (corepax answers CHANNELS, \
             NUMSUB, NUMPAT)",
            sub.to_ascii_lowercase()
        ))),
    }
}

/// The keys and the version of `COREPAX.WATCH key [key …] [FROM version]`.
fn watch_args(args: &[Bytes]) -> Result<(Vec<Bytes>, Option<u64>), String> {
    let n = args.len();
    let (keys, from) = if n >= 3 && args[n - 2].eq_ignore_ascii_case(b"FROM") {
        let v = std::str::from_utf8(&args[n - 1])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| {
                format!(
                    "ERR FROM takes a version (a non-negative integer), not '{}'",
                    String::from_utf8_lossy(&args[n - 1])
                )
            })?;
        (&args[..n - 2], Some(v))
    } else {
        (args, None)
    };
    if keys.is_empty() {
        return Err("ERR wrong number of arguments for 'corepax.watch' command".into());
    }
    Ok((keys.to_vec(), from))
}

/// `COREPAX.WATCH key [key …] [FROM version]`: the connection receives a push for each
/// change of the keys (all in one shard), first those retained after `version`, then
/// each as this replica applies it.
pub(super) fn watch(local: &Rc<Local>, conn: &mut Conn, args: &[Bytes]) -> Pending {
    let (keys, from) = match watch_args(args) {
        Ok(parsed) => parsed,
        Err(e) => return Pending::Ready(Outcome::Error(e)),
    };
    let owners: BTreeSet<usize> = keys.iter().map(|k| shard_of(k, local.shards)).collect();
    if owners.len() > 1 {
        return Pending::Ready(Outcome::Error(format!(
            "CROSSSLOT Keys in request don't hash to the same shard (shards {}): \
             a watch follows one shard's log",
            owners
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let owner = owners.first().copied().unwrap_or(0);
    let subs = conn.subs.get_or_insert_with(Subs::new);
    let id = subs.id;
    let added: Vec<Bytes> = keys
        .iter()
        .filter(|k| subs.watched.borrow_mut().insert((*k).clone()))
        .cloned()
        .collect();
    let watched = subs.watched.clone();
    let op = PubsubOp::Watch {
        conn: id,
        keys,
        from,
        mailbox: subs.mailbox.clone(),
    };
    let local = local.clone();
    Pending::Waiting(Box::pin(async move {
        let refused = |e: String| {
            let mut w = watched.borrow_mut();
            for k in &added {
                w.remove(k);
            }
            Outcome::Error(e)
        };
        match local.pubsub(owner, op).await {
            Some(PubsubAnswer::Watching(Ok(after))) => Outcome::Push(vec![
                Outcome::Bulk(Some(Bytes::from_static(b"watch"))),
                Outcome::Int(i64::try_from(after).unwrap_or(i64::MAX)),
                Outcome::Int(watched.borrow().len() as i64),
            ]),
            Some(PubsubAnswer::Watching(Err(c @ Compacted { .. }))) => refused(c.to_string()),
            _ => refused(format!("ERR shard {owner} is gone")),
        }
    }))
}

/// `COREPAX.UNWATCH`: ends every key watch of the connection.
pub(super) fn unwatch(local: &Rc<Local>, conn: &mut Conn) -> Pending {
    let Some(subs) = conn.subs.as_mut() else {
        return Pending::Ready(Outcome::Simple("OK"));
    };
    let id = subs.id;
    subs.watched.borrow_mut().clear();
    let ops = (0..local.shards)
        .map(|s| (s, PubsubOp::Unwatch(id)))
        .collect();
    after(local, ops, Outcome::Simple("OK"))
}

/// `PING` in RESP2 subscribe mode: Redis answers a push-shaped `pong`.
pub(super) fn ping_in_push_mode(args: &[Bytes]) -> Outcome {
    Outcome::Push(vec![
        Outcome::Bulk(Some(Bytes::from_static(b"pong"))),
        Outcome::Bulk(Some(args.first().cloned().unwrap_or_default())),
    ])
}

/// Forgets every subscription and watch of a connection that closed or reset, on every
/// shard (in the background: nobody waits for it).
fn forget(local: &Rc<Local>, id: u64) {
    let local = local.clone();
    glommio::spawn_local(async move {
        for s in 0..local.shards {
            let _ = local.pubsub(s, PubsubOp::Forget(id)).await;
        }
    })
    .detach();
}

/// `RESET`: the connection as it was when it connected (authenticated stays as it is):
/// no transaction, no `WATCH`, no subscription or key watch, RESP2.
pub(super) fn reset(local: &Rc<Local>, conn: &mut Conn) -> Pending {
    conn.txn = None;
    conn.watch = None;
    conn.proto = Proto::Resp2;
    if let Some(subs) = conn.subs.take() {
        forget(local, subs.id);
    }
    Pending::Ready(Outcome::Simple("RESET"))
}

/// Forgets the subscriptions of a connection that closed.
pub(super) fn closed(local: &Rc<Local>, conn: &mut Conn) {
    if let Some(subs) = conn.subs.take() {
        forget(local, subs.id);
    }
}
