//! The KV port: the handful of Couchbase Data-service operations the KV sync
//! store is written against, with Couchbase's exact semantics, so that the
//! same algorithm runs over the real cluster (`server::couchbase`) and over
//! the fault-injecting fake ([`super::fake`]).
//!
//! Contract of every implementation:
//! - a document is bytes plus a [`Cas`] that changes on every mutation and is
//!   never reused for one key;
//! - `insert` fails [`KvError::Exists`] when the key is live; `replace` and
//!   `remove` fail [`KvError::NotFound`] when it is not, and
//!   [`KvError::CasMismatch`] when the document changed since the given CAS;
//! - a write carries an [`Expiry`]; `replace` without one clears any expiry
//!   the document had (Couchbase's default, `preserve_expiry` off), and an
//!   expired document behaves exactly like a missing one;
//! - [`KvError::Ambiguous`] means a write may or may not have applied (the
//!   call timed out or the connection dropped after sending); any other
//!   error from a write means it did not apply;
//! - a write that was answered `Ambiguous` may still land later, but a CAS
//!   replace or an insert can only land on the state it was issued against:
//!   that is why the algorithm writes nothing unconditionally (no upsert).

use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

/// Couchbase's compare-and-swap token of one version of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cas(pub u64);

/// A document as read: its bytes and the CAS of that version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub cas: Cas,
}

/// How long a written document lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Until removed.
    Never,
    /// Removed by the store this long after the write.
    After(Duration),
}

/// Why a KV operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KvError {
    /// No live document has this key (`DocumentNotFound`).
    #[error("document not found")]
    NotFound,
    /// `insert` found a live document under the key (`DocumentExists`).
    #[error("document exists")]
    Exists,
    /// The document changed since the CAS the write was made against.
    #[error("CAS mismatch")]
    CasMismatch,
    /// The write may or may not have applied: it timed out, or the answer was
    /// lost. Resolve by reading (see the module contract).
    #[error("the write may or may not have applied: {0}")]
    Ambiguous(String),
    /// The operation did not apply and may succeed if retried (timeouts of
    /// reads, temporary failures, a node that is down).
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// The value is larger than the store accepts.
    #[error("value too large")]
    TooLarge,
    /// The request can never succeed as made: missing bucket, scope or
    /// collection, no permission, a bad key. Retrying will not help.
    #[error("the store refused the request: {0}")]
    Refused(String),
}

impl KvError {
    /// Whether repeating the same operation may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, KvError::Ambiguous(_) | KvError::Unavailable(_))
    }
}

/// The KV operations the sync store needs, on one collection.
///
/// Implementations are shared by concurrent requests, so every method takes
/// `&self`. Keys are at most [`MAX_KEY_BYTES`] bytes.
#[async_trait]
pub trait KvPort: Send + Sync {
    /// Reads a document: its value and CAS, or [`KvError::NotFound`].
    async fn get(&self, key: &str) -> Result<Versioned, KvError>;

    /// Reads many documents, one result per key in the order given, with at
    /// most an implementation-defined number of reads in flight at once.
    async fn get_many(&self, keys: &[String]) -> Vec<Result<Versioned, KvError>>;

    /// Creates a document; [`KvError::Exists`] when the key is live.
    async fn insert(&self, key: &str, value: &[u8], expiry: Expiry) -> Result<Cas, KvError>;

    /// Replaces the version with CAS `cas`; [`KvError::CasMismatch`] when the
    /// document changed since, [`KvError::NotFound`] when it is gone.
    async fn replace(
        &self,
        key: &str,
        value: &[u8],
        cas: Cas,
        expiry: Expiry,
    ) -> Result<Cas, KvError>;

    /// Removes the version with CAS `cas` (same failures as `replace`).
    async fn remove(&self, key: &str, cas: Cas) -> Result<(), KvError>;

    /// Adds `delta` to the counter document `key`, creating it with
    /// `initial` when missing, and answers the new value. The counter is
    /// stored as ASCII decimal, so `get` reads it as text. Not idempotent: an
    /// `Ambiguous` answer may or may not have counted.
    async fn increment(&self, key: &str, delta: u64, initial: u64) -> Result<u64, KvError>;

    /// The current time in Unix milliseconds, as lease expiries are compared
    /// by every server sharing the cluster.
    fn now_ms(&self) -> u64;

    /// Waits about `ms` milliseconds before a retry (the fake advances its
    /// manual clock instead).
    async fn pause(&self, ms: u64);
}

/// Couchbase's limit on a key is 250 bytes including the collection prefix
/// it adds on the wire; every key the store builds stays below this.
pub const MAX_KEY_BYTES: usize = 246;

/// A shared port is a port: several stores (one per simulated server in
/// tests) can use one connection.
#[async_trait]
impl<P: KvPort + ?Sized> KvPort for std::sync::Arc<P> {
    async fn get(&self, key: &str) -> Result<Versioned, KvError> {
        (**self).get(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Vec<Result<Versioned, KvError>> {
        (**self).get_many(keys).await
    }

    async fn insert(&self, key: &str, value: &[u8], expiry: Expiry) -> Result<Cas, KvError> {
        (**self).insert(key, value, expiry).await
    }

    async fn replace(
        &self,
        key: &str,
        value: &[u8],
        cas: Cas,
        expiry: Expiry,
    ) -> Result<Cas, KvError> {
        (**self).replace(key, value, cas, expiry).await
    }

    async fn remove(&self, key: &str, cas: Cas) -> Result<(), KvError> {
        (**self).remove(key, cas).await
    }

    async fn increment(&self, key: &str, delta: u64, initial: u64) -> Result<u64, KvError> {
        (**self).increment(key, delta, initial).await
    }

    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }

    async fn pause(&self, ms: u64) {
        (**self).pause(ms).await;
    }
}
