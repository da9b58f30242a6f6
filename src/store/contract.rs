//! The contract suite of [`SyncStore`]: one async check per promise of the
//! trait, run against every implementation (the memory store in unit tests,
//! every store in `tests/it`). Compiled in every build so that integration
//! tests and other crates can run it.
//!
//! Each check takes a fresh, empty store and panics with a message naming the
//! broken promise. [`run_all`] runs every check, each on a store made by the
//! factory.

use super::{SyncStore, PAGE_TEXT_BUDGET};
use crate::domain::{ClientId, MutationId, NoteDraft, NoteId, Revision, UserId, LIMITS};
use crate::store::Quota;
use crate::sync::hlc::Hlc;
use crate::sync::merge::Strategy;
use crate::sync::protocol::{Change, ChangeOp, ChangeResult, Checkpoint, FeedEntry, PullResponse};

/// The server time the checks run at.
pub const NOW: u64 = 1_700_000_000_000;

/// Makes a fresh, empty store for one check.
pub type Factory<'a> = &'a (dyn Fn() -> Box<dyn SyncStore> + Sync);

/// Runs every check of the suite, each on a fresh store from `factory`.
pub async fn run_all(factory: Factory<'_>) {
    applies_new_notes_with_increasing_seqs(&*factory()).await;
    duplicate_mutation_ids_change_nothing(&*factory()).await;
    bad_changes_are_rejected_alone(&*factory()).await;
    stale_base_is_merged(&*factory()).await;
    overlapping_edits_are_flagged_and_keep_both_texts(&*factory()).await;
    winner_strategies_keep_the_losing_text(&*factory()).await;
    tombstones_are_in_the_feed(&*factory()).await;
    each_note_appears_once_at_its_latest_seq(&*factory()).await;
    pages_follow_the_limit_and_checkpoints_advance(&*factory()).await;
    pages_keep_to_the_text_budget(&*factory()).await;
    purge_drops_old_tombstones_and_requires_resync(&*factory()).await;
    purge_forgets_old_mutation_ids_only(&*factory()).await;
    a_purge_larger_than_its_chunks_removes_everything(&*factory()).await;
    checkpoint_beyond_the_feed_requires_resync(&*factory()).await;
    a_download_after_a_purge_continues_page_by_page(&*factory()).await;
    only_a_purge_after_a_download_began_restarts_it(&*factory()).await;
    users_are_isolated(&*factory()).await;
    the_feed_head_follows_accepted_changes(&*factory()).await;
    quotas_refuse_growth_past_them_and_nothing_else(&*factory()).await;
}

// ---- helpers ----

/// A user id for the checks.
pub fn user(name: &str) -> UserId {
    UserId::parse(name).expect("a valid test user id")
}

/// The `n`-th note id of the checks.
pub fn note_id(n: u8) -> NoteId {
    NoteId::new(1_600_000_000_000 + u64::from(n), [n; 10])
}

/// The `n`-th mutation id of the checks.
pub fn mutation_id(n: u32) -> MutationId {
    let b = n.to_be_bytes();
    MutationId::new(
        1_600_000_000_000 + u64::from(n),
        [b[0], b[1], b[2], b[3], 0, 0, 0, 0, 0, 1],
    )
}

fn clock(wall_ms: u64) -> Hlc {
    Hlc {
        wall_ms,
        counter: 0,
        client: ClientId::new(1_600_000_000_000, [9; 10]),
    }
}

fn draft(body: &str) -> NoteDraft {
    NoteDraft {
        title: "title".into(),
        body: body.into(),
        tags: vec![],
        pinned: false,
    }
}

/// A change making note `note` with `body`.
pub fn create(m: u32, note: u8, body: &str) -> Change {
    edit(m, note, 0, None, body)
}

/// A change editing note `note` from revision `base_rev` (content `base`).
pub fn edit(m: u32, note: u8, base_rev: u64, base: Option<&str>, body: &str) -> Change {
    Change {
        mutation_id: mutation_id(m),
        note_id: note_id(note),
        base_rev: Revision(base_rev),
        base: base.map(draft),
        op: ChangeOp::Upsert(draft(body)),
        hlc: clock(NOW - 1_000 + u64::from(m)),
        created_at: NOW - 5_000,
    }
}

/// A change deleting note `note` from revision `base_rev`.
pub fn delete(m: u32, note: u8, base_rev: u64) -> Change {
    Change {
        op: ChangeOp::Delete,
        ..edit(m, note, base_rev, None, "")
    }
}

/// Pushes `changes` for `who` with the merge strategy; panics on a store error.
pub async fn push(store: &dyn SyncStore, who: &UserId, changes: &[Change]) -> Vec<ChangeResult> {
    push_with(store, who, changes, Strategy::Merge).await
}

async fn push_with(
    store: &dyn SyncStore,
    who: &UserId,
    changes: &[Change],
    strategy: Strategy,
) -> Vec<ChangeResult> {
    let results = store
        .apply_batch(who, changes, strategy, NOW)
        .await
        .expect("apply_batch succeeds");
    assert_eq!(results.len(), changes.len(), "one result per change");
    results
}

/// One page of the feed; panics on `ResyncRequired`.
pub async fn page(
    store: &dyn SyncStore,
    who: &UserId,
    checkpoint: u64,
    limit: u32,
) -> (Vec<FeedEntry>, Checkpoint, bool) {
    match store
        .changes_since(who, Checkpoint(checkpoint), None, limit)
        .await
        .expect("changes_since succeeds")
    {
        PullResponse::Page {
            entries,
            checkpoint,
            has_more,
            ..
        } => (entries, checkpoint, has_more),
        PullResponse::ResyncRequired => panic!("unexpected resync_required at {checkpoint}"),
    }
}

/// The whole feed after `checkpoint`.
pub async fn feed(store: &dyn SyncStore, who: &UserId, checkpoint: u64) -> Vec<FeedEntry> {
    page(store, who, checkpoint, 100_000).await.0
}

fn applied(result: &ChangeResult) -> (Revision, u64) {
    match result {
        ChangeResult::Applied { rev, seq } => (*rev, *seq),
        other => panic!("expected applied, got {other:?}"),
    }
}

fn merged(result: &ChangeResult) -> (Revision, u64, bool) {
    match result {
        ChangeResult::Merged {
            rev,
            seq,
            conflicted,
        } => (*rev, *seq, *conflicted),
        other => panic!("expected merged, got {other:?}"),
    }
}

// ---- checks ----

/// New notes are applied at revision 1 with strictly increasing seqs, and the
/// feed lists them in that order.
pub async fn applies_new_notes_with_increasing_seqs(store: &dyn SyncStore) {
    let alice = user("alice");
    let results = push(store, &alice, &[create(1, 1, "a"), create(2, 2, "b")]).await;
    let more = push(store, &alice, &[create(3, 3, "c")]).await;
    let seqs: Vec<u64> = results.iter().chain(&more).map(|r| applied(r).1).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs increase: {seqs:?}"
    );
    assert!(results
        .iter()
        .chain(&more)
        .all(|r| applied(r).0 == Revision(1)));
    let (entries, checkpoint, has_more) = page(store, &alice, 0, 100).await;
    let got: Vec<(u64, NoteId, &str)> = entries
        .iter()
        .map(|e| (e.seq, e.note.id, e.note.body.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (seqs[0], note_id(1), "a"),
            (seqs[1], note_id(2), "b"),
            (seqs[2], note_id(3), "c"),
        ]
    );
    assert_eq!(checkpoint, Checkpoint(seqs[2]));
    assert!(!has_more);
    let note = &entries[0].note;
    assert_eq!(
        (note.rev, note.created_at, note.deleted),
        (Revision(1), NOW - 5_000, false)
    );
}

/// A mutation id seen before, in an earlier batch or the same one, answers
/// `Duplicate` and changes nothing.
pub async fn duplicate_mutation_ids_change_nothing(store: &dyn SyncStore) {
    let alice = user("alice");
    let first = push(store, &alice, &[create(1, 1, "a")]).await;
    applied(&first[0]);
    let before = feed(store, &alice, 0).await;
    let again = push(
        store,
        &alice,
        &[create(1, 1, "a"), edit(1, 1, 1, Some("a"), "changed")],
    )
    .await;
    assert_eq!(
        again,
        vec![ChangeResult::Duplicate, ChangeResult::Duplicate]
    );
    assert_eq!(
        feed(store, &alice, 0).await,
        before,
        "a duplicate changed the feed"
    );
    let same_batch = push(store, &alice, &[create(2, 2, "b"), create(2, 2, "b")]).await;
    applied(&same_batch[0]);
    assert_eq!(same_batch[1], ChangeResult::Duplicate);
}

/// One bad change is rejected without failing the batch, and is not
/// remembered as applied.
pub async fn bad_changes_are_rejected_alone(store: &dyn SyncStore) {
    let alice = user("alice");
    let big = "x".repeat(LIMITS.max_body_bytes + 1);
    let results = push(
        store,
        &alice,
        &[
            create(1, 1, &big),
            edit(2, 2, 5, None, "from the future"),
            create(3, 3, "ok"),
        ],
    )
    .await;
    assert!(
        matches!(&results[0], ChangeResult::Rejected { reason, .. } if reason.contains("1 MiB")),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(&results[1], ChangeResult::Rejected { reason, .. } if reason.contains("revision 5")),
        "{:?}",
        results[1]
    );
    applied(&results[2]);
    let entries = feed(store, &alice, 0).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].note.id, note_id(3));
    let retry = push(store, &alice, &[create(1, 1, "fixed")]).await;
    applied(&retry[0]);
}

/// A change from a stale base is merged with the server's copy.
pub async fn stale_base_is_merged(store: &dyn SyncStore) {
    let alice = user("alice");
    let base = "one\ntwo\nthree\n";
    push(store, &alice, &[create(1, 1, base)]).await;
    let r = push(
        store,
        &alice,
        &[edit(2, 1, 1, Some(base), "ONE\ntwo\nthree\n")],
    )
    .await;
    assert_eq!(applied(&r[0]).0, Revision(2));
    let r = push(
        store,
        &alice,
        &[edit(3, 1, 1, Some(base), "one\ntwo\nTHREE\n")],
    )
    .await;
    let (rev, seq, conflicted) = merged(&r[0]);
    assert_eq!(rev, Revision(3));
    assert!(!conflicted);
    let entries = feed(store, &alice, 0).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].seq, seq);
    assert_eq!(entries[0].note.body, "ONE\ntwo\nTHREE\n");
    assert_eq!(entries[0].conflict, None);
}

/// Overlapping edits are flagged, both texts are kept, and a later edit from
/// the current revision (the person's choice) clears the flag.
pub async fn overlapping_edits_are_flagged_and_keep_both_texts(store: &dyn SyncStore) {
    let alice = user("alice");
    push(store, &alice, &[create(1, 1, "base\n")]).await;
    push(
        store,
        &alice,
        &[edit(2, 1, 1, Some("base\n"), "from laptop\n")],
    )
    .await;
    let r = push(
        store,
        &alice,
        &[edit(3, 1, 1, Some("base\n"), "from phone\n")],
    )
    .await;
    let (rev, _, conflicted) = merged(&r[0]);
    assert!(conflicted);
    let entry = feed(store, &alice, 0).await.remove(0);
    assert!(entry.note.body.contains("from laptop") && entry.note.body.contains("from phone"));
    let sides = entry.conflict.expect("the conflict is recorded");
    assert_eq!(
        sides.server.map(|d| d.body),
        Some("from laptop\n".to_string())
    );
    assert_eq!(
        sides.client.map(|d| d.body),
        Some("from phone\n".to_string())
    );
    let r = push(
        store,
        &alice,
        &[edit(4, 1, rev.0, Some(&entry.note.body), "chosen\n")],
    )
    .await;
    applied(&r[0]);
    let entry = feed(store, &alice, 0).await.remove(0);
    assert_eq!(entry.note.body, "chosen\n");
    assert_eq!(entry.conflict, None, "a clean apply clears the conflict");
}

/// Under server-wins the server's text stays and the client's is recorded.
pub async fn winner_strategies_keep_the_losing_text(store: &dyn SyncStore) {
    let alice = user("alice");
    push(store, &alice, &[create(1, 1, "base\n")]).await;
    push(store, &alice, &[edit(2, 1, 1, Some("base\n"), "server\n")]).await;
    let r = push_with(
        store,
        &alice,
        &[edit(3, 1, 1, Some("base\n"), "client\n")],
        Strategy::ServerWins,
    )
    .await;
    assert!(merged(&r[0]).2);
    let entry = feed(store, &alice, 0).await.remove(0);
    assert_eq!(entry.note.body, "server\n");
    let sides = entry.conflict.expect("the losing text is recorded");
    assert_eq!(sides.client.map(|d| d.body), Some("client\n".to_string()));
}

/// Deletes appear in the feed as tombstones without text.
pub async fn tombstones_are_in_the_feed(store: &dyn SyncStore) {
    let alice = user("alice");
    push(
        store,
        &alice,
        &[create(1, 1, "secret"), create(2, 2, "kept")],
    )
    .await;
    let r = push(store, &alice, &[delete(3, 1, 1)]).await;
    let (rev, seq) = applied(&r[0]);
    assert_eq!(rev, Revision(2));
    let entries = feed(store, &alice, 0).await;
    assert_eq!(entries.len(), 2);
    let last = entries.last().expect("two entries");
    assert_eq!(
        (last.seq, last.note.id, last.note.deleted),
        (seq, note_id(1), true)
    );
    assert!(last.note.body.is_empty() && last.note.title.is_empty());
}

/// The feed is state-based: a note changed twice appears once, at its latest
/// seq, and a reader past its old seq sees it again.
pub async fn each_note_appears_once_at_its_latest_seq(store: &dyn SyncStore) {
    let alice = user("alice");
    let r = push(store, &alice, &[create(1, 1, "v1"), create(2, 2, "other")]).await;
    let (_, after_other) = applied(&r[1]);
    let r = push(
        store,
        &alice,
        &[
            edit(3, 1, 1, Some("v1"), "v2"),
            edit(4, 1, 2, Some("v2"), "v3"),
        ],
    )
    .await;
    let (rev, latest) = applied(&r[1]);
    assert_eq!(rev, Revision(3));
    let entries = feed(store, &alice, 0).await;
    let got: Vec<(u64, NoteId)> = entries.iter().map(|e| (e.seq, e.note.id)).collect();
    assert_eq!(got, vec![(after_other, note_id(2)), (latest, note_id(1))]);
    assert_eq!(entries[1].note.body, "v3");
    let since = feed(store, &alice, after_other).await;
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].note.body, "v3");
}

/// Pages hold at most `limit` entries, `has_more` tells whether to go on, the
/// checkpoint advances to the last entry, and an empty page keeps it.
pub async fn pages_follow_the_limit_and_checkpoints_advance(store: &dyn SyncStore) {
    let alice = user("alice");
    let changes: Vec<Change> = (1..=7).map(|n| create(u32::from(n), n, "x")).collect();
    push(store, &alice, &changes).await;
    let mut checkpoint = 0;
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    loop {
        let (entries, next, has_more) = page(store, &alice, checkpoint, 3).await;
        sizes.push((entries.len(), has_more));
        if let Some(last) = entries.last() {
            assert_eq!(next, Checkpoint(last.seq));
        }
        assert!(entries.iter().all(|e| e.seq > checkpoint));
        seen.extend(entries.iter().map(|e| e.note.id));
        checkpoint = next.0;
        if !has_more {
            break;
        }
    }
    assert_eq!(sizes, vec![(3, true), (3, true), (1, false)]);
    assert_eq!(seen, (1..=7).map(note_id).collect::<Vec<_>>());
    let (entries, next, has_more) = page(store, &alice, checkpoint, 3).await;
    assert!(entries.is_empty() && !has_more);
    assert_eq!(
        next,
        Checkpoint(checkpoint),
        "an empty page keeps the checkpoint"
    );
}

/// A page carries no more than [`PAGE_TEXT_BUDGET`] of note text, whatever
/// the limit asked for, and the pages after it carry the rest: nothing is
/// skipped or repeated.
pub async fn pages_keep_to_the_text_budget(store: &dyn SyncStore) {
    let alice = user("alice");
    let largest = "x".repeat(LIMITS.max_body_bytes);
    let changes: Vec<Change> = (1..=12)
        .map(|n| create(u32::from(n), n, &largest))
        .collect();
    push(store, &alice, &changes).await;
    let mut checkpoint = 0;
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    loop {
        let (entries, next, has_more) = page(store, &alice, checkpoint, 100).await;
        let text: usize = entries
            .iter()
            .map(|e| e.note.title.len() + e.note.body.len())
            .sum();
        assert!(text <= PAGE_TEXT_BUDGET, "a page of {text} bytes of text");
        sizes.push((entries.len(), has_more));
        seen.extend(entries.iter().map(|e| e.note.id));
        checkpoint = next.0;
        if !has_more {
            break;
        }
    }
    // Eight notes of 1 MiB and their titles are just over 8 MiB.
    assert_eq!(sizes, vec![(7, true), (5, false)]);
    assert_eq!(seen, (1..=12).map(note_id).collect::<Vec<_>>());
}

/// Purging drops old tombstones (not live notes), and a checkpoint below the
/// watermark must resync; a full snapshot and later checkpoints still work.
pub async fn purge_drops_old_tombstones_and_requires_resync(store: &dyn SyncStore) {
    let alice = user("alice");
    let r = push(
        store,
        &alice,
        &[create(1, 1, "live"), create(2, 2, "doomed")],
    )
    .await;
    let (_, first_seq) = applied(&r[0]);
    let r = push(store, &alice, &[delete(3, 2, 1)]).await;
    let (_, tombstone_seq) = applied(&r[0]);
    assert_eq!(
        store.purge_expired(NOW).await.expect("purge"),
        0,
        "nothing is old yet"
    );
    let removed = store.purge_expired(NOW + 1).await.expect("purge");
    assert_eq!(removed, 4, "one tombstone and three mutation ids");
    let entries = feed(store, &alice, 0).await;
    let ids: Vec<NoteId> = entries.iter().map(|e| e.note.id).collect();
    assert_eq!(ids, vec![note_id(1)], "the snapshot keeps live notes only");
    let stale = store
        .changes_since(&alice, Checkpoint(first_seq), None, 10)
        .await
        .expect("changes_since");
    assert_eq!(stale, PullResponse::ResyncRequired);
    let (entries, checkpoint, _) = page(store, &alice, tombstone_seq, 10).await;
    assert!(entries.is_empty());
    assert_eq!(checkpoint, Checkpoint(tombstone_seq));
}

/// A purge of more tombstones than a store removes at once (stores purge
/// in chunks, so pushes wait for one chunk at most) still removes them all.
pub async fn a_purge_larger_than_its_chunks_removes_everything(store: &dyn SyncStore) {
    let alice = user("alice");
    let count: u32 = 1_201;
    let id = |n: u32| {
        let b = n.to_be_bytes();
        NoteId::new(
            1_600_000_000_000 + u64::from(n),
            [7, b[0], b[1], b[2], b[3], 0, 0, 0, 0, 1],
        )
    };
    let ids: Vec<u32> = (1..=count).collect();
    for chunk in ids.chunks(500) {
        let creates: Vec<Change> = chunk
            .iter()
            .map(|&n| Change {
                note_id: id(n),
                ..create(n, 1, "x")
            })
            .collect();
        push(store, &alice, &creates).await;
        let deletes: Vec<Change> = chunk
            .iter()
            .map(|&n| Change {
                note_id: id(n),
                ..delete(count + n, 1, 1)
            })
            .collect();
        push(store, &alice, &deletes).await;
    }
    let removed = store.purge_expired(NOW + 1).await.expect("purge");
    assert_eq!(
        removed,
        u64::from(count) * 3,
        "every tombstone and both mutation ids of each note"
    );
    assert!(feed(store, &alice, 0).await.is_empty());
    assert_eq!(store.purge_expired(NOW + 1).await.expect("purge"), 0);
}

/// Purging forgets mutation ids accepted before the cutoff and keeps newer ones.
pub async fn purge_forgets_old_mutation_ids_only(store: &dyn SyncStore) {
    let alice = user("alice");
    store
        .apply_batch(&alice, &[create(1, 1, "old")], Strategy::Merge, NOW - 10)
        .await
        .expect("apply");
    store
        .apply_batch(&alice, &[create(2, 2, "new")], Strategy::Merge, NOW + 10)
        .await
        .expect("apply");
    assert_eq!(store.purge_expired(NOW).await.expect("purge"), 1);
    let r = push(store, &alice, &[create(2, 2, "new")]).await;
    assert_eq!(
        r,
        vec![ChangeResult::Duplicate],
        "a recent mutation id is kept"
    );
    assert_eq!(feed(store, &alice, 0).await.len(), 2, "live notes are kept");
}

/// A checkpoint beyond the last seq handed out comes from another store.
pub async fn checkpoint_beyond_the_feed_requires_resync(store: &dyn SyncStore) {
    let alice = user("alice");
    let future = store
        .changes_since(&alice, Checkpoint(5), None, 10)
        .await
        .expect("changes_since");
    assert_eq!(future, PullResponse::ResyncRequired);
    let r = push(store, &alice, &[create(1, 1, "a")]).await;
    let (_, seq) = applied(&r[0]);
    let beyond = store
        .changes_since(&alice, Checkpoint(seq + 1), None, 10)
        .await
        .expect("changes_since");
    assert_eq!(beyond, PullResponse::ResyncRequired);
    let (entries, _, _) = page(store, &alice, 0, 10).await;
    assert_eq!(entries.len(), 1);
}

/// Pulls one page of a download from checkpoint 0 that began at
/// `download_head` (`None` for its first page).
async fn download_page(
    store: &dyn SyncStore,
    who: &UserId,
    checkpoint: Checkpoint,
    download_head: Option<u64>,
    limit: u32,
) -> PullResponse {
    store
        .changes_since(who, checkpoint, download_head, limit)
        .await
        .expect("changes_since succeeds")
}

/// After a purge, a replica downloads everything again from 0, a page at a
/// time: the pages after the first continue the download (they carry the
/// first page's head) and are served although their checkpoints are below
/// the purge watermark, where an incremental pull must resync.
pub async fn a_download_after_a_purge_continues_page_by_page(store: &dyn SyncStore) {
    let alice = user("alice");
    let creates: Vec<Change> = (1..=5).map(|n| create(n, n as u8, "note")).collect();
    push(store, &alice, &creates).await;
    let r = push(store, &alice, &[delete(6, 5, 1)]).await;
    let (_, tombstone_seq) = applied(&r[0]);
    store.purge_expired(NOW + 1).await.expect("purge");

    let PullResponse::Page {
        entries,
        mut checkpoint,
        mut has_more,
        head,
    } = download_page(store, &alice, Checkpoint(0), None, 2).await
    else {
        panic!("a download from 0 never needs a resync");
    };
    assert_eq!(head, tombstone_seq, "the head is the last seq handed out");
    assert!(has_more);
    assert!(
        checkpoint.0 < tombstone_seq,
        "the first page ends below the watermark"
    );
    assert_eq!(
        download_page(store, &alice, checkpoint, None, 2).await,
        PullResponse::ResyncRequired,
        "an incremental pull there may have missed the purged delete"
    );
    let mut seen: Vec<NoteId> = entries.iter().map(|e| e.note.id).collect();
    while has_more {
        match download_page(store, &alice, checkpoint, Some(head), 2).await {
            PullResponse::Page {
                entries,
                checkpoint: next,
                has_more: more,
                ..
            } => {
                seen.extend(entries.iter().map(|e| e.note.id));
                checkpoint = next;
                has_more = more;
            }
            PullResponse::ResyncRequired => panic!("the download restarted at {checkpoint:?}"),
        }
    }
    assert_eq!(seen, (1..=4).map(note_id).collect::<Vec<_>>());
}

/// A download restarts only when a purge removed the delete of a note it may
/// already have received: a tombstone written after its first page was read.
/// Purging tombstones that were already in the feed then changes nothing.
pub async fn only_a_purge_after_a_download_began_restarts_it(store: &dyn SyncStore) {
    let alice = user("alice");
    push(
        store,
        &alice,
        &[create(1, 1, "a"), create(2, 2, "b"), create(3, 3, "c")],
    )
    .await;
    push(store, &alice, &[delete(4, 3, 1)]).await;
    let PullResponse::Page {
        entries,
        checkpoint,
        head,
        ..
    } = download_page(store, &alice, Checkpoint(0), None, 1).await
    else {
        panic!("a download from 0 never needs a resync");
    };
    assert_eq!(entries[0].note.id, note_id(1));

    store.purge_expired(NOW + 1).await.expect("purge");
    assert!(
        matches!(
            download_page(store, &alice, checkpoint, Some(head), 1).await,
            PullResponse::Page { .. }
        ),
        "the purged delete is older than the download"
    );

    store
        .apply_batch(&alice, &[delete(5, 1, 1)], Strategy::Merge, NOW + 10)
        .await
        .expect("delete");
    assert!(
        matches!(
            download_page(store, &alice, checkpoint, Some(head), 1).await,
            PullResponse::Page { .. }
        ),
        "the delete of a note already received is still in the feed"
    );
    store.purge_expired(NOW + 20).await.expect("purge");
    assert_eq!(
        download_page(store, &alice, checkpoint, Some(head), 1).await,
        PullResponse::ResyncRequired,
        "note 1 was received and its delete is gone: start again"
    );
}

/// A user never sees another's notes, cannot change them by note id, and has
/// a feed and mutation ids of their own.
pub async fn users_are_isolated(store: &dyn SyncStore) {
    let (alice, bob) = (user("alice"), user("bob"));
    push(store, &alice, &[create(1, 1, "alice's")]).await;
    assert!(
        feed(store, &bob, 0).await.is_empty(),
        "bob sees alice's notes"
    );
    let r = push(
        store,
        &bob,
        &[edit(2, 1, 1, Some("alice's"), "bob was here")],
    )
    .await;
    assert!(matches!(r[0], ChangeResult::Rejected { .. }), "{:?}", r[0]);
    let r = push(store, &bob, &[delete(3, 1, 1)]).await;
    assert!(matches!(r[0], ChangeResult::Rejected { .. }), "{:?}", r[0]);
    // The same mutation id and note id under another user are that user's own.
    let r = push(store, &bob, &[create(1, 1, "bob's")]).await;
    assert_eq!(applied(&r[0]).0, Revision(1));
    let alice_feed = feed(store, &alice, 0).await;
    assert_eq!(alice_feed.len(), 1);
    assert_eq!(alice_feed[0].note.body, "alice's");
    assert_eq!(alice_feed[0].note.rev, Revision(1));
    let bob_feed = feed(store, &bob, 0).await;
    assert_eq!(bob_feed.len(), 1);
    assert_eq!(bob_feed[0].note.body, "bob's");
    store.purge_expired(NOW + 1).await.expect("purge");
    assert_eq!(feed(store, &alice, 0).await.len(), 1);
}

/// The feed head starts at 0, covers every accepted change at once, equals
/// the head a page read now carries, never moves back (a purge, a duplicate)
/// and is per user.
pub async fn the_feed_head_follows_accepted_changes(store: &dyn SyncStore) {
    let (alice, bob) = (user("alice"), user("bob"));
    assert_eq!(store.feed_head(&alice).await.expect("head"), 0);
    let results = push(store, &alice, &[create(1, 1, "a"), create(2, 2, "b")]).await;
    let last = applied(&results[1]).1;
    assert_eq!(store.feed_head(&alice).await.expect("head"), last);
    match store
        .changes_since(&alice, Checkpoint(0), None, 1)
        .await
        .expect("pull")
    {
        PullResponse::Page { head, .. } => assert_eq!(head, last),
        PullResponse::ResyncRequired => panic!("a fresh download needs no resync"),
    }
    push(store, &alice, &[create(1, 1, "a")]).await;
    assert_eq!(store.feed_head(&alice).await.expect("head"), last);
    push(store, &alice, &[delete(3, 1, 1)]).await;
    let after_delete = store.feed_head(&alice).await.expect("head");
    assert!(after_delete > last);
    store.purge_expired(u64::MAX).await.expect("purge");
    assert_eq!(store.feed_head(&alice).await.expect("head"), after_delete);
    assert_eq!(store.feed_head(&bob).await.expect("head"), 0);
}

async fn push_within(
    store: &dyn SyncStore,
    who: &UserId,
    changes: &[Change],
    quota: Quota,
) -> Vec<ChangeResult> {
    let results = store
        .apply_batch_within(who, changes, Strategy::Merge, NOW, quota)
        .await
        .expect("apply_batch_within succeeds");
    assert_eq!(results.len(), changes.len(), "one result per change");
    results
}

fn over_quota(result: &ChangeResult) -> bool {
    matches!(
        result,
        ChangeResult::Rejected {
            code: Some(crate::sync::protocol::RejectCode::Quota),
            ..
        }
    )
}

/// Quotas count live notes and their text per user, across batches and
/// within one; only growth past a limit is refused, the refused change is
/// not remembered, and deletes always go through.
pub async fn quotas_refuse_growth_past_them_and_nothing_else(store: &dyn SyncStore) {
    let ann = user("ann");
    let bob = user("bob");
    // "title" (5 bytes) and a 10-byte body: 15 bytes a note.
    let two_notes = Quota {
        max_notes: 2,
        max_bytes: 1_000,
    };
    let results = push_within(
        store,
        &ann,
        &[
            create(1, 1, "0123456789"),
            create(2, 2, "0123456789"),
            create(3, 3, "0123456789"),
        ],
        two_notes,
    )
    .await;
    assert!(matches!(results[0], ChangeResult::Applied { seq: 1, .. }));
    assert!(matches!(results[1], ChangeResult::Applied { seq: 2, .. }));
    assert!(over_quota(&results[2]), "{:?}", results[2]);
    // Refused changes take no seq: the feed has no gap.
    assert_eq!(store.feed_head(&ann).await.expect("head"), 2);
    // Another user has a quota of their own.
    let results = push_within(store, &bob, &[create(3, 3, "0123456789")], two_notes).await;
    assert!(matches!(results[0], ChangeResult::Applied { .. }));
    // An edit that does not grow goes through at the limit.
    let results = push_within(
        store,
        &ann,
        &[edit(4, 1, 1, Some("0123456789"), "short")],
        two_notes,
    )
    .await;
    assert!(
        matches!(results[0], ChangeResult::Applied { .. }),
        "{results:?}"
    );
    // A delete always goes through, and frees room: the refused change,
    // sent again with its mutation id, is taken.
    let results = push_within(
        store,
        &ann,
        &[delete(5, 2, 1), create(3, 3, "0123456789")],
        two_notes,
    )
    .await;
    assert!(matches!(results[0], ChangeResult::Applied { .. }));
    assert!(
        matches!(results[1], ChangeResult::Applied { .. }),
        "{results:?}"
    );
    // Bytes: a body that grows past the limit is refused, one that stays
    // within it is taken.
    let thirty_bytes = Quota {
        max_notes: 100,
        max_bytes: 30,
    };
    let results = push_within(
        store,
        &ann,
        &[edit(6, 1, 2, Some("short"), &"x".repeat(30))],
        thirty_bytes,
    )
    .await;
    assert!(over_quota(&results[0]), "{results:?}");
    let results = push_within(
        store,
        &ann,
        &[edit(7, 1, 2, Some("short"), "0123456789")],
        thirty_bytes,
    )
    .await;
    assert!(
        matches!(results[0], ChangeResult::Applied { .. }),
        "{results:?}"
    );
    let notes: Vec<_> = feed(store, &ann, 0)
        .await
        .into_iter()
        .map(|e| e.note)
        .collect();
    let live: Vec<&str> = notes
        .iter()
        .filter(|n| !n.deleted)
        .map(|n| n.body.as_str())
        .collect();
    assert_eq!(live.len(), 2, "{live:?}");
}
