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
//! Invariants:
//! - a mutation id is never sent with two different contents: before a batch
//!   goes out, each change is recorded in the replica as sent
//!   ([`ReplicaStore::mark_sent`]), and until the server answers, the driver
//!   (this one, or the next one after a restart) resends exactly that copy;
//!   edits folded into the entry meanwhile are pushed after it, as a new
//!   mutation rebased by [`replica::acknowledge`](super::replica::acknowledge);
//! - every download from checkpoint 0 (a first sync, or a resync after the
//!   server purged tombstones this replica never saw) ends by dropping every
//!   stored note the download did not include and that has no pending
//!   change; a download interrupted by a restart starts over, so the set of
//!   notes seen is always complete when it is used;
//! - the pulls after the first page of a download from checkpoint 0 say so
//!   with the first page's `head`, so that the server does not answer
//!   `resync_required` to a download that has not missed anything. After a
//!   restart the download starts over from 0.

use std::collections::BTreeSet;

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
    /// Records each change of `pushed` as sent, atomically, before the push
    /// goes out: every outbox entry with the same mutation id and no sent
    /// copy yet becomes [`PendingChange::marked_sent`].
    async fn mark_sent(&self, pushed: &[PendingChange]) -> Result<(), PortError>;
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
    /// Starts a full download: forgets the checkpoint and records that a
    /// resync is under way, atomically.
    async fn begin_resync(&self) -> Result<(), PortError>;
    /// Whether a resync was begun and not finished (a restart interrupted it).
    async fn resyncing(&self) -> Result<bool, PortError>;
    /// Ends a resync: drops every stored note (and its conflict record) whose
    /// id is not in `present` and that has no pending change, and clears the
    /// resync mark, atomically.
    async fn finish_resync(&self, present: &BTreeSet<NoteId>) -> Result<(), PortError>;
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
    /// The notes the server sent since the resync under way began; `None`
    /// when no resync is under way.
    resync_seen: Option<BTreeSet<NoteId>>,
    /// Whether the replica was asked about an interrupted resync yet.
    resumed: bool,
    /// While a download from checkpoint 0 takes more than one page: the
    /// `head` of its first page, sent with every later pull of it.
    download_head: Option<u64>,
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
            resync_seen: None,
            resumed: false,
            download_head: None,
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
        if !self.resumed {
            match self.resume_resync().await {
                Ok(()) => self.resumed = true,
                Err(e) => self.fail(e),
            }
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

    /// A resync a restart interrupted starts over: the notes it saw before
    /// are not known any more, and pruning needs all of them.
    async fn resume_resync(&mut self) -> Result<(), PortError> {
        if self.store.resyncing().await? {
            self.store.begin_resync().await?;
            self.resync_seen = Some(BTreeSet::new());
            self.handle(Event::ResyncStarted);
        }
        Ok(())
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
        let batch: Vec<PendingChange> = next_batch(outbox, max)
            .iter()
            .map(PendingChange::to_push)
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
        self.store.mark_sent(&batch).await?;
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
        let from = self.store.checkpoint().await?;
        if from.0 == 0 {
            self.download_head = None;
            if self.resync_seen.is_none() {
                // A pull from 0 is a whole snapshot, so the replica can drop
                // what it lacks: a note this device pushed but never pulled
                // back, deleted elsewhere and purged since, is in no page.
                self.store.begin_resync().await?;
                self.resync_seen = Some(BTreeSet::new());
            }
        }
        let request = PullRequest {
            protocol: PROTOCOL_VERSION,
            checkpoint: from,
            limit: self.config.pull_limit.max(1),
            download_head: self.download_head,
        };
        match self.transport.pull(request).await? {
            PullResponse::Page {
                entries,
                checkpoint,
                has_more,
                head,
            } => {
                self.store.apply_page(&entries, checkpoint).await?;
                if !has_more {
                    self.download_head = None;
                } else if from.0 == 0 {
                    self.download_head = Some(head);
                }
                let mut pruned = false;
                if let Some(seen) = &mut self.resync_seen {
                    seen.extend(entries.iter().map(|e| e.note.id));
                    if !has_more {
                        self.store.finish_resync(seen).await?;
                        self.resync_seen = None;
                        pruned = true;
                    }
                }
                if !entries.is_empty() || pruned {
                    self.host.page_applied(entries.len());
                }
                self.count_pending().await?;
                self.handle(Event::Pulled {
                    more: has_more,
                    entries: u32::try_from(entries.len()).unwrap_or(u32::MAX),
                });
            }
            PullResponse::ResyncRequired => {
                self.store.begin_resync().await?;
                self.resync_seen = Some(BTreeSet::new());
                self.handle(Event::ResyncStarted);
            }
        }
        Ok(())
    }
}
