//! The KV sync store over the fault-injecting fake (DESIGN §6): what only a
//! store without transactions has to prove.
//!
//! - Every step of a batch, faulted: a crash (before or after the call
//!   applied) at each KV call in turn, and each kind of timeout at each call
//!   in turn. A crashed batch is finished by another server after the lease
//!   expires; a timed-out one finishes by itself. Either way nothing is lost,
//!   nothing applies twice, and the feed from any earlier checkpoint shows it.
//! - The concurrency suite: N writers (each its own server node with random
//!   crashes, timeouts that did or did not apply or land late) push batches
//!   for one user while a reader pulls continuously. Checked on every page:
//!   strictly increasing seqs above the checkpoint, no regression, and no
//!   gap (an acknowledged change at or below the checkpoint is in the
//!   replica unless the note has moved past the checkpoint since). Checked at
//!   the end: every seq up to `committed` has a log slot, the replica equals
//!   the server, every acknowledged change is on its note's chain of applied
//!   changes, and every note's revision is the length of that chain.
//!
//! Schedules: `KV_SCHEDULES` when set (thousands for a long run), else a CI
//! default. Each schedule is seeded; a failure names its seed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notesync::domain::{NoteId, UserId};
use notesync::store::contract::{self, create, delete, edit, feed, note_id, user, NOW};
use notesync::store::kv::model::{head_key, mutation_key, note_key, slot_key, HeadDoc, SlotDoc};
use notesync::store::kv::{
    FakeCluster, FakeKv, Fault, FaultRates, KvConfig, KvError, KvPort, KvSyncStore,
};
use notesync::store::SyncStore;
use notesync::sync::apply::StoredNote;
use notesync::sync::merge::Strategy;
use notesync::sync::protocol::{
    Change, ChangeOp, ChangeResult, Checkpoint, FeedEntry, PullResponse,
};

const RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
pub const CLOCK_START: u64 = 1_000_000;

pub fn store(cluster: &FakeCluster, node: &str) -> KvSyncStore<FakeKv> {
    let mut config = KvConfig::new(node, RETENTION);
    config.lease_ms = 30_000;
    // Waiting writers move the fake's clock, so a generous wait still ends.
    config.lease_wait_ms = 3_600_000;
    config.window = 4;
    KvSyncStore::new(cluster.node(), config)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    serde_json::from_slice(bytes).expect("a document the store wrote")
}

fn peek<T: serde::de::DeserializeOwned>(cluster: &FakeCluster, key: &str) -> Option<T> {
    cluster.peek(key).map(|b| decode(&b))
}

// ---------------------------------------------------------------------------
// Every step of a batch, faulted

const ONE: &str = "one\n";
const MORE: &str = "one\nmore\n";
const FINAL: &str = "one\nmore\nand more\n";

fn second_batch() -> Vec<Change> {
    vec![
        edit(3, 1, 1, Some(ONE), MORE),
        delete(4, 2, 1),
        create(5, 3, "three\n"),
    ]
}

/// Runs the three-batch story with `fault` injected at the `n`-th KV call
/// of the second batch; answers the second batch's outcome.
async fn faulted_story(n: u64, fault: Fault) -> Result<Vec<ChangeResult>, String> {
    let alice = user("alice");
    let cluster = FakeCluster::new(CLOCK_START);
    let a = store(&cluster, "a");
    a.apply_batch(
        &alice,
        &[create(1, 1, ONE), create(2, 2, "two\n")],
        Strategy::Merge,
        NOW,
    )
    .await
    .map_err(|e| format!("first batch: {e}"))?;
    let (_, after_first, _) = contract::page(&a, &alice, 0, 10).await;
    a.port().fail_at(a.port().calls() + n, fault);
    let second = a
        .apply_batch(&alice, &second_batch(), Strategy::Merge, NOW)
        .await;
    if !matches!(fault, Fault::Crash { .. }) && second.is_err() {
        return Err(format!(
            "one {fault:?} at call {n} failed the batch: {second:?}"
        ));
    }
    a.port().restart();

    // Another server takes the retry (after the crashed lease expires) and
    // one more change.
    let b = store(&cluster, "b");
    let mut retry = second_batch();
    retry.push(edit(6, 1, 2, Some(MORE), FINAL));
    let third = b
        .apply_batch(&alice, &retry, Strategy::Merge, NOW)
        .await
        .map_err(|e| format!("retry: {e}"))?;
    for (i, r) in third[..3].iter().enumerate() {
        let ok = match &second {
            Ok(_) => *r == ChangeResult::Duplicate,
            Err(_) => matches!(r, ChangeResult::Duplicate | ChangeResult::Applied { .. }),
        };
        if !ok {
            return Err(format!(
                "retried change {i} answered {r:?} (first try {second:?})"
            ));
        }
    }
    if !matches!(third[3], ChangeResult::Applied { rev, .. } if rev.0 == 3) {
        return Err(format!("the last edit answered {:?}", third[3]));
    }

    let entries = feed(&b, &alice, 0).await;
    let got: Vec<(NoteId, u64, bool, &str)> = entries
        .iter()
        .map(|e| {
            (
                e.note.id,
                e.note.rev.0,
                e.note.deleted,
                e.note.body.as_str(),
            )
        })
        .collect();
    let want = vec![
        (note_id(2), 2, true, ""),
        (note_id(3), 1, false, "three\n"),
        (note_id(1), 3, false, FINAL),
    ];
    if got != want {
        return Err(format!("final feed {got:?}"));
    }
    let since = feed(&b, &alice, after_first.0).await;
    if since != entries {
        return Err("a reader at the first checkpoint misses changes".into());
    }
    let again = b
        .apply_batch(&alice, &retry, Strategy::Merge, NOW)
        .await
        .map_err(|e| e.to_string())?;
    if again.iter().any(|r| *r != ChangeResult::Duplicate) {
        return Err(format!("mutation ids were forgotten: {again:?}"));
    }
    let head: HeadDoc = peek(&cluster, &head_key(&alice)).ok_or("no head")?;
    if head.lease.is_some() {
        return Err("the lease was not released".into());
    }
    Ok(second.unwrap_or_default())
}

/// How many KV calls a clean second batch makes.
async fn calls_of_a_clean_second_batch() -> u64 {
    let alice = user("alice");
    let cluster = FakeCluster::new(CLOCK_START);
    let a = store(&cluster, "a");
    a.apply_batch(
        &alice,
        &[create(1, 1, ONE), create(2, 2, "two\n")],
        Strategy::Merge,
        NOW,
    )
    .await
    .expect("first batch");
    let before = a.port().calls();
    a.apply_batch(&alice, &second_batch(), Strategy::Merge, NOW)
        .await
        .expect("second batch");
    a.port().calls() - before
}

#[tokio::test]
async fn a_crash_at_any_step_loses_nothing_and_applies_nothing_twice() {
    let steps = calls_of_a_clean_second_batch().await;
    assert!(steps > 10, "a batch of three takes {steps} calls");
    for n in 1..=steps + 1 {
        for after_apply in [false, true] {
            let fault = Fault::Crash { after_apply };
            if let Err(e) = faulted_story(n, fault).await {
                panic!("{fault:?} at call {n} of {steps}: {e}");
            }
        }
    }
}

#[tokio::test]
async fn a_timeout_at_any_step_is_resolved_within_the_batch() {
    let steps = calls_of_a_clean_second_batch().await;
    for n in 1..=steps + 1 {
        for fault in [
            Fault::AmbiguousApplied,
            Fault::AmbiguousLost,
            Fault::AmbiguousLate,
            Fault::Unavailable,
        ] {
            match faulted_story(n, fault).await {
                Ok(results) => assert!(
                    results
                        .iter()
                        .all(|r| matches!(r, ChangeResult::Applied { .. })),
                    "{fault:?} at call {n}: {results:?}"
                ),
                Err(e) => panic!("{fault:?} at call {n} of {steps}: {e}"),
            }
        }
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_its_slots_rolled_forward() {
    let alice = user("alice");
    // Find the crash point that leaves the next batch's slot in the log and
    // nothing committed: right after the slot insert applied.
    let mut found = None;
    for n in 1..40 {
        let cluster = FakeCluster::new(CLOCK_START);
        let a = store(&cluster, "a");
        a.apply_batch(&alice, &[create(1, 1, ONE)], Strategy::Merge, NOW)
            .await
            .expect("first batch");
        a.port()
            .fail_at(a.port().calls() + n, Fault::Crash { after_apply: true });
        let r = a
            .apply_batch(&alice, &[create(2, 2, "two\n")], Strategy::Merge, NOW)
            .await;
        a.port().restart();
        let slot: Option<SlotDoc> = peek(&cluster, &slot_key(&alice, 2));
        let note_written = cluster.peek(&note_key(&alice, note_id(2))).is_some();
        if r.is_err() && slot.is_some() && !note_written {
            found = Some((cluster, a));
            break;
        }
    }
    let (cluster, a) = found.expect("a crash point between the slot and the note");
    let head: HeadDoc = peek(&cluster, &head_key(&alice)).expect("head");
    assert_eq!(head.committed, 1, "the crashed batch is not committed");
    assert!(
        head.lease.is_some(),
        "the crashed writer still holds the lease"
    );
    let (entries, _, _) = contract::page(&a, &alice, 0, 10).await;
    assert_eq!(entries.len(), 1, "readers never see an uncommitted slot");

    // A live lease blocks another writer that will not wait.
    let mut impatient = KvConfig::new("b", RETENTION);
    impatient.lease_ms = 30_000;
    impatient.lease_wait_ms = 1_000;
    let b = KvSyncStore::new(cluster.node(), impatient);
    let blocked = b
        .apply_batch(&alice, &[create(3, 3, "three\n")], Strategy::Merge, NOW)
        .await;
    assert!(blocked.is_err(), "took a live lease: {blocked:?}");

    // Once it expires, the next writer rolls the slot forward first.
    cluster.advance(30_000);
    let r = b
        .apply_batch(
            &alice,
            &[create(2, 2, "two\n"), create(3, 3, "three\n")],
            Strategy::Merge,
            NOW,
        )
        .await
        .expect("after expiry");
    assert_eq!(
        r[0],
        ChangeResult::Duplicate,
        "the rolled-forward change counts"
    );
    assert!(
        matches!(r[1], ChangeResult::Applied { seq: 3, .. }),
        "{:?}",
        r[1]
    );
    let ids: Vec<NoteId> = feed(&b, &alice, 1)
        .await
        .iter()
        .map(|e| e.note.id)
        .collect();
    assert_eq!(ids, vec![note_id(2), note_id(3)]);
}

#[tokio::test]
async fn a_slot_decided_against_an_old_version_is_void() {
    // A zombie's slot (decided before another writer changed the note)
    // appears after `committed`: the next holder must not apply it.
    let alice = user("alice");
    let cluster = FakeCluster::new(CLOCK_START);
    let a = store(&cluster, "a");
    a.apply_batch(&alice, &[create(1, 1, ONE)], Strategy::Merge, NOW)
        .await
        .expect("create");
    a.apply_batch(
        &alice,
        &[edit(2, 1, 1, Some(ONE), MORE)],
        Strategy::Merge,
        NOW,
    )
    .await
    .expect("edit");
    let stale: SlotDoc = peek(&cluster, &slot_key(&alice, 2)).expect("slot 2");
    let zombie = SlotDoc {
        token: "zombie:0".into(),
        prev_seq: 1,
        mutation_id: notesync::store::contract::mutation_id(99),
        note: StoredNote {
            seq: 3,
            ..stale.note.clone()
        },
    };
    use notesync::store::kv::Expiry;
    cluster
        .node()
        .insert(
            &slot_key(&alice, 3),
            &serde_json::to_vec(&zombie).expect("json"),
            Expiry::Never,
        )
        .await
        .expect("insert");
    let r = a
        .apply_batch(&alice, &[create(7, 7, "seven\n")], Strategy::Merge, NOW)
        .await
        .expect("apply");
    assert!(
        matches!(r[0], ChangeResult::Applied { seq: 4, .. }),
        "{r:?}"
    );
    let note: StoredNote = peek(&cluster, &note_key(&alice, note_id(1))).expect("note");
    assert_eq!(
        (note.seq, note.note.body.as_str()),
        (2, MORE),
        "the void slot changed the note"
    );
    assert!(cluster
        .peek(&mutation_key(&alice, zombie.mutation_id))
        .is_none());
    let seqs: Vec<u64> = feed(&a, &alice, 0).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![2, 4], "readers skip the void slot");
}

#[tokio::test]
async fn checkpoints_below_the_log_floor_are_served_from_the_note_index() {
    let alice = user("alice");
    let cluster = FakeCluster::new(CLOCK_START);
    let s = store(&cluster, "a");
    let old: Vec<Change> = (1..=3).map(|n| create(u32::from(n), n, "old\n")).collect();
    s.apply_batch(&alice, &old, Strategy::Merge, NOW - 10)
        .await
        .expect("old batch");
    s.apply_batch(&alice, &[create(4, 4, "new\n")], Strategy::Merge, NOW + 10)
        .await
        .expect("new batch");
    assert_eq!(
        s.purge_expired(NOW).await.expect("purge"),
        3,
        "three mutation ids"
    );
    let head: HeadDoc = peek(&cluster, &head_key(&alice)).expect("head");
    assert_eq!((head.log_floor, head.purge_watermark), (3, 0));
    assert!(
        cluster.peek(&slot_key(&alice, 2)).is_none(),
        "old slots are gone"
    );
    // Below the floor: from the index; at or above it: from the log.
    let ids = |entries: Vec<FeedEntry>| entries.iter().map(|e| e.note.id).collect::<Vec<_>>();
    assert_eq!(
        ids(feed(&s, &alice, 1).await),
        vec![note_id(2), note_id(3), note_id(4)]
    );
    let (entries, checkpoint, has_more) = contract::page(&s, &alice, 1, 1).await;
    assert_eq!(
        (ids(entries), checkpoint, has_more),
        (vec![note_id(2)], Checkpoint(2), true)
    );
    assert_eq!(ids(feed(&s, &alice, 3).await), vec![note_id(4)]);
}

#[tokio::test]
async fn a_tombstone_expired_before_the_purge_forces_a_resync_never_a_gap() {
    let alice = user("alice");
    let cluster = FakeCluster::new(CLOCK_START);
    let s = store(&cluster, "a");
    s.apply_batch(
        &alice,
        &[create(1, 1, "kept\n"), create(2, 2, "doomed\n")],
        Strategy::Merge,
        NOW,
    )
    .await
    .expect("create");
    let (_, checkpoint, _) = contract::page(&s, &alice, 0, 10).await;
    s.apply_batch(&alice, &[delete(3, 2, 1)], Strategy::Merge, NOW)
        .await
        .expect("delete");
    // The purge never ran; the backstop expiry (twice the retention) did.
    cluster.advance(2 * u64::try_from(RETENTION.as_millis()).expect("fits") + 1);
    assert!(
        cluster.peek(&note_key(&alice, note_id(2))).is_none(),
        "the tombstone expired"
    );
    assert!(
        cluster.peek(&note_key(&alice, note_id(1))).is_some(),
        "live notes never expire"
    );
    let stale = s
        .changes_since(&alice, checkpoint, None, 10)
        .await
        .expect("pull");
    assert_eq!(
        stale,
        PullResponse::ResyncRequired,
        "the replica would miss the delete"
    );
    let ids: Vec<NoteId> = feed(&s, &alice, 0)
        .await
        .iter()
        .map(|e| e.note.id)
        .collect();
    assert_eq!(ids, vec![note_id(1)], "a full resync still works");
}

/// A purge racing a pull, at every offset: the reader either sees the
/// delete or is told to resync, never a page that passes it silently.
#[test]
fn a_purge_racing_a_pull_never_hides_a_delete() {
    let alice = user("alice");
    let mut outcomes = std::collections::BTreeSet::new();
    // Negative offsets hold the reader back, positive ones the purger; a
    // slow reader lets several purge steps pass between two of its reads.
    for (offset, latency) in (-150i32..40).flat_map(|o| [(o, 0u32), (o, 12)]) {
        let (reader_delay, purger_delay) =
            (offset.min(0).unsigned_abs(), offset.max(0).unsigned_abs());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let outcome = rt.block_on(async {
            let cluster = FakeCluster::new(CLOCK_START);
            let writer = store(&cluster, "w");
            let batch = [create(1, 1, "a\n"), create(2, 2, "b\n")];
            writer
                .apply_batch(&alice, &batch, Strategy::Merge, NOW - 10)
                .await
                .expect("create");
            writer
                .apply_batch(
                    &alice,
                    &[delete(3, 2, 1), create(4, 3, "c\n")],
                    Strategy::Merge,
                    NOW - 10,
                )
                .await
                .expect("delete");
            let purger = store(&cluster, "p");
            let purge = tokio::spawn(async move {
                for _ in 0..purger_delay {
                    tokio::task::yield_now().await;
                }
                purger.purge_expired(NOW).await.expect("purge")
            });
            let reader = store(&cluster, "r");
            reader.port().set_latency(latency);
            let alice = alice.clone();
            let pull = tokio::spawn(async move {
                for _ in 0..reader_delay {
                    tokio::task::yield_now().await;
                }
                reader
                    .changes_since(&alice, Checkpoint(1), None, 10)
                    .await
                    .expect("pull")
            });
            let response = pull.await.expect("reader");
            assert_eq!(
                purge.await.expect("purger"),
                5,
                "one tombstone, four mutation ids"
            );
            response
        });
        match outcome {
            PullResponse::ResyncRequired => {
                outcomes.insert("resync");
            }
            PullResponse::Page { entries, .. } => {
                let got: Vec<(u64, bool)> =
                    entries.iter().map(|e| (e.seq, e.note.deleted)).collect();
                assert_eq!(
                    got,
                    vec![(3, true), (4, false)],
                    "offset {offset}, latency {latency}: the delete was hidden"
                );
                outcomes.insert("page");
            }
        }
    }
    assert_eq!(outcomes.len(), 2, "the sweep never raced: {outcomes:?}");
}

// ---------------------------------------------------------------------------
// The concurrency suite, generic over the port so that it also runs on a
// live cluster (`couchbase_live`).

/// A server node in a schedule: a KV port that may need a restart after a
/// crash (the fake's nodes do; a live connection does not).
pub trait Node: KvPort + 'static {
    fn restart(&self) {}
}

impl Node for FakeKv {
    fn restart(&self) {
        FakeKv::restart(self);
    }
}

/// An acknowledged change: the writer got `Applied`/`Merged` for it.
#[derive(Debug, Clone, Copy)]
struct Ack {
    note: NoteId,
    seq: u64,
    rev: u64,
}

struct Shared {
    acks: Mutex<Vec<Ack>>,
    done: AtomicBool,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const NOTES: u8 = 5;

/// Reads a document the store wrote, riding out transient failures.
async fn read_doc<T: serde::de::DeserializeOwned, P: Node>(port: &P, key: &str) -> Option<T> {
    for _ in 0..1_000 {
        match port.get(key).await {
            Ok(v) => return Some(decode(&v.value)),
            Err(KvError::NotFound) => return None,
            Err(_) => port.restart(),
        }
    }
    panic!("{key} stayed unreadable");
}

async fn writer<P: Node>(
    store: Arc<KvSyncStore<P>>,
    shared: Arc<Shared>,
    alice: UserId,
    w: u32,
    batches: u32,
    seed: u64,
) -> Result<u32, String> {
    let mut rng = seed;
    let mut known: BTreeMap<NoteId, (u64, String)> = BTreeMap::new();
    let mut failures = 0u32;
    for b in 0..batches {
        let size = 1 + splitmix(&mut rng) % 3;
        let changes: Vec<Change> = (0..size)
            .map(|c| {
                let m = w * 10_000 + b * 10 + u32::try_from(c).unwrap_or(0) + 1;
                let note = 1 + u8::try_from(splitmix(&mut rng) % u64::from(NOTES)).unwrap_or(0);
                let (rev, body) = known.get(&note_id(note)).cloned().unwrap_or_default();
                match splitmix(&mut rng) % 6 {
                    0 => delete(m, note, rev),
                    _ => {
                        let text = format!("{body}w{w}b{b}c{c}\n");
                        edit(m, note, rev, (rev > 0).then_some(body.as_str()), &text)
                    }
                }
            })
            .collect();
        let mut attempts = 0;
        let results = loop {
            attempts += 1;
            match store
                .apply_batch(&alice, &changes, Strategy::Merge, NOW)
                .await
            {
                Ok(results) => break results,
                Err(_) if attempts < 200 => {
                    failures += 1;
                    store.port().restart();
                }
                Err(e) => return Err(format!("writer {w} batch {b} failed 200 times: {e}")),
            }
        };
        for (change, result) in changes.iter().zip(&results) {
            let (rev, seq) = match result {
                ChangeResult::Applied { rev, seq } | ChangeResult::Merged { rev, seq, .. } => {
                    (rev.0, *seq)
                }
                _ => continue,
            };
            shared.acks.lock().expect("acks").push(Ack {
                note: change.note_id,
                seq,
                rev,
            });
            let body = match &change.op {
                ChangeOp::Upsert(d) => d.body.clone(),
                ChangeOp::Delete => String::new(),
            };
            known.insert(change.note_id, (rev, body));
        }
    }
    Ok(failures)
}

struct Reader<P: Node> {
    store: KvSyncStore<P>,
    alice: UserId,
    checkpoint: u64,
    replica: BTreeMap<NoteId, FeedEntry>,
    pages: u64,
}

impl<P: Node> Reader<P> {
    /// Pulls one page and checks it; `Ok(has_more)`.
    async fn pull(&mut self, shared: &Shared, limit: u32) -> Result<bool, String> {
        let acked: Vec<Ack> = shared.acks.lock().expect("acks").clone();
        let response = loop {
            match self
                .store
                .changes_since(&self.alice, Checkpoint(self.checkpoint), None, limit)
                .await
            {
                Ok(r) => break r,
                Err(_) => self.store.port().restart(),
            }
        };
        let PullResponse::Page {
            entries,
            checkpoint,
            has_more,
            ..
        } = response
        else {
            return Err(format!(
                "resync required at {} without a purge",
                self.checkpoint
            ));
        };
        self.pages += 1;
        let mut last = self.checkpoint;
        let mut seen = std::collections::BTreeSet::new();
        for e in &entries {
            if e.seq <= last {
                return Err(format!("seq {} after {last}", e.seq));
            }
            if !seen.insert(e.note.id) {
                return Err(format!("note {} twice in one page", e.note.id));
            }
            last = e.seq;
            if let Some(old) = self.replica.get(&e.note.id) {
                if old.seq >= e.seq || old.note.rev > e.note.rev {
                    return Err(format!("note {} regressed", e.note.id));
                }
            }
            self.replica.insert(e.note.id, e.clone());
        }
        if entries.len() > usize::try_from(limit).unwrap_or(usize::MAX) || checkpoint.0 != last {
            return Err(format!(
                "page of {} ends at {last}, checkpoint {checkpoint:?}",
                entries.len()
            ));
        }
        self.checkpoint = checkpoint.0;
        // No gap: what was acknowledged before this pull, at or below the
        // new checkpoint, is in the replica, unless the note has moved past
        // the checkpoint since (the reader will get it there).
        for ack in acked.iter().filter(|a| a.seq <= self.checkpoint) {
            let held = self.replica.get(&ack.note).map_or(0, |e| e.seq);
            if held >= ack.seq {
                continue;
            }
            let key = note_key(&self.alice, ack.note);
            let now: Option<StoredNote> = read_doc(self.store.port(), &key).await;
            if now.is_none_or(|n| n.seq <= self.checkpoint) {
                return Err(format!(
                    "gap: change {} of note {} is below checkpoint {} but the replica holds {held}",
                    ack.seq, ack.note, self.checkpoint
                ));
            }
        }
        Ok(has_more)
    }
}

/// Totals over schedules.
#[derive(Debug, Default)]
pub struct Stats {
    pub acks: usize,
    pub failed_attempts: u32,
    pub pages: u64,
    pub committed: u64,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.acks += other.acks;
        self.failed_attempts += other.failed_attempts;
        self.pages += other.pages;
        self.committed += other.committed;
    }
}

/// One schedule: `writers` writers of `batches` batches and a reader, each
/// a store made by `make(node name, fault seed)`, for user `alice`; then
/// `before_settle`, a settling purge, and the end checks.
pub async fn schedule<P: Node>(
    seed: u64,
    writers: u32,
    batches: u32,
    alice: UserId,
    make: &dyn Fn(&str, u64) -> KvSyncStore<P>,
    before_settle: &dyn Fn(),
) -> Result<Stats, String> {
    let shared = Arc::new(Shared {
        acks: Mutex::new(Vec::new()),
        done: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = make(
            &format!("w{w}"),
            seed.wrapping_mul(7919).wrapping_add(u64::from(w)),
        );
        tasks.push(tokio::spawn(writer(
            Arc::new(store),
            shared.clone(),
            alice.clone(),
            w,
            batches,
            seed ^ u64::from(w).wrapping_mul(0x9e37_79b9),
        )));
    }
    let mut reader = Reader {
        store: make("reader", seed.wrapping_add(17)),
        alice: alice.clone(),
        checkpoint: 0,
        replica: BTreeMap::new(),
        pages: 0,
    };
    // The reader is a task of its own, so the scheduler interleaves it
    // with the writers call by call.
    let reading = tokio::spawn({
        let shared = shared.clone();
        async move {
            let mut rng = seed;
            while !shared.done.load(Ordering::SeqCst) {
                let limit = u32::try_from(1 + splitmix(&mut rng) % 4).unwrap_or(1);
                reader.pull(&shared, limit).await?;
            }
            Ok::<_, String>(reader)
        }
    });
    let mut failed_attempts = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(n)) => failed_attempts += n,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(format!("writer panicked: {e}"));
            }
        }
    }
    shared.done.store(true, Ordering::SeqCst);
    let read = reading.await.map_err(|e| format!("reader panicked: {e}"));
    if let Some(e) = first_error {
        return Err(e);
    }
    let mut reader = read??;

    // Settle: a purge that removes nothing takes the lease and rolls
    // forward whatever a crashed writer left.
    before_settle();
    let settler = make("settler", u64::MAX);
    let purged = settler
        .purge_expired(0)
        .await
        .map_err(|e| format!("settle: {e}"))?;
    if purged != 0 {
        return Err(format!("a purge before any cutoff removed {purged}"));
    }
    while reader.pull(&shared, 3).await? {}

    let port = settler.port();
    let head: HeadDoc = read_doc(port, &head_key(&alice)).await.ok_or("no head")?;
    if head.lease.is_some() {
        return Err("the lease is still held after settling".into());
    }
    for seq in 1..=head.committed + 1 {
        let present = read_doc::<SlotDoc, _>(port, &slot_key(&alice, seq))
            .await
            .is_some();
        if present != (seq <= head.committed) {
            return Err(format!(
                "slot {seq} present: {present}, committed {}",
                head.committed
            ));
        }
    }
    let server: BTreeMap<NoteId, FeedEntry> = feed(&settler, &alice, 0)
        .await
        .into_iter()
        .map(|e| (e.note.id, e))
        .collect();
    if server != reader.replica {
        return Err(format!(
            "replica differs from the server:\nserver  {:?}\nreplica {:?}",
            server
                .values()
                .map(|e| (e.note.id, e.seq))
                .collect::<Vec<_>>(),
            reader
                .replica
                .values()
                .map(|e| (e.note.id, e.seq))
                .collect::<Vec<_>>()
        ));
    }
    // Each note's chain of applied changes, newest first.
    let mut chains: BTreeMap<NoteId, Vec<(u64, u64)>> = BTreeMap::new();
    for (id, entry) in &server {
        let mut chain = Vec::new();
        let mut seq = entry.seq;
        while seq > 0 {
            let slot: SlotDoc = read_doc(port, &slot_key(&alice, seq))
                .await
                .ok_or("broken chain")?;
            if slot.note.note.id != *id {
                return Err(format!("slot {seq} on the chain of {id} is another note's"));
            }
            chain.push((seq, slot.note.note.rev.0));
            seq = slot.prev_seq;
        }
        let revs: Vec<u64> = chain.iter().map(|&(_, rev)| rev).collect();
        let want: Vec<u64> = (1..=entry.note.rev.0).rev().collect();
        if revs != want {
            return Err(format!(
                "note {id} at rev {} has chain revs {revs:?}",
                entry.note.rev.0
            ));
        }
        chains.insert(*id, chain);
    }
    let acks = shared.acks.lock().expect("acks").clone();
    for ack in &acks {
        let on_chain = chains
            .get(&ack.note)
            .is_some_and(|c| c.contains(&(ack.seq, ack.rev)));
        if !on_chain {
            return Err(format!("acknowledged change {ack:?} is not applied"));
        }
    }
    Ok(Stats {
        acks: acks.len(),
        failed_attempts,
        pages: reader.pages,
        committed: head.committed,
    })
}

/// `KV_SCHEDULES` when set, else `default`.
pub fn schedules(default: u64) -> u64 {
    std::env::var("KV_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run_on_fake(rates: FaultRates, default: u64) -> Stats {
    let mut total = Stats::default();
    let started = std::time::Instant::now();
    for seed in 0..schedules(default) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let writers = 2 + u32::try_from(seed % 3).unwrap_or(0);
        let cluster = FakeCluster::new(CLOCK_START);
        let make = |node: &str, fault_seed: u64| {
            let s = store(&cluster, node);
            // The reader's node only fails reads; the settler's is clean.
            let rates = match node {
                "settler" => FaultRates::default(),
                "reader" => FaultRates {
                    unavailable: rates.unavailable,
                    ..FaultRates::default()
                },
                _ => rates,
            };
            s.port().random_faults(rates, fault_seed);
            s
        };
        let land = || cluster.land_late_writes();
        match rt.block_on(schedule(seed, writers, 6, user("alice"), &make, &land)) {
            Ok(s) => total.add(&s),
            Err(e) => panic!("schedule {seed} ({writers} writers): {e}"),
        }
    }
    eprintln!(
        "{} schedules in {:?}: {} acknowledged changes, {} failed attempts retried, {} pages read, {} seqs committed",
        schedules(default),
        started.elapsed(),
        total.acks,
        total.failed_attempts,
        total.pages,
        total.committed
    );
    total
}

#[test]
fn concurrent_writers_and_a_reader_without_faults() {
    let stats = run_on_fake(FaultRates::default(), 40);
    assert!(stats.acks > 0 && stats.failed_attempts == 0, "{stats:?}");
}

#[test]
fn concurrent_writers_and_a_reader_with_crashes_and_timeouts() {
    let stats = run_on_fake(
        FaultRates {
            ambiguous_applied: 15,
            ambiguous_lost: 15,
            ambiguous_late: 15,
            unavailable: 15,
            crash: 8,
        },
        60,
    );
    assert!(
        stats.failed_attempts > 0,
        "no fault ever failed a batch: {stats:?}"
    );
}
