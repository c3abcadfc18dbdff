//! Blocking list pops (`BLPOP`, `BRPOP`, `BLMOVE`): a caller waits on this replica until
//! the log applied a push to one of its keys here, then submits the pop through the log
//! like any command. The log decides which of several waiters (on this node or others)
//! gets an element: a waiter whose pop finds the list empty again waits again.
//!
//! A waiter whose client went away consumes nothing: its task runs on to the end, and if
//! its pop was already in the log and took an element, it gives the element back at the
//! end it came from (a second log entry).

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::*;
use crate::protocol::item::Kind;
use crate::protocol::kv::LMove;
use crate::protocol::list;

/// How often a waiter looks at its keys even without a wake-up (a repair or snapshot
/// install changes the state outside a step that wakes it).
const RECHECK_INTERVAL: Duration = Duration::from_millis(200);

/// How often a held pop looks whether the hold ended (`DebugFault::HoldPops`).
const HOLD_POLL: Duration = Duration::from_millis(10);

/// Blocking pops held by `DebugFault::HoldPops` in this process, on every shard: a debug
/// counter read across executors (`COREPAX.DEBUG HELDPOPS`), so an atomic.
static POPS_HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Blocking pops waiting at the debug hold (`COREPAX.DEBUG HOLDPOPS ON`) now.
pub fn pops_held() -> usize {
    POPS_HELD.load(std::sync::atomic::Ordering::Relaxed)
}

/// Waiters by key, oldest first.
#[derive(Default)]
pub(super) struct ListWaiters {
    by_key: HashMap<Bytes, VecDeque<(u64, Waker)>, MapHasher>,
    next_id: u64,
    /// Debug: woken pops wait before submitting (`DebugFault::HoldPops`).
    pub(super) hold: bool,
}

impl ListWaiters {
    fn register(&mut self, id: u64, keys: &[Bytes], waker: &Waker) {
        for k in keys {
            let q = self.by_key.entry(k.clone()).or_default();
            match q.iter_mut().find(|(w, _)| *w == id) {
                Some((_, w)) if w.will_wake(waker) => {}
                Some((_, w)) => *w = waker.clone(),
                None => q.push_back((id, waker.clone())),
            }
        }
    }

    fn forget(&mut self, id: u64, keys: &[Bytes]) {
        for k in keys {
            if let Some(q) = self.by_key.get_mut(k) {
                q.retain(|(w, _)| *w != id);
                if q.is_empty() {
                    self.by_key.remove(k);
                }
            }
        }
    }
}

/// What a blocking command does once it is woken: the pop it submits, and how to give
/// back what it took for a client that is gone.
#[derive(Clone, Debug)]
pub struct Blocking {
    /// The pop ([`Command::PopFirst`] or [`Command::LMove`]).
    pub cmd: Command,
    /// The keys it waits on.
    pub keys: Vec<Bytes>,
}

impl Blocking {
    /// The command that undoes a pop that answered `reply`, if it took something.
    fn give_back(&self, reply: &Reply) -> Option<Command> {
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
}

/// Whether a reply of a blocking pop took an element (else the list was empty again).
fn took(reply: &Reply) -> bool {
    !matches!(reply, Reply::Value(None))
}

impl Shard {
    /// Wakes, per key that holds a list here, as many of its oldest waiters as the list
    /// has elements.
    pub(super) fn wake_list_waiters(&self) {
        let mut waiters = self.list_waiters.borrow_mut();
        if waiters.by_key.is_empty() {
            return;
        }
        let r = self.replica.borrow();
        let kv = r.kv();
        waiters.by_key.retain(|key, q| {
            let Some(item) = kv.get(key).filter(|i| i.kind() == Kind::List) else {
                return true;
            };
            let n = item.list().map_or(0, list::List::len).min(q.len());
            for (_, w) in q.drain(..n) {
                w.wake();
            }
            !q.is_empty()
        });
    }

    /// Whether one of `keys` holds a list in this replica's state.
    fn any_list(&self, keys: &[Bytes]) -> bool {
        let r = self.replica.borrow();
        keys.iter()
            .any(|k| r.kv().get(k).is_some_and(|i| i.kind() != Kind::String))
    }

    /// Runs a blocking pop: waits until one of its keys holds a list here, submits the
    /// pop, and waits again if another waiter emptied the list first. `Ok(Value(None))`
    /// at `deadline` (never with `None`). If `gone` is set when the pop took an element,
    /// the element is given back and the answer is dropped.
    pub async fn blocking(
        self: &Rc<Self>,
        b: Blocking,
        deadline: Option<Instant>,
        gone: Rc<Cell<bool>>,
    ) -> Result<Reply, SubmitError> {
        loop {
            if gone.get() {
                return Ok(Reply::Value(None));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(Reply::Value(None));
            }
            let wait = left.map_or(RECHECK_INTERVAL, |l| l.min(RECHECK_INTERVAL));
            if !self.any_list(&b.keys) {
                ListReady::new(self.clone(), b.keys.clone())
                    .or_sleep(wait)
                    .await;
                continue;
            }
            self.hold_if_asked().await;
            let reply = self.submit(b.cmd.clone()).await?;
            if !took(&reply) {
                continue;
            }
            if gone.get()
                && let Some(back) = b.give_back(&reply)
            {
                let _ = self.submit(back).await;
            }
            return Ok(reply);
        }
    }
}

impl Shard {
    /// Debug (`DebugFault::HoldPops`): waits while the hold is on, counted in
    /// [`pops_held`]. The pop is submitted after it, whatever became of its client.
    async fn hold_if_asked(&self) {
        if !self.list_waiters.borrow().hold {
            return;
        }
        POPS_HELD.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        while self.list_waiters.borrow().hold {
            glommio::timer::sleep(HOLD_POLL).await;
        }
        POPS_HELD.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Ready once one of the keys holds a list here (or was woken for it).
struct ListReady {
    shard: Rc<Shard>,
    keys: Vec<Bytes>,
    id: u64,
}

impl ListReady {
    fn new(shard: Rc<Shard>, keys: Vec<Bytes>) -> ListReady {
        let id = {
            let mut w = shard.list_waiters.borrow_mut();
            w.next_id += 1;
            w.next_id
        };
        ListReady { shard, keys, id }
    }

    /// This, or a sleep of `wait`, whichever ends first.
    async fn or_sleep(self, wait: Duration) {
        let sleep = glommio::timer::sleep(wait);
        futures_lite::future::or(self, sleep).await;
    }
}

impl Future for ListReady {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.shard.any_list(&this.keys) {
            return Poll::Ready(());
        }
        this.shard
            .list_waiters
            .borrow_mut()
            .register(this.id, &this.keys, cx.waker());
        Poll::Pending
    }
}

impl Drop for ListReady {
    fn drop(&mut self) {
        self.shard
            .list_waiters
            .borrow_mut()
            .forget(self.id, &self.keys);
    }
}
