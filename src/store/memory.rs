//! An in-memory [`SyncStore`]: the reference implementation of the contract,
//! used by native tests and simulations. Nothing survives the process.
//!
//! One mutex guards all users, so every batch is applied atomically and a
//! reader always sees a whole batch or none of it: the feed has no in-flight
//! gaps. In-memory writes cannot fail halfway, so a batch never half-applies.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::batch::{apply_changes, BatchTxn};
use super::{
    AccountError, AccountStore, PageBuilder, Quota, StoreError, SyncStore, Usage, UserHead,
    UserRecord,
};
use crate::domain::{MutationId, NoteId, UserId};
use crate::sync::apply::StoredNote;
use crate::sync::merge::Strategy;
use crate::sync::protocol::{Change, ChangeResult, Checkpoint, PullResponse};

#[derive(Debug, Default)]
struct UserData {
    head: UserHead,
    notes: HashMap<NoteId, StoredNote>,
    /// The feed: each note at the `seq` of its latest change.
    feed: BTreeMap<u64, NoteId>,
    /// Accepted mutation ids and the server time they were accepted at.
    mutations: HashMap<MutationId, u64>,
    usage: Usage,
}

impl BatchTxn for UserData {
    fn head(&mut self) -> Result<UserHead, StoreError> {
        Ok(self.head)
    }

    fn set_head(&mut self, head: UserHead) -> Result<(), StoreError> {
        self.head = head;
        Ok(())
    }

    fn mutation_seen(&mut self, id: MutationId) -> Result<bool, StoreError> {
        Ok(self.mutations.contains_key(&id))
    }

    fn remember_mutation(&mut self, id: MutationId, now_ms: u64) -> Result<(), StoreError> {
        self.mutations.insert(id, now_ms);
        Ok(())
    }

    fn load(&mut self, id: NoteId) -> Result<Option<StoredNote>, StoreError> {
        Ok(self.notes.get(&id).cloned())
    }

    fn save(&mut self, previous: Option<&StoredNote>, note: &StoredNote) -> Result<(), StoreError> {
        if let Some(previous) = previous {
            self.feed.remove(&previous.seq);
        }
        self.feed.insert(note.seq, note.note.id);
        self.notes.insert(note.note.id, note.clone());
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

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    users: Mutex<HashMap<UserId, UserData>>,
    accounts: Mutex<Accounts>,
}

/// Users by name, and sessions by id with their expiry (Unix ms).
#[derive(Debug, Default)]
struct Accounts {
    users: HashMap<String, UserRecord>,
    sessions: HashMap<String, (Vec<u8>, u64, Option<UserId>)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<UserId, UserData>>, StoreError> {
        // A panic while the lock was held may have left a batch half-applied.
        self.users
            .lock()
            .map_err(|_| StoreError::Unavailable("the memory store's lock is poisoned".into()))
    }

    fn accounts(&self) -> Result<MutexGuard<'_, Accounts>, StoreError> {
        self.accounts
            .lock()
            .map_err(|_| StoreError::Unavailable("the memory store's lock is poisoned".into()))
    }
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn create_user(&self, user: &UserRecord) -> Result<(), AccountError> {
        let mut accounts = self.accounts()?;
        if accounts.users.contains_key(&user.name) {
            return Err(AccountError::NameTaken);
        }
        accounts.users.insert(user.name.clone(), user.clone());
        Ok(())
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.accounts()?.users.get(name).cloned())
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        Ok(match self.accounts()?.users.get_mut(name) {
            Some(user) => {
                user.password_hash = password_hash.to_string();
                true
            }
            None => false,
        })
    }

    async fn save_session(
        &self,
        key: &str,
        user: Option<&UserId>,
        data: &[u8],
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        self.accounts()?
            .sessions
            .insert(key.to_string(), (data.to_vec(), expires_ms, user.cloned()));
        Ok(())
    }

    async fn end_sessions(&self, user: &UserId, keep: Option<&str>) -> Result<u64, StoreError> {
        let mut accounts = self.accounts()?;
        let before = accounts.sessions.len();
        accounts.sessions.retain(|key, (_, _, owner)| {
            owner.as_ref() != Some(user) || Some(key.as_str()) == keep
        });
        Ok((before - accounts.sessions.len()) as u64)
    }

    async fn load_session(&self, key: &str, now_ms: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .accounts()?
            .sessions
            .get(key)
            .filter(|(_, expires, _)| *expires > now_ms)
            .map(|(data, _, _)| data.clone()))
    }

    async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        self.accounts()?.sessions.remove(key);
        Ok(())
    }

    async fn purge_sessions(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut accounts = self.accounts()?;
        let before = accounts.sessions.len();
        accounts
            .sessions
            .retain(|_, (_, expires, _)| *expires > now_ms);
        Ok((before - accounts.sessions.len()) as u64)
    }
}

#[async_trait]
impl SyncStore for MemoryStore {
    async fn apply_batch_within(
        &self,
        user: &UserId,
        changes: &[Change],
        strategy: Strategy,
        now_ms: u64,
        quota: Quota,
    ) -> Result<Vec<ChangeResult>, StoreError> {
        let mut users = self.lock()?;
        let data = users.entry(user.clone()).or_default();
        apply_changes(data, changes, strategy, now_ms, quota)
    }

    async fn changes_since(
        &self,
        user: &UserId,
        checkpoint: Checkpoint,
        download_head: Option<u64>,
        limit: u32,
    ) -> Result<PullResponse, StoreError> {
        let users = self.lock()?;
        let Some(data) = users.get(user) else {
            return Ok(
                if UserHead::default().needs_resync(checkpoint, download_head) {
                    PullResponse::ResyncRequired
                } else {
                    empty_page(checkpoint)
                },
            );
        };
        if data.head.needs_resync(checkpoint, download_head) {
            return Ok(PullResponse::ResyncRequired);
        }
        let mut page = PageBuilder::new(limit);
        let mut has_more = false;
        for (&seq, id) in data.feed.range(checkpoint.0.saturating_add(1)..) {
            if page.is_full() {
                has_more = true;
                break;
            }
            let stored = data.notes.get(id).ok_or_else(|| {
                StoreError::Corrupt(format!("feed entry {seq} names missing note {id}"))
            })?;
            if !page.take(stored.clone().into_feed_entry()) {
                has_more = true;
                break;
            }
        }
        Ok(page.finish(has_more, data.head.last_seq))
    }

    async fn feed_head(&self, user: &UserId) -> Result<u64, StoreError> {
        Ok(self.lock()?.get(user).map_or(0, |data| data.head.last_seq))
    }

    async fn purge_expired(&self, older_than_ms: u64) -> Result<u64, StoreError> {
        let mut users = self.lock()?;
        let mut removed = 0u64;
        for data in users.values_mut() {
            let expired: Vec<(NoteId, u64)> = data
                .notes
                .values()
                .filter(|s| s.note.deleted && s.written_ms < older_than_ms)
                .map(|s| (s.note.id, s.seq))
                .collect();
            for (id, seq) in expired {
                data.notes.remove(&id);
                data.feed.remove(&seq);
                data.head.purge_watermark = data.head.purge_watermark.max(seq);
                removed += 1;
            }
            let before = data.mutations.len();
            data.mutations.retain(|_, at| *at >= older_than_ms);
            removed += (before - data.mutations.len()) as u64;
        }
        Ok(removed)
    }
}

fn empty_page(checkpoint: Checkpoint) -> PullResponse {
    PullResponse::Page {
        entries: Vec::new(),
        checkpoint,
        has_more: false,
        head: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract;

    #[tokio::test]
    async fn memory_store_keeps_the_contract() {
        contract::run_all(&|| Box::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn memory_store_keeps_the_accounts_contract() {
        crate::store::accounts::contract::run_all(&|| Box::new(MemoryStore::new())).await;
    }
}
