//! The [`SyncStore`] contract suite against every store (memory, embedded,
//! and the KV store over its fake), plus what only a persistent store
//! promises: data survives closing and reopening it.

use async_trait::async_trait;
use tempfile::TempDir;

use notesync::domain::UserId;
use notesync::server::embedded::EmbeddedStore;
use notesync::store::contract::{self, create, delete, edit, feed, user, NOW};
use notesync::store::kv::FakeCluster;
use notesync::store::{MemoryStore, Quota, StoreError, SyncStore};
use notesync::sync::merge::Strategy;
use notesync::sync::protocol::{Change, ChangeResult, Checkpoint, PullResponse};

/// An embedded store in its own temporary directory, removed on drop.
struct TempEmbedded {
    store: EmbeddedStore,
    _dir: TempDir,
}

impl TempEmbedded {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = EmbeddedStore::open(dir.path()).expect("store opens");
        Self { store, _dir: dir }
    }
}

#[async_trait]
impl SyncStore for TempEmbedded {
    async fn apply_batch_within(
        &self,
        user: &UserId,
        changes: &[Change],
        strategy: Strategy,
        now_ms: u64,
        quota: Quota,
    ) -> Result<Vec<ChangeResult>, StoreError> {
        self.store
            .apply_batch_within(user, changes, strategy, now_ms, quota)
            .await
    }

    async fn changes_since(
        &self,
        user: &UserId,
        checkpoint: Checkpoint,
        download_head: Option<u64>,
        limit: u32,
    ) -> Result<PullResponse, StoreError> {
        self.store
            .changes_since(user, checkpoint, download_head, limit)
            .await
    }

    async fn purge_expired(&self, older_than_ms: u64) -> Result<u64, StoreError> {
        self.store.purge_expired(older_than_ms).await
    }

    async fn feed_head(&self, user: &UserId) -> Result<u64, StoreError> {
        self.store.feed_head(user).await
    }
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract::run_all(&|| Box::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn kv_store_over_the_fake_keeps_the_contract() {
    contract::run_all(&|| {
        Box::new(crate::kv_store::store(
            &FakeCluster::new(crate::kv_store::CLOCK_START),
            "n1",
        ))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_keeps_the_contract() {
    contract::run_all(&|| Box::new(TempEmbedded::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let alice = user("alice");
    let (before, last_seq) = {
        let store = EmbeddedStore::open(dir.path()).expect("store opens");
        let changes = [
            create(1, 1, "kept"),
            create(2, 2, "doomed"),
            create(3, 3, "old"),
        ];
        store
            .apply_batch(&alice, &changes, Strategy::Merge, NOW)
            .await
            .expect("apply");
        store
            .apply_batch(&alice, &[delete(4, 2, 1)], Strategy::Merge, NOW)
            .await
            .expect("apply");
        store.purge_expired(NOW + 1).await.expect("purge");
        store
            .apply_batch(
                &alice,
                &[edit(5, 1, 1, Some("kept"), "kept, edited")],
                Strategy::Merge,
                NOW + 2,
            )
            .await
            .expect("apply");
        let entries = feed(&store, &alice, 0).await;
        let last = entries.last().expect("entries").seq;
        (entries, last)
    };
    let store = EmbeddedStore::open(dir.path()).expect("store reopens");
    assert_eq!(feed(&store, &alice, 0).await, before, "the feed survived");
    let again = store
        .apply_batch(
            &alice,
            &[edit(5, 1, 1, Some("kept"), "kept, edited")],
            Strategy::Merge,
            NOW + 3,
        )
        .await
        .expect("apply");
    assert_eq!(
        again,
        vec![ChangeResult::Duplicate],
        "mutation ids survived"
    );
    let next = store
        .apply_batch(&alice, &[create(6, 6, "new")], Strategy::Merge, NOW + 3)
        .await
        .expect("apply");
    assert!(
        matches!(next[0], ChangeResult::Applied { seq, .. } if seq > last_seq),
        "seqs keep increasing: {next:?}"
    );
    let stale = store
        .changes_since(&alice, Checkpoint(1), None, 10)
        .await
        .expect("pull");
    assert_eq!(
        stale,
        PullResponse::ResyncRequired,
        "the purge watermark survived"
    );
}

#[tokio::test]
async fn a_second_open_of_the_same_file_fails_cleanly() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let _first = EmbeddedStore::open(dir.path()).expect("store opens");
    let second = EmbeddedStore::open(dir.path());
    assert!(
        matches!(second, Err(StoreError::Unavailable(_))),
        "{second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_get_distinct_seqs_and_a_contiguous_feed() {
    let store = std::sync::Arc::new(TempEmbedded::new());
    let alice = user("alice");
    let mut tasks = Vec::new();
    for writer in 0..8u8 {
        let store = std::sync::Arc::clone(&store);
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            let changes: Vec<Change> = (0..5u8)
                .map(|i| {
                    let n = writer * 5 + i;
                    create(u32::from(n) + 1, n + 1, "x")
                })
                .collect();
            store
                .apply_batch(&alice, &changes, Strategy::Merge, NOW)
                .await
                .expect("apply")
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        for result in task.await.expect("task") {
            match result {
                ChangeResult::Applied { seq, .. } => seqs.push(seq),
                other => panic!("expected applied, got {other:?}"),
            }
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>());
    let entries = feed(&*store, &alice, 0).await;
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
}

#[tokio::test]
async fn embedded_store_keeps_the_accounts_contract() {
    let dirs: std::sync::Mutex<Vec<TempDir>> = std::sync::Mutex::new(Vec::new());
    notesync::store::accounts::contract::run_all(&|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = EmbeddedStore::open(dir.path()).expect("store opens");
        dirs.lock().expect("lock").push(dir);
        Box::new(store)
    })
    .await;
}

#[tokio::test]
async fn embedded_sessions_and_users_survive_a_restart() {
    use notesync::store::{AccountStore, UserRecord};
    let dir = tempfile::tempdir().expect("temporary directory");
    let user = UserRecord {
        id: UserId::parse("u1").expect("id"),
        name: "ann".into(),
        password_hash: "$argon2id$x".into(),
        created_at: 1,
    };
    {
        let store = EmbeddedStore::open(dir.path()).expect("store opens");
        store.create_user(&user).await.expect("user");
        store
            .save_session("s1", None, b"data", 10_000)
            .await
            .expect("session");
    }
    let store = EmbeddedStore::open(dir.path()).expect("store reopens");
    assert_eq!(store.user_by_name("ann").await.expect("read"), Some(user));
    assert_eq!(
        store
            .load_session("s1", 5_000)
            .await
            .expect("read")
            .as_deref(),
        Some(&b"data"[..])
    );
}

#[tokio::test]
async fn embedded_sessions_stored_under_their_id_move_to_their_key_on_open() {
    use notesync::server::auth::session_key_of;
    use notesync::store::AccountStore;
    let dir = tempfile::tempdir().expect("temporary directory");
    let id = "KbqEm2yXGX3aOGNjNVCRrg";
    let record = serde_json::json!({
        "id": id,
        "data": { "account": { "id": "u7", "name": "ann" } },
        "expiry_date": [2030, 1, 0, 0, 0, 0, 0, 0, 0],
    });
    let bytes = serde_json::to_vec(&record).expect("json");
    {
        // The table as stores before hashed keys wrote it.
        let legacy: redb::TableDefinition<&str, (u64, &[u8])> =
            redb::TableDefinition::new("sessions");
        let db = redb::Database::create(dir.path().join(notesync::server::embedded::FILE_NAME))
            .expect("database");
        let txn = db.begin_write().expect("write");
        txn.open_table(legacy)
            .expect("table")
            .insert(id, (10_000u64, bytes.as_slice()))
            .expect("insert");
        txn.commit().expect("commit");
    }
    let store = EmbeddedStore::open(dir.path()).expect("store opens");
    assert_eq!(store.load_session(id, 5_000).await.expect("read"), None);
    assert_eq!(
        store
            .load_session(&session_key_of(id), 5_000)
            .await
            .expect("read")
            .map(|b| serde_json::from_slice::<serde_json::Value>(&b).expect("json")),
        Some(serde_json::json!({
            "data": { "account": { "id": "u7", "name": "ann" } },
            "expiry_date": [2030, 1, 0, 0, 0, 0, 0, 0, 0],
        })),
        "moved under its key, without its id"
    );
    let user = UserId::parse("u7").expect("id");
    assert_eq!(
        store.end_sessions(&user, None).await.expect("end"),
        1,
        "and listed as ann's"
    );
    assert_eq!(
        store
            .load_session(&session_key_of(id), 5_000)
            .await
            .expect("read"),
        None
    );
}

#[tokio::test]
async fn kv_store_over_the_fake_keeps_the_accounts_contract() {
    notesync::store::accounts::contract::run_all(&|| {
        Box::new(crate::kv_store::store(
            &FakeCluster::new(crate::kv_store::CLOCK_START),
            "n1",
        ))
    })
    .await;
}
