//! The server's storage port: [`SyncStore`], the contract every store keeps,
//! an in-memory implementation and the contract test suite that every
//! implementation must pass. Always compiled and free of any runtime (no
//! tokio), so the suite and the memory store also serve native tests.
//!
//! Invariants every store keeps (the contract suite checks each of them):
//! - per user, every accepted change gets a new sequence number, strictly
//!   greater than every earlier one;
//! - a mutation id is applied at most once per user; a repeat answers
//!   [`ChangeResult::Duplicate`] and changes nothing;
//! - a reader never sees a sequence number before every smaller one it could
//!   see has committed (no in-flight gaps in the feed);
//! - users never see nor touch each other's notes: every key is scoped by
//!   [`UserId`].

pub mod accounts;
pub mod batch;
pub mod contract;
pub mod kv;
pub mod memory;

use async_trait::async_trait;
use thiserror::Error;

use crate::domain::{NoteDraft, UserId};
use crate::sync::merge::Strategy;
use crate::sync::protocol::{Change, ChangeResult, Checkpoint, FeedEntry, PullResponse};

pub use accounts::{AccountError, AccountStore, UserRecord};
pub use memory::MemoryStore;

/// Why a store could not do its job. Messages are for the server's log, never
/// for clients.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The store cannot be reached or used right now; retrying may succeed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back as written.
    #[error("the store holds corrupt data: {0}")]
    Corrupt(String),
    /// The disk or the quota is full; nothing of the failed write was kept.
    #[error("the store is full")]
    Full,
    /// A bug: the store was used against its contract.
    #[error("the store was misused: {0}")]
    Invalid(String),
}

/// What one user's notes take: live notes (tombstones hold no text and are
/// not counted) and the bytes of their text, both sides of an unresolved
/// conflict included ([`Usage::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub notes: u64,
    pub bytes: u64,
}

impl Usage {
    /// What one stored note takes.
    pub fn of(stored: &crate::sync::apply::StoredNote) -> Self {
        if stored.note.deleted {
            return Self::default();
        }
        let conflict = stored.conflict.as_ref().map_or(0, |c| {
            c.server.as_ref().map_or(0, NoteDraft::text_bytes)
                + c.client.as_ref().map_or(0, NoteDraft::text_bytes)
        });
        Self {
            notes: 1,
            bytes: (stored.note.text_bytes() + conflict) as u64,
        }
    }

    /// This usage with `old` replaced by `new`.
    pub fn replacing(self, old: Self, new: Self) -> Self {
        Self {
            notes: (self.notes + new.notes).saturating_sub(old.notes),
            bytes: (self.bytes + new.bytes).saturating_sub(old.bytes),
        }
    }
}

/// The most one user may keep; a change that would take them past either
/// limit, and would grow what they keep, is refused with
/// [`RejectCode::Quota`](crate::sync::protocol::RejectCode::Quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max_notes: u64,
    pub max_bytes: u64,
}

impl Quota {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        max_notes: u64::MAX,
        max_bytes: u64::MAX,
    };

    /// Why going from `before` to `after` is refused, if it is: a change
    /// over a limit is refused only if it grows what it is over (deletes
    /// and edits that shrink always go through).
    pub fn refuses(&self, before: Usage, after: Usage) -> Option<String> {
        if after.notes > self.max_notes && after.notes > before.notes {
            return Some(format!(
                "your account is at its limit of {} notes; delete notes to make room (this \
                 change is kept and will be sent again)",
                self.max_notes
            ));
        }
        if after.bytes > self.max_bytes && after.bytes > before.bytes {
            return Some(format!(
                "your account is at its limit of {} MB of text; delete or shorten notes to \
                 make room (this change is kept and will be sent again)",
                self.max_bytes / 1_000_000
            ));
        }
        None
    }
}

/// Where the server keeps every user's notes and change feed.
///
/// Stores are shared by all requests (`Arc<dyn SyncStore>`), so every method
/// takes `&self` and is safe to call concurrently.
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Applies a push batch for `user`, under the conflict `strategy`, at
    /// server time `now_ms`.
    ///
    /// Contract:
    /// - answers exactly one [`ChangeResult`] per change, in order;
    /// - a bad change is answered [`ChangeResult::Rejected`]; it never fails
    ///   the batch, and is not remembered (a corrected retry may succeed);
    /// - idempotent by `(user, mutation_id)`: a mutation id accepted before,
    ///   in an earlier batch or earlier in this one, answers
    ///   [`ChangeResult::Duplicate`] and changes nothing;
    /// - every accepted change gets a new per-user `seq`, strictly greater
    ///   than all earlier ones, and moves its note to that feed position;
    /// - the outcome of each change is decided by [`crate::sync::apply::decide`];
    /// - on `Err`, the memory and embedded stores keep none of the batch (one
    ///   transaction); the KV store, which has no transactions, may keep a
    ///   prefix of its accepted changes (they are in its log and will be
    ///   committed). Either way a retry of the same batch is safe: what was
    ///   kept answers [`ChangeResult::Duplicate`] and the rest applies.
    async fn apply_batch(
        &self,
        user: &UserId,
        changes: &[Change],
        strategy: Strategy,
        now_ms: u64,
    ) -> Result<Vec<ChangeResult>, StoreError> {
        self.apply_batch_within(user, changes, strategy, now_ms, Quota::UNLIMITED)
            .await
    }

    /// [`SyncStore::apply_batch`] within `quota`: a change that
    /// [`Quota::refuses`] for the user's usage as the batch has left it so
    /// far is answered [`ChangeResult::over_quota`], changes nothing and is
    /// not remembered (the same mutation is taken once there is room). The
    /// usage a store keeps per user is the sum of [`Usage::of`] over the
    /// user's notes.
    async fn apply_batch_within(
        &self,
        user: &UserId,
        changes: &[Change],
        strategy: Strategy,
        now_ms: u64,
        quota: Quota,
    ) -> Result<Vec<ChangeResult>, StoreError>;

    /// Reads `user`'s state-based feed after `checkpoint`.
    ///
    /// Contract:
    /// - each note appears at most once, at the `seq` of its latest change;
    ///   entries come oldest first, tombstones included, at most `limit` of
    ///   them (`limit` is at least 1; callers cap it), and no more than
    ///   [`PAGE_TEXT_BUDGET`] of note text unless the page is one entry
    ///   (pages are built by [`PageBuilder`]);
    /// - `has_more` says whether entries after the page exist; the answer's
    ///   checkpoint is then the `seq` of the last entry returned, and
    ///   otherwise the page's `head` (see [`next_checkpoint`]);
    /// - `Checkpoint(0)` is a full snapshot of the live notes and the
    ///   tombstones still kept: that is how a replica resyncs;
    /// - a page's `head` is the last `seq` handed out when it was read, and
    ///   every entry is its note as of then;
    /// - answers [`PullResponse::ResyncRequired`] as [`UserHead::needs_resync`]
    ///   says: when a tombstone the replica needs may have been purged, or
    ///   when the position is beyond the last `seq` ever handed out (it is
    ///   from another store).
    async fn changes_since(
        &self,
        user: &UserId,
        checkpoint: Checkpoint,
        download_head: Option<u64>,
        limit: u32,
    ) -> Result<PullResponse, StoreError>;

    /// The last `seq` readers of `user`'s feed can see now: the `head` a page
    /// read at this moment would carry (0 for a user with no changes). The
    /// server's pokes watch it to tell connected browsers that the feed moved.
    ///
    /// Contract: it never decreases; once `apply_batch` returned, it is at
    /// least the `seq` of every change accepted; it is cheap (one key read),
    /// as it is read once a second for each connected user.
    async fn feed_head(&self, user: &UserId) -> Result<u64, StoreError>;

    /// Drops the tombstones written, and forgets the mutation ids accepted,
    /// before server time `older_than_ms`, for every user.
    ///
    /// Contract: each user whose tombstones were dropped has a purge watermark
    /// at least the highest dropped `seq`; returns how many records (tombstones
    /// plus mutation ids) were removed. Live notes are never dropped.
    async fn purge_expired(&self, older_than_ms: u64) -> Result<u64, StoreError>;
}

/// Most note text (titles, bodies, tags, both sides of a conflict) one pull
/// page carries, unless it is a single entry. Ordinary notes (~1 KB) meet the
/// entry limit first (5,000 of them are ~5 MB); without it, a page of 5,000
/// notes of 20 KB would be 100 MB for a browser to decode and store at once.
pub const PAGE_TEXT_BUDGET: usize = 8 * 1024 * 1024;

/// Collects the entries of one pull page, oldest first: at most the limit,
/// and no entry that would take the page past [`PAGE_TEXT_BUDGET`] once it
/// holds one.
#[derive(Debug)]
pub struct PageBuilder {
    room: usize,
    text_bytes: usize,
    entries: Vec<FeedEntry>,
}

impl PageBuilder {
    /// An empty page of at most `limit` entries (at least 1).
    pub fn new(limit: u32) -> Self {
        Self {
            room: usize::try_from(limit.max(1)).unwrap_or(usize::MAX),
            text_bytes: 0,
            entries: Vec::new(),
        }
    }

    /// Whether the page holds as many entries as its limit allows.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.room
    }

    /// Takes `entry` if the page has room for it; `false` when it has not:
    /// the entry is then the first of the next page, and there is more.
    pub fn take(&mut self, entry: FeedEntry) -> bool {
        let text_bytes = self.text_bytes.saturating_add(entry_text_bytes(&entry));
        let over_budget = text_bytes > PAGE_TEXT_BUDGET;
        if self.is_full() || (!self.entries.is_empty() && over_budget) {
            return false;
        }
        self.text_bytes = text_bytes;
        self.entries.push(entry);
        true
    }

    /// The page, read when the feed's last `seq` was `head`; `has_more` says
    /// whether entries after it exist.
    pub fn finish(self, has_more: bool, head: u64) -> PullResponse {
        let checkpoint = next_checkpoint(&self.entries, has_more, head);
        PullResponse::Page {
            entries: self.entries,
            checkpoint,
            has_more,
            head,
        }
    }
}

/// The note text of `entry` that counts against [`PAGE_TEXT_BUDGET`].
fn entry_text_bytes(entry: &FeedEntry) -> usize {
    let conflict = entry.conflict.as_ref().map_or(0, |c| {
        c.server.as_ref().map_or(0, NoteDraft::text_bytes)
            + c.client.as_ref().map_or(0, NoteDraft::text_bytes)
    });
    entry.note.text_bytes() + conflict
}

/// Where the next pull starts after a page read at `head`: after its last
/// entry while more follow; at `head` once the page reached the end of the
/// feed. Ending at `head` rather than at the last entry matters after a
/// purge: the seqs between them may be purged tombstones, and a replica left
/// below them would be told to resync at its next pull, again and again.
pub fn next_checkpoint(entries: &[FeedEntry], has_more: bool, head: u64) -> Checkpoint {
    match entries.last() {
        Some(last) if has_more => Checkpoint(last.seq),
        _ => Checkpoint(head),
    }
}

/// The feed-position bookkeeping of one user: what the stores keep besides
/// the notes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct UserHead {
    /// The last `seq` handed out (0 if none).
    pub last_seq: u64,
    /// Every tombstone with a `seq` up to this one may have been purged.
    pub purge_watermark: u64,
}

impl UserHead {
    /// Whether a replica pulling at `checkpoint` must download everything
    /// again.
    ///
    /// An incremental pull needs every tombstone after its checkpoint, so it
    /// fails once the watermark passed the checkpoint. A pull continuing a
    /// download from 0 (`download_head` is the head of its first page) holds
    /// only notes as of that head or later: it needs only the tombstones of
    /// deletes after it, so it fails only once the watermark passed that
    /// head. Checkpoint 0 needs nothing and never fails.
    pub fn needs_resync(&self, checkpoint: Checkpoint, download_head: Option<u64>) -> bool {
        if checkpoint.0 == 0 {
            return false;
        }
        let needs_tombstones_after = download_head.unwrap_or(checkpoint.0);
        checkpoint.0 > self.last_seq
            || needs_tombstones_after > self.last_seq
            || needs_tombstones_after < self.purge_watermark
    }
}
