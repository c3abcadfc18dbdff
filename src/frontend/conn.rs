//! What a client connection remembers between commands: its RESP version (`HELLO`), its
//! name and id (`CLIENT`), the commands queued by `MULTI` and the keys `WATCH`ed.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::commands::{Outcome, Proto};
use super::parse::{Parsed, data_command};
use crate::protocol::Slot;

/// Ids for `CLIENT ID`: unique in the process, never reused.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One client connection's state.
#[derive(Debug)]
pub struct Conn {
    /// The RESP version replies are written in.
    pub proto: Proto,
    /// `CLIENT ID`.
    id: u64,
    /// `CLIENT SETNAME`.
    name: Option<Bytes>,
    /// Commands queued since `MULTI`, if one is open.
    pub(super) txn: Option<Txn>,
    /// Keys watched since `WATCH` (until `EXEC`, `DISCARD` or `UNWATCH`).
    pub(super) watch: Option<Watch>,
    /// The client may run commands: it passed `AUTH`, or no password is required.
    pub(super) authenticated: bool,
    /// Channels, patterns and keys it receives pushes for, once it subscribed or watched.
    pub(super) subs: Option<super::pubsub::Subs>,
}

/// Redis's answer to a command before `AUTH` when a password is required.
pub(super) const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// A transaction being queued.
#[derive(Debug, Default)]
pub(super) struct Txn {
    /// The commands, in order.
    pub(super) queued: Vec<Parsed>,
    /// A command was refused while queueing: `EXEC` discards the transaction.
    pub(super) failed: bool,
}

/// What one `WATCH` read through the log: each key and the slot that last wrote it
/// (`None`: absent); empty until the read answered, and if it failed.
pub(super) type WatchRead = Rc<RefCell<Option<Vec<(Bytes, Option<Slot>)>>>>;

/// The keys a connection watches.
#[derive(Debug)]
pub(super) struct Watch {
    /// The shard every watched key belongs to.
    pub(super) shard: usize,
    /// One read per `WATCH`.
    pub(super) reads: Vec<WatchRead>,
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cmd.fmt(f)
    }
}

impl Default for Conn {
    fn default() -> Conn {
        Conn::new(false)
    }
}

/// Whether `given` is the password `want`, in time that does not depend on where they
/// differ (both are hashed first, so not on their lengths either).
fn password_matches(given: &[u8], want: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(given), Sha256::digest(want.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

/// Checks a user and password against the node's `requirepass` (the only user is
/// `default`): `None` when they are let in, else the error to answer.
fn check_credentials(user: &[u8], pass: &[u8], requirepass: Option<&str>) -> Option<String> {
    let ok = user.eq_ignore_ascii_case(b"default")
        && requirepass.is_none_or(|want| password_matches(pass, want));
    (!ok).then(|| WRONGPASS.to_string())
}

impl Txn {
    /// Queues a command given inside `MULTI`: `QUEUED`, or the error that makes `EXEC`
    /// discard the transaction (as Redis does for a command it cannot queue).
    pub(super) fn queue(&mut self, name: &str, args: &mut [Bytes]) -> Outcome {
        if name == "UNWATCH" {
            return self.queue_unwatch(args);
        }
        let parsed = match data_command(name, args) {
            Some(p) => Some(p),
            // A blocking pop inside a transaction pops without waiting, as in Redis.
            None => super::lists::blocking_command(name, args).map(|b| {
                b.map(|c| Parsed {
                    cmd: c.b.cmd,
                    shape: c.shape,
                })
            }),
        };
        match parsed {
            Some(Ok(p)) => {
                self.queued.push(p);
                Outcome::Simple("QUEUED")
            }
            Some(Err(e)) => {
                self.failed = true;
                Outcome::Error(e)
            }
            None => {
                self.failed = true;
                Outcome::Error(format!(
                    "ERR '{}' cannot run inside MULTI: a transaction holds data commands only",
                    name.to_ascii_lowercase()
                ))
            }
        }
    }

    /// `UNWATCH` inside `MULTI` is queued and does nothing when `EXEC` applies it, as in
    /// Redis: the watch still guards the transaction (its keys are checked before the
    /// commands run) and `EXEC` ends it anyway. Its reply in `EXEC`'s array is `OK`.
    fn queue_unwatch(&mut self, args: &[Bytes]) -> Outcome {
        if !args.is_empty() {
            self.failed = true;
            return Outcome::Error("ERR wrong number of arguments for 'unwatch' command".into());
        }
        self.queued.push(Parsed {
            cmd: crate::protocol::Command::Noop,
            shape: super::parse::reply_outcome,
        });
        Outcome::Simple("QUEUED")
    }
}

impl Conn {
    /// A new connection; with `requires_auth` it must `AUTH` before anything else.
    pub fn new(requires_auth: bool) -> Conn {
        Conn {
            proto: Proto::Resp2,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: None,
            txn: None,
            watch: None,
            authenticated: !requires_auth,
            subs: None,
        }
    }

    /// `AUTH password` or `AUTH user password`, against the node's `requirepass`, as
    /// Redis answers them.
    pub fn auth(&mut self, args: &[Bytes], requirepass: Option<&str>) -> Outcome {
        let (user, pass) = match args {
            [pass] => {
                if requirepass.is_none() {
                    return Outcome::Error(
                        "ERR AUTH <password> called without any password configured for the \
                         default user. Are you sure your configuration is correct?"
                            .into(),
                    );
                }
                (&b"default"[..], pass)
            }
            [user, pass] => (user.as_ref(), pass),
            _ => {
                return Outcome::Error("ERR wrong number of arguments for 'auth' command".into());
            }
        };
        match check_credentials(user, pass, requirepass) {
            None => {
                self.authenticated = true;
                Outcome::Simple("OK")
            }
            Some(e) => Outcome::Error(e),
        }
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`: switches the RESP version and
    /// answers what the server is.
    pub fn hello(&mut self, args: &[Bytes], requirepass: Option<&str>) -> Outcome {
        let mut proto = self.proto;
        let mut rest = args;
        if let Some(v) = args.first() {
            proto = match v.as_ref() {
                b"2" => Proto::Resp2,
                b"3" => Proto::Resp3,
                _ if std::str::from_utf8(v).is_ok_and(|s| s.parse::<i64>().is_ok()) => {
                    return Outcome::Error(
                        "NOPROTO sorry, this protocol version is not supported".into(),
                    );
                }
                _ => {
                    return Outcome::Error(
                        "ERR Protocol version is not an integer or out of range".into(),
                    );
                }
            };
            rest = &args[1..];
        }
        let mut name = None;
        let mut authenticated = self.authenticated;
        while let Some(opt) = rest.first() {
            if opt.eq_ignore_ascii_case(b"AUTH") && rest.len() >= 3 {
                // Only the default user exists: without a password, like redis-server
                // without one, it is let in whatever the password.
                if let Some(e) = check_credentials(&rest[1], &rest[2], requirepass) {
                    return Outcome::Error(e);
                }
                authenticated = true;
                rest = &rest[3..];
            } else if opt.eq_ignore_ascii_case(b"SETNAME") && rest.len() >= 2 {
                name = Some(rest[1].clone());
                rest = &rest[2..];
            } else {
                return Outcome::Error(format!(
                    "ERR syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(opt)
                ));
            }
        }
        if !authenticated {
            return Outcome::Error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise \
                 the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the \
                 client and select the RESP protocol version at the same time"
                    .into(),
            );
        }
        self.authenticated = true;
        self.proto = proto;
        if name.is_some() {
            self.name = name;
        }
        Outcome::Map(vec![
            (
                "server",
                Outcome::Bulk(Some(Bytes::from_static(b"corepax"))),
            ),
            (
                "version",
                Outcome::Bulk(Some(Bytes::from_static(
                    env!("CARGO_PKG_VERSION").as_bytes(),
                ))),
            ),
            ("proto", Outcome::Int(proto.version())),
            ("id", Outcome::Int(self.id as i64)),
            (
                "mode",
                Outcome::Bulk(Some(Bytes::from_static(b"standalone"))),
            ),
            ("role", Outcome::Bulk(Some(Bytes::from_static(b"master")))),
            ("modules", Outcome::Nested(Vec::new())),
        ])
    }

    /// `CLIENT` subcommands that client libraries send on connect.
    pub fn client(&mut self, args: &[Bytes]) -> Outcome {
        let sub = args
            .first()
            .map(|s| String::from_utf8_lossy(s).to_ascii_uppercase())
            .unwrap_or_default();
        match (sub.as_str(), args.len()) {
            ("ID", 1) => Outcome::Int(self.id as i64),
            ("SETNAME", 2) => {
                if args[1].iter().any(|b| *b <= b' ' || *b > b'~') {
                    return Outcome::Error(
                        "ERR Client names cannot contain spaces, newlines or special characters."
                            .into(),
                    );
                }
                self.name = (!args[1].is_empty()).then(|| args[1].clone());
                Outcome::Simple("OK")
            }
            ("GETNAME", 1) => Outcome::Bulk(self.name.clone()),
            // Library name and version, no-evict, no-touch, reply on: accepted, nothing
            // here depends on them.
            ("SETINFO", 3) | ("NO-EVICT", 2) | ("NO-TOUCH", 2) | ("REPLY", 2) => {
                Outcome::Simple("OK")
            }
            ("INFO", 1) => Outcome::Bulk(Some(Bytes::from(format!(
                "id={} name={} resp={}\n",
                self.id,
                String::from_utf8_lossy(self.name.as_deref().unwrap_or_default()),
                self.proto.version()
            )))),
            _ => Outcome::Error(format!(
                "ERR unknown or unsupported CLIENT subcommand '{}' (corepax answers ID, \
                 SETNAME, GETNAME, SETINFO, INFO, NO-EVICT, NO-TOUCH, REPLY)",
                sub.to_ascii_lowercase()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    fn encoded(o: &Outcome, proto: Proto) -> String {
        let mut out = Vec::new();
        o.encode(&mut out, proto);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unwatch_inside_multi_is_queued_as_a_no_op() {
        let mut txn = Txn::default();
        assert!(matches!(
            txn.queue("UNWATCH", &mut []),
            Outcome::Simple("QUEUED")
        ));
        assert!(!txn.failed);
        assert_eq!(txn.queued.len(), 1);
        assert_eq!(txn.queued[0].cmd, crate::protocol::Command::Noop);
        assert!(matches!(
            (txn.queued[0].shape)(crate::protocol::Reply::Ok),
            Outcome::Simple("OK")
        ));
        let o = txn.queue("UNWATCH", &mut args(&["k"]));
        assert!(
            matches!(&o, Outcome::Error(e) if e.contains("'unwatch'")),
            "{o:?}"
        );
        assert!(
            txn.failed,
            "EXEC then discards the transaction, as in Redis"
        );
    }

    #[test]
    fn hello_switches_protocol_and_answers_a_map() {
        let mut c = Conn::default();
        let o = c.hello(&args(&["3"]), None);
        assert_eq!(c.proto, Proto::Resp3);
        let text = encoded(&o, c.proto);
        assert!(
            text.starts_with("%7\r\n$6\r\nserver\r\n$7\r\ncorepax\r\n"),
            "{text}"
        );
        assert!(text.contains("$5\r\nproto\r\n:3\r\n"), "{text}");
        let o = c.hello(&args(&["2", "AUTH", "default", "x", "SETNAME", "w1"]), None);
        assert_eq!(c.proto, Proto::Resp2);
        assert!(encoded(&o, c.proto).starts_with("*14\r\n"));
        assert_eq!(c.name.as_deref(), Some(&b"w1"[..]));
        let o = c.hello(&args(&["4"]), None);
        assert!(encoded(&o, c.proto).starts_with("-NOPROTO"));
        let o = c.hello(&args(&["3", "AUTH", "alice", "pw"]), None);
        assert!(encoded(&o, c.proto).starts_with("-WRONGPASS"));
        assert_eq!(c.proto, Proto::Resp2, "a refused HELLO changes nothing");
    }

    #[test]
    fn a_password_is_required_then_accepted() {
        let pass = Some("s3cret");
        let mut c = Conn::new(true);
        assert!(!c.authenticated);
        let o = c.hello(&args(&["3"]), pass);
        assert!(encoded(&o, c.proto).starts_with("-NOAUTH HELLO"));
        assert_eq!(c.proto, Proto::Resp2);
        for wrong in [&["nope"][..], &["default", "nope"], &["alice", "s3cret"]] {
            let o = c.auth(&args(wrong), pass);
            assert!(encoded(&o, c.proto).starts_with("-WRONGPASS"), "{wrong:?}");
            assert!(!c.authenticated, "{wrong:?}");
        }
        let o = c.hello(&args(&["3", "AUTH", "default", "nope"]), pass);
        assert!(encoded(&o, c.proto).starts_with("-WRONGPASS"));
        assert!(!c.authenticated);
        let o = c.hello(&args(&["3", "AUTH", "default", "s3cret"]), pass);
        assert!(encoded(&o, c.proto).starts_with('%'));
        assert!(c.authenticated);

        let mut c = Conn::new(true);
        assert!(matches!(
            c.auth(&args(&["s3cret"]), pass),
            Outcome::Simple("OK")
        ));
        assert!(c.authenticated);
        let mut c = Conn::new(true);
        let o = c.auth(&args(&["default", "s3cret"]), pass);
        assert!(matches!(o, Outcome::Simple("OK")));
        let o = Conn::new(false).auth(&args(&["x"]), None);
        assert!(encoded(&o, Proto::Resp2).starts_with("-ERR AUTH <password> called without"));
        assert!(!password_matches(b"s3cre", "s3cret"));
        assert!(password_matches(b"s3cret", "s3cret"));
    }

    #[test]
    fn nulls_by_protocol() {
        let o = Outcome::Array(vec![Some(Bytes::from_static(b"a")), None]);
        assert_eq!(encoded(&o, Proto::Resp2), "*2\r\n$1\r\na\r\n$-1\r\n");
        assert_eq!(encoded(&o, Proto::Resp3), "*2\r\n$1\r\na\r\n_\r\n");
    }

    #[test]
    fn client_subcommands() {
        let mut c = Conn::default();
        assert!(matches!(
            c.client(&args(&["SETNAME", "w1"])),
            Outcome::Simple("OK")
        ));
        assert!(matches!(c.client(&args(&["GETNAME"])), Outcome::Bulk(Some(n)) if n == "w1"));
        assert!(matches!(
            c.client(&args(&["SETNAME", "a b"])),
            Outcome::Error(_)
        ));
        assert!(matches!(
            c.client(&args(&["SETINFO", "LIB-NAME", "redis-py"])),
            Outcome::Simple("OK")
        ));
        assert!(matches!(c.client(&args(&["ID"])), Outcome::Int(id) if id as u64 == c.id));
        assert!(
            matches!(c.client(&args(&["KILL", "x"])), Outcome::Error(e) if e.contains("'kill'"))
        );
    }

    #[test]
    fn a_refused_command_dooms_the_transaction() {
        let mut t = Txn::default();
        assert!(matches!(
            t.queue("SET", &mut args(&["k", "v"])),
            Outcome::Simple("QUEUED")
        ));
        assert!(!t.failed);
        assert!(matches!(t.queue("PING", &mut []), Outcome::Error(_)));
        assert!(t.failed);
        assert_eq!(t.queued.len(), 1);
    }
}
