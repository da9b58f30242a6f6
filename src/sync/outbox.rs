//! The outbox: local changes not yet acknowledged by the server.
//!
//! Invariants:
//! - there is at most one pending change per note: keystrokes coalesce, so a
//!   typing session in one tab is one change and can never conflict with itself;
//! - a pending change keeps the revision and the content it was based on (the
//!   last server-acknowledged copy), which the three-way merge needs;
//! - coalescing never loses the newest content, and a delete wins over earlier
//!   edits of the same pending change;
//! - a mutation id is never sent with two different contents: once a change
//!   was sent, the copy as sent ([`PendingChange::sent`]) is kept with the
//!   entry, in storage, until the server answers it, so even a restarted
//!   worker resends exactly what may already have been applied.

use serde::{Deserialize, Serialize};

use super::hlc::Hlc;
use crate::domain::{MutationId, NoteDraft, NoteId, Revision};
use crate::sync::protocol::RejectCode;

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
    /// The replica's hybrid logical clock at the latest edit folded in: the
    /// change's time for last-writer-wins. `None` in entries stored before
    /// replicas kept a clock; they are timed by `last_edit_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hlc: Option<Hlc>,
    /// The server's code for the refusal, when it gave one: a change
    /// refused for the account's quota is sent again once space may have
    /// been freed ([`crate::sync::replica::requeue_over_quota`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_code: Option<RejectCode>,
    /// What was pushed under `mutation_id` while the server's answer is not
    /// known. Edits folded in since then are pushed after it, as a new
    /// mutation: a retry of the same id with newer text would be answered
    /// `Duplicate` (the older text was applied) and the newer text lost.
    #[serde(default)]
    pub sent: Option<SentCopy>,
}

/// The parts of a pending change that later edits replace, as they were
/// pushed (the id, base and creation time never change within a mutation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentCopy {
    pub op: PendingOp,
    pub last_edit_at: u64,
    pub edits: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hlc: Option<Hlc>,
}

impl PendingChange {
    /// Bytes of text this change pushes: its content and its base.
    pub fn text_bytes(&self) -> usize {
        let op = match &self.op {
            PendingOp::Upsert(draft) => draft.text_bytes(),
            PendingOp::Delete => 0,
        };
        op + self.base.as_ref().map_or(0, NoteDraft::text_bytes)
    }

    /// The change to push now: the copy already sent under this mutation id,
    /// if any, else the entry as it is.
    pub fn to_push(&self) -> PendingChange {
        match &self.sent {
            Some(sent) => PendingChange {
                op: sent.op.clone(),
                last_edit_at: sent.last_edit_at,
                edits: sent.edits,
                hlc: sent.hlc,
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    /// This entry once `pushed` (from [`Self::to_push`]) goes out, or `None`
    /// when nothing needs recording: it is another mutation by now, or its
    /// sent copy is already kept.
    pub fn marked_sent(&self, pushed: &PendingChange) -> Option<PendingChange> {
        (self.mutation_id == pushed.mutation_id && self.sent.is_none()).then(|| PendingChange {
            sent: Some(SentCopy {
                op: pushed.op.clone(),
                last_edit_at: pushed.last_edit_at,
                edits: pushed.edits,
                hlc: pushed.hlc,
            }),
            ..self.clone()
        })
    }
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
    /// The replica's clock, ticked for this edit.
    pub hlc: Option<Hlc>,
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
            hlc: edit.hlc.or(pending.hlc),
            rejected_code: None,
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
            hlc: edit.hlc,
            rejected_code: None,
            sent: None,
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
            pinned: false,
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
            hlc: None,
        }
    }

    #[test]
    fn a_change_counts_the_text_of_its_content_and_base() {
        let mut with_tags = draft("body!");
        with_tags.tags = vec!["ab".into(), "c".into()];
        let upsert = coalesce(None, edit(1, 1, PendingOp::Upsert(with_tags), 10));
        // "t" + "body!" + "ab" + "c", and the base's "t" + "base".
        assert_eq!(upsert.text_bytes(), 9 + 5);
        let delete = coalesce(None, edit(1, 1, PendingOp::Delete, 10));
        assert_eq!(delete.text_bytes(), 5);
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

    #[test]
    fn a_sent_change_is_resent_exactly_even_after_more_typing() {
        let first = coalesce(None, edit(1, 1, PendingOp::Upsert(draft("a")), 10));
        let pushed = first.to_push();
        assert_eq!(pushed, first);
        let marked = first.marked_sent(&pushed).expect("first send is recorded");
        assert!(marked.marked_sent(&pushed).is_none(), "recorded once");
        let typed = coalesce(Some(marked), edit(1, 2, PendingOp::Upsert(draft("ab")), 20));
        assert_eq!(typed.op, PendingOp::Upsert(draft("ab")), "newest text kept");
        let resend = typed.to_push();
        assert_eq!(resend.mutation_id, first.mutation_id);
        assert_eq!(resend.op, PendingOp::Upsert(draft("a")));
        assert_eq!((resend.edits, resend.last_edit_at), (1, 10));
        let other = coalesce(None, edit(2, 3, PendingOp::Delete, 30));
        assert!(typed.marked_sent(&other).is_none(), "another mutation");
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
