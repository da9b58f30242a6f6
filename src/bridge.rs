//! The typed messages between the UI thread and the sync worker, and between
//! all the contexts (tabs and their workers) of one user in one browser.
//!
//! Messages travel through `postMessage` as JSON text. Both sides decode with
//! [`decode`], which refuses unknown or malformed messages instead of guessing,
//! so a UI and a worker from different builds fail loudly, not subtly.

use serde::{Deserialize, Serialize};

use crate::domain::{Note, NoteId};
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
}

/// From the worker to the UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker started and opened the local database.
    Ready { schema_version: u32 },
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
    // These enums contain only strings and integers, which always serialise.
    serde_json::to_string(message).unwrap_or_default()
}

/// Decodes a message received through `postMessage`.
pub fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, BridgeError> {
    serde_json::from_str(text).map_err(|e| BridgeError(e.to_string()))
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
        ] {
            assert_eq!(decode::<ToWorker>(&encode(&m)), Ok(m));
        }
        for m in [
            FromWorker::Ready { schema_version: 1 },
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
            },
            Broadcast::Changed {
                local: false,
                notes: Some(vec![NoteId::new(1, [2; 10])]),
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
                notes: None
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
