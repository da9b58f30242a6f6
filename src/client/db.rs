//! The browser's IndexedDB database, through `rexie`.
//!
//! Schema (version [`SCHEMA_VERSION`]):
//! - `notes`: every note the browser holds, tombstones included, keyed by `id`;
//!   since version 3 a tombstone's record also carries `gone` (its delete
//!   time), indexed as `tombstones`, so live notes are counted without
//!   reading any note ([`NoteRecord`]);
//! - `outbox`: at most one pending change per note, keyed by `note_id`;
//!   since version 3 indexed in push order (`push_order`:
//!   `[first_edit_at, note_id]`,
//!   [`push_order`](crate::sync::replica::push_order)) and by refusal (`refused`:
//!   only refused entries have a `rejected` reason, a valid key), so a push
//!   reads only its batch;
//! - `meta`: small key/value records (client id, checkpoint, the database's
//!   identity), keyed by `key`;
//! - `conflicts`: notes whose concurrent edits need a person's choice;
//! - `versions` (since version 3): one record, `outbox`, a fresh token
//!   written with every change to the outbox, so a push can tell that its
//!   batch is as it read it without reading it again;
//! - `trash` (since version 2): the last text of each deleted note,
//!   keyed by `id`, for "Recently deleted" ([`Trashed`]). Local only, never
//!   synced: written by the page when it deletes, and by the worker in the
//!   same transaction as a pulled delete of a note it held live; dropped on
//!   restore, and when the note is live again or no longer held.
//!
//! Promises: a local edit writes its note and its outbox entry in one
//! transaction, so they can never disagree; no transaction is held across an
//! unrelated await; every failure comes back as a [`DbError`] a person can read.
//!
//! One database, one life: each database carries an identity (a random
//! `epoch` in `meta`, written when it is first opened), and a [`LocalDb`]
//! holds the one it opened. A connection the browser closed is opened again
//! only onto the same database: if it was deleted or cleared meanwhile, the
//! handle refuses every use from then on ([`DbError::Lost`]), so a database
//! deleted under an open page is never silently recreated empty and written
//! into; the page writes back what it holds through a new handle
//! ([`LocalDb::write_back`]). Each handle also keeps a second, idle
//! connection that only listens ([`Watch`]): when another context deletes
//! the database or a newer build upgrades it, both connections are closed at
//! once, so neither is blocked by this build, and the owner hears of it
//! ([`DbEvent`]).
//!
//! A stored record this build cannot read is skipped, never allowed to hide
//! the others, and reported once ([`newly_unreadable`]).
//!
//! Speed: IndexedDB answers requests in the order they were made within a
//! transaction, so the requests of one step are all issued before any is
//! awaited (`try_join_all`): a page of 5,000 pulled notes costs a few event
//! loop turns, not 20,000. Reads come first, then the decisions (the pure
//! rules of [`crate::sync::replica`], over an in-memory view that includes
//! the step's own earlier writes), then every write.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use futures::future::{try_join_all, FutureExt, LocalBoxFuture};
use rexie::{Index, ObjectStore, Rexie, TransactionMode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::{JsCast, JsValue};

use super::timings;
use crate::domain::{ClientId, MutationId, Note, NoteId, UserId};
use crate::sync::driver::{
    recreated_note, Applied, PendingCounts, PortError, Recreated, ReplicaStore,
};
use crate::sync::protocol::{
    ChangeResult, Checkpoint, ConflictSides, FeedEntry, PUSH_REQUEST_BUDGET,
};
use crate::sync::recovery::WriteBack;
use crate::sync::replica::{
    acknowledge, apply_entry, clock_after_pull, edit_base, is_newer, push_order, save_edit,
    AckDecision, EditStamp, EntryDecision,
};
use crate::sync::{coalesce, Edit, Hlc, PendingChange, PendingOp};
use crate::ui::model::Trashed;

/// Each user has their own database, so signing in as someone else on the
/// same browser shows only their notes.
pub fn db_name(user: &UserId) -> String {
    format!("notesync-{user}")
}
/// 2: the `trash` store added (opening a version 1 database adds it).
/// 3: the `tombstones`, `push_order` and `refused` indexes; tombstones
/// written before carry no `gone` yet and are marked once on open
/// ([`LocalDb::open`]).
pub const SCHEMA_VERSION: u32 = 3;

const NOTES: &str = "notes";
const OUTBOX: &str = "outbox";
const META: &str = "meta";
const CONFLICTS: &str = "conflicts";
const TRASH: &str = "trash";
const VERSIONS: &str = "versions";
const OUTBOX_VERSION_KEY: &str = "outbox";

const TOMBSTONES: &str = "tombstones";
const PUSH_ORDER: &str = "push_order";
const REFUSED: &str = "refused";

const CHECKPOINT_KEY: &str = "checkpoint";
const CLIENT_ID_KEY: &str = "client_id";
/// The replica's hybrid logical clock: ticked by every local edit, moved
/// past every pulled page's clocks.
const CLOCK_KEY: &str = "clock";
/// Present while a full download after `resync_required` is under way.
const RESYNC_KEY: &str = "resync";
/// The copies of the changes pushed whose answer has not come yet.
const IN_FLIGHT_KEY: &str = "in_flight";
/// Present once every tombstone carries `gone` (schema 3).
const TOMBSTONES_MARKED_KEY: &str = "tombstones_marked";
/// The database's identity: a random text written when it is first opened.
const IDENTITY_KEY: &str = "identity";

/// A note as the `notes` store holds it: the note's own fields, and for a
/// tombstone `gone`, its delete time, which the `tombstones` index lists.
/// Read back as a plain [`Note`] (the extra field is ignored).
#[derive(serde::Serialize)]
struct NoteRecord<'a> {
    #[serde(flatten)]
    note: &'a Note,
    #[serde(skip_serializing_if = "Option::is_none")]
    gone: Option<u64>,
}

fn note_record(note: &Note) -> Result<JsValue, DbError> {
    to_js(&NoteRecord {
        note,
        gone: note.deleted.then_some(note.updated_at),
    })
}

fn note_key(id: NoteId) -> JsValue {
    JsValue::from_str(&id.to_string())
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

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

pub use crate::bridge::DbError;

impl DbError {
    fn classify(text: String) -> Self {
        // rexie/idb keep the DOMException only as text ("QuotaExceededError: …"),
        // so its name is the stable part to match on.
        if text.contains("QuotaExceededError") {
            DbError::QuotaExceeded
        } else if text.contains("VersionError") {
            // Opened at a lower version than the stored one: a newer build
            // upgraded it.
            DbError::Outdated
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

// Records cross between Rust and JavaScript as JSON text: one string and
// the engine's native `JSON.parse`/`JSON.stringify` per record (or per
// batch), where walking the object field by field from wasm
// (serde-wasm-bindgen) costs a boundary call per field and measured several
// times slower on 5,000-note pages. The stored shape is the same plain object
// either way, so records written by either read back alike.
//
// Text is parsed with `from_slice`, as the server functions' responses are
// (`server_fn`'s JSON codec): a type read both ways is then one deserialiser
// in the bundle, not one per kind of reader.

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, DbError> {
    let text = serde_json::to_string(value)
        .map_err(|e| DbError::Other(format!("could not encode a record: {e}")))?;
    js_sys::JSON::parse(&text)
        .map_err(|e| DbError::Other(format!("could not encode a record: {e:?}")))
}

fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T, DbError> {
    let text = js_text(&value)?;
    serde_json::from_slice(text.as_bytes()).map_err(unreadable)
}

/// Many records read back at once: one `JSON.stringify` and one parse. A
/// record this build cannot read is skipped and reported
/// ([`newly_unreadable`]); it stays stored as it is.
fn from_js_all<T: DeserializeOwned>(values: Vec<JsValue>) -> Result<Vec<T>, DbError> {
    Ok(from_js_each(values)?.into_iter().flatten().collect())
}

/// As [`from_js_all`], each record in its place: `None` where one could not
/// be read.
fn from_js_each<T: DeserializeOwned>(values: Vec<JsValue>) -> Result<Vec<Option<T>>, DbError> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let array: js_sys::Array = values.iter().collect();
    let text = js_text(&array)?;
    if let Ok(all) = serde_json::from_slice::<Vec<T>>(text.as_bytes()) {
        return Ok(all.into_iter().map(Some).collect());
    }
    // One bad record must not hide the others: read them one at a time.
    Ok(values
        .into_iter()
        .map(|value| match from_js(value.clone()) {
            Ok(record) => Some(record),
            Err(e) => {
                skipped(&value, &e);
                None
            }
        })
        .collect())
}

/// Records skipped as unreadable in this context, and those reported.
#[derive(Default)]
struct Unreadable {
    reported: HashSet<String>,
    fresh: Vec<String>,
}

thread_local! {
    static UNREADABLE: RefCell<Unreadable> = RefCell::new(Unreadable::default());
}

/// Notes that a record could not be read, naming it by its key.
fn skipped(record: &JsValue, error: &DbError) {
    let key = ["id", "note_id", "key"]
        .iter()
        .find_map(|field| {
            js_sys::Reflect::get(record, &JsValue::from_str(field))
                .ok()?
                .as_string()
        })
        .unwrap_or_else(|| "without a key".to_string());
    UNREADABLE.with(|u| {
        let mut u = u.borrow_mut();
        if u.reported.insert(key.clone()) {
            u.fresh.push(format!("the record {key} ({error})"));
        }
    });
}

/// The records skipped as unreadable since the last call, each named once
/// in the life of this page or worker.
pub fn newly_unreadable() -> Vec<String> {
    UNREADABLE.with(|u| std::mem::take(&mut u.borrow_mut().fresh))
}

fn js_text(value: &JsValue) -> Result<String, DbError> {
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|text| text.as_string())
        .ok_or_else(|| DbError::Unreadable("not JSON data".into()))
}

fn unreadable(e: serde_json::Error) -> DbError {
    DbError::Unreadable(e.to_string())
}

async fn put_checkpoint(meta: &rexie::Store, checkpoint: Checkpoint) -> Result<(), DbError> {
    let record = MetaRecord {
        key: CHECKPOINT_KEY.to_string(),
        value: checkpoint,
    };
    meta.put(&to_js(&record)?, None).await?;
    Ok(())
}

/// Issues `writes`, a read-write transaction's last requests, and commits
/// right behind them with `IDBTransaction.commit()`. Left to commit by
/// itself, the transaction commits only once each request's success has
/// come back to this thread and a turn of its event loop found no new
/// request: one more round trip to the browser's database process (0.1 ms
/// of the save's 0.7 on an idle page, `end2end/bench/probe-save.mjs`).
///
/// `writes` must make every request when first polled, as the puts and
/// deletes of this module do: a request made after an await would come
/// after the commit and fail. A request refused as it is made (the first
/// poll fails) aborts the transaction, so that the requests made before it
/// are not committed alone; one that fails later aborts it by itself.
/// Boxed, so that its one body serves every caller: generic, it was built
/// once per call site, 5.5 KB more wasm.
async fn commit_after(
    tx: rexie::Transaction,
    mut writes: LocalBoxFuture<'_, Result<(), DbError>>,
) -> Result<(), DbError> {
    let first = futures::poll!(writes.as_mut());
    if let std::task::Poll::Ready(Err(e)) = first {
        // It may have aborted already; either way nothing is committed.
        let _ = tx.abort().await;
        return Err(e);
    }
    let (written, committed) = if first.is_ready() {
        (Ok(()), tx.commit().await)
    } else {
        futures::join!(writes, tx.commit())
    };
    // A request's own error says more than the abort it caused.
    written?;
    match committed {
        Ok(()) => Ok(()),
        Err(rexie::Error::TransactioncommitFailed) => Err(aborted()),
        Err(e) => Err(DbError::from(e)),
    }
}

fn aborted() -> DbError {
    DbError::Other("the write was aborted by the browser (storage may be full)".into())
}

async fn commit(tx: rexie::Transaction) -> Result<(), DbError> {
    match tx.done().await? {
        rexie::TransactionResult::Committed => Ok(()),
        rexie::TransactionResult::Aborted => Err(aborted()),
    }
}

/// The copies of changes pushed and not answered yet (the `in_flight` meta
/// record), as [`PendingChange::to_push`] made them.
/// Held as JSON text: a batch of copies is one string to store, where an
/// object per copy would be cloned field by field on every write.
async fn read_in_flight(meta: &rexie::Store) -> Result<Vec<PendingChange>, DbError> {
    let Some(record) = meta.get(JsValue::from_str(IN_FLIGHT_KEY)).await? else {
        return Ok(Vec::new());
    };
    let text = js_sys::Reflect::get(&record, &JsValue::from_str("value"))
        .ok()
        .and_then(|v| v.as_string())
        .ok_or_else(|| DbError::Unreadable("in_flight".into()))?;
    serde_json::from_slice(text.as_bytes()).map_err(unreadable)
}

async fn write_in_flight(meta: &rexie::Store, flying: Vec<PendingChange>) -> Result<(), DbError> {
    if flying.is_empty() {
        meta.delete(JsValue::from_str(IN_FLIGHT_KEY)).await?;
    } else {
        let text = serde_json::to_string(&flying)
            .map_err(|e| DbError::Other(format!("could not encode a record: {e}")))?;
        // Built directly: as JSON, the text would be escaped and parsed again.
        let record = js_sys::Object::new();
        let set = |key: &str, value: &JsValue| {
            js_sys::Reflect::set(&record, &JsValue::from_str(key), value)
                .map(|_| ())
                .map_err(|e| DbError::Other(format!("could not encode a record: {e:?}")))
        };
        set("key", &JsValue::from_str(IN_FLIGHT_KEY))?;
        set("value", &JsValue::from_str(&text))?;
        meta.put(&record.into(), None).await?;
    }
    Ok(())
}

/// The replica's clock (the `clock` meta record), or the first reading of
/// this profile's client id when no edit was timed yet; `None` while the
/// profile has no client id either.
async fn read_clock(meta: &rexie::Store) -> Result<Option<Hlc>, DbError> {
    let (clock, client) = futures::try_join!(
        meta.get(JsValue::from_str(CLOCK_KEY)),
        meta.get(JsValue::from_str(CLIENT_ID_KEY))
    )?;
    if let Some(value) = clock {
        return Ok(Some(from_js::<MetaRecord<Hlc>>(value)?.value));
    }
    client
        .map(|value| Ok(Hlc::zero(from_js::<MetaRecord<ClientId>>(value)?.value)))
        .transpose()
}

fn clock_record(clock: Hlc) -> Result<JsValue, DbError> {
    to_js(&MetaRecord {
        key: CLOCK_KEY.to_string(),
        value: clock,
    })
}

fn client_record(client: ClientId) -> Result<JsValue, DbError> {
    to_js(&MetaRecord {
        key: CLIENT_ID_KEY.to_string(),
        value: client,
    })
}

/// Marks the outbox changed (a fresh token), inside the writing
/// transaction.
async fn outbox_changed(versions: &rexie::Store) -> Result<(), DbError> {
    // Only equality matters: 52 random bits never repeat in practice.
    let token = js_sys::Math::random();
    let record = MetaRecord {
        key: OUTBOX_VERSION_KEY.to_string(),
        value: token,
    };
    versions.put(&to_js(&record)?, None).await?;
    Ok(())
}

async fn outbox_version(versions: &rexie::Store) -> Result<Option<f64>, DbError> {
    match versions.get(JsValue::from_str(OUTBOX_VERSION_KEY)).await? {
        Some(value) => Ok(Some(from_js::<MetaRecord<f64>>(value)?.value)),
        None => Ok(None),
    }
}

/// Gives an outbox entry its sent copy from `flying`, as the pure rules
/// expect it ([`PendingChange::sent`]); entries stored before the
/// `in_flight` record carry theirs inline already.
fn with_sent_copy(entry: &mut PendingChange, flying: &SentCopies<'_>) {
    if entry.sent.is_some() {
        return;
    }
    if let Some(copy) = flying.get(&(entry.note_id, entry.mutation_id)) {
        entry.sent = entry.marked_sent(copy).and_then(|marked| marked.sent);
    }
}

/// The `in_flight` copies by note and mutation: a batch of a thousand
/// entries looks each up, where a scan per entry would be a million steps.
type SentCopies<'a> = HashMap<(NoteId, MutationId), &'a PendingChange>;

fn sent_copies(flying: &[PendingChange]) -> SentCopies<'_> {
    flying
        .iter()
        .map(|f| ((f.note_id, f.mutation_id), f))
        .collect()
}

/// An entry's key in the `push_order` index.
fn push_order_key(p: &PendingChange) -> JsValue {
    js_sys::Array::of2(
        &JsValue::from_f64(p.first_edit_at as f64),
        &JsValue::from_str(&p.note_id.to_string()),
    )
    .into()
}

/// A stored outbox record's key in the `push_order` index, read from the
/// record itself.
fn raw_push_order_key(record: &JsValue) -> JsValue {
    let field =
        |name: &str| js_sys::Reflect::get(record, &JsValue::from_str(name)).unwrap_or_default();
    js_sys::Array::of2(&field("first_edit_at"), &field("note_id")).into()
}

/// The outbox entries of a pushed batch as they are now (`None`: gone), in
/// one read: an entry keeps its place in push order while it waits, so the
/// batch's entries lie between its first and last push-order keys.
async fn read_batch(
    outbox: &rexie::Store,
    sent: &[PendingChange],
) -> Result<HashMap<NoteId, Option<PendingChange>>, DbError> {
    let (Some(first), Some(last)) = (
        sent.iter().min_by_key(|p| push_order(p)),
        sent.iter().max_by_key(|p| push_order(p)),
    ) else {
        return Ok(HashMap::new());
    };
    let range = rexie::KeyRange::bound(
        &push_order_key(first),
        &push_order_key(last),
        Some(false),
        Some(false),
    )
    .map_err(rexie::Error::from)?;
    let found: Vec<PendingChange> =
        from_js_all(outbox.index(PUSH_ORDER)?.get_all(Some(range), None).await?)?;
    let mut current: HashMap<NoteId, Option<PendingChange>> =
        sent.iter().map(|p| (p.note_id, None)).collect();
    for entry in found {
        if let Some(slot) = current.get_mut(&entry.note_id) {
            *slot = Some(entry);
        }
    }
    Ok(current)
}

/// Whether `batch` holds an entry for every change of `sent`.
fn covers(batch: &[PendingChange], sent: &[PendingChange]) -> bool {
    let held: HashSet<NoteId> = batch.iter().map(|p| p.note_id).collect();
    sent.iter().all(|s| held.contains(&s.note_id))
}

/// `writes` with their deletes made one range delete when that is exact:
/// the deleted keys are every key between the least and the greatest of
/// them (a pushed import is such a run of note ids). A request per key
/// costs tens of microseconds; a range costs one request.
async fn delete_as_range(store: &rexie::Store, writes: Vec<Write>) -> Result<Vec<Write>, DbError> {
    let keys: HashSet<String> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Delete(key) => key.as_string(),
            Write::Put(_) => None,
        })
        .collect();
    let (Some(first), Some(last)) = (keys.iter().min(), keys.iter().max()) else {
        return Ok(writes);
    };
    if keys.len() < 64 {
        return Ok(writes);
    }
    let range = || {
        rexie::KeyRange::bound(
            &JsValue::from_str(first),
            &JsValue::from_str(last),
            Some(false),
            Some(false),
        )
        .map_err(rexie::Error::from)
    };
    // Every deleted key names an entry read in this transaction (or in an
    // unchanged outbox), so as many records in the range as keys means the
    // range holds exactly these.
    let held = store.count(Some(range()?)).await?;
    if usize::try_from(held).ok() != Some(keys.len()) {
        return Ok(writes);
    }
    store.delete(range()?.into()).await?;
    Ok(writes
        .into_iter()
        .filter(|w| matches!(w, Write::Put(_)))
        .collect())
}

/// One write of a step, issued in order with the step's others.
enum Write {
    Put(JsValue),
    Delete(JsValue),
}

/// Issues every write before awaiting any (IndexedDB keeps their order).
async fn write_all(store: &rexie::Store, writes: &[Write]) -> Result<(), DbError> {
    try_join_all(writes.iter().map(|w| match w {
        Write::Put(value) => {
            futures::future::Either::Left(async move { store.put(value, None).await.map(|_| ()) })
        }
        Write::Delete(key) => futures::future::Either::Right(store.delete(key.clone())),
    }))
    .await?;
    Ok(())
}

/// What a read expects to find, which decides how it reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Most ids name records that exist: each is read.
    Present,
    /// Many ids may be new (a pulled page): above [`LIST_KEYS_ABOVE`] ids,
    /// the store's keys are listed first and only existing records read.
    MostlyAbsent,
}

/// Above this many ids, a read lists the store's keys first and fetches
/// only the records that exist: a request costs tens of microseconds even for
/// a missing key, listing a key about a tenth of that, and a large pulled
/// page is mostly new notes. (Counting the store first to choose would cost
/// as much as listing: the browser counts by scanning.)
const LIST_KEYS_ABOVE: usize = 500;

/// The records of `ids` in `store` (`None`: not held), in one read.
async fn read_records<T: DeserializeOwned>(
    store: &rexie::Store,
    ids: impl Iterator<Item = NoteId>,
    expect: Expect,
) -> Result<HashMap<NoteId, Option<T>>, DbError> {
    let mut ids: Vec<NoteId> = ids.collect();
    let mut found: HashMap<NoteId, Option<T>> = HashMap::with_capacity(ids.len());
    if expect == Expect::MostlyAbsent && ids.len() > LIST_KEYS_ABOVE {
        let held: HashSet<String> = store
            .get_all_keys(None, None)
            .await?
            .into_iter()
            .filter_map(|k| k.as_string())
            .collect();
        ids.retain(|id| {
            let present = held.contains(&id.to_string());
            if !present {
                found.insert(*id, None);
            }
            present
        });
    }
    let values = try_join_all(ids.iter().map(|id| store.get(note_key(*id)))).await?;
    let (held, missing): (Vec<_>, Vec<_>) =
        ids.into_iter().zip(values).partition(|(_, v)| v.is_some());
    found.extend(missing.into_iter().map(|(id, _)| (id, None)));
    let (held_ids, held_values): (Vec<NoteId>, Vec<JsValue>) = held
        .into_iter()
        .filter_map(|(id, v)| Some((id, v?)))
        .unzip();
    // An unreadable record is as good as absent: a pulled copy replaces it.
    let records: Vec<Option<T>> = from_js_each(held_values)?;
    found.extend(held_ids.into_iter().zip(records));
    Ok(found)
}

impl From<DbError> for PortError {
    fn from(e: DbError) -> Self {
        PortError {
            message: e.to_string(),
            retryable: true,
            offline: false,
            push_limit: None,
            retry_after_ms: None,
        }
    }
}

#[async_trait::async_trait(?Send)]
impl ReplicaStore for LocalDb {
    async fn checkpoint(&self) -> Result<Checkpoint, PortError> {
        let t = timings::start();
        let r = self.read_checkpoint().await?;
        timings::end("checkpoint", t);
        Ok(r)
    }

    async fn pending_counts(&self) -> Result<PendingCounts, PortError> {
        let t = timings::start();
        let r = self.outbox_counts().await?;
        timings::end("pending_counts", t);
        Ok(r)
    }

    async fn next_batch(&self, max: usize) -> Result<Vec<PendingChange>, PortError> {
        let t = timings::start();
        let r = self.oldest_pushable(max).await?;
        timings::end("next_batch", t);
        Ok(r)
    }

    async fn mark_sent(&self, pushed: &[PendingChange]) -> Result<(), PortError> {
        let t = timings::start();
        let r = self.record_sent(pushed).await?;
        timings::end("mark_sent", t);
        Ok(r)
    }

    async fn settle(
        &self,
        sent: &[PendingChange],
        results: &[ChangeResult],
        fresh_ids: &[MutationId],
    ) -> Result<Vec<Recreated>, PortError> {
        let t = timings::start();
        let r = self.settle_outbox(sent, results, fresh_ids).await?;
        timings::end("settle", t);
        Ok(r)
    }

    async fn apply_page(
        &self,
        entries: &[FeedEntry],
        checkpoint: Checkpoint,
    ) -> Result<Applied, PortError> {
        let t = timings::start();
        let r = self.store_page(entries, checkpoint).await?;
        timings::end("apply_page", t);
        Ok(r)
    }

    async fn requeue_over_quota(&self) -> Result<u32, PortError> {
        Ok(self.requeue_refused_for_quota().await?)
    }

    async fn begin_resync(&self) -> Result<(), PortError> {
        Ok(self.start_resync().await?)
    }

    async fn resyncing(&self) -> Result<bool, PortError> {
        Ok(self.resync_under_way().await?)
    }

    async fn finish_resync(&self, present: &BTreeSet<NoteId>) -> Result<Vec<NoteId>, PortError> {
        let t = timings::start();
        let r = self.end_resync(present).await?;
        timings::end("finish_resync", t);
        Ok(r)
    }
}

/// What happened to the database under an open [`LocalDb`], as its owner
/// hears it ([`LocalDb::listen`]). Either way the handle's connections are
/// closed already, so this build never blocks another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbEvent {
    /// Another context deleted the database, or the browser closed the
    /// connection (site data cleared, storage pressure, its storage process
    /// gone). The next use of the handle finds out whether the database is
    /// still the one it opened; if not, the handle is [`DbError::Lost`].
    Gone,
    /// A newer build upgraded the database: this build must reload.
    Upgraded,
}

/// Whether a handle may still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Open,
    /// Its database was deleted or replaced: never used again.
    Lost,
    /// A newer build upgraded the database.
    Outdated,
}

/// The parts of a handle its [`Watch`] reaches from the browser's events.
struct Shared {
    /// The working connection; `None` once closed, until reopened.
    rexie: RefCell<Option<Rexie>>,
    health: Cell<Health>,
    watch: RefCell<Option<Watch>>,
    listener: RefCell<Option<Listener>>,
}

/// Who hears a handle's [`DbEvent`]s.
type Listener = Rc<dyn Fn(DbEvent)>;

impl Shared {
    /// Closes both connections (a transaction under way still finishes) and
    /// tells the owner.
    fn let_go(self: &Rc<Self>, event: DbEvent, health: Health) {
        if let Some(rexie) = self.rexie.borrow_mut().take() {
            rexie.close();
        }
        let watch = self.watch.borrow_mut().take();
        if let Some(watch) = &watch {
            watch.db.close();
        }
        if self.health.get() == Health::Open {
            self.health.set(health);
        }
        // Dropped after this event's handler returns: a closure must not be
        // freed while it runs.
        wasm_bindgen_futures::spawn_local(async move { drop(watch) });
        self.tell(event);
    }

    fn tell(&self, event: DbEvent) {
        let listener = self.listener.borrow().clone();
        if let Some(listener) = listener {
            listener(event);
        }
    }
}

/// A second connection to the database that does nothing but listen: rexie
/// keeps its own connection's events to itself, and without a
/// `versionchange` handler an open connection blocks every deletion and
/// upgrade of the database, by any tab, until its page closes.
struct Watch {
    db: web_sys::IdbDatabase,
    _on_version_change: Closure<dyn FnMut(web_sys::IdbVersionChangeEvent)>,
    _on_close: Closure<dyn FnMut(web_sys::Event)>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.set_onclose(None);
        self.db.close();
    }
}

/// The browser's `indexedDB`, in a page or a worker.
fn idb_factory() -> Option<web_sys::IdbFactory> {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
        .ok()?
        .dyn_into()
        .ok()
}

/// The outcome of a request of `indexedDB` (open, delete), waited for;
/// `on_blocked` is called each time the browser says other connections hold
/// it back.
async fn settled(
    request: &web_sys::IdbOpenDbRequest,
    on_blocked: impl Fn() + 'static,
) -> Result<JsValue, String> {
    let (done, outcome) = futures::channel::oneshot::channel::<Result<JsValue, String>>();
    let done = Rc::new(RefCell::new(Some(done)));
    let finish = {
        let request = request.clone();
        let done = done.clone();
        move |ok: bool| {
            let result = if ok {
                request.result().map_err(|e| format!("{e:?}"))
            } else {
                Err(request.error().ok().flatten().map_or_else(
                    || "refused".to_string(),
                    |e| format!("{}: {}", e.name(), e.message()),
                ))
            };
            if let Some(done) = done.borrow_mut().take() {
                let _ = done.send(result);
            }
        }
    };
    let on_success = {
        let finish = finish.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_| finish(true))
    };
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| finish(false));
    let on_blocked = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| on_blocked());
    request.set_onsuccess(Some(on_success.as_ref().unchecked_ref()));
    request.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    request.set_onblocked(Some(on_blocked.as_ref().unchecked_ref()));
    let result = outcome.await.unwrap_or_else(|_| Err("abandoned".into()));
    request.set_onsuccess(None);
    request.set_onerror(None);
    request.set_onblocked(None);
    result
}

impl Watch {
    /// Opens the listening connection to `name` as it is, and attaches it to
    /// `shared`; `None` if the database is gone already (it is not created).
    async fn open(name: &str, shared: &Rc<Shared>) -> Option<Self> {
        let request = idb_factory()?.open(name).ok()?;
        // Only a database that does not exist needs an upgrade here: let it
        // stay not existing.
        let on_upgrade = {
            let request = request.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                if let Some(tx) = request.transaction() {
                    let _ = tx.abort();
                }
            })
        };
        request.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
        let opened = settled(&request, || {}).await;
        request.set_onupgradeneeded(None);
        let db: web_sys::IdbDatabase = opened.ok()?.dyn_into().ok()?;
        let weak = Rc::downgrade(shared);
        let on_version_change = Closure::<dyn FnMut(web_sys::IdbVersionChangeEvent)>::new(
            move |event: web_sys::IdbVersionChangeEvent| {
                let Some(shared) = weak.upgrade() else { return };
                // No new version: a deletion. A version above this build's: a
                // newer build's upgrade.
                match event.new_version() {
                    Some(v) if v > f64::from(SCHEMA_VERSION) => {
                        shared.let_go(DbEvent::Upgraded, Health::Outdated);
                    }
                    _ => shared.let_go(DbEvent::Gone, Health::Lost),
                }
            },
        );
        let weak = Rc::downgrade(shared);
        let on_close = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            // Closed by the browser: whether the database survived is
            // found out when it is next used.
            if let Some(shared) = weak.upgrade() {
                shared.let_go(DbEvent::Gone, Health::Open);
            }
        });
        db.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        db.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Some(Self {
            db,
            _on_version_change: on_version_change,
            _on_close: on_close,
        })
    }
}

/// An open handle on the local database, bound to the database it opened
/// (its identity, see the module doc). If the browser closes the connection
/// (its storage process restarted), the next transaction opens a new one
/// and goes on, if the database is still that one.
pub struct LocalDb {
    user: UserId,
    /// The identity of the database this handle opened.
    epoch: String,
    shared: Rc<Shared>,
    /// The last batch [`LocalDb::oldest_pushable`] read, with the outbox's
    /// version then: settling it reads the outbox again only if the version
    /// moved (an edit, another tab) in between.
    last_batch: RefCell<Option<(Option<f64>, Vec<PendingChange>)>>,
}

/// What a pending-edit write needs beyond the note itself.
pub struct EditMeta {
    pub mutation_id: MutationId,
    pub at_ms: u64,
}

/// The identity of the database `rexie` is connected to, made now if it has
/// none yet (`make` gives it).
async fn identity(rexie: &Rexie, make: Option<String>) -> Result<Option<String>, DbError> {
    let mode = if make.is_some() {
        TransactionMode::ReadWrite
    } else {
        TransactionMode::ReadOnly
    };
    let tx = rexie.transaction(&[META], mode)?;
    let meta = tx.store(META)?;
    if let Some(value) = meta.get(JsValue::from_str(IDENTITY_KEY)).await? {
        return Ok(Some(from_js::<MetaRecord<String>>(value)?.value));
    }
    let Some(epoch) = make else {
        return Ok(None);
    };
    let record = MetaRecord {
        key: IDENTITY_KEY.to_string(),
        value: epoch.clone(),
    };
    meta.put(&to_js(&record)?, None).await?;
    commit(tx).await?;
    Ok(Some(epoch))
}

impl LocalDb {
    /// Opens (and if needed creates or upgrades) the database, and takes the
    /// identity it has (or gives it one).
    pub async fn open(user: &UserId) -> Result<Self, DbError> {
        let rexie = Self::connect(user).await?;
        // Only uniqueness matters: the time and 104 random bits.
        let random = || (js_sys::Math::random() * 2f64.powi(52)) as u64;
        let fresh = format!(
            "{:x}-{:013x}-{:013x}",
            js_sys::Date::now() as u64,
            random(),
            random()
        );
        let epoch = identity(&rexie, Some(fresh))
            .await?
            .ok_or_else(|| DbError::Unavailable("it has no identity".into()))?;
        let db = Self {
            user: user.clone(),
            epoch,
            shared: Rc::new(Shared {
                rexie: RefCell::new(Some(rexie)),
                health: Cell::new(Health::Open),
                watch: RefCell::new(None),
                listener: RefCell::new(None),
            }),
            last_batch: RefCell::new(None),
        };
        db.watch().await;
        db.mark_tombstones().await?;
        Ok(db)
    }

    /// Starts listening for the database's deletion or upgrade, if not yet.
    async fn watch(&self) {
        if self.shared.watch.borrow().is_some() {
            return;
        }
        let watch = Watch::open(&db_name(&self.user), &self.shared).await;
        *self.shared.watch.borrow_mut() = watch;
    }

    /// Calls `listener` with every [`DbEvent`] from now on.
    pub fn listen(&self, listener: impl Fn(DbEvent) + 'static) {
        *self.shared.listener.borrow_mut() = Some(Rc::new(listener));
    }

    /// The identity of the database this handle opened: two handles with
    /// the same identity reach the same database.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Whether the handle can still be used (its database was neither
    /// deleted nor upgraded by a newer build).
    pub fn usable(&self) -> bool {
        self.shared.health.get() == Health::Open
    }

    /// Finds out, if the browser closed the connection, whether the
    /// database is still the one this handle opened: after this, an
    /// unusable handle is [`DbError::Lost`] or [`DbError::Outdated`].
    pub async fn verify(&self) -> Result<(), DbError> {
        let tx = self.tx(&[META], TransactionMode::ReadOnly).await?;
        commit(tx).await
    }

    /// Closes the handle for good (its page stops using it).
    pub fn close(&self) {
        self.shared.listener.borrow_mut().take();
        self.shared.let_go(DbEvent::Gone, Health::Lost);
    }

    /// Gives every tombstone written before schema 3 its `gone`, once: the
    /// live count subtracts the `tombstones` index from all notes. The page
    /// and the worker may both try; the marker, checked inside the same
    /// read-write transaction, lets only the first do the work.
    async fn mark_tombstones(&self) -> Result<(), DbError> {
        let tx = self.tx(&[NOTES, META], TransactionMode::ReadWrite).await?;
        let meta = tx.store(META)?;
        if meta
            .get(JsValue::from_str(TOMBSTONES_MARKED_KEY))
            .await?
            .is_some()
        {
            return commit(tx).await;
        }
        let notes = tx.store(NOTES)?;
        let all: Vec<Note> = from_js_all(notes.get_all(None, None).await?)?;
        let records = all
            .iter()
            .filter(|n| n.deleted)
            .map(note_record)
            .collect::<Result<Vec<_>, _>>()?;
        try_join_all(records.iter().map(|r| notes.put(r, None))).await?;
        let marker = MetaRecord {
            key: TOMBSTONES_MARKED_KEY.to_string(),
            value: true,
        };
        meta.put(&to_js(&marker)?, None).await?;
        commit(tx).await
    }

    async fn connect(user: &UserId) -> Result<Rexie, DbError> {
        Rexie::builder(&db_name(user))
            .version(SCHEMA_VERSION)
            .add_object_store(
                ObjectStore::new(NOTES)
                    .key_path("id")
                    .add_index(Index::new("updated_at", "updated_at"))
                    .add_index(Index::new(TOMBSTONES, "gone")),
            )
            .add_object_store(
                ObjectStore::new(OUTBOX)
                    .key_path("note_id")
                    .add_index(Index::new_array(PUSH_ORDER, ["first_edit_at", "note_id"]))
                    .add_index(Index::new(REFUSED, "rejected")),
            )
            .add_object_store(ObjectStore::new(META).key_path("key"))
            .add_object_store(ObjectStore::new(CONFLICTS).key_path("note_id"))
            .add_object_store(ObjectStore::new(TRASH).key_path("id"))
            .add_object_store(ObjectStore::new(VERSIONS).key_path("key"))
            .build()
            .await
            .map_err(|e| match DbError::from(e) {
                DbError::Other(text) => DbError::Unavailable(text),
                other => other,
            })
    }

    /// A transaction over `stores`; on a closed connection, reconnects once,
    /// to the same database only.
    async fn tx(
        &self,
        stores: &[&str],
        mode: TransactionMode,
    ) -> Result<rexie::Transaction, DbError> {
        self.healthy()?;
        let first = self
            .shared
            .rexie
            .borrow()
            .as_ref()
            .map(|rexie| rexie.transaction(stores, mode).map_err(DbError::from));
        match first {
            Some(Err(e)) if !e.needs_reopen() => return Err(e),
            Some(Ok(tx)) => return Ok(tx),
            Some(Err(_)) | None => {}
        }
        self.reconnect().await?;
        let again = self
            .shared
            .rexie
            .borrow()
            .as_ref()
            .map(|rexie| rexie.transaction(stores, mode));
        Ok(again.ok_or(DbError::Closed)??)
    }

    fn healthy(&self) -> Result<(), DbError> {
        match self.shared.health.get() {
            Health::Open => Ok(()),
            Health::Lost => Err(DbError::Lost),
            Health::Outdated => Err(DbError::Outdated),
        }
    }

    /// Opens the connection again, onto the database this handle opened: if
    /// that was deleted or cleared meanwhile, the browser has just made an
    /// empty one, which this handle must never write into (the page writes
    /// back what it holds through a new handle).
    async fn reconnect(&self) -> Result<(), DbError> {
        let fresh = Self::connect(&self.user).await?;
        if identity(&fresh, None).await?.as_deref() != Some(self.epoch.as_str()) {
            fresh.close();
            self.shared.let_go(DbEvent::Gone, Health::Lost);
            return Err(DbError::Lost);
        }
        self.healthy()?;
        *self.shared.rexie.borrow_mut() = Some(fresh);
        self.watch().await;
        Ok(())
    }

    /// Deletes `user`'s whole database (signing out). The browser holds a
    /// deletion back until every open connection is closed: the tabs of
    /// this build close theirs at once, and `on_blocked` is called when
    /// something else (a tab of an older build) holds it back.
    pub async fn delete(user: &UserId, on_blocked: impl Fn() + 'static) -> Result<(), DbError> {
        let factory = idb_factory().ok_or_else(|| DbError::Unavailable("no IndexedDB".into()))?;
        let request = factory
            .delete_database(&db_name(user))
            .map_err(|e| DbError::Other(format!("{e:?}")))?;
        settled(&request, on_blocked)
            .await
            .map(|_| ())
            .map_err(DbError::classify)
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> u32 {
        self.shared
            .rexie
            .borrow()
            .as_ref()
            .and_then(|rexie| rexie.version().ok())
            .unwrap_or(SCHEMA_VERSION)
    }

    /// Every note, tombstones included, in key order.
    pub async fn all_notes(&self) -> Result<Vec<Note>, DbError> {
        let tx = self.tx(&[NOTES], TransactionMode::ReadOnly).await?;
        let values = tx.store(NOTES)?.get_all(None, None).await?;
        from_js_all(values)
    }

    /// The notes with these ids as stored now (`None`: not held), in one
    /// read.
    pub async fn notes_by_id(
        &self,
        ids: &[NoteId],
    ) -> Result<Vec<(NoteId, Option<Note>)>, DbError> {
        let tx = self.tx(&[NOTES], TransactionMode::ReadOnly).await?;
        let notes = tx.store(NOTES)?;
        let mut found = read_records::<Note>(&notes, ids.iter().copied(), Expect::Present).await?;
        Ok(ids
            .iter()
            .map(|id| (*id, found.remove(id).flatten()))
            .collect())
    }

    /// How many live notes and pending changes are stored, counted by the
    /// database (no record is read).
    pub async fn counts(&self) -> Result<(u32, u32), DbError> {
        let tx = self.tx(&[NOTES, OUTBOX], TransactionMode::ReadOnly).await?;
        let notes = tx.store(NOTES)?;
        let tombstones = notes.index(TOMBSTONES)?;
        let outbox = tx.store(OUTBOX)?;
        let (all, dead, pending) = futures::try_join!(
            notes.count(None),
            tombstones.count(None),
            outbox.count(None)
        )?;
        Ok((all.saturating_sub(dead), pending))
    }

    /// The notes with a pending change, read from the outbox's keys.
    pub async fn pending_ids(&self) -> Result<Vec<NoteId>, DbError> {
        let tx = self.tx(&[OUTBOX], TransactionMode::ReadOnly).await?;
        let keys = tx.store(OUTBOX)?.get_all_keys(None, None).await?;
        Ok(keys
            .into_iter()
            .filter_map(|key| NoteId::parse(&key.as_string()?).ok())
            .collect())
    }

    /// Writes back what a page held when its database was deleted or
    /// cleared ([`crate::sync::recovery::write_back`]), in one transaction:
    /// each note the database does not hold at the same revision or a later
    /// one, each pending change of a note with none (another tab may have
    /// written its own back first), and the kept texts of deleted notes. A
    /// database that was empty then downloads everything again from the
    /// server, as after `resync_required`, so the notes not written back come
    /// back too, and notes the server deleted meanwhile go.
    pub async fn write_back(&self, back: &WriteBack, trash: &[Trashed]) -> Result<(), DbError> {
        let tx = self
            .tx(
                &[NOTES, OUTBOX, META, TRASH, VERSIONS],
                TransactionMode::ReadWrite,
            )
            .await?;
        let (notes, outbox, meta) = (tx.store(NOTES)?, tx.store(OUTBOX)?, tx.store(META)?);
        let (trash_store, versions) = (tx.store(TRASH)?, tx.store(VERSIONS)?);
        let ids = || back.notes.iter().map(|n| n.id);
        let (stored, pending, checkpoint, kept) = futures::try_join!(
            read_records::<Note>(&notes, ids(), Expect::MostlyAbsent),
            async { outbox.get_all_keys(None, None).await.map_err(DbError::from) },
            async {
                meta.get(JsValue::from_str(CHECKPOINT_KEY))
                    .await
                    .map_err(DbError::from)
            },
            async {
                trash_store
                    .get_all_keys(None, None)
                    .await
                    .map_err(DbError::from)
            }
        )?;
        let pending: HashSet<String> = pending.into_iter().filter_map(|k| k.as_string()).collect();
        let kept: HashSet<String> = kept.into_iter().filter_map(|k| k.as_string()).collect();
        let mut note_writes = Vec::new();
        for note in &back.notes {
            let newer_here = stored
                .get(&note.id)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.rev >= note.rev);
            if !newer_here {
                note_writes.push(Write::Put(note_record(note)?));
            }
        }
        let mut outbox_writes = Vec::new();
        for change in &back.pending {
            if !pending.contains(&change.note_id.to_string()) {
                outbox_writes.push(Write::Put(to_js(change)?));
            }
        }
        let mut trash_writes = Vec::new();
        for t in trash {
            if !kept.contains(&t.id.to_string()) {
                trash_writes.push(Write::Put(to_js(t)?));
            }
        }
        let resync = to_js(&MetaRecord {
            key: RESYNC_KEY.to_string(),
            value: true,
        })?;
        let writes = async {
            futures::try_join!(
                write_all(&notes, &note_writes),
                write_all(&outbox, &outbox_writes),
                write_all(&trash_store, &trash_writes),
                async {
                    if checkpoint.is_none() {
                        meta.put(&resync, None).await.map_err(DbError::from)?;
                    }
                    Ok(())
                },
                outbox_changed(&versions)
            )
            .map(|_| ())
        };
        commit_after(tx, writes.boxed_local()).await
    }

    async fn outbox_counts(&self) -> Result<PendingCounts, DbError> {
        let tx = self.tx(&[OUTBOX], TransactionMode::ReadOnly).await?;
        let outbox = tx.store(OUTBOX)?;
        let refused = outbox.index(REFUSED)?;
        let (total, refused) = futures::try_join!(outbox.count(None), refused.count(None))?;
        Ok(PendingCounts {
            total,
            pushable: total.saturating_sub(refused),
        })
    }

    /// The first `max` pushable entries in push order, read through the
    /// `push_order` index in growing chunks (16, then four times more each
    /// time, but no more than the budget left holds at the average size so
    /// far), stopping once their text passes what one push carries
    /// ([`PUSH_REQUEST_BUDGET`]): a run of large notes is not read 500 at a
    /// time, with their bases, to send the few that fit.
    async fn oldest_pushable(&self, max: usize) -> Result<Vec<PendingChange>, DbError> {
        let tx = self
            .tx(&[OUTBOX, META, VERSIONS], TransactionMode::ReadOnly)
            .await?;
        let outbox = tx.store(OUTBOX)?;
        let meta = tx.store(META)?;
        let versions = tx.store(VERSIONS)?;
        let (flying, version) =
            futures::try_join!(read_in_flight(&meta), outbox_version(&versions))?;
        let index = outbox.index(PUSH_ORDER)?;
        let mut batch: Vec<PendingChange> = Vec::new();
        let mut text_bytes = 0usize;
        let mut after: Option<JsValue> = None;
        let mut chunk = max.clamp(1, 16);
        loop {
            let range = after
                .as_ref()
                .map(|key| rexie::KeyRange::lower_bound(key, Some(true)))
                .transpose()
                .map_err(rexie::Error::from)?;
            let values = index.get_all(range, Some(count(chunk))).await?;
            let exhausted = values.len() < chunk;
            // The last record's own key, even if it cannot be read.
            after = values.last().map(raw_push_order_key);
            let read: Vec<PendingChange> = from_js_all(values)?;
            // The index's key order is push order: a number, then the note
            // id's canonical text, whose order is the id's. Refused entries
            // are read and passed over.
            for entry in read.into_iter().filter(|p| p.rejected.is_none()) {
                text_bytes = text_bytes.saturating_add(entry.text_bytes());
                batch.push(entry);
            }
            if exhausted || batch.len() >= max || text_bytes > PUSH_REQUEST_BUDGET {
                break;
            }
            // At most as many as the budget left holds at the average so far.
            let average = (text_bytes / batch.len().max(1)).max(1);
            let room = (PUSH_REQUEST_BUDGET - text_bytes) / average;
            chunk = chunk
                .saturating_mul(4)
                .min(max - batch.len())
                .min(room)
                .max(1);
        }
        batch.truncate(max);
        *self.last_batch.borrow_mut() = Some((version, batch.clone()));
        let copies = sent_copies(&flying);
        for entry in &mut batch {
            with_sent_copy(entry, &copies);
        }
        Ok(batch)
    }

    /// Saves the page's edit of `note`, read from `base` (the stored copy
    /// the page's text derives from), with its outbox entry and the
    /// replica's clock, in one transaction, by the replica's one rule
    /// ([`save_edit`](crate::sync::replica::save_edit)). Returns the note as
    /// stored: when the stored copy moved since the page read it (a pull
    /// rebased it, another tab saved it), the page's changes are merged into
    /// it and the result differs from `note`, so the page must show it.
    pub async fn save_edit(
        &self,
        note: &Note,
        base: Option<&Note>,
        meta: EditMeta,
    ) -> Result<Note, DbError> {
        let tx = self
            .tx(&[NOTES, OUTBOX, META, VERSIONS], TransactionMode::ReadWrite)
            .await?;
        let notes = tx.store(NOTES)?;
        let outbox = tx.store(OUTBOX)?;
        let meta_store = tx.store(META)?;
        let versions = tx.store(VERSIONS)?;
        let key = note_key(note.id);
        let t = timings::start();
        let (stored, existing, clock) = futures::try_join!(
            async { notes.get(key.clone()).await.map_err(DbError::from) },
            async { outbox.get(key.clone()).await.map_err(DbError::from) },
            read_clock(&meta_store)
        )?;
        timings::end("save: read", t);
        let t = timings::start();
        let stored: Option<Note> = stored.map(from_js).transpose()?;
        let existing: Option<PendingChange> = existing.map(from_js).transpose()?;
        let (clock, new_client) = match clock {
            Some(clock) => (clock, None),
            None => {
                let client = ClientId::new(meta.at_ms, super::random10());
                (Hlc::zero(client), Some(client))
            }
        };
        let saved = save_edit(
            note,
            base,
            stored.as_ref(),
            existing,
            clock,
            EditStamp {
                mutation_id: meta.mutation_id,
                at_ms: meta.at_ms,
            },
        );
        let (note_value, pending_value) = (note_record(&saved.note)?, to_js(&saved.pending)?);
        let clock_value = clock_record(saved.clock)?;
        let client_value = new_client.map(client_record).transpose()?;
        timings::end("save: decide", t);
        let t = timings::start();
        let writes = async {
            futures::try_join!(
                async { notes.put(&note_value, None).await.map_err(DbError::from) },
                async {
                    outbox
                        .put(&pending_value, None)
                        .await
                        .map_err(DbError::from)
                },
                async {
                    meta_store
                        .put(&clock_value, None)
                        .await
                        .map_err(DbError::from)
                },
                async {
                    match &client_value {
                        Some(value) => meta_store.put(value, None).await.map(|_| ()),
                        None => Ok(()),
                    }
                    .map_err(DbError::from)
                },
                outbox_changed(&versions)
            )
            .map(|_| ())
        };
        commit_after(tx, writes.boxed_local()).await?;
        timings::end("save: write", t);
        Ok(saved.note)
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
            .tx(&[NOTES, OUTBOX, META, VERSIONS], TransactionMode::ReadWrite)
            .await?;
        let notes_store = tx.store(NOTES)?;
        let outbox = tx.store(OUTBOX)?;
        let meta_store = tx.store(META)?;
        let mut clock = read_clock(&meta_store).await?;
        let mut note_records = Vec::with_capacity(notes.len());
        let mut pending_records = Vec::with_capacity(notes.len());
        for note in notes {
            let EditMeta { mutation_id, at_ms } = meta();
            clock = clock.map(|c| c.tick(at_ms));
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
                    hlc: clock,
                },
            );
            note_records.push((note_record(note)?, None));
            pending_records.push((to_js(&pending)?, None));
        }
        let versions = tx.store(VERSIONS)?;
        let writes = async {
            futures::try_join!(
                async {
                    notes_store
                        .put_all(note_records.into_iter())
                        .await
                        .map_err(DbError::from)
                },
                async {
                    outbox
                        .put_all(pending_records.into_iter())
                        .await
                        .map_err(DbError::from)
                },
                async {
                    match clock {
                        Some(clock) => meta_store.put(&clock_record(clock)?, None).await,
                        None => Ok(JsValue::UNDEFINED),
                    }
                    .map(|_| ())
                    .map_err(DbError::from)
                },
                outbox_changed(&versions)
            )
            .map(|_| ())
        };
        commit_after(tx, writes.boxed_local()).await
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
        meta.put(&client_record(id)?, None).await?;
        commit(tx).await?;
        Ok(id)
    }

    /// Every recorded conflict.
    pub async fn conflicts(&self) -> Result<Vec<ConflictRecord>, DbError> {
        let tx = self.tx(&[CONFLICTS], TransactionMode::ReadOnly).await?;
        let values = tx.store(CONFLICTS)?.get_all(None, None).await?;
        from_js_all(values)
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

    async fn end_resync(&self, present: &BTreeSet<NoteId>) -> Result<Vec<NoteId>, DbError> {
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
        let mut dropped = Vec::new();
        let mut deletes = Vec::new();
        for key in notes.get_all_keys(None, None).await? {
            let Some(text) = key.as_string() else {
                continue;
            };
            if !present.contains(&text) && !pending.contains(&text) {
                if let Ok(id) = NoteId::parse(&text) {
                    dropped.push(id);
                }
                deletes.push(Write::Delete(key));
            }
        }
        let meta = tx.store(META)?;
        futures::try_join!(
            write_all(&notes, &deletes),
            write_all(&conflicts, &deletes),
            async {
                meta.delete(JsValue::from_str(RESYNC_KEY))
                    .await
                    .map_err(DbError::from)
            }
        )?;
        commit(tx).await?;
        Ok(dropped)
    }

    /// Records the batch as sent: its copies join the one `in_flight`
    /// record (a copy already there for the same mutation is kept: it is the
    /// first one sent, which the server may hold). One write per batch, where
    /// marking each entry would cost a write per change.
    async fn record_sent(&self, pushed: &[PendingChange]) -> Result<(), DbError> {
        let tx = self.tx(&[META], TransactionMode::ReadWrite).await?;
        let meta = tx.store(META)?;
        let mut flying = read_in_flight(&meta).await?;
        let mut held: HashSet<(NoteId, MutationId)> =
            flying.iter().map(|f| (f.note_id, f.mutation_id)).collect();
        for p in pushed {
            if held.insert((p.note_id, p.mutation_id)) {
                flying.push(p.clone());
            }
        }
        commit_after(tx, write_in_flight(&meta, flying).boxed_local()).await
    }

    /// The entries refused for the account's quota, pushable again (read
    /// through the `refused` index, which holds only refused entries).
    async fn requeue_refused_for_quota(&self) -> Result<u32, DbError> {
        let tx = self
            .tx(&[OUTBOX, VERSIONS], TransactionMode::ReadWrite)
            .await?;
        let outbox = tx.store(OUTBOX)?;
        let versions = tx.store(VERSIONS)?;
        let refused: Vec<PendingChange> =
            from_js_all(outbox.index(REFUSED)?.get_all(None, None).await?)?;
        let writes = refused
            .iter()
            .filter_map(crate::sync::replica::requeue_over_quota)
            .map(|again| to_js(&again).map(Write::Put))
            .collect::<Result<Vec<_>, DbError>>()?;
        let requeued = u32::try_from(writes.len()).unwrap_or(u32::MAX);
        if writes.is_empty() {
            return Ok(0);
        }
        let all_writes = async {
            futures::try_join!(write_all(&outbox, &writes), outbox_changed(&versions)).map(|_| ())
        };
        commit_after(tx, all_writes.boxed_local()).await?;
        Ok(requeued)
    }

    async fn settle_outbox(
        &self,
        sent: &[PendingChange],
        results: &[ChangeResult],
        fresh_ids: &[MutationId],
    ) -> Result<Vec<Recreated>, DbError> {
        let tx = self
            .tx(
                &[NOTES, OUTBOX, CONFLICTS, META, VERSIONS],
                TransactionMode::ReadWrite,
            )
            .await?;
        let outbox = tx.store(OUTBOX)?;
        let meta = tx.store(META)?;
        let versions = tx.store(VERSIONS)?;
        let t = timings::start();
        let (version, mut flying) =
            futures::try_join!(outbox_version(&versions), read_in_flight(&meta))?;
        // Nothing wrote the outbox since the batch was read: its entries are
        // as read then, and need not be read again.
        let seen = self.last_batch.borrow_mut().take();
        let mut current = match seen {
            Some((then, batch)) if then == version && covers(&batch, sent) => {
                batch.into_iter().map(|p| (p.note_id, Some(p))).collect()
            }
            _ => read_batch(&outbox, sent).await?,
        };
        timings::end("settle: read", t);
        let t = timings::start();
        let mut writes = Vec::new();
        let mut recreate = Vec::new();
        let copies = sent_copies(&flying);
        for ((sent, result), fresh) in sent.iter().zip(results).zip(fresh_ids) {
            let Some(now) = current.get_mut(&sent.note_id).and_then(Option::as_mut) else {
                continue;
            };
            with_sent_copy(now, &copies);
            match acknowledge(now, sent, result, *fresh) {
                AckDecision::Remove => {
                    writes.push(Write::Delete(note_key(sent.note_id)));
                    current.insert(sent.note_id, None);
                }
                AckDecision::Keep(kept) => {
                    writes.push(Write::Put(to_js(kept.as_ref())?));
                    current.insert(sent.note_id, Some(*kept));
                }
                AckDecision::Recreate(pending) => {
                    writes.push(Write::Delete(note_key(sent.note_id)));
                    current.insert(sent.note_id, None);
                    recreate.push((sent.note_id, *pending));
                }
            }
        }
        drop(copies);
        // Rare (a note deleted elsewhere and purged, then edited here): its
        // text moves to a new id in this same transaction.
        let mut recreated = Vec::new();
        let (mut note_writes, mut conflict_writes) = (Vec::new(), Vec::new());
        if !recreate.is_empty() {
            let notes = tx.store(NOTES)?;
            let mut held = read_records::<Note>(
                &notes,
                recreate.iter().map(|(old, _)| *old),
                Expect::Present,
            )
            .await?;
            for (old, pending) in recreate {
                note_writes.push(Write::Delete(note_key(old)));
                conflict_writes.push(Write::Delete(note_key(old)));
                let held = held.remove(&old).flatten();
                if let Some(note) = recreated_note(held.as_ref(), &pending) {
                    note_writes.push(Write::Put(note_record(&note)?));
                    writes.push(Write::Put(to_js(&pending)?));
                    recreated.push(Recreated { old, note });
                }
            }
        }
        // Answered: their copies are not needed any more.
        let answered: HashSet<NoteId> = sent.iter().map(|s| s.note_id).collect();
        flying.retain(|f| !answered.contains(&f.note_id));
        timings::end("settle: decide", t);
        let t = timings::start();
        let writes = delete_as_range(&outbox, writes).await?;
        let (notes, conflicts) = (tx.store(NOTES)?, tx.store(CONFLICTS)?);
        let all_writes = async {
            futures::try_join!(
                write_all(&outbox, &writes),
                write_all(&notes, &note_writes),
                write_all(&conflicts, &conflict_writes),
                write_in_flight(&meta, flying),
                outbox_changed(&versions)
            )
            .map(|_| ())
        };
        let result = commit_after(tx, all_writes.boxed_local()).await;
        timings::end("settle: write", t);
        result.map(|()| recreated)
    }

    async fn store_page(
        &self,
        entries: &[FeedEntry],
        checkpoint: Checkpoint,
    ) -> Result<Applied, DbError> {
        let tx = self
            .tx(
                &[NOTES, OUTBOX, CONFLICTS, META, TRASH, VERSIONS],
                TransactionMode::ReadWrite,
            )
            .await?;
        let notes = tx.store(NOTES)?;
        let outbox = tx.store(OUTBOX)?;
        let conflicts = tx.store(CONFLICTS)?;
        let trash = tx.store(TRASH)?;
        let versions = tx.store(VERSIONS)?;
        let ids = || entries.iter().map(|e| e.note.id);
        let t0 = timings::start();
        let meta = tx.store(META)?;
        let (mut pending, mut stored, conflicted, flying, clock) = futures::try_join!(
            read_records::<PendingChange>(&outbox, ids(), Expect::MostlyAbsent),
            read_records::<Note>(&notes, ids(), Expect::MostlyAbsent),
            async {
                conflicts
                    .get_all_keys(None, None)
                    .await
                    .map_err(DbError::from)
            },
            read_in_flight(&meta),
            read_clock(&meta)
        )?;
        // Later edits here are timed after every change this page holds.
        let moved_clock = clock
            .map(|clock| (clock, clock_after_pull(clock, entries)))
            .filter(|(before, after)| before != after)
            .map(|(_, after)| clock_record(after))
            .transpose()?;
        // A change in flight must not be rebased: its id keeps its content.
        let copies = sent_copies(&flying);
        for entry in pending.values_mut().flatten() {
            with_sent_copy(entry, &copies);
        }
        timings::end("apply_page: reads", t0);
        let t0 = timings::start();
        let mut conflicted: HashSet<String> = conflicted
            .into_iter()
            .filter_map(|k| k.as_string())
            .collect();
        let mut applied = Applied::default();
        let (mut note_writes, mut outbox_writes) = (Vec::new(), Vec::new());
        let (mut conflict_writes, mut trash_writes) = (Vec::new(), Vec::new());
        for entry in entries {
            let id = entry.note.id;
            let held = pending.get(&id).cloned().flatten();
            let decision = apply_entry(entry, held.as_ref());
            let previous = stored.get(&id).cloned().flatten();
            if decision != EntryDecision::KeepLocal
                && is_newer(previous.as_ref().map(|s| s.rev), entry.note.rev)
            {
                match decision {
                    EntryDecision::Store(note) => {
                        // Deleted elsewhere: keep the text this device
                        // held, so it can be restored from here too.
                        if let Some(held) = previous.filter(|s| note.deleted && !s.deleted) {
                            let kept = Trashed {
                                id: held.id,
                                deleted_at: note.updated_at,
                                note: held,
                            };
                            trash_writes.push(Write::Put(to_js(&kept)?));
                        }
                        note_writes.push(Write::Put(note_record(&note)?));
                        applied.notes.push(note.clone());
                        stored.insert(id, Some(note));
                    }
                    EntryDecision::Rebase {
                        note,
                        pending: rebased,
                    } => {
                        note_writes.push(Write::Put(note_record(&note)?));
                        outbox_writes.push(Write::Put(to_js(rebased.as_ref())?));
                        applied.notes.push(note.clone());
                        stored.insert(id, Some(note));
                        pending.insert(id, Some(*rebased));
                    }
                    EntryDecision::KeepLocal => {}
                }
            }
            let key = id.to_string();
            match &entry.conflict {
                Some(sides) => {
                    let record = ConflictRecord {
                        note_id: id,
                        sides: sides.clone(),
                        seq: entry.seq,
                    };
                    conflict_writes.push(Write::Put(to_js(&record)?));
                    conflicted.insert(key);
                }
                None => {
                    if conflicted.remove(&key) {
                        conflict_writes.push(Write::Delete(JsValue::from_str(&key)));
                    }
                }
            }
        }
        let checkpoint = to_js(&MetaRecord {
            key: CHECKPOINT_KEY.to_string(),
            value: checkpoint,
        })?;
        timings::end("apply_page: decide+encode", t0);
        let t0 = timings::start();
        let writes = async {
            futures::try_join!(
                write_all(&notes, &note_writes),
                write_all(&outbox, &outbox_writes),
                write_all(&conflicts, &conflict_writes),
                write_all(&trash, &trash_writes),
                async { meta.put(&checkpoint, None).await.map_err(DbError::from) },
                async {
                    match &moved_clock {
                        Some(record) => meta.put(record, None).await.map(|_| ()),
                        None => Ok(()),
                    }
                    .map_err(DbError::from)
                },
                async {
                    if outbox_writes.is_empty() {
                        Ok(())
                    } else {
                        outbox_changed(&versions).await
                    }
                }
            )
            .map(|_| ())
        };
        let written = commit_after(tx, writes.boxed_local()).await;
        timings::end("apply_page: write and commit", t0);
        written?;
        applied.others = !conflict_writes.is_empty() || !trash_writes.is_empty();
        Ok(applied)
    }

    /// Every kept text of a deleted note.
    pub async fn trash(&self) -> Result<Vec<Trashed>, DbError> {
        let tx = self.tx(&[TRASH], TransactionMode::ReadOnly).await?;
        let values = tx.store(TRASH)?.get_all(None, None).await?;
        from_js_all(values)
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
        let deletes: Vec<Write> = ids.iter().map(|id| Write::Delete(note_key(*id))).collect();
        write_all(&store, &deletes).await?;
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
