//! [`AccountStore`] over the KV port: users and sessions in the same
//! collection as the notes, so every server instance sharing a cluster sees
//! the same accounts and sessions.
//!
//! Keys: `a:name:{name}` (the user record; `insert` makes a name unique
//! without any lock) and `a:sess:{id}` (expiry as 8 big-endian bytes of Unix
//! ms, then the session layer's bytes). Session documents carry the session's
//! expiry as their TTL, so the cluster removes them itself and
//! [`AccountStore::purge_sessions`] has nothing left to do.

use std::time::Duration;

use async_trait::async_trait;

use super::algorithm::{unavailable, KvSyncStore};
use super::port::{Expiry, KvError, KvPort, MAX_KEY_BYTES};
use crate::store::{AccountError, AccountStore, StoreError, UserRecord};

fn name_key(name: &str) -> Result<String, StoreError> {
    key(format!("a:name:{name}"))
}

fn session_key(id: &str) -> Result<String, StoreError> {
    key(format!("a:sess:{id}"))
}

fn key(key: String) -> Result<String, StoreError> {
    if key.len() < MAX_KEY_BYTES {
        Ok(key)
    } else {
        Err(StoreError::Invalid(format!("key of {} bytes", key.len())))
    }
}

fn decode_session(bytes: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (expiry, data) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt("a session document is too short".into()))?;
    Ok((u64::from_be_bytes(*expiry), data))
}

impl<P: KvPort> KvSyncStore<P> {
    /// A session document's TTL: until `expires_ms`, at least a second.
    fn session_ttl(&self, expires_ms: u64) -> Expiry {
        let left = expires_ms.saturating_sub(self.port().now_ms()).max(1_000);
        Expiry::After(Duration::from_millis(left))
    }
}

#[async_trait]
impl<P: KvPort> AccountStore for KvSyncStore<P> {
    async fn create_user(&self, user: &UserRecord) -> Result<(), AccountError> {
        let key = name_key(&user.name)?;
        let bytes = serde_json::to_vec(user)
            .map_err(|e| StoreError::Invalid(format!("encoding a user: {e}")))?;
        match self.port().insert(&key, &bytes, Expiry::Never).await {
            Ok(_) => Ok(()),
            Err(KvError::Exists) => Err(AccountError::NameTaken),
            // The insert may have applied: whoever's record is there owns the name.
            Err(KvError::Ambiguous(_)) => match self.user_by_name(&user.name).await? {
                Some(stored) if stored.id == user.id => Ok(()),
                Some(_) => Err(AccountError::NameTaken),
                None => Err(StoreError::Unavailable("creating a user timed out".into()).into()),
            },
            Err(e) => Err(unavailable("creating a user", &e).into()),
        }
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        match self.port().get(&name_key(name)?).await {
            Ok(doc) => serde_json::from_slice(&doc.value)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("stored user: {e}"))),
            Err(KvError::NotFound) => Ok(None),
            Err(e) => Err(unavailable("reading a user", &e)),
        }
    }

    async fn save_session(&self, id: &str, data: &[u8], expires_ms: u64) -> Result<(), StoreError> {
        let key = session_key(id)?;
        let mut bytes = expires_ms.to_be_bytes().to_vec();
        bytes.extend_from_slice(data);
        let ttl = self.session_ttl(expires_ms);
        // Insert, or replace what is there; a concurrent save of the same
        // session may win a round, so a few rounds are allowed.
        for _ in 0..5 {
            match self.port().insert(&key, &bytes, ttl).await {
                Ok(_) => return Ok(()),
                Err(KvError::Exists) => {}
                Err(e) => return Err(unavailable("saving a session", &e)),
            }
            let current = match self.port().get(&key).await {
                Ok(doc) => doc,
                Err(KvError::NotFound) => continue,
                Err(e) => return Err(unavailable("saving a session", &e)),
            };
            match self.port().replace(&key, &bytes, current.cas, ttl).await {
                Ok(_) => return Ok(()),
                Err(KvError::CasMismatch | KvError::NotFound) => {}
                Err(e) => return Err(unavailable("saving a session", &e)),
            }
        }
        Err(StoreError::Unavailable(
            "saving a session kept racing other writes".into(),
        ))
    }

    async fn load_session(&self, id: &str, now_ms: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self.port().get(&session_key(id)?).await {
            Ok(doc) => {
                let (expires, data) = decode_session(&doc.value)?;
                Ok((expires > now_ms).then(|| data.to_vec()))
            }
            Err(KvError::NotFound) => Ok(None),
            Err(e) => Err(unavailable("reading a session", &e)),
        }
    }

    async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        let key = session_key(id)?;
        for _ in 0..5 {
            let current = match self.port().get(&key).await {
                Ok(doc) => doc,
                Err(KvError::NotFound) => return Ok(()),
                Err(e) => return Err(unavailable("deleting a session", &e)),
            };
            match self.port().remove(&key, current.cas).await {
                Ok(()) | Err(KvError::NotFound) => return Ok(()),
                Err(KvError::CasMismatch) => {}
                Err(e) => return Err(unavailable("deleting a session", &e)),
            }
        }
        Err(StoreError::Unavailable(
            "deleting a session kept racing other writes".into(),
        ))
    }

    async fn purge_sessions(&self, _now_ms: u64) -> Result<u64, StoreError> {
        // Session documents expire by their TTL; the cluster removes them.
        Ok(0)
    }
}
