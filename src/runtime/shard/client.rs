//! The node's side of the client path: callers wait for their commands while the sans-IO
//! `protocol::client::ClientPath` forwards, backs off and retries.

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
    /// Submits a command to this shard's group and waits for it to be applied. The first
    /// attempt is made before this returns, so commands submitted one after another are
    /// proposed in that order (and batched together).
    pub fn submit(
        self: &Rc<Self>,
        cmd: Command,
    ) -> impl std::future::Future<Output = Result<Reply, SubmitError>> + 'static {
        self.counters.borrow_mut().commands += 1;
        let (tx, rx) = oneshot::channel();
        let view = LeaderView::of(&*self.replica.borrow());
        let handle = self.client.borrow_mut().submit(self.now(), cmd, view);
        self.callers.borrow_mut().insert(handle, tx);
        self.run_client_path();
        let timeout_ms = self.cfg.request_timeout_ms;
        let index = self.index;
        async move {
            match rx.await {
                Ok(result) => result.map_err(|e| SubmitError::from_client(e, timeout_ms)),
                Err(_) => Err(SubmitError::Storage(format!("shard {index} stopped"))),
            }
        }
    }

    /// Carries out what the client path asked for, until it asks for nothing more.
    pub(super) fn run_client_path(&self) {
        if self.client_running.replace(true) {
            return; // The loop below, further up the stack, takes the new outputs.
        }
        loop {
            let Some(out) = self.client.borrow_mut().pop_output() else {
                break;
            };
            match out {
                ClientOutput::Propose { token, req } => {
                    let now = self.now();
                    self.step(|r| r.on_request(now, token, req));
                }
                ClientOutput::Forward { to, id, req } => {
                    self.counters.borrow_mut().forwarded += 1;
                    let read = req.cmd.is_read_only();
                    let msg = PeerMsg::Forward { id, req };
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
                    if let Some(tx) = self.callers.borrow_mut().remove(&handle) {
                        let _ = tx.send(result);
                    }
                }
                ClientOutput::Wake { at } => self.wake_client(at),
            }
        }
        self.client_running.set(false);
    }

    /// Ticks the client path at `at`: the ticker does within [`TICK_INTERVAL`]; a shorter
    /// back-off (Busy, NotLeader, no leader) gets a timer, unless the last one started
    /// fires at most [`CLIENT_WAKE_COALESCE`] before it.
    pub(super) fn wake_client(&self, at: Nanos) {
        let now = self.now();
        if at >= now + TICK_INTERVAL.as_nanos() as Nanos
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
