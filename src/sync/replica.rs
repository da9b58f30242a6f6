//! The replica's rules: how a client turns its outbox into a push, what it
//! does with each push result, and how it applies a pulled feed entry.
//!
//! Invariants (the "nothing is lost" half of the protocol on the client):
//! - an acknowledged change leaves the outbox only if no edit was folded into
//!   it while it was in flight; otherwise it stays, rebased so that the next
//!   push is merged by the server against what the server already has;
//! - a pulled entry never overwrites a note with a pending change: the local
//!   text wins locally until its push is merged on the server and pulled back;
//! - a refused change stays in the outbox, marked, so its text survives;
//! - an edit of a note with no pending change is based on the stored copy,
//!   content included, even before the replica pulled the note's first
//!   revision (see [`edit_base`]).

use crate::domain::{ClientId, MutationId, Note, NoteDraft, Revision};

use super::hlc::Hlc;
use super::outbox::PendingChange;
use super::protocol::{Change, ChangeOp, ChangeResult, FeedEntry};

/// The change to push for a pending outbox entry.
pub fn change_for(pending: &PendingChange, client: ClientId) -> Change {
    Change {
        mutation_id: pending.mutation_id,
        note_id: pending.note_id,
        base_rev: pending.base_rev,
        base: pending.base.clone(),
        op: pending.op.clone(),
        hlc: Hlc {
            wall_ms: pending.last_edit_at,
            counter: pending.edits,
            client,
        },
        created_at: pending.created_at,
    }
}

/// The entries to push next: not refused, oldest edit first, at most `max`.
pub fn next_batch(mut outbox: Vec<PendingChange>, max: usize) -> Vec<PendingChange> {
    outbox.retain(|p| p.rejected.is_none());
    outbox.sort_by_key(|p| (p.first_edit_at, p.mutation_id));
    outbox.truncate(max);
    outbox
}

/// What to do with an outbox entry once its push got an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckDecision {
    /// The server has exactly this change: drop the entry.
    Remove,
    /// The entry changed while in flight: keep it, in this rebased form.
    Keep(Box<PendingChange>),
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
        ChangeResult::Rejected { reason } => AckDecision::Keep(Box::new(PendingChange {
            rejected: if untouched {
                Some(reason.clone())
            } else {
                None
            },
            ..current.clone()
        })),
        _ if untouched => AckDecision::Remove,
        // The server holds exactly what was sent, at `rev`: later edits are
        // based on it.
        ChangeResult::Applied { rev, .. } => AckDecision::Keep(Box::new(PendingChange {
            mutation_id: fresh_id,
            base_rev: *rev,
            base: sent_content,
            ..current.clone()
        })),
        // The server holds a merge of what was sent, or an earlier attempt of
        // it: keep the old, stale base revision so the next push is merged
        // again, against the sent text, and nothing merged in is overwritten.
        ChangeResult::Merged { .. } | ChangeResult::Duplicate => {
            AckDecision::Keep(Box::new(PendingChange {
                mutation_id: fresh_id,
                base: sent_content,
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
    /// Keep the local note: it has a pending change that will be merged.
    KeepLocal,
}

/// Decides how a pulled entry lands in a replica that holds `pending` for
/// the same note (if any).
pub fn apply_entry(entry: &FeedEntry, pending: Option<&PendingChange>) -> EntryDecision {
    match pending {
        Some(_) => EntryDecision::KeepLocal,
        None => EntryDecision::Store(entry.note.clone()),
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
    fn a_refused_change_stays_with_its_reason() {
        let sent = coalesce(None, edit("a", 1, 10));
        let decision = acknowledge(
            &sent,
            &sent,
            &ChangeResult::Rejected {
                reason: "too big".into(),
            },
            fresh(),
        );
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

    #[test]
    fn older_revisions_never_replace_newer_ones() {
        assert!(is_newer(None, Revision(1)));
        assert!(is_newer(Some(Revision(2)), Revision(3)));
        assert!(is_newer(Some(Revision(3)), Revision(3)));
        assert!(!is_newer(Some(Revision(4)), Revision(3)));
    }
}
