//! Redis data commands read into state-machine commands: one [`Command`] each, with the
//! shape its reply takes on the wire. Used alone and inside `MULTI`, so a command means
//! the same in both.

use bytes::Bytes;

use super::commands::Outcome;
use crate::protocol::expiry::{ExpireIf, Ttl};
use crate::protocol::kv::{SetCond, SetIf};
use crate::protocol::{Command, Reply};

/// How a reply of the state machine is written for one client command.
pub type Shape = fn(Reply) -> Outcome;

/// A data command ready to submit: what the log applies and how its reply is written.
pub struct Parsed {
    /// The command.
    pub cmd: Command,
    /// Its reply as the client expects it (e.g. `SETNX` answers 1/0 where the state
    /// machine answers `OK`/nil).
    pub shape: Shape,
}

/// The usual shape: each reply as it is.
pub fn reply_outcome(r: Reply) -> Outcome {
    match r {
        Reply::Ok => Outcome::Simple("OK"),
        Reply::Value(v) => Outcome::Bulk(v),
        Reply::Int(n) => Outcome::Int(n),
        Reply::Values(vs) => Outcome::Array(vs),
        Reply::Error(e) => Outcome::Error(e.to_string()),
        Reply::Multi(rs) => Outcome::Nested(rs.into_iter().map(reply_outcome).collect()),
        Reply::Ints(ns) => Outcome::Nested(ns.into_iter().map(Outcome::Int).collect()),
    }
}

/// `TTL`: the state machine's milliseconds, rounded to seconds as Redis rounds them.
fn seconds_left(r: Reply) -> Outcome {
    match r {
        Reply::Int(ms) if ms >= 0 => Outcome::Int((ms + 500) / 1000),
        other => reply_outcome(other),
    }
}

/// `SETNX`: 1 if set, 0 if the key existed.
fn set_or_not(r: Reply) -> Outcome {
    match r {
        Reply::Ok => Outcome::Int(1),
        Reply::Value(None) => Outcome::Int(0),
        other => reply_outcome(other),
    }
}

fn syntax() -> String {
    "ERR syntax error".into()
}

fn not_integer() -> String {
    "ERR value is not an integer or out of range".into()
}

fn parse_int(arg: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(not_integer)
}

/// Reads `name args…` (name upper-cased, `args` without it) as a data command: `None` if
/// `name` is not one (`args` untouched), `Some(Err(text))` for a usage error (nothing is
/// submitted). A command made moves the arguments it holds out of `args` (left empty):
/// a clone of a freshly decoded argument would allocate its shared handle (bytes'
/// `Bytes` promotes a vector on its first clone), two per SET.
pub fn data_command(name: &str, args: &mut [Bytes]) -> Option<Result<Parsed, String>> {
    let plain = |cmd| {
        Ok(Parsed {
            cmd,
            shape: reply_outcome,
        })
    };
    let n = args.len();
    Some(match name {
        "GET" if n == 1 => plain(Command::Get(take(&mut args[0]))),
        "SET" if n == 2 => plain(Command::Set(take(&mut args[0]), take(&mut args[1]))),
        "SET" if n > 2 => set_with_options(take(&mut args[0]), take(&mut args[1]), &args[2..]),
        "SETNX" if n == 2 => Ok(Parsed {
            cmd: Command::SetIf(Box::new(SetIf {
                key: take(&mut args[0]),
                value: take(&mut args[1]),
                cond: SetCond::Absent,
                get: false,
                ttl: Ttl::Clear,
            })),
            shape: set_or_not,
        }),
        "SETEX" | "PSETEX" if n == 3 => {
            let unit = if name == "SETEX" { 1000 } else { 1 };
            expire_time(&args[1], unit, name).map(|ms| Parsed {
                cmd: Command::SetIf(Box::new(SetIf {
                    key: take(&mut args[0]),
                    value: take(&mut args[2]),
                    cond: SetCond::Always,
                    get: false,
                    ttl: Ttl::In(ms),
                })),
                shape: reply_outcome,
            })
        }
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" if (2..=3).contains(&n) => {
            expire(name, take(&mut args[0]), &args[1..])
        }
        "PERSIST" if n == 1 => plain(Command::Expire {
            key: take(&mut args[0]),
            ttl: Ttl::Clear,
            cond: ExpireIf::Always,
        }),
        "PTTL" if n == 1 => plain(Command::Ttl(take(&mut args[0]))),
        "TTL" if n == 1 => Ok(Parsed {
            cmd: Command::Ttl(take(&mut args[0])),
            shape: seconds_left,
        }),
        "GETDEL" if n == 1 => plain(Command::GetDel(take(&mut args[0]))),
        "INCR" if n == 1 => plain(Command::IncrBy(take(&mut args[0]), 1)),
        "DECR" if n == 1 => plain(Command::IncrBy(take(&mut args[0]), -1)),
        "INCRBY" if n == 2 => parse_int(&args[1]).map(|by| Parsed {
            cmd: Command::IncrBy(take(&mut args[0]), by),
            shape: reply_outcome,
        }),
        "DECRBY" if n == 2 => match parse_int(&args[1]).map(i64::checked_neg) {
            Ok(Some(by)) => plain(Command::IncrBy(take(&mut args[0]), by)),
            Ok(None) => Err("ERR decrement would overflow".into()),
            Err(e) => Err(e),
        },
        "DELIFEQ" if n == 2 => plain(Command::DelIfEq(take(&mut args[0]), take(&mut args[1]))),
        "COREPAX.VERSION" if n == 1 => plain(Command::Version(take(&mut args[0]))),
        "DEL" | "UNLINK" if n >= 1 => plain(Command::Del(args.iter_mut().map(take).collect())),
        "EXISTS" if n >= 1 => plain(Command::Exists(args.iter_mut().map(take).collect())),
        "MGET" if n >= 1 => plain(Command::MGet(args.iter_mut().map(take).collect())),
        "MSET" if n >= 2 && n.is_multiple_of(2) => plain(Command::MSet(
            args.chunks_exact_mut(2)
                .map(|kv| (take(&mut kv[0]), take(&mut kv[1])))
                .collect(),
        )),
        "GET" | "SET" | "SETNX" | "GETDEL" | "INCR" | "DECR" | "INCRBY" | "DECRBY" | "DELIFEQ"
        | "COREPAX.VERSION" | "DEL" | "UNLINK" | "EXISTS" | "MGET" | "MSET" | "SETEX"
        | "PSETEX" | "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" | "PERSIST" | "TTL"
        | "PTTL" => Err(format!(
            "ERR wrong number of arguments for '{}' command",
            name.to_ascii_lowercase()
        )),
        _ => return super::lists::list_command(name, args),
    })
}

/// Moves an argument out, leaving an empty one (no allocation either way).
pub(super) fn take(arg: &mut Bytes) -> Bytes {
    std::mem::take(arg)
}

/// Redis's error for a time to live it cannot use, naming the command.
fn invalid_expire(command: &str) -> String {
    format!(
        "ERR invalid expire time in '{}' command",
        command.to_ascii_lowercase()
    )
}

/// A positive time in `unit` milliseconds as a count of milliseconds, or Redis's error.
fn expire_time(arg: &[u8], unit: u64, command: &str) -> Result<u64, String> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .and_then(|t| t.checked_mul(unit))
        .ok_or_else(|| invalid_expire(command))
}

/// `EXPIRE key seconds [NX | XX | GT | LT]` and its millisecond and absolute forms. A
/// time at or before now removes the key, as in Redis.
fn expire(name: &str, key: Bytes, args: &[Bytes]) -> Result<Parsed, String> {
    let t: i64 = parse_int(&args[0])?;
    let unit: i64 = if name.starts_with('P') { 1 } else { 1000 };
    let ms = t.checked_mul(unit).ok_or_else(|| invalid_expire(name))?;
    let ttl = match (name.ends_with("AT"), u64::try_from(ms)) {
        (true, Ok(at)) => Ttl::At(at),
        (false, Ok(ms)) => Ttl::In(ms),
        // Before the epoch, or a negative time to live: already past.
        (_, Err(_)) => Ttl::At(0),
    };
    let cond = match args.get(1).map(|o| o.to_ascii_uppercase()).as_deref() {
        None => ExpireIf::Always,
        Some(b"NX") => ExpireIf::NoDeadline,
        Some(b"XX") => ExpireIf::HasDeadline,
        Some(b"GT") => ExpireIf::Later,
        Some(b"LT") => ExpireIf::Earlier,
        Some(other) => {
            return Err(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(other)
            ));
        }
    };
    Ok(Parsed {
        cmd: Command::Expire { key, ttl, cond },
        shape: reply_outcome,
    })
}

/// `SET key value [NX | XX | IFEQ old] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]`.
fn set_with_options(key: Bytes, value: Bytes, opts: &[Bytes]) -> Result<Parsed, String> {
    let mut cond = SetCond::Always;
    let mut get = false;
    let mut ttl = Ttl::Clear;
    let mut i = 0;
    while i < opts.len() {
        let opt = String::from_utf8_lossy(&opts[i]).to_ascii_uppercase();
        match opt.as_str() {
            "NX" | "XX" | "IFEQ" if cond != SetCond::Always => return Err(syntax()),
            "NX" => cond = SetCond::Absent,
            "XX" => cond = SetCond::Present,
            "IFEQ" => {
                i += 1;
                let old = opts.get(i).ok_or_else(syntax)?;
                cond = SetCond::Equals(old.clone());
            }
            "GET" if get => return Err(syntax()),
            "GET" => get = true,
            "EX" | "PX" | "EXAT" | "PXAT" | "KEEPTTL" if ttl != Ttl::Clear => {
                return Err(syntax());
            }
            "KEEPTTL" => ttl = Ttl::Keep,
            "EX" | "PX" | "EXAT" | "PXAT" => {
                i += 1;
                let arg = opts.get(i).ok_or_else(syntax)?;
                let unit = if opt.starts_with('E') { 1000 } else { 1 };
                let ms = expire_time(arg, unit, "set")?;
                ttl = if opt.ends_with("AT") {
                    Ttl::At(ms)
                } else {
                    Ttl::In(ms)
                };
            }
            _ => {
                return Err(format!(
                    "ERR syntax error: unknown SET option '{}'",
                    String::from_utf8_lossy(&opts[i])
                ));
            }
        }
        i += 1;
    }
    Ok(Parsed {
        cmd: Command::SetIf(Box::new(SetIf {
            key,
            value,
            cond,
            get,
            ttl,
        })),
        shape: reply_outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    fn cmd(name: &str, words: &[&str]) -> Result<Command, String> {
        data_command(name, &mut args(words))
            .expect("a data command")
            .map(|p| p.cmd)
    }

    #[test]
    fn set_options() {
        let set = |cond, get| {
            Ok(Command::SetIf(Box::new(SetIf {
                key: "k".into(),
                value: "v".into(),
                cond,
                get,
                ttl: Ttl::Clear,
            })))
        };
        let set_ttl = |ttl| {
            Ok(Command::SetIf(Box::new(SetIf {
                key: "k".into(),
                value: "v".into(),
                cond: SetCond::Absent,
                get: false,
                ttl,
            })))
        };
        assert_eq!(
            cmd("SET", &["k", "v"]),
            Ok(Command::Set("k".into(), "v".into()))
        );
        assert_eq!(cmd("SET", &["k", "v", "nx"]), set(SetCond::Absent, false));
        assert_eq!(
            cmd("SET", &["k", "v", "XX", "GET"]),
            set(SetCond::Present, true)
        );
        assert_eq!(cmd("SET", &["k", "v", "GET"]), set(SetCond::Always, true));
        assert_eq!(
            cmd("SET", &["k", "v", "IFEQ", "old"]),
            set(SetCond::Equals("old".into()), false)
        );
        assert_eq!(cmd("SET", &["k", "v", "NX", "XX"]), Err(syntax()));
        assert_eq!(cmd("SET", &["k", "v", "GET", "GET"]), Err(syntax()));
        assert_eq!(cmd("SET", &["k", "v", "IFEQ"]), Err(syntax()));
        assert_eq!(
            cmd("SET", &["k", "v", "NX", "PX", "100"]),
            set_ttl(Ttl::In(100))
        );
        assert_eq!(
            cmd("SET", &["k", "v", "EX", "2", "NX"]),
            set_ttl(Ttl::In(2000))
        );
        assert_eq!(
            cmd("SET", &["k", "v", "NX", "EXAT", "5"]),
            set_ttl(Ttl::At(5000))
        );
        assert_eq!(
            cmd("SET", &["k", "v", "NX", "PXAT", "5"]),
            set_ttl(Ttl::At(5))
        );
        assert_eq!(cmd("SET", &["k", "v", "NX", "KEEPTTL"]), set_ttl(Ttl::Keep));
        assert_eq!(cmd("SET", &["k", "v", "EX", "1", "PX", "1"]), Err(syntax()));
        for bad in ["0", "-1", "x", "99999999999999999999"] {
            let e = cmd("SET", &["k", "v", "EX", bad]).unwrap_err();
            assert!(e.contains("invalid expire time in 'set'"), "{bad}: {e}");
        }
        let e = cmd("SET", &["k", "v", "FAST"]).unwrap_err();
        assert!(e.contains("'FAST'"), "{e}");
    }

    #[test]
    fn counters_and_arity() {
        assert_eq!(cmd("INCR", &["c"]), Ok(Command::IncrBy("c".into(), 1)));
        assert_eq!(
            cmd("DECRBY", &["c", "5"]),
            Ok(Command::IncrBy("c".into(), -5))
        );
        assert_eq!(cmd("INCRBY", &["c", "x"]), Err(not_integer()));
        assert!(cmd("DECRBY", &["c", &i64::MIN.to_string()]).is_err());
        let e = cmd("GETDEL", &[]).unwrap_err();
        assert!(e.contains("'getdel'"), "{e}");
        assert!(cmd("MSET", &["a", "1", "b"]).is_err());
        assert!(data_command("PING", &mut []).is_none());
        let exp = |ttl, cond| {
            Ok(Command::Expire {
                key: "k".into(),
                ttl,
                cond,
            })
        };
        assert_eq!(
            cmd("EXPIRE", &["k", "10"]),
            exp(Ttl::In(10_000), ExpireIf::Always)
        );
        assert_eq!(
            cmd("PEXPIRE", &["k", "10", "gt"]),
            exp(Ttl::In(10), ExpireIf::Later)
        );
        assert_eq!(
            cmd("EXPIREAT", &["k", "10", "NX"]),
            exp(Ttl::At(10_000), ExpireIf::NoDeadline)
        );
        assert_eq!(
            cmd("PEXPIRE", &["k", "-5"]),
            exp(Ttl::At(0), ExpireIf::Always)
        );
        assert_eq!(cmd("PERSIST", &["k"]), exp(Ttl::Clear, ExpireIf::Always));
        assert!(
            cmd("EXPIRE", &["k", "10", "SOON"])
                .unwrap_err()
                .contains("SOON")
        );
        assert!(cmd("EXPIRE", &["k", &i64::MAX.to_string()]).is_err());
        let ttl = data_command("TTL", &mut args(&["k"])).unwrap().unwrap();
        assert!(matches!((ttl.shape)(Reply::Int(1_499)), Outcome::Int(1)));
        assert!(matches!((ttl.shape)(Reply::Int(1_500)), Outcome::Int(2)));
        assert!(matches!((ttl.shape)(Reply::Int(-2)), Outcome::Int(-2)));
    }

    #[test]
    fn setnx_answers_one_or_zero() {
        let p = data_command("SETNX", &mut args(&["k", "v"]))
            .unwrap()
            .unwrap();
        assert!(matches!((p.shape)(Reply::Ok), Outcome::Int(1)));
        assert!(matches!((p.shape)(Reply::Value(None)), Outcome::Int(0)));
    }
}
