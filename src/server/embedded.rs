//! The embedded store, the default: one [redb](https://docs.rs/redb) file,
//! `notesync.redb`, in the data directory.
//!
//! Why redb rather than SQLite: it is pure Rust, so the server builds with no
//! C toolchain and compiles fast; it is ACID, with copy-on-write B-trees that
//! survive a crash or power loss at any point without a recovery step we
//! would have to write; and its tables are ordered, so the change feed is one
//! range scan over `(user, seq)` keys. We need no SQL: every access is by key
//! or by key range.
//!
//! Layout (every key starts with the user id, so users never share a key):
//! - `notes`: `(user, note_id)` → the [`StoredNote`] as JSON;
//! - `feed`: `(user, seq)` → note id; a note has exactly one entry, at the
//!   seq of its latest change (the old entry is removed when it moves);
//! - `mutations`: `(user, mutation_id)` → server time it was accepted;
//! - `heads`: user → `(last seq, purge watermark)`;
//! - `tombstones_by_time` and `mutations_by_time`: `(written ms, user, id)`
//!   indexes, so a purge reads only what it removes.
//!
//! Each push batch is one write transaction: all of it is durable, or none.
//! redb has one writer at a time and readers see committed snapshots only,
//! so a pull can never observe a seq before a smaller one has committed.
//! redb calls block, so they run on tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::domain::{MutationId, NoteId, UserId};
use crate::store::batch::{apply_changes, BatchTxn};
use crate::store::{
    AccountError, AccountStore, PageBuilder, Quota, StoreError, SyncStore, Usage, UserHead,
    UserRecord,
};
use crate::sync::apply::StoredNote;
use crate::sync::merge::Strategy;
use crate::sync::protocol::{Change, ChangeResult, Checkpoint, PullResponse};

/// The file name of the database inside the data directory.
pub const FILE_NAME: &str = "notesync.redb";

const NOTES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("notes");
const FEED: TableDefinition<(&str, u64), &str> = TableDefinition::new("feed");
const MUTATIONS: TableDefinition<(&str, &str), u64> = TableDefinition::new("mutations");
const HEADS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("heads");
const TOMBSTONES_BY_TIME: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("tombstones_by_time");
const MUTATIONS_BY_TIME: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("mutations_by_time");
/// What each user's notes take: `(live notes, bytes of text)`; a user
/// without a row is counted from their notes at their next push.
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");
/// Accounts by normalised name, as JSON [`UserRecord`]s.
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// Sessions by key (the SHA-256 of their id): expiry (Unix ms), the user
/// ("" for none) and the session layer's bytes.
const SESSIONS: TableDefinition<&str, (u64, &str, &[u8])> = TableDefinition::new("session_records");
/// Which sessions each user has: `(user, key)`.
const USER_SESSIONS: TableDefinition<(&str, &str), ()> = TableDefinition::new("user_sessions");
/// Sessions as stores before hashed keys kept them: by the id itself.
/// Moved to [`SESSIONS`] under their key when the store opens, then dropped.
const LEGACY_SESSIONS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("sessions");

/// The redb-backed [`SyncStore`].
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) `notesync.redb` in `data_dir`, creating the tables
    /// if they are missing. Blocks; call it at start-up.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let db = Database::create(data_dir.join(FILE_NAME)).map_err(db_error)?;
        let txn = db.begin_write().map_err(db_error)?;
        {
            txn.open_table(NOTES).map_err(db_error)?;
            txn.open_table(FEED).map_err(db_error)?;
            txn.open_table(MUTATIONS).map_err(db_error)?;
            txn.open_table(HEADS).map_err(db_error)?;
            txn.open_table(TOMBSTONES_BY_TIME).map_err(db_error)?;
            txn.open_table(MUTATIONS_BY_TIME).map_err(db_error)?;
            txn.open_table(USAGE).map_err(db_error)?;
            txn.open_table(USERS).map_err(db_error)?;
            txn.open_table(SESSIONS).map_err(db_error)?;
            txn.open_table(USER_SESSIONS).map_err(db_error)?;
        }
        migrate_legacy_sessions(&txn)?;
        txn.commit().map_err(db_error)?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

/// Maps redb's errors: a full disk is [`StoreError::Full`], damaged data is
/// [`StoreError::Corrupt`], the rest is [`StoreError::Unavailable`].
fn db_error(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => StoreError::Full,
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::QuotaExceeded => StoreError::Full,
        e @ (redb::Error::Corrupted(_) | redb::Error::UpgradeRequired(_)) => {
            StoreError::Corrupt(e.to_string())
        }
        e => StoreError::Unavailable(e.to_string()),
    }
}

/// Moves sessions stored under their id (before keys were hashes) to their
/// key, with their user, and drops the old table: no session id is left on
/// disk, and nobody is signed out by the upgrade.
fn migrate_legacy_sessions(txn: &WriteTransaction) -> Result<(), StoreError> {
    let legacy: Vec<(String, u64, Vec<u8>)> = match txn.open_table(LEGACY_SESSIONS) {
        Ok(table) => table
            .iter()
            .map_err(db_error)?
            .map(|item| {
                let (id, value) = item.map_err(db_error)?;
                let (expires, data) = value.value();
                Ok((id.value().to_string(), expires, data.to_vec()))
            })
            .collect::<Result<_, StoreError>>()?,
        Err(e) => return Err(db_error(e)),
    };
    if !legacy.is_empty() {
        let mut sessions = txn.open_table(SESSIONS).map_err(db_error)?;
        let mut by_user = txn.open_table(USER_SESSIONS).map_err(db_error)?;
        for (id, expires, data) in &legacy {
            let key = crate::server::auth::session_key_of(id);
            let user = session_user(data).unwrap_or_default();
            let data = crate::server::auth::without_id(data).unwrap_or_else(|_| data.clone());
            sessions
                .insert(key.as_str(), (*expires, user.as_str(), data.as_slice()))
                .map_err(db_error)?;
            if !user.is_empty() {
                by_user
                    .insert((user.as_str(), key.as_str()), ())
                    .map_err(db_error)?;
            }
        }
    }
    txn.delete_table(LEGACY_SESSIONS).map_err(db_error)?;
    Ok(())
}

/// The user id in a stored session record (the session layer's JSON).
fn session_user(data: &[u8]) -> Option<String> {
    let record: serde_json::Value = serde_json::from_slice(data).ok()?;
    record
        .get("data")?
        .get(crate::server::auth::SESSION_ACCOUNT)?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

fn decode(bytes: &[u8]) -> Result<StoredNote, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("stored note: {e}")))
}

fn encode(note: &StoredNote) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(note).map_err(|e| StoreError::Invalid(format!("encoding a note: {e}")))
}

fn parse_note_id(text: &str) -> Result<NoteId, StoreError> {
    NoteId::parse(text).map_err(|e| StoreError::Corrupt(format!("feed entry: {e}")))
}

/// One user's tables inside a write transaction.
struct UserTables<'t> {
    user: &'t str,
    notes: Table<'t, (&'static str, &'static str), &'static [u8]>,
    feed: Table<'t, (&'static str, u64), &'static str>,
    mutations: Table<'t, (&'static str, &'static str), u64>,
    heads: Table<'t, &'static str, (u64, u64)>,
    tombstones_by_time: Table<'t, (u64, &'static str, &'static str), ()>,
    mutations_by_time: Table<'t, (u64, &'static str, &'static str), ()>,
    usage: Table<'t, &'static str, (u64, u64)>,
}

impl<'t> UserTables<'t> {
    fn open(txn: &'t WriteTransaction, user: &'t str) -> Result<Self, StoreError> {
        Ok(Self {
            user,
            notes: txn.open_table(NOTES).map_err(db_error)?,
            feed: txn.open_table(FEED).map_err(db_error)?,
            mutations: txn.open_table(MUTATIONS).map_err(db_error)?,
            heads: txn.open_table(HEADS).map_err(db_error)?,
            tombstones_by_time: txn.open_table(TOMBSTONES_BY_TIME).map_err(db_error)?,
            mutations_by_time: txn.open_table(MUTATIONS_BY_TIME).map_err(db_error)?,
            usage: txn.open_table(USAGE).map_err(db_error)?,
        })
    }
}

impl BatchTxn for UserTables<'_> {
    fn head(&mut self) -> Result<UserHead, StoreError> {
        read_head(&self.heads, self.user)
    }

    fn set_head(&mut self, head: UserHead) -> Result<(), StoreError> {
        self.heads
            .insert(self.user, (head.last_seq, head.purge_watermark))
            .map_err(db_error)?;
        Ok(())
    }

    fn mutation_seen(&mut self, id: MutationId) -> Result<bool, StoreError> {
        let key = id.to_string();
        Ok(self
            .mutations
            .get((self.user, key.as_str()))
            .map_err(db_error)?
            .is_some())
    }

    fn remember_mutation(&mut self, id: MutationId, now_ms: u64) -> Result<(), StoreError> {
        let key = id.to_string();
        self.mutations
            .insert((self.user, key.as_str()), now_ms)
            .map_err(db_error)?;
        self.mutations_by_time
            .insert((now_ms, self.user, key.as_str()), ())
            .map_err(db_error)?;
        Ok(())
    }

    fn load(&mut self, id: NoteId) -> Result<Option<StoredNote>, StoreError> {
        let key = id.to_string();
        let found = self
            .notes
            .get((self.user, key.as_str()))
            .map_err(db_error)?;
        found.map(|bytes| decode(bytes.value())).transpose()
    }

    fn save(&mut self, previous: Option<&StoredNote>, note: &StoredNote) -> Result<(), StoreError> {
        let key = note.note.id.to_string();
        if let Some(previous) = previous {
            self.feed
                .remove((self.user, previous.seq))
                .map_err(db_error)?;
            if previous.note.deleted {
                self.tombstones_by_time
                    .remove((previous.written_ms, self.user, key.as_str()))
                    .map_err(db_error)?;
            }
        }
        if note.note.deleted {
            self.tombstones_by_time
                .insert((note.written_ms, self.user, key.as_str()), ())
                .map_err(db_error)?;
        }
        self.feed
            .insert((self.user, note.seq), key.as_str())
            .map_err(db_error)?;
        self.notes
            .insert((self.user, key.as_str()), encode(note)?.as_slice())
            .map_err(db_error)?;
        Ok(())
    }

    fn usage(&mut self) -> Result<Usage, StoreError> {
        if let Some(row) = self.usage.get(self.user).map_err(db_error)? {
            let (notes, bytes) = row.value();
            return Ok(Usage { notes, bytes });
        }
        let mut usage = Usage::default();
        for item in self.notes.range((self.user, "")..).map_err(db_error)? {
            let (key, bytes) = item.map_err(db_error)?;
            if key.value().0 != self.user {
                break;
            }
            usage = usage.replacing(Usage::default(), Usage::of(&decode(bytes.value())?));
        }
        Ok(usage)
    }

    fn set_usage(&mut self, usage: Usage) -> Result<(), StoreError> {
        self.usage
            .insert(self.user, (usage.notes, usage.bytes))
            .map_err(db_error)?;
        Ok(())
    }
}

fn read_head(
    heads: &impl ReadableTable<&'static str, (u64, u64)>,
    user: &str,
) -> Result<UserHead, StoreError> {
    Ok(heads
        .get(user)
        .map_err(db_error)?
        .map(|v| {
            let (last_seq, purge_watermark) = v.value();
            UserHead {
                last_seq,
                purge_watermark,
            }
        })
        .unwrap_or_default())
}

#[async_trait]
impl SyncStore for EmbeddedStore {
    async fn apply_batch_within(
        &self,
        user: &UserId,
        changes: &[Change],
        strategy: Strategy,
        now_ms: u64,
        quota: Quota,
    ) -> Result<Vec<ChangeResult>, StoreError> {
        let user = user.clone();
        let changes = changes.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(db_error)?;
            let results = {
                let mut tables = UserTables::open(&txn, user.as_str())?;
                apply_changes(&mut tables, &changes, strategy, now_ms, quota)?
            };
            // On any error above, dropping `txn` aborts it: nothing is kept.
            txn.commit().map_err(db_error)?;
            Ok(results)
        })
        .await
    }

    async fn changes_since(
        &self,
        user: &UserId,
        checkpoint: Checkpoint,
        download_head: Option<u64>,
        limit: u32,
    ) -> Result<PullResponse, StoreError> {
        let user = user.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let heads = txn.open_table(HEADS).map_err(db_error)?;
            let head = read_head(&heads, user.as_str())?;
            if head.needs_resync(checkpoint, download_head) {
                return Ok(PullResponse::ResyncRequired);
            }
            let feed = txn.open_table(FEED).map_err(db_error)?;
            let notes = txn.open_table(NOTES).map_err(db_error)?;
            let mut page = PageBuilder::new(limit);
            let start = (user.as_str(), checkpoint.0.saturating_add(1));
            let end = (user.as_str(), u64::MAX);
            let mut has_more = false;
            for item in feed.range(start..=end).map_err(db_error)? {
                let (key, id) = item.map_err(db_error)?;
                if page.is_full() {
                    has_more = true;
                    break;
                }
                let seq = key.value().1;
                let id = id.value();
                let bytes = notes
                    .get((user.as_str(), id))
                    .map_err(db_error)?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("feed entry {seq} names missing note {id}"))
                    })?;
                let stored = decode(bytes.value())?;
                if stored.seq != seq || stored.note.id != parse_note_id(id)? {
                    return Err(StoreError::Corrupt(format!(
                        "feed entry {seq} disagrees with note {id} at seq {}",
                        stored.seq
                    )));
                }
                if !page.take(stored.into_feed_entry()) {
                    has_more = true;
                    break;
                }
            }
            Ok(page.finish(has_more, head.last_seq))
        })
        .await
    }

    async fn feed_head(&self, user: &UserId) -> Result<u64, StoreError> {
        let user = user.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let heads = txn.open_table(HEADS).map_err(db_error)?;
            Ok(read_head(&heads, user.as_str())?.last_seq)
        })
        .await
    }

    async fn purge_expired(&self, older_than_ms: u64) -> Result<u64, StoreError> {
        // In transactions of at most PURGE_CHUNK records: redb has one
        // writer at a time, and a push waits only for the chunk under way.
        self.purge_in_chunks(older_than_ms, PURGE_CHUNK).await
    }
}

impl EmbeddedStore {
    /// [`SyncStore::purge_expired`] in write transactions of at most
    /// `chunk` records (the benchmark compares chunk sizes).
    pub async fn purge_in_chunks(
        &self,
        older_than_ms: u64,
        chunk: usize,
    ) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        loop {
            let (n, more) = self
                .blocking(move |db| purge_chunk(db, older_than_ms, chunk.max(1)))
                .await?;
            removed += n;
            if !more {
                return Ok(removed);
            }
        }
    }
}

/// Most records one purge transaction removes (tombstones, then mutation
/// ids): a few milliseconds each, so a push waits no longer than that
/// behind a purge (docs/operations.md has the measurement: at 200 the
/// slowest push of a purge of 100,000 tombstones waited 12-42 ms, at 500
/// 20-53 ms).
pub const PURGE_CHUNK: usize = 200;

/// Removes up to `chunk` expired tombstones and mutation ids in one write
/// transaction; says how many records went and whether more are left.
fn purge_chunk(db: &Database, older_than_ms: u64, chunk: usize) -> Result<(u64, bool), StoreError> {
    let txn = db.begin_write().map_err(db_error)?;
    let (removed, more) = {
        let mut notes = txn.open_table(NOTES).map_err(db_error)?;
        let mut feed = txn.open_table(FEED).map_err(db_error)?;
        let mut heads = txn.open_table(HEADS).map_err(db_error)?;
        let mut mutations = txn.open_table(MUTATIONS).map_err(db_error)?;
        let mut tombstones = txn.open_table(TOMBSTONES_BY_TIME).map_err(db_error)?;
        let mut mutation_times = txn.open_table(MUTATIONS_BY_TIME).map_err(db_error)?;
        let mut removed = 0u64;

        // (older_than_ms, "", "") is the first key at the cutoff, so the
        // range holds exactly the records written before it.
        let cutoff = (older_than_ms, "", "");
        let expired: Vec<(u64, String, String)> = tombstones
            .range(..cutoff)
            .map_err(db_error)?
            .take(chunk.saturating_add(1))
            .map(|item| {
                let (key, _) = item.map_err(db_error)?;
                let (at, user, id) = key.value();
                Ok((at, user.to_string(), id.to_string()))
            })
            .collect::<Result<_, StoreError>>()?;
        let mut more = expired.len() > chunk;
        for (at, user, id) in expired.iter().take(chunk) {
            tombstones
                .remove((*at, user.as_str(), id.as_str()))
                .map_err(db_error)?;
            let stored = match notes.get((user.as_str(), id.as_str())).map_err(db_error)? {
                Some(bytes) => decode(bytes.value())?,
                None => continue,
            };
            // The index may trail a note that was revived since.
            if !stored.note.deleted || stored.written_ms != *at {
                continue;
            }
            notes
                .remove((user.as_str(), id.as_str()))
                .map_err(db_error)?;
            feed.remove((user.as_str(), stored.seq)).map_err(db_error)?;
            let mut head = read_head(&heads, user)?;
            head.purge_watermark = head.purge_watermark.max(stored.seq);
            heads
                .insert(user.as_str(), (head.last_seq, head.purge_watermark))
                .map_err(db_error)?;
            removed += 1;
        }

        let room = chunk.saturating_sub(expired.len().min(chunk));
        if !more && room > 0 {
            let forgotten: Vec<(u64, String, String)> = mutation_times
                .range(..cutoff)
                .map_err(db_error)?
                .take(room.saturating_add(1))
                .map(|item| {
                    let (key, _) = item.map_err(db_error)?;
                    let (at, user, id) = key.value();
                    Ok((at, user.to_string(), id.to_string()))
                })
                .collect::<Result<_, StoreError>>()?;
            more = forgotten.len() > room;
            for (at, user, id) in forgotten.iter().take(room) {
                mutation_times
                    .remove((*at, user.as_str(), id.as_str()))
                    .map_err(db_error)?;
                if mutations
                    .remove((user.as_str(), id.as_str()))
                    .map_err(db_error)?
                    .is_some()
                {
                    removed += 1;
                }
            }
        } else if room == 0 {
            more = true;
        }
        (removed, more)
    };
    txn.commit().map_err(db_error)?;
    Ok((removed, more))
}

#[async_trait]
impl AccountStore for EmbeddedStore {
    async fn create_user(&self, user: &UserRecord) -> Result<(), AccountError> {
        let user = user.clone();
        let bytes = serde_json::to_vec(&user)
            .map_err(|e| StoreError::Invalid(format!("encoding a user: {e}")))?;
        let taken = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(db_error)?;
                let taken = {
                    let mut users = txn.open_table(USERS).map_err(db_error)?;
                    let taken = users.get(user.name.as_str()).map_err(db_error)?.is_some();
                    if !taken {
                        users
                            .insert(user.name.as_str(), bytes.as_slice())
                            .map_err(db_error)?;
                    }
                    taken
                };
                txn.commit().map_err(db_error)?;
                Ok(taken)
            })
            .await?;
        if taken {
            Err(AccountError::NameTaken)
        } else {
            Ok(())
        }
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let name = name.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let users = txn.open_table(USERS).map_err(db_error)?;
            let Some(value) = users.get(name.as_str()).map_err(db_error)? else {
                return Ok(None);
            };
            serde_json::from_slice(value.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("stored user: {e}")))
        })
        .await
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let (name, hash) = (name.to_string(), password_hash.to_string());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(db_error)?;
            let found = {
                let mut users = txn.open_table(USERS).map_err(db_error)?;
                let current = users
                    .get(name.as_str())
                    .map_err(db_error)?
                    .map(|v| v.value().to_vec());
                match current {
                    Some(bytes) => {
                        let mut user: UserRecord = serde_json::from_slice(&bytes)
                            .map_err(|e| StoreError::Corrupt(format!("stored user: {e}")))?;
                        user.password_hash = hash;
                        let bytes = serde_json::to_vec(&user)
                            .map_err(|e| StoreError::Invalid(format!("encoding a user: {e}")))?;
                        users
                            .insert(name.as_str(), bytes.as_slice())
                            .map_err(db_error)?;
                        true
                    }
                    None => false,
                }
            };
            txn.commit().map_err(db_error)?;
            Ok(found)
        })
        .await
    }

    async fn save_session(
        &self,
        key: &str,
        user: Option<&UserId>,
        data: &[u8],
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        let (key, data) = (key.to_string(), data.to_vec());
        let user = user.map_or_else(String::new, |u| u.as_str().to_string());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(db_error)?;
            {
                let mut sessions = txn.open_table(SESSIONS).map_err(db_error)?;
                let previous = sessions
                    .insert(key.as_str(), (expires_ms, user.as_str(), data.as_slice()))
                    .map_err(db_error)?
                    .map(|old| old.value().1.to_string());
                let mut by_user = txn.open_table(USER_SESSIONS).map_err(db_error)?;
                if let Some(previous) = previous.filter(|p| !p.is_empty() && *p != user) {
                    by_user
                        .remove((previous.as_str(), key.as_str()))
                        .map_err(db_error)?;
                }
                if !user.is_empty() {
                    by_user
                        .insert((user.as_str(), key.as_str()), ())
                        .map_err(db_error)?;
                }
            }
            txn.commit().map_err(db_error)
        })
        .await
    }

    async fn load_session(&self, key: &str, now_ms: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let sessions = txn.open_table(SESSIONS).map_err(db_error)?;
            let found = sessions.get(key.as_str()).map_err(db_error)?;
            Ok(found.and_then(|v| {
                let (expires, _, data) = v.value();
                (expires > now_ms).then(|| data.to_vec())
            }))
        })
        .await
    }

    async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(db_error)?;
            {
                let removed = txn
                    .open_table(SESSIONS)
                    .map_err(db_error)?
                    .remove(key.as_str())
                    .map_err(db_error)?
                    .map(|old| old.value().1.to_string());
                if let Some(user) = removed.filter(|u| !u.is_empty()) {
                    txn.open_table(USER_SESSIONS)
                        .map_err(db_error)?
                        .remove((user.as_str(), key.as_str()))
                        .map_err(db_error)?;
                }
            }
            txn.commit().map_err(db_error)
        })
        .await
    }

    async fn end_sessions(&self, user: &UserId, keep: Option<&str>) -> Result<u64, StoreError> {
        let user = user.as_str().to_string();
        let keep = keep.map(str::to_string);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(db_error)?;
            let ended = {
                let mut by_user = txn.open_table(USER_SESSIONS).map_err(db_error)?;
                let mut keys: Vec<String> = Vec::new();
                for item in by_user.range((user.as_str(), "")..).map_err(db_error)? {
                    let (entry, _) = item.map_err(db_error)?;
                    let (owner, key) = entry.value();
                    if owner != user {
                        break;
                    }
                    keys.push(key.to_string());
                }
                let mut sessions = txn.open_table(SESSIONS).map_err(db_error)?;
                let mut ended = 0u64;
                for key in keys.iter().filter(|k| Some(k.as_str()) != keep.as_deref()) {
                    sessions.remove(key.as_str()).map_err(db_error)?;
                    by_user
                        .remove((user.as_str(), key.as_str()))
                        .map_err(db_error)?;
                    ended += 1;
                }
                ended
            };
            txn.commit().map_err(db_error)?;
            Ok(ended)
        })
        .await
    }

    async fn purge_sessions(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(db_error)?;
            let removed = {
                let mut sessions = txn.open_table(SESSIONS).map_err(db_error)?;
                let expired: Vec<(String, String)> = sessions
                    .iter()
                    .map_err(db_error)?
                    .filter_map(|item| match item {
                        Ok((key, value)) => {
                            let (expires, user, _) = value.value();
                            (expires <= now_ms)
                                .then(|| Ok((key.value().to_string(), user.to_string())))
                        }
                        Err(e) => Some(Err(db_error(e))),
                    })
                    .collect::<Result<_, StoreError>>()?;
                let mut by_user = txn.open_table(USER_SESSIONS).map_err(db_error)?;
                for (key, user) in &expired {
                    sessions.remove(key.as_str()).map_err(db_error)?;
                    if !user.is_empty() {
                        by_user
                            .remove((user.as_str(), key.as_str()))
                            .map_err(db_error)?;
                    }
                }
                expired.len() as u64
            };
            txn.commit().map_err(db_error)?;
            Ok(removed)
        })
        .await
    }
}
