//! `SCAN` and `KEYS` over the node's shards.
//!
//! Both read this replica's applied state of each shard, like `DBSIZE`, not through the
//! log: in no read mode are they linearizable (Redis's are not either, on a replica or
//! across a cluster). A `SCAN` cursor names a shard (its top 16 bits) and a position in
//! that shard's walk ([`crate::protocol::Kv::scan`]); the shards are walked one after
//! the other, and cursor 0 both starts and ends.

use std::rc::Rc;

use bytes::Bytes;

use super::commands::{Outcome, Pending};
use crate::protocol::item::Kind;
use crate::runtime::node::Local;

/// The bits of a cursor below the shard.
const SHARD_SHIFT: u32 = 48;
/// Keys a `SCAN` step visits when `COUNT` is not given (Redis's default).
const COUNT_DEFAULT: usize = 10;
/// The types `TYPE` may name (Redis's); keys here hold strings or lists, so the others
/// match none.
const TYPES: [&[u8]; 6] = [b"string", b"list", b"set", b"zset", b"hash", b"stream"];

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`.
pub(super) fn scan(local: &Rc<Local>, args: &[Bytes]) -> Pending {
    let ready = |e: String| Pending::Ready(Outcome::Error(e));
    let Some(cursor) = std::str::from_utf8(&args[0])
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .filter(|c| ((c >> SHARD_SHIFT) as usize) < local.shards)
    else {
        return ready("ERR invalid cursor".into());
    };
    // `kind`: only keys of that kind; `none`: a type no key here has.
    let (mut pattern, mut count, mut kind, mut none) = (None, COUNT_DEFAULT, None, false);
    for pair in args[1..].chunks(2) {
        let [name, value] = pair else {
            return ready("ERR syntax error".into());
        };
        if name.eq_ignore_ascii_case(b"MATCH") {
            pattern = Some(value.clone());
        } else if name.eq_ignore_ascii_case(b"COUNT") {
            match std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
            {
                Some(n) if n >= 1 => count = n,
                _ => return ready("ERR value is not an integer or out of range".into()),
            }
        } else if name.eq_ignore_ascii_case(b"TYPE") {
            let t = value.to_ascii_lowercase();
            if !TYPES.contains(&t.as_slice()) {
                return ready(format!(
                    "ERR unknown type name '{}'",
                    String::from_utf8_lossy(value)
                ));
            }
            kind = [Kind::String, Kind::List]
                .into_iter()
                .find(|k| k.name().as_bytes() == t.as_slice());
            none = kind.is_none();
        } else {
            return ready(format!(
                "ERR syntax error: unknown SCAN option '{}' (MATCH, COUNT, TYPE)",
                String::from_utf8_lossy(name)
            ));
        }
    }
    let shard = (cursor >> SHARD_SHIFT) as usize;
    let within = cursor & ((1 << SHARD_SHIFT) - 1);
    let local = local.clone();
    Pending::Waiting(Box::pin(async move {
        let Some((keys, next)) = local.scan(shard, within, Some(count), pattern, kind).await else {
            return Outcome::Error(format!("ERR shard {shard} is gone"));
        };
        let next = match next {
            0 if shard + 1 < local.shards => ((shard + 1) as u64) << SHARD_SHIFT,
            0 => 0,
            n => ((shard as u64) << SHARD_SHIFT) | n,
        };
        let keys = if none { Vec::new() } else { keys };
        Outcome::Nested(vec![
            Outcome::Bulk(Some(Bytes::from(next.to_string()))),
            Outcome::Array(keys.into_iter().map(Some).collect()),
        ])
    }))
}

/// `KEYS pattern`: every key of every shard that matches, in one answer (it walks every
/// key, as in Redis: meant for small data sets and debugging; `SCAN` walks in steps).
pub(super) fn keys(local: &Rc<Local>, pattern: &Bytes) -> Pending {
    let local = local.clone();
    let pattern = pattern.clone();
    Pending::Waiting(Box::pin(async move {
        let mut all = Vec::new();
        for s in 0..local.shards {
            match local.scan(s, 0, None, Some(pattern.clone()), None).await {
                Some((keys, _)) => all.extend(keys.into_iter().map(Some)),
                None => return Outcome::Error(format!("ERR shard {s} is gone")),
            }
        }
        Outcome::Array(all)
    }))
}
