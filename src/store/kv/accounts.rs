//! [`AccountStore`] over the KV port: users and sessions in the same
//! collection as the notes, so every server instance sharing a cluster sees
//! the same accounts and sessions.
//!
//! Keys: `a:name:{name}` (the user record; `insert` makes a name unique
//! without any lock), `a:sess:{key}` (expiry as 8 big-endian bytes of Unix
//! ms, then the session layer's bytes; the key is the hash of the session
//! id) and `a:usess:{user}` (the user's session keys with their expiries,
//! JSON, replaced with CAS; at most [`MAX_SESSIONS_PER_USER`], the one that
//! expires first ended when another is saved).
//! Session documents carry the session's expiry as their TTL, so the
//! cluster removes them itself and [`AccountStore::purge_sessions`] has
//! nothing left to do.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::algorithm::{unavailable, KvSyncStore};
use super::port::{Expiry, KvError, KvPort, MAX_KEY_BYTES};
use crate::domain::UserId;
use crate::store::{AccountError, AccountStore, StoreError, UserRecord};

fn name_key(name: &str) -> Result<String, StoreError> {
    key(format!("a:name:{name}"))
}

fn session_key(id: &str) -> Result<String, StoreError> {
    key(format!("a:sess:{id}"))
}

fn user_sessions_key(user: &UserId) -> Result<String, StoreError> {
    key(format!("a:usess:{user}"))
}

/// Most sessions one user's list keeps (expired ones included, as documents
/// expire by themselves and the list is not told).
pub const MAX_SESSIONS_PER_USER: usize = 256;

/// A user's sessions: key → expiry (Unix ms).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct UserSessions {
    sessions: BTreeMap<String, u64>,
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

    /// Changes `user`'s session list with `change` (CAS, a few rounds);
    /// answers what `change` returned on the list that was stored.
    async fn update_user_sessions<T>(
        &self,
        user: &UserId,
        change: impl Fn(&mut UserSessions) -> T,
    ) -> Result<T, StoreError> {
        let key = user_sessions_key(user)?;
        for _ in 0..8 {
            let current = match self.port().get(&key).await {
                Ok(doc) => Some(doc),
                Err(KvError::NotFound) => None,
                Err(e) => return Err(unavailable("reading a user's sessions", &e)),
            };
            let mut list: UserSessions = match &current {
                Some(doc) => serde_json::from_slice(&doc.value)
                    .map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?,
                None => UserSessions::default(),
            };
            let answer = change(&mut list);
            let bytes = serde_json::to_vec(&list)
                .map_err(|e| StoreError::Invalid(format!("encoding sessions: {e}")))?;
            let written = match &current {
                Some(doc) => {
                    self.port()
                        .replace(&key, &bytes, doc.cas, Expiry::Never)
                        .await
                }
                None => self.port().insert(&key, &bytes, Expiry::Never).await,
            };
            match written {
                Ok(_) => return Ok(answer),
                Err(KvError::CasMismatch | KvError::Exists | KvError::NotFound) => {}
                Err(e) => return Err(unavailable("writing a user's sessions", &e)),
            }
        }
        Err(StoreError::Unavailable(
            "a user's session list kept racing other writes".into(),
        ))
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

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let key = name_key(name)?;
        for _ in 0..5 {
            let doc = match self.port().get(&key).await {
                Ok(doc) => doc,
                Err(KvError::NotFound) => return Ok(false),
                Err(e) => return Err(unavailable("reading a user", &e)),
            };
            let mut user: UserRecord = serde_json::from_slice(&doc.value)
                .map_err(|e| StoreError::Corrupt(format!("stored user: {e}")))?;
            user.password_hash = password_hash.to_string();
            let bytes = serde_json::to_vec(&user)
                .map_err(|e| StoreError::Invalid(format!("encoding a user: {e}")))?;
            match self
                .port()
                .replace(&key, &bytes, doc.cas, Expiry::Never)
                .await
            {
                Ok(_) => return Ok(true),
                Err(KvError::CasMismatch) => {}
                Err(KvError::NotFound) => return Ok(false),
                Err(e) => return Err(unavailable("changing a password", &e)),
            }
        }
        Err(StoreError::Unavailable(
            "changing a password kept racing other writes".into(),
        ))
    }

    async fn end_sessions(&self, user: &UserId, keep: Option<&str>) -> Result<u64, StoreError> {
        let ended = self
            .update_user_sessions(user, |list| {
                let ended: Vec<String> = list
                    .sessions
                    .keys()
                    .filter(|k| Some(k.as_str()) != keep)
                    .cloned()
                    .collect();
                list.sessions.retain(|k, _| Some(k.as_str()) == keep);
                ended
            })
            .await?;
        for key in &ended {
            self.delete_session(key).await?;
        }
        Ok(ended.len() as u64)
    }

    async fn save_session(
        &self,
        id: &str,
        user: Option<&UserId>,
        data: &[u8],
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        if let Some(user) = user {
            // Listed first: a session saved is always one sign-out-everywhere
            // ends. The list keeps the sessions that expire last; one pushed
            // out of it is ended (a person has at most that many at once).
            let dropped = self
                .update_user_sessions(user, |list| {
                    list.sessions.insert(id.to_string(), expires_ms);
                    let mut dropped = Vec::new();
                    while list.sessions.len() > MAX_SESSIONS_PER_USER {
                        let first = list
                            .sessions
                            .iter()
                            .min_by_key(|(_, expires)| **expires)
                            .map(|(key, _)| key.clone());
                        if let Some(key) = first {
                            list.sessions.remove(&key);
                            dropped.push(key);
                        }
                    }
                    dropped
                })
                .await?;
            for key in dropped {
                self.delete_session(&key).await?;
            }
        }
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
