//! The outbox: local changes not yet acknowledged by the server.
//!
//! Invariants:
//! - there is at most one pending change per note: keystrokes coalesce, so a
//!   typing session in one tab is one change and can never conflict with itself;
//! - a pending change keeps the revision and the content it was based on (the
//!   last server-acknowledged copy), which the three-way merge needs;
//! - coalescing never loses the newest content, and a delete wins over earlier
//!   edits of the same pending change.

use serde::{Deserialize, Serialize};

use crate::domain::{MutationId, NoteDraft, NoteId, Revision};

/// What a pending change does to its note: the same operation it will be
/// pushed as.
pub use super::protocol::ChangeOp as PendingOp;

/// One entry of the outbox, keyed by its note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    pub note_id: NoteId,
    /// Unique per change; a retry reuses it so the server applies it once.
    pub mutation_id: MutationId,
    /// The server revision the edit started from.
    pub base_rev: Revision,
    /// The content at `base_rev`, kept for the three-way merge; `None` for a
    /// note the server has never seen.
    pub base: Option<NoteDraft>,
    pub op: PendingOp,
    /// When the first edit of this change was made, in Unix milliseconds.
    pub first_edit_at: u64,
    /// When the latest edit of this change was made, in Unix milliseconds.
    pub last_edit_at: u64,
    /// How many local edits were folded into this change.
    pub edits: u32,
    /// When the note was created (Unix ms), sent so the server can keep it.
    #[serde(default)]
    pub created_at: u64,
    /// Why the server refused this change, if it did. A refused change stays
    /// in the outbox (its text is never dropped) but is not pushed again until
    /// the person edits the note.
    #[serde(default)]
    pub rejected: Option<String>,
}

/// One local edit, as the editor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub note_id: NoteId,
    /// A fresh id, used only if this edit starts a new pending change.
    pub mutation_id: MutationId,
    /// The revision and content of the note as last acknowledged by the server.
    pub base_rev: Revision,
    pub base: Option<NoteDraft>,
    pub op: PendingOp,
    pub at_ms: u64,
    /// When the note was created (Unix ms).
    pub created_at: u64,
}

/// Folds an edit into the note's pending change, if there is one.
///
/// A new pending change starts from the edit. An existing one keeps its
/// mutation id, base revision and base content (the change is still based on
/// what the server last acknowledged) and takes the edit's operation.
pub fn coalesce(existing: Option<PendingChange>, edit: Edit) -> PendingChange {
    match existing {
        Some(pending) if pending.note_id == edit.note_id => PendingChange {
            op: edit.op,
            last_edit_at: edit.at_ms.max(pending.last_edit_at),
            edits: pending.edits.saturating_add(1),
            rejected: None,
            ..pending
        },
        _ => PendingChange {
            note_id: edit.note_id,
            mutation_id: edit.mutation_id,
            base_rev: edit.base_rev,
            base: edit.base,
            op: edit.op,
            first_edit_at: edit.at_ms,
            last_edit_at: edit.at_ms,
            edits: 1,
            created_at: edit.created_at,
            rejected: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn note(n: u8) -> NoteId {
        NoteId::new(1_000 + u64::from(n), [n; 10])
    }

    fn draft(body: &str) -> NoteDraft {
        NoteDraft {
            title: "t".into(),
            body: body.into(),
            tags: vec![],
        }
    }

    fn edit(n: u8, m: u8, op: PendingOp, at: u64) -> Edit {
        Edit {
            note_id: note(n),
            mutation_id: MutationId::new(at, [m; 10]),
            base_rev: Revision(3),
            base: Some(draft("base")),
            op,
            at_ms: at,
            created_at: 1,
        }
    }

    #[test]
    fn first_edit_starts_a_change() {
        let change = coalesce(None, edit(1, 1, PendingOp::Upsert(draft("a")), 10));
        assert_eq!(change.edits, 1);
        assert_eq!(change.base_rev, Revision(3));
        assert_eq!(change.op, PendingOp::Upsert(draft("a")));
    }

    #[test]
    fn later_edits_keep_the_base_and_mutation_id() {
        let first = coalesce(None, edit(1, 1, PendingOp::Upsert(draft("a")), 10));
        let mut second = edit(1, 2, PendingOp::Upsert(draft("ab")), 20);
        second.base_rev = Revision(99);
        second.base = Some(draft("other"));
        let merged = coalesce(Some(first.clone()), second);
        assert_eq!(merged.mutation_id, first.mutation_id);
        assert_eq!(merged.base_rev, Revision(3));
        assert_eq!(merged.base, Some(draft("base")));
        assert_eq!(merged.op, PendingOp::Upsert(draft("ab")));
        assert_eq!(
            (merged.first_edit_at, merged.last_edit_at, merged.edits),
            (10, 20, 2)
        );
    }

    #[test]
    fn delete_after_edits_is_one_delete() {
        let first = coalesce(None, edit(1, 1, PendingOp::Upsert(draft("a")), 10));
        let merged = coalesce(Some(first), edit(1, 2, PendingOp::Delete, 11));
        assert_eq!(merged.op, PendingOp::Delete);
    }

    #[test]
    fn a_change_of_another_note_is_not_merged() {
        let first = coalesce(None, edit(1, 1, PendingOp::Upsert(draft("a")), 10));
        let other = coalesce(Some(first), edit(2, 2, PendingOp::Upsert(draft("b")), 11));
        assert_eq!(other.note_id, note(2));
        assert_eq!(other.edits, 1);
    }

    proptest! {
        /// However many keystrokes, one pending change holds exactly the last text.
        #[test]
        fn typing_coalesces_to_the_last_text(texts in proptest::collection::vec(".{0,20}", 1..50)) {
            let mut pending = None;
            for (i, text) in texts.iter().enumerate() {
                let at = 100 + i as u64;
                pending = Some(coalesce(pending, edit(1, i as u8, PendingOp::Upsert(draft(text)), at)));
            }
            let pending = pending.expect("at least one edit");
            prop_assert_eq!(pending.edits as usize, texts.len());
            prop_assert_eq!(pending.op, PendingOp::Upsert(draft(texts.last().expect("non-empty"))));
            prop_assert_eq!(pending.mutation_id, MutationId::new(100, [0; 10]));
        }
    }
}
