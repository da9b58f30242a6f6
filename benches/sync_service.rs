//! Server throughput of the two sync operations, through the real
//! [`SyncService`] (validation, the batch algorithm, the store):
//! - `push`: new-note changes per second, in batches of 1, 100, 500 and 2,000
//!   (the browser's batch);
//! - `pull`: feed entries per second, in pages of 1, 100, 500 and 2,000, read from a
//!   feed of 10,000 notes both from checkpoint 0 (a new device, or a resync)
//!   and from the middle of the feed (a device catching up);
//!
//! on the embedded store (redb in a temporary directory, every batch one
//! durable write transaction) and on the Couchbase algorithm over the
//! in-memory KV port, which counts the algorithm's own cost without any
//! network (a real cluster adds a round trip per KV call it cannot batch).
//! The in-memory store is the baseline of the batch algorithm alone.
//!
//! Notes are shaped like the browser benchmark's: a 40-character title, a
//! body of about 1 KB and two tags.
//!
//! `cargo bench --bench sync_service --no-default-features --features ssr`;
//! the figures are recorded in the README.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use notesync::domain::{ClientId, MutationId, NoteDraft, NoteId, Revision, UserId};
use notesync::server::embedded::EmbeddedStore;
use notesync::server::service::SyncService;
use notesync::store::kv::{FakeCluster, KvConfig, KvSyncStore};
use notesync::store::{MemoryStore, SyncStore};
use notesync::sync::hlc::Hlc;
use notesync::sync::merge::Strategy;
use notesync::sync::protocol::{
    Change, ChangeOp, Checkpoint, PullRequest, PullResponse, PushRequest, PROTOCOL_VERSION,
};

const START_MS: u64 = 1_700_000_000_000;
const RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
const BATCHES: [usize; 4] = [1, 100, 500, 2000];
const FEED_NOTES: usize = 10_000;

/// A store under test; the directory keeps the embedded store's files alive.
struct Subject {
    name: &'static str,
    service: SyncService,
    _dir: Option<tempfile::TempDir>,
}

fn subjects() -> Vec<Subject> {
    let service = |store: Arc<dyn SyncStore>| {
        SyncService::new(store, Strategy::Merge, RETENTION).with_clock(Arc::new(|| START_MS))
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let embedded = EmbeddedStore::open(dir.path()).expect("the embedded store opens");
    let cluster = FakeCluster::new(START_MS);
    let kv = KvSyncStore::new(cluster.node(), KvConfig::new("bench", RETENTION));
    vec![
        Subject {
            name: "memory",
            service: service(Arc::new(MemoryStore::new())),
            _dir: None,
        },
        Subject {
            name: "embedded",
            service: service(Arc::new(embedded)),
            _dir: Some(dir),
        },
        Subject {
            name: "couchbase-algorithm-over-memory-kv",
            service: service(Arc::new(kv)),
            _dir: None,
        },
    ]
}

fn client() -> ClientId {
    ClientId::new(START_MS, [7; 10])
}

/// Ids unique across the whole run: `n` in the random part.
fn ids(n: u64) -> (NoteId, MutationId) {
    let mut random = [0u8; 10];
    random[2..].copy_from_slice(&n.to_be_bytes());
    (
        NoteId::new(START_MS, random),
        MutationId::new(START_MS, random),
    )
}

fn body(n: u64) -> String {
    let line = format!("Note {n}: the quick brown fox jumps over the lazy dog, again.\n");
    line.repeat(1024 / line.len() + 1)
}

fn new_note(n: u64) -> Change {
    let (note_id, mutation_id) = ids(n);
    Change {
        mutation_id,
        note_id,
        base_rev: Revision::NEW,
        base: None,
        op: ChangeOp::Upsert(NoteDraft {
            title: format!("Meeting notes and ideas, number {n:>10}"),
            body: body(n),
            tags: vec!["work".into(), "ideas".into()],
            pinned: false,
        }),
        hlc: Hlc {
            wall_ms: START_MS,
            counter: 0,
            client: client(),
        },
        created_at: START_MS,
    }
}

fn push_request(first: u64, count: usize) -> PushRequest {
    PushRequest {
        protocol: PROTOCOL_VERSION,
        client_id: client(),
        changes: (first..first + count as u64).map(new_note).collect(),
        account: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn push(c: &mut Criterion) {
    let rt = runtime();
    let user = UserId::parse("bench").expect("a valid user id");
    let mut group = c.benchmark_group("push");
    for subject in subjects() {
        let next = AtomicU64::new(0);
        for batch in BATCHES {
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(
                BenchmarkId::new(subject.name, batch),
                &batch,
                |b, &batch| {
                    b.iter_batched(
                        || push_request(next.fetch_add(batch as u64, Ordering::Relaxed), batch),
                        |request| {
                            let response = rt
                                .block_on(subject.service.push(&user, request))
                                .expect("the push is accepted");
                            black_box(response)
                        },
                        criterion::BatchSize::SmallInput,
                    );
                },
            );
        }
    }
    group.finish();
}

fn pull(c: &mut Criterion) {
    let rt = runtime();
    let user = UserId::parse("bench").expect("a valid user id");
    let mut group = c.benchmark_group("pull");
    for subject in subjects() {
        for first in (0..FEED_NOTES as u64).step_by(500) {
            rt.block_on(subject.service.push(&user, push_request(first, 500)))
                .expect("seeding is accepted");
        }
        for (from, label) in [(0, "from-0"), (FEED_NOTES as u64 / 2, "from-middle")] {
            for limit in BATCHES {
                let request = PullRequest {
                    protocol: PROTOCOL_VERSION,
                    checkpoint: Checkpoint(from),
                    limit: limit as u32,
                    download_head: None,
                    account: None,
                };
                group.throughput(Throughput::Elements(limit as u64));
                group.bench_with_input(
                    BenchmarkId::new(format!("{}/{label}", subject.name), limit),
                    &request,
                    |b, request| {
                        b.iter(|| {
                            let page = rt
                                .block_on(subject.service.pull(&user, request.clone()))
                                .expect("the pull is answered");
                            assert!(
                                matches!(&page, PullResponse::Page { entries, .. } if entries.len() == limit),
                                "a full page"
                            );
                            black_box(page)
                        });
                    },
                );
            }
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = push, pull
}
criterion_main!(benches);
