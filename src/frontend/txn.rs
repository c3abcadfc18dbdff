//! Transactions: `MULTI`, `EXEC`, `DISCARD`, and optimistic locking with `WATCH` and
//! `UNWATCH`.
//!
//! `EXEC` submits the queued commands as one [`Command::Multi`]: one log entry, applied
//! with nothing between its commands. `WATCH` reads its keys' versions through the log
//! (the slot that last wrote each, as `COREPAX.VERSION` answers); a transaction after it
//! carries them as conditions ([`Command::Watched`]) that the state machine checks when
//! it applies the entry, so "no watched key changed since WATCH" is decided at one point
//! of the log, on every replica alike.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;

use super::commands::{Outcome, Pending, err, owner_of, start_on};
use super::conn::{Conn, Txn, Watch, WatchRead};
use super::parse::Shape;
use crate::protocol::{Command, Reply};
use crate::runtime::node::Local;

/// `MULTI`, `EXEC` and `DISCARD`.
pub(super) fn transaction(local: &Rc<Local>, conn: &mut Conn, name: &str) -> Pending {
    let ready = |o| Pending::Ready(o);
    let open = conn.txn.take();
    if name == "MULTI" {
        let nested = open.is_some();
        conn.txn = Some(open.unwrap_or_default());
        return ready(if nested {
            Outcome::Error("ERR MULTI calls can not be nested".into())
        } else {
            Outcome::Simple("OK")
        });
    }
    let Some(txn) = open else {
        return ready(Outcome::Error(format!("ERR {name} without MULTI")));
    };
    // EXEC and DISCARD end the watch, whatever the outcome (as in Redis).
    let watch = conn.watch.take();
    if name == "DISCARD" {
        return ready(Outcome::Simple("OK"));
    }
    if txn.failed {
        return ready(Outcome::Error(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    match watch {
        Some(watch) => exec_watched(local, txn, watch),
        None if txn.queued.is_empty() => ready(Outcome::Nested(Vec::new())),
        None => exec(local, txn),
    }
}

/// Splits queued commands from the shapes of their replies.
fn unzip(txn: Txn) -> (Vec<Command>, Vec<Shape>) {
    txn.queued.into_iter().map(|p| (p.cmd, p.shape)).unzip()
}

/// The answer to a transaction's replies.
fn shaped(reply: Result<Reply, crate::runtime::shard::SubmitError>, shapes: Vec<Shape>) -> Outcome {
    match reply {
        Ok(Reply::Multi(rs)) if rs.len() == shapes.len() => Outcome::Nested(
            rs.into_iter()
                .zip(shapes)
                .map(|(r, shape)| shape(r))
                .collect(),
        ),
        // A watched key changed: nothing was applied.
        Ok(Reply::Value(None)) => Outcome::NullArray,
        Ok(other) => Outcome::Error(format!("ERR unexpected reply {other:?}")),
        Err(e) => err(e),
    }
}

/// `EXEC` without a watch.
fn exec(local: &Rc<Local>, txn: Txn) -> Pending {
    let (cmds, shapes) = unzip(txn);
    let cmd = Command::Multi(cmds);
    let owner = match owner_of(local, &cmd) {
        Ok(owner) => owner,
        Err(e) => return Pending::Ready(e),
    };
    let fut = start_on(local, owner, cmd);
    Pending::Waiting(Box::pin(async move { shaped(fut.await, shapes) }))
}

/// `EXEC` after `WATCH`: the transaction and its watched keys in one shard, submitted
/// once every `WATCH` before it has read its versions (a pipeline's replies are awaited
/// in order, so they have by the time this runs).
fn exec_watched(local: &Rc<Local>, txn: Txn, watch: Watch) -> Pending {
    let (cmds, shapes) = unzip(txn);
    let mut names_keys = false;
    Command::Multi(cmds.clone()).for_each_key(&mut |_| names_keys = true);
    let owner = match owner_of(local, &Command::Multi(cmds.clone())) {
        // A transaction without keys (empty, or `UNWATCH` alone) runs where the watch is.
        Ok(owner) if !names_keys || owner == watch.shard => watch.shard,
        Ok(owner) => return Pending::Ready(crossslot(&[owner, watch.shard])),
        Err(e) => return Pending::Ready(e),
    };
    let local = local.clone();
    Pending::Waiting(Box::pin(async move {
        let mut versions = Vec::new();
        for read in &watch.reads {
            match read.borrow().as_ref() {
                Some(v) => versions.extend(v.iter().cloned()),
                None => {
                    return Outcome::Error(
                        "EXECABORT a WATCH before this transaction failed, so nothing was \
                         applied: WATCH again"
                            .into(),
                    );
                }
            }
        }
        let cmd = Command::Watched { versions, cmds };
        shaped(start_on(&local, owner, cmd).await, shapes)
    }))
}

/// Redis Cluster's refusal of keys in several slots, naming the shards.
fn crossslot(shards: &[usize]) -> Outcome {
    let mut shards = shards.to_vec();
    shards.sort_unstable();
    shards.dedup();
    Outcome::Error(format!(
        "CROSSSLOT Keys in request don't hash to the same shard (shards {}): a transaction \
         and the keys it watches run in one shard (give them one hash tag, e.g. {{user:7}})",
        shards
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `WATCH key [key …]`: reads the keys' versions through the log; the next `EXEC`
/// applies only if none changed. Every key watched by a connection lives in one shard.
pub(super) fn watch(local: &Rc<Local>, conn: &mut Conn, keys: &[Bytes]) -> Pending {
    if conn.txn.is_some() {
        return Pending::Ready(Outcome::Error(
            "ERR WATCH inside MULTI is not allowed".into(),
        ));
    }
    if keys.is_empty() {
        return Pending::Ready(Outcome::Error(
            "ERR wrong number of arguments for 'watch' command".into(),
        ));
    }
    let cmd = Command::Multi(keys.iter().map(|k| Command::Version(k.clone())).collect());
    let owner = match owner_of(local, &cmd) {
        Ok(owner) => owner,
        Err(e) => return Pending::Ready(e),
    };
    if let Some(w) = &conn.watch
        && w.shard != owner
    {
        return Pending::Ready(crossslot(&[owner, w.shard]));
    }
    let read: WatchRead = Rc::new(RefCell::new(None));
    conn.watch
        .get_or_insert_with(|| Watch {
            shard: owner,
            reads: Vec::new(),
        })
        .reads
        .push(read.clone());
    let fut = start_on(local, owner, cmd);
    let keys = keys.to_vec();
    Pending::Waiting(Box::pin(async move {
        match fut.await {
            Ok(Reply::Multi(rs)) if rs.len() == keys.len() => {
                let versions = keys
                    .into_iter()
                    .zip(rs)
                    .map(|(k, r)| match r {
                        Reply::Int(v) => (k, u64::try_from(v).ok()),
                        _ => (k, None),
                    })
                    .collect();
                *read.borrow_mut() = Some(versions);
                Outcome::Simple("OK")
            }
            Ok(other) => Outcome::Error(format!("ERR unexpected reply {other:?}")),
            Err(e) => err(e),
        }
    }))
}
