//! The page side of local-first editing: everything the UI asks for, done
//! against IndexedDB.
//!
//! Promises:
//! - what a person types is in the page's signals at once, in a synchronous
//!   recovery journal (localStorage) right after the task that brought it
//!   (once per task: a paste arrives as an input event per line), or at once
//!   when the page is hidden or closed, and in IndexedDB within one
//!   write's time: a write starts as soon as the note changed and no write of
//!   it is under way, so typing faster than the database writes coalesces
//!   into one write in flight and one waiting, and a closed tab or a failed
//!   write loses nothing;
//! - writes happen one at a time, in order, through one queue; each is done
//!   by the tab's worker once it listens ([`WorkerSaves`]), by the page
//!   itself before that and whenever the worker stopped before answering;
//! - what other contexts store (another tab's edits, the sync leader's
//!   pulls) reaches the page as the ids of the changed notes, read back from
//!   IndexedDB one batch at a time, in order, after the first load;
//! - a failed write is shown with the reason, kept as "not saved" for that
//!   note alone, and retried by the next edit or the Retry button; a closed
//!   database is reopened and the write retried once;
//! - a database deleted or cleared while the page is open is never written
//!   into as if nothing happened: the page writes back every note it holds,
//!   with a pending change for each it may not have synced
//!   ([`crate::sync::recovery::write_back`]), says so, and the sync worker
//!   downloads everything else again;
//! - the recovery journal is restored on load only over the copy it was
//!   typed on, else merged ([`crate::sync::recovery::restore_journal`]);
//! - this tab's notes belong to its account: when the browser is signed in
//!   as someone else (another tab, or the server refusing a request naming
//!   this account), the tab stops syncing at once, keeps saving locally, and
//!   says so; it syncs again once its account signs in again;
//! - signing out first tries to push what is unsynced, then names the notes
//!   that would be lost before deleting anything.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use gloo_timers::callback::{Interval, Timeout};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::db::{newly_unreadable, DbError, DbEvent, EditMeta, LocalDb};
use super::worker::CHANNEL_NAME;
use super::{now_ms, random10, session, timings};
use crate::api::Account;
use crate::bridge::{decode, encode, Broadcast, FromWorker, ToWorker};
use crate::client::split;
use crate::domain::{
    newest_first, ClientId, MutationId, Note, NoteDraft, NoteId, Revision, UserId,
};
use crate::sync::engine::{SyncState, SyncStatus};
use crate::sync::recovery::{restore_journal, write_back, JournalEntry, Restore};
use crate::transfer::{export_json, plan_import};
use crate::ui::model::{
    copy_title, restored, stale_trash, step_in, SaveState, Trashed, WorkerView,
};
use crate::ui::notes::Notes;
use crate::ui::{ExportFormat, NotesState};

/// What another context changed in IndexedDB, for the page to take in.
enum Refresh {
    /// Another tab saved these notes: read them back.
    Notes(Vec<NoteId>),
    /// The sync leader stored these pulled notes (given whole) and dropped
    /// those ([`Broadcast::Pulled`]).
    Pulled {
        stored: Vec<Note>,
        dropped: Vec<NoteId>,
        others: bool,
        recreated: Vec<(NoteId, NoteId)>,
    },
    /// Read everything again (a message from an older build).
    Everything,
}

struct Page {
    state: NotesState,
    user: UserId,
    db: RefCell<Option<Rc<LocalDb>>>,
    /// Held while the database is opened (and, if it was lost, written
    /// back): one opening at a time.
    opening: futures::lock::Mutex<()>,
    /// The notes that may have a pending change in the outbox: its keys as
    /// last read, and every note saved since. What a write-back sends as
    /// changes, if the database goes away (a superset is safe).
    unsynced: RefCell<HashSet<NoteId>>,
    /// The notes saved since the outbox's keys were last read.
    saved_since_read: RefCell<HashSet<NoteId>>,
    /// The stored records this page and its worker could not read.
    unreadable: RefCell<Vec<String>>,
    dirty: RefCell<HashSet<NoteId>>,
    /// The copy of each note as last read from IndexedDB: what an edit is
    /// based on until it is saved with a pending change.
    bases: RefCell<HashMap<NoteId, Note>>,
    /// Notes waiting in `queue` (each at most once).
    queued: RefCell<HashSet<NoteId>>,
    /// Notes changed since their journal copy was last written.
    unjournaled: RefCell<HashSet<NoteId>>,
    queue: mpsc::UnboundedSender<NoteId>,
    refresh: mpsc::UnboundedSender<Refresh>,
    worker: RefCell<Option<web_sys::Worker>>,
    worker_saves: WorkerSaves,
    channel: Option<web_sys::BroadcastChannel>,
}

/// Who saved an edit, and so who tells the other contexts about it.
enum SavedBy {
    /// The tab's worker, which also told its sync loop, the other contexts
    /// and its count reporter.
    Worker,
    Page,
}

/// The saves sent to this tab's worker and waiting for its answer.
///
/// A save goes to the worker only while it listens (from its `Ready` until
/// it is stopped or fails): a message posted sooner is lost. Stopping drops
/// every waiting save, so its writer learns the worker will not answer and
/// saves the note itself; saving again is safe whether or not the worker's
/// transaction committed, as the page's save merges its text into whatever
/// is stored.
#[derive(Default)]
struct WorkerSaves {
    listening: Cell<bool>,
    /// The worker's name for itself, from its `Ready`.
    worker: Cell<Option<u32>>,
    next_id: Cell<u32>,
    waiting: RefCell<HashMap<u32, oneshot::Sender<Result<Note, DbError>>>>,
}

impl WorkerSaves {
    fn listening(&self, worker: u32) {
        self.listening.set(true);
        self.worker.set(Some(worker));
    }

    /// Whether `worker` is this page's: what it saved came from this page.
    fn is_mine(&self, worker: u32) -> bool {
        self.worker.get() == Some(worker)
    }

    fn stopped(&self) {
        self.listening.set(false);
        self.waiting.borrow_mut().clear();
    }

    /// Registers a save, or `None` when the worker does not listen.
    fn begin(&self) -> Option<(u32, oneshot::Receiver<Result<Note, DbError>>)> {
        if !self.listening.get() {
            return None;
        }
        let id = self.next_id.get().wrapping_add(1);
        self.next_id.set(id);
        let (answer, answered) = oneshot::channel();
        self.waiting.borrow_mut().insert(id, answer);
        Some((id, answered))
    }

    /// Forgets a save that could not be sent.
    fn abandoned(&self, id: u32) {
        self.waiting.borrow_mut().remove(&id);
    }

    fn answered(&self, id: u32, result: Result<Note, DbError>) {
        if let Some(answer) = self.waiting.borrow_mut().remove(&id) {
            // The writer may have stopped waiting; nothing then needs it.
            let _ = answer.send(result);
        }
    }
}

thread_local! {
    static PAGE: RefCell<Option<Rc<Page>>> = const { RefCell::new(None) };
    /// The signed-in user's recovery journal prefix.
    static JOURNAL: RefCell<String> = const { RefCell::new(String::new()) };
}

fn page() -> Option<Rc<Page>> {
    PAGE.with(|p| p.borrow().clone())
}

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

mod journal {
    //! The recovery journal: a synchronous copy of every unsaved note in
    //! localStorage, with the stored copy its text was typed on, written on
    //! each keystroke and removed once IndexedDB holds the same text.
    use super::*;

    fn key(id: NoteId) -> String {
        JOURNAL.with(|j| format!("{}{id}", j.borrow()))
    }

    pub fn put(note: &Note, typed_on: Option<&Note>) {
        let entry = JournalEntry {
            note: note.clone(),
            typed_on: typed_on.cloned(),
        };
        if let (Some(storage), Ok(json)) = (local_storage(), serde_json::to_string(&entry)) {
            // Best effort: if this fails too, the text is still on the page.
            let _ = storage.set_item(&key(note.id), &json);
        }
    }

    pub fn remove(id: NoteId) {
        if let Some(storage) = local_storage() {
            let _ = storage.remove_item(&key(id));
        }
    }

    /// Every entry; one written by an older build (a bare note) reads
    /// without the copy it was typed on.
    pub fn all() -> Vec<JournalEntry> {
        let Some(storage) = local_storage() else {
            return Vec::new();
        };
        let len = storage.length().unwrap_or(0);
        let keys: Vec<String> = (0..len)
            .filter_map(|i| storage.key(i).ok().flatten())
            .collect();
        let prefix = JOURNAL.with(|j| j.borrow().clone());
        keys.into_iter()
            .filter(|k| !prefix.is_empty() && k.starts_with(&prefix))
            .filter_map(|k| storage.get_item(&k).ok().flatten())
            .filter_map(|json| {
                serde_json::from_slice::<JournalEntry>(json.as_bytes())
                    .ok()
                    .or_else(|| {
                        let note = serde_json::from_slice::<Note>(json.as_bytes()).ok()?;
                        Some(JournalEntry {
                            note,
                            typed_on: None,
                        })
                    })
            })
            .collect()
    }
}

impl Page {
    fn usable_db(&self) -> Option<Rc<LocalDb>> {
        self.db.borrow().clone().filter(|db| db.usable())
    }

    /// The local database. Opened on first use, and again once the handle
    /// is unusable: if the database it opened is gone (deleted or cleared
    /// meanwhile, [`DbError::Lost`]), what this page holds is written back
    /// into the new one before anything else may use it.
    async fn db(&self) -> Result<Rc<LocalDb>, DbError> {
        if let Some(db) = self.usable_db() {
            return Ok(db);
        }
        let _opening = self.opening.lock().await;
        if let Some(db) = self.usable_db() {
            return Ok(db);
        }
        let previous = self.db.borrow_mut().take();
        let fresh = match LocalDb::open(&self.user).await {
            Ok(db) => Rc::new(db),
            Err(e) => {
                *self.db.borrow_mut() = previous;
                return Err(e);
            }
        };
        if previous.is_some_and(|p| p.epoch() != fresh.epoch()) {
            if let Err(e) = self.write_back(&fresh).await {
                fresh.close();
                self.fail(format!(
                    "The notes database was deleted while notesync was open, and the notes on \
                     this page could not be written back: {e} They stay on this page and the \
                     recovery copy holds your latest text; do not close this tab."
                ));
                return Err(e);
            }
        }
        fresh.listen(|event| {
            if let Some(page) = page() {
                page.database_event(event);
            }
        });
        *self.db.borrow_mut() = Some(fresh.clone());
        Ok(fresh)
    }

    /// The database changed under this page ([`DbEvent`]): its connections
    /// are closed already.
    fn database_event(self: &Rc<Self>, event: DbEvent) {
        match event {
            DbEvent::Upgraded => {
                stop_worker();
                self.state.outdated.set(true);
            }
            DbEvent::Gone => {
                // The worker's handle met the same: it starts again on the
                // database as it is once this page has written back.
                stop_worker();
                let page = self.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let current = page.db.borrow().clone();
                    if let Some(db) = current {
                        // Reconnects, and finds out whether it is the same
                        // database.
                        let _ = db.verify().await;
                    }
                    match page.db().await {
                        Ok(_) => restart_worker(),
                        Err(DbError::Outdated) => page.state.outdated.set(true),
                        Err(_) => {}
                    }
                });
            }
        }
    }

    /// Writes what this page holds back into `db`, a new database that
    /// replaced the one it had (see [`write_back`]).
    async fn write_back(&self, db: &LocalDb) -> Result<(), DbError> {
        let held = self.state.notes.with_untracked(|ns| ns.to_vec());
        let maybe_unsynced: HashSet<NoteId> = self
            .unsynced
            .borrow()
            .iter()
            .chain(self.dirty.borrow().iter())
            .copied()
            .collect();
        let back = write_back(
            &held,
            |n| maybe_unsynced.contains(&n.id),
            || MutationId::new(now_ms(), random10()),
        );
        let trash = self.state.trash.get_untracked();
        db.write_back(&back, &trash).await?;
        {
            let mut bases = self.bases.borrow_mut();
            for note in &held {
                bases.insert(note.id, note.clone());
            }
        }
        let live = held.iter().filter(|n| !n.deleted).count();
        // No account signed in: the deletion was a sign-out in another tab.
        let why = if session::cached().is_none() {
            "You signed out in another tab, which removed this browser's copy of your notes"
        } else {
            "The notes database of this browser was deleted while notesync was open"
        };
        self.state.notice.set(Some(format!(
            "{why}. The {live} {} shown here {} written back{}, so nothing typed here is lost; \
             everything else on the server is downloaded again once you are signed in.",
            if live == 1 { "note" } else { "notes" },
            if live == 1 { "was" } else { "were" },
            match back.pending.len() {
                0 => String::new(),
                n => format!(", with the changes of {n} not yet on the server"),
            }
        )));
        Ok(())
    }

    /// Reads which notes have a pending change again, keeping those saved
    /// meanwhile.
    async fn refresh_unsynced(&self) {
        let Ok(db) = self.db().await else { return };
        self.saved_since_read.borrow_mut().clear();
        if let Ok(ids) = db.pending_ids().await {
            let mut unsynced: HashSet<NoteId> = ids.into_iter().collect();
            unsynced.extend(self.saved_since_read.borrow().iter().copied());
            *self.unsynced.borrow_mut() = unsynced;
        }
    }

    fn saved(&self, id: NoteId) {
        self.unsynced.borrow_mut().insert(id);
        self.saved_since_read.borrow_mut().insert(id);
    }

    /// Says which stored records this page's reads skipped since.
    fn report_unreadable(&self) {
        self.unreadable_found(newly_unreadable());
    }

    /// Says, once each, which stored records could not be read (by this
    /// page, or by its worker: `records`).
    fn unreadable_found(&self, records: Vec<String>) {
        if records.is_empty() {
            return;
        }
        let mut all = self.unreadable.borrow_mut();
        all.extend(records);
        let (count, are) = match all.len() {
            1 => ("1 stored record".to_string(), "is"),
            n => (format!("{n} stored records"), "are"),
        };
        self.state.notice.set(Some(format!(
            "{count} could not be read and {are} left out (kept as stored); every other note \
             is shown and synced. Unreadable: {}.",
            all.join("; ")
        )));
    }

    fn current(&self, id: NoteId) -> Option<Note> {
        self.state.note(id)
    }

    /// Saves `note`, through the worker when it listens, and says who saved
    /// it: the worker announces its own saves.
    async fn write(&self, note: &Note) -> Result<(Note, SavedBy), DbError> {
        let base = self.bases.borrow().get(&note.id).cloned();
        if let Some(answer) = self.write_in_worker(note, base.clone()) {
            match answer.await {
                // The worker's handle met a database gone: the page's own
                // saves write back first.
                Ok(Err(DbError::Lost | DbError::Closed)) | Err(_) => {}
                Ok(result) => return result.map(|stored| (stored, SavedBy::Worker)),
            }
        }
        self.write_here(note, base)
            .await
            .map(|stored| (stored, SavedBy::Page))
    }

    /// Saves `note` through the page's own connection, reopened once if the
    /// browser closed it.
    async fn write_here(&self, note: &Note, base: Option<Note>) -> Result<Note, DbError> {
        let meta = || EditMeta {
            mutation_id: MutationId::new(now_ms(), random10()),
            at_ms: now_ms(),
        };
        let db = self.db().await?;
        match db.save_edit(note, base.as_ref(), meta()).await {
            Err(e) if e.needs_reopen() || e == DbError::Lost => {
                // Reconnects onto the same database, or finds it gone: then
                // the next handle is opened after writing back.
                let _ = db.verify().await;
                self.db()
                    .await?
                    .save_edit(note, base.as_ref(), meta())
                    .await
            }
            result => result,
        }
    }

    /// Sends the save to the worker, when it listens.
    fn write_in_worker(
        &self,
        note: &Note,
        base: Option<Note>,
    ) -> Option<oneshot::Receiver<Result<Note, DbError>>> {
        let worker = self.worker.borrow().clone()?;
        let (id, answered) = self.worker_saves.begin()?;
        let message = ToWorker::Save {
            id,
            note: Box::new(note.clone()),
            base: base.map(Box::new),
            mutation_id: MutationId::new(now_ms(), random10()),
            at_ms: now_ms(),
        };
        if worker
            .post_message(&JsValue::from_str(&encode(&message)))
            .is_err()
        {
            self.worker_saves.abandoned(id);
            return None;
        }
        Some(answered)
    }

    async fn save_now(&self, id: NoteId) {
        let Some(note) = self.current(id) else {
            self.dirty.borrow_mut().remove(&id);
            return;
        };
        if !note.deleted {
            if let Err(e) = note.draft().revalidate() {
                self.fail_save(
                    id,
                    format!("“{}” cannot be saved: {e}.", note.display_title()),
                );
                return;
            }
        }
        match self.write(&note).await {
            Ok((stored, saved_by)) => {
                let unchanged_since = self.current(id).as_ref() == Some(&note);
                let merged = stored.draft() != note.draft();
                if unchanged_since && merged {
                    // The stored copy moved under this page and took the
                    // page's edit in: show the merge.
                    self.state.notes.update(|ns| {
                        if let Some(n) = ns.find_mut(|n| n.id == id) {
                            *n = stored.clone();
                        }
                    });
                    if self.state.selected.get_untracked() == Some(id) {
                        self.state.editor_epoch.update(|e| *e += 1);
                    }
                } else if stored.rev > note.rev {
                    // The page's text now stands on the revision it was saved
                    // over: a pulled copy is judged newer or older than what
                    // this page holds by that revision (`take_pulled`), and
                    // one at the revision this text was saved over is older.
                    self.state
                        .notes
                        .maybe_update(|ns| match ns.find_mut(|n| n.id == id) {
                            Some(n) if n.rev < stored.rev => {
                                n.rev = stored.rev;
                                n.created_at = stored.created_at;
                                true
                            }
                            _ => false,
                        });
                }
                // The page's text derives from what it shows: the merge if it
                // took it, else its own note (typing that went on meanwhile is
                // merged into the stored copy by the next save).
                let derives_from = if unchanged_since { stored } else { note };
                self.bases.borrow_mut().insert(id, derives_from);
                self.saved(id);
                if unchanged_since {
                    self.dirty.borrow_mut().remove(&id);
                    journal::remove(id);
                    let mut none_failed = false;
                    self.state.save_states.update(|states| {
                        states.remove(&id);
                        none_failed = !states.values().any(|s| *s == SaveState::Failed);
                    });
                    if none_failed {
                        self.state.storage_error.set(None);
                    }
                }
                match saved_by {
                    SavedBy::Page => self.announce_change(vec![id]),
                    SavedBy::Worker => super::pwa::note_saved(self.state),
                }
            }
            Err(DbError::Outdated) => {
                self.state.outdated.set(true);
                self.fail_save(id, DbError::Outdated.to_string());
            }
            Err(e) => self.fail_save(
                id,
                format!(
                    "“{}” could not be saved: {e} Your latest text is kept on this page and in a \
                     recovery copy, so nothing is lost. Free some space or close other tabs of \
                     notesync, then retry.",
                    note.display_title()
                ),
            ),
        }
    }

    /// Note `id` could not be saved: it alone shows as not saved.
    fn fail_save(&self, id: NoteId, message: String) {
        self.state.save_states.update(|states| {
            states.insert(id, SaveState::Failed);
        });
        self.state.storage_error.set(Some(message));
    }

    /// Something other than a save failed (a read, keeping a deleted
    /// note's text): said, with no note marked unsaved.
    fn fail(&self, message: String) {
        self.state.storage_error.set(Some(message));
    }

    fn enqueue(&self, id: NoteId) {
        if self.queued.borrow_mut().insert(id) {
            let _ = self.queue.unbounded_send(id);
        }
    }

    fn mark_dirty(&self, id: NoteId) {
        self.dirty.borrow_mut().insert(id);
        // A note that failed stays "not saved" until a save of it succeeds.
        self.state.save_states.maybe_update(|states| {
            if states.contains_key(&id) {
                return false;
            }
            states.insert(id, SaveState::Saving);
            true
        });
        // The journal copy is written once per task, after every event of
        // it (a paste arrives as one input event per line), and at once
        // when the page is hidden or closed ([`flush`]).
        let first = self.unjournaled.borrow().is_empty();
        self.unjournaled.borrow_mut().insert(id);
        if first {
            Timeout::new(0, write_journal).forget();
        }
    }

    /// Writes the journal copy of every note changed since the last time.
    fn write_journal(&self) {
        let ids: Vec<NoteId> = self.unjournaled.borrow_mut().drain().collect();
        for id in ids {
            if !self.dirty.borrow().contains(&id) {
                continue;
            }
            if let Some(note) = self.current(id) {
                journal::put(&note, self.bases.borrow().get(&id));
            }
        }
    }

    /// Tells this tab's worker (for its counts) and every other context,
    /// the sync leader included, that an edit was saved.
    fn announce_change(&self, notes: Vec<NoteId>) {
        self.tell_worker(&ToWorker::LocalChange);
        self.broadcast(&Broadcast::Changed {
            local: true,
            notes: Some(notes),
            saved_by: None,
        });
        super::pwa::note_saved(self.state);
    }

    fn broadcast(&self, message: &Broadcast) {
        if let Some(channel) = &self.channel {
            let _ = channel.post_message(&JsValue::from_str(&encode(message)));
        }
    }

    /// Re-reads IndexedDB after another context changed it, keeping the
    /// page's own unsaved edits.
    async fn reload(&self) {
        let Ok(db) = self.db().await else { return };
        match db.all_notes().await {
            Ok(mut stored) => {
                let dirty = self.dirty.borrow().clone();
                let mine: Vec<Note> = self.state.notes.with_untracked(|ns| {
                    ns.iter()
                        .filter(|n| dirty.contains(&n.id))
                        .cloned()
                        .collect()
                });
                {
                    let mut bases = self.bases.borrow_mut();
                    for n in stored.iter().filter(|n| !dirty.contains(&n.id)) {
                        bases.insert(n.id, n.clone());
                    }
                }
                let open = self.state.selected.get_untracked();
                let open_changed = open.is_some_and(|id| {
                    !dirty.contains(&id)
                        && stored.iter().find(|n| n.id == id) != self.current(id).as_ref()
                });
                stored.retain(|n| !dirty.contains(&n.id));
                stored.extend(mine);
                self.state.notes.set(Notes::from(stored));
                if open_changed {
                    self.state.editor_epoch.update(|e| *e += 1);
                }
                self.load_conflicts(&db).await;
                self.load_trash(&db).await;
                self.report_unreadable();
            }
            Err(e) => self.fail(format!("Your notes could not be read: {e}")),
        }
    }
}

impl Page {
    /// Reads back the notes `ids` after another context stored them,
    /// keeping the page's own unsaved edits: a changed note replaces the
    /// page's copy, a new one joins it, one no longer stored leaves it.
    async fn refresh_notes(&self, ids: &[NoteId], others: bool) {
        let Ok(db) = self.db().await else { return };
        if !ids.is_empty() {
            match db.notes_by_id(ids).await {
                Ok(found) => self.take_stored(found, |_, _| true),
                Err(e) => return self.fail(format!("Your notes could not be read: {e}")),
            }
        }
        if others {
            self.load_conflicts(&db).await;
            self.load_trash(&db).await;
        }
        self.report_unreadable();
    }

    /// Moves the page's copy of each note the server no longer had (deleted
    /// elsewhere and purged) to the new id its text is now stored and
    /// pushed under: the text, unsaved edits included, follows it, as does
    /// the editor, and the person is told.
    fn move_recreated(&self, moved: &[(NoteId, NoteId)], stored: &[Note]) {
        if moved.is_empty() {
            return;
        }
        self.state.notes.update(|ns| {
            for (old, new) in moved {
                if let Some(note) = ns.find_mut(|n| n.id == *old) {
                    note.id = *new;
                    note.rev = Revision::NEW;
                }
            }
        });
        let open = self.state.selected.get_untracked();
        for (old, new) in moved {
            if let Some(note) = stored.iter().find(|n| n.id == *new) {
                self.bases.borrow_mut().insert(*new, note.clone());
            }
            self.bases.borrow_mut().remove(old);
            if self.dirty.borrow_mut().remove(old) {
                journal::remove(*old);
                self.mark_dirty(*new);
                self.enqueue(*new);
            }
            if open == Some(*old) {
                self.state.selected.set(Some(*new));
                self.state.editor_epoch.update(|e| *e += 1);
            }
        }
        self.state
            .conflicts
            .update(|cs| cs.retain(|(id, _)| !moved.iter().any(|(old, _)| old == id)));
        let count = moved.len();
        self.state.import_message.set(Some(format!(
            "{count} {} edited here had been deleted on another device long ago and removed \
             from the server; {} kept as new {} and syncing.",
            if count == 1 { "note" } else { "notes" },
            if count == 1 { "it is" } else { "they are" },
            if count == 1 { "note" } else { "notes" },
        )));
    }

    /// Takes in notes the sync leader stored, each unless this page's copy
    /// is at its revision or a later one: that copy is as new or newer (a
    /// local save keeps the revision it read; see [`ReplicaChange`]).
    ///
    /// [`ReplicaChange`]: crate::sync::driver::ReplicaChange
    fn take_pulled(&self, stored: Vec<Note>) {
        let found = stored.into_iter().map(|n| (n.id, Some(n))).collect();
        self.take_stored(found, |held, pulled| {
            held.is_none_or(|h| pulled.is_some_and(|p| p.rev > h.rev))
        });
    }

    /// Takes in notes as stored now (`None`: no longer stored), each where
    /// `newer(page's copy, stored copy)` says so, skipping notes with
    /// unsaved edits on this page.
    fn take_stored(
        &self,
        found: Vec<(NoteId, Option<Note>)>,
        newer: impl Fn(Option<&Note>, Option<&Note>) -> bool,
    ) {
        let dirty = self.dirty.borrow().clone();
        let fresh: Vec<(NoteId, Option<Note>)> = self.state.notes.with_untracked(|ns| {
            let held: HashMap<NoteId, &Note> = ns.iter().map(|n| (n.id, n)).collect();
            found
                .into_iter()
                .filter(|(id, note)| {
                    let held = held.get(id).copied();
                    !dirty.contains(id) && held != note.as_ref() && newer(held, note.as_ref())
                })
                .collect()
        });
        if fresh.is_empty() {
            return;
        }
        {
            let mut bases = self.bases.borrow_mut();
            for (id, note) in &fresh {
                match note {
                    Some(n) => bases.insert(*id, n.clone()),
                    None => bases.remove(id),
                };
            }
        }
        {
            let open = self.state.selected.get_untracked();
            let mut open_changed = false;
            self.state.notes.update(|ns| {
                let mut at: HashMap<NoteId, usize> =
                    ns.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
                let mut gone: HashSet<NoteId> = HashSet::new();
                for (id, note) in fresh {
                    match (note, at.get(&id).copied()) {
                        (Some(note), Some(i)) => {
                            if ns[i] != note {
                                open_changed |= open == Some(id);
                                if let Some(held) = ns.get_mut(i) {
                                    *held = note;
                                }
                            }
                        }
                        (Some(note), None) => {
                            at.insert(id, ns.len());
                            ns.push(note);
                        }
                        (None, Some(_)) => {
                            open_changed |= open == Some(id);
                            gone.insert(id);
                        }
                        (None, None) => {}
                    }
                }
                if !gone.is_empty() {
                    ns.retain(|n| !gone.contains(&n.id));
                }
            });
            if open_changed {
                self.state.editor_epoch.update(|e| *e += 1);
            }
        }
    }

    /// Reads the kept texts of deleted notes, and forgets those no longer
    /// restorable (their note is live again, or gone).
    async fn load_trash(&self, db: &LocalDb) {
        match db.trash().await {
            Ok(mut trash) => {
                let stale = self
                    .state
                    .notes
                    .with_untracked(|ns| stale_trash(&trash, ns));
                if !stale.is_empty() {
                    trash.retain(|t| !stale.contains(&t.id));
                    if let Err(e) = db.drop_trash(&stale).await {
                        self.fail(format!(
                            "Kept texts of deleted notes could not be dropped: {e}"
                        ));
                    }
                }
                self.state.trash.set(trash);
            }
            Err(e) => self.fail(format!("The recently deleted notes could not be read: {e}")),
        }
    }

    async fn load_conflicts(&self, db: &LocalDb) {
        match db.conflicts().await {
            Ok(records) => self
                .state
                .conflicts
                .set(records.into_iter().map(|r| (r.note_id, r.sides)).collect()),
            Err(e) => self.fail(format!(
                "The notes that need your choice could not be read: {e}"
            )),
        }
    }

    fn tell_worker(&self, message: &ToWorker) {
        if let Some(worker) = self.worker.borrow().as_ref() {
            let _ = worker.post_message(&JsValue::from_str(&encode(message)));
        }
    }

    /// The sync leader's status: once nothing is pending, which notes may
    /// be unsynced is read again.
    fn sync_status(&self, status: &SyncStatus) {
        let had_pending = self
            .state
            .sync
            .with_untracked(|s| s.as_ref().is_none_or(|s| s.pending > 0));
        if status.pending == 0 && had_pending {
            if let Some(page) = page() {
                wasm_bindgen_futures::spawn_local(async move { page.refresh_unsynced().await });
            }
        }
    }

    /// The browser is signed in as another account now (`name`, when
    /// known): this tab stops syncing at once and says so. Its edits go on
    /// being saved here, its outbox untouched, and sync when this tab's
    /// account signs in again.
    fn other_account_signed_in(&self, name: Option<String>) {
        stop_worker();
        let known = name.or_else(|| {
            session::cached()
                .filter(|a| a.id != self.user)
                .map(|a| a.name)
        });
        let state = self.state;
        if known.is_none() {
            // The server knows whose the browser's session is.
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(Some(account)) = crate::api::whoami().await {
                    if state.other_account.get_untracked().is_some() {
                        state.other_account.set(Some(account.name));
                    }
                }
            });
        }
        state
            .other_account
            .set(Some(known.unwrap_or_else(|| "another account".to_string())));
    }

    /// The account signed in on this browser changed (another tab signed in
    /// or out): `now` is who is signed in.
    fn account_changed(&self, now: Option<Account>) {
        match now {
            Some(account) if account.id != self.user => {
                self.other_account_signed_in(Some(account.name));
            }
            Some(_) => {
                // This tab's account is signed in again: sync resumes.
                self.state.session_ended.set(false);
                if self.state.other_account.get_untracked().is_some() {
                    self.state.other_account.set(None);
                    restart_worker();
                }
                self.tell_worker(&ToWorker::SyncNow);
            }
            None => {}
        }
    }

    /// Before signing out: saves what is typed, asks the sync leader to push
    /// what is unsynced and waits for it (a while), then names the notes
    /// whose changes have still not reached the server.
    async fn last_push(&self) -> Vec<String> {
        flush();
        let deadline = now_ms() + 5_000;
        while now_ms() < deadline && self.dirty.borrow().iter().any(|id| !self.failed(*id)) {
            TimeoutFuture::new(100).await;
        }
        let pending = || async {
            match self.db().await {
                Ok(db) => db.pending_ids().await.unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        };
        let online = web_sys::window().is_some_and(|w| w.navigator().on_line());
        if online
            && self.state.other_account.get_untracked().is_none()
            && !pending().await.is_empty()
        {
            self.state.notice.set(Some(
                "Sending your last changes to the server before signing out…".into(),
            ));
            self.tell_worker(&ToWorker::SyncNow);
            self.broadcast(&Broadcast::SyncNow);
            let asked = now_ms();
            let deadline = asked + 10_000;
            loop {
                TimeoutFuture::new(200).await;
                let given_up = self.state.sync.with_untracked(|s| {
                    s.as_ref().is_some_and(|s| {
                        matches!(s.state, SyncState::Error { .. } | SyncState::Offline)
                    })
                }) && now_ms() > asked + 2_000;
                if now_ms() > deadline || given_up || pending().await.is_empty() {
                    break;
                }
            }
            self.state.notice.set(None);
        }
        let mut ids: HashSet<NoteId> = pending().await.into_iter().collect();
        ids.extend(self.dirty.borrow().iter().copied());
        let mut titles: Vec<String> = ids
            .into_iter()
            .filter_map(|id| self.current(id))
            .map(|n| {
                if n.deleted {
                    "a deleted note".to_string()
                } else {
                    format!("“{}”", n.display_title())
                }
            })
            .collect();
        titles.sort();
        titles
    }

    fn failed(&self, id: NoteId) -> bool {
        self.state
            .save_states
            .with_untracked(|states| states.get(&id) == Some(&SaveState::Failed))
    }
}

async fn writer_loop(page: Rc<Page>, mut queue: mpsc::UnboundedReceiver<NoteId>) {
    while let Some(id) = queue.next().await {
        // Taken off first: a keystroke during this write queues the note
        // again, so its text is written right after.
        page.queued.borrow_mut().remove(&id);
        if page.dirty.borrow().contains(&id) {
            page.save_now(id).await;
        }
    }
}

/// Takes in what other contexts stored, one batch at a time, in order:
/// pulled notes at once (they come whole), then one read of every note
/// named since the last batch. Whatever arrives during a read joins the
/// next batch.
async fn refresh_loop(page: Rc<Page>, mut changes: mpsc::UnboundedReceiver<Refresh>) {
    while let Some(first) = changes.next().await {
        let mut batch = vec![first];
        while let Ok(more) = changes.try_recv() {
            batch.push(more);
        }
        let mut everything = false;
        let mut others = false;
        let mut ids: Vec<NoteId> = Vec::new();
        let mut seen: HashSet<NoteId> = HashSet::new();
        for change in batch {
            match change {
                Refresh::Everything => everything = true,
                Refresh::Notes(more) => {
                    // A tab's delete or restore also touches kept texts.
                    others = true;
                    for id in &more {
                        page.saved(*id);
                    }
                    ids.extend(more.into_iter().filter(|id| seen.insert(*id)));
                }
                Refresh::Pulled {
                    stored,
                    dropped,
                    others: more,
                    recreated,
                } => {
                    let t = timings::start();
                    page.move_recreated(&recreated, &stored);
                    page.take_pulled(stored);
                    timings::end("page: take pulled notes", t);
                    others |= more;
                    ids.extend(dropped.into_iter().filter(|id| seen.insert(*id)));
                }
            }
        }
        if everything {
            page.reload().await;
        } else {
            page.refresh_notes(&ids, others).await;
        }
    }
}

async fn load(page: Rc<Page>, refreshes: mpsc::UnboundedReceiver<Refresh>) {
    let state = page.state;
    let t_load = timings::start();
    let mut notes = match page.db().await {
        Ok(db) => match db.all_notes().await {
            Ok(notes) => {
                page.load_conflicts(&db).await;
                // Which side of a conflict this device wrote; the worker
                // makes the id if it is not there yet, the page may too.
                if let Ok(client) = db.client_id(|| ClientId::new(now_ms(), random10())).await {
                    state.client_id.set(Some(client));
                }
                notes
            }
            Err(e) => {
                page.fail(format!("Your notes could not be read: {e}"));
                Vec::new()
            }
        },
        Err(e) => {
            page.fail(format!(
                "{e} New notes stay on this page and in a recovery copy until it can be opened."
            ));
            Vec::new()
        }
    };
    page.refresh_unsynced().await;
    {
        let mut bases = page.bases.borrow_mut();
        for n in &notes {
            bases.insert(n.id, n.clone());
        }
    }
    let mut recovered = Vec::new();
    let mut kept_apart = Vec::new();
    for entry in journal::all() {
        let id = entry.note.id;
        let at = notes.iter().position(|n| n.id == id);
        match restore_journal(at.map(|i| &notes[i]), &entry) {
            Restore::Drop => journal::remove(id),
            Restore::Edit { note, base } => {
                // The save merges it into the stored copy as an edit read
                // from `base`, like a keystroke.
                match base {
                    Some(base) => page.bases.borrow_mut().insert(id, base),
                    None => page.bases.borrow_mut().remove(&id),
                };
                match at {
                    Some(i) => notes[i] = note,
                    None => notes.push(note),
                }
                recovered.push(id);
            }
            Restore::Separate(note) => {
                let now = now_ms();
                let copy = Note {
                    id: NoteId::new(now, random10()),
                    rev: Revision::NEW,
                    created_at: now,
                    title: format!("{} (recovered)", note.display_title()),
                    ..note
                };
                journal::remove(id);
                kept_apart.push(copy.display_title());
                recovered.push(copy.id);
                notes.push(copy);
            }
        }
    }
    if !kept_apart.is_empty() {
        state.notice.set(Some(format!(
            "Text kept from an earlier visit was older than the synced copy of its note, so it \
             was restored as a note of its own: {}.",
            kept_apart.join(", ")
        )));
    }
    notes.sort_by(newest_first);
    let first = notes.iter().find(|n| !n.deleted).map(|n| n.id);
    state.notes.set(Notes::from(notes));
    for id in recovered {
        page.mark_dirty(id);
        page.enqueue(id);
    }
    if state.selected.get_untracked().is_none() {
        state.selected.set(first);
    }
    if let Ok(db) = page.db().await {
        page.load_trash(&db).await;
    }
    page.report_unreadable();
    state.loaded.set(true);
    timings::end("page: load", t_load);
    // Changes announced during the load wait until now: applied before it,
    // its older snapshot would overwrite them.
    wasm_bindgen_futures::spawn_local(refresh_loop(page, refreshes));
}

fn start_worker(page: &Rc<Page>) {
    let state = page.state;
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    options.set_name(page.user.as_str());
    let worker = match web_sys::Worker::new_with_options("/worker.js", &options) {
        Ok(w) => w,
        Err(e) => {
            state
                .worker
                .set(WorkerView::Failed(format!("could not start: {e:?}")));
            return;
        }
    };
    let reply = worker.clone();
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let text = event.data().as_string().unwrap_or_default();
            match decode::<FromWorker>(&text) {
                Ok(FromWorker::Ready { worker, .. }) => {
                    // Only now does the worker listen: sooner, a message is lost.
                    if let Some(page) = page_handle() {
                        page.worker_saves.listening(worker);
                    }
                    if timings::enabled() {
                        let on = encode(&ToWorker::Timings { on: true });
                        let _ = reply.post_message(&JsValue::from_str(&on));
                    }
                    let _ =
                        reply.post_message(&JsValue::from_str(&encode(&ToWorker::Ping { id: 1 })));
                }
                Ok(FromWorker::Status {
                    ticks,
                    notes,
                    pending,
                    ..
                }) => state.worker.set(WorkerView::Running {
                    ticks,
                    notes,
                    pending,
                }),
                Ok(FromWorker::Sync(status)) => {
                    if let Some(page) = page_handle() {
                        page.sync_status(&status);
                    }
                    state.sync.set(Some(status));
                    // The footer's counts must agree with the indicator: ask again.
                    let _ =
                        reply.post_message(&JsValue::from_str(&encode(&ToWorker::Ping { id: 2 })));
                }
                Ok(FromWorker::Failed { message }) => state.worker.set(WorkerView::Failed(message)),
                Ok(FromWorker::SignedOut) => state.session_ended.set(true),
                Ok(FromWorker::WrongAccount) => {
                    if let Some(page) = page_handle() {
                        page.other_account_signed_in(None);
                    }
                }
                Ok(FromWorker::Unreadable { records }) => {
                    if let Some(page) = page_handle() {
                        page.unreadable_found(records);
                    }
                }
                Ok(FromWorker::Role { leader }) => state.leader.set(Some(leader)),
                Ok(FromWorker::Saved { id, result }) => {
                    if let Some(page) = page_handle() {
                        page.worker_saves.answered(id, result);
                    }
                }
                Err(e) => state.worker.set(WorkerView::Failed(e.to_string())),
            }
        });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_event: web_sys::Event| {
        // It may not answer the saves it was sent: the page makes them.
        if let Some(page) = page_handle() {
            page.worker_saves.stopped();
        }
        state.worker.set(WorkerView::Failed(
            "the worker script failed to load".into(),
        ));
    });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    *page.worker.borrow_mut() = Some(worker);
}

fn listen(page: &Rc<Page>) {
    let state = page.state;
    if let Some(channel) = &page.channel {
        let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
            move |event: web_sys::MessageEvent| {
                let text = event.data().as_string().unwrap_or_default();
                let Some(page) = page_handle() else { return };
                let t = timings::start();
                let message = decode::<Broadcast>(&text);
                timings::end("page: read a broadcast", t);
                match message {
                    Ok(Broadcast::Changed {
                        saved_by: Some(worker),
                        ..
                    }) if page.worker_saves.is_mine(worker) => {}
                    Ok(Broadcast::Changed { notes, .. }) => {
                        let _ = page.refresh.unbounded_send(match notes {
                            Some(ids) => Refresh::Notes(ids),
                            None => Refresh::Everything,
                        });
                    }
                    Ok(Broadcast::Pulled {
                        stored,
                        dropped,
                        others,
                        recreated,
                    }) => {
                        let _ = page.refresh.unbounded_send(Refresh::Pulled {
                            stored,
                            dropped,
                            others,
                            recreated,
                        });
                    }
                    Ok(Broadcast::Sync(status)) => {
                        page.sync_status(&status);
                        state.sync.set(Some(status));
                        // The footer's counts must agree with the indicator.
                        page.tell_worker(&ToWorker::Ping { id: 3 });
                    }
                    Ok(Broadcast::Live(live)) => state.live.set(live),
                    // Meant for the leader, or from another build.
                    Ok(Broadcast::SyncNow | Broadcast::StateWanted) | Err(_) => {}
                }
            },
        );
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
    }
    page.broadcast(&Broadcast::StateWanted);
    // A frozen tab (a background tab the browser paused) must not keep the
    // sync lock: its worker stops, and another tab's takes over. It starts
    // again when the tab is resumed or restored from the back/forward cache.
    if let Some(document) = web_sys::window().and_then(|w| w.document()) {
        let on_freeze = Closure::<dyn FnMut()>::new(stop_worker);
        let on_resume = Closure::<dyn FnMut()>::new(restart_worker);
        let _ =
            document.add_event_listener_with_callback("freeze", on_freeze.as_ref().unchecked_ref());
        let _ =
            document.add_event_listener_with_callback("resume", on_resume.as_ref().unchecked_ref());
        // They live as long as the page.
        on_freeze.forget();
        on_resume.forget();
    }
    let _ = window_event_listener(leptos::ev::pageshow, move |event| {
        if event.persisted() {
            restart_worker();
        }
    });
    // Another tab signed in or out: this tab's account may not be the
    // browser's any more.
    let _ = window_event_listener(leptos::ev::storage, move |event| {
        if event.key().as_deref() != Some(session::ACCOUNT_KEY) {
            return;
        }
        if let Some(page) = page_handle() {
            page.account_changed(event.new_value().as_deref().and_then(session::read_account));
        }
    });
    let _ = window_event_listener(leptos::ev::online, move |_| connectivity(true));
    let _ = window_event_listener(leptos::ev::offline, move |_| connectivity(false));
    let _ = window_event_listener(leptos::ev::keydown, move |event| {
        if shortcut(state, &event) {
            event.prevent_default();
        }
    });
    // Leaving the page: start every pending write now rather than after the
    // pause; a page kept in the back/forward cache also lets go of the sync.
    let _ = window_event_listener(leptos::ev::pagehide, move |event| {
        flush();
        if event.persisted() {
            stop_worker();
        }
    });
    let _ = window_event_listener(leptos::ev::visibilitychange, move |_| {
        let hidden = web_sys::window()
            .and_then(|w| w.document())
            .map(|d| d.hidden())
            .unwrap_or(false);
        if hidden {
            flush();
        }
    });
    Interval::new(30_000, move || state.now_ms.set(now_ms())).forget();
}

fn stop_worker() {
    if let Some(page) = page() {
        if let Some(worker) = page.worker.borrow_mut().take() {
            worker.terminate();
        }
        page.worker_saves.stopped();
        page.state.leader.set(None);
    }
}

/// Starts the tab's worker again, unless the tab must not sync: its
/// account is not the browser's any more, or a newer build owns the
/// database.
fn restart_worker() {
    if let Some(page) = page() {
        let held_back = page.state.other_account.get_untracked().is_some()
            || page.state.outdated.get_untracked();
        if page.worker.borrow().is_none() && !held_back {
            start_worker(&page);
        }
    }
}

/// The keyboard shortcuts (also named by each control's
/// `aria-keyshortcuts`). Returns whether `event` was one.
///
/// Alt+N new note; `/` (outside a text field) or Ctrl+K search;
/// Alt+ArrowDown / Alt+ArrowUp next / previous note in the list as shown;
/// Alt+Delete delete the open note; Alt+Z undo the last delete. `event.code`
/// is checked too, as Alt changes `key` on some layouts (Alt+N is "˜" on a
/// Mac).
fn shortcut(state: NotesState, event: &web_sys::KeyboardEvent) -> bool {
    let key = event.key();
    let code = event.code();
    let alt_only = event.alt_key() && !event.ctrl_key() && !event.meta_key();
    if alt_only && (key.eq_ignore_ascii_case("n") || code == "KeyN") {
        create_note(state);
    } else if alt_only && (key.eq_ignore_ascii_case("z") || code == "KeyZ") {
        let Some(id) = state.undo.get_untracked() else {
            return false;
        };
        restore_note(state, id);
    } else if alt_only && (key == "ArrowDown" || key == "ArrowUp") {
        let order = state.shown_ids();
        let step = if key == "ArrowDown" { 1 } else { -1 };
        if let Some(next) = step_in(&order, state.selected.get_untracked(), step) {
            state.show_trash.set(false);
            state.selected.set(Some(next));
            state.reveal(next);
            focus_list_item(next);
        }
    } else if alt_only && key == "Delete" {
        let Some(id) = state.selected.get_untracked() else {
            return false;
        };
        delete_note(state, id);
    } else if (event.ctrl_key() || event.meta_key())
        && !event.alt_key()
        && key.eq_ignore_ascii_case("k")
        || key == "/" && !event.ctrl_key() && !event.alt_key() && !typing_in_a_field(event)
    {
        focus_soon("search");
    } else {
        return false;
    }
    true
}

/// Whether the key went to a text field, where `/` is a character.
fn typing_in_a_field(event: &web_sys::KeyboardEvent) -> bool {
    event
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .is_some_and(|el| {
            matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                || el.get_attribute("contenteditable").is_some()
        })
}

/// Moves focus to a note's row, once the list shows it.
fn focus_list_item(id: NoteId) {
    Timeout::new(0, move || {
        let row = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| {
                d.query_selector(&format!(".note-item[data-note-id=\"{id}\"]"))
                    .ok()
                    .flatten()
            })
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
        if let Some(row) = row {
            let _ = row.focus();
        }
    })
    .forget();
}

fn connectivity(online: bool) {
    if let Some(page) = page() {
        page.tell_worker(&ToWorker::Connectivity { online });
    }
}

fn page_handle() -> Option<Rc<Page>> {
    page()
}

fn write_journal() {
    if let Some(page) = page() {
        page.write_journal();
    }
}

fn flush() {
    if let Some(page) = page() {
        page.write_journal();
        let ids: Vec<NoteId> = page.dirty.borrow().iter().copied().collect();
        for id in ids {
            page.enqueue(id);
        }
    }
}

/// Starts the page side once: finds who is signed in (the server, or offline
/// the account last confirmed here), then opens that person's database,
/// loads the notes, recovers unsaved text from the journal, starts the worker
/// and the listeners. With no account at all, goes to the sign-in page.
pub fn start(state: NotesState) {
    if page().is_some() {
        return;
    }
    wasm_bindgen_futures::spawn_local(async move {
        let cached = session::cached();
        let account = match crate::api::whoami().await {
            Ok(Some(account)) => {
                session::remember(&account);
                Some(account)
            }
            Ok(None) => {
                // The session ended: keep working locally, sync waits for sign-in.
                state.session_ended.set(cached.is_some());
                cached
            }
            Err(_) => cached,
        };
        match account {
            Some(account) => begin(state, account),
            None => session::go("/signin"),
        }
    });
}

fn begin(state: NotesState, account: Account) {
    if page().is_some() {
        return;
    }
    JOURNAL.with(|j| *j.borrow_mut() = session::journal_prefix(&account.id));
    let timed = local_storage()
        .and_then(|s| s.get_item(timings::STORAGE_KEY).ok().flatten())
        .is_some_and(|v| v == "1");
    timings::set_enabled(timed);
    let (queue, receiver) = mpsc::unbounded();
    let (refresh, refreshes) = mpsc::unbounded();
    let page = Rc::new(Page {
        state,
        user: account.id.clone(),
        db: RefCell::new(None),
        opening: futures::lock::Mutex::new(()),
        unsynced: RefCell::new(HashSet::new()),
        saved_since_read: RefCell::new(HashSet::new()),
        unreadable: RefCell::new(Vec::new()),
        dirty: RefCell::new(HashSet::new()),
        bases: RefCell::new(HashMap::new()),
        queued: RefCell::new(HashSet::new()),
        unjournaled: RefCell::new(HashSet::new()),
        queue,
        refresh,
        worker: RefCell::new(None),
        worker_saves: WorkerSaves::default(),
        channel: web_sys::BroadcastChannel::new(&channel_name(&account.id)).ok(),
    });
    state.account.set(Some(account));
    PAGE.with(|p| *p.borrow_mut() = Some(page.clone()));
    state.now_ms.set(now_ms());
    wasm_bindgen_futures::spawn_local(writer_loop(page.clone(), receiver));
    wasm_bindgen_futures::spawn_local(load(page.clone(), refreshes));
    start_worker(&page);
    listen(&page);
    super::pwa::register(state);
    wasm_bindgen_futures::spawn_local(super::pwa::refresh_storage(state));
}

/// Signs out: first a last push of what has not synced, then, if some
/// changes still have not reached the server, a warning naming their notes;
/// then the server deletes the session, and the next page deletes this
/// person's local data. In a tab whose browser is signed in as another
/// account now, there is no session of this tab's account to end: it does
/// nothing (the alert offers signing in as this account, or reloading).
pub fn sign_out(state: NotesState) {
    let Some(page) = page() else { return };
    if state.signing_out.get_untracked() || state.other_account.get_untracked().is_some() {
        return;
    }
    state.signing_out.set(true);
    wasm_bindgen_futures::spawn_local(async move {
        let unsynced = page.last_push().await;
        if !unsynced.is_empty() {
            const NAMED: usize = 10;
            let mut names = unsynced
                .iter()
                .take(NAMED)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if unsynced.len() > NAMED {
                names.push_str(&format!(" and {} more", unsynced.len() - NAMED));
            }
            let question = format!(
                "These notes have changes that have not reached the server, and signing out \
                 deletes them from this device: {names}. Sign out anyway?"
            );
            let confirmed = web_sys::window()
                .and_then(|w| w.confirm_with_message(&question).ok())
                .unwrap_or(false);
            if !confirmed {
                state.signing_out.set(false);
                return;
            }
        }
        match crate::api::sign_out().await {
            Ok(()) => {
                session::signed_out(&page.user);
                session::go("/signin");
            }
            Err(e) => {
                state.signing_out.set(false);
                state.storage_error.set(Some(format!(
                    "Could not sign out: {e}. Nothing was removed; try again when online."
                )));
            }
        }
    });
}

/// Sends a sign-in or sign-up form: on success remembers the account and
/// opens the notes, else shows why.
pub fn submit_account(
    create: bool,
    name: String,
    password: String,
    error: RwSignal<Option<String>>,
) {
    wasm_bindgen_futures::spawn_local(async move {
        let result = if create {
            crate::api::sign_up(name, password).await
        } else {
            crate::api::sign_in(name, password).await
        };
        match result {
            Ok(account) => {
                session::remember(&account);
                session::go("/");
            }
            Err(e) => error.set(Some(e.to_string())),
        }
    });
}

/// On the sign-in page: removes the data of a person who just signed out;
/// `blocked` is set while a tab of an older build holds it open.
pub fn auth_page_opened(blocked: RwSignal<bool>) {
    wasm_bindgen_futures::spawn_local(async move {
        session::clear_signed_out_data(move || blocked.set(true)).await;
        blocked.set(false);
    });
}

/// The name of the account signed in on this browser, if any.
pub fn signed_in_here() -> Option<String> {
    session::cached().map(|account| account.name)
}

/// Loads this page again.
pub fn reload() {
    if let Some(w) = web_sys::window() {
        let _ = w.location().reload();
    }
}

fn channel_name(user: &UserId) -> String {
    format!("{CHANNEL_NAME}-{user}")
}

/// Creates an empty note, selects it and puts the cursor in its title.
pub fn create_note(state: NotesState) {
    let now = now_ms();
    let note = Note::new(NoteId::new(now, random10()), now);
    let id = note.id;
    state.notes.update(|ns| ns.push(note));
    state.selected.set(Some(id));
    state.reveal(id);
    if let Some(page) = page() {
        page.mark_dirty(id);
        page.enqueue(id);
    }
    focus_soon("note-title");
}

/// Records that the note's content in `state.notes` was just edited.
pub fn edited(_state: NotesState, id: NoteId) {
    // The relative times of the list follow their own clock (every 30 s):
    // moving it here would rebuild every row on every keystroke, and a note
    // edited after the clock's last tick reads "just now" anyway.
    let Some(page) = page() else { return };
    page.mark_dirty(id);
    page.enqueue(id);
}

/// Deletes a note (it becomes a tombstone) and selects its neighbour.
pub fn delete_note(state: NotesState, id: NoteId) {
    let now = now_ms();
    let next = state.notes.with_untracked(|ns| {
        let mut live: Vec<&Note> = ns.iter().filter(|n| !n.deleted).collect();
        live.sort_by(|a, b| newest_first(a, b));
        let pos = live.iter().position(|n| n.id == id)?;
        live.get(pos + 1)
            .or_else(|| pos.checked_sub(1).and_then(|p| live.get(p)))
            .map(|n| n.id)
    });
    let mut kept = None;
    state.notes.update(|ns| {
        if let Some(n) = ns.find_mut(|n| n.id == id && !n.deleted) {
            kept = Some(Trashed {
                id,
                note: n.clone(),
                deleted_at: now,
            });
            *n = n.tombstone(now);
        }
    });
    let Some(kept) = kept else { return };
    state.selected.set(next);
    state.undo.set(Some(id));
    state.trash.update(|t| {
        t.retain(|k| k.id != id);
        t.push(kept.clone());
    });
    if let Some(page) = page() {
        page.mark_dirty(id);
        page.enqueue(id);
        wasm_bindgen_futures::spawn_local(async move {
            // The text is also on the page (`state.trash`) until it closes;
            // a failure here only loses "Recently deleted" after a reload.
            if let Ok(db) = page.db().await {
                if let Err(e) = db.put_trash(&kept).await {
                    page.fail(format!(
                        "The deleted note's text could not be kept for undo: {e}"
                    ));
                }
            }
        });
    }
}

/// Restores a deleted note from its kept text: a normal edit that brings
/// the text back over the tombstone, saved and synced like any other, so
/// the note comes back on every device.
pub fn restore_note(state: NotesState, id: NoteId) {
    let Some(kept) = state
        .trash
        .with_untracked(|t| t.iter().find(|k| k.id == id).cloned())
    else {
        return;
    };
    let now = now_ms();
    let mut done = false;
    state.notes.update(|ns| {
        if let Some(n) = ns.find_mut(|n| n.id == id && n.deleted) {
            *n = restored(n, &kept.note, now);
            done = true;
        }
    });
    state.trash.update(|t| t.retain(|k| k.id != id));
    if state.undo.get_untracked() == Some(id) {
        state.undo.set(None);
    }
    if !done {
        return;
    }
    state.show_trash.set(false);
    state.selected.set(Some(id));
    let Some(page) = page() else { return };
    page.mark_dirty(id);
    page.enqueue(id);
    wasm_bindgen_futures::spawn_local(async move {
        if let Ok(db) = page.db().await {
            let _ = db.drop_trash(&[id]).await;
        }
    });
}

/// Downloads every live note as a file: JSON, or a zip of markdown files
/// (see [`crate::transfer`]). The page's copy is exported, so text typed a
/// moment ago and not yet in IndexedDB is included.
pub fn export_notes(state: NotesState, format: ExportFormat) {
    let count = state
        .notes
        .with_untracked(|ns| ns.iter().filter(|n| !n.deleted).count());
    let report = move |bytes: Result<Vec<u8>, String>, name: &str, mime: &str| {
        let message = match bytes.and_then(|bytes| download(&bytes, name, mime)) {
            Ok(()) => format!(
                "Exported {count} {} to {name}",
                if count == 1 { "note" } else { "notes" }
            ),
            Err(e) => format!("Nothing was exported: {e}"),
        };
        state.import_message.set(Some(message));
    };
    match format {
        ExportFormat::Json => {
            let json = state.notes.with_untracked(|ns| export_json(ns));
            report(
                Ok(json.into_bytes()),
                "notesync-export.json",
                "application/json",
            );
        }
        ExportFormat::Zip => {
            // Taken now, so the export is the notes as they were when asked
            // for, whatever is typed while the zip code loads.
            let notes = state.notes.with_untracked(|ns| ns.to_vec());
            wasm_bindgen_futures::spawn_local(async move {
                let bytes = split::zip_of(notes)
                    .await
                    .map_err(|e| e.message(TRANSFER_CODE));
                report(bytes, "notesync-export.zip", "application/zip");
            });
        }
    }
}

/// What the person is told could not be loaded when the transfer chunk fails.
const TRANSFER_CODE: &str = "The import and export code";

/// Renders `body` as the preview's HTML (see [`crate::markdown`]) with the
/// renderer loaded on first use, and hands the HTML, or a message saying why
/// there is none, to `done`.
pub fn render_markdown(body: String, done: impl FnOnce(Result<String, String>) + 'static) {
    wasm_bindgen_futures::spawn_local(async move {
        done(
            split::html_of(body)
                .await
                .map_err(|e| e.message("The preview")),
        );
    });
}

/// Hands `bytes` to the browser as a file download named `name`.
fn download(bytes: &[u8], name: &str, mime: &str) -> Result<(), String> {
    let fail = |e: JsValue| format!("the browser refused the download ({e:?})");
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob =
        web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options).map_err(fail)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(fail)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let link: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(fail)?
        .dyn_into()
        .map_err(|_| "no link element".to_string())?;
    link.set_href(&url);
    link.set_download(name);
    link.click();
    // The click has started the download; the URL can go after this task.
    Timeout::new(0, move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    })
    .forget();
    Ok(())
}

/// Imports the notes file chosen in the file input `event` came from (see
/// [`crate::transfer::parse_import`] for the format): every note is stored
/// as a new note with its pending change, like one typed here, and then
/// synced.
pub fn import_file(state: NotesState, event: web_sys::Event) {
    let Some(input) = event
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    let Some(file) = input.files().and_then(|files| files.get(0)) else {
        return;
    };
    // Cleared so that choosing the same file again is a new import.
    input.set_value("");
    state.import_message.set(Some("Importing…".to_string()));
    wasm_bindgen_futures::spawn_local(async move {
        match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
            Ok(buffer) => import_notes(state, js_sys::Uint8Array::new(&buffer).to_vec()).await,
            Err(e) => state
                .import_message
                .set(Some(format!("The file could not be read: {e:?}"))),
        }
    });
}

async fn import_notes(state: NotesState, file: Vec<u8>) {
    let imported = match split::notes_in_file(file).await {
        Ok(imported) => imported,
        Err(failed) => {
            let message = failed.message(TRANSFER_CODE);
            state.import_message.set(Some(message));
            return;
        }
    };
    let Some(page) = page() else { return };
    let now = now_ms();
    let plan = state
        .notes
        .with_untracked(|ns| plan_import(ns, imported, now, || NoteId::new(now, random10())));
    let meta = || EditMeta {
        mutation_id: MutationId::new(now_ms(), random10()),
        at_ms: now,
    };
    let stored = match page.db().await {
        Ok(db) => db.import_notes(&plan.create, meta).await,
        Err(e) => Err(e),
    };
    if let Err(e) = stored {
        state
            .import_message
            .set(Some(format!("Nothing was imported: {e}")));
        return;
    }
    let message = plan.summary();
    let created_ids: Vec<NoteId> = plan.create.iter().map(|n| n.id).collect();
    {
        let mut bases = page.bases.borrow_mut();
        for n in &plan.create {
            bases.insert(n.id, n.clone());
        }
    }
    state.notes.update(|ns| ns.extend(plan.create));
    // Notes held here whose copy in the file is newer: normal edits, saved
    // one by one through the writer like typing.
    for (id, draft) in plan.update {
        state.notes.update(|ns| {
            if let Some(n) = ns.find_mut(|n| n.id == id) {
                *n = Note {
                    deleted: false,
                    ..n.with_draft(draft, now)
                };
            }
        });
        page.mark_dirty(id);
        page.enqueue(id);
    }
    state.import_message.set(Some(message));
    page.announce_change(created_ids);
}

/// Retries every write that has not succeeded yet.
pub fn retry_saves(_state: NotesState) {
    flush();
}

/// Asks the sync leader (this tab's worker or another tab's) to sync now.
pub fn sync_now(_state: NotesState) {
    if let Some(page) = page() {
        page.tell_worker(&ToWorker::SyncNow);
        page.broadcast(&Broadcast::SyncNow);
    }
}

/// Resolves a conflict by keeping `content` (`None` deletes the note): a
/// normal edit, pushed like any other, after which the record is dropped.
pub fn resolve_conflict(state: NotesState, id: NoteId, content: Option<NoteDraft>) {
    let now = now_ms();
    state.notes.update(|ns| {
        if let Some(n) = ns.find_mut(|n| n.id == id) {
            *n = match content {
                Some(draft) => n.with_draft(draft, now),
                None => n.tombstone(now),
            };
        }
    });
    state
        .conflicts
        .update(|cs| cs.retain(|(note_id, _)| *note_id != id));
    state.editor_epoch.update(|e| *e += 1);
    let Some(page) = page() else { return };
    page.mark_dirty(id);
    page.enqueue(id);
    wasm_bindgen_futures::spawn_local(async move {
        if let Ok(db) = page.db().await {
            if let Err(e) = db.drop_conflict(id).await {
                page.fail(e.to_string());
            }
        }
    });
}

/// Resolves a conflict by keeping both versions: the note takes `keep`, and
/// `copy`, the other version, becomes a new note of its own (its title
/// marked as the other version), both saved and synced like typed notes. A
/// side that is a delete has nothing to copy: the note keeps the other.
pub fn keep_both(state: NotesState, id: NoteId, keep: Option<NoteDraft>, copy: Option<NoteDraft>) {
    let (keep, copy) = match (keep, copy) {
        (Some(keep), copy) => (Some(keep), copy),
        (None, copy) => (copy, None),
    };
    if let Some(copy) = copy {
        let now = now_ms();
        let title = copy_title(&copy.title);
        let note = Note::new(NoteId::new(now, random10()), now)
            .with_draft(NoteDraft { title, ..copy }, now);
        let copy_id = note.id;
        state.notes.update(|ns| ns.push(note));
        if let Some(page) = page() {
            page.mark_dirty(copy_id);
            page.enqueue(copy_id);
        }
    }
    resolve_conflict(state, id, keep);
}

/// The current time, for the UI's edit timestamps.
pub fn now() -> u64 {
    now_ms()
}

/// Moves keyboard focus to the element with this id once it is rendered.
pub fn focus_soon(element_id: &'static str) {
    Timeout::new(0, move || {
        let element = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(element_id))
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
        if let Some(element) = element {
            let _ = element.focus();
        }
    })
    .forget();
}
