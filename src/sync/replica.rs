//! The replica's rules: how a client turns its outbox into a push, what it
//! does with each push result, and how it applies a pulled feed entry.
//!
//! Invariants (the "nothing is lost" half of the protocol on the client):
//! - an acknowledged change leaves the outbox only if no edit was folded into
//!   it while it was in flight; otherwise it stays, rebased so that the next
//!   push is merged by the server against what the server already has;
//! - a pulled entry never overwrites a note with a pending change: the two
//!   are merged locally when that is clean and the change was never sent (the
//!   same merge the server would make), otherwise the local text wins locally
//!   until its push is merged on the server and pulled back;
//! - a refused change stays in the outbox, marked, so its text survives;
//! - an edit of a note with no pending change is based on the stored copy,
//!   content included, even before the replica pulled the note's first
//!   revision (see [`edit_base`]).

use crate::domain::{ClientId, MutationId, Note, NoteDraft, NoteId, Revision};

use super::hlc::Hlc;
use super::merge::merge_drafts;
use super::outbox::{coalesce, Edit, PendingChange};
use super::protocol::{Change, ChangeOp, ChangeResult, FeedEntry, RejectCode};

/// The change to push for a pending outbox entry.
pub fn change_for(pending: &PendingChange, client: ClientId) -> Change {
    Change {
        mutation_id: pending.mutation_id,
        note_id: pending.note_id,
        base_rev: pending.base_rev,
        base: pending.base.clone(),
        op: pending.op.clone(),
        hlc: pending.hlc.unwrap_or(Hlc {
            wall_ms: pending.last_edit_at,
            counter: pending.edits,
            client,
        }),
        created_at: pending.created_at,
    }
}

/// The order in which pending changes are pushed: oldest first edit first,
/// then by note. A replica's storage can keep an index in this order, so
/// that a batch is read without reading the whole outbox.
pub fn push_order(pending: &PendingChange) -> (u64, NoteId) {
    (pending.first_edit_at, pending.note_id)
}

/// The entries to push next: not refused, in [`push_order`], at most `max`.
pub fn next_batch(mut outbox: Vec<PendingChange>, max: usize) -> Vec<PendingChange> {
    outbox.retain(|p| p.rejected.is_none());
    outbox.sort_by_key(push_order);
    outbox.truncate(max);
    outbox
}

/// A change refused for the account's quota, made pushable again: space
/// may have been freed since (a delete here or elsewhere, a raised quota).
/// `None` for any other entry. The server did not remember the refused
/// mutation id, so the same change is sent again.
pub fn requeue_over_quota(pending: &PendingChange) -> Option<PendingChange> {
    (pending.rejected_code == Some(RejectCode::Quota)).then(|| PendingChange {
        rejected: None,
        rejected_code: None,
        ..pending.clone()
    })
}

/// What to do with an outbox entry once its push got an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckDecision {
    /// The server has exactly this change: drop the entry.
    Remove,
    /// The entry changed while in flight: keep it, in this rebased form.
    Keep(Box<PendingChange>),
    /// The server no longer has the note (deleted elsewhere and purged, or
    /// restored from an older backup): the edit becomes this new note's
    /// creation, with the note's text as it is here. The replica stores the
    /// note under its new id, drops the old one, and tells the person.
    Recreate(Box<PendingChange>),
}

/// Decides the fate of the outbox entry `current` (as it is now) after the
/// server answered `result` to `sent` (the entry as it was pushed).
/// `fresh_id` is used when the entry must be pushed again as a new mutation.
pub fn acknowledge(
    current: &PendingChange,
    sent: &PendingChange,
    result: &ChangeResult,
    fresh_id: MutationId,
) -> AckDecision {
    let untouched = current.mutation_id == sent.mutation_id && current.edits == sent.edits;
    let sent_content = match &sent.op {
        ChangeOp::Upsert(draft) => Some(draft.clone()),
        ChangeOp::Delete => None,
    };
    match result {
        ChangeResult::Rejected {
            code: Some(RejectCode::Gone),
            ..
        } => match &current.op {
            // A delete of a note the server no longer has is done.
            ChangeOp::Delete => AckDecision::Remove,
            ChangeOp::Upsert(_) => AckDecision::Recreate(Box::new(PendingChange {
                note_id: NoteId::from_fresh(fresh_id),
                mutation_id: fresh_id,
                base_rev: Revision::NEW,
                base: None,
                rejected: None,
                rejected_code: None,
                sent: None,
                ..current.clone()
            })),
        },
        ChangeResult::Rejected { reason, code } => AckDecision::Keep(Box::new(PendingChange {
            rejected: untouched.then(|| reason.clone()),
            rejected_code: if untouched { *code } else { None },
            sent: None,
            ..current.clone()
        })),
        _ if untouched => AckDecision::Remove,
        // The server holds exactly what was sent, at `rev`: later edits are
        // based on it.
        ChangeResult::Applied { rev, .. } => AckDecision::Keep(Box::new(PendingChange {
            mutation_id: fresh_id,
            base_rev: *rev,
            base: sent_content,
            sent: None,
            ..current.clone()
        })),
        // The server holds a merge of what was sent, or an earlier attempt of
        // it: keep the old, stale base revision so the next push is merged
        // again, against the sent text, and nothing merged in is overwritten.
        ChangeResult::Merged { .. } | ChangeResult::Duplicate => {
            AckDecision::Keep(Box::new(PendingChange {
                mutation_id: fresh_id,
                base: sent_content,
                sent: None,
                ..current.clone()
            }))
        }
    }
}

/// The revision and content a local edit starts from when the note has no
/// pending change: the stored copy (`None` if the replica has no copy).
///
/// The content is the base even at [`Revision::NEW`]: a stored note that is
/// new to this replica and has no pending change was acknowledged by the
/// server (only an acknowledgement empties its outbox entry), so the server's
/// history holds that text. Sending no base there would make the server merge
/// the next edit against an empty text, and a person typing on right after
/// their new note was pushed, before it was pulled back, would conflict with
/// themselves. A tombstone has no content to merge against.
pub fn edit_base(stored: Option<&Note>) -> (Revision, Option<NoteDraft>) {
    match stored {
        Some(note) if !note.deleted => (note.rev, Some(note.draft())),
        Some(note) => (note.rev, None),
        None => (Revision::NEW, None),
    }
}

/// What to do with a pulled feed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryDecision {
    /// Store the server's note (and its conflict record, if any).
    Store(Note),
    /// Keep the local note: it has a pending change that the server will
    /// merge (the two overlap, or the change may already be applied).
    KeepLocal,
    /// The pending edit and the server's change merge cleanly: store `note`,
    /// the merge, at the server's revision, and replace the pending change by
    /// `pending`, which is based on that revision. The person sees the other
    /// device's edit at once, and the next push is applied, not merged again.
    Rebase {
        note: Note,
        pending: Box<PendingChange>,
    },
}

/// Decides how a pulled entry lands in a replica that holds `pending` for
/// the same note (if any).
///
/// A pending edit is rebased on the pulled revision only when all of this
/// holds, and is kept as it is otherwise: it was never sent under its
/// mutation id (a sent copy may already be applied, and its id must keep its
/// content), nor refused; it is an edit with a known base that the entry is
/// newer than; the entry is a live note with no conflict record; and the
/// merge ([`merge_drafts`], the server's copy as `ours`) is clean.
pub fn apply_entry(entry: &FeedEntry, pending: Option<&PendingChange>) -> EntryDecision {
    let Some(pending) = pending else {
        return EntryDecision::Store(entry.note.clone());
    };
    match rebase(entry, pending) {
        Some((note, pending)) => EntryDecision::Rebase {
            note,
            pending: Box::new(pending),
        },
        None => EntryDecision::KeepLocal,
    }
}

fn rebase(entry: &FeedEntry, pending: &PendingChange) -> Option<(Note, PendingChange)> {
    let server = &entry.note;
    let (ChangeOp::Upsert(local), Some(base)) = (&pending.op, &pending.base) else {
        return None;
    };
    let rebasable = pending.sent.is_none()
        && pending.rejected.is_none()
        && entry.conflict.is_none()
        && !server.deleted
        && server.rev > pending.base_rev;
    if !rebasable {
        return None;
    }
    // Only a title both sides set needs it, and that merge is flagged and
    // left to the server; the clocks decide as the server's would.
    let server_is_later = match (entry.hlc, pending.hlc) {
        (Some(server_hlc), Some(local_hlc)) => server_hlc >= local_hlc,
        _ => server.updated_at >= pending.last_edit_at,
    };
    let merged = merge_drafts(base, &server.draft(), local, server_is_later);
    let content = merged.content.filter(|_| !merged.conflicted)?;
    let note = Note {
        rev: server.rev,
        created_at: server.created_at,
        ..server.with_draft(content.clone(), server.updated_at.max(pending.last_edit_at))
    };
    let pending = PendingChange {
        base_rev: server.rev,
        base: Some(server.draft()),
        op: ChangeOp::Upsert(content),
        ..pending.clone()
    };
    Some((note, pending))
}

/// What a page's edit becomes when the stored note moved since the page read
/// it (`page_base`): a pull rebased it, or another tab saved it. The page's
/// changes are merged into the stored text ([`merge_drafts`], the page's side
/// later), so neither side's words are dropped: where both changed the same
/// words, both versions stay in the text, one after the other, for the person
/// to tidy (a tab's own person typed both). When the stored note did not
/// move, when either side is a delete, or when the merge would break the
/// limits, the page's note is kept as it is (the server merges it on push).
pub fn merge_page_edit(page_base: &Note, page: &Note, stored: &Note) -> Note {
    let moved = stored.draft() != page_base.draft() || stored.deleted != page_base.deleted;
    if !moved || stored.deleted || page.deleted || page_base.deleted {
        return page.clone();
    }
    let merged = merge_drafts(&page_base.draft(), &stored.draft(), &page.draft(), false);
    match merged.content {
        Some(content) => page.with_draft(content, page.updated_at),
        None => page.clone(),
    }
}

/// What saving a local edit stores, in one step: the note and its outbox
/// entry, and the replica's clock after the edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedEdit {
    pub note: Note,
    pub pending: PendingChange,
    pub clock: Hlc,
}

/// The edit being saved, as the editor made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EditStamp {
    /// A fresh id, used only if the edit starts a new pending change.
    pub mutation_id: MutationId,
    /// When the edit was made, by the device's clock.
    pub at_ms: u64,
}

/// The one rule for saving a local edit, which every replica's storage runs
/// inside one transaction over what it holds for the note.
///
/// `page` is the note as the editor has it (content, or a tombstone for a
/// delete) and `page_base` the stored copy its text derives from, if it read
/// one. When the stored copy moved since (a pull, another tab), the page's
/// changes are merged into it ([`merge_page_edit`]). A note with no pending
/// change is based on the copy its text derives from ([`edit_base`]); a
/// pending change keeps its base ([`coalesce`]). The server revision and the
/// creation time are the stored copy's, never the editor's. The change is
/// timed by the replica's clock, ticked at `stamp.at_ms`.
pub fn save_edit(
    page: &Note,
    page_base: Option<&Note>,
    stored: Option<&Note>,
    existing: Option<PendingChange>,
    clock: Hlc,
    stamp: EditStamp,
) -> SavedEdit {
    let mut note = match (page_base, stored) {
        (Some(page_base), Some(stored)) => merge_page_edit(page_base, page, stored),
        _ => page.clone(),
    };
    // A merged edit derives from the stored copy; otherwise from what the
    // page read, which may be newer than an unpulled stored copy.
    let based_on = if note == *page {
        page_base.or(stored)
    } else {
        stored
    };
    let (base_rev, base) = edit_base(based_on);
    if let Some(stored) = stored {
        note.rev = stored.rev;
        note.created_at = stored.created_at;
    }
    let op = if note.deleted {
        ChangeOp::Delete
    } else {
        ChangeOp::Upsert(note.draft())
    };
    let clock = clock.tick(stamp.at_ms);
    let pending = coalesce(
        existing,
        Edit {
            note_id: note.id,
            mutation_id: stamp.mutation_id,
            base_rev,
            base,
            op,
            at_ms: stamp.at_ms,
            created_at: note.created_at,
            hlc: Some(clock),
        },
    );
    SavedEdit {
        note,
        pending,
        clock,
    }
}

/// The replica's clock after it stored `entries`: later than every clock
/// they carry, so an edit made after seeing them is ordered after them,
/// however far behind the device's own clock is.
pub fn clock_after_pull(clock: Hlc, entries: &[FeedEntry]) -> Hlc {
    match entries.iter().filter_map(|e| e.hlc).max() {
        // The wall clock is not needed: the next edit's tick takes it.
        Some(latest) if latest >= clock => clock.receive(latest, 0),
        _ => clock,
    }
}

/// Whether a stored revision may be replaced by a pulled one: feeds can be
/// re-read after a crash, so an older revision must never win.
pub fn is_newer(stored: Option<Revision>, pulled: Revision) -> bool {
    stored.is_none_or(|rev| pulled >= rev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NoteDraft, NoteId};
    use crate::sync::outbox::{coalesce, Edit};

    fn draft(body: &str) -> NoteDraft {
        NoteDraft {
            title: "t".into(),
            body: body.into(),
            tags: vec![],
            pinned: false,
        }
    }

    fn note_id() -> NoteId {
        NoteId::new(1, [1; 10])
    }

    fn edit(body: &str, m: u8, at: u64) -> Edit {
        Edit {
            note_id: note_id(),
            mutation_id: MutationId::new(at, [m; 10]),
            base_rev: Revision(2),
            base: Some(draft("base")),
            op: ChangeOp::Upsert(draft(body)),
            at_ms: at,
            created_at: 1,
            hlc: None,
        }
    }

    fn fresh() -> MutationId {
        MutationId::new(999, [9; 10])
    }

    #[test]
    fn an_untouched_ack_removes_the_entry() {
        let sent = coalesce(None, edit("a", 1, 10));
        for result in [
            ChangeResult::Applied {
                rev: Revision(3),
                seq: 7,
            },
            ChangeResult::Merged {
                rev: Revision(4),
                seq: 8,
                conflicted: false,
            },
            ChangeResult::Duplicate,
        ] {
            assert_eq!(
                acknowledge(&sent, &sent, &result, fresh()),
                AckDecision::Remove
            );
        }
    }

    #[test]
    fn typing_during_a_push_is_kept_and_rebased_on_the_applied_text() {
        let sent = coalesce(None, edit("a", 1, 10));
        let current = coalesce(Some(sent.clone()), edit("ab", 2, 11));
        let decision = acknowledge(
            &current,
            &sent,
            &ChangeResult::Applied {
                rev: Revision(3),
                seq: 7,
            },
            fresh(),
        );
        let AckDecision::Keep(kept) = decision else {
            panic!("must keep the newer text");
        };
        assert_eq!(kept.op, ChangeOp::Upsert(draft("ab")));
        assert_eq!(kept.base_rev, Revision(3));
        assert_eq!(kept.base, Some(draft("a")));
        assert_eq!(kept.mutation_id, fresh());
    }

    #[test]
    fn typing_during_a_merged_push_stays_stale_so_the_server_merges_again() {
        let sent = coalesce(None, edit("a", 1, 10));
        let current = coalesce(Some(sent.clone()), edit("ab", 2, 11));
        let decision = acknowledge(
            &current,
            &sent,
            &ChangeResult::Merged {
                rev: Revision(5),
                seq: 9,
                conflicted: false,
            },
            fresh(),
        );
        let AckDecision::Keep(kept) = decision else {
            panic!("must keep the newer text");
        };
        assert_eq!(kept.base_rev, Revision(2), "base revision stays stale");
        assert_eq!(kept.base, Some(draft("a")));
        assert_ne!(kept.mutation_id, sent.mutation_id);
    }

    #[test]
    fn a_change_refused_for_quota_is_kept_and_requeued_as_sent() {
        let sent = coalesce(None, edit("a", 1, 10));
        let AckDecision::Keep(kept) = acknowledge(
            &sent,
            &sent,
            &ChangeResult::over_quota("full".into()),
            fresh(),
        ) else {
            panic!("refused text must stay");
        };
        assert_eq!(kept.rejected_code, Some(RejectCode::Quota));
        assert!(
            next_batch(vec![(*kept).clone()], 10).is_empty(),
            "not pushed while refused"
        );
        let again = requeue_over_quota(&kept).expect("requeued");
        assert_eq!(again.mutation_id, sent.mutation_id, "the same change again");
        assert_eq!(again.op, sent.op);
        assert_eq!(next_batch(vec![again], 10).len(), 1);
        // A refusal without a code stays refused.
        let AckDecision::Keep(final_refusal) =
            acknowledge(&sent, &sent, &ChangeResult::rejected("too big"), fresh())
        else {
            panic!("refused text must stay");
        };
        assert_eq!(requeue_over_quota(&final_refusal), None);
    }

    #[test]
    fn a_refused_change_stays_with_its_reason() {
        let sent = coalesce(None, edit("a", 1, 10));
        let decision = acknowledge(&sent, &sent, &ChangeResult::rejected("too big"), fresh());
        let AckDecision::Keep(kept) = decision else {
            panic!("refused text must stay");
        };
        assert_eq!(kept.rejected.as_deref(), Some("too big"));
        assert!(next_batch(vec![(*kept).clone()], 10).is_empty());
        // Editing again clears the refusal and makes it pushable.
        let edited = coalesce(Some(*kept), edit("smaller", 3, 12));
        assert_eq!(next_batch(vec![edited], 10).len(), 1);
    }

    #[test]
    fn batches_are_oldest_first_and_bounded() {
        let mut a = coalesce(None, edit("a", 1, 30));
        a.note_id = NoteId::new(5, [5; 10]);
        let b = coalesce(None, edit("b", 2, 10));
        let batch = next_batch(vec![a, b.clone()], 1);
        assert_eq!(batch, vec![b]);
    }

    #[test]
    fn pending_local_text_is_never_overwritten_by_a_pull() {
        let mut note = Note::new(note_id(), 1);
        note.rev = Revision(9);
        let entry = FeedEntry {
            seq: 3,
            note: note.clone(),
            conflict: None,
            hlc: None,
        };
        let pending = coalesce(None, edit("mine", 1, 10));
        assert_eq!(
            apply_entry(&entry, Some(&pending)),
            EntryDecision::KeepLocal
        );
        assert_eq!(apply_entry(&entry, None), EntryDecision::Store(note));
    }

    #[test]
    fn an_edit_is_based_on_the_stored_copy_even_before_its_first_pull() {
        assert_eq!(edit_base(None), (Revision::NEW, None));
        let mut note = Note::new(note_id(), 1).with_draft(draft("pushed"), 2);
        assert_eq!(
            edit_base(Some(&note)),
            (Revision::NEW, Some(draft("pushed")))
        );
        note.rev = Revision(4);
        assert_eq!(edit_base(Some(&note)), (Revision(4), Some(draft("pushed"))));
        let gone = note.tombstone(3);
        assert_eq!(edit_base(Some(&gone)), (Revision(4), None));
    }

    fn lines() -> impl proptest::strategy::Strategy<Value = Vec<String>> {
        proptest::collection::vec("[a-c]{1,2}", 0..6)
    }

    fn note_with(body: &str, rev: u64) -> Note {
        Note {
            rev: Revision(rev),
            ..Note::new(note_id(), 1).with_draft(draft(body), 1)
        }
    }

    proptest::proptest! {
        /// A page's edit saved over a stored copy that moved keeps every word
        /// of both sides, with no marker: nothing typed on the page nor merged
        /// in is lost.
        #[test]
        fn a_page_edit_over_a_moved_copy_keeps_both_sides_lines(
            base in lines(), page_add in lines(), stored_add in lines()
        ) {
            let base_text = base.join("\n");
            let page_text = [base.clone(), page_add.iter().map(|l| format!("p{l}")).collect()].concat().join("\n");
            let stored_text = [stored_add.iter().map(|l| format!("s{l}")).collect(), base.clone()].concat().join("\n");
            let merged = merge_page_edit(
                &note_with(&base_text, 1),
                &note_with(&page_text, 1),
                &note_with(&stored_text, 2),
            );
            let kept = crate::sync::merge::words(&merged.body);
            for word in crate::sync::merge::words(&page_text).into_iter().chain(crate::sync::merge::words(&stored_text)) {
                proptest::prop_assert!(kept.contains(&word), "lost {word:?} in {:?}", merged.body);
            }
            proptest::prop_assert!(!merged.body.contains("<<<<<<<") && !merged.body.contains(">>>>>>>"));
        }

        /// A rebased pending edit carries exactly the merge the server would
        /// make of the original (the server's copy as `ours`), so rebasing
        /// never changes what the note becomes.
        #[test]
        fn a_rebase_is_the_merge_the_server_would_make(
            base in lines(), local_add in lines(), server_add in lines()
        ) {
            let base_text = base.join("\n");
            let local = [base.clone(), local_add].concat().join("\n");
            let server = [server_add, base.clone()].concat().join("\n");
            let pending = coalesce(None, Edit {
                note_id: note_id(),
                mutation_id: MutationId::new(5, [5; 10]),
                base_rev: Revision(1),
                base: Some(draft(&base_text)),
                op: ChangeOp::Upsert(draft(&local)),
                at_ms: 10,
                created_at: 1,
                hlc: None,
            });
            let entry = FeedEntry { seq: 2, note: note_with(&server, 2), conflict: None, hlc: None };
            let server_merge = crate::sync::merge::merge_text(&base_text, &server, &local);
            match apply_entry(&entry, Some(&pending)) {
                EntryDecision::Rebase { note, pending: rebased } => {
                    proptest::prop_assert!(!server_merge.is_conflicted());
                    proptest::prop_assert_eq!(&note.body, server_merge.text());
                    proptest::prop_assert_eq!(rebased.op.clone(), ChangeOp::Upsert(draft(server_merge.text())));
                    proptest::prop_assert_eq!(rebased.base_rev, Revision(2));
                    proptest::prop_assert_eq!(rebased.mutation_id, pending.mutation_id);
                }
                EntryDecision::KeepLocal => proptest::prop_assert!(server_merge.is_conflicted()),
                EntryDecision::Store(_) => proptest::prop_assert!(false, "pending text overwritten"),
            }
        }
    }

    fn clock(wall_ms: u64) -> Hlc {
        Hlc {
            wall_ms,
            counter: 0,
            client: ClientId::new(7, [7; 10]),
        }
    }

    fn stamp(at_ms: u64) -> EditStamp {
        EditStamp {
            mutation_id: MutationId::new(at_ms, [4; 10]),
            at_ms,
        }
    }

    #[test]
    fn an_edit_is_timed_by_the_replica_clock_even_when_the_device_clock_is_behind() {
        // The replica pulled a change timed at 5,000 (another device's
        // clock); this device's clock says 1,000.
        let pulled = FeedEntry {
            seq: 1,
            note: note_with("theirs", 1),
            conflict: None,
            hlc: Some(Hlc {
                client: ClientId::new(8, [8; 10]),
                ..clock(5_000)
            }),
        };
        let after_pull = clock_after_pull(clock(900), std::slice::from_ref(&pulled));
        assert!(after_pull > pulled.hlc.expect("set"));
        let page = note_with("mine", 1);
        let saved = save_edit(
            &page,
            Some(&pulled.note),
            Some(&pulled.note),
            None,
            after_pull,
            stamp(1_000),
        );
        let hlc = saved.pending.hlc.expect("timed");
        assert!(hlc > pulled.hlc.expect("set"), "ordered after what it saw");
        assert_eq!(saved.clock, hlc);
        assert_eq!(
            change_for(&saved.pending, ClientId::new(7, [7; 10])).hlc,
            hlc
        );
        // A later edit folds in and takes the later time.
        let again = save_edit(
            &note_with("mine too", 1),
            Some(&saved.note),
            Some(&saved.note),
            Some(saved.pending.clone()),
            saved.clock,
            stamp(1_001),
        );
        assert!(again.pending.hlc > saved.pending.hlc);
        assert_eq!(again.pending.mutation_id, saved.pending.mutation_id);
        // Pulling entries older than the clock leaves it as it is.
        assert_eq!(clock_after_pull(again.clock, &[pulled]), again.clock);
    }

    #[test]
    fn a_saved_edit_keeps_the_stored_revision_and_creation_time() {
        let mut stored = note_with("stored", 6);
        stored.created_at = 3;
        let mut page = note_with("page", 2);
        page.created_at = 99;
        let saved = save_edit(&page, None, Some(&stored), None, clock(0), stamp(10));
        assert_eq!((saved.note.rev, saved.note.created_at), (Revision(6), 3));
        assert_eq!(saved.pending.base_rev, Revision(6));
        assert_eq!(saved.pending.base, Some(stored.draft()));
        assert_eq!(saved.pending.created_at, 3);
    }

    #[test]
    fn two_tabs_typing_at_the_end_of_one_note_keep_every_word_without_markers() {
        // Tab A read "x", the stored copy moved to "x b1" (tab B), tab A typed "a1".
        let base = note_with("x", 1);
        let stored = note_with("x b1", 1);
        let page = note_with("x a1", 1);
        let saved = save_edit(&page, Some(&base), Some(&stored), None, clock(0), stamp(10));
        assert_eq!(saved.note.body, "x b1 a1");
        // The same word changed in both tabs: both versions stay, apart.
        let stored = note_with("x ab", 1);
        let page = note_with("x ac", 1);
        let saved = save_edit(
            &page,
            Some(&note_with("x a", 1)),
            Some(&stored),
            None,
            clock(0),
            stamp(10),
        );
        assert_eq!(saved.note.body, "x ab\nx ac");
    }

    #[test]
    fn older_revisions_never_replace_newer_ones() {
        assert!(is_newer(None, Revision(1)));
        assert!(is_newer(Some(Revision(2)), Revision(3)));
        assert!(is_newer(Some(Revision(3)), Revision(3)));
        assert!(!is_newer(Some(Revision(4)), Revision(3)));
    }
}
