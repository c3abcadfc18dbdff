//! List commands of the state machine. A list is a value of [`Kind::List`] holding its
//! elements encoded ([`crate::protocol::list`]); a list that becomes empty is removed,
//! and a list write keeps the key's deadline, as in Redis.

use bytes::Bytes;

use super::{ApplyError, Command, Data, Item, Kind, Reply};
use crate::protocol::expiry::Ttl;
use crate::protocol::list::{self, End, LIST_BYTES_MAX};
use crate::protocol::types::Slot;

/// A list's encoded value with one element taken from an end: the element, and the rest.
fn take_one(value: &[u8], end: End) -> Option<(&[u8], &[u8])> {
    let starts = list::starts(value);
    let n = starts.len() - 1;
    if n == 0 {
        return None;
    }
    let (elem_at, rest) = match end {
        End::Left => (0, &value[starts[1]..starts[n]]),
        End::Right => (n - 1, &value[..starts[n - 1]]),
    };
    let elem = list::elements(&value[starts[elem_at]..]).next()?;
    Some((elem, rest))
}

/// `list` (encoded) with `elem` added at `end`.
fn with_pushed(list_value: &[u8], elem: &[u8], end: End) -> Vec<u8> {
    let mut out = Vec::with_capacity(list_value.len() + list::encoded_len(elem));
    let encoded = list::encode([elem]);
    match end {
        End::Left => {
            out.extend_from_slice(&encoded);
            out.extend_from_slice(list_value);
        }
        End::Right => {
            out.extend_from_slice(list_value);
            out.extend_from_slice(&encoded);
        }
    }
    out
}

impl Data<'_> {
    /// The list a key holds (a shared pointer to it), `Ok(None)` if absent, or WRONGTYPE.
    fn list(&self, key: &[u8]) -> Result<Option<Item>, ApplyError> {
        match self.map.get(key) {
            Some(i) if i.kind() != Kind::List => Err(ApplyError::WrongType),
            i => Ok(i.cloned()),
        }
    }

    /// Stores a list's new encoded value; an empty list removes the key.
    fn store_list(&mut self, key: &[u8], value: &[u8], slot: Slot) {
        if value.is_empty() {
            self.remove_at(key, slot, crate::protocol::watch::ChangeKind::Del);
        } else {
            self.put_kind(key, value, slot, Ttl::Keep, Kind::List);
        }
    }

    /// Answers a list read (`LLEN`, `LRANGE`, `LINDEX`, `TYPE`) from the entries.
    pub(super) fn read_list(&self, cmd: &Command) -> Reply {
        let entries: Vec<Option<super::Entry>> = cmd
            .read_keys()
            .iter()
            .map(|k| self.map.get(k).map(Item::entry))
            .collect();
        cmd.read_reply(&entries)
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
            Command::LMove {
                from,
                to,
                from_end,
                to_end,
            } => self.lmove(slot, from, to, *from_end, *to_end),
            Command::LRem { key, count, value } => self.lrem(slot, key, *count, value),
            Command::LSet { key, index, value } => self.lset(slot, key, *index, value),
            Command::LInsert {
                key,
                before,
                pivot,
                value,
            } => self.linsert(slot, key, *before, pivot, value),
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
        let item = self.list(key)?;
        if item.is_none() && existing {
            return Ok(Reply::Int(0));
        }
        let old = item.as_ref().map_or(&[][..], Item::value);
        let added: usize = values.iter().map(|v| list::encoded_len(v)).sum();
        if old.len() + added > LIST_BYTES_MAX {
            return Err(ApplyError::ListTooLarge);
        }
        let mut out = Vec::with_capacity(old.len() + added);
        match end {
            // LPUSH a b c leaves c b a at the head.
            End::Left => {
                out.extend(list::encode(values.iter().rev().map(|v| &v[..])));
                out.extend_from_slice(old);
            }
            End::Right => {
                out.extend_from_slice(old);
                out.extend(list::encode(values.iter().map(|v| &v[..])));
            }
        }
        let len = list::len(&out);
        drop(item);
        self.store_list(key, &out, slot);
        Ok(Reply::Int(len as i64))
    }

    fn pop(
        &mut self,
        slot: Slot,
        key: &[u8],
        end: End,
        count: Option<u64>,
    ) -> Result<Reply, ApplyError> {
        let Some(item) = self.list(key)? else {
            return Ok(Reply::Value(None));
        };
        let value = item.value();
        let starts = list::starts(value);
        let n = starts.len() - 1;
        let k = count.map_or(1, |c| usize::try_from(c).unwrap_or(usize::MAX).min(n));
        let (taken, rest) = match end {
            End::Left => (&value[..starts[k]], &value[starts[k]..starts[n]]),
            End::Right => (&value[starts[n - k]..starts[n]], &value[..starts[n - k]]),
        };
        let mut popped: Vec<Option<Bytes>> = list::elements(taken)
            .map(|e| Some(Bytes::copy_from_slice(e)))
            .collect();
        if end == End::Right {
            // RPOP answers the tail first.
            popped.reverse();
        }
        let rest = rest.to_vec();
        drop(item);
        self.store_list(key, &rest, slot);
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
        let src = self.list(from)?;
        let dst = self.list(to)?;
        let Some(src) = src else {
            return Ok(Reply::Value(None));
        };
        let Some((elem, rest)) = take_one(src.value(), from_end) else {
            return Ok(Reply::Value(None));
        };
        let elem_bytes = Bytes::copy_from_slice(elem);
        if from == to {
            let rotated = with_pushed(rest, elem, to_end);
            drop(dst);
            drop(src);
            self.store_list(from, &rotated, slot);
            return Ok(Reply::Value(Some(elem_bytes)));
        }
        let dst_value = dst.as_ref().map_or(&[][..], Item::value);
        if dst_value.len() + list::encoded_len(elem) > LIST_BYTES_MAX {
            return Err(ApplyError::ListTooLarge);
        }
        let pushed = with_pushed(dst_value, elem, to_end);
        let rest = rest.to_vec();
        drop(dst);
        drop(src);
        self.store_list(from, &rest, slot);
        self.store_list(to, &pushed, slot);
        Ok(Reply::Value(Some(elem_bytes)))
    }

    fn lrem(
        &mut self,
        slot: Slot,
        key: &[u8],
        count: i64,
        value: &[u8],
    ) -> Result<Reply, ApplyError> {
        let Some(item) = self.list(key)? else {
            return Ok(Reply::Int(0));
        };
        let mut elems: Vec<Option<&[u8]>> = list::elements(item.value()).map(Some).collect();
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs() as usize
        };
        let mut removed = 0;
        let mut drop_matching = |e: &mut Option<&[u8]>| {
            if removed < limit && *e == Some(value) {
                *e = None;
                removed += 1;
            }
        };
        if count < 0 {
            elems.iter_mut().rev().for_each(&mut drop_matching);
        } else {
            elems.iter_mut().for_each(&mut drop_matching);
        }
        if removed == 0 {
            return Ok(Reply::Int(0));
        }
        let kept = list::encode(elems.into_iter().flatten());
        drop(item);
        self.store_list(key, &kept, slot);
        Ok(Reply::Int(removed as i64))
    }

    fn lset(
        &mut self,
        slot: Slot,
        key: &[u8],
        index: i64,
        value: &[u8],
    ) -> Result<Reply, ApplyError> {
        let item = self.list(key)?.ok_or(ApplyError::NoSuchKey)?;
        let out = {
            let elems: Vec<&[u8]> = list::elements(item.value()).collect();
            let at = list::index(elems.len(), index).ok_or(ApplyError::IndexOutOfRange)?;
            let len = item.value().len() - list::encoded_len(elems[at]) + list::encoded_len(value);
            if len > LIST_BYTES_MAX {
                return Err(ApplyError::ListTooLarge);
            }
            list::encode(
                elems
                    .iter()
                    .enumerate()
                    .map(|(i, e)| if i == at { value } else { *e }),
            )
        };
        drop(item);
        self.store_list(key, &out, slot);
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
        let Some(item) = self.list(key)? else {
            return Ok(Reply::Int(0));
        };
        let (out, len) = {
            let elems: Vec<&[u8]> = list::elements(item.value()).collect();
            let Some(at) = elems.iter().position(|e| *e == pivot) else {
                return Ok(Reply::Int(-1));
            };
            if item.value().len() + list::encoded_len(value) > LIST_BYTES_MAX {
                return Err(ApplyError::ListTooLarge);
            }
            let at = if before { at } else { at + 1 };
            let with = elems[..at]
                .iter()
                .copied()
                .chain(std::iter::once(value))
                .chain(elems[at..].iter().copied());
            (list::encode(with), elems.len() + 1)
        };
        drop(item);
        self.store_list(key, &out, slot);
        Ok(Reply::Int(len as i64))
    }

    fn ltrim(
        &mut self,
        slot: Slot,
        key: &[u8],
        start: i64,
        stop: i64,
    ) -> Result<Reply, ApplyError> {
        let Some(item) = self.list(key)? else {
            return Ok(Reply::Ok);
        };
        let kept = {
            let starts = list::starts(item.value());
            let n = starts.len() - 1;
            let (skip, take) = list::range(n, start, stop);
            if take == n {
                // Nothing removed: the list and its version stay.
                return Ok(Reply::Ok);
            }
            item.value()[starts[skip]..starts[skip + take]].to_vec()
        };
        drop(item);
        self.store_list(key, &kept, slot);
        Ok(Reply::Ok)
    }
}
