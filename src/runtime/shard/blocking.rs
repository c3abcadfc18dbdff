//! Blocking list pops (`BLPOP`, `BRPOP`, `BLMOVE`), driven with futures and timers: the
//! decisions are [`crate::protocol::blocking`]'s (the simulator drives the same). A caller
//! waits on this replica until the log applied a push to one of its keys here, then
//! submits the pop through the log like any command. The log decides which of several
//! waiters (on this node or others) gets an element: a waiter whose pop finds the list
//! empty again waits again. At the deadline the pop is submitted a last time, so a nil
//! answer is the log's, not this replica's possibly lagging state.
//!
//! A waiter whose client went away consumes nothing: its task runs on to the end, and if
//! its pop was already in the log and took an element, it gives the element back at the
//! end it came from (a second log entry).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::*;
pub use crate::protocol::blocking::Blocking;
use crate::protocol::blocking::{self, BlockingPop, Next};

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

/// Waiters by key, oldest first ([`protocol::blocking::ListWaiters`]), and the task each
/// wakes.
#[derive(Default)]
pub(super) struct ListWaiters {
    queue: blocking::ListWaiters,
    wakers: HashMap<u64, Waker, MapHasher>,
    next_id: u64,
    /// Debug: woken pops wait before submitting (`DebugFault::HoldPops`).
    pub(super) hold: bool,
}

impl ListWaiters {
    fn register(&mut self, id: u64, keys: &[Bytes], waker: &Waker) {
        self.queue.register(id, keys);
        match self.wakers.get_mut(&id) {
            Some(w) if w.will_wake(waker) => {}
            Some(w) => *w = waker.clone(),
            None => {
                self.wakers.insert(id, waker.clone());
            }
        }
    }

    fn forget(&mut self, id: u64, keys: &[Bytes]) {
        self.queue.forget(id, keys);
        self.wakers.remove(&id);
    }
}

impl Shard {
    /// Wakes, per key that holds a list here, as many of its oldest waiters as the list
    /// has elements.
    pub(super) fn wake_list_waiters(&self) {
        let mut waiters = self.list_waiters.borrow_mut();
        if waiters.queue.is_empty() {
            return;
        }
        let r = self.replica.borrow();
        let mut woken = Vec::new();
        waiters.queue.wake(r.kv(), &mut woken);
        for id in woken {
            if let Some(w) = waiters.wakers.get(&id) {
                w.wake_by_ref();
            }
        }
    }

    /// Whether one of `b`'s keys holds a list in this replica's state.
    fn any_list(&self, b: &Blocking) -> bool {
        b.ready(self.replica.borrow().kv())
    }

    /// Runs a blocking pop ([`BlockingPop`]): waits until one of its keys holds a list
    /// here, submits the pop, and waits again if another waiter emptied the list first;
    /// at `deadline` (never with `None`) submits it a last time and answers what the log
    /// decided. If `gone` is set when the pop took an element, the element is given back
    /// and the answer is dropped.
    pub async fn blocking(
        self: &Rc<Self>,
        b: Blocking,
        deadline: Option<Instant>,
        gone: Rc<Cell<bool>>,
    ) -> Result<Reply, SubmitError> {
        let mut pop = BlockingPop::new(b);
        loop {
            if gone.get() {
                return Ok(Reply::Value(None));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                pop.expire();
            }
            let next = pop.next(self.replica.borrow().kv());
            let cmd = match next {
                Next::Submit(cmd) => cmd,
                Next::Wait => {
                    let wait = left.map_or(RECHECK_INTERVAL, |l| l.min(RECHECK_INTERVAL));
                    ListReady::new(self.clone(), pop.b.clone())
                        .or_sleep(wait)
                        .await;
                    continue;
                }
            };
            self.hold_if_asked().await;
            let reply = self.submit(cmd).await?;
            let Some(reply) = pop.on_reply(reply) else {
                continue;
            };
            if gone.get()
                && let Some(back) = pop.b.give_back(&reply)
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
    b: Blocking,
    id: u64,
}

impl ListReady {
    fn new(shard: Rc<Shard>, b: Blocking) -> ListReady {
        let id = {
            let mut w = shard.list_waiters.borrow_mut();
            w.next_id += 1;
            w.next_id
        };
        ListReady { shard, b, id }
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
        if this.shard.any_list(&this.b) {
            return Poll::Ready(());
        }
        this.shard
            .list_waiters
            .borrow_mut()
            .register(this.id, &this.b.keys, cx.waker());
        Poll::Pending
    }
}

impl Drop for ListReady {
    fn drop(&mut self) {
        self.shard
            .list_waiters
            .borrow_mut()
            .forget(self.id, &self.b.keys);
    }
}
