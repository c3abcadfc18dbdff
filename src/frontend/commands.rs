//! Redis commands: parse arguments, split keys by owning shard, gather the answers.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;

use super::conn::Conn;
use super::parse::{Parsed, Shape, data_command};
use crate::protocol::{Command, Reply};
use crate::runtime::node::{Local, shard_of};
use crate::runtime::shard::{DebugFault, SubmitError, Submitted};
use crate::wire::resp;

/// The answer to one client command.
#[derive(Debug)]
pub enum Outcome {
    /// `+text`
    Simple(&'static str),
    /// `-text`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n bytes`, or the null bulk.
    Bulk(Option<Bytes>),
    /// An array of bulks.
    Array(Vec<Option<Bytes>>),
    /// An array of answers of any kind (`EXEC`).
    Nested(Vec<Outcome>),
    /// The null array (`EXEC` when a watched key changed).
    NullArray,
    /// Names and answers: a RESP3 map, or a flat array of name, answer, … in RESP2.
    Map(Vec<(&'static str, Outcome)>),
    /// Answer `+OK` and close the connection.
    Quit,
    /// A push: an array in RESP2, a `>` push in RESP3 (subscribe confirmations, messages).
    Push(Vec<Outcome>),
    /// Several answers to one command, one after the other (`SUBSCRIBE a b`).
    Several(Vec<Outcome>),
}

/// The RESP version a connection speaks: 2 until `HELLO 3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Proto {
    /// RESP2.
    #[default]
    Resp2,
    /// RESP3: nulls are `_`, maps are maps.
    Resp3,
}

impl Proto {
    /// The version number `HELLO` takes and answers.
    pub fn version(self) -> i64 {
        match self {
            Proto::Resp2 => 2,
            Proto::Resp3 => 3,
        }
    }
}

impl Outcome {
    /// Appends the encoding in `proto`.
    pub fn encode(&self, out: &mut Vec<u8>, proto: Proto) {
        let bulk = |out: &mut Vec<u8>, b: Option<&[u8]>| match (b, proto) {
            (None, Proto::Resp3) => out.extend_from_slice(b"_\r\n"),
            (b, _) => resp::encode_bulk(out, b),
        };
        match self {
            Outcome::Simple(s) => resp::encode_simple(out, s),
            Outcome::Error(e) => resp::encode_error(out, e),
            Outcome::Int(n) => resp::encode_integer(out, *n),
            Outcome::Bulk(b) => bulk(out, b.as_deref()),
            Outcome::Array(items) => {
                resp::encode_array_header(out, Some(items.len()));
                for b in items {
                    bulk(out, b.as_deref());
                }
            }
            Outcome::NullArray => match proto {
                Proto::Resp2 => resp::encode_array_header(out, None),
                Proto::Resp3 => out.extend_from_slice(b"_\r\n"),
            },
            Outcome::Nested(items) => {
                resp::encode_array_header(out, Some(items.len()));
                for o in items {
                    o.encode(out, proto);
                }
            }
            Outcome::Map(pairs) => {
                match proto {
                    Proto::Resp2 => resp::encode_array_header(out, Some(2 * pairs.len())),
                    Proto::Resp3 => {
                        out.push(b'%');
                        out.extend_from_slice(itoa::Buffer::new().format(pairs.len()).as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                }
                for (name, o) in pairs {
                    resp::encode_bulk(out, Some(name.as_bytes()));
                    o.encode(out, proto);
                }
            }
            Outcome::Quit => resp::encode_simple(out, "OK"),
            Outcome::Push(items) => {
                match proto {
                    Proto::Resp2 => resp::encode_array_header(out, Some(items.len())),
                    Proto::Resp3 => {
                        out.push(b'>');
                        out.extend_from_slice(itoa::Buffer::new().format(items.len()).as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                }
                for o in items {
                    o.encode(out, proto);
                }
            }
            Outcome::Several(all) => {
                for o in all {
                    o.encode(out, proto);
                }
            }
        }
    }
}

/// A command in progress: answered already, or waiting for its shard(s).
pub enum Pending {
    /// Answered without waiting.
    Ready(Outcome),
    /// Waiting.
    Waiting(Pin<Box<dyn Future<Output = Outcome>>>),
    /// A blocking pop, waiting: the connection watches for the client going away
    /// meanwhile (dropping this future then cancels the pop).
    Blocking(Pin<Box<dyn Future<Output = Outcome>>>),
    /// Waiting for this shard's group, the reply to be shaped (the common case: no
    /// allocation of its own).
    Submitted(Submitted, Shape),
}

impl Pending {
    /// The answer.
    pub async fn finish(self) -> Outcome {
        match self {
            Pending::Ready(o) => o,
            Pending::Waiting(f) | Pending::Blocking(f) => f.await,
            Pending::Submitted(f, shape) => f.await.map_or_else(err, shape),
        }
    }
}

pub(super) fn err(e: SubmitError) -> Outcome {
    Outcome::Error(e.to_string())
}

fn wrong_args(name: &str) -> Pending {
    Pending::Ready(Outcome::Error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )))
}

/// Starts a command, `args` its name and arguments (a command made takes the arguments it
/// holds out of them): routed and submitted before this returns, so a pipeline's commands
/// reach their groups in order and batch together.
pub fn start(local: &Rc<Local>, conn: &mut Conn, args: &mut [Bytes]) -> Pending {
    let Some(first) = args.first() else {
        return Pending::Ready(Outcome::Error("ERR Protocol error: empty command".into()));
    };
    let mut inline = [0u8; NAME_INLINE_BYTES];
    let owned;
    let name: &str = match upper_inline(first, &mut inline) {
        Some(name) => name,
        None => {
            owned = String::from_utf8_lossy(first).to_ascii_uppercase();
            &owned
        }
    };
    let requirepass = local.cfg.requirepass.as_deref();
    if !conn.authenticated && !matches!(name, "AUTH" | "HELLO" | "QUIT") {
        return Pending::Ready(Outcome::Error(super::conn::NOAUTH.into()));
    }
    let push_mode = conn.subs.as_ref().is_some_and(|s| s.active());
    if push_mode && conn.proto == Proto::Resp2 && !super::pubsub::allowed_in_push_mode(name) {
        return Pending::Ready(super::pubsub::refused_in_push_mode(name));
    }
    if let Some(txn) = conn.txn.as_mut()
        && !matches!(name, "EXEC" | "DISCARD" | "MULTI" | "WATCH" | "QUIT")
    {
        return Pending::Ready(txn.queue(name, &mut args[1..]));
    }
    if let Some(parsed) = data_command(name, &mut args[1..]) {
        return match parsed {
            Ok(p) => route(local, p),
            Err(e) => Pending::Ready(Outcome::Error(e)),
        };
    }
    if let Some(call) = super::lists::blocking_command(name, &args[1..]) {
        return match call {
            Ok(c) => blocking(local, c),
            Err(e) => Pending::Ready(Outcome::Error(e)),
        };
    }
    let n = args.len();
    match name {
        "MULTI" | "EXEC" | "DISCARD" => super::txn::transaction(local, conn, name),
        "WATCH" => super::txn::watch(local, conn, &args[1..]),
        "SCAN" if n >= 2 => super::scan::scan(local, &args[1..]),
        "KEYS" if n == 2 => super::scan::keys(local, &args[1]),
        "UNWATCH" if n == 1 => {
            conn.watch = None;
            Pending::Ready(Outcome::Simple("OK"))
        }
        "HELLO" => Pending::Ready(conn.hello(&args[1..], requirepass)),
        "AUTH" => Pending::Ready(conn.auth(&args[1..], requirepass)),
        "CLIENT" => Pending::Ready(conn.client(&args[1..])),
        "SUBSCRIBE" | "UNSUBSCRIBE" | "PSUBSCRIBE" | "PUNSUBSCRIBE" => {
            super::pubsub::subscription(local, conn, name, &args[1..])
        }
        "PUBLISH" if n == 3 => super::pubsub::publish(local, args[1].clone(), args[2].clone()),
        "PUBSUB" if n >= 2 => super::pubsub::pubsub(local, &args[1..]),
        "COREPAX.WATCH" if n >= 2 => super::pubsub::watch(local, conn, &args[1..]),
        "COREPAX.UNWATCH" if n == 1 => super::pubsub::unwatch(local, conn),
        "RESET" if n == 1 => super::pubsub::reset(local, conn),
        "PING" if n <= 2 && push_mode && conn.proto == Proto::Resp2 => {
            Pending::Ready(super::pubsub::ping_in_push_mode(&args[1..]))
        }
        "PING" if n == 1 => Pending::Ready(Outcome::Simple("PONG")),
        "PING" if n == 2 => Pending::Ready(Outcome::Bulk(Some(args[1].clone()))),
        "ECHO" if n == 2 => Pending::Ready(Outcome::Bulk(Some(args[1].clone()))),
        "QUIT" => Pending::Ready(Outcome::Quit),
        "SELECT" if n == 2 => Pending::Ready(if args[1].as_ref() == b"0" {
            Outcome::Simple("OK")
        } else {
            Outcome::Error("ERR DB index is out of range".into())
        }),
        "COMMAND" => Pending::Ready(Outcome::Array(Vec::new())),
        "CONFIG" if n >= 3 && args[1].eq_ignore_ascii_case(b"GET") => config_get(&args[2..]),
        "DBSIZE" if n == 1 => {
            let local = local.clone();
            Pending::Waiting(Box::pin(async move {
                let keys: usize = local.infos().await.iter().map(|i| i.keys).sum();
                Outcome::Int(keys as i64)
            }))
        }
        "INFO" => {
            let local = local.clone();
            Pending::Waiting(Box::pin(async move {
                Outcome::Bulk(Some(Bytes::from(super::info::info_text(&local).await)))
            }))
        }
        "COREPAX.MERKLE" | "COREPAX.REPAIR" | "COREPAX.DEBUG" => corepax(local, name, args),
        "PING" | "ECHO" | "SELECT" | "DBSIZE" | "CONFIG" | "UNWATCH" | "SCAN" | "KEYS"
        | "PUBLISH" | "PUBSUB" | "COREPAX.WATCH" | "COREPAX.UNWATCH" | "RESET" => wrong_args(name),

        _ => unknown(args),
    }
}

/// Command names up to this long are upper-cased on the stack (every command there is).
const NAME_INLINE_BYTES: usize = 32;

/// `name` in upper case, written into `buf`, if it is ASCII and fits.
fn upper_inline<'a>(name: &[u8], buf: &'a mut [u8; NAME_INLINE_BYTES]) -> Option<&'a str> {
    let out = buf.get_mut(..name.len())?;
    if !name.is_ascii() {
        return None;
    }
    for (o, c) in out.iter_mut().zip(name) {
        *o = c.to_ascii_uppercase();
    }
    std::str::from_utf8(out).ok()
}

/// Before a pipeline's commands start: prefetches the items its `GET`s and `MGET`s read
/// on this shard, so the map's cache misses overlap instead of coming one per command
/// (Valkey 8 does the same for a batch of commands). Only looks; changes nothing; where
/// this replica does not read them soon, nothing (`Shard::prefetch_reads`).
pub fn prefetch_reads<'a>(local: &Local, commands: impl IntoIterator<Item = &'a [Bytes]>) {
    local.shard.prefetch_reads(|each| {
        for args in commands {
            let Some(name) = args.first() else {
                continue;
            };
            if !(name.eq_ignore_ascii_case(b"GET") || name.eq_ignore_ascii_case(b"MGET")) {
                continue;
            }
            for key in &args[1..] {
                if shard_of(key, local.shards) == local.shard.index {
                    each(key);
                }
            }
        }
    });
}

/// The node's own commands: Merkle roots, anti-entropy, and (with `--debug`) local
/// writes and partitions.
fn corepax(local: &Rc<Local>, name: &str, args: &[Bytes]) -> Pending {
    let n = args.len();
    match name {
        "COREPAX.MERKLE" if n >= 2 && args[1].eq_ignore_ascii_case(b"ROOT") => {
            let shard = match args
                .get(2)
                .map(|a| std::str::from_utf8(a).ok()?.parse::<usize>().ok())
            {
                None => None,
                Some(Some(s)) if s < local.shards => Some(s),
                Some(_) => {
                    return Pending::Ready(Outcome::Error(format!(
                        "ERR shard must be 0..{}",
                        local.shards
                    )));
                }
            };
            let local = local.clone();
            Pending::Waiting(Box::pin(async move {
                let roots: Vec<Option<Bytes>> = local
                    .infos()
                    .await
                    .iter()
                    .filter(|i| shard.is_none_or(|s| s == i.index))
                    .map(|i| Some(Bytes::from(format!("{:016x}", i.merkle_root))))
                    .collect();
                Outcome::Array(roots)
            }))
        }
        "COREPAX.REPAIR" if n == 1 => {
            let local = local.clone();
            Pending::Waiting(Box::pin(async move {
                Outcome::Bulk(Some(Bytes::from(local.repair_all().await)))
            }))
        }
        "COREPAX.DEBUG" if n == 4 && args[1].eq_ignore_ascii_case(b"SETLOCAL") => {
            if !local.cfg.debug {
                return Pending::Ready(Outcome::Error(
                    "ERR COREPAX.DEBUG is disabled: start the node with --debug".into(),
                ));
            }
            let owner = shard_of(&args[2], local.shards);
            if owner != local.shard.index {
                // Debug commands stay simple: they run where the connection landed.
                return Pending::Ready(Outcome::Error(format!(
                    "ERR key belongs to shard {owner}; retry (connections are spread over shards)"
                )));
            }
            local.shard.set_local(args[2].clone(), args[3].clone());
            Pending::Ready(Outcome::Simple("OK"))
        }
        "COREPAX.DEBUG"
            if n == 3
                && (args[1].eq_ignore_ascii_case(b"PARTITION")
                    || args[1].eq_ignore_ascii_case(b"DISKFULL")
                    || args[1].eq_ignore_ascii_case(b"HOLDPOPS")) =>
        {
            if !local.cfg.debug {
                return Pending::Ready(Outcome::Error(
                    "ERR COREPAX.DEBUG is disabled: start the node with --debug".into(),
                ));
            }
            // PARTITION cuts (ON) or restores (OFF) the node's links to its peers in both
            // directions, while clients can still reach it: a partitioned replica.
            // DISKFULL makes every shard's WAL syncs fail as on a full disk (ON) or stops.
            // HOLDPOPS holds blocking pops an element woke before they submit their pop.
            let fault = if args[1].eq_ignore_ascii_case(b"PARTITION") {
                DebugFault::Partition
            } else if args[1].eq_ignore_ascii_case(b"DISKFULL") {
                DebugFault::DiskFull
            } else {
                DebugFault::HoldPops
            };
            let on = if args[2].eq_ignore_ascii_case(b"ON") {
                true
            } else if args[2].eq_ignore_ascii_case(b"OFF") {
                false
            } else {
                return Pending::Ready(Outcome::Error(format!(
                    "ERR COREPAX.DEBUG {} takes ON or OFF",
                    String::from_utf8_lossy(&args[1]).to_ascii_uppercase()
                )));
            };
            let local = local.clone();
            Pending::Waiting(Box::pin(async move {
                local.debug_all(fault, on).await;
                Outcome::Simple("OK")
            }))
        }
        "COREPAX.DEBUG" if n == 2 && args[1].eq_ignore_ascii_case(b"HELDPOPS") => {
            Pending::Ready(if local.cfg.debug {
                Outcome::Int(crate::runtime::shard::pops_held() as i64)
            } else {
                Outcome::Error("ERR COREPAX.DEBUG is disabled: start the node with --debug".into())
            })
        }
        _ => unknown(args),
    }
}

/// The answer to an unknown command (or a known one with the wrong arguments), worded as
/// Redis words it.
fn unknown(args: &[Bytes]) -> Pending {
    let mut preview = String::new();
    for a in args.iter().skip(1).take(3) {
        preview.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
    }
    Pending::Ready(Outcome::Error(format!(
        "ERR unknown command '{}', with args beginning with: {preview}",
        String::from_utf8_lossy(&args[0])
    )))
}

/// Runs a blocking pop on the shard of its keys (CROSSSLOT if they are in several).
fn blocking(local: &Rc<Local>, c: super::lists::BlockingCall) -> Pending {
    let owner = match owner_of(local, &c.b.cmd) {
        Ok(owner) => owner,
        Err(e) => return Pending::Ready(e),
    };
    let deadline = c.timeout.map(|t| std::time::Instant::now() + t);
    let local = local.clone();
    let (b, shape) = (c.b, c.shape);
    Pending::Blocking(Box::pin(async move {
        local
            .blocking(owner, b, deadline)
            .await
            .map_or_else(err, shape)
    }))
}

/// Submits a data command: split by owning shard where it names several keys (DEL,
/// EXISTS, MGET and MSET: atomic within a shard, not across shards), else to the shard of
/// its keys.
fn route(local: &Rc<Local>, p: Parsed) -> Pending {
    match p.cmd {
        Command::Del(ks) => count_keys(local, false, ks),
        Command::Exists(ks) => count_keys(local, true, ks),
        Command::MGet(ks) => mget(local, ks),
        Command::MSet(kvs) => mset(local, kvs),
        cmd => match owner_of(local, &cmd) {
            Ok(owner) => on_shard(local, owner, cmd, p.shape),
            Err(e) => Pending::Ready(e),
        },
    }
}

/// The one shard that owns every key of `cmd` (shard 0 for none), or CROSSSLOT naming
/// the shards, as Redis Cluster answers keys of several slots.
pub(super) fn owner_of(local: &Local, cmd: &Command) -> Result<usize, Outcome> {
    // The usual case, one shard, without collecting them.
    let (mut first, mut several) = (None, false);
    cmd.for_each_key(&mut |k| {
        let s = shard_of(k, local.shards);
        several |= *first.get_or_insert(s) != s;
    });
    if !several {
        return Ok(first.unwrap_or(0));
    }
    let mut shards = std::collections::BTreeSet::new();
    cmd.for_each_key(&mut |k| {
        shards.insert(shard_of(k, local.shards));
    });
    match shards.len() {
        0 | 1 => Ok(shards.first().copied().unwrap_or(0)),
        _ => Err(Outcome::Error(format!(
            "CROSSSLOT Keys in request don't hash to the same shard (shards {}): \
             a transaction, LMOVE or blocking pop runs in one shard",
            shards
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Runs `cmd` on shard `owner` and shapes its reply.
fn on_shard(local: &Rc<Local>, owner: usize, cmd: Command, shape: Shape) -> Pending {
    if owner == local.shard.index {
        if let Some(reply) = local.shard.read_now(&cmd) {
            return Pending::Ready(shape(reply));
        }
        return Pending::Submitted(local.shard.submit(cmd), shape);
    }
    Pending::Waiting(spawned(local, owner, cmd, shape))
}

/// Runs a command on another shard in its own task, so it starts now, not when awaited.
fn spawned(
    local: &Rc<Local>,
    owner: usize,
    cmd: Command,
    map: Shape,
) -> Pin<Box<dyn Future<Output = Outcome>>> {
    let l = local.clone();
    let task = glommio::spawn_local(async move { l.command(owner, cmd).await });
    Box::pin(async move { task.await.map_or_else(err, map) })
}

/// Splits keys by owning shard: (shard, positions in the original order, keys).
fn by_shard(local: &Local, keys: Vec<Bytes>) -> Vec<(usize, Vec<usize>, Vec<Bytes>)> {
    let mut groups: Vec<(usize, Vec<usize>, Vec<Bytes>)> = Vec::new();
    for (i, k) in keys.into_iter().enumerate() {
        let s = shard_of(&k, local.shards);
        match groups.iter_mut().find(|g| g.0 == s) {
            Some(g) => {
                g.1.push(i);
                g.2.push(k);
            }
            None => groups.push((s, vec![i], vec![k])),
        }
    }
    groups
}

/// Submits `cmd` to shard `owner`'s group, here or across the mesh.
pub(super) fn start_on(
    local: &Rc<Local>,
    owner: usize,
    cmd: Command,
) -> Pin<Box<dyn Future<Output = Result<Reply, SubmitError>>>> {
    if owner == local.shard.index {
        Box::pin(local.shard.submit(cmd))
    } else {
        let l = local.clone();
        let task = glommio::spawn_local(async move { l.command(owner, cmd).await });
        Box::pin(task)
    }
}

/// DEL, UNLINK and EXISTS: a count summed over shards.
fn count_keys(local: &Rc<Local>, exists: bool, keys: Vec<Bytes>) -> Pending {
    let parts: Vec<_> = by_shard(local, keys)
        .into_iter()
        .map(|(s, _, ks)| {
            let cmd = if exists {
                Command::Exists(ks)
            } else {
                Command::Del(ks)
            };
            start_on(local, s, cmd)
        })
        .collect();
    Pending::Waiting(Box::pin(async move {
        let mut total = 0;
        for p in parts {
            match p.await {
                Ok(Reply::Int(n)) => total += n,
                Ok(other) => return Outcome::Error(format!("ERR unexpected reply {other:?}")),
                Err(e) => return err(e),
            }
        }
        Outcome::Int(total)
    }))
}

/// MGET: values gathered from every owning shard, in the order asked.
fn mget(local: &Rc<Local>, keys: Vec<Bytes>) -> Pending {
    let total = keys.len();
    let parts: Vec<_> = by_shard(local, keys)
        .into_iter()
        .map(|(s, pos, ks)| (pos, start_on(local, s, Command::MGet(ks))))
        .collect();
    Pending::Waiting(Box::pin(async move {
        let mut values = vec![None; total];
        for (pos, p) in parts {
            match p.await {
                Ok(Reply::Values(vs)) if vs.len() == pos.len() => {
                    for (i, v) in pos.into_iter().zip(vs) {
                        values[i] = v;
                    }
                }
                Ok(other) => return Outcome::Error(format!("ERR unexpected reply {other:?}")),
                Err(e) => return err(e),
            }
        }
        Outcome::Array(values)
    }))
}

/// MSET: one MSET per owning shard. Atomic within a shard, not across shards.
fn mset(local: &Rc<Local>, pairs: Vec<(Bytes, Bytes)>) -> Pending {
    let (keys, values): (Vec<Bytes>, Vec<Bytes>) = pairs.into_iter().unzip();
    let parts: Vec<_> = by_shard(local, keys)
        .into_iter()
        .map(|(s, pos, ks)| {
            let pairs = ks
                .into_iter()
                .zip(pos.iter().map(|&i| values[i].clone()))
                .collect();
            start_on(local, s, Command::MSet(pairs))
        })
        .collect();
    Pending::Waiting(Box::pin(async move {
        for p in parts {
            if let Err(e) = p.await {
                return err(e);
            }
        }
        Outcome::Simple("OK")
    }))
}

/// CONFIG GET: the few parameters clients such as redis-benchmark ask for.
fn config_get(patterns: &[Bytes]) -> Pending {
    let known: [(&str, &str); 3] = [("save", ""), ("appendonly", "no"), ("databases", "1")];
    let mut out = Vec::new();
    for p in patterns {
        let p = String::from_utf8_lossy(p).to_ascii_lowercase();
        for (k, v) in known {
            if p == k || p == "*" {
                out.push(Some(Bytes::from_static(k.as_bytes())));
                out.push(Some(Bytes::from_static(v.as_bytes())));
            }
        }
    }
    Pending::Ready(Outcome::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_are_upper_cased_on_the_stack_when_ascii_and_short() {
        let mut buf = [0u8; NAME_INLINE_BYTES];
        assert_eq!(upper_inline(b"set", &mut buf), Some("SET"));
        assert_eq!(upper_inline(b"Client", &mut buf), Some("CLIENT"));
        assert_eq!(upper_inline(b"", &mut buf), Some(""));
        let long = [b'a'; NAME_INLINE_BYTES + 1];
        assert_eq!(
            upper_inline(&long, &mut buf),
            None,
            "too long: the slow path"
        );
        assert_eq!(upper_inline("sét".as_bytes(), &mut buf), None, "not ASCII");
    }
}
