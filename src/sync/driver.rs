//! The one async part of the sync core: a driver that runs the
//! [`SyncMachine`](super::engine::SyncMachine) against three ports: the
//! replica's storage, the transport to the server, and the host (clock,
//! randomness, wake-ups and notifications).
//!
//! The driver holds no policy of its own: what to push, how to settle an
//! acknowledgement and how to apply a feed entry are the pure rules of
//! [`replica`](super::replica); when to act is the machine's. It is generic,
//! so the browser worker (IndexedDB, fetch, gloo-timers) and the native
//! simulation tests (in-memory replica, the real server service) run the
//! very same code.
//!
//! Invariant: a mutation id is never sent with two different contents. When a
//! push fails after it may have reached the server, the driver remembers each
//! change exactly as it was sent ("in doubt") and resends exactly that until
//! the server answers; edits folded into the entry meanwhile are pushed after
//! it, as a new mutation rebased by [`replica::acknowledge`](super::replica::acknowledge).
//! Otherwise a retry of the same mutation id carrying newer text would be
//! answered `Duplicate` (the older text was applied) and the newer text lost.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::engine::{Action, Event, SyncMachine, SyncStatus, Timing};
use super::outbox::PendingChange;
use super::protocol::{
    ChangeResult, Checkpoint, FeedEntry, PullRequest, PullResponse, PushRequest, PushResponse,
    PROTOCOL_VERSION,
};
use super::replica::{change_for, next_batch};
use crate::domain::{ClientId, MutationId, NoteId, LIMITS};

/// A failure of a port, as the driver needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    /// For a person.
    pub message: String,
    /// Whether a later retry may succeed.
    pub retryable: bool,
    /// Whether the cause is the network being down.
    pub offline: bool,
}

/// The replica's storage.
#[async_trait(?Send)]
pub trait ReplicaStore {
    /// The feed position up to which entries have been applied.
    async fn checkpoint(&self) -> Result<Checkpoint, PortError>;
    /// Every outbox entry, refused ones included.
    async fn outbox(&self) -> Result<Vec<PendingChange>, PortError>;
    /// Settles the outbox after a push, atomically: for each entry that was
    /// sent (as it was sent) and the server's result for it, the entry as it
    /// is now is decided by [`replica::acknowledge`](super::replica::acknowledge)
    /// with the matching fresh id.
    async fn settle(
        &self,
        sent: &[PendingChange],
        results: &[ChangeResult],
        fresh_ids: &[MutationId],
    ) -> Result<(), PortError>;
    /// Applies a pulled page and stores its checkpoint, atomically, each entry
    /// decided by [`replica::apply_entry`](super::replica::apply_entry) and
    /// never replacing a newer revision.
    async fn apply_page(
        &self,
        entries: &[FeedEntry],
        checkpoint: Checkpoint,
    ) -> Result<(), PortError>;
    /// Forgets the checkpoint so that the next pull downloads everything.
    async fn reset_checkpoint(&self) -> Result<(), PortError>;
}

/// The way to the server.
#[async_trait(?Send)]
pub trait Transport {
    /// Sends a batch. A failure means the batch may or may not have been
    /// applied; resending it is safe (mutation ids are idempotent).
    async fn push(&self, request: PushRequest) -> Result<PushResponse, PortError>;
    /// Fetches one page of the feed.
    async fn pull(&self, request: PullRequest) -> Result<PullResponse, PortError>;
}

/// The environment: time, randomness, wake-ups and notifications.
#[async_trait(?Send)]
pub trait Host {
    fn now_ms(&self) -> u64;
    /// A random number, for backoff jitter.
    fn random_u32(&self) -> u32;
    /// A new, unique mutation id.
    fn fresh_mutation_id(&self) -> MutationId;
    /// Whether the platform believes it is online.
    fn online(&self) -> bool;
    /// Waits until `deadline` (Unix ms) or the next event, whichever is
    /// first; `None` waits for an event only. Returns the event, if any.
    async fn wait(&self, deadline: Option<u64>) -> Option<Event>;
    /// Returns an event that already arrived, without waiting.
    fn poll_event(&self) -> Option<Event>;
    /// The status changed.
    fn status(&self, status: &SyncStatus);
    /// A page of server changes was stored: the UI should re-read.
    fn page_applied(&self, entries: usize);
}

/// Sizes the driver works with.
#[derive(Debug, Clone, Copy)]
pub struct DriverConfig {
    pub client_id: ClientId,
    pub timing: Timing,
    /// Entries asked for per pull.
    pub pull_limit: u32,
    /// Changes per push, at most the protocol's batch limit.
    pub push_batch: usize,
}

/// Runs the sync loop over the ports.
pub struct Driver<'a, S, T, H> {
    store: &'a S,
    transport: &'a T,
    host: &'a H,
    config: DriverConfig,
    machine: SyncMachine,
    last_status: Option<SyncStatus>,
    /// The outbox changed since the pending count was last read.
    recount: bool,
    /// Entries, as sent, whose push may or may not have been applied.
    in_doubt: BTreeMap<NoteId, PendingChange>,
}

impl<'a, S: ReplicaStore, T: Transport, H: Host> Driver<'a, S, T, H> {
    pub fn new(store: &'a S, transport: &'a T, host: &'a H, config: DriverConfig) -> Self {
        let machine = SyncMachine::new(config.timing, host.online());
        Self {
            store,
            transport,
            host,
            config,
            machine,
            last_status: None,
            recount: true,
            in_doubt: BTreeMap::new(),
        }
    }

    /// The status the machine shows now.
    pub fn status(&self) -> SyncStatus {
        self.machine.status()
    }

    /// Feeds an event from outside the loop.
    pub fn handle(&mut self, event: Event) {
        if event == Event::LocalChange {
            self.recount = true;
        }
        let now = self.host.now_ms();
        self.machine.handle(event, now);
    }

    /// Runs forever (the worker's loop).
    pub async fn run(&mut self) {
        loop {
            self.step().await;
        }
    }

    /// Does one thing: a push, a pull, or one wait. Returns what it did.
    pub async fn step(&mut self) -> Action {
        while let Some(event) = self.host.poll_event() {
            self.handle(event);
        }
        if self.recount {
            // Even offline, the person must see how much is waiting.
            self.recount = self.count_pending().await.is_err();
        }
        let action = self.machine.next_action(self.host.now_ms());
        self.report();
        match action {
            Action::Push => self.push_once().await,
            Action::Pull => self.pull_once().await,
            Action::WaitUntil(deadline) => {
                if let Some(event) = self.host.wait(Some(deadline)).await {
                    self.handle(event);
                }
            }
            Action::WaitForEvent => {
                if let Some(event) = self.host.wait(None).await {
                    self.handle(event);
                }
            }
        }
        self.report();
        action
    }

    fn report(&mut self) {
        let status = self.machine.status();
        if self.last_status.as_ref() != Some(&status) {
            self.host.status(&status);
            self.last_status = Some(status);
        }
    }

    fn fail(&mut self, error: PortError) {
        let jitter = self.host.random_u32() % 1001;
        self.handle(Event::Failed {
            message: error.message,
            retryable: error.retryable,
            offline: error.offline,
            jitter,
        });
    }

    async fn count_pending(&mut self) -> Result<usize, PortError> {
        let outbox = self.store.outbox().await?;
        let total = u32::try_from(outbox.len()).unwrap_or(u32::MAX);
        self.handle(Event::PendingCount(total));
        Ok(outbox.iter().filter(|p| p.rejected.is_none()).count())
    }

    async fn push_once(&mut self) {
        if let Err(e) = self.try_push().await {
            self.fail(e);
        }
    }

    async fn try_push(&mut self) -> Result<(), PortError> {
        let outbox = self.store.outbox().await?;
        let max = self.config.push_batch.clamp(1, LIMITS.max_batch_changes);
        self.in_doubt.retain(|id, sent| {
            outbox
                .iter()
                .any(|p| p.note_id == *id && p.mutation_id == sent.mutation_id)
        });
        let batch: Vec<PendingChange> = next_batch(outbox, max)
            .into_iter()
            .map(|p| match self.in_doubt.get(&p.note_id) {
                // Same mutation id: resend exactly what may have been applied.
                Some(sent) => sent.clone(),
                None => p,
            })
            .collect();
        if batch.is_empty() {
            self.count_pending().await?;
            self.handle(Event::Pushed { more: false });
            return Ok(());
        }
        let request = PushRequest {
            protocol: PROTOCOL_VERSION,
            client_id: self.config.client_id,
            changes: batch
                .iter()
                .map(|p| change_for(p, self.config.client_id))
                .collect(),
        };
        for p in &batch {
            self.in_doubt.insert(p.note_id, p.clone());
        }
        let response = self.transport.push(request).await?;
        if response.results.len() != batch.len() {
            return Err(PortError {
                message: "the server answered a different number of results than changes sent"
                    .into(),
                retryable: true,
                offline: false,
            });
        }
        let fresh: Vec<MutationId> = batch
            .iter()
            .map(|_| self.host.fresh_mutation_id())
            .collect();
        self.store.settle(&batch, &response.results, &fresh).await?;
        for p in &batch {
            self.in_doubt.remove(&p.note_id);
        }
        let pushable = self.count_pending().await?;
        self.handle(Event::Pushed { more: pushable > 0 });
        Ok(())
    }

    async fn pull_once(&mut self) {
        if let Err(e) = self.try_pull().await {
            self.fail(e);
        }
    }

    async fn try_pull(&mut self) -> Result<(), PortError> {
        let checkpoint = self.store.checkpoint().await?;
        let request = PullRequest {
            protocol: PROTOCOL_VERSION,
            checkpoint,
            limit: self.config.pull_limit.max(1),
        };
        match self.transport.pull(request).await? {
            PullResponse::Page {
                entries,
                checkpoint,
                has_more,
            } => {
                self.store.apply_page(&entries, checkpoint).await?;
                if !entries.is_empty() {
                    self.host.page_applied(entries.len());
                }
                self.count_pending().await?;
                self.handle(Event::Pulled {
                    more: has_more,
                    entries: u32::try_from(entries.len()).unwrap_or(u32::MAX),
                });
            }
            PullResponse::ResyncRequired => {
                self.store.reset_checkpoint().await?;
                self.handle(Event::ResyncStarted);
            }
        }
        Ok(())
    }
}
