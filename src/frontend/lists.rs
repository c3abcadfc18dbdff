//! Redis list commands read into state-machine commands, and the blocking pops, which
//! wait on the replica of the connection's node (see `runtime::shard::Blocking`).

use std::time::Duration;

use bytes::Bytes;

use super::commands::Outcome;
use super::parse::{Parsed, Shape, reply_outcome, take};
use crate::protocol::kv::{LInsert, LMove, LPos, LRem, LSet};
use crate::protocol::list::End;
use crate::protocol::{Command, Reply};
use crate::runtime::shard::Blocking;

/// A blocking pop ready to run: the pop, how long it may wait, its reply's shape.
pub struct BlockingCall {
    /// The pop and the keys it waits on.
    pub b: Blocking,
    /// `None`: waits until an element comes (`timeout` 0).
    pub timeout: Option<Duration>,
    /// How its reply is written.
    pub shape: Shape,
}

/// Longest timeout a blocking pop takes, in seconds (a year): beyond it, Redis's error.
const TIMEOUT_SECS_MAX: f64 = 365.0 * 24.0 * 3600.0;

fn wrong_args(name: &str) -> String {
    format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )
}

fn int(arg: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "ERR value is not an integer or out of range".to_string())
}

fn end(arg: &[u8]) -> Result<End, String> {
    if arg.eq_ignore_ascii_case(b"LEFT") {
        Ok(End::Left)
    } else if arg.eq_ignore_ascii_case(b"RIGHT") {
        Ok(End::Right)
    } else {
        Err(format!(
            "ERR syntax error: '{}' is not LEFT or RIGHT",
            String::from_utf8_lossy(arg)
        ))
    }
}

/// A blocking pop's timeout in seconds (a decimal, as Redis takes it); 0 waits forever.
fn timeout(arg: &[u8]) -> Result<Option<Duration>, String> {
    let secs: f64 = std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s <= TIMEOUT_SECS_MAX)
        .ok_or_else(|| "ERR timeout is not a float or out of range".to_string())?;
    if secs < 0.0 {
        return Err("ERR timeout is negative".into());
    }
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

/// `TYPE`: the state machine's name as a simple string.
fn type_name(r: Reply) -> Outcome {
    match r {
        Reply::Value(Some(name)) => Outcome::Simple(match name.as_ref() {
            b"string" => "string",
            b"list" => "list",
            _ => "none",
        }),
        other => reply_outcome(other),
    }
}

/// Reads a list command (or `TYPE`): `None` if `name` is not one, `Some(Err(text))` for a
/// usage error (nothing is submitted). Moves the arguments it holds out of `args`, as
/// [`super::parse::data_command`] does.
pub fn list_command(name: &str, args: &mut [Bytes]) -> Option<Result<Parsed, String>> {
    let plain = |cmd| {
        Ok(Parsed {
            cmd,
            shape: reply_outcome,
        })
    };
    let n = args.len();
    let side = |name: &str| {
        if name.starts_with('L') {
            End::Left
        } else {
            End::Right
        }
    };
    Some(match name {
        "LPUSH" | "RPUSH" | "LPUSHX" | "RPUSHX" if n >= 2 => plain(Command::Push {
            key: take(&mut args[0]),
            values: args[1..].iter_mut().map(take).collect(),
            end: side(name),
            existing: name.ends_with('X'),
        }),
        "LPOP" | "RPOP" if n == 1 || n == 2 => {
            let count = match args.get(1).map(|a| int(a)) {
                None => None,
                Some(Ok(c)) if c >= 0 => Some(c as u64),
                Some(Ok(_)) => {
                    return Some(Err("ERR value is out of range, must be positive".into()));
                }
                Some(Err(e)) => return Some(Err(e)),
            };
            plain(Command::Pop {
                key: take(&mut args[0]),
                end: side(name),
                count,
            })
        }
        "LLEN" if n == 1 => plain(Command::LLen(take(&mut args[0]))),
        "TYPE" if n == 1 => Ok(Parsed {
            cmd: Command::Type(take(&mut args[0])),
            shape: type_name,
        }),
        "LRANGE" if n == 3 => (|| {
            plain(Command::LRange {
                key: take(&mut args[0]),
                start: int(&args[1])?,
                stop: int(&args[2])?,
            })
        })(),
        "LINDEX" if n == 2 => int(&args[1]).and_then(|index| {
            plain(Command::LIndex {
                key: take(&mut args[0]),
                index,
            })
        }),
        "LREM" if n == 3 => int(&args[1]).and_then(|count| {
            plain(Command::LRem(Box::new(LRem {
                key: take(&mut args[0]),
                count,
                value: take(&mut args[2]),
            })))
        }),
        "LMOVE" if n == 4 => (|| {
            plain(Command::LMove(Box::new(LMove {
                from: take(&mut args[0]),
                to: take(&mut args[1]),
                from_end: end(&args[2])?,
                to_end: end(&args[3])?,
            })))
        })(),
        "RPOPLPUSH" if n == 2 => plain(Command::LMove(Box::new(LMove {
            from: take(&mut args[0]),
            to: take(&mut args[1]),
            from_end: End::Right,
            to_end: End::Left,
        }))),
        "LSET" if n == 3 => int(&args[1]).and_then(|index| {
            plain(Command::LSet(Box::new(LSet {
                key: take(&mut args[0]),
                index,
                value: take(&mut args[2]),
            })))
        }),
        "LINSERT" if n == 4 => {
            let before = if args[1].eq_ignore_ascii_case(b"BEFORE") {
                true
            } else if args[1].eq_ignore_ascii_case(b"AFTER") {
                false
            } else {
                return Some(Err("ERR syntax error".into()));
            };
            plain(Command::LInsert(Box::new(LInsert {
                key: take(&mut args[0]),
                before,
                pivot: take(&mut args[2]),
                value: take(&mut args[3]),
            })))
        }
        "LTRIM" if n == 3 => (|| {
            plain(Command::LTrim {
                key: take(&mut args[0]),
                start: int(&args[1])?,
                stop: int(&args[2])?,
            })
        })(),
        "LPOS" if n >= 2 => lpos(args).and_then(plain),
        "LPUSH" | "RPUSH" | "LPUSHX" | "RPUSHX" | "LPOP" | "RPOP" | "LLEN" | "TYPE" | "LRANGE"
        | "LINDEX" | "LREM" | "LMOVE" | "RPOPLPUSH" | "LSET" | "LINSERT" | "LTRIM" | "LPOS" => {
            Err(wrong_args(name))
        }
        _ => return None,
    })
}

/// `LPOS key element [RANK rank] [COUNT num] [MAXLEN len]`, options in any order (the last
/// of a repeated one counts), refused with Redis's errors.
fn lpos(args: &mut [Bytes]) -> Result<Command, String> {
    let (mut rank, mut count, mut maxlen) = (1, None, 0);
    let positive = |arg: &[u8], what: &str| {
        int(arg)
            .ok()
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| format!("ERR {what} can't be negative"))
    };
    for opt in args[2..].chunks(2) {
        let [name, value] = opt else {
            return Err("ERR syntax error".into());
        };
        if name.eq_ignore_ascii_case(b"RANK") {
            rank = int(value)?;
            if rank == i64::MIN {
                return Err(format!(
                    "ERR value is out of range, value must between {} and {}",
                    -i64::MAX,
                    i64::MAX
                ));
            }
            if rank == 0 {
                return Err(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 \
                            from the second ... or use negative to start from the end of the list"
                        .into(),
                );
            }
        } else if name.eq_ignore_ascii_case(b"COUNT") {
            count = Some(positive(value, "COUNT")?);
        } else if name.eq_ignore_ascii_case(b"MAXLEN") {
            maxlen = positive(value, "MAXLEN")?;
        } else {
            return Err("ERR syntax error".into());
        }
    }
    Ok(Command::LPos(Box::new(LPos {
        key: take(&mut args[0]),
        value: take(&mut args[1]),
        rank,
        count,
        maxlen,
    })))
}

/// Reads a blocking pop (`BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH`): `None` if `name` is
/// not one. Inside `MULTI` its pop is queued as it is and does not wait, as in Redis.
pub fn blocking_command(name: &str, args: &[Bytes]) -> Option<Result<BlockingCall, String>> {
    let n = args.len();
    let call = |b: Blocking, t: &Bytes| {
        Ok(BlockingCall {
            b,
            timeout: timeout(t)?,
            shape: reply_outcome,
        })
    };
    Some(match name {
        "BLPOP" | "BRPOP" if n >= 2 => {
            let end = if name == "BLPOP" {
                End::Left
            } else {
                End::Right
            };
            call(
                Blocking::pop_first(args[..n - 1].to_vec(), end),
                &args[n - 1],
            )
        }
        "BLMOVE" if n == 5 => match (end(&args[2]), end(&args[3])) {
            (Ok(from_end), Ok(to_end)) => call(
                Blocking::lmove(args[0].clone(), args[1].clone(), from_end, to_end),
                &args[4],
            ),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "BRPOPLPUSH" if n == 3 => call(
            Blocking::lmove(args[0].clone(), args[1].clone(), End::Right, End::Left),
            &args[2],
        ),
        "BLPOP" | "BRPOP" | "BLMOVE" | "BRPOPLPUSH" => Err(wrong_args(name)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    fn cmd(name: &str, words: &[&str]) -> Result<Command, String> {
        list_command(name, &mut args(words))
            .expect("a list command")
            .map(|p| p.cmd)
    }

    #[test]
    fn list_commands_parse_with_redis_errors() {
        assert_eq!(
            cmd("LPUSH", &["q", "a", "b"]),
            Ok(Command::Push {
                key: "q".into(),
                values: args(&["a", "b"]),
                end: End::Left,
                existing: false
            })
        );
        assert!(matches!(
            cmd("RPUSHX", &["q", "a"]),
            Ok(Command::Push {
                end: End::Right,
                existing: true,
                ..
            })
        ));
        assert_eq!(
            cmd("RPOP", &["q", "3"]),
            Ok(Command::Pop {
                key: "q".into(),
                end: End::Right,
                count: Some(3)
            })
        );
        assert!(
            cmd("LPOP", &["q", "-1"])
                .unwrap_err()
                .contains("must be positive")
        );
        assert!(
            cmd("LPOP", &["q", "x"])
                .unwrap_err()
                .contains("not an integer")
        );
        assert_eq!(
            cmd("LRANGE", &["q", "0", "-1"]),
            Ok(Command::LRange {
                key: "q".into(),
                start: 0,
                stop: -1
            })
        );
        assert!(cmd("LRANGE", &["q", "0", "end"]).is_err());
        assert_eq!(
            cmd("LMOVE", &["a", "b", "left", "RIGHT"]),
            Ok(Command::LMove(Box::new(LMove {
                from: "a".into(),
                to: "b".into(),
                from_end: End::Left,
                to_end: End::Right
            })))
        );
        assert!(
            cmd("LMOVE", &["a", "b", "up", "RIGHT"])
                .unwrap_err()
                .contains("'up'")
        );
        assert_eq!(
            cmd("RPOPLPUSH", &["a", "b"]),
            Ok(Command::LMove(Box::new(LMove {
                from: "a".into(),
                to: "b".into(),
                from_end: End::Right,
                to_end: End::Left
            })))
        );
        assert!(cmd("LPUSH", &["q"]).unwrap_err().contains("'lpush'"));
        assert!(cmd("LREM", &["q", "x", "v"]).is_err());
        assert!(list_command("GET", &mut args(&["k"])).is_none());
        let t = list_command("TYPE", &mut args(&["k"])).unwrap().unwrap();
        assert!(matches!(
            (t.shape)(Reply::Value(Some("list".into()))),
            Outcome::Simple("list")
        ));
    }

    #[test]
    fn list_edits_and_lpos_parse_with_redis_errors() {
        assert_eq!(
            cmd("LSET", &["q", "-1", "v"]),
            Ok(Command::LSet(Box::new(LSet {
                key: "q".into(),
                index: -1,
                value: "v".into()
            })))
        );
        assert!(
            cmd("LSET", &["q", "x", "v"])
                .unwrap_err()
                .contains("not an integer")
        );
        assert_eq!(
            cmd("LINSERT", &["q", "after", "p", "v"]),
            Ok(Command::LInsert(Box::new(LInsert {
                key: "q".into(),
                before: false,
                pivot: "p".into(),
                value: "v".into()
            })))
        );
        assert!(matches!(
            cmd("LINSERT", &["q", "BEFORE", "p", "v"]),
            Ok(Command::LInsert(i)) if i.before
        ));
        assert_eq!(
            cmd("LINSERT", &["q", "AROUND", "p", "v"]),
            Err("ERR syntax error".into())
        );
        assert_eq!(
            cmd("LTRIM", &["q", "1", "-1"]),
            Ok(Command::LTrim {
                key: "q".into(),
                start: 1,
                stop: -1
            })
        );
        assert!(cmd("LTRIM", &["q", "1"]).unwrap_err().contains("'ltrim'"));
        assert_eq!(
            cmd("LPOS", &["q", "c"]),
            Ok(Command::LPos(Box::new(LPos {
                key: "q".into(),
                value: "c".into(),
                rank: 1,
                count: None,
                maxlen: 0
            })))
        );
        assert_eq!(
            cmd(
                "LPOS",
                &[
                    "q", "c", "maxlen", "9", "RANK", "-2", "COUNT", "0", "RANK", "3"
                ]
            ),
            Ok(Command::LPos(Box::new(LPos {
                key: "q".into(),
                value: "c".into(),
                rank: 3,
                count: Some(0),
                maxlen: 9
            })))
        );
        let err = |words: &[&str]| cmd("LPOS", words).unwrap_err();
        assert!(err(&["q", "c", "RANK", "0"]).starts_with("ERR RANK can't be zero"));
        assert!(err(&["q", "c", "RANK", "x"]).contains("not an integer"));
        assert!(err(&["q", "c", "RANK", "-9223372036854775808"]).contains("out of range"));
        assert_eq!(
            err(&["q", "c", "COUNT", "-1"]),
            "ERR COUNT can't be negative"
        );
        assert_eq!(
            err(&["q", "c", "MAXLEN", "-1"]),
            "ERR MAXLEN can't be negative"
        );
        assert_eq!(err(&["q", "c", "COUNT"]), "ERR syntax error");
        assert_eq!(err(&["q", "c", "FIRST", "1"]), "ERR syntax error");
        assert!(err(&["q"]).contains("'lpos'"));
    }

    #[test]
    fn blocking_pops_parse_their_timeout() {
        let b = |name: &str, words: &[&str]| blocking_command(name, &args(words)).unwrap();
        let c = b("BLPOP", &["a", "b", "1.5"]).unwrap();
        assert_eq!(c.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(c.b.keys, args(&["a", "b"]));
        assert!(matches!(c.b.cmd, Command::PopFirst { end: End::Left, .. }));
        assert_eq!(b("BRPOP", &["a", "0"]).unwrap().timeout, None);
        assert!(b("BLPOP", &["a", "-1"]).err().unwrap().contains("negative"));
        assert!(
            b("BLPOP", &["a", "soon"])
                .err()
                .unwrap()
                .contains("not a float")
        );
        assert!(b("BLPOP", &["a", "inf"]).is_err());
        assert!(b("BLPOP", &["a"]).err().unwrap().contains("'blpop'"));
        let m = b("BLMOVE", &["src", "dst", "RIGHT", "LEFT", "0"]).unwrap();
        assert_eq!(m.b.keys, args(&["src"]));
        assert!(b("BLMOVE", &["src", "dst", "RIGHT", "UP", "0"]).is_err());
        assert!(matches!(
            b("BRPOPLPUSH", &["s", "d", "2"]).unwrap().b.cmd,
            Command::LMove(m) if m.from_end == End::Right && m.to_end == End::Left
        ));
        assert!(blocking_command("LPOP", &args(&["a"])).is_none());
    }
}
