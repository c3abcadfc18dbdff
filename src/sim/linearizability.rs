//! A linearizability checker for per-key histories of a register or a list (Wing & Gong's
//! search with Lowe's memoisation, as in Porcupine). Keys are independent, so each key's
//! history is checked alone (P-compositionality).
//!
//! An operation on two keys (`LMOVE` from one list to another, [`Op::Move`]) breaks that
//! decomposition: the keys it links are checked together as one object, a tuple of lists
//! ([`Operation::object`] says which list an operation works on), with the histories of
//! every key linked merged. Linearizability of the tuple is what the keys together must
//! have, so the verdict stays sound; the search is larger, so the simulator links few keys.
//!
//! The register may carry a deadline in the log's time. The clients cannot see the log's
//! time, so an operation carries bounds of it ([`Operation::log_lo`], [`Operation::log_hi`])
//! and a deadline is an interval. A key with a deadline may vanish (the log removed it)
//! before any operation whose upper bound of the log's time reaches the deadline's lower
//! bound, and not before: a read that finds it gone earlier saw a removal the log did not
//! decide. Once gone it stays gone until written again.

use std::collections::HashSet;

use crate::protocol::types::MapHasher;

/// An operation on one key. Values are identified by numbers the clients make unique.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Wrote a value (a plain `SET`: clears the deadline).
    Set(u64),
    /// Wrote a value that expires `ttl_ms` after the log's time at the write (`SET … PX`).
    SetPx {
        /// The value.
        value: u64,
        /// Milliseconds of log time it lives, at least 1.
        ttl_ms: u64,
    },
    /// Deleted the key; the output is whether it existed.
    Del,
    /// Read the key.
    Get,
    /// Set `new` if the key holds `expect` (`SET … IFEQ`); the output says whether it did.
    Cas {
        /// The value it must hold.
        expect: u64,
        /// The value to set.
        new: u64,
    },
    /// Added one to the key's number (absent counts as 0); the output is the sum.
    Incr,
    /// Gave an existing key a deadline `ttl_ms` after the log's time (`PEXPIRE`); the
    /// output says whether the key existed.
    Expire {
        /// Milliseconds of log time, at least 1.
        ttl_ms: u64,
    },
    /// Removed the key's deadline (`PERSIST`); the output says whether it had one.
    Persist,
    /// Read the time left (`PTTL`).
    Ttl,
    /// Pushed a value at the tail of the key's list (`RPUSH`); the output is the length.
    Push(u64),
    /// Popped the head of the key's list (`LPOP`); the output is the value, or none.
    Pop,
    /// Popped the head of the key's list, waiting up to `timeout_ms` for one (`BLPOP`):
    /// checked as [`Op::Pop`] (one that answered none found the list empty within its
    /// call).
    BlockingPop {
        /// How long it waited at most.
        timeout_ms: u64,
    },
    /// Read the list's length (`LLEN`).
    Len,
    /// Kept the first `keep` elements of the key's list (`LTRIM key 0 keep-1`, or
    /// `LTRIM key 1 0` for none, which removes the list).
    Trim {
        /// Elements kept, at most.
        keep: u8,
    },
    /// Replaced the head of the key's list (`LSET key 0 v`); refused for no list.
    SetHead(u64),
    /// Looked for a value in the key's list (`LPOS`): its position, or none.
    Pos(u64),
    /// Inserted `value` next to the first `pivot` of the key's list (`LINSERT … BEFORE`
    /// or `AFTER`): the output is the length, `Count(0)` for no list, `Refused` for no
    /// pivot (Redis's -1).
    Insert {
        /// Before the pivot, else after.
        before: bool,
        /// The element to insert next to.
        pivot: u64,
        /// The element inserted.
        value: u64,
    },
    /// Moved the element at one end of the key's list to an end of the same list
    /// (`LMOVE k k`, a rotation): the output is the element, or none.
    Rotate {
        /// Taken from the head, else the tail.
        from_left: bool,
        /// Put at the head, else the tail.
        to_left: bool,
    },
    /// Moved the element at one end of the key's list to an end of another key's list
    /// (`LMOVE k other`): the output is the element, or none (nothing changes then).
    Move {
        /// The other key: in a recorded history the key's number; in a checked history
        /// the [`Operation::object`] of that key's list.
        to: usize,
        /// Taken from the head, else the tail.
        from_left: bool,
        /// Put at the head of the other list, else its tail.
        to_left: bool,
    },
    /// Moved the element at one end of the key's list to an end of the same list or
    /// another key's, waiting up to `timeout_ms` for one (`BLMOVE`): checked as the
    /// `LMOVE` it submits ([`Op::checked`]; one that answered none found the list empty
    /// within its call).
    BlockingMove {
        /// The destination key's number (the key itself for a rotation).
        to: usize,
        /// Taken from the head, else the tail.
        from_left: bool,
        /// Put at the head of the destination, else its tail.
        to_left: bool,
        /// How long it waited at most.
        timeout_ms: u64,
    },
}

impl Op {
    /// The operation the checker checks for this one on key number `key`: a blocking
    /// move as the [`Op::Rotate`] or [`Op::Move`] it submits, others as they are.
    pub fn checked(self, key: usize) -> Op {
        match self {
            Op::BlockingMove {
                to,
                from_left,
                to_left,
                ..
            } if to == key => Op::Rotate { from_left, to_left },
            Op::BlockingMove {
                to,
                from_left,
                to_left,
                ..
            } => Op::Move {
                to,
                from_left,
                to_left,
            },
            op => op,
        }
    }

    /// Whether it works on a list (the key's history is then checked as a list).
    pub fn is_list(self) -> bool {
        matches!(
            self,
            Op::Push(_)
                | Op::Pop
                | Op::BlockingPop { .. }
                | Op::Len
                | Op::Trim { .. }
                | Op::SetHead(_)
                | Op::Pos(_)
                | Op::Insert { .. }
                | Op::Rotate { .. }
                | Op::Move { .. }
                | Op::BlockingMove { .. }
        )
    }

    /// Whether it changes nothing: an unanswered one tells nothing and is left out.
    pub fn is_read(self) -> bool {
        matches!(self, Op::Get | Op::Ttl | Op::Len | Op::Pos(_))
    }
}

/// What an operation returned; `Unknown` when the client never saw a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// The write returned.
    Ok,
    /// A delete's count of removed keys.
    Removed(bool),
    /// A read's value.
    Value(Option<u64>),
    /// Whether a compare-and-set set its value.
    Swapped(bool),
    /// A counter's new value, or a list's length.
    Count(u64),
    /// Whether `PEXPIRE` or `PERSIST` changed the deadline.
    Changed(bool),
    /// `PTTL`'s answer: milliseconds left, -1 no deadline, -2 no key.
    Ttl(i64),
    /// Refused, nothing changed (`LSET` of no list).
    Refused,
    /// No reply: the operation may or may not have taken effect.
    Unknown,
}

/// One operation of a history: invoked at `call`, answered at `ret` (`u64::MAX` if never).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that issued it (for traces).
    pub client: u64,
    /// What was asked.
    pub op: Op,
    /// What came back.
    pub out: Output,
    /// Invocation time.
    pub call: u64,
    /// Response time.
    pub ret: u64,
    /// At most the log's time (ms) where an operation that counts time from the log's
    /// applies it (`SetPx`, `Expire`, `Ttl`).
    pub log_lo: u64,
    /// At least the log's time (ms) of any entry applied before the operation returned:
    /// the latest log time its effect or answer can reflect.
    pub log_hi: u64,
    /// Which list of a checked tuple of lists it works on (module doc); 0 for one key.
    pub object: usize,
}

impl Operation {
    /// An operation that does not look at the log's time (bounds 0 and unbounded).
    pub fn new(client: u64, op: Op, out: Output, call: u64, ret: u64) -> Operation {
        Operation {
            client,
            op,
            out,
            call,
            ret,
            log_lo: 0,
            log_hi: u64::MAX,
            object: 0,
        }
    }
}

/// A model of one key: what an operation does to it and whether its output fits.
trait Model: Clone {
    /// The states `o` may lead to from this one (`None`: that answer is impossible here);
    /// more than one where the model cannot tell which happened.
    fn successors(&self, o: &Operation) -> [Option<Self>; 2];
    /// Appends the state to a memo key.
    fn write_key(&self, key: &mut Vec<u64>);
}

impl Model for Register {
    fn successors(&self, o: &Operation) -> [Option<Self>; 2] {
        successors(*self, o)
    }

    fn write_key(&self, key: &mut Vec<u64>) {
        key.extend_from_slice(&self.words());
    }
}

/// The list model: the values from head to tail (empty when the key is absent).
impl Model for Vec<u64> {
    fn successors(&self, o: &Operation) -> [Option<Self>; 2] {
        [list_step(self, o.op, o.out), None]
    }

    fn write_key(&self, key: &mut Vec<u64>) {
        key.push(self.len() as u64);
        key.extend_from_slice(self);
    }
}

/// Lists checked together because two-key moves link them (module doc), by
/// [`Operation::object`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Lists(Vec<Vec<u64>>);

impl Model for Lists {
    fn successors(&self, o: &Operation) -> [Option<Self>; 2] {
        [lists_step(self, o), None]
    }

    fn write_key(&self, key: &mut Vec<u64>) {
        for l in &self.0 {
            l.write_key(key);
        }
    }
}

/// The lists after `o`, if its output is possible there.
fn lists_step(lists: &Lists, o: &Operation) -> Option<Lists> {
    let from = lists.0.get(o.object)?;
    let Op::Move {
        to,
        from_left,
        to_left,
    } = o.op
    else {
        let mut next = lists.clone();
        next.0[o.object] = list_step(from, o.op, o.out)?;
        return Some(next);
    };
    assert_ne!(to, o.object, "a move to the same list is a rotation");
    let taken = if from_left { from.first() } else { from.last() };
    let Some(&e) = taken else {
        return matches!(o.out, Output::Value(None) | Output::Unknown).then(|| lists.clone());
    };
    if !matches!(o.out, Output::Unknown) && o.out != Output::Value(Some(e)) {
        return None;
    }
    let mut next = lists.clone();
    if from_left {
        next.0[o.object].remove(0);
    } else {
        next.0[o.object].pop();
    }
    let dst = next.0.get_mut(to)?;
    if to_left {
        dst.insert(0, e);
    } else {
        dst.push(e);
    }
    Some(next)
}

/// The list after `op` answered `out`, if that answer is possible.
fn list_step(list: &[u64], op: Op, out: Output) -> Option<Vec<u64>> {
    let op = match op {
        Op::BlockingPop { .. } => Op::Pop,
        op => op,
    };
    match (op, out) {
        (Op::Push(v), Output::Count(_) | Output::Unknown) => {
            let mut next = list.to_vec();
            next.push(v);
            match out {
                Output::Count(n) if n != next.len() as u64 => None,
                _ => Some(next),
            }
        }
        (Op::Pop, Output::Value(v)) => match (list.first(), v) {
            (None, None) => Some(Vec::new()),
            (Some(head), Some(v)) if *head == v => Some(list[1..].to_vec()),
            _ => None,
        },
        (Op::Pop, Output::Unknown) => Some(list.get(1..).unwrap_or_default().to_vec()),
        (Op::Len, Output::Count(n)) => (n == list.len() as u64).then(|| list.to_vec()),
        (Op::Len, Output::Unknown) => Some(list.to_vec()),
        (Op::Trim { keep }, Output::Ok | Output::Unknown) => {
            Some(list[..list.len().min(usize::from(keep))].to_vec())
        }
        (Op::SetHead(v), Output::Ok | Output::Unknown) if !list.is_empty() => {
            let mut next = list.to_vec();
            next[0] = v;
            Some(next)
        }
        (Op::SetHead(_), Output::Refused | Output::Unknown) if list.is_empty() => Some(Vec::new()),
        // Values are pushed once each, so the first match is the only one.
        (Op::Pos(v), Output::Count(at)) => {
            (list.iter().position(|e| *e == v) == Some(at as usize)).then(|| list.to_vec())
        }
        (Op::Pos(v), Output::Value(None)) => (!list.contains(&v)).then(|| list.to_vec()),
        (Op::Pos(_), Output::Unknown) => Some(list.to_vec()),
        (
            Op::Insert {
                before,
                pivot,
                value,
            },
            out,
        ) => {
            let Some(at) = list.iter().position(|e| *e == pivot) else {
                // Nothing changes: 0 for no list, -1 for no pivot.
                let said = if list.is_empty() {
                    Output::Count(0)
                } else {
                    Output::Refused
                };
                return (out == said || out == Output::Unknown).then(|| list.to_vec());
            };
            let mut next = list.to_vec();
            next.insert(if before { at } else { at + 1 }, value);
            match out {
                Output::Count(n) if n == next.len() as u64 => Some(next),
                Output::Unknown => Some(next),
                _ => None,
            }
        }
        (Op::Rotate { from_left, to_left }, Output::Value(_) | Output::Unknown) => {
            let mut next = list.to_vec();
            let taken = if from_left {
                (!next.is_empty()).then(|| next.remove(0))
            } else {
                next.pop()
            };
            let Some(e) = taken else {
                return matches!(out, Output::Value(None) | Output::Unknown).then(Vec::new);
            };
            if to_left {
                next.insert(0, e);
            } else {
                next.push(e);
            }
            match out {
                Output::Value(Some(v)) if v == e => Some(next),
                Output::Unknown => Some(next),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A deadline known to lie in `lo..=hi` (log time, ms).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Deadline {
    lo: u64,
    hi: u64,
}

impl Deadline {
    fn after(o: &Operation, ttl_ms: u64) -> Deadline {
        Deadline {
            lo: o.log_lo.saturating_add(ttl_ms),
            hi: o.log_hi.saturating_add(ttl_ms),
        }
    }
}

/// The register model: the value (`None`: the key is absent) and its deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Register {
    value: Option<u64>,
    deadline: Option<Deadline>,
}

impl Register {
    fn plain(value: u64) -> Register {
        Register {
            value: Some(value),
            deadline: None,
        }
    }

    /// The memo words: presence, value, deadline presence, its bounds.
    fn words(self) -> [u64; 5] {
        let d = self.deadline.unwrap_or_default();
        [
            u64::from(self.value.is_some()),
            self.value.unwrap_or(0),
            u64::from(self.deadline.is_some()),
            d.lo,
            d.hi,
        ]
    }
}

/// The register after `o` from `state`, if `o`'s output is possible there.
fn step(state: Register, o: &Operation) -> Option<Register> {
    let present = state.value.is_some();
    match (o.op, o.out) {
        (Op::Set(v), Output::Ok | Output::Unknown) => Some(Register::plain(v)),
        (Op::SetPx { value, ttl_ms }, Output::Ok | Output::Unknown) => Some(Register {
            value: Some(value),
            deadline: Some(Deadline::after(o, ttl_ms)),
        }),
        (Op::Del, Output::Removed(existed)) => (existed == present).then_some(Register::default()),
        (Op::Del, Output::Unknown) => Some(Register::default()),
        (Op::Get, Output::Value(v)) => (v == state.value).then_some(state),
        (Op::Get | Op::Ttl, Output::Unknown) => Some(state),
        (Op::Cas { expect, new }, Output::Swapped(set)) => (set == (state.value == Some(expect)))
            .then_some(if set { Register::plain(new) } else { state }),
        (Op::Cas { expect, new }, Output::Unknown) => Some(if state.value == Some(expect) {
            Register::plain(new)
        } else {
            state
        }),
        (Op::Incr, Output::Count(_) | Output::Unknown) => {
            let sum = state.value.unwrap_or(0).checked_add(1)?;
            if let Output::Count(n) = o.out
                && n != sum
            {
                return None;
            }
            // A counter keeps its deadline.
            Some(Register {
                value: Some(sum),
                deadline: state.deadline,
            })
        }
        (Op::Expire { ttl_ms }, Output::Changed(_) | Output::Unknown) => {
            if o.out == Output::Changed(!present) {
                return None;
            }
            Some(if present {
                Register {
                    value: state.value,
                    deadline: Some(Deadline::after(o, ttl_ms)),
                }
            } else {
                state
            })
        }
        (Op::Persist, Output::Changed(_) | Output::Unknown) => {
            let had = present && state.deadline.is_some();
            if o.out == Output::Changed(!had) {
                return None;
            }
            Some(Register {
                deadline: None,
                ..state
            })
        }
        (Op::Ttl, Output::Ttl(ms)) => ttl_step(state, o, ms),
        _ => None,
    }
}

/// `PTTL` answered `ms`: -2 absent, -1 no deadline, else the deadline less the log's time
/// (0 once passed, while the key waits for its removal). The answer narrows the deadline.
fn ttl_step(state: Register, o: &Operation, ms: i64) -> Option<Register> {
    match (state.value, state.deadline) {
        (None, _) => (ms == -2).then_some(state),
        (Some(_), None) => (ms == -1).then_some(state),
        (Some(_), Some(d)) => {
            let left = u64::try_from(ms).ok()?;
            // The deadline is `left` after the log's time, which lies within the bounds;
            // `0` only says it has passed.
            let (lo, hi) = if left == 0 {
                (d.lo, d.hi.min(o.log_hi))
            } else {
                (
                    d.lo.max(o.log_lo.saturating_add(left)),
                    d.hi.min(o.log_hi.saturating_add(left)),
                )
            };
            (lo <= hi).then_some(Register {
                deadline: Some(Deadline { lo, hi }),
                ..state
            })
        }
    }
}

/// The registers `o` may lead to from `state`: with the key as it is, or, if its deadline
/// may have been reached in the log by the time `o` returned, after the log removed it.
fn successors(state: Register, o: &Operation) -> [Option<Register>; 2] {
    let kept = step(state, o);
    let may_expire = state.value.is_some() && state.deadline.is_some_and(|d| d.lo <= o.log_hi);
    let expired = if may_expire {
        step(Register::default(), o).filter(|r| Some(*r) != kept)
    } else {
        None
    };
    [kept, expired]
}

/// The verdict on one history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order respects real time and the register's rules.
    Linearizable,
    /// No such order exists.
    Violation,
    /// The search gave up after `steps_max` steps.
    Unknown,
}

/// Checks one key's history, starting from an absent key: as a list if an operation works
/// on a list, else as a register; or the merged history of keys linked by two-key moves,
/// as a tuple of lists (one per [`Operation::object`], all absent at first).
pub fn check(history: &[Operation], steps_max: u64) -> Verdict {
    let objects = history
        .iter()
        .map(|o| match o.op {
            Op::Move { to, .. } => o.object.max(to) + 1,
            _ => o.object + 1,
        })
        .max()
        .unwrap_or(1);
    if objects > 1 || history.iter().any(|o| matches!(o.op, Op::Move { .. })) {
        search(history, steps_max, Lists(vec![Vec::new(); objects]))
    } else if history.iter().any(|o| o.op.is_list()) {
        search(history, steps_max, Vec::<u64>::new())
    } else {
        search(history, steps_max, Register::default())
    }
}

fn search<S: Model>(history: &[Operation], steps_max: u64, init: S) -> Verdict {
    let n = history.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Events in time order: calls before returns at equal times, so operations that touch
    // are treated as concurrent (the lenient, standard choice).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in history.iter().enumerate() {
        assert!(o.call <= o.ret, "an operation returns after it is called");
        events.push((o.call, false, i));
        events.push((o.ret, true, i));
    }
    events.sort_by_key(|&(t, is_ret, i)| (t, is_ret, i));
    // A doubly linked list over events, with a head sentinel at index 0.
    let len = events.len() + 1;
    let mut next: Vec<usize> = (1..=len).collect();
    let mut prev: Vec<usize> = (0..len).map(|i| i.wrapping_sub(1)).collect();
    next[len - 1] = usize::MAX;
    let mut ret_of = vec![0usize; n];
    for (pos, &(_, is_ret, i)) in events.iter().enumerate() {
        if is_ret {
            ret_of[i] = pos + 1;
        }
    }
    let is_ret = |node: usize| events[node - 1].1;
    let op_of = |node: usize| events[node - 1].2;

    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        let (p, q) = (prev[node], next[node]);
        next[p] = q;
        if q != usize::MAX {
            prev[q] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        let (p, q) = (prev[node], next[node]);
        next[p] = node;
        if q != usize::MAX {
            prev[q] = node;
        }
    };

    // The memo key is one vector: the bitset of linearized operations, then the state
    // ([`Model::write_key`]), so a lookup borrows it and only a new entry is copied.
    let words = n.div_ceil(64);
    let mut key = vec![0u64; words];
    let mut state = init;
    let mut cache: HashSet<Vec<u64>, MapHasher> = HashSet::default();
    // (the call placed, the state before it, which of its successors was taken)
    let mut stack: Vec<(usize, S, usize)> = Vec::new();
    let mut entry = next[0];
    // The first successor to try at `entry`: past the one taken when backtracking to it.
    let mut first_alt = 0;
    let mut steps = 0u64;
    while next[0] != usize::MAX {
        steps += 1;
        if steps > steps_max {
            return Verdict::Unknown;
        }
        if entry != usize::MAX && !is_ret(entry) {
            let i = op_of(entry);
            let mut advanced = false;
            let alts = state.successors(&history[i]);
            for (alt, new_state) in alts.into_iter().enumerate().skip(first_alt) {
                let Some(new_state) = new_state else {
                    continue;
                };
                key[i / 64] |= 1 << (i % 64);
                key.truncate(words);
                new_state.write_key(&mut key);
                if cache.contains(key.as_slice()) {
                    key[i / 64] &= !(1 << (i % 64));
                    continue;
                }
                cache.insert(key.clone());
                let old = std::mem::replace(&mut state, new_state);
                stack.push((entry, old, alt));
                unlink(&mut next, &mut prev, entry);
                unlink(&mut next, &mut prev, ret_of[i]);
                entry = next[0];
                advanced = true;
                break;
            }
            first_alt = 0;
            if !advanced {
                entry = next[entry];
            }
            continue;
        }
        // An operation returned before it could be placed (or the walk ran off the end):
        // undo the last choice and try its other successor, then the next candidate.
        let Some((call, old, alt)) = stack.pop() else {
            return Verdict::Violation;
        };
        let i = op_of(call);
        state = old;
        key[i / 64] &= !(1 << (i % 64));
        relink(&mut next, &mut prev, ret_of[i]);
        relink(&mut next, &mut prev, call);
        entry = call;
        first_alt = alt + 1;
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests;
