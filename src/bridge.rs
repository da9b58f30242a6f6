//! The typed messages between the UI thread and the sync worker, and between
//! all the contexts (tabs and their workers) of one user in one browser.
//!
//! Messages travel through `postMessage` as JSON text. Both sides decode with
//! [`decode`], which refuses unknown or malformed messages instead of guessing,
//! so a UI and a worker from different builds fail loudly, not subtly.

use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::domain::{MutationId, Note, NoteId};
use crate::sync::engine::{SyncState, SyncStatus};
use crate::wire::{needed, WireError};

/// From the UI to the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "ToWorkerWire")]
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
#[serde(tag = "type", rename_all = "snake_case", try_from = "FromWorkerWire")]
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
    /// The server refused a request naming this database's account: the
    /// browser's session is another account's now (someone signed in in
    /// another tab). The worker stopped syncing, its outbox untouched.
    WrongAccount,
    /// Stored records the worker could not read and skipped (each named
    /// once), for the page to report.
    Unreadable { records: Vec<String> },
}

/// What went wrong with the local database, in terms a person can act on.
/// It crosses the bridge: the worker saves the page's edits. The messages
/// say what failed, not what was being done: the caller says that ("could
/// not be saved", "could not be read").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(
    tag = "error",
    content = "detail",
    rename_all = "snake_case",
    try_from = "DbErrorWire"
)]
pub enum DbError {
    #[error("This device has run out of storage space for notesync.")]
    QuotaExceeded,
    #[error("The browser closed the notes database.")]
    Closed,
    #[error("The notes database could not be opened: {0}")]
    Unavailable(String),
    /// A stored record is not what this build can read.
    #[error("A stored record is unreadable: {0}")]
    Unreadable(String),
    /// The database was deleted (or cleared) while this connection was
    /// open: nothing more is written through it, so it is never recreated
    /// empty behind the page's back.
    #[error("The notes database was deleted while notesync was open.")]
    Lost,
    /// A newer build of notesync upgraded the database: this one must reload.
    #[error("A newer version of notesync is using the notes database; reload this tab.")]
    Outdated,
    #[error("The browser's database failed: {0}")]
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
#[serde(tag = "type", rename_all = "snake_case", try_from = "BroadcastWire")]
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
    /// conflicts and kept texts when `others`. `recreated` pairs an old id
    /// with the new one its text now lives under (the server no longer had
    /// the note): a page moves its copy, unsaved edits included.
    Pulled {
        stored: Vec<Note>,
        dropped: Vec<NoteId>,
        others: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        recreated: Vec<(NoteId, NoteId)>,
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
#[serde(tag = "state", rename_all = "snake_case", try_from = "LiveStateWire")]
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

// How each message is read: a flat struct of every variant's fields, then
// the variant its tag names (crate::wire says why). The JSON is the one the
// derived `Serialize` writes, so tabs of other builds still understand it.

#[derive(Deserialize)]
struct ToWorkerWire {
    #[serde(rename = "type")]
    kind: ToWorkerKind,
    id: Option<u32>,
    online: Option<bool>,
    on: Option<bool>,
    note: Option<Box<Note>>,
    base: Option<Box<Note>>,
    mutation_id: Option<MutationId>,
    at_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToWorkerKind {
    Ping,
    LocalChange,
    Connectivity,
    SyncNow,
    Timings,
    Save,
}

impl TryFrom<ToWorkerWire> for ToWorker {
    type Error = WireError;

    fn try_from(w: ToWorkerWire) -> Result<Self, WireError> {
        const SAVE: &str = "save";
        Ok(match w.kind {
            ToWorkerKind::Ping => ToWorker::Ping {
                id: needed(w.id, "ping", "id")?,
            },
            ToWorkerKind::LocalChange => ToWorker::LocalChange,
            ToWorkerKind::Connectivity => ToWorker::Connectivity {
                online: needed(w.online, "connectivity", "online")?,
            },
            ToWorkerKind::SyncNow => ToWorker::SyncNow,
            ToWorkerKind::Timings => ToWorker::Timings {
                on: needed(w.on, "timings", "on")?,
            },
            ToWorkerKind::Save => ToWorker::Save {
                id: needed(w.id, SAVE, "id")?,
                note: needed(w.note, SAVE, "note")?,
                base: w.base,
                mutation_id: needed(w.mutation_id, SAVE, "mutation_id")?,
                at_ms: needed(w.at_ms, SAVE, "at_ms")?,
            },
        })
    }
}

/// The fields of a [`SyncStatus`] sent as a message's own
/// (`FromWorker::Sync`, `Broadcast::Sync`).
fn sync_status(
    state: Option<SyncState>,
    pending: Option<u32>,
    last_synced_at: Option<u64>,
    downloaded: Option<u32>,
    retry_at: Option<u64>,
) -> Result<SyncStatus, WireError> {
    const SYNC: &str = "sync";
    Ok(SyncStatus {
        state: needed(state, SYNC, "state")?,
        pending: needed(pending, SYNC, "pending")?,
        last_synced_at,
        downloaded: needed(downloaded, SYNC, "downloaded")?,
        retry_at,
    })
}

#[derive(Deserialize)]
struct FromWorkerWire {
    #[serde(rename = "type")]
    kind: FromWorkerKind,
    schema_version: Option<u32>,
    worker: Option<u32>,
    reply_to: Option<u32>,
    ticks: Option<u64>,
    notes: Option<u32>,
    pending: Option<u32>,
    state: Option<SyncState>,
    last_synced_at: Option<u64>,
    downloaded: Option<u32>,
    retry_at: Option<u64>,
    message: Option<String>,
    leader: Option<bool>,
    id: Option<u32>,
    result: Option<Result<Note, DbError>>,
    records: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FromWorkerKind {
    Ready,
    Status,
    Sync,
    Failed,
    SignedOut,
    Role,
    Saved,
    WrongAccount,
    Unreadable,
}

impl TryFrom<FromWorkerWire> for FromWorker {
    type Error = WireError;

    fn try_from(w: FromWorkerWire) -> Result<Self, WireError> {
        const READY: &str = "ready";
        const STATUS: &str = "status";
        const SAVED: &str = "saved";
        Ok(match w.kind {
            FromWorkerKind::Ready => FromWorker::Ready {
                schema_version: needed(w.schema_version, READY, "schema_version")?,
                worker: needed(w.worker, READY, "worker")?,
            },
            FromWorkerKind::Status => FromWorker::Status {
                reply_to: w.reply_to,
                ticks: needed(w.ticks, STATUS, "ticks")?,
                notes: needed(w.notes, STATUS, "notes")?,
                pending: needed(w.pending, STATUS, "pending")?,
            },
            FromWorkerKind::Sync => FromWorker::Sync(sync_status(
                w.state,
                w.pending,
                w.last_synced_at,
                w.downloaded,
                w.retry_at,
            )?),
            FromWorkerKind::Failed => FromWorker::Failed {
                message: needed(w.message, "failed", "message")?,
            },
            FromWorkerKind::SignedOut => FromWorker::SignedOut,
            FromWorkerKind::Role => FromWorker::Role {
                leader: needed(w.leader, "role", "leader")?,
            },
            FromWorkerKind::Saved => FromWorker::Saved {
                id: needed(w.id, SAVED, "id")?,
                result: needed(w.result, SAVED, "result")?,
            },
            FromWorkerKind::WrongAccount => FromWorker::WrongAccount,
            FromWorkerKind::Unreadable => FromWorker::Unreadable {
                records: needed(w.records, "unreadable", "records")?,
            },
        })
    }
}

#[derive(Deserialize)]
struct DbErrorWire {
    error: DbErrorKind,
    detail: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DbErrorKind {
    QuotaExceeded,
    Closed,
    Unavailable,
    Unreadable,
    Lost,
    Outdated,
    Other,
}

impl TryFrom<DbErrorWire> for DbError {
    type Error = WireError;

    fn try_from(w: DbErrorWire) -> Result<Self, WireError> {
        Ok(match w.error {
            DbErrorKind::QuotaExceeded => DbError::QuotaExceeded,
            DbErrorKind::Closed => DbError::Closed,
            DbErrorKind::Unavailable => {
                DbError::Unavailable(needed(w.detail, "unavailable", "detail")?)
            }
            DbErrorKind::Unreadable => {
                DbError::Unreadable(needed(w.detail, "unreadable", "detail")?)
            }
            DbErrorKind::Lost => DbError::Lost,
            DbErrorKind::Outdated => DbError::Outdated,
            DbErrorKind::Other => DbError::Other(needed(w.detail, "other", "detail")?),
        })
    }
}

#[derive(Deserialize)]
struct BroadcastWire {
    #[serde(rename = "type")]
    kind: BroadcastKind,
    local: Option<bool>,
    notes: Option<Vec<NoteId>>,
    saved_by: Option<u32>,
    stored: Option<Vec<Note>>,
    dropped: Option<Vec<NoteId>>,
    others: Option<bool>,
    #[serde(default)]
    recreated: Vec<(NoteId, NoteId)>,
    state: Option<StateField>,
    pending: Option<u32>,
    last_synced_at: Option<u64>,
    downloaded: Option<u32>,
    retry_at: Option<u64>,
    at_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum BroadcastKind {
    Changed,
    Pulled,
    SyncNow,
    StateWanted,
    Sync,
    Live,
}

/// A broadcast's `state`: the sync status's, an object, or the live
/// connection's, a name. The JSON type tells them apart.
enum StateField {
    Sync(SyncState),
    Live(LiveStateKind),
}

impl<'de> Deserialize<'de> for StateField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StateVisitor;
        impl<'de> Visitor<'de> for StateVisitor {
            type Value = StateField;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sync state (an object) or a live state (a name)")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<StateField, E> {
                LiveStateKind::deserialize(name.into_deserializer()).map(StateField::Live)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StateField, A::Error> {
                SyncState::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(StateField::Sync)
            }
        }
        deserializer.deserialize_any(StateVisitor)
    }
}

impl TryFrom<BroadcastWire> for Broadcast {
    type Error = WireError;

    fn try_from(w: BroadcastWire) -> Result<Self, WireError> {
        const PULLED: &str = "pulled";
        Ok(match w.kind {
            BroadcastKind::Changed => Broadcast::Changed {
                local: needed(w.local, "changed", "local")?,
                notes: w.notes,
                saved_by: w.saved_by,
            },
            BroadcastKind::Pulled => Broadcast::Pulled {
                stored: needed(w.stored, PULLED, "stored")?,
                dropped: needed(w.dropped, PULLED, "dropped")?,
                others: needed(w.others, PULLED, "others")?,
                recreated: w.recreated,
            },
            BroadcastKind::SyncNow => Broadcast::SyncNow,
            BroadcastKind::StateWanted => Broadcast::StateWanted,
            BroadcastKind::Sync => {
                let state = match w.state {
                    Some(StateField::Sync(state)) => Some(state),
                    _ => None,
                };
                Broadcast::Sync(sync_status(
                    state,
                    w.pending,
                    w.last_synced_at,
                    w.downloaded,
                    w.retry_at,
                )?)
            }
            BroadcastKind::Live => {
                let Some(StateField::Live(kind)) = w.state else {
                    return Err(WireError {
                        variant: "live",
                        field: "state",
                    });
                };
                Broadcast::Live(live_state(kind, w.at_ms)?)
            }
        })
    }
}

#[derive(Deserialize)]
struct LiveStateWire {
    state: LiveStateKind,
    at_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum LiveStateKind {
    Unknown,
    Connecting,
    Connected,
    Retrying,
}

fn live_state(kind: LiveStateKind, at_ms: Option<u64>) -> Result<LiveState, WireError> {
    Ok(match kind {
        LiveStateKind::Unknown => LiveState::Unknown,
        LiveStateKind::Connecting => LiveState::Connecting,
        LiveStateKind::Connected => LiveState::Connected,
        LiveStateKind::Retrying => LiveState::Retrying {
            at_ms: needed(at_ms, "retrying", "at_ms")?,
        },
    })
}

impl TryFrom<LiveStateWire> for LiveState {
    type Error = WireError;

    fn try_from(w: LiveStateWire) -> Result<Self, WireError> {
        live_state(w.state, w.at_ms)
    }
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
            FromWorker::WrongAccount,
            FromWorker::Unreadable {
                records: vec!["the record x (bad)".into()],
            },
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
            FromWorker::Saved {
                id: 7,
                result: Err(DbError::Unreadable("bad".into())),
            },
            FromWorker::Saved {
                id: 8,
                result: Err(DbError::Lost),
            },
            FromWorker::Saved {
                id: 9,
                result: Err(DbError::Outdated),
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
                recreated: vec![(NoteId::new(6, [7; 10]), NoteId::new(8, [9; 10]))],
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

    /// The JSON other builds' tabs and workers read: what the derived
    /// writers produce, read back by the flat readers (crate::wire).
    #[test]
    fn messages_keep_their_json() {
        let broadcasts = [
            (Broadcast::SyncNow, r#"{"type":"sync_now"}"#),
            (
                Broadcast::Live(LiveState::Retrying { at_ms: 9 }),
                r#"{"type":"live","state":"retrying","at_ms":9}"#,
            ),
            (
                Broadcast::Live(LiveState::Connected),
                r#"{"type":"live","state":"connected"}"#,
            ),
            (
                Broadcast::Sync(SyncStatus {
                    state: SyncState::Error {
                        message: "m".into(),
                    },
                    pending: 2,
                    last_synced_at: None,
                    downloaded: 0,
                    retry_at: Some(4),
                }),
                r#"{"type":"sync","state":{"state":"error","message":"m"},"pending":2,"last_synced_at":null,"downloaded":0,"retry_at":4}"#,
            ),
        ];
        for (message, json) in broadcasts {
            assert_eq!(encode(&message), json);
            assert_eq!(decode::<Broadcast>(json), Ok(message));
        }
        let saved = FromWorker::Saved {
            id: 6,
            result: Err(DbError::Unavailable("gone".into())),
        };
        let json =
            r#"{"type":"saved","id":6,"result":{"Err":{"error":"unavailable","detail":"gone"}}}"#;
        assert_eq!(encode(&saved), json);
        assert_eq!(decode::<FromWorker>(json), Ok(saved));
        let ping = r#"{"type":"ping","id":3}"#;
        assert_eq!(encode(&ToWorker::Ping { id: 3 }), ping);
        assert_eq!(decode::<ToWorker>(ping), Ok(ToWorker::Ping { id: 3 }));
    }

    #[test]
    fn a_message_without_a_field_its_kind_needs_is_refused() {
        for (result, missing) in [
            (
                decode::<ToWorker>(r#"{"type":"save","id":1,"at_ms":2}"#).err(),
                "note",
            ),
            (decode::<FromWorker>(r#"{"type":"role"}"#).err(), "leader"),
            (decode::<Broadcast>(r#"{"type":"live"}"#).err(), "state"),
            (
                decode::<Broadcast>(r#"{"type":"live","state":{"state":"synced"}}"#).err(),
                "state",
            ),
            (
                decode::<Broadcast>(r#"{"type":"live","state":"retrying"}"#).err(),
                "at_ms",
            ),
            (
                decode::<Broadcast>(
                    r#"{"type":"sync","state":"connected","pending":0,"downloaded":0}"#,
                )
                .err(),
                "state",
            ),
            (
                decode::<FromWorker>(
                    r#"{"type":"saved","id":1,"result":{"Err":{"error":"other"}}}"#,
                )
                .err(),
                "detail",
            ),
        ] {
            let error = result.map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(missing), "{error:?} should name {missing}");
        }
        assert!(decode::<Broadcast>(r#"{"type":"live","state":"dancing"}"#).is_err());
    }
}
