//! What a page restores from the copies it keeps outside the replica's
//! database, decided by pure functions:
//!
//! - the recovery journal, a synchronous copy of each note being typed kept
//!   until the database holds its text ([`restore_journal`]): an entry is
//!   restored as it is only over the stored copy it was typed on. When the
//!   note moved since (a pull stored another device's edit, another tab
//!   saved), the entry goes through the same three-way merge as any
//!   concurrent edit ([`merge_drafts`]), so a stale journal never overwrites
//!   newer text, and a stale delete never deletes a note edited or restored
//!   since;
//! - the write-back after the database was deleted or cleared under an open
//!   page ([`write_back`]): every note the page holds goes back, and each
//!   that may have had a pending change goes back with one that the server
//!   merges rather than applies over what it has.
//!
//! Promise: neither ever drops a text a person typed; where the two sides
//! cannot be merged, both are kept.

use serde::{Deserialize, Serialize};

use super::merge::merge_drafts;
use super::outbox::{coalesce, Edit, PendingChange, PendingOp};
use crate::domain::{MutationId, Note};

/// One entry of the recovery journal: the note as the page showed it, and
/// the stored copy its text derives from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub note: Note,
    /// The copy of the note the page had read from the database when this
    /// text was typed over it; `None` for a note the database did not hold
    /// yet, and in entries written before it was kept.
    #[serde(default)]
    pub typed_on: Option<Note>,
}

/// What to do with a journal entry when the page loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// Nothing to restore: the database holds this text, or the entry is a
    /// delete of a note that changed since. The entry can go.
    Drop,
    /// Show `note` and save it as the page's edit read from `base`, exactly
    /// as a keystroke is saved: the save merges it into whatever the database
    /// holds by then, and its pending change is based on `base`, so the server
    /// merges it with any edit made elsewhere rather than applying it over it.
    Edit { note: Note, base: Option<Note> },
    /// The stored note moved since, and the copy the entry was typed on is
    /// unknown (an entry of an older build): keep the stored note as it is
    /// and restore the entry's text as a note of its own, so neither is lost.
    Separate(Note),
}

/// Whether two copies hold the same text (title, body, tags, pin) and the
/// same deleted state.
fn same_text(a: &Note, b: &Note) -> bool {
    a.deleted == b.deleted && a.draft() == b.draft()
}

/// Decides what the journal `entry` becomes, given the note as the database
/// holds it now (`stored`, `None` if it holds none).
///
/// - The stored copy has the entry's text: [`Restore::Drop`].
/// - No stored copy (a note never saved, or dropped since): the entry is
///   restored as a new edit.
/// - The stored copy is the one the entry was typed on (same revision, same
///   text): the entry is restored over it.
/// - The stored copy moved since:
///   - two live copies are merged three ways over the copy typed on, the
///     stored side as `ours` (as when a page's save meets a moved copy): a
///     clean merge is shown and saved over the stored copy;
///   - failing that, if no newer revision arrived and the stored copy was
///     last edited before the entry, the stored copy is this page's own save
///     of earlier text of the same typing, and the entry is restored over it;
///   - a delete typed then is dropped: the note was edited or restored since,
///     and an edit beats a delete;
///   - otherwise (an overlap, or text typed over a note deleted since) the
///     entry is restored as the page's edit read from the copy it was typed
///     on, so the save and the server merge it like any concurrent edit and
///     keep both sides.
/// - The copy typed on is unknown: restored over the stored copy only if
///   that is at the revision the entry was typed at, else kept apart.
pub fn restore_journal(stored: Option<&Note>, entry: &JournalEntry) -> Restore {
    let typed = &entry.note;
    let Some(stored) = stored else {
        return Restore::Edit {
            note: typed.clone(),
            base: None,
        };
    };
    if same_text(stored, typed) {
        return Restore::Drop;
    }
    let Some(base) = &entry.typed_on else {
        return if stored.rev == typed.rev {
            Restore::Edit {
                note: typed.clone(),
                base: Some(stored.clone()),
            }
        } else {
            Restore::Separate(typed.clone())
        };
    };
    if stored.rev == base.rev && same_text(stored, base) {
        return Restore::Edit {
            note: typed.clone(),
            base: Some(stored.clone()),
        };
    }
    if !stored.deleted && !typed.deleted {
        let merged = merge_drafts(&base.draft(), &stored.draft(), &typed.draft(), false);
        if let (Some(content), false) = (merged.content, merged.conflicted) {
            let note = Note {
                rev: stored.rev,
                created_at: stored.created_at,
                ..stored.with_draft(content, typed.updated_at)
            };
            return Restore::Edit {
                note,
                base: Some(stored.clone()),
            };
        }
    }
    if stored.rev == base.rev && stored.updated_at <= typed.updated_at {
        // No newer revision arrived: only this device changed the stored
        // copy, before the entry's last edit. That is the page's own save of
        // earlier text of the same typing (a tab closed inside a save), which
        // the entry continues; merged, the two would overlap with themselves.
        return Restore::Edit {
            note: typed.clone(),
            base: Some(stored.clone()),
        };
    }
    if typed.deleted {
        return Restore::Drop;
    }
    Restore::Edit {
        note: typed.clone(),
        base: Some(base.clone()),
    }
}

/// What a page writes back into its database after it was deleted or
/// cleared while the page was open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteBack {
    /// Every note the page holds, tombstones included, as it shows them.
    pub notes: Vec<Note>,
    /// A pending change for each note that may have had one.
    pub pending: Vec<PendingChange>,
}

/// The write-back of the notes a page `held` when its database went away,
/// `unsynced` saying which of them may have had a pending change (a superset
/// is safe: see below). `fresh_id` gives each change its mutation id.
///
/// The outbox went with the database, and with it the base each pending
/// change was merged against. Each change is therefore sent from the
/// revision the page's copy stands on with no base content: if the server
/// is still at that revision, nothing else changed the note and the page's
/// text, which derives from it, is applied as it is; if the server moved
/// on, it merges the two sides with no base, so identical texts (the change
/// had reached the server before the database went) merge cleanly and
/// differing ones are both kept, the page's as the recorded conflict.
/// Nothing typed is lost, and nothing newer is overwritten. The notes
/// without a change come back from the server with the full download that
/// follows the write-back.
pub fn write_back(
    held: &[Note],
    unsynced: impl Fn(&Note) -> bool,
    mut fresh_id: impl FnMut() -> MutationId,
) -> WriteBack {
    let pending = held
        .iter()
        .filter(|note| unsynced(note))
        .map(|note| {
            coalesce(
                None,
                Edit {
                    note_id: note.id,
                    mutation_id: fresh_id(),
                    base_rev: note.rev,
                    base: None,
                    op: if note.deleted {
                        PendingOp::Delete
                    } else {
                        PendingOp::Upsert(note.draft())
                    },
                    at_ms: note.updated_at,
                    created_at: note.created_at,
                    // Timed by when the page's copy was last edited: the
                    // replica's clock went with the database.
                    hlc: None,
                },
            )
        })
        .collect();
    WriteBack {
        notes: held.to_vec(),
        pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ClientId;
    use crate::domain::{NoteDraft, NoteId, Revision};
    use crate::sync::apply::{decide, Decision, Outcome, StoredNote};
    use crate::sync::hlc::Hlc;
    use crate::sync::merge::Strategy;
    use crate::sync::replica::change_for;

    fn note(body: &str, rev: u64) -> Note {
        Note {
            rev: Revision(rev),
            ..Note::new(NoteId::new(1, [1; 10]), 10).with_draft(
                NoteDraft {
                    title: "t".into(),
                    body: body.into(),
                    tags: vec![],
                    pinned: false,
                },
                20,
            )
        }
    }

    fn entry(typed: Note, typed_on: Option<Note>) -> JournalEntry {
        JournalEntry {
            note: typed,
            typed_on,
        }
    }

    fn edited(note: &Note, body: &str) -> Note {
        let mut draft = note.draft();
        draft.body = body.into();
        note.with_draft(draft, note.updated_at + 5)
    }

    #[test]
    fn an_entry_the_database_holds_already_is_dropped() {
        let stored = note("a\nb\n", 2);
        let typed = stored.clone();
        assert_eq!(
            restore_journal(Some(&stored), &entry(typed, Some(note("a\n", 1)))),
            Restore::Drop
        );
    }

    #[test]
    fn an_entry_typed_on_the_stored_copy_is_restored_over_it() {
        let stored = note("a\n", 2);
        let typed = edited(&stored, "a\ntyped\n");
        assert_eq!(
            restore_journal(Some(&stored), &entry(typed.clone(), Some(stored.clone()))),
            Restore::Edit {
                note: typed,
                base: Some(stored)
            }
        );
    }

    #[test]
    fn a_note_never_saved_is_restored_as_new() {
        let typed = note("only here\n", 0);
        assert_eq!(
            restore_journal(None, &entry(typed.clone(), None)),
            Restore::Edit {
                note: typed,
                base: None
            }
        );
    }

    #[test]
    fn a_stale_entry_never_overwrites_newer_text_it_merges_with_it() {
        // Typed "mine" at the end on revision 1; another device then changed
        // the first line, which a pull stored as revision 2.
        let typed_on = note("first\nsecond\n", 1);
        let typed = edited(&typed_on, "first\nsecond\nmine\n");
        let stored = Note {
            rev: Revision(2),
            ..edited(&typed_on, "FIRST\nsecond\n")
        };
        let Restore::Edit { note, base } =
            restore_journal(Some(&stored), &entry(typed, Some(typed_on)))
        else {
            panic!("restored");
        };
        assert_eq!(note.body, "FIRST\nsecond\nmine\n");
        assert_eq!(
            note.rev,
            Revision(2),
            "the merge stands on the stored revision"
        );
        assert_eq!(base, Some(stored), "and derives from the stored copy");
    }

    #[test]
    fn an_entry_continuing_the_pages_own_last_save_is_restored_over_it() {
        // The tab closed inside a save: "…wor" was the copy typed on, the
        // save of "…word" committed, the entry holds "…words".
        let typed_on = note("the last wor\n", 0);
        let saved = edited(&typed_on, "the last word\n");
        let typed = edited(&saved, "the last words\n");
        assert_eq!(
            restore_journal(Some(&saved), &entry(typed.clone(), Some(typed_on.clone()))),
            Restore::Edit {
                note: typed.clone(),
                base: Some(saved.clone())
            }
        );
        // Stored copy edited after the entry's last edit, or a newer
        // revision: not this page's own save, so merged, both kept.
        let later = Note {
            updated_at: typed.updated_at + 1,
            ..saved.clone()
        };
        assert_eq!(
            restore_journal(Some(&later), &entry(typed.clone(), Some(typed_on.clone()))),
            Restore::Edit {
                note: typed.clone(),
                base: Some(typed_on.clone())
            }
        );
        let pulled = Note {
            rev: Revision(1),
            ..saved
        };
        assert_eq!(
            restore_journal(Some(&pulled), &entry(typed.clone(), Some(typed_on.clone()))),
            Restore::Edit {
                note: typed,
                base: Some(typed_on)
            }
        );
    }

    #[test]
    fn an_overlap_is_restored_as_an_edit_of_the_copy_it_was_typed_on() {
        let typed_on = note("one line\n", 1);
        let typed = edited(&typed_on, "one LINE\n");
        let stored = Note {
            rev: Revision(2),
            ..edited(&typed_on, "one row\n")
        };
        assert_eq!(
            restore_journal(Some(&stored), &entry(typed.clone(), Some(typed_on.clone()))),
            Restore::Edit {
                note: typed,
                base: Some(typed_on)
            }
        );
    }

    #[test]
    fn a_stale_delete_never_deletes_a_note_restored_or_edited_since() {
        let typed_on = note("kept\n", 1);
        let deleted = typed_on.tombstone(40);
        let restored = Note {
            rev: Revision(3),
            ..edited(&typed_on, "kept\nand edited\n")
        };
        assert_eq!(
            restore_journal(
                Some(&restored),
                &entry(deleted.clone(), Some(typed_on.clone()))
            ),
            Restore::Drop
        );
        // Over the copy it was typed on, the delete is restored.
        assert_eq!(
            restore_journal(
                Some(&typed_on),
                &entry(deleted.clone(), Some(typed_on.clone()))
            ),
            Restore::Edit {
                note: deleted,
                base: Some(typed_on)
            }
        );
    }

    #[test]
    fn text_typed_over_a_note_deleted_since_comes_back() {
        let typed_on = note("draft\n", 1);
        let typed = edited(&typed_on, "draft\nmore\n");
        let gone = Note {
            rev: Revision(2),
            ..typed_on.tombstone(30)
        };
        assert_eq!(
            restore_journal(Some(&gone), &entry(typed.clone(), Some(typed_on.clone()))),
            Restore::Edit {
                note: typed,
                base: Some(typed_on)
            }
        );
    }

    #[test]
    fn an_old_entry_without_its_base_is_kept_apart_once_the_note_moved() {
        let stored = note("newer\n", 3);
        let typed = note("older, typed\n", 2);
        assert_eq!(
            restore_journal(Some(&stored), &entry(typed.clone(), None)),
            Restore::Separate(typed.clone())
        );
        let same_rev = note("stored\n", 2);
        assert_eq!(
            restore_journal(Some(&same_rev), &entry(typed.clone(), None)),
            Restore::Edit {
                note: typed,
                base: Some(same_rev)
            }
        );
    }

    #[test]
    fn an_entry_of_an_older_build_reads_without_its_base() {
        let typed = note("x\n", 1);
        let json = serde_json::to_string(&serde_json::json!({ "note": typed })).expect("json");
        let read: JournalEntry = serde_json::from_str(&json).expect("reads");
        assert_eq!(read, entry(typed, None));
    }

    /// The server's answer to a write-back change, given what it holds.
    fn server_takes(server: &Note, pending: &PendingChange) -> (Option<NoteDraft>, bool) {
        let stored = StoredNote {
            note: server.clone(),
            hlc: Hlc {
                wall_ms: 1,
                counter: 0,
                client: ClientId::new(1, [9; 10]),
            },
            seq: 1,
            conflict: None,
            written_ms: 1,
        };
        let change = change_for(pending, ClientId::new(2, [2; 10]));
        match decide(Some(&stored), &change, Strategy::Merge, 1_000) {
            Decision::Accept(accepted) => (
                (!accepted.note.deleted).then(|| accepted.note.draft()),
                matches!(accepted.outcome, Outcome::Merged { conflicted: true }),
            ),
            Decision::Reject { reason, .. } => panic!("rejected: {reason}"),
        }
    }

    #[test]
    fn a_write_back_sends_only_what_may_be_unsynced_from_its_revision_without_a_base() {
        let synced = Note {
            id: NoteId::new(2, [2; 10]),
            ..note("synced\n", 4)
        };
        let typed = note("typed offline\n", 4);
        let mut ids = 0u8;
        let back = write_back(
            &[synced.clone(), typed.clone()],
            |n| n.id == typed.id,
            || {
                ids += 1;
                MutationId::new(5, [ids; 10])
            },
        );
        assert_eq!(back.notes, vec![synced, typed.clone()]);
        assert_eq!(back.pending.len(), 1);
        let pending = &back.pending[0];
        assert_eq!(
            (pending.note_id, pending.base_rev, &pending.base),
            (typed.id, Revision(4), &None)
        );
        assert_eq!(pending.op, PendingOp::Upsert(typed.draft()));
    }

    #[test]
    fn the_server_applies_a_write_back_where_nothing_moved_and_keeps_both_sides_where_something_did(
    ) {
        let typed = note("typed offline\n", 4);
        let back = write_back(
            std::slice::from_ref(&typed),
            |_| true,
            || MutationId::new(5, [5; 10]),
        );
        let pending = &back.pending[0];
        // The server is at the revision the text stands on: taken as sent.
        let at_same = note("before\n", 4);
        assert_eq!(
            server_takes(&at_same, pending),
            (Some(typed.draft()), false)
        );
        // The change reached the server before the database went: the
        // server's text is the page's, and nothing is flagged.
        let reached = Note {
            rev: Revision(5),
            ..typed.clone()
        };
        assert_eq!(
            server_takes(&reached, pending),
            (Some(typed.draft()), false)
        );
        // Another device changed it since: the server merges rather than
        // overwrite, and keeps both texts.
        let moved = Note {
            rev: Revision(5),
            ..note("someone else's\n", 5)
        };
        let (content, conflicted) = server_takes(&moved, pending);
        assert!(conflicted, "both sides kept: {content:?}");
    }
}
