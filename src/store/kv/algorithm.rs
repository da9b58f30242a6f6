//! [`KvSyncStore`]: the [`SyncStore`] contract over nothing but KV operations
//! ([`KvPort`]), for Couchbase, whose Rust SDK has no transactions, no range
//! scan and no change stream.
//!
//! Writing (one user at a time, under that user's lease):
//! 1. take the lease: CAS-replace the head with our token and an expiry; wait
//!    while another live lease holds it;
//! 2. roll forward: apply every slot after `committed` (left by a writer that
//!    crashed or lost its lease), in seq order;
//! 3. decide the batch with [`apply_changes`] (hence [`crate::sync::apply::decide`])
//!    over notes and mutation ids read ahead;
//! 4. for each accepted change in order: `insert` its log slot at the next
//!    seq, then write the note with CAS;
//! 5. merge the changes into the note index, record the mutation ids;
//! 6. publish `committed` and release the lease in one CAS replace.
//!
//! A slot applies only on top of the note version it was decided against
//! (`prev_seq`) and only if its mutation id was not applied elsewhere;
//! otherwise it is void: it keeps its seq, changes nothing, and readers skip
//! it. That is what makes a writer that lost its lease (a "zombie") harmless:
//! its slots are either valid on the current state or void, and its note and
//! head writes fail their CAS.
//!
//! Reading never takes the lease: read `committed`, then fetch the slots
//! `checkpoint+1..=committed` by key (or, below the log floor and for a full
//! resync, the note index), and emit each note at its latest committed seq.
//! Nothing above `committed` is ever read, and every slot at or below it was
//! inserted and applied before `committed` was published, so a change can
//! never commit below a seq a reader has passed: the feed has no gaps.
//!
//! A purge (under the lease) advances the watermarks in the head before it
//! removes anything, and readers check the head again after reading, so a
//! reader that missed a purged tombstone is told to resync.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::model::{
    directory_key, head_key, mutation_key, note_key, shard_key, shard_of, slot_key, HeadDoc,
    IndexEntry, IndexShard, Lease, MutationDoc, SlotDoc, DIRECTORY_COUNT_KEY, INDEX_SHARDS,
};
use super::port::{Cas, Expiry, KvError, KvPort, Versioned};
use crate::domain::{MutationId, NoteId, UserId};
use crate::store::batch::{apply_changes, BatchTxn};
use crate::store::{PageBuilder, Quota, StoreError, SyncStore, Usage, UserHead};
use crate::sync::apply::StoredNote;
use crate::sync::merge::Strategy;
use crate::sync::protocol::{Change, ChangeResult, Checkpoint, PullResponse};

/// Most tombstones, and most old log slots, one purge holds a user's lease
/// for: the user's pushes wait for one chunk at most. Each tombstone is a
/// few KV calls, so a chunk is a few hundred (not measured on a cluster).
pub const PURGE_CHUNK: usize = 100;

/// Tuning of the KV sync store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvConfig {
    /// Names this server in lease tokens; unique per process.
    pub node: String,
    /// How long a lease lasts without renewal. A writer that crashes blocks
    /// its user's writes this long.
    pub lease_ms: u64,
    /// How long a writer waits for another's live lease before it gives up.
    pub lease_wait_ms: u64,
    /// The expiry of tombstones, log slots and mutation records: a backstop
    /// behind the purge, which enforces the retention window itself.
    pub expiry: Duration,
    /// Attempts of one KV call that fails transiently.
    pub attempts: u32,
    /// Documents read per round trip while scanning.
    pub window: usize,
}

impl KvConfig {
    /// Defaults for a server named `node` keeping tombstones for `retention`:
    /// the expiry is twice the retention, so it never preempts the hourly
    /// purge (which advances the watermarks) unless purging stops.
    pub fn new(node: impl Into<String>, retention: Duration) -> Self {
        Self {
            node: node.into(),
            lease_ms: 10_000,
            lease_wait_ms: 30_000,
            expiry: retention.saturating_mul(2),
            attempts: 6,
            window: 128,
        }
    }
}

/// The sync store over a KV port.
#[derive(Debug)]
pub struct KvSyncStore<P> {
    port: P,
    config: KvConfig,
    leases: AtomicU64,
}

/// A failed KV call as the store reports it (shared with `accounts`).
pub(super) fn unavailable(what: &str, e: &KvError) -> StoreError {
    match e {
        KvError::TooLarge => StoreError::Full,
        KvError::Refused(m) => StoreError::Unavailable(format!("{what}: refused: {m}")),
        e => StoreError::Unavailable(format!("{what}: {e}")),
    }
}

fn lost_lease() -> StoreError {
    StoreError::Unavailable("another server took over this user's lease".into())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Invalid(format!("encoding: {e}")))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))
}

/// The outcome of a conditional write once any ambiguity is resolved.
enum Written {
    /// Our value is stored, with this CAS.
    Ours(Cas),
    /// Someone else's version is there (or the document is gone).
    Taken(Option<Versioned>),
}

/// One writer's hold on a user: the head as we last wrote it, and what the
/// session applied but has not yet indexed and published.
struct Session {
    user: UserId,
    token: String,
    head: HeadDoc,
    cas: Cas,
    /// The highest slot seq dealt with (applied or void).
    last: u64,
    /// Valid slots of this session, in seq order.
    applied: Vec<SlotDoc>,
    /// Mutation ids applied in this session, with their seq.
    mutations: HashMap<MutationId, u64>,
    /// Notes as this session last read or wrote them (`None`: absent).
    notes: HashMap<NoteId, (Option<StoredNote>, Option<Cas>)>,
}

/// How a candidate feed entry resolves against the note as stored.
enum Resolved {
    /// Boxed: a whole note against two empty variants.
    Emit(Box<StoredNote>),
    Skip,
    /// The data needed is gone: the caller falls back or asks for a resync.
    Missing,
}

/// The in-memory view [`apply_changes`] decides over: notes and mutation
/// ids read ahead, plus what the batch itself does.
struct Staged {
    head: UserHead,
    usage: Usage,
    seen: HashSet<MutationId>,
    notes: HashMap<NoteId, Option<StoredNote>>,
    /// `(prev_seq, note)` per accepted change, in order.
    saved: Vec<(u64, StoredNote)>,
    remembered: Vec<MutationId>,
}

impl BatchTxn for Staged {
    fn head(&mut self) -> Result<UserHead, StoreError> {
        Ok(self.head)
    }

    fn set_head(&mut self, head: UserHead) -> Result<(), StoreError> {
        self.head = head;
        Ok(())
    }

    fn mutation_seen(&mut self, id: MutationId) -> Result<bool, StoreError> {
        Ok(self.seen.contains(&id))
    }

    fn remember_mutation(&mut self, id: MutationId, _now_ms: u64) -> Result<(), StoreError> {
        self.seen.insert(id);
        self.remembered.push(id);
        Ok(())
    }

    fn load(&mut self, id: NoteId) -> Result<Option<StoredNote>, StoreError> {
        self.notes
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::Invalid(format!("note {id} was not read ahead")))
    }

    fn save(&mut self, previous: Option<&StoredNote>, note: &StoredNote) -> Result<(), StoreError> {
        self.saved
            .push((previous.map_or(0, |p| p.seq), note.clone()));
        self.notes.insert(note.note.id, Some(note.clone()));
        Ok(())
    }

    fn usage(&mut self) -> Result<Usage, StoreError> {
        Ok(self.usage)
    }

    fn set_usage(&mut self, usage: Usage) -> Result<(), StoreError> {
        self.usage = usage;
        Ok(())
    }
}

impl<P: KvPort> KvSyncStore<P> {
    /// A store over `port`.
    pub fn new(port: P, config: KvConfig) -> Self {
        Self {
            port,
            config,
            leases: AtomicU64::new(0),
        }
    }

    /// The port (tests reach the fake through it).
    pub fn port(&self) -> &P {
        &self.port
    }

    fn expiry_of(&self, note: &StoredNote) -> Expiry {
        if note.note.deleted {
            Expiry::After(self.config.expiry)
        } else {
            Expiry::Never
        }
    }

    /// Slots read per round trip while scanning (at least 1).
    fn window(&self) -> u64 {
        u64::try_from(self.config.window.max(1)).unwrap_or(u64::MAX)
    }

    async fn backoff(&self, attempt: u32) {
        self.port.pause(20u64 << attempt.min(6)).await;
    }

    // ---- reads and conditional writes that resolve ambiguity ----

    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let mut attempt = 0;
        loop {
            match self.port.get(key).await {
                Ok(v) => return Ok(Some(v)),
                Err(KvError::NotFound) => return Ok(None),
                Err(e) if e.is_transient() && attempt + 1 < self.config.attempts => {
                    attempt += 1;
                    self.backoff(attempt).await;
                }
                Err(e) => return Err(unavailable(key, &e)),
            }
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, Cas)>, StoreError> {
        match self.get(key).await? {
            Some(v) => Ok(Some((decode(key, &v.value)?, v.cas))),
            None => Ok(None),
        }
    }

    /// Reads many keys, `window` per round trip, retrying transient failures.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(self.config.window.max(1)) {
            let answers = self.port.get_many(chunk).await;
            for (key, answer) in chunk.iter().zip(answers) {
                out.push(match answer {
                    Ok(v) => Some(v),
                    Err(KvError::NotFound) => None,
                    Err(e) if e.is_transient() => self.get(key).await?,
                    Err(e) => return Err(unavailable(key, &e)),
                });
            }
        }
        Ok(out)
    }

    async fn get_many_json<T: DeserializeOwned>(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<(T, Cas)>>, StoreError> {
        let docs = self.get_many(keys).await?;
        keys.iter()
            .zip(docs)
            .map(|(key, doc)| doc.map(|v| Ok((decode(key, &v.value)?, v.cas))).transpose())
            .collect()
    }

    /// Inserts `value`; after an ambiguous answer, reads to learn whether it
    /// landed (an insert can only land on an absent key, so retrying is safe).
    async fn insert(&self, key: &str, value: &[u8], expiry: Expiry) -> Result<Written, StoreError> {
        let mut attempt = 0;
        loop {
            let failure = match self.port.insert(key, value, expiry).await {
                Ok(cas) => return Ok(Written::Ours(cas)),
                Err(KvError::Exists) => None,
                Err(e) if e.is_transient() => Some(e),
                Err(e) => return Err(unavailable(key, &e)),
            };
            match self.get(key).await? {
                Some(v) if v.value == value => return Ok(Written::Ours(v.cas)),
                Some(v) => return Ok(Written::Taken(Some(v))),
                // Absent: the insert did not land (or the document expired
                // at once); try again.
                None => {}
            }
            attempt += 1;
            if attempt >= self.config.attempts {
                let e = failure.unwrap_or(KvError::Exists);
                return Err(unavailable(key, &e));
            }
            self.backoff(attempt).await;
        }
    }

    /// Replaces the version `cas` with `value`, resolving ambiguity by
    /// reading: our bytes there means it landed; the same CAS means it did
    /// not, so it is retried; anything else means someone else wrote.
    async fn replace(
        &self,
        key: &str,
        value: &[u8],
        cas: Cas,
        expiry: Expiry,
    ) -> Result<Written, StoreError> {
        let mut attempt = 0;
        loop {
            let failure = match self.port.replace(key, value, cas, expiry).await {
                Ok(cas) => return Ok(Written::Ours(cas)),
                Err(KvError::CasMismatch | KvError::NotFound) => None,
                Err(e) if e.is_transient() => Some(e),
                Err(e) => return Err(unavailable(key, &e)),
            };
            match self.get(key).await? {
                Some(v) if v.value == value => return Ok(Written::Ours(v.cas)),
                Some(v) if v.cas == cas && failure.is_some() => {}
                other => return Ok(Written::Taken(other)),
            }
            attempt += 1;
            if attempt >= self.config.attempts {
                let e = failure.unwrap_or(KvError::CasMismatch);
                return Err(unavailable(key, &e));
            }
            self.backoff(attempt).await;
        }
    }

    /// Removes the version `cas`; `false` when it changed or is gone.
    async fn remove(&self, key: &str, cas: Cas) -> Result<bool, StoreError> {
        let mut attempt = 0;
        loop {
            let failure = match self.port.remove(key, cas).await {
                Ok(()) => return Ok(true),
                Err(KvError::CasMismatch | KvError::NotFound) => return Ok(false),
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(unavailable(key, &e)),
            };
            match self.get(key).await? {
                None => return Ok(true),
                Some(v) if v.cas == cas => {}
                Some(_) => return Ok(false),
            }
            attempt += 1;
            if attempt >= self.config.attempts {
                return Err(unavailable(key, &failure));
            }
            self.backoff(attempt).await;
        }
    }

    // ---- the lease ----

    fn new_token(&self) -> String {
        let n = self.leases.fetch_add(1, Ordering::Relaxed);
        format!("{}:{n}", self.config.node)
    }

    fn lease(&self, token: &str) -> Lease {
        Lease {
            token: token.to_string(),
            expires_ms: self.port.now_ms().saturating_add(self.config.lease_ms),
        }
    }

    /// Adds `user` to the directory the purge walks. A crash or an
    /// ambiguous increment may leave an empty or repeated entry; the purge
    /// skips those.
    async fn register(&self, user: &UserId) -> Result<(), StoreError> {
        let mut attempt = 0;
        let n = loop {
            match self.port.increment(DIRECTORY_COUNT_KEY, 1, 1).await {
                Ok(n) => break n,
                Err(e) if e.is_transient() && attempt + 1 < self.config.attempts => {
                    attempt += 1;
                    self.backoff(attempt).await;
                }
                Err(e) => return Err(unavailable(DIRECTORY_COUNT_KEY, &e)),
            }
        };
        self.insert(&directory_key(n), &encode(user)?, Expiry::Never)
            .await?;
        Ok(())
    }

    /// Takes `user`'s lease, waiting while another live lease holds it, and
    /// rolls forward whatever a previous holder left after `committed`.
    async fn acquire(&self, user: &UserId) -> Result<Session, StoreError> {
        let key = head_key(user);
        let token = self.new_token();
        let started = self.port.now_ms();
        let mut attempt = 0u32;
        let (head, cas) = loop {
            match self.get_json::<HeadDoc>(&key).await? {
                None => {
                    self.register(user).await?;
                    let head = HeadDoc {
                        lease: Some(self.lease(&token)),
                        ..HeadDoc::default()
                    };
                    if let Written::Ours(cas) =
                        self.insert(&key, &encode(&head)?, Expiry::Never).await?
                    {
                        break (head, cas);
                    }
                }
                Some((head, cas)) => {
                    let now = self.port.now_ms();
                    let held = head
                        .lease
                        .as_ref()
                        .is_some_and(|l| l.expires_ms > now && l.token != token);
                    if held {
                        if now.saturating_sub(started) > self.config.lease_wait_ms {
                            return Err(StoreError::Unavailable(format!(
                                "user {user} is busy: another server holds the lease"
                            )));
                        }
                        attempt = attempt.saturating_add(1);
                        self.backoff(attempt.min(5)).await;
                        continue;
                    }
                    let mine = HeadDoc {
                        lease: Some(self.lease(&token)),
                        ..head
                    };
                    if let Written::Ours(cas) = self
                        .replace(&key, &encode(&mine)?, cas, Expiry::Never)
                        .await?
                    {
                        break (mine, cas);
                    }
                }
            }
        };
        let mut session = Session {
            user: user.clone(),
            token,
            last: head.committed,
            head,
            cas,
            applied: Vec::new(),
            mutations: HashMap::new(),
            notes: HashMap::new(),
        };
        self.roll_forward(&mut session).await?;
        Ok(session)
    }

    /// Renews the lease when half of it has passed; fails if it was lost.
    async fn renew(&self, session: &mut Session) -> Result<(), StoreError> {
        let now = self.port.now_ms();
        let expires = session.head.lease.as_ref().map_or(0, |l| l.expires_ms);
        if now.saturating_add(self.config.lease_ms / 2) < expires {
            return Ok(());
        }
        let head = HeadDoc {
            lease: Some(self.lease(&session.token)),
            ..session.head.clone()
        };
        self.write_head(session, head).await
    }

    async fn write_head(&self, session: &mut Session, head: HeadDoc) -> Result<(), StoreError> {
        let key = head_key(&session.user);
        match self
            .replace(&key, &encode(&head)?, session.cas, Expiry::Never)
            .await?
        {
            Written::Ours(cas) => {
                session.head = head;
                session.cas = cas;
                Ok(())
            }
            Written::Taken(_) => Err(lost_lease()),
        }
    }

    /// Applies, in seq order, every slot after the last one dealt with:
    /// slots left by a crashed writer, or inserted by a zombie meanwhile.
    async fn roll_forward(&self, session: &mut Session) -> Result<(), StoreError> {
        loop {
            let seq = session.last + 1;
            let key = slot_key(&session.user, seq);
            let Some((slot, _)) = self.get_json::<SlotDoc>(&key).await? else {
                return Ok(());
            };
            self.renew(session).await?;
            self.apply_found_slot(session, seq, slot).await?;
        }
    }

    /// Applies a slot this session did not write, if it is valid.
    async fn apply_found_slot(
        &self,
        session: &mut Session,
        seq: u64,
        slot: SlotDoc,
    ) -> Result<(), StoreError> {
        if slot.note.seq != seq {
            return Err(StoreError::Corrupt(format!(
                "slot {seq} of {} holds seq {}",
                session.user, slot.note.seq
            )));
        }
        session.last = seq;
        // Not decided here: the usage is counted again from the notes.
        session.head.usage = None;
        let id = slot.note.note.id;
        for _ in 0..self.config.attempts {
            let (doc, cas) = self.note(session, id).await?;
            let current = doc.as_ref().map_or(0, |d| d.seq);
            if current == seq {
                session.record(slot);
                return Ok(());
            }
            if current != slot.prev_seq || session.mutations.contains_key(&slot.mutation_id) {
                return Ok(()); // void
            }
            let recorded = self
                .get_json::<MutationDoc>(&mutation_key(&session.user, slot.mutation_id))
                .await?;
            if recorded.is_some_and(|(m, _)| m.seq != seq) {
                return Ok(()); // void: applied by another slot
            }
            if self.write_note(session, &slot.note, cas).await? {
                session.record(slot);
                return Ok(());
            }
            session.notes.remove(&id);
        }
        Err(StoreError::Unavailable(format!(
            "note {id} of {} keeps changing under roll-forward",
            session.user
        )))
    }

    /// The note as this session knows it, reading it if needed.
    async fn note(
        &self,
        session: &mut Session,
        id: NoteId,
    ) -> Result<(Option<StoredNote>, Option<Cas>), StoreError> {
        if let Some(known) = session.notes.get(&id) {
            return Ok(known.clone());
        }
        let read = self
            .get_json::<StoredNote>(&note_key(&session.user, id))
            .await?;
        let known = match read {
            Some((doc, cas)) => (Some(doc), Some(cas)),
            None => (None, None),
        };
        session.notes.insert(id, known.clone());
        Ok(known)
    }

    /// Writes `note` over the version `cas` (insert when `None`); `false`
    /// when another version is there. Someone rolling our slot forward
    /// writes the same bytes, which counts as ours.
    async fn write_note(
        &self,
        session: &mut Session,
        note: &StoredNote,
        cas: Option<Cas>,
    ) -> Result<bool, StoreError> {
        let key = note_key(&session.user, note.note.id);
        let bytes = encode(note)?;
        let expiry = self.expiry_of(note);
        let written = match cas {
            Some(cas) => self.replace(&key, &bytes, cas, expiry).await?,
            None => self.insert(&key, &bytes, expiry).await?,
        };
        match written {
            Written::Ours(cas) => {
                session
                    .notes
                    .insert(note.note.id, (Some(note.clone()), Some(cas)));
                Ok(true)
            }
            Written::Taken(Some(v)) => {
                let current: StoredNote = decode(&key, &v.value)?;
                let ours = current.seq == note.seq;
                session
                    .notes
                    .insert(note.note.id, (Some(current), Some(v.cas)));
                Ok(ours)
            }
            Written::Taken(None) => {
                session.notes.insert(note.note.id, (None, None));
                Ok(false)
            }
        }
    }

    /// Merges the session's slots into the note index and records their
    /// mutation ids, then publishes `committed` and releases the lease.
    async fn finish(&self, mut session: Session) -> Result<(), StoreError> {
        self.renew(&mut session).await?;
        let mut by_shard: BTreeMap<u64, Vec<(NoteId, IndexEntry)>> = BTreeMap::new();
        for slot in &session.applied {
            by_shard
                .entry(shard_of(slot.note.note.id))
                .or_default()
                .push((slot.note.note.id, IndexEntry::of(&slot.note)));
        }
        for (shard, entries) in by_shard {
            self.update_shard(&session.user, shard, |index| {
                let mut changed = false;
                for (id, entry) in &entries {
                    changed |= index.merge(*id, *entry);
                }
                changed
            })
            .await?;
        }
        for slot in &session.applied {
            let record = MutationDoc {
                seq: slot.note.seq,
                at_ms: slot.note.written_ms,
            };
            let key = mutation_key(&session.user, slot.mutation_id);
            // Taken: recorded already by whoever else rolled this slot forward.
            self.insert(&key, &encode(&record)?, Expiry::After(self.config.expiry))
                .await?;
        }
        let head = HeadDoc {
            committed: session.head.committed.max(session.last),
            lease: None,
            ..session.head.clone()
        };
        let last = session.last;
        match self.write_head(&mut session, head).await {
            Ok(()) => Ok(()),
            Err(lost) => {
                // Whoever took the lease over may have committed our slots
                // already (they were all applied): then the batch stands.
                match self.get_json::<HeadDoc>(&head_key(&session.user)).await? {
                    Some((head, _)) if head.committed >= last => Ok(()),
                    _ => Err(lost),
                }
            }
        }
    }

    /// Read-modify-CAS-write of one index shard; `edit` answers whether it
    /// changed anything. Retries when a concurrent writer got there first.
    async fn update_shard(
        &self,
        user: &UserId,
        shard: u64,
        edit: impl Fn(&mut IndexShard) -> bool,
    ) -> Result<(), StoreError> {
        let key = shard_key(user, shard);
        for _ in 0..self.config.attempts.saturating_mul(4) {
            let (mut index, cas) = match self.get_json::<IndexShard>(&key).await? {
                Some((index, cas)) => (index, Some(cas)),
                None => (IndexShard::default(), None),
            };
            if !edit(&mut index) {
                return Ok(());
            }
            let bytes = encode(&index)?;
            let written = match cas {
                Some(cas) => self.replace(&key, &bytes, cas, Expiry::Never).await?,
                None => self.insert(&key, &bytes, Expiry::Never).await?,
            };
            if let Written::Ours(_) = written {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "index shard {key} is contended"
        )))
    }

    // ---- writing a batch ----

    /// Reads ahead what deciding `changes` needs.
    async fn stage(&self, session: &mut Session, changes: &[Change]) -> Result<Staged, StoreError> {
        let wanted: Vec<NoteId> = changes
            .iter()
            .map(|c| c.note_id)
            .filter(|id| !session.notes.contains_key(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let keys: Vec<String> = wanted
            .iter()
            .map(|&id| note_key(&session.user, id))
            .collect();
        for (id, doc) in wanted
            .iter()
            .zip(self.get_many_json::<StoredNote>(&keys).await?)
        {
            let known = match doc {
                Some((doc, cas)) => (Some(doc), Some(cas)),
                None => (None, None),
            };
            session.notes.insert(*id, known);
        }
        let mutations: Vec<MutationId> = changes
            .iter()
            .map(|c| c.mutation_id)
            .filter(|id| !session.mutations.contains_key(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let keys: Vec<String> = mutations
            .iter()
            .map(|&id| mutation_key(&session.user, id))
            .collect();
        let mut seen: HashSet<MutationId> = session.mutations.keys().copied().collect();
        for (id, doc) in mutations.iter().zip(self.get_many(&keys).await?) {
            if doc.is_some() {
                seen.insert(*id);
            }
        }
        let usage = match session.head.usage {
            Some(usage) => usage,
            None => self.count_usage(session).await?,
        };
        Ok(Staged {
            usage,
            head: UserHead {
                last_seq: session.last,
                purge_watermark: session.head.purge_watermark,
            },
            seen,
            notes: session
                .notes
                .iter()
                .map(|(id, (doc, _))| (*id, doc.clone()))
                .collect(),
            saved: Vec::new(),
            remembered: Vec::new(),
        })
    }

    /// What the user's notes take, counted from the notes: the index's live
    /// notes, as this session last saw them where it did.
    async fn count_usage(&self, session: &Session) -> Result<Usage, StoreError> {
        let mut usage = Usage::default();
        let mut unread: Vec<NoteId> = Vec::new();
        for (id, entry) in self.read_index(&session.user).await? {
            if session.notes.contains_key(&id) {
                continue;
            }
            if !entry.deleted {
                unread.push(id);
            }
        }
        for (doc, _) in session.notes.values() {
            if let Some(doc) = doc {
                usage = usage.replacing(Usage::default(), Usage::of(doc));
            }
        }
        for window in unread.chunks(self.config.window.max(1)) {
            let keys: Vec<String> = window
                .iter()
                .map(|&id| note_key(&session.user, id))
                .collect();
            for (doc, _) in self
                .get_many_json::<StoredNote>(&keys)
                .await?
                .into_iter()
                .flatten()
            {
                usage = usage.replacing(Usage::default(), Usage::of(&doc));
            }
        }
        Ok(usage)
    }

    async fn write_batch(
        &self,
        session: &mut Session,
        changes: &[Change],
        strategy: Strategy,
        now_ms: u64,
        quota: Quota,
    ) -> Result<Vec<ChangeResult>, StoreError> {
        let mut results = Vec::with_capacity(changes.len());
        let mut rest = changes;
        'decide: while !rest.is_empty() {
            self.renew(session).await?;
            let mut staged = self.stage(session, rest).await?;
            let decided = apply_changes(&mut staged, rest, strategy, now_ms, quota)?;
            let accepted: Vec<usize> = decided
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    matches!(
                        r,
                        ChangeResult::Applied { .. } | ChangeResult::Merged { .. }
                    )
                })
                .map(|(i, _)| i)
                .collect();
            if accepted.len() != staged.saved.len() || staged.saved.len() != staged.remembered.len()
            {
                return Err(StoreError::Invalid(
                    "the batch algorithm saved an unexpected number of notes".into(),
                ));
            }
            for (k, ((prev_seq, note), mutation_id)) in
                staged.saved.into_iter().zip(staged.remembered).enumerate()
            {
                self.renew(session).await?;
                let seq = note.seq;
                if seq != session.last + 1 {
                    return Err(StoreError::Invalid(format!(
                        "slot {seq} is not next after {}",
                        session.last
                    )));
                }
                let slot = SlotDoc {
                    token: session.token.clone(),
                    prev_seq,
                    mutation_id,
                    note,
                };
                let key = slot_key(&session.user, seq);
                let bytes = encode(&slot)?;
                match self
                    .insert(&key, &bytes, Expiry::After(self.config.expiry))
                    .await?
                {
                    Written::Ours(_) => {
                        session.last = seq;
                        let cas = session
                            .notes
                            .get(&slot.note.note.id)
                            .and_then(|(_, cas)| *cas);
                        if !self.write_note(session, &slot.note, cas).await? {
                            // Only a writer that lost the lease sees the note
                            // move under it; our slot will be void or rolled
                            // forward by the next holder.
                            return Err(lost_lease());
                        }
                        session.record(slot);
                    }
                    Written::Taken(found) => {
                        // A zombie claimed this seq: apply its slot like a
                        // roll-forward, then decide the rest again.
                        let Some(found) = found else {
                            return Err(lost_lease());
                        };
                        let theirs: SlotDoc = decode(&key, &found.value)?;
                        // Ours so far are not counted in the head's usage.
                        session.head.usage = None;
                        self.apply_found_slot(session, seq, theirs).await?;
                        self.roll_forward(session).await?;
                        let from = accepted[k];
                        results.extend_from_slice(&decided[..from]);
                        rest = &rest[from..];
                        continue 'decide;
                    }
                }
            }
            session.head.usage = Some(staged.usage);
            results.extend(decided);
            break;
        }
        Ok(results)
    }

    // ---- reading the feed ----

    async fn head(&self, user: &UserId) -> Result<HeadDoc, StoreError> {
        Ok(self
            .get_json::<HeadDoc>(&head_key(user))
            .await?
            .map(|(head, _)| head)
            .unwrap_or_default())
    }

    /// The latest committed seq of a note stored at `seq` above `committed`:
    /// follows `prev_seq` back through the uncommitted slots.
    async fn committed_seq(
        &self,
        user: &UserId,
        mut seq: u64,
        committed: u64,
    ) -> Result<Option<u64>, StoreError> {
        while seq > committed {
            match self.get_json::<SlotDoc>(&slot_key(user, seq)).await? {
                Some((slot, _)) => seq = slot.prev_seq,
                None => return Ok(None),
            }
        }
        Ok(Some(seq))
    }

    /// What the feed says about the note at candidate seq `seq`, given the
    /// note as stored and, if known, the slot's content.
    async fn resolve(
        &self,
        user: &UserId,
        seq: u64,
        committed: u64,
        doc: Option<StoredNote>,
        slot: Option<StoredNote>,
    ) -> Result<Resolved, StoreError> {
        let Some(doc) = doc else {
            return Ok(Resolved::Missing);
        };
        if doc.seq == seq {
            return Ok(Resolved::Emit(Box::new(doc)));
        }
        if doc.seq <= committed {
            // Moved on to a later committed seq, or the slot is void.
            return Ok(Resolved::Skip);
        }
        // A change above `committed` is in flight: the committed version is
        // the one the uncommitted chain started from.
        match self.committed_seq(user, doc.seq, committed).await? {
            Some(latest) if latest == seq => match slot {
                Some(slot) => Ok(Resolved::Emit(Box::new(slot))),
                None => match self.get_json::<SlotDoc>(&slot_key(user, seq)).await? {
                    Some((slot, _)) => Ok(Resolved::Emit(Box::new(slot.note))),
                    // Purged below the log floor: the note shows up when the
                    // change in flight commits.
                    None => Ok(Resolved::Skip),
                },
            },
            Some(_) => Ok(Resolved::Skip),
            None => Ok(Resolved::Missing),
        }
    }

    /// Scans the log slots after `from` up to `committed` for a page of at
    /// most `limit` entries; `None` when a slot or note is missing (purged or
    /// expired meanwhile). The scan stops at the first entry the page cannot
    /// take, which says there is more: nothing after it is read (a page of
    /// 1 MiB notes would otherwise load 5,001 of them to return 7).
    async fn scan_log(
        &self,
        user: &UserId,
        from: u64,
        committed: u64,
        limit: u32,
    ) -> Result<Option<ScannedPage>, StoreError> {
        let mut page = PageBuilder::new(limit);
        let mut next = from + 1;
        while next <= committed {
            let end = committed.min(next.saturating_add(self.window() - 1));
            let keys: Vec<String> = (next..=end).map(|seq| slot_key(user, seq)).collect();
            let mut slots = Vec::with_capacity(keys.len());
            for slot in self.get_many_json::<SlotDoc>(&keys).await? {
                match slot {
                    Some((slot, _)) => slots.push(slot),
                    None => return Ok(None),
                }
            }
            let ids: Vec<NoteId> = slots
                .iter()
                .map(|s| s.note.note.id)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let keys: Vec<String> = ids.iter().map(|&id| note_key(user, id)).collect();
            let docs: HashMap<NoteId, StoredNote> = ids
                .into_iter()
                .zip(self.get_many_json::<StoredNote>(&keys).await?)
                .filter_map(|(id, doc)| doc.map(|(doc, _)| (id, doc)))
                .collect();
            for slot in slots {
                let doc = docs.get(&slot.note.note.id).cloned();
                match self
                    .resolve(user, slot.note.seq, committed, doc, Some(slot.note))
                    .await?
                {
                    Resolved::Emit(note) => {
                        if !page.take(note.into_feed_entry()) {
                            return Ok(Some((page, true)));
                        }
                    }
                    Resolved::Skip => {}
                    Resolved::Missing => return Ok(None),
                }
            }
            next = end + 1;
        }
        Ok(Some((page, false)))
    }

    /// Reads the whole note index: note id → entry.
    async fn read_index(&self, user: &UserId) -> Result<Vec<(NoteId, IndexEntry)>, StoreError> {
        let keys: Vec<String> = (0..INDEX_SHARDS).map(|k| shard_key(user, k)).collect();
        let mut entries = Vec::new();
        for shard in self
            .get_many_json::<IndexShard>(&keys)
            .await?
            .into_iter()
            .flatten()
        {
            entries.extend(shard.0.notes);
        }
        Ok(entries)
    }

    /// The feed after `from` from the note index: for a full resync, and for
    /// checkpoints below the log floor, stopping as [`Self::scan_log`] does.
    /// `None`: a note the replica may need (one changed after `needed_after`)
    /// is gone, so it must resync.
    async fn scan_index(
        &self,
        user: &UserId,
        from: u64,
        needed_after: Option<u64>,
        committed: u64,
        limit: u32,
    ) -> Result<Option<ScannedPage>, StoreError> {
        let mut candidates = Vec::new();
        for (id, entry) in self.read_index(user).await? {
            let seq = if entry.seq <= committed {
                Some(entry.seq)
            } else {
                self.committed_seq(user, entry.seq, committed).await?
            };
            match seq {
                Some(seq) if seq > from && seq > 0 => candidates.push((seq, id)),
                Some(_) => {}
                None if needed_after.is_some_and(|after| entry.seq > after) => return Ok(None),
                None => {}
            }
        }
        candidates.sort_unstable();
        let mut page = PageBuilder::new(limit);
        for chunk in candidates.chunks(self.config.window.max(1)) {
            let keys: Vec<String> = chunk.iter().map(|&(_, id)| note_key(user, id)).collect();
            let docs = self.get_many_json::<StoredNote>(&keys).await?;
            for (&(seq, _), doc) in chunk.iter().zip(docs) {
                match self
                    .resolve(user, seq, committed, doc.map(|(d, _)| d), None)
                    .await?
                {
                    Resolved::Emit(note) => {
                        if !page.take(note.into_feed_entry()) {
                            return Ok(Some((page, true)));
                        }
                    }
                    Resolved::Skip => {}
                    // A tombstone past the checkpoint expired without the
                    // purge: the replica cannot learn of that delete.
                    Resolved::Missing if needed_after.is_some_and(|after| seq > after) => {
                        return Ok(None)
                    }
                    Resolved::Missing => {}
                }
            }
        }
        Ok(Some((page, false)))
    }

    // ---- purging ----

    /// Purges up to [`PURGE_CHUNK`] tombstones and as many old log slots of
    /// one user under the lease, which it releases before it answers, so a
    /// push of that user waits for one chunk at most; answers how many
    /// tombstones and mutation records were removed, and whether more are
    /// left to purge.
    async fn purge_user(
        &self,
        user: &UserId,
        older_than_ms: u64,
    ) -> Result<(u64, bool), StoreError> {
        let mut session = self.acquire(user).await?;
        let last = session.last;
        let mut expired: Vec<(NoteId, u64)> = self
            .read_index(user)
            .await?
            .into_iter()
            .filter(|(_, e)| e.deleted && e.written_ms < older_than_ms && e.seq <= last)
            .map(|(id, e)| (id, e.seq))
            .collect();
        expired.sort_by_key(|&(_, seq)| seq);
        let mut more = expired.len() > PURGE_CHUNK;
        expired.truncate(PURGE_CHUNK);
        // Old slots, oldest first, up to the first one inside the window.
        let mut old_slots: Vec<(u64, SlotDoc, Cas)> = Vec::new();
        let mut floor = session.head.log_floor;
        let mut next = floor + 1;
        'walk: while next <= last {
            if old_slots.len() >= PURGE_CHUNK {
                more = true;
                break;
            }
            let end = last.min(next.saturating_add(self.window() - 1));
            let keys: Vec<String> = (next..=end).map(|seq| slot_key(user, seq)).collect();
            for (seq, slot) in (next..=end).zip(self.get_many_json::<SlotDoc>(&keys).await?) {
                match slot {
                    Some((slot, _)) if slot.note.written_ms >= older_than_ms => break 'walk,
                    Some((slot, cas)) => old_slots.push((seq, slot, cas)),
                    None => {}
                }
                floor = seq;
            }
            next = end + 1;
        }
        // Watermarks first: a reader that misses what is removed next sees
        // them when it reads the head again.
        let watermark = expired.iter().map(|&(_, seq)| seq).max().unwrap_or(0);
        let head = HeadDoc {
            purge_watermark: session.head.purge_watermark.max(watermark),
            log_floor: floor,
            ..session.head.clone()
        };
        if head != session.head {
            self.write_head(&mut session, head).await?;
        }

        let mut removed = 0u64;
        let mut gone: BTreeMap<u64, Vec<(NoteId, u64)>> = BTreeMap::new();
        for (id, seq) in expired {
            self.renew(&mut session).await?;
            let key = note_key(user, id);
            if let Some((doc, cas)) = self.get_json::<StoredNote>(&key).await? {
                if doc.note.deleted && doc.seq == seq && self.remove(&key, cas).await? {
                    removed += 1;
                }
            }
            gone.entry(shard_of(id)).or_default().push((id, seq));
        }
        for (shard, notes) in gone {
            self.update_shard(user, shard, |index| {
                let before = index.notes.len();
                for (id, seq) in &notes {
                    if index.notes.get(id).is_some_and(|e| e.seq == *seq) {
                        index.notes.remove(id);
                    }
                }
                index.notes.len() != before
            })
            .await?;
        }
        for (seq, slot, cas) in old_slots {
            self.renew(&mut session).await?;
            let key = mutation_key(user, slot.mutation_id);
            if let Some((record, mcas)) = self.get_json::<MutationDoc>(&key).await? {
                if record.seq == seq && self.remove(&key, mcas).await? {
                    removed += 1;
                }
            }
            self.remove(&slot_key(user, seq), cas).await?;
        }
        self.finish(session).await?;
        Ok((removed, more))
    }

    /// Every user in the directory, once.
    async fn users(&self) -> Result<Vec<UserId>, StoreError> {
        let count = match self.get(DIRECTORY_COUNT_KEY).await? {
            Some(v) => std::str::from_utf8(&v.value)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .ok_or_else(|| StoreError::Corrupt("the user directory count".into()))?,
            None => 0,
        };
        let keys: Vec<String> = (1..=count).map(directory_key).collect();
        let users: BTreeSet<UserId> = self
            .get_many_json::<UserId>(&keys)
            .await?
            .into_iter()
            .flatten()
            .map(|(user, _)| user)
            .collect();
        Ok(users.into_iter().collect())
    }
}

impl Session {
    fn record(&mut self, slot: SlotDoc) {
        self.mutations.insert(slot.mutation_id, slot.note.seq);
        self.applied.push(slot);
    }
}

/// A page a feed scan built, and whether entries after it exist.
type ScannedPage = (PageBuilder, bool);

#[async_trait]
impl<P: KvPort> SyncStore for KvSyncStore<P> {
    async fn apply_batch_within(
        &self,
        user: &UserId,
        changes: &[Change],
        strategy: Strategy,
        now_ms: u64,
        quota: Quota,
    ) -> Result<Vec<ChangeResult>, StoreError> {
        let mut session = self.acquire(user).await?;
        let results = self
            .write_batch(&mut session, changes, strategy, now_ms, quota)
            .await?;
        self.finish(session).await?;
        Ok(results)
    }

    async fn changes_since(
        &self,
        user: &UserId,
        checkpoint: Checkpoint,
        download_head: Option<u64>,
        limit: u32,
    ) -> Result<PullResponse, StoreError> {
        let head = self.head(user).await?;
        if head.user_head().needs_resync(checkpoint, download_head) {
            return Ok(PullResponse::ResyncRequired);
        }
        let from = checkpoint.0;
        // What a replica at this position already holds: nothing at 0; notes
        // as of the download's first page, or of its checkpoint.
        let needed_after = (from > 0).then(|| download_head.unwrap_or(from));
        let mut scanned = None;
        if from > 0 && from >= head.log_floor {
            scanned = self.scan_log(user, from, head.committed, limit).await?;
        }
        let (page, has_more) = match scanned {
            Some(scanned) => scanned,
            None => match self
                .scan_index(user, from, needed_after, head.committed, limit)
                .await?
            {
                Some(scanned) => scanned,
                None => return Ok(PullResponse::ResyncRequired),
            },
        };
        // A purge advances the watermark before it removes: if it removed
        // something this read missed, the head says so now.
        let after = self.head(user).await?;
        if after.user_head().needs_resync(checkpoint, download_head) {
            return Ok(PullResponse::ResyncRequired);
        }
        Ok(page.finish(has_more, head.committed))
    }

    async fn feed_head(&self, user: &UserId) -> Result<u64, StoreError> {
        Ok(self.head(user).await?.committed)
    }

    async fn purge_expired(&self, older_than_ms: u64) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        let mut first_error = None;
        for user in self.users().await? {
            loop {
                match self.purge_user(&user, older_than_ms).await {
                    Ok((n, more)) => {
                        removed += n;
                        if !more {
                            break;
                        }
                    }
                    // One busy or failing user must not stop the others.
                    Err(e) => {
                        first_error.get_or_insert(e);
                        break;
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract;
    use crate::store::kv::fake::FakeCluster;

    fn store(cluster: &FakeCluster, node: &str) -> KvSyncStore<crate::store::kv::fake::FakeKv> {
        KvSyncStore::new(
            cluster.node(),
            KvConfig::new(node, Duration::from_secs(90 * 24 * 3600)),
        )
    }

    #[tokio::test]
    async fn a_page_stopped_by_its_text_budget_reads_no_note_beyond_it() {
        let cluster = FakeCluster::new(1_000_000);
        let config = KvConfig {
            window: 1,
            ..KvConfig::new("n1", Duration::from_secs(90 * 24 * 3600))
        };
        let store = KvSyncStore::new(cluster.node(), config);
        let kv = store.port();
        let alice = contract::user("alice");
        let largest = "x".repeat(crate::domain::LIMITS.max_body_bytes);
        let changes: Vec<_> = (1..=12)
            .map(|n| contract::create(u32::from(n), n, &largest))
            .collect();
        contract::push(&store, &alice, &changes).await;
        // From 0 the scan goes through the index; from 1, through the log.
        for from in [0, 1] {
            let before = kv.calls();
            let by_count = contract::page(&store, &alice, from, 7).await;
            let counted = kv.calls() - before;
            let before = kv.calls();
            let by_budget = contract::page(&store, &alice, from, 100).await;
            let budgeted = kv.calls() - before;
            assert_eq!(by_budget, by_count, "from {from}");
            assert_eq!(by_budget.0.len(), 7, "from {from}");
            assert_eq!(budgeted, counted, "from {from}: KV calls");
        }
    }

    #[tokio::test]
    async fn kv_store_over_the_fake_keeps_the_contract() {
        contract::run_all(&|| Box::new(store(&FakeCluster::new(1_000_000), "n1"))).await;
    }
}
