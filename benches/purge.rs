//! How long a push waits behind the purge of expired tombstones on the
//! embedded store: 100,000 tombstones (of 10 users) are purged in the
//! background while one-change pushes of another user run back to back,
//! each timed. Run for the store's chunk size and, for comparison, with the
//! whole purge in one transaction (what the store did before purging in
//! chunks), and, as the baseline, the same pushes with no purge at all.
//! Three repetitions each; the medians are printed.
//!
//! `cargo bench --bench purge --no-default-features --features ssr`
//! (`PURGE_TOMBSTONES=20000` for a quicker run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use notesync::domain::{ClientId, MutationId, NoteDraft, NoteId, Revision, UserId};
use notesync::server::embedded::{EmbeddedStore, PURGE_CHUNK};
use notesync::store::SyncStore;
use notesync::sync::hlc::Hlc;
use notesync::sync::merge::Strategy;
use notesync::sync::protocol::{Change, ChangeOp};

const OLD_MS: u64 = 1_600_000_000_000;
const NOW_MS: u64 = 1_700_000_000_000;
const USERS: u32 = 10;

fn id_bytes(n: u32, tag: u8) -> [u8; 10] {
    let b = n.to_be_bytes();
    [tag, b[0], b[1], b[2], b[3], 0, 0, 0, 0, 1]
}

fn change(n: u32, tag: u8, delete: bool) -> Change {
    let draft = NoteDraft {
        title: format!("note {n}"),
        body: "b".repeat(200),
        tags: vec![],
        pinned: false,
    };
    Change {
        mutation_id: MutationId::new(OLD_MS, id_bytes(n * 2 + u32::from(delete), tag)),
        note_id: NoteId::new(OLD_MS, id_bytes(n, tag)),
        base_rev: Revision(u64::from(delete)),
        base: delete.then(|| draft.clone()),
        op: if delete {
            ChangeOp::Delete
        } else {
            ChangeOp::Upsert(draft)
        },
        hlc: Hlc {
            wall_ms: OLD_MS,
            counter: 0,
            client: ClientId::new(OLD_MS, [1; 10]),
        },
        created_at: OLD_MS,
    }
}

/// A store holding `tombstones` tombstones written at `OLD_MS`.
async fn store_with(tombstones: u32) -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedStore::open(dir.path()).expect("the store opens");
    let per_user = tombstones / USERS;
    for u in 0..USERS {
        let user = UserId::parse(&format!("u{u}")).expect("id");
        let ids: Vec<u32> = (0..per_user).collect();
        for batch in ids.chunks(2_000) {
            for delete in [false, true] {
                let changes: Vec<Change> = batch
                    .iter()
                    .map(|&n| change(n, 10 + u as u8, delete))
                    .collect();
                store
                    .apply_batch(&user, &changes, Strategy::Merge, OLD_MS)
                    .await
                    .expect("applied");
            }
        }
    }
    (store, dir)
}

struct Run {
    purge: Duration,
    pushes: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// Pushes during a purge in chunks of `chunk` records, or, with `None`,
/// during three seconds without a purge (the baseline: what a push costs
/// on this machine at this moment).
async fn run(tombstones: u32, chunk: Option<usize>) -> Run {
    let (store, _dir) = store_with(tombstones).await;
    let store = Arc::new(store);
    let purging = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let started = Instant::now();
            match chunk {
                Some(chunk) => {
                    let removed = store
                        .purge_in_chunks(OLD_MS + 1, chunk)
                        .await
                        .expect("purged");
                    assert!(removed >= u64::from(tombstones));
                }
                None => tokio::time::sleep(Duration::from_secs(3)).await,
            }
            started.elapsed()
        })
    };
    let writer = UserId::parse("writer").expect("id");
    let mut waits = Vec::new();
    let mut n = 0u32;
    while !purging.is_finished() {
        n += 1;
        let mut c = change(n, 1, false);
        c.hlc.wall_ms = NOW_MS;
        let started = Instant::now();
        store
            .apply_batch(&writer, &[c], Strategy::Merge, NOW_MS)
            .await
            .expect("pushed");
        waits.push(started.elapsed());
    }
    let purge = purging.await.expect("joined");
    waits.sort();
    let at = |q: f64| waits[((waits.len() as f64 - 1.0) * q) as usize];
    Run {
        purge,
        pushes: waits.len(),
        p50: at(0.5),
        p99: at(0.99),
        max: *waits.last().expect("a push"),
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    let tombstones: u32 = std::env::var("PURGE_TOMBSTONES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // PURGE_CHUNKS=500,200 compares chunk sizes; the store's is the default.
    let chunks: Vec<usize> = std::env::var("PURGE_CHUNKS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![PURGE_CHUNK]);
    let mut configs: Vec<(&str, Option<usize>)> = vec![("no purge (baseline)", None)];
    configs.extend(chunks.into_iter().map(|c| ("chunked", Some(c))));
    configs.push(("one transaction", Some(usize::MAX)));
    for (label, chunk) in configs {
        let runs: Vec<Run> = (0..3)
            .map(|_| runtime.block_on(run(tombstones, chunk)))
            .collect();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "{tombstones} tombstones, {label} (chunk {}): purge {:.0} ms, pushes during it {}, push wait p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (medians of 3; max of each run: {})",
            match chunk {
                None => "-".to_string(),
                Some(usize::MAX) => "all".to_string(),
                Some(chunk) => chunk.to_string(),
            },
            ms(median(runs.iter().map(|r| r.purge).collect())),
            runs.iter().map(|r| r.pushes).sum::<usize>() / runs.len(),
            ms(median(runs.iter().map(|r| r.p50).collect())),
            ms(median(runs.iter().map(|r| r.p99).collect())),
            ms(median(runs.iter().map(|r| r.max).collect())),
            runs.iter().map(|r| format!("{:.1}", ms(r.max))).collect::<Vec<_>>().join(", "),
        );
    }
}
