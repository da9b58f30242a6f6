//! The store contract and the concurrency suite against a real Couchbase
//! cluster, through the real adapter. KV operations only, so any cluster
//! with the Data service runs them.
//!
//! They are `#[ignore]`d, so a plain `cargo test` reports them as ignored
//! (skipped), never as passed. To run them, point them at a scratch bucket
//! (each run writes under its own key prefix and leaves its documents
//! behind):
//!
//! ```sh
//! COUCHBASE_CONNSTR=couchbase://127.0.0.1 COUCHBASE_USERNAME=notesync \
//! COUCHBASE_PASSWORD=... COUCHBASE_BUCKET=notesync-test \
//! cargo test --features ssr --test it couchbase_live -- --ignored --test-threads 1
//! ```
//!
//! Run with `--ignored` but without the variables, they fail: a skipped
//! live run must never look like a passed one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use notesync::server::config::CouchbaseArgs;
use notesync::server::couchbase::{CouchbaseKv, Secret};
use notesync::store::contract;
use notesync::store::kv::{Cas, Expiry, KvConfig, KvError, KvPort, KvSyncStore, Versioned};

use crate::kv_store::{schedule, schedules, Node, Stats};

const SKIPPED: &str = "needs a Couchbase cluster: set COUCHBASE_CONNSTR, COUCHBASE_USERNAME, \
                       COUCHBASE_PASSWORD, COUCHBASE_BUCKET and run with --ignored";

async fn connect() -> Arc<CouchbaseKv> {
    let var = |name| std::env::var(name).ok();
    let args = CouchbaseArgs {
        connstr: var("COUCHBASE_CONNSTR"),
        username: var("COUCHBASE_USERNAME"),
        password: var("COUCHBASE_PASSWORD").map(Secret::from),
        bucket: var("COUCHBASE_BUCKET"),
        scope: var("COUCHBASE_SCOPE").unwrap_or_else(|| "notesync".into()),
        collection: var("COUCHBASE_COLLECTION").unwrap_or_else(|| "sync_test".into()),
        timeout_ms: 5_000,
        durable: false,
    };
    let settings = args
        .settings()
        .unwrap_or_else(|e| panic!("{e}: this test {SKIPPED}"));
    Arc::new(
        CouchbaseKv::connect(&settings)
            .await
            .expect("the cluster accepts the connection"),
    )
}

/// A port that puts every key under a prefix of its own, so each check of
/// the contract starts from an empty store on a shared collection.
struct Prefixed {
    inner: Arc<CouchbaseKv>,
    prefix: String,
}

impl Prefixed {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl KvPort for Prefixed {
    async fn get(&self, key: &str) -> Result<Versioned, KvError> {
        self.inner.get(&self.key(key)).await
    }

    async fn get_many(&self, keys: &[String]) -> Vec<Result<Versioned, KvError>> {
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        self.inner.get_many(&keys).await
    }

    async fn insert(&self, key: &str, value: &[u8], expiry: Expiry) -> Result<Cas, KvError> {
        self.inner.insert(&self.key(key), value, expiry).await
    }

    async fn replace(
        &self,
        key: &str,
        value: &[u8],
        cas: Cas,
        expiry: Expiry,
    ) -> Result<Cas, KvError> {
        self.inner.replace(&self.key(key), value, cas, expiry).await
    }

    async fn remove(&self, key: &str, cas: Cas) -> Result<(), KvError> {
        self.inner.remove(&self.key(key), cas).await
    }

    async fn increment(&self, key: &str, delta: u64, initial: u64) -> Result<u64, KvError> {
        self.inner.increment(&self.key(key), delta, initial).await
    }

    fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }

    async fn pause(&self, ms: u64) {
        self.inner.pause(ms).await;
    }
}

impl Node for Prefixed {}

fn run_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn config(node: &str) -> KvConfig {
    let mut config = KvConfig::new(node, Duration::from_secs(90 * 24 * 3600));
    config.lease_ms = 5_000;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Couchbase cluster: set COUCHBASE_CONNSTR, COUCHBASE_USERNAME, COUCHBASE_PASSWORD, COUCHBASE_BUCKET and run with --ignored"]
async fn couchbase_keeps_the_contract() {
    let port = connect().await;
    let run = run_id();
    let checks = AtomicU64::new(0);
    contract::run_all(&|| {
        let n = checks.fetch_add(1, Ordering::Relaxed);
        Box::new(KvSyncStore::new(
            Prefixed {
                inner: Arc::clone(&port),
                prefix: format!("t{run:x}.{n}/"),
            },
            config("contract"),
        ))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Couchbase cluster: set COUCHBASE_CONNSTR, COUCHBASE_USERNAME, COUCHBASE_PASSWORD, COUCHBASE_BUCKET and run with --ignored"]
async fn couchbase_keeps_the_feed_whole_under_concurrent_writers() {
    let port = connect().await;
    let run = run_id();
    let mut total = Stats::default();
    for seed in 0..schedules(5) {
        let prefix = format!("c{run:x}.{seed}/");
        let make = |node: &str, _fault_seed: u64| {
            KvSyncStore::new(
                Prefixed {
                    inner: Arc::clone(&port),
                    prefix: prefix.clone(),
                },
                config(node),
            )
        };
        let stats = schedule(seed, 4, 6, contract::user("alice"), &make, &|| {})
            .await
            .unwrap_or_else(|e| panic!("schedule {seed}: {e}"));
        total.acks += stats.acks;
        total.pages += stats.pages;
    }
    eprintln!(
        "live cluster: {} acknowledged changes, {} pages read",
        total.acks, total.pages
    );
    assert!(total.acks > 0);
}
