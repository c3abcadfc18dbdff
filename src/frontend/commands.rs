//! Redis commands: parse arguments, split keys by owning shard, gather the answers.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;

use crate::protocol::{Command, Reply};
use crate::runtime::node::{Local, shard_of};
use crate::runtime::shard::SubmitError;
use crate::wire::resp::{self, Value};

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
    /// Answer `+OK` and close the connection.
    Quit,
}

impl Outcome {
    /// Appends the RESP encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Outcome::Simple(s) => resp::encode_simple(out, s),
            Outcome::Error(e) => resp::encode_error(out, e),
            Outcome::Int(n) => resp::encode_integer(out, *n),
            Outcome::Bulk(b) => resp::encode_bulk(out, b.as_deref()),
            Outcome::Array(items) => {
                resp::encode_array_header(out, Some(items.len()));
                for b in items {
                    resp::encode_bulk(out, b.as_deref());
                }
            }
            Outcome::Quit => resp::encode_simple(out, "OK"),
        }
    }
}

/// A command in progress: answered already, or waiting for its shard(s).
pub enum Pending {
    /// Answered without waiting.
    Ready(Outcome),
    /// Waiting.
    Waiting(Pin<Box<dyn Future<Output = Outcome>>>),
}

impl Pending {
    /// The answer.
    pub async fn finish(self) -> Outcome {
        match self {
            Pending::Ready(o) => o,
            Pending::Waiting(f) => f.await,
        }
    }
}

fn err(e: SubmitError) -> Outcome {
    Outcome::Error(e.to_string())
}

fn wrong_args(name: &str) -> Pending {
    Pending::Ready(Outcome::Error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )))
}

/// Starts a command: routed and submitted before this returns, so a pipeline's commands
/// reach their groups in order and batch together.
pub fn start(local: &Rc<Local>, value: Value) -> Pending {
    let args = match arguments(value) {
        Ok(args) => args,
        Err(e) => return Pending::Ready(e),
    };
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let n = args.len();
    match name.as_str() {
        "GET" if n == 2 => single(local, Command::Get(args[1].clone()), &args[1]),
        "SET" if n == 3 => single(
            local,
            Command::Set(args[1].clone(), args[2].clone()),
            &args[1],
        ),
        "SET" if n > 3 => Pending::Ready(Outcome::Error(
            "ERR syntax error: SET options (EX, PX, NX, XX, ...) are not supported".into(),
        )),
        "DEL" | "UNLINK" | "EXISTS" if n >= 2 => count_keys(local, &name, args[1..].to_vec()),
        "MGET" if n >= 2 => mget(local, args[1..].to_vec()),
        "MSET" if n >= 3 && n % 2 == 1 => mset(local, &args[1..]),
        "PING" if n == 1 => Pending::Ready(Outcome::Simple("PONG")),
        "PING" if n == 2 => Pending::Ready(Outcome::Bulk(Some(args[1].clone()))),
        "ECHO" if n == 2 => Pending::Ready(Outcome::Bulk(Some(args[1].clone()))),
        "QUIT" => Pending::Ready(Outcome::Quit),
        "SELECT" if n == 2 => Pending::Ready(if args[1].as_ref() == b"0" {
            Outcome::Simple("OK")
        } else {
            Outcome::Error("ERR DB index is out of range".into())
        }),
        "CLIENT" => Pending::Ready(Outcome::Simple("OK")),
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
        "COREPAX.MERKLE" | "COREPAX.REPAIR" | "COREPAX.DEBUG" => corepax(local, &name, &args),
        "GET" | "SET" | "DEL" | "UNLINK" | "EXISTS" | "MGET" | "MSET" | "PING" | "ECHO"
        | "SELECT" | "DBSIZE" | "CONFIG" => wrong_args(&name),
        _ => unknown(&args),
    }
}

/// A command's arguments: a non-empty array of bulk strings (simple strings and integers
/// taken as their text), or the error to answer.
fn arguments(value: Value) -> Result<Vec<Bytes>, Outcome> {
    let Value::Array(Some(items)) = value else {
        return Err(Outcome::Error(
            "ERR Protocol error: a command is a non-empty array of bulk strings".into(),
        ));
    };
    if items.is_empty() {
        return Err(Outcome::Error(
            "ERR Protocol error: a command is a non-empty array of bulk strings".into(),
        ));
    }
    let mut args = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Bulk(Some(b)) => args.push(b),
            Value::Simple(s) => args.push(Bytes::from(s)),
            Value::Integer(n) => args.push(Bytes::from(n.to_string())),
            _ => {
                return Err(Outcome::Error(
                    "ERR Protocol error: a command is an array of bulk strings".into(),
                ));
            }
        }
    }
    Ok(args)
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
        "COREPAX.DEBUG" if n == 3 && args[1].eq_ignore_ascii_case(b"PARTITION") => {
            if !local.cfg.debug {
                return Pending::Ready(Outcome::Error(
                    "ERR COREPAX.DEBUG is disabled: start the node with --debug".into(),
                ));
            }
            // Cuts (ON) or restores (OFF) the node's links to its peers in both directions,
            // while clients can still reach it: a partitioned replica.
            let on = if args[2].eq_ignore_ascii_case(b"ON") {
                true
            } else if args[2].eq_ignore_ascii_case(b"OFF") {
                false
            } else {
                return Pending::Ready(Outcome::Error(
                    "ERR COREPAX.DEBUG PARTITION takes ON or OFF".into(),
                ));
            };
            let local = local.clone();
            Pending::Waiting(Box::pin(async move {
                local.partition_all(on).await;
                Outcome::Simple("OK")
            }))
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

fn reply_outcome(r: Reply) -> Outcome {
    match r {
        Reply::Ok => Outcome::Simple("OK"),
        Reply::Value(v) => Outcome::Bulk(v),
        Reply::Int(n) => Outcome::Int(n),
        Reply::Values(vs) => Outcome::Array(vs),
    }
}

/// A single-key command.
fn single(local: &Rc<Local>, cmd: Command, key: &[u8]) -> Pending {
    let owner = shard_of(key, local.shards);
    if owner == local.shard.index {
        let fut = local.shard.submit(cmd);
        return Pending::Waiting(Box::pin(async move {
            fut.await.map_or_else(err, reply_outcome)
        }));
    }
    Pending::Waiting(spawned(local, owner, cmd, reply_outcome))
}

/// Runs a command on another shard in its own task, so it starts now, not when awaited.
fn spawned(
    local: &Rc<Local>,
    owner: usize,
    cmd: Command,
    map: fn(Reply) -> Outcome,
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

fn start_on(
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
fn count_keys(local: &Rc<Local>, name: &str, keys: Vec<Bytes>) -> Pending {
    let exists = name == "EXISTS";
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
fn mset(local: &Rc<Local>, args: &[Bytes]) -> Pending {
    let keys: Vec<Bytes> = args.iter().step_by(2).cloned().collect();
    let values: Vec<Bytes> = args.iter().skip(1).step_by(2).cloned().collect();
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
