//! An in-memory replica: the [`ReplicaStore`] the native simulation runs
//! many of in one process, with the browser's IndexedDB semantics
//! (`client::db::LocalDb`) and nothing else.
//!
//! Invariants (the same as the browser's database):
//! - at most one outbox entry per note, and a local edit writes the note and
//!   its coalesced outbox entry together;
//! - a local edit is saved by the browser's own rule,
//!   [`replica::save_edit`](super::replica::save_edit): based on the stored
//!   copy when the note has no pending change (a tombstone has no base
//!   content), and timed by the replica's clock, which every pulled page
//!   moves past the clocks it carries;
//! - [`ReplicaStore::settle`] and [`ReplicaStore::apply_page`] are atomic: no
//!   `await` happens while they change the maps, and each decision is the
//!   pure rule of [`replica`](super::replica);
//! - a pulled entry never replaces a newer stored revision, and meets a
//!   pending change only through [`replica::apply_entry`](super::replica::apply_entry)
//!   (kept, or rebased with the pending entry in the same step); its conflict
//!   record replaces (or clears) the note's.
//!
//! It is `!Send` (`RefCell`/`Cell`), like the browser's handle.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use super::driver::{recreated_note, Applied, PendingCounts, PortError, Recreated, ReplicaStore};
use super::hlc::Hlc;
use super::outbox::PendingChange;
use super::protocol::{ChangeResult, Checkpoint, ConflictSides, FeedEntry};
use super::replica::{
    acknowledge, apply_entry, clock_after_pull, is_newer, next_batch, requeue_over_quota,
    save_edit, AckDecision, EditStamp, EntryDecision,
};
use crate::domain::{ClientId, DomainError, MutationId, Note, NoteDraft, NoteId};

/// A recorded conflict: both sides, for the compare view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConflict {
    pub sides: ConflictSides,
    /// The feed position at which the conflict was recorded.
    pub seq: u64,
}

/// One replica's notes, outbox, conflicts, checkpoint and clock, in memory.
#[derive(Debug)]
pub struct MemoryReplica {
    notes: RefCell<BTreeMap<NoteId, Note>>,
    outbox: RefCell<BTreeMap<NoteId, PendingChange>>,
    conflicts: RefCell<BTreeMap<NoteId, MemoryConflict>>,
    checkpoint: Cell<Checkpoint>,
    resyncing: Cell<bool>,
    clock: Cell<Hlc>,
}

impl Default for MemoryReplica {
    fn default() -> Self {
        Self::for_client(ClientId::new(0, [0; 10]))
    }
}

impl MemoryReplica {
    /// An empty replica at the start of the feed, with a fixed client id.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty replica whose clock is `client`'s.
    pub fn for_client(client: ClientId) -> Self {
        Self {
            notes: RefCell::default(),
            outbox: RefCell::default(),
            conflicts: RefCell::default(),
            checkpoint: Cell::default(),
            resyncing: Cell::default(),
            clock: Cell::new(Hlc::zero(client)),
        }
    }

    /// Saves a local edit of `id` to `draft` at `now_ms`, creating the note if
    /// this replica does not hold it (an edit of a tombstone brings the note
    /// back). `mutation_id` is used only if the edit starts a pending change.
    pub fn edit(
        &self,
        id: NoteId,
        draft: NoteDraft,
        now_ms: u64,
        mutation_id: MutationId,
    ) -> Result<(), DomainError> {
        let draft = draft.revalidate()?;
        let stored = self.note(id);
        let note = match &stored {
            Some(s) => Note {
                deleted: false,
                ..s.with_draft(draft, now_ms)
            },
            None => Note::new(id, now_ms).with_draft(draft, now_ms),
        };
        self.save(note, stored, now_ms, mutation_id);
        Ok(())
    }

    /// Deletes `id` locally at `now_ms` (a tombstone plus a pending delete).
    /// Returns whether there was a live note to delete.
    pub fn delete(&self, id: NoteId, now_ms: u64, mutation_id: MutationId) -> bool {
        let Some(stored) = self.note(id).filter(|n| !n.deleted) else {
            return false;
        };
        let note = stored.tombstone(now_ms);
        self.save(note, Some(stored), now_ms, mutation_id);
        true
    }

    /// Saves an edit read from the stored copy, by the same rule as the
    /// browser's database ([`replica::save_edit`]).
    fn save(&self, note: Note, stored: Option<Note>, at_ms: u64, mutation_id: MutationId) {
        let mut outbox = self.outbox.borrow_mut();
        let saved = save_edit(
            &note,
            stored.as_ref(),
            stored.as_ref(),
            outbox.remove(&note.id),
            self.clock.get(),
            EditStamp { mutation_id, at_ms },
        );
        self.clock.set(saved.clock);
        outbox.insert(saved.note.id, saved.pending);
        self.notes.borrow_mut().insert(saved.note.id, saved.note);
    }

    /// The replica's clock (see [`Hlc`]).
    pub fn clock(&self) -> Hlc {
        self.clock.get()
    }

    /// One note, tombstones included.
    pub fn note(&self, id: NoteId) -> Option<Note> {
        self.notes.borrow().get(&id).cloned()
    }

    /// Every note, tombstones included, in id order.
    pub fn notes(&self) -> Vec<Note> {
        self.notes.borrow().values().cloned().collect()
    }

    /// The notes a person sees: tombstones left out.
    pub fn live_notes(&self) -> Vec<Note> {
        self.notes
            .borrow()
            .values()
            .filter(|n| !n.deleted)
            .cloned()
            .collect()
    }

    /// Every outbox entry, in note-id order.
    pub fn pending(&self) -> Vec<PendingChange> {
        self.outbox.borrow().values().cloned().collect()
    }

    /// Every recorded conflict.
    pub fn conflicts(&self) -> BTreeMap<NoteId, MemoryConflict> {
        self.conflicts.borrow().clone()
    }

    /// The stored checkpoint.
    pub fn stored_checkpoint(&self) -> Checkpoint {
        self.checkpoint.get()
    }
}

#[async_trait(?Send)]
impl ReplicaStore for MemoryReplica {
    async fn checkpoint(&self) -> Result<Checkpoint, PortError> {
        Ok(self.checkpoint.get())
    }

    async fn pending_counts(&self) -> Result<PendingCounts, PortError> {
        let outbox = self.outbox.borrow();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(PendingCounts {
            total: count(outbox.len()),
            pushable: count(outbox.values().filter(|p| p.rejected.is_none()).count()),
        })
    }

    async fn next_batch(&self, max: usize) -> Result<Vec<PendingChange>, PortError> {
        Ok(next_batch(self.pending(), max))
    }

    async fn requeue_over_quota(&self) -> Result<u32, PortError> {
        let mut outbox = self.outbox.borrow_mut();
        let mut requeued = 0u32;
        for entry in outbox.values_mut() {
            if let Some(again) = requeue_over_quota(entry) {
                *entry = again;
                requeued += 1;
            }
        }
        Ok(requeued)
    }

    async fn mark_sent(&self, pushed: &[PendingChange]) -> Result<(), PortError> {
        let mut outbox = self.outbox.borrow_mut();
        for p in pushed {
            if let Some(marked) = outbox.get(&p.note_id).and_then(|c| c.marked_sent(p)) {
                outbox.insert(p.note_id, marked);
            }
        }
        Ok(())
    }

    async fn settle(
        &self,
        sent: &[PendingChange],
        results: &[ChangeResult],
        fresh_ids: &[MutationId],
    ) -> Result<Vec<Recreated>, PortError> {
        let mut outbox = self.outbox.borrow_mut();
        let mut recreated = Vec::new();
        for ((sent, result), fresh) in sent.iter().zip(results).zip(fresh_ids) {
            let Some(current) = outbox.get(&sent.note_id) else {
                continue;
            };
            match acknowledge(current, sent, result, *fresh) {
                AckDecision::Remove => {
                    outbox.remove(&sent.note_id);
                }
                AckDecision::Keep(kept) => {
                    outbox.insert(sent.note_id, *kept);
                }
                AckDecision::Recreate(pending) => {
                    outbox.remove(&sent.note_id);
                    let mut notes = self.notes.borrow_mut();
                    let held = notes.remove(&sent.note_id);
                    self.conflicts.borrow_mut().remove(&sent.note_id);
                    if let Some(note) = recreated_note(held.as_ref(), &pending) {
                        notes.insert(note.id, note.clone());
                        outbox.insert(pending.note_id, *pending);
                        recreated.push(Recreated {
                            old: sent.note_id,
                            note,
                        });
                    }
                }
            }
        }
        Ok(recreated)
    }

    async fn apply_page(
        &self,
        entries: &[FeedEntry],
        checkpoint: Checkpoint,
    ) -> Result<Applied, PortError> {
        let mut outbox = self.outbox.borrow_mut();
        let mut notes = self.notes.borrow_mut();
        let mut conflicts = self.conflicts.borrow_mut();
        let mut applied = Applied::default();
        for entry in entries {
            let id = entry.note.id;
            let newer = is_newer(notes.get(&id).map(|s| s.rev), entry.note.rev);
            match apply_entry(entry, outbox.get(&id)) {
                EntryDecision::Store(note) if newer => {
                    applied.notes.push(note.clone());
                    notes.insert(id, note);
                }
                EntryDecision::Rebase { note, pending } if newer => {
                    applied.notes.push(note.clone());
                    notes.insert(id, note);
                    outbox.insert(id, *pending);
                }
                _ => {}
            }
            match &entry.conflict {
                Some(sides) => {
                    applied.others = true;
                    conflicts.insert(
                        id,
                        MemoryConflict {
                            sides: sides.clone(),
                            seq: entry.seq,
                        },
                    );
                }
                None => {
                    applied.others |= conflicts.remove(&id).is_some();
                }
            }
        }
        self.clock.set(clock_after_pull(self.clock.get(), entries));
        self.checkpoint.set(checkpoint);
        Ok(applied)
    }

    async fn begin_resync(&self) -> Result<(), PortError> {
        self.checkpoint.set(Checkpoint::default());
        self.resyncing.set(true);
        Ok(())
    }

    async fn resyncing(&self) -> Result<bool, PortError> {
        Ok(self.resyncing.get())
    }

    async fn finish_resync(&self, present: &BTreeSet<NoteId>) -> Result<Vec<NoteId>, PortError> {
        let outbox = self.outbox.borrow();
        let gone = |id: &NoteId| !present.contains(id) && !outbox.contains_key(id);
        let dropped: Vec<NoteId> = self.notes.borrow().keys().copied().filter(gone).collect();
        self.notes.borrow_mut().retain(|id, _| !gone(id));
        self.conflicts.borrow_mut().retain(|id, _| !gone(id));
        self.resyncing.set(false);
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Revision;
    use crate::sync::protocol::ChangeOp;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn id(n: u8) -> NoteId {
        NoteId::new(100 + u64::from(n), [n; 10])
    }

    fn mid(n: u8) -> MutationId {
        MutationId::new(200 + u64::from(n), [n; 10])
    }

    fn draft(body: &str) -> NoteDraft {
        NoteDraft {
            title: "t".into(),
            body: body.into(),
            tags: vec![],
            pinned: false,
        }
    }

    fn server_note(n: u8, rev: u64, body: &str) -> Note {
        Note {
            rev: Revision(rev),
            ..Note::new(id(n), 1).with_draft(draft(body), 1)
        }
    }

    fn entry(seq: u64, note: Note) -> FeedEntry {
        FeedEntry {
            seq,
            note,
            conflict: None,
            hlc: None,
        }
    }

    #[test]
    fn edits_coalesce_into_one_pending_change_based_on_the_stored_copy() {
        let r = MemoryReplica::new();
        block_on(r.apply_page(&[entry(3, server_note(1, 2, "server"))], Checkpoint(3)))
            .expect("page");
        r.edit(id(1), draft("a"), 10, mid(1)).expect("edit");
        r.edit(id(1), draft("ab"), 11, mid(2)).expect("edit");
        let pending = r.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].mutation_id, mid(1));
        assert_eq!(pending[0].base_rev, Revision(2));
        assert_eq!(pending[0].base, Some(draft("server")));
        assert_eq!(pending[0].op, ChangeOp::Upsert(draft("ab")));
        let note = r.note(id(1)).expect("stored");
        assert_eq!((note.body.as_str(), note.rev), ("ab", Revision(2)));
    }

    #[test]
    fn a_new_note_has_no_base_and_a_delete_is_a_tombstone() {
        let r = MemoryReplica::new();
        assert!(!r.delete(id(1), 5, mid(1)), "nothing to delete");
        r.edit(id(1), draft("x"), 10, mid(2)).expect("edit");
        assert_eq!(r.pending()[0].base_rev, Revision::NEW);
        assert_eq!(r.pending()[0].base, None);
        assert!(r.delete(id(1), 11, mid(3)));
        assert_eq!(r.pending()[0].op, ChangeOp::Delete);
        assert!(r.live_notes().is_empty());
        assert!(r.note(id(1)).expect("tombstone").deleted);
    }

    #[test]
    fn invalid_drafts_are_refused() {
        let r = MemoryReplica::new();
        let bad = NoteDraft {
            title: "a\u{0}".into(),
            ..draft("x")
        };
        assert!(r.edit(id(1), bad, 1, mid(1)).is_err());
        assert!(r.pending().is_empty());
    }

    #[test]
    fn settling_removes_untouched_and_keeps_edited_entries() {
        let r = MemoryReplica::new();
        r.edit(id(1), draft("a"), 10, mid(1)).expect("edit");
        r.edit(id(2), draft("b"), 10, mid(2)).expect("edit");
        let sent = r.pending();
        r.edit(id(2), draft("bc"), 11, mid(3)).expect("edit");
        let applied = |rev| ChangeResult::Applied {
            rev: Revision(rev),
            seq: rev,
        };
        block_on(r.settle(&sent, &[applied(1), applied(2)], &[mid(8), mid(9)])).expect("settle");
        let pending = r.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].note_id, id(2));
        assert_eq!(pending[0].mutation_id, mid(9));
        assert_eq!(pending[0].base_rev, Revision(2));
        assert_eq!(pending[0].base, Some(draft("b")));
    }

    #[test]
    fn pulls_keep_pending_text_and_never_go_back_a_revision() {
        let r = MemoryReplica::new();
        block_on(r.apply_page(&[entry(5, server_note(1, 3, "new"))], Checkpoint(5))).expect("page");
        block_on(r.apply_page(&[entry(4, server_note(1, 2, "old"))], Checkpoint(5))).expect("page");
        assert_eq!(r.note(id(1)).expect("stored").body, "new");
        r.edit(id(1), draft("mine"), 10, mid(1)).expect("edit");
        block_on(r.apply_page(&[entry(6, server_note(1, 4, "theirs"))], Checkpoint(6)))
            .expect("page");
        assert_eq!(r.note(id(1)).expect("stored").body, "mine");
        assert_eq!(r.stored_checkpoint(), Checkpoint(6));
    }

    #[test]
    fn conflict_records_follow_the_feed() {
        let r = MemoryReplica::new();
        let sides = ConflictSides {
            server: Some(draft("s")),
            client: Some(draft("c")),
            server_by: None,
            client_by: None,
        };
        let mut conflicted = entry(2, server_note(1, 2, "s"));
        conflicted.conflict = Some(sides.clone());
        block_on(r.apply_page(&[conflicted], Checkpoint(2))).expect("page");
        assert_eq!(r.conflicts()[&id(1)].sides, sides);
        block_on(r.apply_page(&[entry(3, server_note(1, 3, "s"))], Checkpoint(3))).expect("page");
        assert!(r.conflicts().is_empty());
    }

    #[test]
    fn a_clean_pull_rebases_the_pending_edit_and_an_overlap_keeps_it() {
        let r = MemoryReplica::new();
        block_on(r.apply_page(&[entry(1, server_note(1, 1, "a\nb\nc"))], Checkpoint(1)))
            .expect("page");
        r.edit(id(1), draft("A\nb\nc"), 10, mid(1)).expect("edit");
        block_on(r.apply_page(&[entry(2, server_note(1, 2, "a\nb\nC"))], Checkpoint(2)))
            .expect("page");
        assert_eq!(r.note(id(1)).expect("stored").body, "A\nb\nC");
        assert_eq!(r.note(id(1)).expect("stored").rev, Revision(2));
        let pending = r.pending();
        assert_eq!(pending[0].base_rev, Revision(2));
        assert_eq!(pending[0].base, Some(draft("a\nb\nC")));
        assert_eq!(pending[0].op, ChangeOp::Upsert(draft("A\nb\nC")));
        assert_eq!(
            pending[0].mutation_id,
            mid(1),
            "never sent, so the id is free"
        );

        block_on(r.apply_page(&[entry(3, server_note(1, 3, "X\nb\nC"))], Checkpoint(3)))
            .expect("page");
        assert_eq!(
            r.note(id(1)).expect("stored").body,
            "A\nb\nC",
            "overlap: kept"
        );
        assert_eq!(r.pending()[0].base_rev, Revision(2));
    }

    #[test]
    fn a_sent_change_is_not_rebased() {
        let r = MemoryReplica::new();
        block_on(r.apply_page(&[entry(1, server_note(1, 1, "a\nb"))], Checkpoint(1)))
            .expect("page");
        r.edit(id(1), draft("A\nb"), 10, mid(1)).expect("edit");
        let pushed: Vec<PendingChange> = r.pending().iter().map(PendingChange::to_push).collect();
        block_on(r.mark_sent(&pushed)).expect("mark");
        block_on(r.apply_page(&[entry(2, server_note(1, 2, "a\nB"))], Checkpoint(2)))
            .expect("page");
        assert_eq!(r.note(id(1)).expect("stored").body, "A\nb");
        let resend = r.pending()[0].to_push();
        assert_eq!(
            (resend.mutation_id, resend.op),
            (pushed[0].mutation_id, pushed[0].op.clone())
        );
    }

    #[test]
    fn a_finished_resync_drops_notes_the_server_no_longer_has() {
        let r = MemoryReplica::new();
        block_on(r.apply_page(
            &[
                entry(1, server_note(1, 1, "kept")),
                entry(2, server_note(2, 1, "purged")),
            ],
            Checkpoint(2),
        ))
        .expect("page");
        r.edit(id(3), draft("local only"), 10, mid(3))
            .expect("edit");
        block_on(r.begin_resync()).expect("begin");
        assert_eq!(r.stored_checkpoint(), Checkpoint(0));
        assert!(block_on(r.resyncing()).expect("flag"));
        block_on(r.apply_page(&[entry(5, server_note(1, 1, "kept"))], Checkpoint(5)))
            .expect("page");
        block_on(r.finish_resync(&BTreeSet::from([id(1)]))).expect("finish");
        let ids: Vec<NoteId> = r.notes().iter().map(|n| n.id).collect();
        assert_eq!(
            ids,
            vec![id(1), id(3)],
            "pending local note kept, purged one gone"
        );
        assert!(!block_on(r.resyncing()).expect("flag"));
    }
}
