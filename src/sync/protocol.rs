//! The versioned wire protocol between a replica and the server.
//!
//! History of [`PROTOCOL_VERSION`] (any change to a type below bumps it, and
//! the history says what changed):
//! - 1: push of change batches with per-change results; checkpointed pull of
//!   a state-based feed (one entry per note, at its latest sequence number);
//!   `resync_required` when a checkpoint predates the tombstone retention.
//! - 2: a page says the feed's `head` when it was read, and a pull that
//!   continues a download from checkpoint 0 sends the `head` of that
//!   download's first page as `download_head`. Before, the second page of a
//!   full download of more than one page after a tombstone purge was answered
//!   `resync_required` again, forever. Both fields are optional on the wire,
//!   so version 1 requests keep their meaning and are still accepted.
//! - 3: a feed entry carries the clock of the note's latest change (`hlc`),
//!   so a replica's next edits order after what it pulled whatever its own
//!   clock says; the server accepts no number a browser cannot read back
//!   (above 2^53 - 1) and bounds a change's clock by its own; a conflict
//!   record names the replica behind each side (`server_by`, `client_by`).
//!   A push and a pull may name the `account` the replica's local data
//!   belongs to: the server refuses a request whose session is another
//!   account's ([`AppError::AccountMismatch`](crate::api::AppError)) and
//!   changes nothing, so a browser whose cookie now belongs to someone else
//!   (another tab signed in as them) can neither push one person's notes
//!   into the other's account nor pull the other's notes into its database.
//!   The poke stream takes the same name as its `account` query parameter.
//!   A refused change may carry a `code` the client acts on ([`RejectCode`]).
//!   Requests of versions 1 and 2 mean what they meant, and every new field
//!   is optional.
//!
//! The poke stream's [`Poke`] is not versioned by this number: its `changes`
//! are optional, and a client that predates them reads only `seq` (and the
//! oldest ones nothing at all) and pulls.
//!
//! Every request carries its `protocol` version. The server refuses a version
//! outside [`SUPPORTED_PROTOCOLS`] with [`ProtocolError::UnsupportedVersion`]
//! instead of guessing.

use serde::{Deserialize, Serialize};

use super::hlc::Hlc;
use crate::domain::{
    ClientId, DomainError, MutationId, Note, NoteDraft, NoteId, Revision, UserId, LIMITS,
};
use crate::wire::{needed, WireError};

/// The version of the protocol this build speaks.
pub const PROTOCOL_VERSION: u32 = 3;

/// The versions a server answers: every one whose requests still mean what
/// they meant when it was current.
pub const SUPPORTED_PROTOCOLS: std::ops::RangeInclusive<u32> = 1..=PROTOCOL_VERSION;

/// Largest pull page the server returns, whatever the client asks for.
pub const MAX_PULL_LIMIT: u32 = 5_000;

/// The largest push request a client builds, in bytes of JSON: the server's
/// request limit less room for the envelope (version, client id, field
/// names). A batch of 500 notes of 17 KB would be over the server's limit,
/// and refused whole, again and again; [`changes_in_one_push`] keeps to this.
pub const PUSH_REQUEST_BUDGET: usize = LIMITS.max_request_bytes - 64 * 1024;

/// A position in a user's change feed: the sequence number of the last feed
/// entry a replica has applied. `Checkpoint(0)` is the start of the feed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Checkpoint(pub u64);

/// What a change does to its note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "ChangeOpWire")]
pub enum ChangeOp {
    /// Create the note or replace its content.
    Upsert(NoteDraft),
    /// Delete the note (the server keeps a tombstone for the retention window).
    Delete,
}

/// [`ChangeOp`] as read (crate::wire says why): an upsert's draft fields sit
/// beside the tag.
#[derive(Deserialize)]
struct ChangeOpWire {
    kind: ChangeOpKind,
    title: Option<String>,
    body: Option<String>,
    tags: Option<Vec<String>>,
    #[serde(default)]
    pinned: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChangeOpKind {
    Upsert,
    Delete,
}

impl TryFrom<ChangeOpWire> for ChangeOp {
    type Error = WireError;

    fn try_from(wire: ChangeOpWire) -> Result<Self, WireError> {
        const UPSERT: &str = "upsert";
        Ok(match wire.kind {
            ChangeOpKind::Upsert => ChangeOp::Upsert(NoteDraft {
                title: needed(wire.title, UPSERT, "title")?,
                body: needed(wire.body, UPSERT, "body")?,
                tags: needed(wire.tags, UPSERT, "tags")?,
                pinned: wire.pinned,
            }),
            ChangeOpKind::Delete => ChangeOp::Delete,
        })
    }
}

/// One local change, as pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Unique per client; the server applies a mutation id at most once.
    pub mutation_id: MutationId,
    pub note_id: NoteId,
    /// The server revision the edit started from ([`Revision::NEW`] for a new note).
    pub base_rev: Revision,
    /// The content at `base_rev`, for the three-way merge when the server has
    /// moved on; `None` when `base_rev` is new or the base was a tombstone.
    pub base: Option<NoteDraft>,
    pub op: ChangeOp,
    /// When the edit was made, for last-writer-wins fields.
    pub hlc: Hlc,
    /// When the note was created on its first device (Unix ms).
    pub created_at: u64,
}

/// A batch of changes from one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest {
    pub protocol: u32,
    pub client_id: ClientId,
    pub changes: Vec<Change>,
    /// The account whose local data these changes are; the server refuses
    /// the push if the session is another account's. Since version 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<UserId>,
}

/// The server's answer to one change, in the order of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "result",
    rename_all = "snake_case",
    try_from = "ChangeResultWire"
)]
pub enum ChangeResult {
    /// Applied as sent: the base was current.
    Applied { rev: Revision, seq: u64 },
    /// The base was stale: the server resolved the change against the current
    /// version with its conflict policy and stored the result. `conflicted`
    /// means a person should compare and choose (both texts are kept).
    Merged {
        rev: Revision,
        seq: u64,
        conflicted: bool,
    },
    /// This mutation id was applied before (a retry); nothing changed now.
    Duplicate,
    /// The change was refused: never to be accepted as it is, unless `code`
    /// says otherwise. `reason` is for people.
    Rejected {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<RejectCode>,
    },
}

/// Why a change was refused, for a client to act on; a refusal without a
/// code is final for the change as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The account is over its quota of notes or bytes. Deletes and changes
    /// that free space are always accepted; this change may be accepted
    /// once space is freed (by any device), so it is kept and sent again.
    Quota,
    /// The change starts from a revision of a note the server does not have:
    /// the note was deleted elsewhere and its tombstone purged, or the
    /// server was restored from an older backup. The client saves the text
    /// as a new note.
    Gone,
}

impl ChangeResult {
    /// A refusal for being over the account's quota.
    pub fn over_quota(reason: String) -> Self {
        Self::Rejected {
            reason,
            code: Some(RejectCode::Quota),
        }
    }

    /// A refusal with no code: final for the change as sent.
    pub fn rejected(reason: impl Into<String>) -> Self {
        Self::Rejected {
            reason: reason.into(),
            code: None,
        }
    }
}

impl ChangeResult {
    /// The feed position the change was stored at, if it was stored now.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Self::Applied { seq, .. } | Self::Merged { seq, .. } => Some(*seq),
            Self::Duplicate | Self::Rejected { .. } => None,
        }
    }
}

/// [`ChangeResult`] as read (crate::wire says why).
#[derive(Deserialize)]
struct ChangeResultWire {
    result: ChangeResultKind,
    rev: Option<Revision>,
    seq: Option<u64>,
    conflicted: Option<bool>,
    reason: Option<String>,
    #[serde(default)]
    code: Option<RejectCodeWire>,
}

/// [`RejectCode`] as read: a code this build does not know reads as none.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RejectCodeWire {
    Quota,
    Gone,
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChangeResultKind {
    Applied,
    Merged,
    Duplicate,
    Rejected,
}

impl TryFrom<ChangeResultWire> for ChangeResult {
    type Error = WireError;

    fn try_from(wire: ChangeResultWire) -> Result<Self, WireError> {
        const APPLIED: &str = "applied";
        const MERGED: &str = "merged";
        Ok(match wire.result {
            ChangeResultKind::Applied => ChangeResult::Applied {
                rev: needed(wire.rev, APPLIED, "rev")?,
                seq: needed(wire.seq, APPLIED, "seq")?,
            },
            ChangeResultKind::Merged => ChangeResult::Merged {
                rev: needed(wire.rev, MERGED, "rev")?,
                seq: needed(wire.seq, MERGED, "seq")?,
                conflicted: needed(wire.conflicted, MERGED, "conflicted")?,
            },
            ChangeResultKind::Duplicate => ChangeResult::Duplicate,
            ChangeResultKind::Rejected => ChangeResult::Rejected {
                reason: needed(wire.reason, "rejected", "reason")?,
                code: match wire.code {
                    Some(RejectCodeWire::Quota) => Some(RejectCode::Quota),
                    Some(RejectCodeWire::Gone) => Some(RejectCode::Gone),
                    Some(RejectCodeWire::Unknown) | None => None,
                },
            },
        })
    }
}

/// The server's answer to a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    pub results: Vec<ChangeResult>,
}

/// A request for the feed entries after `checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub protocol: u32,
    pub checkpoint: Checkpoint,
    /// Most entries wanted; the server caps it at [`MAX_PULL_LIMIT`].
    pub limit: u32,
    /// Set on the pulls that continue a download begun at checkpoint 0: the
    /// `head` of that download's first page. Such a pull needs no tombstone
    /// below its checkpoint, only those of deletes after the download began
    /// (of notes it may already have received), so the server checks purges
    /// against this instead of against the checkpoint. Since version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_head: Option<u64>,
    /// The account whose local data the pulled entries are for; the server
    /// refuses the pull if the session is another account's. Since version 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<UserId>,
}

/// The two sides of a conflict the person should resolve; `None` is a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictSides {
    /// The server's version when the conflicting change arrived.
    pub server: Option<NoteDraft>,
    /// The pushing client's version.
    pub client: Option<NoteDraft>,
    /// The replica that wrote `server`, when known (its clock's client), so
    /// that a device can tell its own version. Since version 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_by: Option<ClientId>,
    /// The replica that pushed `client`, when known. Since version 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_by: Option<ClientId>,
}

/// One feed entry: a note as it is now, at the sequence number of its latest
/// change. Tombstones are entries too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    pub seq: u64,
    pub note: Note,
    /// Set while the note holds an unresolved conflict.
    pub conflict: Option<ConflictSides>,
    /// The clock of the note's latest change (bounded by the server's clock),
    /// which a replica takes in so that its next edits order after it.
    /// Since version 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hlc: Option<Hlc>,
}

/// The server's answer to a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "PullResponseWire")]
pub enum PullResponse {
    /// Entries with `seq > checkpoint`, oldest first. `checkpoint` is where
    /// the next pull starts; `has_more` says whether to pull again at once.
    Page {
        entries: Vec<FeedEntry>,
        checkpoint: Checkpoint,
        has_more: bool,
        /// The last sequence number handed out when this page was read; every
        /// entry is the note as it was then. Since version 2 (0 before).
        #[serde(default)]
        head: u64,
    },
    /// The checkpoint is older than the tombstone retention window: the
    /// replica must download everything again (keeping its outbox).
    ResyncRequired,
}

/// [`PullResponse`] as read (crate::wire says why).
#[derive(Deserialize)]
struct PullResponseWire {
    kind: PullResponseKind,
    entries: Option<Vec<FeedEntry>>,
    checkpoint: Option<Checkpoint>,
    has_more: Option<bool>,
    #[serde(default)]
    head: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum PullResponseKind {
    Page,
    ResyncRequired,
}

impl TryFrom<PullResponseWire> for PullResponse {
    type Error = WireError;

    fn try_from(wire: PullResponseWire) -> Result<Self, WireError> {
        const PAGE: &str = "page";
        Ok(match wire.kind {
            PullResponseKind::Page => PullResponse::Page {
                entries: needed(wire.entries, PAGE, "entries")?,
                checkpoint: needed(wire.checkpoint, PAGE, "checkpoint")?,
                has_more: needed(wire.has_more, PAGE, "has_more")?,
                head: wire.head,
            },
            PullResponseKind::ResyncRequired => PullResponse::ResyncRequired,
        })
    }
}

/// What the server's poke stream says when the user's feed moved: its head,
/// and, when they are few, the changes since the stream's previous poke, so
/// that a replica already at that position needs no pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Poke {
    /// The feed's head as announced.
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<PokedChanges>,
}

/// A complete pull page read from `since` when the poke was sent: every
/// note whose latest change is after `since`, as it was at `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PokedChanges {
    pub since: Checkpoint,
    pub entries: Vec<FeedEntry>,
    /// Where a pull continues after these changes (the page's `head`).
    pub checkpoint: Checkpoint,
    pub head: u64,
}

impl PokedChanges {
    /// The answer a pull from `from` would have had when these changes were
    /// read, if they cover it: `from` must be at `since` or later (a replica
    /// behind `since` misses what came between) and before `checkpoint` (at
    /// or after it, there is nothing new). Entries at or before `from` are
    /// left out: the replica applied them already, as their seq is their
    /// note's latest.
    ///
    /// Changes read from 0 cover only a replica at 0. A read from 0 is a
    /// snapshot and never needs a resync, but a pull from a later `from`
    /// does once the server purged tombstones after it: the snapshot no
    /// longer holds those deletes, and a replica that took it as its pull
    /// would keep the deleted notes forever (found by the purge simulation).
    /// A read from a later `since` needs the same tombstones as a pull from
    /// any `from` at or after it, so it was refused too if they were gone.
    pub fn page_from(&self, from: Checkpoint) -> Option<PullResponse> {
        if from < self.since || from >= self.checkpoint || (self.since.0 == 0 && from.0 != 0) {
            return None;
        }
        Some(PullResponse::Page {
            entries: self
                .entries
                .iter()
                .filter(|e| e.seq > from.0)
                .cloned()
                .collect(),
            checkpoint: self.checkpoint,
            has_more: false,
            head: self.head,
        })
    }
}

/// Why a whole request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProtocolError {
    #[error("protocol version {got} is not supported; this server speaks version {supported}. Reload the app to update it.")]
    UnsupportedVersion { got: u32, supported: u32 },
    #[error("a push may carry at most {max} changes; this one has {got}")]
    BatchTooLarge { got: usize, max: usize },
    #[error("a push must carry at least one change")]
    EmptyBatch,
    #[error("the pull limit must be at least 1")]
    ZeroLimit,
    #[error("{field} is {got}, beyond the largest position a client can read back (2^53 - 1)")]
    OutOfRange { field: String, got: u64 },
}

fn check_version(got: u32) -> Result<(), ProtocolError> {
    if SUPPORTED_PROTOCOLS.contains(&got) {
        Ok(())
    } else {
        Err(ProtocolError::UnsupportedVersion {
            got,
            supported: PROTOCOL_VERSION,
        })
    }
}

impl PushRequest {
    /// Checks what would make the whole batch meaningless. Problems of single
    /// changes are found by [`Change::check`] and reject only that change.
    pub fn check(&self) -> Result<(), ProtocolError> {
        check_version(self.protocol)?;
        if self.changes.is_empty() {
            return Err(ProtocolError::EmptyBatch);
        }
        if self.changes.len() > LIMITS.max_batch_changes {
            return Err(ProtocolError::BatchTooLarge {
                got: self.changes.len(),
                max: LIMITS.max_batch_changes,
            });
        }
        Ok(())
    }
}

/// How many of `changes`, from the first, one push request carries: as many
/// as keep their JSON within [`PUSH_REQUEST_BUDGET`], and always at least
/// one. One change alone always fits: the domain limits allow no text that
/// JSON escapes beyond two bytes a byte, so a change of the largest note and
/// its largest base encodes to about 4 MiB (tested).
pub fn changes_in_one_push(changes: &[Change]) -> usize {
    items_within(changes.iter().map(Change::encoded_len), PUSH_REQUEST_BUDGET)
}

/// How many items, from the first, a JSON array of at most `budget` bytes
/// holds, given each item's encoded length; at least one.
fn items_within(lens: impl Iterator<Item = usize>, budget: usize) -> usize {
    let mut used = 0usize;
    let mut taken = 0usize;
    for len in lens {
        // The comma before every item but the first.
        let with_comma = len.saturating_add(usize::from(taken > 0));
        if taken > 0 && used.saturating_add(with_comma) > budget {
            break;
        }
        used = used.saturating_add(with_comma);
        taken += 1;
    }
    taken
}

impl Change {
    /// The bytes this change takes in a JSON request.
    pub fn encoded_len(&self) -> usize {
        let mut counter = ByteCounter(0);
        // Writing to a counter cannot fail, and a change always serialises.
        let _ = serde_json::to_writer(&mut counter, self);
        counter.0
    }

    /// Validates one change: its numbers within what every client can read
    /// back ([`MAX_SAFE_INTEGER`]) and its content within the domain limits.
    pub fn check(&self) -> Result<(), DomainError> {
        within_safe_range("created_at", self.created_at)?;
        within_safe_range("the change's clock", self.hlc.wall_ms)?;
        within_safe_range("base_rev", self.base_rev.0)?;
        if let ChangeOp::Upsert(draft) = &self.op {
            draft.clone().revalidate()?;
        }
        if let Some(base) = &self.base {
            base.clone().revalidate()?;
        }
        Ok(())
    }
}

/// Counts what is written to it, and keeps nothing.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The largest integer a JavaScript number holds exactly (2^53 - 1). The
/// browser parses every answer with `JSON.parse`, so a larger number would
/// come back as another number (or, stored, make the record unreadable): the
/// server accepts none.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `value`, if at most [`MAX_SAFE_INTEGER`].
pub fn within_safe_range(field: &'static str, value: u64) -> Result<u64, DomainError> {
    if value > MAX_SAFE_INTEGER {
        return Err(DomainError::OutOfRange {
            field,
            got: value,
            max: MAX_SAFE_INTEGER,
        });
    }
    Ok(value)
}

impl PullRequest {
    /// Checks the version and the positions, and returns the page size the
    /// server will use.
    pub fn effective_limit(&self) -> Result<u32, ProtocolError> {
        check_version(self.protocol)?;
        if self.limit == 0 {
            return Err(ProtocolError::ZeroLimit);
        }
        for (field, value) in [
            ("checkpoint", Some(self.checkpoint.0)),
            ("download_head", self.download_head),
        ] {
            if let Some(value) = value.filter(|v| *v > MAX_SAFE_INTEGER) {
                return Err(ProtocolError::OutOfRange {
                    field: field.to_string(),
                    got: value,
                });
            }
        }
        Ok(self.limit.min(MAX_PULL_LIMIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change_at(created_at: u64, wall_ms: u64, base_rev: u64) -> Change {
        Change {
            mutation_id: MutationId::new(1, [1; 10]),
            note_id: NoteId::new(1, [2; 10]),
            base_rev: Revision(base_rev),
            base: None,
            op: ChangeOp::Delete,
            hlc: Hlc {
                wall_ms,
                counter: 0,
                client: ClientId::new(1, [3; 10]),
            },
            created_at,
        }
    }

    #[test]
    fn numbers_a_browser_cannot_read_back_are_refused() {
        let max = MAX_SAFE_INTEGER;
        assert_eq!(max as f64 as u64, max, "2^53 - 1 survives JSON.parse");
        assert!(change_at(max, max, max).check().is_ok());
        for bad in [max + 1, u64::MAX] {
            for change in [
                change_at(bad, 1, 0),
                change_at(1, bad, 0),
                change_at(1, 1, bad),
            ] {
                let err = change.check().expect_err("refused");
                assert!(matches!(err, DomainError::OutOfRange { .. }), "{err}");
                assert!(err.to_string().contains("beyond"), "{err}");
            }
        }
        let pull = |checkpoint: u64, download_head: Option<u64>| PullRequest {
            protocol: PROTOCOL_VERSION,
            checkpoint: Checkpoint(checkpoint),
            limit: 10,
            download_head,
            account: None,
        };
        assert_eq!(pull(max, Some(max)).effective_limit(), Ok(10));
        assert!(matches!(
            pull(max + 1, None).effective_limit(),
            Err(ProtocolError::OutOfRange { .. })
        ));
        assert!(matches!(
            pull(0, Some(u64::MAX)).effective_limit(),
            Err(ProtocolError::OutOfRange { .. })
        ));
    }

    #[test]
    fn changes_read_from_zero_stand_in_only_for_a_pull_from_zero() {
        let read_from = |since| PokedChanges {
            since: Checkpoint(since),
            entries: Vec::new(),
            checkpoint: Checkpoint(9),
            head: 9,
        };
        assert!(read_from(0).page_from(Checkpoint(0)).is_some());
        assert_eq!(read_from(0).page_from(Checkpoint(4)), None);
        assert!(read_from(3).page_from(Checkpoint(4)).is_some());
        assert_eq!(read_from(3).page_from(Checkpoint(2)), None);
        assert_eq!(read_from(3).page_from(Checkpoint(9)), None);
    }

    fn client() -> ClientId {
        ClientId::new(1, [1; 10])
    }

    fn change(body: &str) -> Change {
        Change {
            mutation_id: MutationId::new(2, [2; 10]),
            note_id: NoteId::new(3, [3; 10]),
            base_rev: Revision::NEW,
            base: None,
            op: ChangeOp::Upsert(NoteDraft {
                title: "t".into(),
                body: body.into(),
                tags: vec![],
                pinned: false,
            }),
            hlc: Hlc::zero(client()),
            created_at: 3,
        }
    }

    #[test]
    fn push_batches_are_checked_as_a_whole() {
        let ok = PushRequest {
            protocol: PROTOCOL_VERSION,
            client_id: client(),
            changes: vec![change("x")],
            account: None,
        };
        assert_eq!(ok.check(), Ok(()));
        let old = PushRequest {
            protocol: 0,
            ..ok.clone()
        };
        assert!(matches!(
            old.check(),
            Err(ProtocolError::UnsupportedVersion { got: 0, .. })
        ));
        let empty = PushRequest {
            changes: vec![],
            ..ok.clone()
        };
        assert_eq!(empty.check(), Err(ProtocolError::EmptyBatch));
        let big = PushRequest {
            changes: vec![change("x"); LIMITS.max_batch_changes + 1],
            ..ok
        };
        assert!(matches!(
            big.check(),
            Err(ProtocolError::BatchTooLarge { .. })
        ));
    }

    #[test]
    fn oversized_notes_are_rejected_per_change() {
        assert!(change("small").check().is_ok());
        assert!(change(&"x".repeat(LIMITS.max_body_bytes + 1))
            .check()
            .is_err());
    }

    #[test]
    fn a_change_knows_its_encoded_length() {
        let c = change("a body with \"quotes\", a tab\t and a line break\n");
        assert_eq!(c.encoded_len(), serde_json::to_vec(&c).expect("json").len());
    }

    #[test]
    fn the_largest_valid_change_fits_in_a_push_alone() {
        // Every character chosen for the most bytes JSON gives it: quotes
        // are escaped to two bytes, and a four-byte character stays four.
        let worst = || {
            NoteDraft::validated(
                "\"".repeat(LIMITS.max_title_bytes),
                "\"".repeat(LIMITS.max_body_bytes),
                (0..LIMITS.max_tags)
                    .map(|n| format!("{n}{}", "𝄞".repeat(LIMITS.max_tag_chars - 2)))
                    .collect(),
            )
            .expect("a valid note")
        };
        let c = Change {
            base_rev: Revision(7),
            base: Some(worst()),
            op: ChangeOp::Upsert(worst()),
            ..change("")
        };
        let len = c.encoded_len();
        assert!(len > 4 * LIMITS.max_body_bytes, "{len}");
        assert!(len <= PUSH_REQUEST_BUDGET, "{len}");
        assert_eq!(changes_in_one_push(&[c.clone(), c.clone(), c]), 1);
    }

    #[test]
    fn a_push_of_many_large_notes_is_split_and_of_small_ones_is_not() {
        let small = vec![change(&"x".repeat(1_000)); LIMITS.max_batch_changes];
        assert_eq!(changes_in_one_push(&small), LIMITS.max_batch_changes);
        let large = vec![change(&"x".repeat(17_000)); LIMITS.max_batch_changes];
        let fits = changes_in_one_push(&large);
        assert!(fits < LIMITS.max_batch_changes, "{fits}");
        let request = PushRequest {
            protocol: PROTOCOL_VERSION,
            client_id: client(),
            changes: large[..fits].to_vec(),
            account: None,
        };
        let encoded = serde_json::to_vec(&serde_json::json!({ "req": request })).expect("json");
        assert!(
            encoded.len() <= LIMITS.max_request_bytes,
            "{}",
            encoded.len()
        );
    }

    proptest::proptest! {
        #[test]
        fn a_push_takes_the_longest_prefix_within_the_budget(
            lens in proptest::collection::vec(0usize..5_000, 0..40),
            budget in 0usize..40_000,
        ) {
            let taken = items_within(lens.iter().copied(), budget);
            let size = |n: usize| lens[..n].iter().sum::<usize>() + n.saturating_sub(1);
            proptest::prop_assert!(taken <= lens.len());
            proptest::prop_assert!(taken >= 1 || lens.is_empty());
            if taken > 1 {
                proptest::prop_assert!(size(taken) <= budget);
            }
            if taken < lens.len() {
                proptest::prop_assert!(size(taken + 1) > budget);
            }
        }
    }

    #[test]
    fn pull_limits_are_capped() {
        let req = |limit| PullRequest {
            protocol: PROTOCOL_VERSION,
            checkpoint: Checkpoint(0),
            limit,
            download_head: None,
            account: None,
        };
        assert_eq!(req(10).effective_limit(), Ok(10));
        assert_eq!(req(1_000_000).effective_limit(), Ok(MAX_PULL_LIMIT));
        assert_eq!(req(0).effective_limit(), Err(ProtocolError::ZeroLimit));
    }

    #[test]
    fn wire_format_round_trips() {
        let results = PushResponse {
            results: vec![
                ChangeResult::Applied {
                    rev: Revision(1),
                    seq: 5,
                },
                ChangeResult::Duplicate,
                ChangeResult::rejected("too big"),
                ChangeResult::over_quota("over quota".into()),
                ChangeResult::Rejected {
                    reason: "gone".into(),
                    code: Some(RejectCode::Gone),
                },
            ],
        };
        let json = serde_json::to_string(&results).expect("serialises");
        assert_eq!(
            serde_json::from_str::<PushResponse>(&json).ok(),
            Some(results)
        );
        let pull = PullResponse::ResyncRequired;
        let json = serde_json::to_string(&pull).expect("serialises");
        assert_eq!(json, r#"{"kind":"resync_required"}"#);
    }

    #[test]
    fn version_1_pulls_still_decode_and_are_accepted() {
        let v1: PullRequest =
            serde_json::from_str(r#"{"protocol":1,"checkpoint":7,"limit":50}"#).expect("decodes");
        assert_eq!(v1.download_head, None);
        assert_eq!(v1.effective_limit(), Ok(50));
        let page: PullResponse =
            serde_json::from_str(r#"{"kind":"page","entries":[],"checkpoint":7,"has_more":false}"#)
                .expect("decodes");
        assert!(matches!(page, PullResponse::Page { head: 0, .. }));
        let future = PullRequest {
            protocol: PROTOCOL_VERSION + 1,
            ..v1
        };
        assert!(matches!(
            future.effective_limit(),
            Err(ProtocolError::UnsupportedVersion { .. })
        ));
    }

    /// The JSON each tagged enum is written as, read back to the same value:
    /// the derived writer and the flat reader (crate::wire) must agree on it,
    /// as servers, stored outboxes and older clients rely on it.
    #[test]
    fn tagged_enums_read_what_they_write() {
        let draft = NoteDraft {
            title: "t".into(),
            body: "b".into(),
            tags: vec!["x".into()],
            pinned: true,
        };
        let ops = [
            (
                ChangeOp::Upsert(draft.clone()),
                r#"{"kind":"upsert","title":"t","body":"b","tags":["x"],"pinned":true}"#,
            ),
            (ChangeOp::Delete, r#"{"kind":"delete"}"#),
        ];
        for (op, json) in ops {
            assert_eq!(serde_json::to_string(&op).expect("serialises"), json);
            assert_eq!(serde_json::from_str::<ChangeOp>(json).expect("decodes"), op);
        }
        let results = [
            (
                ChangeResult::Applied {
                    rev: Revision(2),
                    seq: 3,
                },
                r#"{"result":"applied","rev":2,"seq":3}"#,
            ),
            (
                ChangeResult::Merged {
                    rev: Revision(4),
                    seq: 5,
                    conflicted: true,
                },
                r#"{"result":"merged","rev":4,"seq":5,"conflicted":true}"#,
            ),
            (ChangeResult::Duplicate, r#"{"result":"duplicate"}"#),
            (
                ChangeResult::rejected("no"),
                r#"{"result":"rejected","reason":"no"}"#,
            ),
            (
                ChangeResult::over_quota("full".into()),
                r#"{"result":"rejected","reason":"full","code":"quota"}"#,
            ),
            (
                ChangeResult::Rejected {
                    reason: "gone".into(),
                    code: Some(RejectCode::Gone),
                },
                r#"{"result":"rejected","reason":"gone","code":"gone"}"#,
            ),
        ];
        for (result, json) in results {
            assert_eq!(serde_json::to_string(&result).expect("serialises"), json);
            assert_eq!(
                serde_json::from_str::<ChangeResult>(json).expect("decodes"),
                result
            );
        }
        let page = PullResponse::Page {
            entries: Vec::new(),
            checkpoint: Checkpoint(7),
            has_more: true,
            head: 9,
        };
        let json = r#"{"kind":"page","entries":[],"checkpoint":7,"has_more":true,"head":9}"#;
        assert_eq!(serde_json::to_string(&page).expect("serialises"), json);
        assert_eq!(
            serde_json::from_str::<PullResponse>(json).expect("decodes"),
            page
        );
    }

    #[test]
    fn a_reject_code_this_build_does_not_know_reads_as_none() {
        let json = r#"{"result":"rejected","reason":"later","code":"something_new"}"#;
        assert_eq!(
            serde_json::from_str::<ChangeResult>(json).expect("decodes"),
            ChangeResult::rejected("later")
        );
    }

    #[test]
    fn tagged_enums_read_in_any_field_order_and_refuse_what_is_missing() {
        // The tag need not come first (serde's own reader allowed that too).
        assert_eq!(
            serde_json::from_str::<ChangeOp>(
                r#"{"tags":[],"body":"b","title":"t","kind":"upsert"}"#
            )
            .expect("decodes"),
            ChangeOp::Upsert(NoteDraft {
                title: "t".into(),
                body: "b".into(),
                tags: Vec::new(),
                pinned: false,
            })
        );
        // Fields of another variant are ignored, as unknown fields are.
        assert_eq!(
            serde_json::from_str::<ChangeOp>(r#"{"kind":"delete","title":"t"}"#).expect("decodes"),
            ChangeOp::Delete
        );
        for (json, missing) in [
            (
                r#"{"kind":"upsert","title":"t","tags":[]}"#,
                "`body` of `upsert`",
            ),
            (
                r#"{"result":"merged","rev":1,"seq":2}"#,
                "`conflicted` of `merged`",
            ),
            (
                r#"{"kind":"page","entries":[],"has_more":false}"#,
                "`checkpoint` of `page`",
            ),
        ] {
            let op = serde_json::from_str::<ChangeOp>(json)
                .err()
                .map(|e| e.to_string());
            let result = serde_json::from_str::<ChangeResult>(json)
                .err()
                .map(|e| e.to_string());
            let pull = serde_json::from_str::<PullResponse>(json)
                .err()
                .map(|e| e.to_string());
            let refused = [op, result, pull]
                .into_iter()
                .flatten()
                .any(|e| e.contains(missing));
            assert!(refused, "{json} must be refused for lacking {missing}");
        }
        assert!(serde_json::from_str::<ChangeOp>(r#"{"kind":"explode"}"#).is_err());
        assert!(serde_json::from_str::<ChangeOp>(r#""delete""#).is_err());
        assert!(serde_json::from_str::<ChangeOp>(r#"{"title":"t"}"#).is_err());
    }
}
