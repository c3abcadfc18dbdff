//! List commands of the state machine. A list is an item of [`Kind::List`] holding a
//! [`List`] that every write changes in place ([`Data::edit_list`]): a push or a pop costs
//! O(1) amortised however long the list is. A list that becomes empty is removed, and a
//! list write keeps the key's deadline, as in Redis.

use bytes::Bytes;

use super::{ApplyError, Command, Data, Item, Kind, ReadValue, Reply};
use crate::protocol::list::{self, End, LIST_BYTES_MAX, List};
use crate::protocol::types::Slot;

impl Data<'_> {
    /// The list a key holds, `Ok(None)` if absent, or WRONGTYPE.
    fn list(&self, key: &[u8]) -> Result<Option<&List>, ApplyError> {
        match self.map.get(key) {
            Some(i) if i.kind() != Kind::List => Err(ApplyError::WrongType),
            i => Ok(i.and_then(Item::list)),
        }
    }

    /// What the list a key holds counts against [`LIST_BYTES_MAX`] (0 if absent), or
    /// WRONGTYPE.
    fn list_bytes(&self, key: &[u8]) -> Result<usize, ApplyError> {
        Ok(self.list(key)?.map_or(0, List::held_bytes))
    }

    /// Answers a list read (`LLEN`, `LRANGE`, `LINDEX`, `LPOS`, `TYPE`) from the items.
    pub(super) fn read_list(&self, cmd: &Command) -> Reply {
        let values: Vec<Option<ReadValue<'_>>> = cmd
            .read_keys()
            .iter()
            .map(|k| self.map.get(k).map(Item::read_value))
            .collect();
        cmd.answer(&values)
    }

    /// Runs a list command that writes.
    pub(super) fn execute_list(&mut self, slot: Slot, cmd: &Command) -> Reply {
        let result = match cmd {
            Command::Push {
                key,
                values,
                end,
                existing,
            } => self.push(slot, key, values, *end, *existing),
            Command::Pop { key, end, count } => self.pop(slot, key, *end, *count),
            Command::PopFirst { keys, end } => self.pop_first(slot, keys, *end),
            Command::LMove(m) => self.lmove(slot, &m.from, &m.to, m.from_end, m.to_end),
            Command::LRem(r) => self.lrem(slot, &r.key, r.count, &r.value),
            Command::LSet(s) => self.lset(slot, &s.key, s.index, &s.value),
            Command::LInsert(i) => self.linsert(slot, &i.key, i.before, &i.pivot, &i.value),
            Command::LTrim { key, start, stop } => self.ltrim(slot, key, *start, *stop),
            _ => unreachable!("execute_list runs list writes only"),
        };
        result.unwrap_or_else(Reply::Error)
    }

    fn push(
        &mut self,
        slot: Slot,
        key: &[u8],
        values: &[Bytes],
        end: End,
        existing: bool,
    ) -> Result<Reply, ApplyError> {
        let held = self.list(key)?.is_some();
        if !held && existing {
            return Ok(Reply::Int(0));
        }
        let added: usize = values.iter().map(|v| list::held_len(v)).sum();
        if self.list_bytes(key)? + added > LIST_BYTES_MAX {
            return Err(ApplyError::ListTooLarge);
        }
        let len = self.edit_list(key, slot, |l| {
            // LPUSH a b c leaves c b a at the head. Copied: a slice of the command would
            // keep its whole buffer alive as long as the element.
            for v in values {
                l.push(end, Bytes::copy_from_slice(v));
            }
            l.len()
        })?;
        Ok(Reply::Int(len as i64))
    }

    fn pop(
        &mut self,
        slot: Slot,
        key: &[u8],
        end: End,
        count: Option<u64>,
    ) -> Result<Reply, ApplyError> {
        let Some(l) = self.list(key)? else {
            return Ok(Reply::Value(None));
        };
        let k = count.map_or(1, |c| usize::try_from(c).unwrap_or(usize::MAX).min(l.len()));
        // RPOP answers the tail first: the order the pops take them in.
        let mut popped: Vec<Option<Bytes>> =
            self.edit_list(key, slot, |l| (0..k).map(|_| l.pop(end)).collect())?;
        Ok(match count {
            None => Reply::Value(popped.pop().flatten()),
            Some(_) => Reply::Values(popped),
        })
    }

    fn pop_first(&mut self, slot: Slot, keys: &[Bytes], end: End) -> Result<Reply, ApplyError> {
        for key in keys {
            if self.list(key)?.is_some() {
                let Reply::Value(elem) = self.pop(slot, key, end, None)? else {
                    unreachable!("a pop without a count answers a value");
                };
                return Ok(Reply::Values(vec![Some(key.clone()), elem]));
            }
        }
        Ok(Reply::Value(None))
    }

    fn lmove(
        &mut self,
        slot: Slot,
        from: &[u8],
        to: &[u8],
        from_end: End,
        to_end: End,
    ) -> Result<Reply, ApplyError> {
        // Both keys are checked before anything changes.
        let dst_bytes = self.list_bytes(to)?;
        let Some(src) = self.list(from)? else {
            return Ok(Reply::Value(None));
        };
        let at = match from_end {
            End::Left => 0,
            End::Right => src.len().saturating_sub(1),
        };
        let Some(elem) = src.get(at).cloned() else {
            return Ok(Reply::Value(None));
        };
        if from == to {
            // A rotation: the list's size does not change.
            self.edit_list(from, slot, |l| {
                let taken = l.pop(from_end);
                debug_assert_eq!(taken.as_ref(), Some(&elem));
                l.push(to_end, elem.clone());
            })?;
            return Ok(Reply::Value(Some(elem)));
        }
        if dst_bytes + list::held_len(&elem) > LIST_BYTES_MAX {
            return Err(ApplyError::ListTooLarge);
        }
        let to_end = match (self.bug_lmove_wrong_end, to_end) {
            (false, end) => end,
            (true, End::Left) => End::Right,
            (true, End::Right) => End::Left,
        };
        self.edit_list(from, slot, |l| l.pop(from_end))?;
        self.edit_list(to, slot, |l| l.push(to_end, elem.clone()))?;
        Ok(Reply::Value(Some(elem)))
    }

    fn lrem(
        &mut self,
        slot: Slot,
        key: &[u8],
        count: i64,
        value: &[u8],
    ) -> Result<Reply, ApplyError> {
        let Some(l) = self.list(key)? else {
            return Ok(Reply::Int(0));
        };
        let limit = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let matching = |(i, e): (usize, &Bytes)| (e[..] == *value).then_some(i);
        let n = l.len();
        let mut gone: Vec<usize> = if count < 0 {
            let from_tail = l.iter().rev().enumerate().map(|(j, e)| (n - 1 - j, e));
            from_tail.filter_map(matching).take(limit).collect()
        } else {
            l.iter()
                .enumerate()
                .filter_map(matching)
                .take(limit)
                .collect()
        };
        if gone.is_empty() {
            return Ok(Reply::Int(0));
        }
        gone.sort_unstable();
        let removed = gone.len();
        self.edit_list(key, slot, |l| {
            let mut at = 0;
            let mut next = gone.iter().peekable();
            l.retain(|_| {
                let drop = next.next_if_eq(&&at).is_some();
                at += 1;
                !drop
            });
        })?;
        Ok(Reply::Int(removed as i64))
    }

    fn lset(
        &mut self,
        slot: Slot,
        key: &[u8],
        index: i64,
        value: &[u8],
    ) -> Result<Reply, ApplyError> {
        let l = self.list(key)?.ok_or(ApplyError::NoSuchKey)?;
        let at = list::index(l.len(), index).ok_or(ApplyError::IndexOutOfRange)?;
        let old = l.get(at).map_or(0, |e| list::held_len(e));
        if l.held_bytes() - old + list::held_len(value) > LIST_BYTES_MAX {
            return Err(ApplyError::ListTooLarge);
        }
        self.edit_list(key, slot, |l| l.set(at, Bytes::copy_from_slice(value)))?;
        Ok(Reply::Ok)
    }

    fn linsert(
        &mut self,
        slot: Slot,
        key: &[u8],
        before: bool,
        pivot: &[u8],
        value: &[u8],
    ) -> Result<Reply, ApplyError> {
        let Some(l) = self.list(key)? else {
            return Ok(Reply::Int(0));
        };
        let Some(at) = l.iter().position(|e| e[..] == *pivot) else {
            return Ok(Reply::Int(-1));
        };
        if l.held_bytes() + list::held_len(value) > LIST_BYTES_MAX {
            return Err(ApplyError::ListTooLarge);
        }
        let at = if before && !self.bug_insert_after {
            at
        } else {
            at + 1
        };
        let len = self.edit_list(key, slot, |l| {
            l.insert(at, Bytes::copy_from_slice(value));
            l.len()
        })?;
        Ok(Reply::Int(len as i64))
    }

    fn ltrim(
        &mut self,
        slot: Slot,
        key: &[u8],
        start: i64,
        stop: i64,
    ) -> Result<Reply, ApplyError> {
        let Some(l) = self.list(key)? else {
            return Ok(Reply::Ok);
        };
        let n = l.len();
        let (skip, take) = list::range(n, start, stop);
        if take == n {
            // Nothing removed: the list and its version stay.
            return Ok(Reply::Ok);
        }
        // O(elements removed): each a pop from an end.
        self.edit_list(key, slot, |l| {
            for _ in 0..skip {
                l.pop(End::Left);
            }
            for _ in 0..n - skip - take {
                l.pop(End::Right);
            }
        })?;
        Ok(Reply::Ok)
    }
}
