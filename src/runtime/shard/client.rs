//! The node's side of the client path: callers wait for their commands while the sans-IO
//! `protocol::client::ClientPath` forwards, backs off and retries.

use std::task::{Poll, Waker};

use super::*;

/// Why a client command failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitError {
    /// No leader answered in time; the command may or may not have taken effect.
    #[error(
        "TIMEOUT no answer from the group's leader within {0} ms; the command may or may not have taken effect"
    )]
    Timeout(u64),
    /// The shard's log cannot be written; nothing more is acknowledged.
    #[error("IOERR the write-ahead log failed: {0}")]
    Storage(String),
    /// This node's disk is full and no other replica is known to lead: the write was not
    /// proposed. The node resumes by itself once space is available.
    #[error(
        "IOERR disk full: this node refuses writes until space is available (no other leader is known to take them): {0}"
    )]
    DiskFull(String),
    /// The command is larger than a WAL record can hold; it was not proposed.
    #[error("ERR command of {bytes} bytes exceeds the limit of {bytes_max} bytes")]
    TooLarge {
        /// Its size (an upper bound of its encoding).
        bytes: usize,
        /// `limits::COMMAND_BYTES_MAX`.
        bytes_max: usize,
    },
}

impl SubmitError {
    /// The runtime's form of the client path's error.
    fn from_client(e: ClientError, timeout_ms: u64) -> SubmitError {
        match e {
            ClientError::Timeout => SubmitError::Timeout(timeout_ms),
            ClientError::Storage(why) => SubmitError::Storage(why),
            ClientError::TooLarge { bytes, bytes_max } => {
                SubmitError::TooLarge { bytes, bytes_max }
            }
        }
    }
}

impl Shard {
    /// Submits a command to this shard's group and waits for it to be applied. Commands
    /// submitted one after another are proposed in that order (and batched together).
    pub fn submit(self: &Rc<Self>, cmd: Command) -> Submitted {
        self.counters.borrow_mut().commands += 1;
        self.ticker.wake();
        if let Some(refused) = self.refused_for_disk_full(&cmd) {
            return Submitted {
                shard: self.clone(),
                handle: None,
                refused: Some(refused),
            };
        }
        let view = LeaderView::of(&*self.replica.borrow());
        // The pipeline's shared reading (`Shard::sharing_one_clock_reading`): the time
        // only sets the command's deadline and forward resend, so a reading some
        // microseconds old does; one per command was a third of a leader's readings.
        let handle = self.client.borrow_mut().submit(self.reads_now(), cmd, view);
        self.callers
            .borrow_mut()
            .insert(handle, Call::Waiting(None));
        // Proposed when the caller first waits (`Submitted::poll`) or at the next tick:
        // a pipeline's commands, submitted one after another, go to the core in one step.
        Submitted {
            shard: self.clone(),
            handle: Some(handle),
            refused: None,
        }
    }

    /// Prefetches the items of the keys `keys` gives, for reads that come soon
    /// ([`crate::protocol::Kv::prefetch_keys`]); `keys` is not called where this replica
    /// will not read them soon:
    /// - in `log` mode, where a read is applied with its batch, which prefetches its keys
    ///   then;
    /// - where only the leader reads (`leader-lease`, `read-index`) and this replica does
    ///   not lead: its reads are forwarded, and a follower driven with pipelined GETs
    ///   spent 3 % of its samples prefetching items it never read
    ///   (results/forwarded-reads-prefetch-20261205/).
    pub fn prefetch_reads(&self, keys: impl FnOnce(&mut dyn FnMut(&[u8]))) {
        let mode = self.cfg.protocol.read_mode;
        let replica = self.replica.borrow();
        if mode.reads_through_log()
            || (!mode.reads_away_from_leader() && replica.leadership().is_none())
        {
            return;
        }
        replica.kv().prefetch_keys(keys);
    }

    /// The answer to a read this replica can give at once (a lease read, see
    /// `Replica::read_now`): no session, no step, no waiting. `None`: submit it.
    pub fn read_now(&self, cmd: &Command) -> Option<Reply> {
        let reply = self.answer_now(cmd)?;
        self.counters.borrow_mut().commands += 1;
        Some(reply)
    }

    /// [`Shard::read_now`] without counting a command: for a read another replica
    /// forwarded here (that replica counted it).
    pub(super) fn answer_now(&self, cmd: &Command) -> Option<Reply> {
        let now = self.reads_now();
        self.client
            .borrow()
            .read_now(&mut *self.replica.borrow_mut(), now, cmd)
    }

    /// Carries out what the client path asked for, until it asks for nothing more.
    pub(super) fn run_client_path(&self) {
        if self.client_running.replace(true) {
            return; // The loop below, further up the stack, takes the new outputs.
        }
        // One clock reading for the wake-ups the run asks for, not one per forwarded
        // command (each asks for its resend, 500 ms on, which the ticker serves): a
        // back-off's timer then ends at most the run's length late.
        let mut wake_now: Option<Nanos> = None;
        loop {
            let Some(out) = self.client.borrow_mut().pop_output() else {
                break;
            };
            match out {
                ClientOutput::Propose { token, req } => {
                    let mut reqs = self.proposals.take();
                    reqs.push((token, req));
                    self.client.borrow_mut().pop_proposals(&mut reqs);
                    let now = self.now();
                    self.step(|r| r.on_requests(now, reqs.drain(..)));
                    self.proposals.set(reqs);
                }
                ClientOutput::Forward { to, id, req } => {
                    self.counters.borrow_mut().forwarded += 1;
                    let answered_there = self.replica.borrow_mut().expect_forwarded(id, &req);
                    let read = req.cmd.is_read_only();
                    let msg = PeerMsg::Forward {
                        id,
                        req,
                        answered_there,
                    };
                    if read {
                        let bytes = self.send_peer_counted(to, &msg);
                        self.counters.borrow_mut().read_bytes_sent += bytes;
                    } else {
                        self.send_peer(to, &msg);
                    }
                }
                ClientOutput::ForwardReply { to, id, reply } => {
                    self.send_peer(to, &PeerMsg::ForwardReply { id, reply });
                }
                ClientOutput::Finish { handle, result } => {
                    if result.is_err() {
                        self.counters.borrow_mut().errors += 1;
                    }
                    // A caller that went away (its connection closed) has no entry.
                    if let Some(call) = self.callers.borrow_mut().get_mut(&handle)
                        && let Call::Waiting(Some(waker)) =
                            std::mem::replace(call, Call::Done(result))
                    {
                        waker.wake();
                    }
                }
                ClientOutput::Wake { at } => {
                    let now = *wake_now.get_or_insert_with(|| self.now());
                    self.wake_client(now, at);
                }
            }
        }
        self.client_running.set(false);
    }

    /// Ticks the client path at `at`: the ticker does within [`TICK_INTERVAL`] (a shard
    /// with a caller waiting is busy); a shorter
    /// back-off (Busy, NotLeader, no leader) gets a timer, unless the last one started
    /// fires at most [`CLIENT_WAKE_COALESCE`] before it. `now`: a clock reading taken
    /// at most the current run of the client path ago.
    pub(super) fn wake_client(&self, now: Nanos, at: Nanos) {
        if at >= now + super::ticker::TICK_INTERVAL.as_nanos() as Nanos
            || self
                .client_wake_at
                .get()
                .is_some_and(|w| w <= at && at - w <= CLIENT_WAKE_COALESCE.as_nanos() as Nanos)
        {
            return;
        }
        let Some(shard) = self.me.upgrade() else {
            return;
        };
        self.client_wake_at.set(Some(at));
        glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_nanos(at.saturating_sub(now))).await;
            if shard.client_wake_at.get() == Some(at) {
                shard.client_wake_at.set(None);
            }
            shard.tick_client();
        })
        .detach();
    }

    /// Back-offs that ended retry; commands past their deadline fail.
    pub(super) fn tick_client(&self) {
        let now = self.now();
        let view = LeaderView::of(&*self.replica.borrow());
        self.client.borrow_mut().tick(now, view);
        self.run_client_path();
    }
}

/// A local caller's command in progress.
pub(super) enum Call {
    /// Not finished; the waker of the task waiting for it, once it polled.
    Waiting(Option<Waker>),
    /// Finished, not yet taken.
    Done(Result<Reply, ClientError>),
}

/// A command submitted to this shard's group (`Shard::submit`): its answer. Dropping it
/// forgets the answer (the command itself still runs to its end).
pub struct Submitted {
    shard: Rc<Shard>,
    /// `None` when the command was refused before the client path saw it.
    handle: Option<Handle>,
    refused: Option<SubmitError>,
}

impl std::future::Future for Submitted {
    type Output = Result<Reply, SubmitError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(handle) = this.handle else {
            let refused = this.refused.take();
            return Poll::Ready(Err(refused.unwrap_or_else(|| {
                SubmitError::Storage("the command was refused and its answer taken".into())
            })));
        };
        let shard = &this.shard;
        shard.run_client_path();
        let mut callers = shard.callers.borrow_mut();
        let Some(call) = callers.get_mut(&handle) else {
            return Poll::Ready(Err(SubmitError::Storage(format!(
                "shard {} stopped",
                shard.index
            ))));
        };
        match call {
            Call::Waiting(waker) => {
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Call::Done(_) => {
                let Some(Call::Done(result)) = callers.remove(&handle) else {
                    unreachable!("matched Done above");
                };
                this.handle = None; // Taken: nothing left for `drop` to remove.
                let timeout_ms = shard.cfg.request_timeout_ms;
                Poll::Ready(result.map_err(|e| SubmitError::from_client(e, timeout_ms)))
            }
        }
    }
}

impl Drop for Submitted {
    fn drop(&mut self) {
        if let Some(handle) = self.handle {
            self.shard.callers.borrow_mut().remove(&handle);
        }
    }
}
