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
//!   restart the download starts over from 0;
//! - a page that did not come from a request (one fetched ahead, or the
//!   changes a poke carried) stands in for a pull only if it is exactly what
//!   that pull would have returned when it was read, and only if no push of
//!   this replica came after it was read.

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::engine::{Action, Event, SyncMachine, SyncStatus, Timing};
use super::outbox::{PendingChange, PendingOp};
use super::protocol::{
    changes_in_one_push, Change, ChangeResult, Checkpoint, FeedEntry, PokedChanges, PullRequest,
    PullResponse, PushRequest, PushResponse, RejectCode, PROTOCOL_VERSION,
};
use super::replica::change_for;
use crate::domain::{ClientId, MutationId, Note, NoteId, Revision, LIMITS};

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
    /// A push refused for its number of changes: the most this server takes
    /// (an older server, or one of a cluster not yet updated, may take fewer
    /// than this build sends).
    pub push_limit: Option<usize>,
    /// The server asked to be left alone this long (a rate limit, or too
    /// busy): the driver waits it out and tries again, without showing an
    /// error.
    pub retry_after_ms: Option<u64>,
}

/// The replica's storage.
#[async_trait(?Send)]
pub trait ReplicaStore {
    /// The feed position up to which entries have been applied.
    async fn checkpoint(&self) -> Result<Checkpoint, PortError>;
    /// How many outbox entries there are, and how many of them may be
    /// pushed (not refused).
    async fn pending_counts(&self) -> Result<PendingCounts, PortError>;
    /// The next entries to push: at most `max` of the outbox's entries that
    /// are not refused, the first in [`replica::push_order`](super::replica::push_order)
    /// ([`replica::next_batch`](super::replica::next_batch) of the whole outbox).
    async fn next_batch(&self, max: usize) -> Result<Vec<PendingChange>, PortError>;
    /// Records each change of `pushed` as sent, atomically, before the push
    /// goes out: every outbox entry with the same mutation id and no sent
    /// copy yet becomes [`PendingChange::marked_sent`].
    async fn mark_sent(&self, pushed: &[PendingChange]) -> Result<(), PortError>;
    /// Settles the outbox after a push, atomically: for each entry that was
    /// sent (as it was sent) and the server's result for it, the entry as it
    /// is now is decided by [`replica::acknowledge`](super::replica::acknowledge)
    /// with the matching fresh id. A note to recreate
    /// ([`AckDecision::Recreate`](super::replica::AckDecision::Recreate)) is
    /// stored under its new id, as held here, and its old id (note, conflict
    /// record) dropped, in the same step; those are returned.
    async fn settle(
        &self,
        sent: &[PendingChange],
        results: &[ChangeResult],
        fresh_ids: &[MutationId],
    ) -> Result<Vec<Recreated>, PortError>;
    /// Applies a pulled page and stores its checkpoint, atomically, each entry
    /// decided by [`replica::apply_entry`](super::replica::apply_entry) and
    /// never replacing a newer revision. Says what it stored.
    async fn apply_page(
        &self,
        entries: &[FeedEntry],
        checkpoint: Checkpoint,
    ) -> Result<Applied, PortError>;
    /// Makes every entry refused for the account's quota pushable again
    /// ([`replica::requeue_over_quota`](super::replica::requeue_over_quota)),
    /// atomically; returns how many.
    async fn requeue_over_quota(&self) -> Result<u32, PortError>;
    /// Starts a full download: forgets the checkpoint and records that a
    /// resync is under way, atomically.
    async fn begin_resync(&self) -> Result<(), PortError>;
    /// Whether a resync was begun and not finished (a restart interrupted it).
    async fn resyncing(&self) -> Result<bool, PortError>;
    /// Ends a resync: drops every stored note (and its conflict record) whose
    /// id is not in `present` and that has no pending change, and clears the
    /// resync mark, atomically. Returns the ids of the notes it dropped.
    async fn finish_resync(&self, present: &BTreeSet<NoteId>) -> Result<Vec<NoteId>, PortError>;
}

/// What applying a pulled page changed in a replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Every note the page wrote, as it is stored now (the server's copy,
    /// or a pending edit rebased on it).
    pub notes: Vec<Note>,
    /// Whether records beside the notes changed too (conflicts, or the kept
    /// text of a note deleted elsewhere).
    pub others: bool,
}

/// A note the server no longer had, saved again under a new id by
/// [`ReplicaStore::settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recreated {
    pub old: NoteId,
    /// The note as now stored, under its new id.
    pub note: Note,
}

/// The note `pending` recreates from `held` (the note as the replica holds
/// it under its old id): the same text under the new id, not yet on the
/// server. `None` when nothing is held.
pub fn recreated_note(held: Option<&Note>, pending: &PendingChange) -> Option<Note> {
    held.map(|held| Note {
        id: pending.note_id,
        rev: Revision::NEW,
        deleted: false,
        ..held.clone()
    })
}

/// What a pull (or a push's answer) changed in the replica, for the UI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaChange {
    /// Notes stored, as they are stored now. Each revision of a note is
    /// stored by a pull at most once with new content, and a local edit
    /// keeps the revision it was read at, so a copy of a note at a lower
    /// revision than this one is older than it, and a copy at the same
    /// revision is as new or newer.
    pub stored: Vec<Note>,
    /// Notes a download from scratch dropped (the server no longer has them).
    pub dropped: Vec<NoteId>,
    /// Whether conflict records or kept texts changed too.
    pub others: bool,
    /// Notes the server no longer had, edited here: each old id, and the new
    /// id its text is now stored and pushed under (also in `stored` and
    /// `dropped`). The page moves its copy, and says so.
    pub recreated: Vec<(NoteId, NoteId)>,
}

/// The size of a replica's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingCounts {
    /// Every entry, refused ones included: what a person sees as waiting.
    pub total: u32,
    /// The entries a push may send.
    pub pushable: u32,
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
    /// A pull changed the replica under the UI.
    fn replica_changed(&self, change: ReplicaChange);
}

/// Sizes the driver works with.
#[derive(Debug, Clone, Copy)]
pub struct DriverConfig {
    pub client_id: ClientId,
    pub timing: Timing,
    /// Entries asked for per pull.
    pub pull_limit: u32,
    /// Entries asked for by the first pull of a download from checkpoint 0:
    /// a small page reaches the screen long before a large one would.
    pub first_pull_limit: u32,
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
    /// The outbox changed since the pending count was last read. While a
    /// push is coming (within the push spacing) the count is left to it, as
    /// it counts after settling anyway: while a person types, a count per
    /// keystroke would be a transaction in the way of their next save.
    recount: bool,
    /// The notes the server sent since the resync under way began; `None`
    /// when no resync is under way.
    resync_seen: Option<BTreeSet<NoteId>>,
    /// Whether the replica was asked about an interrupted resync yet.
    resumed: bool,
    /// While a download from checkpoint 0 takes more than one page: the
    /// `head` of its first page, sent with every later pull of it.
    download_head: Option<u64>,
    /// The next page of a pull that had more, fetched while the page before
    /// it was being stored, with the request that fetched it. Used only by
    /// the very next pull, and only if it would send the same request: a
    /// push in between discards it, since the page predates what the push
    /// changed on the server.
    prefetched: Option<(PullRequest, Result<PullResponse, PortError>)>,
    /// The changes the latest poke carried. The next pull uses them instead
    /// of a request when they cover its checkpoint
    /// ([`PokedChanges::page_from`]) and it does not continue a download of
    /// several pages; a push in between discards them, as it does a page
    /// fetched ahead.
    poked: Option<Box<PokedChanges>>,
    /// The feed head a poke's changes must have been read at, at least, to
    /// be used: every change this replica pushed is at or below it. A
    /// replica does not store the revisions its pushes were answered with
    /// (the pull brings them, in feed order), so changes read before one of
    /// its pushes was applied, and arriving after it, would take its notes
    /// back to older revisions. `u64::MAX` while a push's seq is unknown (a
    /// lost answer, a duplicate) until a pull, read after it, says where the
    /// feed was.
    poke_floor: u64,
    /// Outbox entries the next push reads ([`next_push_size`]).
    push_size: usize,
    /// The most changes the server said it takes in one push, once it
    /// refused a larger one.
    server_push_limit: Option<usize>,
    /// Why a change of the latest pushes was refused for the account's
    /// quota. Refused changes wait; once nothing else is left to push the
    /// reason is shown as an error, and the push after its backoff sends
    /// them again, as space may have been freed meanwhile.
    over_quota: Option<String>,
    /// The last push ended on the quota error: the next one requeues.
    quota_failed: bool,
}

/// Outbox entries the push after this one reads, from this push's `size`,
/// the entries it `read` and the ones that fit in its request (`sent`), at
/// most `most`. A push cut short by the request budget means large notes,
/// likely followed by more of them: reading the whole batch of them again
/// and again would hold hundreds of megabytes to send a few. A full push
/// that fit grows it fourfold, so an import of ordinary notes reaches the
/// full batch by its second push. A push that emptied the outbox says
/// nothing of what comes next: back to `first`.
fn next_push_size(size: usize, read: usize, sent: usize, first: usize, most: usize) -> usize {
    if sent < read {
        sent.max(1)
    } else if read >= size {
        size.saturating_mul(4).min(most)
    } else {
        first.clamp(1, most)
    }
}

/// The first push's read: a quarter of the batch, as the notes' size is not
/// known before it.
fn first_push_size(config: &DriverConfig) -> usize {
    (config.push_batch.clamp(1, LIMITS.max_batch_changes) / 4).max(1)
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
            prefetched: None,
            poked: None,
            poke_floor: 0,
            push_size: first_push_size(&config),
            server_push_limit: None,
            over_quota: None,
            quota_failed: false,
        }
    }

    /// The status the machine shows now.
    pub fn status(&self) -> SyncStatus {
        self.machine.status()
    }

    /// Feeds an event from outside the loop.
    pub fn handle(&mut self, event: Event) {
        match &event {
            Event::LocalChange => self.recount = true,
            Event::Changes(changes) => self.poked = Some(changes.clone()),
            _ => {}
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
        if self.recount && !self.machine.push_coming() {
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

    async fn count_pending(&mut self) -> Result<u32, PortError> {
        let counts = self.store.pending_counts().await?;
        self.recount = false;
        self.handle(Event::PendingCount(counts.total));
        Ok(counts.pushable)
    }

    async fn push_once(&mut self) {
        if let Err(e) = self.try_push().await {
            self.fail_or_wait(e).await;
        }
    }

    /// A failure, unless the server only asked to be left alone a while:
    /// then the driver waits that long (taking events meanwhile) and the
    /// machine, which still wants the push or pull, asks for it again.
    async fn fail_or_wait(&mut self, error: PortError) {
        let Some(wait_ms) = error.retry_after_ms else {
            self.fail(error);
            return;
        };
        let until = self.host.now_ms().saturating_add(wait_ms);
        while self.host.now_ms() < until {
            if let Some(event) = self.host.wait(Some(until)).await {
                self.handle(event);
            }
        }
    }

    /// The failure shown while changes wait for space in the account.
    fn quota_error(message: &str) -> PortError {
        PortError {
            message: message.to_string(),
            retryable: true,
            offline: false,
            push_limit: None,
            retry_after_ms: None,
        }
    }

    async fn try_push(&mut self) -> Result<(), PortError> {
        let most = self
            .config
            .push_batch
            .clamp(1, LIMITS.max_batch_changes)
            .min(self.server_push_limit.unwrap_or(usize::MAX))
            .max(1);
        let max = self.push_size.clamp(1, most);
        if std::mem::take(&mut self.quota_failed) {
            // Space may have been freed since (here, on another device, or
            // by a larger quota): the refused changes go again.
            self.over_quota = None;
            self.store.requeue_over_quota().await?;
        }
        let mut batch: Vec<PendingChange> = self
            .store
            .next_batch(max)
            .await?
            .iter()
            .map(PendingChange::to_push)
            .collect();
        if batch.is_empty() {
            self.count_pending().await?;
            if let Some(reason) = &self.over_quota {
                self.quota_failed = true;
                return Err(Self::quota_error(reason));
            }
            self.handle(Event::Pushed { more: false });
            return Ok(());
        }
        self.prefetched = None;
        self.poked = None;
        let mut changes: Vec<Change> = batch
            .iter()
            .map(|p| change_for(p, self.config.client_id))
            .collect();
        // Large notes go in smaller requests; the rest wait for the next push
        // (the count after settling says more is pending).
        let fits = changes_in_one_push(&changes);
        let first = first_push_size(&self.config);
        self.push_size = next_push_size(max, batch.len(), fits, first, most);
        changes.truncate(fits);
        batch.truncate(fits);
        let request = PushRequest {
            protocol: PROTOCOL_VERSION,
            client_id: self.config.client_id,
            changes,
            account: None,
        };
        self.store.mark_sent(&batch).await?;
        let response = match self.transport.push(request).await {
            Ok(response) => response,
            Err(e) => {
                self.poke_floor = u64::MAX;
                if let Some(limit) = e.push_limit.map(|l| l.max(1)) {
                    self.server_push_limit = Some(limit);
                    self.push_size = self.push_size.min(limit);
                    // Not a failure to show, nor to wait out: the next push
                    // is within the limit, and sends the same changes.
                    if limit < batch.len() {
                        self.handle(Event::Pushed { more: true });
                        return Ok(());
                    }
                }
                return Err(e);
            }
        };
        if response
            .results
            .iter()
            .any(|r| matches!(r, ChangeResult::Duplicate))
        {
            self.poke_floor = u64::MAX;
        } else if let Some(seq) = response.results.iter().filter_map(ChangeResult::seq).max() {
            self.poke_floor = self.poke_floor.max(seq);
        }
        if response.results.len() != batch.len() {
            return Err(PortError {
                message: "the server answered a different number of results than changes sent"
                    .into(),
                retryable: true,
                offline: false,
                push_limit: None,
                retry_after_ms: None,
            });
        }
        let fresh: Vec<MutationId> = batch
            .iter()
            .map(|_| self.host.fresh_mutation_id())
            .collect();
        let recreated = self.store.settle(&batch, &response.results, &fresh).await?;
        if !recreated.is_empty() {
            self.host.replica_changed(ReplicaChange {
                dropped: recreated.iter().map(|r| r.old).collect(),
                recreated: recreated.iter().map(|r| (r.old, r.note.id)).collect(),
                stored: recreated.into_iter().map(|r| r.note).collect(),
                others: true,
            });
        }
        let over_quota = response.results.iter().find_map(|r| match r {
            ChangeResult::Rejected {
                reason,
                code: Some(RejectCode::Quota),
            } => Some(reason.clone()),
            _ => None,
        });
        // A delete that went through frees space: what it freed may be
        // enough for the refused changes, so they go again at once.
        let freed = batch
            .iter()
            .zip(&response.results)
            .any(|(sent, result)| matches!(sent.op, PendingOp::Delete) && result.seq().is_some());
        if let Some(reason) = over_quota {
            self.over_quota = Some(reason);
        }
        if freed && self.over_quota.take().is_some() {
            self.store.requeue_over_quota().await?;
        }
        let pushable = self.count_pending().await?;
        if pushable == 0 {
            if let Some(reason) = &self.over_quota {
                self.quota_failed = true;
                return Err(Self::quota_error(reason));
            }
        }
        self.handle(Event::Pushed { more: pushable > 0 });
        Ok(())
    }

    async fn pull_once(&mut self) {
        if let Err(e) = self.try_pull().await {
            self.fail_or_wait(e).await;
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
        let limit = if from.0 == 0 {
            self.config.first_pull_limit
        } else {
            self.config.pull_limit
        };
        let request = PullRequest {
            protocol: PROTOCOL_VERSION,
            checkpoint: from,
            limit: limit.max(1),
            download_head: self.download_head,
            account: None,
        };
        // Mid-download, the pages must come in order; from checkpoint 0, a
        // poke's changes are used only if they are a whole snapshot (read
        // from 0, and complete as every poke's changes are).
        let poked = self.poked.take().and_then(|changes| {
            (self.download_head.is_none() && changes.head >= self.poke_floor)
                .then(|| changes.page_from(from))
                .flatten()
        });
        let from_poke = poked.is_some();
        let response = match (poked, self.prefetched.take()) {
            (Some(page), _) => page,
            (None, Some((asked, Ok(answer)))) if asked == request => answer,
            _ => self.transport.pull(request).await?,
        };
        if let (false, PullResponse::Page { head, .. }) = (from_poke, &response) {
            // Read after every push answered so far (a push drops pages
            // fetched before it): each of those changes is at or below it.
            self.poke_floor = *head;
        }
        match response {
            PullResponse::Page {
                entries,
                checkpoint,
                has_more,
                head,
            } => {
                let download_head = if !has_more {
                    None
                } else if from.0 == 0 {
                    Some(head)
                } else {
                    self.download_head
                };
                let host = self.host;
                let tell = move |change: ReplicaChange| {
                    if !change.stored.is_empty() || !change.dropped.is_empty() || change.others {
                        host.replica_changed(change);
                    }
                };
                let applying = self.store.apply_page(&entries, checkpoint);
                if has_more {
                    // The next page travels while this one is stored; the
                    // UI hears of this one as soon as it is stored.
                    let next = PullRequest {
                        protocol: PROTOCOL_VERSION,
                        checkpoint,
                        limit: self.config.pull_limit.max(1),
                        download_head,
                        account: None,
                    };
                    let store_and_tell = async {
                        let applied = applying.await?;
                        tell(ReplicaChange {
                            stored: applied.notes,
                            dropped: Vec::new(),
                            others: applied.others,
                            recreated: Vec::new(),
                        });
                        Ok::<(), PortError>(())
                    };
                    let (stored, fetched) =
                        futures::future::join(store_and_tell, self.transport.pull(next.clone()))
                            .await;
                    self.prefetched = Some((next, fetched));
                    stored?;
                    if let Some(seen) = &mut self.resync_seen {
                        seen.extend(entries.iter().map(|e| e.note.id));
                    }
                } else {
                    let applied = applying.await?;
                    let mut change = ReplicaChange {
                        stored: applied.notes,
                        dropped: Vec::new(),
                        others: applied.others,
                        recreated: Vec::new(),
                    };
                    if let Some(seen) = &mut self.resync_seen {
                        seen.extend(entries.iter().map(|e| e.note.id));
                        change.dropped = self.store.finish_resync(seen).await?;
                        self.resync_seen = None;
                    }
                    tell(change);
                }
                self.download_head = download_head;
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

#[cfg(test)]
mod tests {
    use super::next_push_size;

    #[test]
    fn pushes_of_ordinary_notes_grow_to_the_full_batch_and_large_ones_shrink() {
        let next = |size, read, sent| next_push_size(size, read, sent, 500, 2000);
        // An import of ordinary notes: 500, then the full 2,000.
        assert_eq!(next(500, 500, 500), 2000);
        assert_eq!(next(2000, 2000, 2000), 2000);
        // Large notes: only 13 of 500 fit in a request, so 13 are read next.
        assert_eq!(next(500, 500, 13), 13);
        assert_eq!(next(13, 13, 13), 52);
        // The outbox ran out: back to the first size, after large notes or
        // a full batch alike.
        assert_eq!(next(2000, 20, 20), 500);
        assert_eq!(next(13, 1, 1), 500);
        // A single change that fits alone is still sent.
        assert_eq!(next(1, 1, 1), 4);
        assert_eq!(next(8, 8, 0), 1);
        assert_eq!(next_push_size(4, 1, 1, 500, 3), 3);
    }
}
