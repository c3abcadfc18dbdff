//! Redis data commands read into state-machine commands: one [`Command`] each, with the
//! shape its reply takes on the wire. Used alone and inside `MULTI`, so a command means
//! the same in both.

use bytes::Bytes;

use super::commands::Outcome;
use crate::protocol::kv::SetCond;
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
/// `name` is not one, `Some(Err(text))` for a usage error (nothing is submitted).
pub fn data_command(name: &str, args: &[Bytes]) -> Option<Result<Parsed, String>> {
    let plain = |cmd| {
        Ok(Parsed {
            cmd,
            shape: reply_outcome,
        })
    };
    let n = args.len();
    let key = || args[0].clone();
    Some(match name {
        "GET" if n == 1 => plain(Command::Get(key())),
        "SET" if n == 2 => plain(Command::Set(key(), args[1].clone())),
        "SET" if n > 2 => set_with_options(key(), args[1].clone(), &args[2..]),
        "SETNX" if n == 2 => Ok(Parsed {
            cmd: Command::SetIf {
                key: key(),
                value: args[1].clone(),
                cond: SetCond::Absent,
                get: false,
            },
            shape: set_or_not,
        }),
        "GETDEL" if n == 1 => plain(Command::GetDel(key())),
        "INCR" if n == 1 => plain(Command::IncrBy(key(), 1)),
        "DECR" if n == 1 => plain(Command::IncrBy(key(), -1)),
        "INCRBY" if n == 2 => parse_int(&args[1]).map(|by| Parsed {
            cmd: Command::IncrBy(key(), by),
            shape: reply_outcome,
        }),
        "DECRBY" if n == 2 => match parse_int(&args[1]).map(i64::checked_neg) {
            Ok(Some(by)) => plain(Command::IncrBy(key(), by)),
            Ok(None) => Err("ERR decrement would overflow".into()),
            Err(e) => Err(e),
        },
        "DELIFEQ" if n == 2 => plain(Command::DelIfEq(key(), args[1].clone())),
        "COREPAX.VERSION" if n == 1 => plain(Command::Version(key())),
        "DEL" | "UNLINK" if n >= 1 => plain(Command::Del(args.to_vec())),
        "EXISTS" if n >= 1 => plain(Command::Exists(args.to_vec())),
        "MGET" if n >= 1 => plain(Command::MGet(args.to_vec())),
        "MSET" if n >= 2 && n.is_multiple_of(2) => plain(Command::MSet(
            args.chunks_exact(2)
                .map(|kv| (kv[0].clone(), kv[1].clone()))
                .collect(),
        )),
        "GET" | "SET" | "SETNX" | "GETDEL" | "INCR" | "DECR" | "INCRBY" | "DECRBY" | "DELIFEQ"
        | "COREPAX.VERSION" | "DEL" | "UNLINK" | "EXISTS" | "MGET" | "MSET" => Err(format!(
            "ERR wrong number of arguments for '{}' command",
            name.to_ascii_lowercase()
        )),
        _ => return None,
    })
}

/// `SET key value [NX | XX | IFEQ old] [GET]`; expiry options are named in the error
/// until expiry through the log exists.
fn set_with_options(key: Bytes, value: Bytes, opts: &[Bytes]) -> Result<Parsed, String> {
    let mut cond = SetCond::Always;
    let mut get = false;
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
            "EX" | "PX" | "EXAT" | "PXAT" | "KEEPTTL" => {
                return Err(format!(
                    "ERR SET option {opt} is not supported: corepax has no key expiry yet"
                ));
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
        cmd: Command::SetIf {
            key,
            value,
            cond,
            get,
        },
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
        data_command(name, &args(words))
            .expect("a data command")
            .map(|p| p.cmd)
    }

    #[test]
    fn set_options() {
        let set = |cond, get| {
            Ok(Command::SetIf {
                key: "k".into(),
                value: "v".into(),
                cond,
                get,
            })
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
        let e = cmd("SET", &["k", "v", "PX", "100"]).unwrap_err();
        assert!(e.contains("PX"), "{e}");
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
        assert!(data_command("PING", &[]).is_none());
    }

    #[test]
    fn setnx_answers_one_or_zero() {
        let p = data_command("SETNX", &args(&["k", "v"])).unwrap().unwrap();
        assert!(matches!((p.shape)(Reply::Ok), Outcome::Int(1)));
        assert!(matches!((p.shape)(Reply::Value(None)), Outcome::Int(0)));
    }
}
