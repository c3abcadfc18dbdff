//! Blocking list pops (`BLPOP`, `BRPOP`, `BLMOVE`) without I/O: which waiters a change of
//! the state wakes, and what one blocking pop does next. The runtime's shard drives it
//! with futures and timers (`runtime/shard/blocking.rs`), the simulator with its events,
//! so the simulator checks the code the node runs.
//!
//! A blocking pop waits on the replica its client is connected to until one of its keys
//! holds a list there, then submits its pop through the log like any command. The log
//! decides which of several waiters gets an element: a pop that finds the list empty
//! again waits again. At its deadline it does not answer nil from this replica's state,
//! which may lag the log (a follower cut off from the leader sees no push): it submits its
//! pop one last time, and answers what the log decided (nil only if the list was empty
//! where the pop applied, a point within the call).

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::item::Kind;
use super::kv::{Command, Kv, LMove, Reply};
use super::list::End;
use super::types::MapHasher;

/// What a blocking command does once it is woken: the pop it submits, and the keys it
/// waits on.
#[derive(Clone, Debug)]
pub struct Blocking {
    /// The pop ([`Command::PopFirst`] or [`Command::LMove`]).
    pub cmd: Command,
    /// The keys it waits on.
    pub keys: Vec<Bytes>,
}

impl Blocking {
    /// `BLPOP` / `BRPOP`: pops the first element at `end` of the first of `keys` that
    /// holds a list, waiting on all of them.
    pub fn pop_first(keys: Vec<Bytes>, end: End) -> Blocking {
        Blocking {
            cmd: Command::PopFirst {
                keys: keys.clone(),
                end,
            },
            keys,
        }
    }

    /// `BLMOVE` / `BRPOPLPUSH`: moves the element at `from_end` of `from` to `to_end` of
    /// `to` (which may be `from`), waiting on the source only (a push to the destination
    /// gives it nothing to take).
    pub fn lmove(from: Bytes, to: Bytes, from_end: End, to_end: End) -> Blocking {
        Blocking {
            keys: vec![from.clone()],
            cmd: Command::LMove(Box::new(LMove {
                from,
                to,
                from_end,
                to_end,
            })),
        }
    }

    /// The command that undoes a pop that answered `reply`, if it took something (for a
    /// client that went away meanwhile).
    pub fn give_back(&self, reply: &Reply) -> Option<Command> {
        match (&self.cmd, reply) {
            (Command::PopFirst { end, .. }, Reply::Values(kv)) => match kv.as_slice() {
                [Some(key), Some(elem)] => Some(Command::Push {
                    key: key.clone(),
                    values: vec![elem.clone()],
                    end: *end,
                    existing: false,
                }),
                _ => None,
            },
            (Command::LMove(m), Reply::Value(Some(_))) => Some(Command::LMove(Box::new(LMove {
                from: m.to.clone(),
                to: m.from.clone(),
                from_end: m.to_end,
                to_end: m.from_end,
            }))),
            _ => None,
        }
    }

    /// Whether one of its keys holds a list in `kv`.
    pub fn ready(&self, kv: &Kv) -> bool {
        self.keys
            .iter()
            .any(|k| kv.get(k).is_some_and(|i| i.kind() == Kind::List))
    }
}

/// Whether a reply of a blocking pop took an element (else the list was empty again).
pub fn took(reply: &Reply) -> bool {
    !matches!(reply, Reply::Value(None))
}

/// What a blocking pop does next ([`BlockingPop::next`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Wait until one of its keys holds a list here ([`ListWaiters`]) or the deadline.
    Wait,
    /// Submit this pop through the log and hand its reply to [`BlockingPop::on_reply`].
    Submit(Command),
}

/// One blocking pop's course, between its call and its answer.
#[derive(Clone, Debug)]
pub struct BlockingPop {
    /// The pop and its keys.
    pub b: Blocking,
    /// The deadline passed: the next pop submitted is the last.
    expired: bool,
}

impl BlockingPop {
    /// A blocking pop called now.
    pub fn new(b: Blocking) -> BlockingPop {
        BlockingPop { b, expired: false }
    }

    /// The deadline passed (the caller's clock says so; never for a pop without one).
    pub fn expire(&mut self) {
        self.expired = true;
    }

    /// Whether the deadline passed.
    pub fn is_expired(&self) -> bool {
        self.expired
    }

    /// What to do now that no pop of it is in flight: submit if a key holds a list here
    /// or the deadline passed (the last pop, [module doc](self)), else wait.
    pub fn next(&self, kv: &Kv) -> Next {
        if self.expired || self.b.ready(kv) {
            Next::Submit(self.b.cmd.clone())
        } else {
            Next::Wait
        }
    }

    /// A submitted pop answered `reply`: the answer to give, or `None` to go on (another
    /// waiter emptied the list first; [`BlockingPop::next`] says what then).
    pub fn on_reply(&self, reply: Reply) -> Option<Reply> {
        (took(&reply) || self.expired).then_some(reply)
    }
}

/// Blocking pops waiting on this replica, by key, oldest first, each named by the
/// driver's id.
#[derive(Debug, Default)]
pub struct ListWaiters {
    by_key: HashMap<Bytes, VecDeque<u64>, MapHasher>,
}

impl ListWaiters {
    /// Waits `id` on `keys` (again: it keeps its place).
    pub fn register(&mut self, id: u64, keys: &[Bytes]) {
        for k in keys {
            let q = self.by_key.entry(k.clone()).or_default();
            if !q.contains(&id) {
                q.push_back(id);
            }
        }
    }

    /// Stops `id` waiting on `keys`.
    pub fn forget(&mut self, id: u64, keys: &[Bytes]) {
        for k in keys {
            if let Some(q) = self.by_key.get_mut(k) {
                q.retain(|w| *w != id);
                if q.is_empty() {
                    self.by_key.remove(k);
                }
            }
        }
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Takes, per key that holds a list in `kv`, as many of its oldest waiters as the list
    /// has elements, into `woken` (a waiter on two keys may come twice; it stays queued on
    /// its other keys until it is forgotten there).
    pub fn wake(&mut self, kv: &Kv, woken: &mut Vec<u64>) {
        self.by_key.retain(|key, q| {
            let Some(item) = kv.get(key).filter(|i| i.kind() == Kind::List) else {
                return true;
            };
            let n = item.list().map_or(0, super::list::List::len).min(q.len());
            woken.extend(q.drain(..n));
            !q.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn blpop(keys: &[&str]) -> Blocking {
        Blocking::pop_first(keys.iter().map(|k| b(k)).collect(), End::Left)
    }

    fn apply(kv: &mut Kv, slot: &mut u64, cmd: Command) -> Reply {
        let mut replies = crate::protocol::kv::tests_lists::run(kv, slot, vec![cmd]);
        replies.pop().expect("one reply per command")
    }

    fn rpush(key: &str, values: &[&str]) -> Command {
        Command::Push {
            key: b(key),
            values: values.iter().map(|v| b(v)).collect(),
            end: End::Right,
            existing: false,
        }
    }

    #[test]
    fn a_pop_waits_until_a_key_holds_a_list_then_submits() {
        let (mut kv, mut slot) = (Kv::new(8, 8), 0);
        let pop = BlockingPop::new(blpop(&["a", "b"]));
        assert_eq!(pop.next(&kv), Next::Wait);
        apply(&mut kv, &mut slot, rpush("b", &["x"]));
        let Next::Submit(cmd) = pop.next(&kv) else {
            panic!("b holds a list");
        };
        let reply = apply(&mut kv, &mut slot, cmd);
        assert_eq!(reply, Reply::Values(vec![Some(b("b")), Some(b("x"))]));
        assert_eq!(pop.on_reply(reply.clone()), Some(reply));
    }

    #[test]
    fn an_empty_answer_waits_again_until_the_deadline_then_is_final() {
        let (mut kv, mut slot) = (Kv::new(8, 8), 0);
        let mut pop = BlockingPop::new(blpop(&["a"]));
        // Another waiter took the element first.
        let nil = apply(&mut kv, &mut slot, pop.b.cmd.clone());
        assert_eq!(nil, Reply::Value(None));
        assert_eq!(pop.on_reply(nil.clone()), None);
        assert_eq!(pop.next(&kv), Next::Wait);
        // At the deadline it submits once more, whatever this replica holds, and the
        // log's answer is final, nil included.
        pop.expire();
        assert_eq!(pop.next(&kv), Next::Submit(pop.b.cmd.clone()));
        assert_eq!(pop.on_reply(nil.clone()), Some(nil));
    }

    #[test]
    fn waiters_wake_oldest_first_as_many_as_the_list_holds() {
        let (mut kv, mut slot) = (Kv::new(8, 8), 0);
        let mut w = ListWaiters::default();
        let keys = [b("q")];
        for id in [3, 1, 2] {
            w.register(id, &keys);
        }
        w.register(3, &keys);
        w.register(4, &[b("other")]);
        let mut woken = Vec::new();
        w.wake(&kv, &mut woken);
        assert!(woken.is_empty(), "no list yet");
        apply(&mut kv, &mut slot, rpush("q", &["x", "y"]));
        w.wake(&kv, &mut woken);
        assert_eq!(woken, [3, 1]);
        w.forget(4, &[b("other")]);
        w.forget(2, &keys);
        assert!(w.is_empty());
        // A give-back puts the element where it came from.
        let bl = blpop(&["q"]);
        let back = bl.give_back(&Reply::Values(vec![Some(b("q")), Some(b("x"))]));
        assert!(matches!(back, Some(Command::Push { end: End::Left, .. })));
        assert_eq!(bl.give_back(&Reply::Value(None)), None);
    }

    #[test]
    fn a_blmove_waits_on_its_source_only_and_gives_back_to_where_it_took() {
        let (mut kv, mut slot) = (Kv::new(8, 8), 0);
        let mut pop = BlockingPop::new(Blocking::lmove(b("s"), b("d"), End::Right, End::Left));
        apply(&mut kv, &mut slot, rpush("d", &["y"]));
        assert_eq!(pop.next(&kv), Next::Wait, "a list at the destination only");
        apply(&mut kv, &mut slot, rpush("s", &["x", "z"]));
        let Next::Submit(cmd) = pop.next(&kv) else {
            panic!("s holds a list");
        };
        let reply = apply(&mut kv, &mut slot, cmd.clone());
        assert_eq!(reply, Reply::Value(Some(b("z"))));
        assert_eq!(pop.on_reply(reply.clone()), Some(reply.clone()));
        // Undone: from the destination's head back to the source's tail.
        let back = pop.b.give_back(&reply).expect("it took an element");
        assert_eq!(apply(&mut kv, &mut slot, back), Reply::Value(Some(b("z"))));
        // An empty source: nil waits again until the deadline, then is final.
        for _ in 0..2 {
            let pop = Command::Pop {
                key: b("s"),
                end: End::Left,
                count: None,
            };
            apply(&mut kv, &mut slot, pop);
        }
        let nil = apply(&mut kv, &mut slot, cmd);
        assert_eq!(nil, Reply::Value(None));
        assert_eq!(pop.on_reply(nil.clone()), None);
        assert_eq!(pop.next(&kv), Next::Wait);
        pop.expire();
        assert_eq!(pop.on_reply(nil.clone()), Some(nil));
    }
}
