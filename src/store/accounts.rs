//! The accounts port: users and their sign-in sessions, kept in the same
//! configured store as the notes (embedded or Couchbase), so a restart loses
//! no session and several server instances share them.
//!
//! Contract (checked by [`contract`] against every implementation):
//! - a user name belongs to at most one user: [`AccountStore::create_user`]
//!   answers [`AccountError::NameTaken`] for a name already in use and
//!   changes nothing;
//! - names are compared exactly as given; callers normalise them first
//!   (`domain::account::UserName` lower-cases them);
//! - a session is stored under a key the caller derives from its id (the
//!   server stores the SHA-256 of the id, never the id itself); it is
//!   readable until its expiry, never after, and gone once deleted; saving
//!   a session again replaces it and its expiry (sessions are rotated by
//!   deleting the old key and saving a new one);
//! - a session saved for a user ends with [`AccountStore::end_sessions`] of
//!   that user (sign out everywhere, a password change), unless it is the
//!   one kept; other users' sessions are untouched;
//! - [`AccountStore::set_password`] replaces the hash of an existing user
//!   only;
//! - [`AccountStore::purge_sessions`] removes expired sessions only (a store
//!   whose documents expire by themselves may have none left to remove).
//!
//! Session payloads are opaque bytes: the session layer (the ssr server)
//! owns their format.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::StoreError;
use crate::domain::UserId;

/// A user account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    /// The normalised sign-in name.
    pub name: String,
    /// The password's argon2id hash in PHC string form (salt included).
    pub password_hash: String,
    /// Unix milliseconds.
    pub created_at: u64,
}

/// Why an account operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AccountError {
    /// Another user already has this name.
    #[error("the name is taken")]
    NameTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where users and sessions live. Shared by all requests, like the notes
/// store, so every method takes `&self`.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Adds a user, unless its name is taken.
    async fn create_user(&self, user: &UserRecord) -> Result<(), AccountError>;
    /// The user with this (normalised) name.
    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Replaces the password hash of the user with this (normalised) name;
    /// `false` when there is no such user.
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError>;
    /// Stores a session under `key` until `expires_ms` (Unix ms), replacing
    /// any session with that key; `user` is whose it is, when it has one.
    async fn save_session(
        &self,
        key: &str,
        user: Option<&UserId>,
        data: &[u8],
        expires_ms: u64,
    ) -> Result<(), StoreError>;
    /// The session `key`, if it exists and has not expired at `now_ms`.
    async fn load_session(&self, key: &str, now_ms: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Forgets a session (signing out). Deleting an unknown key is not an error.
    async fn delete_session(&self, key: &str) -> Result<(), StoreError>;
    /// Forgets every session of `user` but `keep`; returns how many (the
    /// expired ones a store still held may be counted).
    async fn end_sessions(&self, user: &UserId, keep: Option<&str>) -> Result<u64, StoreError>;
    /// Removes the sessions expired at `now_ms`; returns how many.
    async fn purge_sessions(&self, now_ms: u64) -> Result<u64, StoreError>;
}

/// The contract suite every [`AccountStore`] passes.
pub mod contract {
    use super::*;

    fn user(id: &str, name: &str) -> UserRecord {
        UserRecord {
            id: UserId::parse(id).expect("valid id"),
            name: name.to_string(),
            password_hash: format!("$argon2id$fake${id}"),
            created_at: 1,
        }
    }

    /// Runs every check against a fresh store from `make`.
    pub async fn run_all(make: &dyn Fn() -> Box<dyn AccountStore>) {
        names_are_unique(make().as_ref()).await;
        sessions_expire_and_can_be_deleted(make().as_ref()).await;
        purge_removes_only_expired_sessions(make().as_ref()).await;
        a_users_sessions_end_together(make().as_ref()).await;
        passwords_are_replaced_for_existing_users_only(make().as_ref()).await;
    }

    pub async fn a_users_sessions_end_together(store: &dyn AccountStore) {
        let ann = UserId::parse("u1").expect("id");
        let bob = UserId::parse("u2").expect("id");
        for key in ["a1", "a2", "a3"] {
            store
                .save_session(key, Some(&ann), key.as_bytes(), 10_000)
                .await
                .expect("save");
        }
        store
            .save_session("b1", Some(&bob), b"b1", 10_000)
            .await
            .expect("save");
        store
            .save_session("anonymous", None, b"n", 10_000)
            .await
            .expect("save");
        // Saved again (renewed): still ann's.
        store
            .save_session("a2", Some(&ann), b"a2", 20_000)
            .await
            .expect("save");
        assert!(store.end_sessions(&ann, Some("a3")).await.expect("end") >= 2);
        for (key, lasts) in [
            ("a1", false),
            ("a2", false),
            ("a3", true),
            ("b1", true),
            ("anonymous", true),
        ] {
            assert_eq!(
                store
                    .load_session(key, 5_000)
                    .await
                    .expect("load")
                    .is_some(),
                lasts,
                "{key}"
            );
        }
        store.end_sessions(&ann, None).await.expect("end");
        assert_eq!(store.load_session("a3", 5_000).await.expect("load"), None);
        assert!(store
            .load_session("b1", 5_000)
            .await
            .expect("load")
            .is_some());
        assert_eq!(store.end_sessions(&ann, None).await.expect("end"), 0);
    }

    pub async fn passwords_are_replaced_for_existing_users_only(store: &dyn AccountStore) {
        let ann = user("u1", "ann");
        store.create_user(&ann).await.expect("user");
        assert!(store
            .set_password("ann", "$argon2id$new")
            .await
            .expect("set"));
        let stored = store.user_by_name("ann").await.expect("read").expect("ann");
        assert_eq!(stored.password_hash, "$argon2id$new");
        assert_eq!((stored.id, stored.name), (ann.id, ann.name));
        assert!(!store
            .set_password("nobody", "$argon2id$x")
            .await
            .expect("set"));
        assert_eq!(store.user_by_name("nobody").await.expect("read"), None);
    }

    pub async fn names_are_unique(store: &dyn AccountStore) {
        let ann = user("u1", "ann");
        store.create_user(&ann).await.expect("first user");
        assert_eq!(
            store.user_by_name("ann").await.expect("read"),
            Some(ann.clone())
        );
        assert_eq!(
            store.create_user(&user("u2", "ann")).await,
            Err(AccountError::NameTaken)
        );
        assert_eq!(
            store.user_by_name("ann").await.expect("read").map(|u| u.id),
            Some(ann.id),
            "the refused sign-up changed nothing"
        );
        assert_eq!(store.user_by_name("bob").await.expect("read"), None);
        store
            .create_user(&user("u3", "bob"))
            .await
            .expect("another name");
    }

    pub async fn sessions_expire_and_can_be_deleted(store: &dyn AccountStore) {
        store
            .save_session("s1", None, b"one", 1_000)
            .await
            .expect("save");
        assert_eq!(
            store
                .load_session("s1", 999)
                .await
                .expect("load")
                .as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(store.load_session("s1", 1_000).await.expect("load"), None);
        store
            .save_session("s1", None, b"again", 5_000)
            .await
            .expect("save");
        assert_eq!(
            store
                .load_session("s1", 1_000)
                .await
                .expect("load")
                .as_deref(),
            Some(&b"again"[..])
        );
        store.delete_session("s1").await.expect("delete");
        assert_eq!(store.load_session("s1", 0).await.expect("load"), None);
        store
            .delete_session("never")
            .await
            .expect("deleting nothing");
    }

    pub async fn purge_removes_only_expired_sessions(store: &dyn AccountStore) {
        let ann = UserId::parse("u1").expect("id");
        store
            .save_session("old", Some(&ann), b"o", 100)
            .await
            .expect("save");
        store
            .save_session("new", Some(&ann), b"n", 10_000)
            .await
            .expect("save");
        assert!(store.purge_sessions(5_000).await.expect("purge") <= 1);
        assert_eq!(store.load_session("old", 5_000).await.expect("load"), None);
        assert!(store
            .load_session("new", 5_000)
            .await
            .expect("load")
            .is_some());
        assert_eq!(store.purge_sessions(5_000).await.expect("purge"), 0);
    }
}
