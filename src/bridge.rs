//! The typed messages between the UI thread and the sync worker, and between
//! all the contexts (tabs and their workers) of one user in one browser.
//!
//! Messages travel through `postMessage` as JSON text. Both sides decode with
//! [`decode`], which refuses unknown or malformed messages instead of guessing,
//! so a UI and a worker from different builds fail loudly, not subtly.

use serde::{Deserialize, Serialize};

use crate::domain::{MutationId, Note, NoteId};
use crate::sync::engine::SyncStatus;

/// From the UI to the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// Asks for a [`FromWorker::Status`] answer carrying the same `id`.
    Ping { id: u32 },
    /// Local data changed in IndexedDB (a saved edit); the worker re-reads it.
    LocalChange,
    /// The page saw the browser go online or offline.
    Connectivity { online: bool },
    /// Sync now (a person asked, or the page learnt the server has news).
    SyncNow,
    /// Log the timings of sync steps to the console, or stop
    /// ([`crate::client::timings`]).
    Timings { on: bool },
    /// Save the page's edit of `note`, read from `base`, with its outbox
    /// entry (`LocalDb::save_edit`), and answer with [`FromWorker::Saved`]
    /// carrying the same `id`. The page saves through its worker because a
    /// worker's IndexedDB replies are not held back behind the page's next
    /// frame, as the page's own are after an input event.
    Save {
        id: u32,
        note: Box<Note>,
        base: Option<Box<Note>>,
        mutation_id: MutationId,
        at_ms: u64,
    },
}

/// From the worker to the UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker started and opened the local database; `worker` names it
    /// in the [`Broadcast::Changed`] of the edits it saves.
    Ready { schema_version: u32, worker: u32 },
    /// What the worker sees in the local database. `reply_to` is the id of the
    /// ping it answers, or `None` for an unsolicited report.
    Status {
        reply_to: Option<u32>,
        ticks: u64,
        notes: u32,
        pending: u32,
    },
    /// The sync status changed.
    Sync(SyncStatus),
    /// The worker could not do its job; the message is meant for a person.
    Failed { message: String },
    /// The server refused the session: sync waits until the person signs in
    /// again (local edits go on and are kept).
    SignedOut,
    /// Whether this tab's worker is the browser's sync leader (it holds the
    /// Web Lock) or waits to take over.
    Role { leader: bool },
    /// The answer to [`ToWorker::Save`] `id`: the note as stored, or why it
    /// was not.
    Saved {
        id: u32,
        result: Result<Note, DbError>,
    },
}

/// What went wrong with the local database, in terms a person can act on.
/// It crosses the bridge: the worker saves the page's edits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum DbError {
    #[error("This device has run out of storage space for notesync.")]
    QuotaExceeded,
    #[error("The browser closed the notes database.")]
    Closed,
    #[error("The notes database could not be opened: {0}")]
    Unavailable(String),
    #[error("The browser refused to save: {0}")]
    Other(String),
}

impl DbError {
    /// Whether reopening the database may cure the error.
    pub fn needs_reopen(&self) -> bool {
        matches!(self, DbError::Closed)
    }
}

/// Between every tab and worker of one user in this browser, over a
/// BroadcastChannel: the one sync leader hears the pages, and every page
/// hears the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Broadcast {
    /// IndexedDB changed: pages re-read the notes named, or every note when
    /// `notes` is absent. `local` when a page saved an edit, which the
    /// leader then pushes.
    Changed {
        local: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notes: Option<Vec<NoteId>>,
        /// The worker that saved them for its page ([`FromWorker::Ready`]'s
        /// `worker`): that page holds them already and ignores the news.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        saved_by: Option<u32>,
    },
    /// The leader stored pulled notes (as they are stored now) and dropped
    /// others. A page takes a stored note unless its own copy is at the
    /// same revision or a later one ([`crate::sync::driver::ReplicaChange`]
    /// says why that is enough), re-reads the dropped ones, and re-reads
    /// conflicts and kept texts when `others`.
    Pulled {
        stored: Vec<Note>,
        dropped: Vec<NoteId>,
        others: bool,
    },
    /// A page asks the leader to sync now.
    SyncNow,
    /// A page that just opened asks the leader to say its state again.
    StateWanted,
    /// The leader's sync status.
    Sync(SyncStatus),
    /// The leader's live connection to the server.
    Live(LiveState),
}

/// The live connection (the server's poke stream) as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LiveState {
    /// No leader has said anything yet.
    #[default]
    Unknown,
    Connecting,
    /// Pokes arrive: other devices' edits show within a moment.
    Connected,
    /// The connection dropped; the next attempt is at `at_ms`.
    Retrying {
        at_ms: u64,
    },
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unreadable message between the page and the sync worker: {0}")]
pub struct BridgeError(String);

/// Encodes a message for `postMessage`.
pub fn encode<T: Serialize>(message: &T) -> String {
    // These messages hold only strings, integers and notes, which always
    // serialise.
    serde_json::to_string(message).unwrap_or_default()
}

/// Decodes a message received through `postMessage`.
pub fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, BridgeError> {
    // `from_slice`, as everything the browser parses: one deserialiser per
    // type in the bundle (client::db says why).
    serde_json::from_slice(text.as_bytes()).map_err(|e| BridgeError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            ToWorker::Ping { id: 7 },
            ToWorker::LocalChange,
            ToWorker::Connectivity { online: false },
            ToWorker::SyncNow,
            ToWorker::Timings { on: true },
            ToWorker::Save {
                id: 4,
                note: Box::new(Note::new(NoteId::new(3, [4; 10]), 5)),
                base: Some(Box::new(Note::new(NoteId::new(3, [4; 10]), 1))),
                mutation_id: MutationId::new(6, [7; 10]),
                at_ms: 8,
            },
        ] {
            assert_eq!(decode::<ToWorker>(&encode(&m)), Ok(m));
        }
        for m in [
            FromWorker::Ready {
                schema_version: 1,
                worker: 2,
            },
            FromWorker::Status {
                reply_to: Some(3),
                ticks: 9,
                notes: 2,
                pending: 1,
            },
            FromWorker::Failed {
                message: "disk full".into(),
            },
            FromWorker::SignedOut,
            FromWorker::Role { leader: true },
            FromWorker::Saved {
                id: 4,
                result: Ok(Note::new(NoteId::new(3, [4; 10]), 5)),
            },
            FromWorker::Saved {
                id: 5,
                result: Err(DbError::QuotaExceeded),
            },
            FromWorker::Saved {
                id: 6,
                result: Err(DbError::Other("refused".into())),
            },
            FromWorker::Sync(crate::sync::engine::SyncStatus {
                state: crate::sync::engine::SyncState::Synced,
                pending: 0,
                last_synced_at: Some(5),
                downloaded: 0,
                retry_at: None,
            }),
        ] {
            assert_eq!(decode::<FromWorker>(&encode(&m)), Ok(m));
        }
    }

    #[test]
    fn broadcasts_round_trip() {
        for m in [
            Broadcast::Changed {
                local: true,
                notes: None,
                saved_by: None,
            },
            Broadcast::Changed {
                local: false,
                notes: Some(vec![NoteId::new(1, [2; 10])]),
                saved_by: None,
            },
            Broadcast::Changed {
                local: true,
                notes: Some(vec![NoteId::new(1, [2; 10])]),
                saved_by: Some(8),
            },
            Broadcast::Pulled {
                stored: vec![Note::new(NoteId::new(3, [4; 10]), 5)],
                dropped: vec![NoteId::new(6, [7; 10])],
                others: true,
            },
            Broadcast::SyncNow,
            Broadcast::StateWanted,
            Broadcast::Live(LiveState::Retrying { at_ms: 9 }),
            Broadcast::Live(LiveState::Connected),
        ] {
            assert_eq!(decode::<Broadcast>(&encode(&m)), Ok(m));
        }
    }

    #[test]
    fn a_change_without_a_list_means_every_note() {
        // As an older build sends it.
        assert_eq!(
            decode::<Broadcast>(r#"{"type":"changed","local":false}"#),
            Ok(Broadcast::Changed {
                local: false,
                notes: None,
                saved_by: None,
            })
        );
    }

    #[test]
    fn unknown_and_malformed_messages_are_refused() {
        assert!(decode::<ToWorker>(r#"{"type":"format_disk"}"#).is_err());
        assert!(decode::<ToWorker>("not json").is_err());
        assert!(decode::<FromWorker>(r#"{"type":"status","ticks":"many"}"#).is_err());
    }
}
