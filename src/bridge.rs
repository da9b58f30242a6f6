//! The typed messages between the UI thread and the sync worker, and between
//! all the contexts (tabs and their workers) of one user in one browser.
//!
//! Messages travel through `postMessage` as JSON text. Both sides decode with
//! [`decode`], which refuses unknown or malformed messages instead of guessing,
//! so a UI and a worker from different builds fail loudly, not subtly.

use serde::{Deserialize, Serialize};

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
    /// IndexedDB changed: pages re-read it. `local` when a page saved an
    /// edit, which the leader then pushes.
    Changed { local: bool },
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
            Broadcast::Changed { local: true },
            Broadcast::SyncNow,
            Broadcast::StateWanted,
            Broadcast::Live(LiveState::Retrying { at_ms: 9 }),
            Broadcast::Live(LiveState::Connected),
        ] {
            assert_eq!(decode::<Broadcast>(&encode(&m)), Ok(m));
        }
    }

    #[test]
    fn unknown_and_malformed_messages_are_refused() {
        assert!(decode::<ToWorker>(r#"{"type":"format_disk"}"#).is_err());
        assert!(decode::<ToWorker>("not json").is_err());
        assert!(decode::<FromWorker>(r#"{"type":"status","ticks":"many"}"#).is_err());
    }
}
