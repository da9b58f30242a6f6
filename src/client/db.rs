//! The browser's IndexedDB database, through `rexie`.
//!
//! Schema (version [`SCHEMA_VERSION`]):
//! - `notes`: every note the browser holds, tombstones included, keyed by `id`;
//! - `outbox`: at most one pending change per note, keyed by `note_id`;
//! - `meta`: small key/value records (client id, checkpoint), keyed by `key`;
//! - `conflicts`: notes whose concurrent edits need a person's choice;
//! - `trash` (since version 2): the last text of each deleted note,
//!   keyed by `id`, for "Recently deleted" ([`Trashed`]). Local only, never
//!   synced: written by the page when it deletes, and by the worker in the
//!   same transaction as a pulled delete of a note it held live; dropped on
//!   restore, and when the note is live again or no longer held.
//!
//! Promises: a local edit writes its note and its outbox entry in one
//! transaction, so they can never disagree; no transaction is held across an
//! unrelated await; every failure comes back as a [`DbError`] a person can read.

use std::cell::RefCell;

use rexie::{Index, ObjectStore, Rexie, TransactionMode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::JsValue;

use std::collections::BTreeSet;

use crate::domain::{ClientId, MutationId, Note, NoteId, UserId};
use crate::sync::driver::{PortError, ReplicaStore};
use crate::sync::protocol::{ChangeResult, Checkpoint, ConflictSides, FeedEntry};
use crate::sync::replica::{
    acknowledge, apply_entry, edit_base, is_newer, merge_page_edit, AckDecision, EntryDecision,
};
use crate::sync::{coalesce, Edit, PendingChange, PendingOp};
use crate::ui::model::Trashed;

/// Each user has their own database, so signing in as someone else on the
/// same browser shows only their notes.
pub fn db_name(user: &UserId) -> String {
    format!("notesync-{user}")
}
/// 2: the `trash` store added (opening a version 1 database adds it).
pub const SCHEMA_VERSION: u32 = 2;

const NOTES: &str = "notes";
const OUTBOX: &str = "outbox";
const META: &str = "meta";
const CONFLICTS: &str = "conflicts";
const TRASH: &str = "trash";

const CHECKPOINT_KEY: &str = "checkpoint";
const CLIENT_ID_KEY: &str = "client_id";
/// Present while a full download after `resync_required` is under way.
const RESYNC_KEY: &str = "resync";

/// A record of the `meta` store.
#[derive(serde::Serialize, serde::Deserialize)]
struct MetaRecord<T> {
    key: String,
    value: T,
}

/// A record of the `conflicts` store: a note whose concurrent edits the
/// server could not merge cleanly, with both sides for the compare view.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConflictRecord {
    pub note_id: NoteId,
    pub sides: ConflictSides,
    /// The feed position at which the conflict was recorded.
    pub seq: u64,
}

/// What went wrong with the local database, in terms a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

    fn classify(text: String) -> Self {
        // rexie/idb keep the DOMException only as text ("QuotaExceededError: …"),
        // so its name is the stable part to match on.
        if text.contains("QuotaExceededError") {
            DbError::QuotaExceeded
        } else if text.contains("InvalidStateError") || text.contains("connection is closing") {
            DbError::Closed
        } else {
            DbError::Other(text)
        }
    }
}

impl From<rexie::Error> for DbError {
    fn from(e: rexie::Error) -> Self {
        match e {
            rexie::Error::IdbError(inner) => DbError::classify(inner.to_string()),
            other => DbError::classify(other.to_string()),
        }
    }
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, DbError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| DbError::Other(format!("could not encode a record: {e}")))
}

fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T, DbError> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| DbError::Other(format!("a stored record is unreadable: {e}")))
}

async fn put_checkpoint(meta: &rexie::Store, checkpoint: Checkpoint) -> Result<(), DbError> {
    let record = MetaRecord {
        key: CHECKPOINT_KEY.to_string(),
        value: checkpoint,
    };
    meta.put(&to_js(&record)?, None).await?;
    Ok(())
}

async fn commit(tx: rexie::Transaction) -> Result<(), DbError> {
    match tx.done().await? {
        rexie::TransactionResult::Committed => Ok(()),
        rexie::TransactionResult::Aborted => Err(DbError::Other(
            "the write was aborted by the browser (storage may be full)".into(),
        )),
    }
}

impl From<DbError> for PortError {
    fn from(e: DbError) -> Self {
        PortError {
            message: e.to_string(),
            retryable: true,
            offline: false,
        }
    }
}

#[async_trait::async_trait(?Send)]
impl ReplicaStore for LocalDb {
    async fn checkpoint(&self) -> Result<Checkpoint, PortError> {
        Ok(self.read_checkpoint().await?)
    }

    async fn outbox(&self) -> Result<Vec<PendingChange>, PortError> {
        Ok(self.pending_changes().await?)
    }

    async fn mark_sent(&self, pushed: &[PendingChange]) -> Result<(), PortError> {
        Ok(self.record_sent(pushed).await?)
    }

    async fn settle(
        &self,
        sent: &[PendingChange],
        results: &[ChangeResult],
        fresh_ids: &[MutationId],
    ) -> Result<(), PortError> {
        Ok(self.settle_outbox(sent, results, fresh_ids).await?)
    }

    async fn apply_page(
        &self,
        entries: &[FeedEntry],
        checkpoint: Checkpoint,
    ) -> Result<(), PortError> {
        Ok(self.store_page(entries, checkpoint).await?)
    }

    async fn begin_resync(&self) -> Result<(), PortError> {
        Ok(self.start_resync().await?)
    }

    async fn resyncing(&self) -> Result<bool, PortError> {
        Ok(self.resync_under_way().await?)
    }

    async fn finish_resync(&self, present: &BTreeSet<NoteId>) -> Result<(), PortError> {
        Ok(self.end_resync(present).await?)
    }
}

/// An open handle on the local database. If the browser closes the
/// connection (site data cleared, its storage process restarted), the next
/// transaction opens a new one and goes on.
pub struct LocalDb {
    user: UserId,
    rexie: RefCell<Rexie>,
}

/// What a pending-edit write needs beyond the note itself.
pub struct EditMeta {
    pub mutation_id: MutationId,
    pub at_ms: u64,
}

impl LocalDb {
    /// Opens (and if needed creates or upgrades) the database.
    pub async fn open(user: &UserId) -> Result<Self, DbError> {
        Ok(Self {
            user: user.clone(),
            rexie: RefCell::new(Self::connect(user).await?),
        })
    }

    async fn connect(user: &UserId) -> Result<Rexie, DbError> {
        Rexie::builder(&db_name(user))
            .version(SCHEMA_VERSION)
            .add_object_store(
                ObjectStore::new(NOTES)
                    .key_path("id")
                    .add_index(Index::new("updated_at", "updated_at")),
            )
            .add_object_store(ObjectStore::new(OUTBOX).key_path("note_id"))
            .add_object_store(ObjectStore::new(META).key_path("key"))
            .add_object_store(ObjectStore::new(CONFLICTS).key_path("note_id"))
            .add_object_store(ObjectStore::new(TRASH).key_path("id"))
            .build()
            .await
            .map_err(|e| match DbError::from(e) {
                DbError::Other(text) => DbError::Unavailable(text),
                other => other,
            })
    }

    /// A transaction over `stores`; on a closed connection, reconnects once.
    async fn tx(
        &self,
        stores: &[&str],
        mode: TransactionMode,
    ) -> Result<rexie::Transaction, DbError> {
        let first = self.rexie.borrow().transaction(stores, mode);
        match first.map_err(DbError::from) {
            Err(e) if e.needs_reopen() => {
                let fresh = Self::connect(&self.user).await?;
                *self.rexie.borrow_mut() = fresh;
                Ok(self.rexie.borrow().transaction(stores, mode)?)
            }
            other => other,
        }
    }

    /// Deletes `user`'s whole database (signing out). Run it from a page
    /// that never opened it: the browser holds a deletion until every open
    /// handle is gone.
    pub async fn delete(user: &UserId) -> Result<(), DbError> {
        Rexie::delete(&db_name(user)).await?;
        Ok(())
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> u32 {
        self.rexie.borrow().version().unwrap_or(SCHEMA_VERSION)
    }

    /// Every note, tombstones included, in key order.
    pub async fn all_notes(&self) -> Result<Vec<Note>, DbError> {
        let tx = self.tx(&[NOTES], TransactionMode::ReadOnly).await?;
        let values = tx.store(NOTES)?.get_all(None, None).await?;
        values.into_iter().map(from_js).collect()
    }

    /// Every pending change, in note-id order.
    pub async fn pending_changes(&self) -> Result<Vec<PendingChange>, DbError> {
        let tx = self.tx(&[OUTBOX], TransactionMode::ReadOnly).await?;
        let values = tx.store(OUTBOX)?.get_all(None, None).await?;
        values.into_iter().map(from_js).collect()
    }

    /// How many live notes and pending changes are stored.
    pub async fn counts(&self) -> Result<(u32, u32), DbError> {
        let tx = self.tx(&[NOTES, OUTBOX], TransactionMode::ReadOnly).await?;
        let notes: Vec<Note> = tx
            .store(NOTES)?
            .get_all(None, None)
            .await?
            .into_iter()
            .map(from_js)
            .collect::<Result<_, _>>()?;
        let pending = tx.store(OUTBOX)?.count(None).await?;
        let live = notes.iter().filter(|n| !n.deleted).count();
        Ok((u32::try_from(live).unwrap_or(u32::MAX), pending))
    }

    /// Stores a local edit of `note` (an upsert, or a delete when the note is a
    /// tombstone) together with its coalesced outbox entry, in one transaction.
    ///
    /// `base` is the copy the person started editing from (as last read from
    /// this database): when the note has no pending change yet, the edit is
    /// based on it, so a server change stored by the worker in the meantime is
    /// merged by the server instead of being overwritten.
    /// Saves the page's edit of `note`, read from `base` (the stored copy
    /// the page's text derives from), with its outbox entry, in one
    /// transaction. Returns the note as stored: when the stored copy moved
    /// since the page read it (a pull rebased it, another tab saved it), the
    /// page's changes are merged into it ([`merge_page_edit`]) and the result
    /// differs from `note`, so the page must show it.
    pub async fn save_edit(
        &self,
        note: &Note,
        base: Option<&Note>,
        meta: EditMeta,
    ) -> Result<Note, DbError> {
        let tx = self
            .tx(&[NOTES, OUTBOX], TransactionMode::ReadWrite)
            .await?;
        let notes = tx.store(NOTES)?;
        let outbox = tx.store(OUTBOX)?;
        let key = JsValue::from_str(&note.id.to_string());
        let stored: Option<Note> = notes.get(key.clone()).await?.map(from_js).transpose()?;
        let existing: Option<PendingChange> = outbox.get(key).await?.map(from_js).transpose()?;

        let mut to_store = match (base, &stored) {
            (Some(page_base), Some(s)) => merge_page_edit(page_base, note, s),
            _ => note.clone(),
        };
        // A merged edit derives from the stored copy; otherwise from what the
        // page read, which may be newer than an unpulled stored copy.
        let based_on = if to_store == *note {
            base.or(stored.as_ref())
        } else {
            stored.as_ref()
        };
        let (base_rev, base_content) = edit_base(based_on);
        if let Some(s) = &stored {
            // The server revision is the database's to know, not the page's.
            to_store.rev = s.rev;
            to_store.created_at = s.created_at;
        }
        let op = if to_store.deleted {
            PendingOp::Delete
        } else {
            PendingOp::Upsert(to_store.draft())
        };
        let pending = coalesce(
            existing,
            Edit {
                note_id: note.id,
                mutation_id: meta.mutation_id,
                base_rev,
                base: base_content,
                op,
                at_ms: meta.at_ms,
                created_at: note.created_at,
            },
        );
        notes.put(&to_js(&to_store)?, None).await?;
        outbox.put(&to_js(&pending)?, None).await?;
        commit(tx).await?;
        Ok(to_store)
    }

    /// Stores new notes (an import) with one pending change each, in one
    /// transaction: all of them or none. The notes must be new (fresh ids), so
    /// each change is a create based on nothing. The requests of each store
    /// are issued before any is awaited (`put_all`): IndexedDB runs them in
    /// order within the transaction, and awaiting each in turn would cost an
    /// event-loop round trip per record; a failed one aborts the transaction.
    pub async fn import_notes(
        &self,
        notes: &[Note],
        mut meta: impl FnMut() -> EditMeta,
    ) -> Result<(), DbError> {
        let tx = self
            .tx(&[NOTES, OUTBOX], TransactionMode::ReadWrite)
            .await?;
        let notes_store = tx.store(NOTES)?;
        let outbox = tx.store(OUTBOX)?;
        let mut note_records = Vec::with_capacity(notes.len());
        let mut pending_records = Vec::with_capacity(notes.len());
        for note in notes {
            let EditMeta { mutation_id, at_ms } = meta();
            let (base_rev, base) = edit_base(None);
            let pending = coalesce(
                None,
                Edit {
                    note_id: note.id,
                    mutation_id,
                    base_rev,
                    base,
                    op: PendingOp::Upsert(note.draft()),
                    at_ms,
                    created_at: note.created_at,
                },
            );
            note_records.push((to_js(note)?, None));
            pending_records.push((to_js(&pending)?, None));
        }
        notes_store.put_all(note_records.into_iter()).await?;
        outbox.put_all(pending_records.into_iter()).await?;
        commit(tx).await
    }

    /// This browser profile's replica id, made on first use.
    pub async fn client_id(&self, make: impl FnOnce() -> ClientId) -> Result<ClientId, DbError> {
        let tx = self.tx(&[META], TransactionMode::ReadWrite).await?;
        let meta = tx.store(META)?;
        let key = JsValue::from_str(CLIENT_ID_KEY);
        if let Some(value) = meta.get(key).await? {
            let record: MetaRecord<ClientId> = from_js(value)?;
            return Ok(record.value);
        }
        let id = make();
        meta.put(
            &to_js(&MetaRecord {
                key: CLIENT_ID_KEY.to_string(),
                value: id,
            })?,
            None,
        )
        .await?;
        commit(tx).await?;
        Ok(id)
    }

    /// Every recorded conflict.
    pub async fn conflicts(&self) -> Result<Vec<ConflictRecord>, DbError> {
        let tx = self.tx(&[CONFLICTS], TransactionMode::ReadOnly).await?;
        let values = tx.store(CONFLICTS)?.get_all(None, None).await?;
        values.into_iter().map(from_js).collect()
    }

    /// Forgets a conflict the person resolved (the resolution itself is a
    /// normal edit, saved with [`LocalDb::save_edit`]).
    pub async fn drop_conflict(&self, id: NoteId) -> Result<(), DbError> {
        let tx = self.tx(&[CONFLICTS], TransactionMode::ReadWrite).await?;
        tx.store(CONFLICTS)?
            .delete(JsValue::from_str(&id.to_string()))
            .await?;
        commit(tx).await
    }

    async fn read_checkpoint(&self) -> Result<Checkpoint, DbError> {
        let tx = self.tx(&[META], TransactionMode::ReadOnly).await?;
        let value = tx
            .store(META)?
            .get(JsValue::from_str(CHECKPOINT_KEY))
            .await?;
        match value {
            Some(v) => Ok(from_js::<MetaRecord<Checkpoint>>(v)?.value),
            None => Ok(Checkpoint::default()),
        }
    }

    async fn start_resync(&self) -> Result<(), DbError> {
        let tx = self.tx(&[META], TransactionMode::ReadWrite).await?;
        let meta = tx.store(META)?;
        put_checkpoint(&meta, Checkpoint::default()).await?;
        let mark = MetaRecord {
            key: RESYNC_KEY.to_string(),
            value: true,
        };
        meta.put(&to_js(&mark)?, None).await?;
        commit(tx).await
    }

    async fn resync_under_way(&self) -> Result<bool, DbError> {
        let tx = self.tx(&[META], TransactionMode::ReadOnly).await?;
        let value = tx.store(META)?.get(JsValue::from_str(RESYNC_KEY)).await?;
        Ok(value.is_some())
    }

    async fn end_resync(&self, present: &BTreeSet<NoteId>) -> Result<(), DbError> {
        let tx = self
            .tx(
                &[NOTES, OUTBOX, CONFLICTS, META],
                TransactionMode::ReadWrite,
            )
            .await?;
        let notes = tx.store(NOTES)?;
        let conflicts = tx.store(CONFLICTS)?;
        // Keys only: this runs after every download from 0, and reading
        // every note's text just to learn its id would dominate a large one.
        let present: BTreeSet<String> = present.iter().map(ToString::to_string).collect();
        let pending: BTreeSet<String> = tx
            .store(OUTBOX)?
            .get_all_keys(None, None)
            .await?
            .into_iter()
            .filter_map(|key| key.as_string())
            .collect();
        for key in notes.get_all_keys(None, None).await? {
            let Some(id) = key.as_string() else { continue };
            if !present.contains(&id) && !pending.contains(&id) {
                notes.delete(key.clone()).await?;
                conflicts.delete(key).await?;
            }
        }
        tx.store(META)?
            .delete(JsValue::from_str(RESYNC_KEY))
            .await?;
        commit(tx).await
    }

    async fn record_sent(&self, pushed: &[PendingChange]) -> Result<(), DbError> {
        let tx = self.tx(&[OUTBOX], TransactionMode::ReadWrite).await?;
        let outbox = tx.store(OUTBOX)?;
        for p in pushed {
            let key = JsValue::from_str(&p.note_id.to_string());
            let Some(current) = outbox.get(key).await? else {
                continue;
            };
            let current: PendingChange = from_js(current)?;
            if let Some(marked) = current.marked_sent(p) {
                outbox.put(&to_js(&marked)?, None).await?;
            }
        }
        commit(tx).await
    }

    async fn settle_outbox(
        &self,
        sent: &[PendingChange],
        results: &[ChangeResult],
        fresh_ids: &[MutationId],
    ) -> Result<(), DbError> {
        let tx = self.tx(&[OUTBOX], TransactionMode::ReadWrite).await?;
        let outbox = tx.store(OUTBOX)?;
        for ((sent, result), fresh) in sent.iter().zip(results).zip(fresh_ids) {
            let key = JsValue::from_str(&sent.note_id.to_string());
            let Some(current) = outbox.get(key.clone()).await? else {
                continue;
            };
            let current: PendingChange = from_js(current)?;
            match acknowledge(&current, sent, result, *fresh) {
                AckDecision::Remove => outbox.delete(key).await?,
                AckDecision::Keep(kept) => {
                    outbox.put(&to_js(kept.as_ref())?, None).await?;
                }
            }
        }
        commit(tx).await
    }

    async fn store_page(
        &self,
        entries: &[FeedEntry],
        checkpoint: Checkpoint,
    ) -> Result<(), DbError> {
        let tx = self
            .tx(
                &[NOTES, OUTBOX, CONFLICTS, META, TRASH],
                TransactionMode::ReadWrite,
            )
            .await?;
        let notes = tx.store(NOTES)?;
        let outbox = tx.store(OUTBOX)?;
        let conflicts = tx.store(CONFLICTS)?;
        let trash = tx.store(TRASH)?;
        for entry in entries {
            let key = JsValue::from_str(&entry.note.id.to_string());
            let pending: Option<PendingChange> =
                outbox.get(key.clone()).await?.map(from_js).transpose()?;
            let decision = apply_entry(entry, pending.as_ref());
            if decision != EntryDecision::KeepLocal {
                let stored: Option<Note> =
                    notes.get(key.clone()).await?.map(from_js).transpose()?;
                if is_newer(stored.as_ref().map(|s| s.rev), entry.note.rev) {
                    match decision {
                        EntryDecision::Store(note) => {
                            // Deleted elsewhere: keep the text this device
                            // held, so it can be restored from here too.
                            if let Some(held) = stored.filter(|s| note.deleted && !s.deleted) {
                                let kept = Trashed {
                                    id: held.id,
                                    deleted_at: note.updated_at,
                                    note: held,
                                };
                                trash.put(&to_js(&kept)?, None).await?;
                            }
                            notes.put(&to_js(&note)?, None).await?;
                        }
                        EntryDecision::Rebase { note, pending } => {
                            notes.put(&to_js(&note)?, None).await?;
                            outbox.put(&to_js(pending.as_ref())?, None).await?;
                        }
                        EntryDecision::KeepLocal => {}
                    }
                }
            }
            match &entry.conflict {
                Some(sides) => {
                    let record = ConflictRecord {
                        note_id: entry.note.id,
                        sides: sides.clone(),
                        seq: entry.seq,
                    };
                    conflicts.put(&to_js(&record)?, None).await?;
                }
                None => conflicts.delete(key).await?,
            }
        }
        put_checkpoint(&tx.store(META)?, checkpoint).await?;
        commit(tx).await
    }

    /// Every kept text of a deleted note.
    pub async fn trash(&self) -> Result<Vec<Trashed>, DbError> {
        let tx = self.tx(&[TRASH], TransactionMode::ReadOnly).await?;
        let values = tx.store(TRASH)?.get_all(None, None).await?;
        values.into_iter().map(from_js).collect()
    }

    /// Keeps the text of a note being deleted here.
    pub async fn put_trash(&self, kept: &Trashed) -> Result<(), DbError> {
        let tx = self.tx(&[TRASH], TransactionMode::ReadWrite).await?;
        tx.store(TRASH)?.put(&to_js(kept)?, None).await?;
        commit(tx).await
    }

    /// Forgets kept texts (restored, or no longer restorable).
    pub async fn drop_trash(&self, ids: &[NoteId]) -> Result<(), DbError> {
        let tx = self.tx(&[TRASH], TransactionMode::ReadWrite).await?;
        let store = tx.store(TRASH)?;
        for id in ids {
            store.delete(JsValue::from_str(&id.to_string())).await?;
        }
        commit(tx).await
    }

    /// Reads one note.
    pub async fn note(&self, id: NoteId) -> Result<Option<Note>, DbError> {
        let tx = self.tx(&[NOTES], TransactionMode::ReadOnly).await?;
        let value = tx
            .store(NOTES)?
            .get(JsValue::from_str(&id.to_string()))
            .await?;
        value.map(from_js).transpose()
    }
}
