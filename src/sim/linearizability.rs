//! A linearizability checker for per-key histories of a register or a list (Wing & Gong's
//! search with Lowe's memoisation, as in Porcupine). Keys are independent, so each key's
//! history is checked alone (P-compositionality).

use std::collections::HashSet;

use crate::protocol::types::MapHasher;

/// An operation on one key. Values are identified by numbers the clients make unique.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Wrote a value.
    Set(u64),
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
    /// Pushed a value at the tail of the key's list (`RPUSH`); the output is the length.
    Push(u64),
    /// Popped the head of the key's list (`LPOP`); the output is the value, or none.
    Pop,
    /// Read the list's length (`LLEN`).
    Len,
}

impl Op {
    /// Whether it works on a list (the key's history is then checked as a list).
    pub fn is_list(self) -> bool {
        matches!(self, Op::Push(_) | Op::Pop | Op::Len)
    }

    /// Whether it only reads (a read that never returned tells nothing).
    pub fn is_read(self) -> bool {
        matches!(self, Op::Get | Op::Len)
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
}

/// A model of one key: what an operation does to it and whether its output fits.
trait Model: Clone {
    /// The state after `op` answered `out`, or `None` if that answer is impossible here.
    fn step(&self, op: Op, out: Output) -> Option<Self>;
    /// Appends the state to a memo key.
    fn write_key(&self, key: &mut Vec<u64>);
}

impl Model for Option<u64> {
    fn step(&self, op: Op, out: Output) -> Option<Self> {
        step(*self, op, out)
    }

    fn write_key(&self, key: &mut Vec<u64>) {
        key.push(u64::from(self.is_some()));
        key.push(self.unwrap_or(0));
    }
}

/// The list model: the values from head to tail (empty when the key is absent).
impl Model for Vec<u64> {
    fn step(&self, op: Op, out: Output) -> Option<Self> {
        match (op, out) {
            (Op::Push(v), Output::Count(_) | Output::Unknown) => {
                let mut next = self.clone();
                next.push(v);
                match out {
                    Output::Count(n) if n != next.len() as u64 => None,
                    _ => Some(next),
                }
            }
            (Op::Pop, Output::Value(v)) => match (self.first(), v) {
                (None, None) => Some(Vec::new()),
                (Some(head), Some(v)) if *head == v => Some(self[1..].to_vec()),
                _ => None,
            },
            (Op::Pop, Output::Unknown) => Some(self.get(1..).unwrap_or_default().to_vec()),
            (Op::Len, Output::Count(n)) => (n == self.len() as u64).then(|| self.clone()),
            (Op::Len, Output::Unknown) => Some(self.clone()),
            _ => None,
        }
    }

    fn write_key(&self, key: &mut Vec<u64>) {
        key.push(self.len() as u64);
        key.extend_from_slice(self);
    }
}

/// The register model: `None` when the key is absent.
fn step(state: Option<u64>, op: Op, out: Output) -> Option<Option<u64>> {
    match (op, out) {
        (Op::Set(v), Output::Ok | Output::Unknown) => Some(Some(v)),
        (Op::Del, Output::Removed(existed)) => (existed == state.is_some()).then_some(None),
        (Op::Del, Output::Unknown) => Some(None),
        (Op::Get, Output::Value(v)) => (v == state).then_some(state),
        (Op::Get, Output::Unknown) => Some(state),
        (Op::Cas { expect, new }, Output::Swapped(set)) => {
            (set == (state == Some(expect))).then_some(if set { Some(new) } else { state })
        }
        (Op::Cas { expect, new }, Output::Unknown) => Some(if state == Some(expect) {
            Some(new)
        } else {
            state
        }),
        (Op::Incr, Output::Count(n)) => {
            let sum = state.unwrap_or(0).checked_add(1)?;
            (n == sum).then_some(Some(sum))
        }
        (Op::Incr, Output::Unknown) => Some(Some(state.unwrap_or(0).checked_add(1)?)),
        _ => None,
    }
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
/// on a list, else as a register.
pub fn check(history: &[Operation], steps_max: u64) -> Verdict {
    if history.iter().any(|o| o.op.is_list()) {
        search(history, steps_max, Vec::<u64>::new())
    } else {
        search(history, steps_max, None::<u64>)
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
    // (for a register a presence word and a value word), so a lookup borrows it and only
    // a new entry is copied.
    let words = n.div_ceil(64);
    let mut key = vec![0u64; words];
    let mut state = init;
    let mut cache: HashSet<Vec<u64>, MapHasher> = HashSet::default();
    let mut stack: Vec<(usize, S)> = Vec::new();
    let mut entry = next[0];
    let mut steps = 0u64;
    while next[0] != usize::MAX {
        steps += 1;
        if steps > steps_max {
            return Verdict::Unknown;
        }
        if entry != usize::MAX && !is_ret(entry) {
            let i = op_of(entry);
            let o = history[i];
            let mut advanced = false;
            if let Some(new_state) = state.step(o.op, o.out) {
                key[i / 64] |= 1 << (i % 64);
                key.truncate(words);
                new_state.write_key(&mut key);
                if !cache.contains(key.as_slice()) {
                    cache.insert(key.clone());
                    let old = std::mem::replace(&mut state, new_state);
                    stack.push((entry, old));
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, ret_of[i]);
                    entry = next[0];
                    advanced = true;
                } else {
                    key[i / 64] &= !(1 << (i % 64));
                }
            }
            if !advanced {
                entry = next[entry];
            }
            continue;
        }
        // An operation returned before it could be placed (or the walk ran off the end):
        // undo the last choice and try the next candidate after it.
        let Some((call, old)) = stack.pop() else {
            return Verdict::Violation;
        };
        let i = op_of(call);
        state = old;
        key[i / 64] &= !(1 << (i % 64));
        relink(&mut next, &mut prev, ret_of[i]);
        relink(&mut next, &mut prev, call);
        entry = next[call];
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, op: Op, out: Output, call: u64, ret: u64) -> Operation {
        Operation {
            client,
            op,
            out,
            call,
            ret,
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            op(1, Op::Set(1), Output::Ok, 0, 1),
            op(1, Op::Get, Output::Value(Some(1)), 2, 3),
            op(1, Op::Del, Output::Removed(true), 4, 5),
            op(1, Op::Get, Output::Value(None), 6, 7),
        ];
        assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_write_is_a_violation() {
        let h = [
            op(1, Op::Set(1), Output::Ok, 0, 1),
            op(2, Op::Set(2), Output::Ok, 2, 3),
            op(3, Op::Get, Output::Value(Some(1)), 4, 5),
        ];
        assert_eq!(check(&h, 1_000_000), Verdict::Violation);
    }

    #[test]
    fn concurrent_reads_may_see_either_order() {
        // The write overlaps both reads: old-then-new is fine.
        let h = [
            op(1, Op::Set(1), Output::Ok, 0, 1),
            op(2, Op::Set(2), Output::Ok, 2, 10),
            op(3, Op::Get, Output::Value(Some(1)), 3, 4),
            op(4, Op::Get, Output::Value(Some(2)), 5, 6),
        ];
        assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
        // New-then-old, with the reads in real-time order, is not.
        let h = [
            op(1, Op::Set(1), Output::Ok, 0, 1),
            op(2, Op::Set(2), Output::Ok, 2, 10),
            op(3, Op::Get, Output::Value(Some(2)), 3, 4),
            op(4, Op::Get, Output::Value(Some(1)), 5, 6),
        ];
        assert_eq!(check(&h, 1_000_000), Verdict::Violation);
    }

    #[test]
    fn unacknowledged_write_may_or_may_not_take_effect() {
        let seen = [
            op(1, Op::Set(1), Output::Unknown, 0, u64::MAX),
            op(2, Op::Get, Output::Value(Some(1)), 5, 6),
        ];
        assert_eq!(check(&seen, 1_000_000), Verdict::Linearizable);
        let unseen = [
            op(1, Op::Set(1), Output::Unknown, 0, u64::MAX),
            op(2, Op::Get, Output::Value(None), 5, 6),
        ];
        assert_eq!(check(&unseen, 1_000_000), Verdict::Linearizable);
    }

    #[test]
    fn lost_acknowledged_write_is_a_violation() {
        let h = [
            op(1, Op::Set(1), Output::Ok, 0, 1),
            op(2, Op::Get, Output::Value(None), 5, 6),
        ];
        assert_eq!(check(&h, 1_000_000), Verdict::Violation);
    }

    #[test]
    fn delete_count_must_match_state() {
        let h = [op(1, Op::Del, Output::Removed(true), 0, 1)];
        assert_eq!(check(&h, 1_000_000), Verdict::Violation);
        let h = [
            op(1, Op::Set(7), Output::Ok, 0, 1),
            op(1, Op::Del, Output::Removed(true), 2, 3),
            op(2, Op::Del, Output::Removed(true), 4, 5),
        ];
        assert_eq!(check(&h, 1_000_000), Verdict::Violation);
    }

    #[test]
    fn many_concurrent_operations_check_quickly() {
        // 4 clients, 100 writes each, overlapping in waves; every read sees the last wave.
        let mut h = Vec::new();
        for wave in 0..100u64 {
            for c in 0..4u64 {
                h.push(op(
                    c,
                    Op::Set(wave * 4 + c),
                    Output::Ok,
                    wave * 10,
                    wave * 10 + 5,
                ));
            }
        }
        assert_eq!(check(&h, 10_000_000), Verdict::Linearizable);
        h.push(op(9, Op::Get, Output::Value(Some(0)), 2000, 2001));
        assert_eq!(check(&h, 10_000_000), Verdict::Violation);
    }

    #[test]
    fn list_histories_check_as_a_sequence() {
        let h = [
            op(1, Op::Push(1), Output::Count(1), 0, 1),
            op(1, Op::Push(2), Output::Count(2), 2, 3),
            op(1, Op::Len, Output::Count(2), 4, 5),
            op(1, Op::Pop, Output::Value(Some(1)), 6, 7),
            op(1, Op::Pop, Output::Value(Some(2)), 8, 9),
            op(1, Op::Pop, Output::Value(None), 10, 11),
            op(1, Op::Len, Output::Count(0), 12, 13),
        ];
        assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
        // Concurrent pushes may land in either order; pops then see that order.
        let h = [
            op(1, Op::Push(1), Output::Count(2), 0, 5),
            op(2, Op::Push(2), Output::Count(1), 0, 5),
            op(1, Op::Pop, Output::Value(Some(2)), 6, 7),
            op(2, Op::Pop, Output::Unknown, 8, u64::MAX),
            op(1, Op::Len, Output::Count(1), 9, 10),
        ];
        assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
    }

    #[test]
    fn two_pops_of_one_element_are_a_violation() {
        let h = [
            op(1, Op::Push(1), Output::Count(1), 0, 1),
            op(1, Op::Pop, Output::Value(Some(1)), 2, 3),
            op(2, Op::Pop, Output::Value(Some(1)), 2, 4),
        ];
        assert_eq!(check(&h, 1_000_000), Verdict::Violation);
        let h = [
            op(1, Op::Push(1), Output::Count(1), 0, 1),
            op(1, Op::Push(2), Output::Count(2), 2, 3),
            op(2, Op::Pop, Output::Value(Some(2)), 4, 5),
        ];
        assert_eq!(check(&h, 1_000_000), Verdict::Violation, "not the head");
        let h = [
            op(1, Op::Push(1), Output::Count(1), 0, 1),
            op(2, Op::Len, Output::Count(0), 2, 3),
        ];
        assert_eq!(
            check(&h, 1_000_000),
            Verdict::Violation,
            "an acknowledged push lost"
        );
    }
}
