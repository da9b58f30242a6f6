//! The Couchbase adapter: [`KvPort`] over one `couchbase::collection::Collection`
//! (SDK 1.x, Data service only), so [`KvSyncStore`] runs on a real cluster.
//!
//! Promises:
//! - every SDK call runs under [`tokio::time::timeout`]; a write that times
//!   out is [`KvError::Ambiguous`] (it may still land), a read that times out
//!   is [`KvError::Unavailable`];
//! - SDK errors map to the port's kinds in [`map_error`], conservatively: a
//!   write failure that does not prove the write never applied is ambiguous;
//! - documents are stored as raw JSON bytes with the JSON common flags, so
//!   what is read back is byte for byte what was written (the algorithm
//!   resolves ambiguous writes by comparing bytes);
//! - on start, [`CouchbaseKv::connect`] creates the scope and the collection
//!   when they are missing, and says which permission is lacking when it may
//!   not; it connects with the configured RBAC user, never a built-in admin.
//!
//! The password is held in a [`Secret`], whose `Debug` and `Display` print a
//! placeholder, so no log line can carry it.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use couchbase::authenticator::PasswordAuthenticator;
use couchbase::bucket::Bucket;
use couchbase::cluster::Cluster;
use couchbase::collection::Collection;
use couchbase::durability_level::DurabilityLevel;
use couchbase::error::{Error as SdkError, ErrorKind};
use couchbase::options::cluster_options::ClusterOptions;
use couchbase::options::kv_binary_options::IncrementOptions;
use couchbase::options::kv_options::{InsertOptions, RemoveOptions, ReplaceOptions};
use futures::stream::{self, StreamExt};
use thiserror::Error;

#[cfg(doc)]
use crate::store::kv::KvSyncStore;
use crate::store::kv::{Cas, Expiry, KvError, KvPort, Versioned};

/// A password: printed as `<redacted>` by `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where and how to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouchbaseSettings {
    /// `couchbase://host` or `couchbases://host` (TLS).
    pub connstr: String,
    pub username: String,
    pub password: Secret,
    pub bucket: String,
    pub scope: String,
    pub collection: String,
    /// The limit on every KV call.
    pub timeout: Duration,
    /// Reads in flight at once in a multi-get.
    pub concurrency: usize,
    /// Wait for a majority of replicas on every write (survives a failover).
    pub durable: bool,
}

/// Why the adapter could not start.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("connecting to the cluster failed: {0}")]
    Connect(String),
    #[error("bucket {bucket:?} is not ready: {reason}")]
    Bucket { bucket: String, reason: String },
    #[error(
        "{what} is missing and could not be created ({reason}); create it ahead of time or grant \
         the user Manage Scopes (scope_admin) on the bucket"
    )]
    Keyspace { what: String, reason: String },
    #[error("{0} did not answer within the timeout")]
    Timeout(&'static str),
}

/// The port over one collection of a live cluster.
pub struct CouchbaseKv {
    collection: Collection,
    timeout: Duration,
    concurrency: usize,
    durable: bool,
    // Dropping the cluster closes its connections; keep it as long as the
    // collection is used.
    _cluster: Cluster,
}

impl fmt::Debug for CouchbaseKv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CouchbaseKv")
            .field("bucket", &self.collection.bucket_name())
            .field("scope", &self.collection.scope_name())
            .field("collection", &self.collection.name())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How long start-up steps (connect, bucket ready, keyspace) may take.
const START_TIMEOUT: Duration = Duration::from_secs(30);

async fn within<T>(
    what: &'static str,
    limit: Duration,
    f: impl std::future::Future<Output = T>,
) -> Result<T, ConnectError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| ConnectError::Timeout(what))
}

impl CouchbaseKv {
    /// Connects as the configured user, waits for the bucket, and creates
    /// the scope and the collection if they are missing.
    pub async fn connect(settings: &CouchbaseSettings) -> Result<Self, ConnectError> {
        if settings.username.eq_ignore_ascii_case("administrator") {
            tracing::warn!(
                "connecting to Couchbase as the administrator; use an RBAC user limited to the \
                 bucket (see the README's Couchbase section)"
            );
        }
        let auth = PasswordAuthenticator::new(&settings.username, settings.password.expose());
        let cluster = within(
            "the cluster",
            START_TIMEOUT,
            Cluster::connect(&settings.connstr, ClusterOptions::new(auth.into())),
        )
        .await?
        .map_err(|e| ConnectError::Connect(e.to_string()))?;
        let bucket = cluster.bucket(&settings.bucket);
        within("the bucket", START_TIMEOUT, bucket.wait_until_ready(None))
            .await?
            .map_err(|e| ConnectError::Bucket {
                bucket: settings.bucket.clone(),
                reason: e.to_string(),
            })?;
        ensure_keyspace(&bucket, &settings.scope, &settings.collection).await?;
        let collection = bucket
            .scope(&settings.scope)
            .collection(&settings.collection);
        Ok(Self {
            collection,
            timeout: settings.timeout,
            concurrency: settings.concurrency.max(1),
            durable: settings.durable,
            _cluster: cluster,
        })
    }

    fn durability(&self) -> DurabilityLevel {
        if self.durable {
            DurabilityLevel::MAJORITY
        } else {
            DurabilityLevel::NONE
        }
    }

    /// Runs one SDK call under the timeout and maps its error.
    async fn call<T>(
        &self,
        write: bool,
        f: impl std::future::Future<Output = Result<T, SdkError>>,
    ) -> Result<T, KvError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(map_error(e.kind(), write)),
            Err(_) if write => Err(KvError::Ambiguous("timed out".into())),
            Err(_) => Err(KvError::Unavailable("timed out".into())),
        }
    }
}

/// Creates the scope and the collection when `get_all_scopes` does not list
/// them; "exists" answers (another server won the race) count as success.
async fn ensure_keyspace(
    bucket: &Bucket,
    scope: &str,
    collection: &str,
) -> Result<(), ConnectError> {
    let manager = bucket.collections();
    let scopes = within(
        "listing scopes",
        START_TIMEOUT,
        manager.get_all_scopes(None),
    )
    .await?
    .map_err(|e| ConnectError::Keyspace {
        what: format!("scope {scope:?}"),
        reason: format!("cannot list scopes: {e}"),
    })?;
    let found = scopes.iter().find(|s| s.name() == scope);
    if found.is_none() {
        match within(
            "creating the scope",
            START_TIMEOUT,
            manager.create_scope(scope, None),
        )
        .await?
        {
            Ok(()) => tracing::info!(scope, "created the Couchbase scope"),
            Err(e) if matches!(e.kind(), ErrorKind::ScopeExists) => {}
            Err(e) => {
                return Err(ConnectError::Keyspace {
                    what: format!("scope {scope:?}"),
                    reason: e.to_string(),
                })
            }
        }
    }
    let has_collection =
        found.is_some_and(|s| s.collections().iter().any(|c| c.name() == collection));
    if !has_collection {
        match within(
            "creating the collection",
            START_TIMEOUT,
            manager.create_collection(scope, collection, None, None),
        )
        .await?
        {
            Ok(()) => tracing::info!(scope, collection, "created the Couchbase collection"),
            Err(e) if matches!(e.kind(), ErrorKind::CollectionExists) => {}
            Err(e) => {
                return Err(ConnectError::Keyspace {
                    what: format!("collection {scope}.{collection}"),
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// Maps an SDK error kind to the port's. `write`: whether the call was a
/// mutation, for which only errors that prove it never applied are definite.
pub fn map_error(kind: &ErrorKind, write: bool) -> KvError {
    let maybe_applied = |what: String| {
        if write {
            KvError::Ambiguous(what)
        } else {
            KvError::Unavailable(what)
        }
    };
    match kind {
        ErrorKind::DocumentNotFound => KvError::NotFound,
        ErrorKind::DocumentExists => KvError::Exists,
        ErrorKind::CasMismatch => KvError::CasMismatch,
        ErrorKind::ValueTooLarge => KvError::TooLarge,
        // The server refused before applying anything; retrying may work.
        ErrorKind::TemporaryFailure
        | ErrorKind::DocumentLocked
        | ErrorKind::RateLimitedFailure
        | ErrorKind::QuotaLimitedFailure
        | ErrorKind::ServiceNotAvailable(_)
        | ErrorKind::DurabilityWriteInProgress
        | ErrorKind::DurableWriteRecommitInProgress
        | ErrorKind::ClusterDropped => KvError::Unavailable(kind.to_string()),
        // Retrying the same request can never succeed.
        ErrorKind::AuthenticationFailure
        | ErrorKind::BucketNotFound
        | ErrorKind::ScopeNotFound
        | ErrorKind::CollectionNotFound
        | ErrorKind::InvalidArgument(_)
        | ErrorKind::FeatureNotAvailable(_)
        | ErrorKind::UnsupportedOperation
        | ErrorKind::EncodingFailure(_)
        | ErrorKind::DurabilityLevelNotAvailable
        | ErrorKind::DurabilityImpossible => KvError::Refused(kind.to_string()),
        // Timeouts, cancelled requests, ambiguous durable writes and
        // anything unclassified (a dropped connection reports as "other"):
        // the request may have reached the server.
        _ => maybe_applied(kind.to_string()),
    }
}

fn expiry(expiry: Expiry) -> Option<Duration> {
    match expiry {
        Expiry::Never => None,
        Expiry::After(d) => Some(d),
    }
}

#[async_trait]
impl KvPort for CouchbaseKv {
    async fn get(&self, key: &str) -> Result<Versioned, KvError> {
        let got = self.call(false, self.collection.get(key, None)).await?;
        Ok(Versioned {
            value: got.content_as_raw().0.to_vec(),
            cas: Cas(got.cas()),
        })
    }

    async fn get_many(&self, keys: &[String]) -> Vec<Result<Versioned, KvError>> {
        // The futures are made first and streamed as owned values: a
        // stream mapping borrowed keys inside async_trait trips over
        // higher-ranked lifetimes.
        let reads: Vec<_> = keys.iter().map(|key| self.get(key)).collect();
        stream::iter(reads)
            .buffered(self.concurrency)
            .collect()
            .await
    }

    async fn insert(&self, key: &str, value: &[u8], exp: Expiry) -> Result<Cas, KvError> {
        let (bytes, flags) = couchbase::transcoding::raw_json::encode(&value)
            .map_err(|e| map_error(e.kind(), false))?;
        let mut options = InsertOptions::new().durability_level(self.durability());
        if let Some(d) = expiry(exp) {
            options = options.expiry(d);
        }
        let done = self
            .call(true, self.collection.insert_raw(key, bytes, flags, options))
            .await?;
        Ok(Cas(done.cas()))
    }

    async fn replace(
        &self,
        key: &str,
        value: &[u8],
        cas: Cas,
        exp: Expiry,
    ) -> Result<Cas, KvError> {
        let (bytes, flags) = couchbase::transcoding::raw_json::encode(&value)
            .map_err(|e| map_error(e.kind(), false))?;
        // Without an expiry the SDK sends 0, which clears any expiry the
        // document had: a revived tombstone becomes permanent again.
        let mut options = ReplaceOptions::new()
            .cas(cas.0)
            .durability_level(self.durability());
        if let Some(d) = expiry(exp) {
            options = options.expiry(d);
        }
        let done = self
            .call(
                true,
                self.collection.replace_raw(key, bytes, flags, options),
            )
            .await?;
        Ok(Cas(done.cas()))
    }

    async fn remove(&self, key: &str, cas: Cas) -> Result<(), KvError> {
        let options = RemoveOptions::new()
            .cas(cas.0)
            .durability_level(self.durability());
        self.call(true, self.collection.remove(key, options))
            .await
            .map(|_| ())
    }

    async fn increment(&self, key: &str, delta: u64, initial: u64) -> Result<u64, KvError> {
        let options = IncrementOptions::new()
            .delta(delta)
            .initial(initial)
            .durability_level(self.durability());
        let binary = self.collection.binary();
        let done = self.call(true, binary.increment(key, options)).await?;
        Ok(done.content())
    }

    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    async fn pause(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

#[cfg(test)]
mod tests {
    use couchbase::error::{FeatureNotAvailableErrorKind, InvalidArgumentErrorKind};

    use super::*;

    #[test]
    fn definite_answers_map_to_their_kinds() {
        for write in [false, true] {
            assert_eq!(
                map_error(&ErrorKind::DocumentNotFound, write),
                KvError::NotFound
            );
            assert_eq!(
                map_error(&ErrorKind::DocumentExists, write),
                KvError::Exists
            );
            assert_eq!(
                map_error(&ErrorKind::CasMismatch, write),
                KvError::CasMismatch
            );
            assert_eq!(
                map_error(&ErrorKind::ValueTooLarge, write),
                KvError::TooLarge
            );
        }
    }

    #[test]
    fn a_write_that_may_have_reached_the_server_is_ambiguous() {
        for kind in [
            ErrorKind::ServerTimeout,
            ErrorKind::RequestCanceled,
            ErrorKind::DurabilityAmbiguous,
            ErrorKind::OtherFailure("connection reset".into()),
            ErrorKind::InternalServerFailure,
        ] {
            assert!(
                matches!(map_error(&kind, true), KvError::Ambiguous(_)),
                "{kind:?} on a write"
            );
            assert!(
                matches!(map_error(&kind, false), KvError::Unavailable(_)),
                "{kind:?} on a read"
            );
        }
    }

    #[test]
    fn refusals_before_applying_are_transient_or_final() {
        for kind in [
            ErrorKind::TemporaryFailure,
            ErrorKind::DocumentLocked,
            ErrorKind::RateLimitedFailure,
            ErrorKind::DurabilityWriteInProgress,
        ] {
            assert!(
                matches!(map_error(&kind, true), KvError::Unavailable(_)),
                "{kind:?}"
            );
        }
        for kind in [
            ErrorKind::AuthenticationFailure,
            ErrorKind::BucketNotFound,
            ErrorKind::ScopeNotFound,
            ErrorKind::CollectionNotFound,
            ErrorKind::InvalidArgument(InvalidArgumentErrorKind::new(None, "bad key")),
            ErrorKind::FeatureNotAvailable(FeatureNotAvailableErrorKind::new("x", None)),
            ErrorKind::DurabilityImpossible,
        ] {
            let mapped = map_error(&kind, true);
            assert!(matches!(mapped, KvError::Refused(_)), "{kind:?}");
            assert!(!mapped.is_transient());
        }
    }

    #[test]
    fn errors_built_by_the_sdk_map_through_their_kind() {
        let e = SdkError::new(ErrorKind::CasMismatch);
        assert_eq!(map_error(e.kind(), true), KvError::CasMismatch);
    }

    #[test]
    fn the_password_never_prints() {
        let settings = CouchbaseSettings {
            connstr: "couchbase://db".into(),
            username: "notesync".into(),
            password: Secret::from("hunter2".to_string()),
            bucket: "notes".into(),
            scope: "notesync".into(),
            collection: "sync".into(),
            timeout: Duration::from_secs(2),
            concurrency: 16,
            durable: false,
        };
        let printed = format!("{settings:?} {}", settings.password);
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("<redacted>"));
        assert_eq!(settings.password.expose(), "hunter2");
    }
}
