//! Reads answered from the applied state.

use bytes::Bytes;

use super::{ApplyError, Command, Item, Kind, Kv, ReadValue, Reply};

impl Kv {
    /// Answers a read-only command from the applied state, without logging it (a read
    /// mode that made sure this state is fresh enough).
    pub fn read(&self, cmd: &Command) -> Reply {
        self.read_with(cmd, Item::value_bytes)
    }

    /// [`Kv::read`], a `GET`'s value taken from its item by `value` (a reply sent at once
    /// copies it: `reply_buf::read_to_send`).
    pub fn read_with(&self, cmd: &Command, value: impl FnOnce(&Item) -> Bytes) -> Reply {
        if let Command::Get(k) = cmd {
            // The common read, without a list of values.
            return match self.get(k) {
                Some(i) if i.kind() != Kind::String => Reply::Error(ApplyError::WrongType),
                i => Reply::Value(i.map(value)),
            };
        }
        let values: Vec<Option<ReadValue<'_>>> = cmd
            .read_keys()
            .iter()
            .map(|k| self.get(k).map(Item::read_value))
            .collect();
        cmd.answer(&values)
    }
}
