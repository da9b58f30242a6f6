//! View models: the plain data the components render, derived from domain
//! values by pure functions that are tested natively.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

use crate::bridge::LiveState;
use crate::domain::{ClientId, Note, NoteId, LIMITS};
use crate::search::{highlight, query_terms, snippet, SearchIndex, Segment};
use crate::sync::engine::{SyncState, SyncStatus};
use crate::sync::protocol::ConflictSides;

use super::notes::{Notes, Seen};

/// How the list is ordered (pinned notes always come first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SortOrder {
    /// Most recently edited first.
    #[default]
    Updated,
    /// Most recently created first.
    Created,
    /// By title, A to Z, ignoring case.
    Title,
}

impl SortOrder {
    pub const ALL: [SortOrder; 3] = [SortOrder::Updated, SortOrder::Created, SortOrder::Title];

    /// The value of the sort control's option.
    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::Updated => "updated",
            SortOrder::Created => "created",
            SortOrder::Title => "title",
        }
    }

    /// What a person reads in the sort control.
    pub fn label(self) -> &'static str {
        match self {
            SortOrder::Updated => "Last edited",
            SortOrder::Created => "Created",
            SortOrder::Title => "Title",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

fn title_key(note: &Note) -> String {
    note.display_title().to_lowercase()
}

/// What the list shows: the search words, the tag filter and the order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListFilter {
    pub query: String,
    pub tag: Option<String>,
    pub sort: SortOrder,
}

/// One row of the notes list, with the search matches marked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListItem {
    pub id: NoteId,
    pub title: Vec<Segment>,
    pub preview: Vec<Segment>,
    pub when: String,
    pub pinned: bool,
    pub tags: Vec<String>,
}

/// The notes list as shown, as positions in `notes`: live notes only,
/// carrying `filter.tag` if set, among `hits` (the search index's answer)
/// when the query has words, pinned first and then in `filter.sort` order.
///
/// This is the order made from nothing; the page keeps it with
/// [`ListOrder`], which moves only the notes that changed.
pub fn list_order(
    notes: &[Note],
    filter: &ListFilter,
    hits: Option<&HashSet<NoteId>>,
) -> Vec<usize> {
    let mut order = ListOrder::default();
    let searching = !query_terms(&filter.query).is_empty();
    order.place(notes, filter, searching, hits, |_| true);
    order.order
}

/// Where a shown note goes in the list: pinned first, then the order's own
/// key, then newest first. The id makes every key unique, so the order of
/// a set of keys is exact, whatever sort made it.
type PlaceKey = (Reverse<bool>, SortKey, Reverse<u64>, Reverse<NoteId>);

/// Note `note`'s place key under `filter`, or `None` if the list leaves it
/// out (deleted, without the tag, or not among the search's hits).
fn place_key(
    note: &Note,
    filter: &ListFilter,
    searching: bool,
    hits: Option<&HashSet<NoteId>>,
) -> Option<PlaceKey> {
    let shown = !note.deleted
        && filter.tag.as_ref().is_none_or(|t| note.tags.contains(t))
        && (!searching || hits.is_some_and(|h| h.contains(&note.id)));
    shown.then(|| {
        let primary = match filter.sort {
            SortOrder::Updated => SortKey::Later(Reverse(note.updated_at)),
            SortOrder::Created => SortKey::Later(Reverse(note.created_at)),
            SortOrder::Title => SortKey::Title(title_key(note)),
        };
        (
            Reverse(note.pinned),
            primary,
            Reverse(note.updated_at),
            Reverse(note.id),
        )
    })
}

/// The list's order kept from one change of the notes to the next: the
/// same as [`list_order`], at a fraction of the cost when few notes
/// changed. This runs at every change of the notes (each frame of typing),
/// and sorting 10,000 notes then took about 1.5 ms of the frame.
///
/// Each note's place depends on its own key alone, so the notes whose key
/// did not change keep their order among themselves; a change to a few
/// notes removes those and inserts them again where their new keys go.
/// Only the notes whose [`Notes`] version changed are looked at; a new
/// filter, or a search (whose hits change with the notes), looks at every
/// note's key again. More than [`ListOrder::MOVE_AT_MOST`] changed keys
/// sort everything again.
#[derive(Debug, Default)]
pub struct ListOrder {
    /// The key each note was placed with, by its index in the notes;
    /// `None` for a note the list leaves out.
    keys: Vec<Option<PlaceKey>>,
    /// The shown notes' indices, in order.
    order: Vec<usize>,
    /// The notes' versions when they were placed, and the filter.
    seen: Seen,
    made_for: Option<ListFilter>,
}

impl ListOrder {
    /// Most changed notes moved one by one: each move is a binary search
    /// and a shift of the order, so beyond a few dozen a sort is cheaper.
    pub const MOVE_AT_MOST: usize = 64;

    /// The order for `notes` as they are now (see [`list_order`]).
    pub fn update(
        &mut self,
        notes: &Notes,
        filter: &ListFilter,
        hits: Option<&HashSet<NoteId>>,
    ) -> &[usize] {
        let searching = !query_terms(&filter.query).is_empty();
        let every = searching || self.made_for.as_ref() != Some(filter);
        let seen = std::mem::take(&mut self.seen);
        self.place(notes, filter, searching, hits, |i| {
            every || seen.may_differ(notes, i)
        });
        self.seen = seen.saw(notes);
        self.made_for = Some(filter.clone());
        &self.order
    }

    /// Places again the notes for which `may_differ` holds, and those gone.
    fn place(
        &mut self,
        notes: &[Note],
        filter: &ListFilter,
        searching: bool,
        hits: Option<&HashSet<NoteId>>,
        may_differ: impl Fn(usize) -> bool,
    ) {
        // Indices to take out of the order and place again: notes gone
        // from the end, then every note whose key changed.
        let mut moved: Vec<usize> = (notes.len()..self.keys.len())
            .filter(|&i| self.keys[i].is_some())
            .collect();
        self.keys.truncate(notes.len());
        self.keys.resize(notes.len(), None);
        for (i, note) in notes.iter().enumerate() {
            if !may_differ(i) {
                continue;
            }
            let key = place_key(note, filter, searching, hits);
            if self.keys[i] != key {
                self.keys[i] = key;
                moved.push(i);
            }
        }
        let keys = &self.keys;
        if moved.len() > Self::MOVE_AT_MOST {
            let mut keyed: Vec<(&PlaceKey, usize)> = keys
                .iter()
                .enumerate()
                .filter_map(|(i, key)| key.as_ref().map(|key| (key, i)))
                .collect();
            keyed.sort_unstable();
            self.order = keyed.into_iter().map(|(_, i)| i).collect();
        } else if !moved.is_empty() {
            moved.sort_unstable();
            self.order.retain(|i| moved.binary_search(i).is_err());
            for &i in &moved {
                if let Some(key) = keys.get(i).and_then(Option::as_ref) {
                    let at = self
                        .order
                        .partition_point(|&j| keys[j].as_ref().is_some_and(|placed| placed < key));
                    self.order.insert(at, i);
                }
            }
        }
    }
}

/// The first sort key of a list order: a date, later first, or a title.
/// One order uses one kind, so the kinds are never compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Later(Reverse<u64>),
    Title(String),
}

/// One row of the notes list: `note` with the search `terms` marked.
pub fn list_item(note: &Note, terms: &[String], now_ms: u64) -> ListItem {
    ListItem {
        id: note.id,
        title: highlight(&note.display_title(), terms),
        preview: snippet(&note.body, terms, 120),
        when: relative_time(note.updated_at, now_ms),
        pinned: note.pinned,
        tags: note.tags.clone(),
    }
}

/// Every row of the notes list ([`list_order`], each row [`list_item`]).
pub fn list_items(
    notes: &[Note],
    now_ms: u64,
    filter: &ListFilter,
    hits: Option<&HashSet<NoteId>>,
) -> Vec<ListItem> {
    let terms = query_terms(&filter.query);
    list_order(notes, filter, hits)
        .into_iter()
        .map(|i| list_item(&notes[i], &terms, now_ms))
        .collect()
}

/// Which rows of a list of `total` rows, each `row_px` high, to build when
/// its viewport of `viewport_px` is scrolled to `scroll_px`: the rows on
/// screen and `overscan` more on each side, so that a fast scroll or a
/// keyboard step finds its row already there. Everything else is spacing.
pub fn visible_rows(
    scroll_px: f64,
    viewport_px: f64,
    row_px: f64,
    total: usize,
    overscan: usize,
) -> Range<usize> {
    let row_px = if row_px.is_finite() && row_px >= 1.0 {
        row_px
    } else {
        1.0
    };
    let rows_at = |px: f64| {
        if px.is_finite() && px > 0.0 {
            // Saturates: a huge offset is simply past the end.
            (px / row_px) as usize
        } else {
            0
        }
    };
    let first = rows_at(scroll_px).min(total);
    let last = rows_at(scroll_px + viewport_px.max(0.0)).saturating_add(1);
    first.saturating_sub(overscan)..last.saturating_add(overscan).min(total)
}

/// The scroll offset that brings row `index` (of `row_px`) fully into a
/// viewport of `viewport_px` now at `scroll_px`, moving it as little as
/// possible; `None` when the row is already in view.
pub fn scroll_to_reveal(
    index: usize,
    scroll_px: f64,
    viewport_px: f64,
    row_px: f64,
) -> Option<f64> {
    let top = index as f64 * row_px;
    let bottom = top + row_px;
    let wanted = if top < scroll_px {
        top
    } else if bottom > scroll_px + viewport_px {
        // A row taller than the viewport shows its top.
        (bottom - viewport_px).min(top)
    } else {
        scroll_px
    };
    (wanted != scroll_px).then_some(wanted)
}

/// Brings `index` up to date with `notes`: live notes indexed (unchanged
/// ones cost a hash), deleted and vanished ones removed.
pub fn refresh_index(index: &mut SearchIndex<NoteId>, notes: &[Note]) {
    index_notes(index, notes, |_| true);
}

/// The search index kept up to date with the notes: only the notes whose
/// [`Notes`] version changed are indexed again ([`refresh_index`] hashes
/// every note's text to find the changed ones: 10 MB at 10,000 notes, at
/// every frame of typing while a search is shown).
#[derive(Default)]
pub struct NoteSearch {
    index: SearchIndex<NoteId>,
    /// The notes' versions when they were indexed.
    seen: Seen,
}

impl NoteSearch {
    pub fn refresh(&mut self, notes: &Notes) {
        let seen = std::mem::take(&mut self.seen);
        index_notes(&mut self.index, notes, |i| seen.may_differ(notes, i));
        self.seen = seen.saw(notes);
    }

    /// The live notes matching every word of `query` (see
    /// [`SearchIndex::search`]), as of the last [`NoteSearch::refresh`].
    pub fn search(&self, query: &str) -> Vec<NoteId> {
        self.index.search(query)
    }
}

/// Indexes again the notes for which `may_differ` holds (removing the
/// deleted ones, which spares the scan below when a note is deleted), then
/// drops what no live note holds any more.
fn index_notes(
    index: &mut SearchIndex<NoteId>,
    notes: &[Note],
    may_differ: impl Fn(usize) -> bool,
) {
    let mut live = 0;
    for (i, note) in notes.iter().enumerate() {
        if !note.deleted {
            live += 1;
        }
        if !may_differ(i) {
            continue;
        }
        if note.deleted {
            index.remove(note.id);
        } else {
            index.upsert(note.id, &note.title, &note.body);
        }
    }
    // Every live note is indexed, so more entries than live notes means
    // some note is gone from the notes (or changed its id in place).
    if index.len() > live {
        let live: HashSet<NoteId> = notes.iter().filter(|n| !n.deleted).map(|n| n.id).collect();
        index.retain(|id| live.contains(id));
    }
}

/// Every tag on a live note with how many notes carry it, by name (case
/// ignored, then as written). Made from nothing; the page keeps the counts
/// with [`TagCounts`].
pub fn all_tags(notes: &[Note]) -> Vec<(String, usize)> {
    let mut counts = TagCounts::default();
    counts.count(notes, |_| true);
    counts.sorted()
}

/// The tag counts kept from one change of the notes to the next: the same
/// as [`all_tags`], but only a note whose [`Notes`] version changed is
/// looked at, and counted again if its tags changed or it was deleted or
/// restored. Counting every tag of 10,000 notes at each frame of typing
/// took about 1.5 ms, nearly all of it hashing; comparing every note's tags
/// with those it was counted with still took 1 ms.
#[derive(Debug, Default)]
pub struct TagCounts {
    /// The tags each note was counted with, by its index in the notes
    /// (none for a deleted note).
    counted: Vec<Vec<String>>,
    /// Notes carrying each tag; a tag no note carries is not kept.
    counts: HashMap<String, usize>,
    /// The notes' versions when they were counted.
    seen: Seen,
}

impl TagCounts {
    /// The counts for `notes` as they are now (see [`all_tags`]).
    pub fn update(&mut self, notes: &Notes) -> Vec<(String, usize)> {
        let seen = std::mem::take(&mut self.seen);
        self.count(notes, |i| seen.may_differ(notes, i));
        self.seen = seen.saw(notes);
        self.sorted()
    }

    /// Counts again the notes for which `may_differ` holds, and drops
    /// those gone.
    fn count(&mut self, notes: &[Note], may_differ: impl Fn(usize) -> bool) {
        let gone = self.counted.split_off(notes.len().min(self.counted.len()));
        for tags in &gone {
            self.uncount(tags);
        }
        self.counted.resize_with(notes.len(), Vec::new);
        for (i, note) in notes.iter().enumerate() {
            if !may_differ(i) {
                continue;
            }
            let tags: &[String] = if note.deleted { &[] } else { &note.tags };
            if self.counted[i] != tags {
                let before = std::mem::replace(&mut self.counted[i], tags.to_vec());
                self.uncount(&before);
                for tag in tags {
                    *self.counts.entry(tag.clone()).or_default() += 1;
                }
            }
        }
    }

    fn sorted(&self) -> Vec<(String, usize)> {
        let mut tags: Vec<(String, usize)> = self
            .counts
            .iter()
            .map(|(tag, &n)| (tag.clone(), n))
            .collect();
        tags.sort_by_cached_key(|(tag, _)| (tag.to_lowercase(), tag.clone()));
        tags
    }

    fn uncount(&mut self, tags: &[String]) {
        for tag in tags {
            if let Some(n) = self.counts.get_mut(tag) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(tag);
                }
            }
        }
    }
}

/// A note's text kept on this device when it was deleted (here, or by
/// another device and learnt through sync), so it can be restored while its
/// tombstone is still held. Local only: never synced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Trashed {
    pub id: NoteId,
    /// The note as it last was before the delete.
    pub note: Note,
    /// When it was deleted, milliseconds since the Unix epoch.
    pub deleted_at: u64,
}

/// One row of the "Recently deleted" view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrashItem {
    pub id: NoteId,
    pub title: String,
    pub preview: String,
    pub when: String,
}

/// The rows of the "Recently deleted" view: kept texts whose note this
/// device still holds as a tombstone, most recently deleted first. A kept
/// text whose note is live again (restored, or edited back elsewhere) or
/// gone (its tombstone expired) is not listed; [`stale_trash`] names them.
pub fn trash_items(trash: &[Trashed], notes: &[Note], now_ms: u64) -> Vec<TrashItem> {
    let tombstones = tombstone_ids(notes);
    let mut shown: Vec<&Trashed> = trash
        .iter()
        .filter(|t| tombstones.contains(&t.id))
        .collect();
    shown.sort_by(|a, b| b.deleted_at.cmp(&a.deleted_at).then(b.id.cmp(&a.id)));
    shown
        .into_iter()
        .map(|t| TrashItem {
            id: t.id,
            title: t.note.display_title(),
            preview: t.note.preview(120),
            when: format!("deleted {}", relative_time(t.deleted_at, now_ms)),
        })
        .collect()
}

/// Kept texts no longer restorable: their note is live again or no longer
/// held at all.
pub fn stale_trash(trash: &[Trashed], notes: &[Note]) -> Vec<NoteId> {
    let tombstones = tombstone_ids(notes);
    trash
        .iter()
        .filter(|t| !tombstones.contains(&t.id))
        .map(|t| t.id)
        .collect()
}

fn tombstone_ids(notes: &[Note]) -> HashSet<NoteId> {
    notes.iter().filter(|n| n.deleted).map(|n| n.id).collect()
}

/// The note restored from `kept` over its tombstone `current`: a normal
/// edit, at `now_ms`, bringing the text, tags and pin back.
pub fn restored(current: &Note, kept: &Note, now_ms: u64) -> Note {
    Note {
        deleted: false,
        ..current.with_draft(kept.draft(), now_ms)
    }
}

/// One side of a recorded conflict: the version the server held first, or
/// the one that arrived later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictSide {
    First,
    Later,
}

/// What the compare view calls each side and its buttons, as seen from the
/// device showing it: "mine" and "theirs" where this device wrote one side,
/// "first" and "later" otherwise (a third device, or both sides from here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictLabels {
    pub first: &'static str,
    pub later: &'static str,
    pub keep_first: &'static str,
    pub keep_later: &'static str,
    /// The side "Keep both" leaves in the note; the other becomes a new note.
    pub both_keeps: ConflictSide,
}

/// The labels of `sides` on the device whose replica is `me`.
pub fn conflict_labels(sides: &ConflictSides, me: Option<ClientId>) -> ConflictLabels {
    let mine = |by: Option<ClientId>| me.is_some() && by == me;
    match (mine(sides.server_by), mine(sides.client_by)) {
        (true, false) => ConflictLabels {
            first: "Your version (this device)",
            later: "Version from another device",
            keep_first: "Keep mine",
            keep_later: "Keep theirs",
            both_keeps: ConflictSide::First,
        },
        (false, true) => ConflictLabels {
            first: "Version from another device",
            later: "Your version (this device)",
            keep_first: "Keep theirs",
            keep_later: "Keep mine",
            both_keeps: ConflictSide::Later,
        },
        _ => ConflictLabels {
            first: "Version saved first",
            later: "Version that arrived later",
            keep_first: "Keep first version",
            keep_later: "Keep later version",
            both_keeps: ConflictSide::Later,
        },
    }
}

/// The title of the new note "Keep both" makes of the other version: its
/// own title marked as the other version, within the title limit.
pub fn copy_title(title: &str) -> String {
    const MARK: &str = " (other version)";
    let room = LIMITS.max_title_bytes - MARK.len();
    let mut end = title.len().min(room);
    while !title.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &title[..end]).trim_start().to_string()
}

/// The note after `id` (`step` = 1) or before it (-1) in `order`, or the
/// first note when `id` is not shown.
pub fn step_in(order: &[NoteId], id: Option<NoteId>, step: isize) -> Option<NoteId> {
    let Some(pos) = id.and_then(|id| order.iter().position(|n| *n == id)) else {
        return order.first().copied();
    };
    let next = pos.checked_add_signed(step)?;
    order.get(next).copied()
}

/// Whether a UTF-16 unit is part of a word: a letter, digit or `_`, or half
/// of a character outside the basic plane (emoji and the like).
fn is_word_unit(unit: u16) -> bool {
    char::from_u32(u32::from(unit)).is_none_or(|c| c.is_alphanumeric() || c == '_')
}

/// Whether text inserted right at the caret (another tab's or device's
/// typing arriving where this one types) belongs before the caret. What
/// this person types next must not splice into a word of it: the caret
/// goes to the side where the inserted text does not start or end with a
/// word character; when it does both, after it if it carries on the word
/// the caret follows (the other side finishing its word), else before it.
fn caret_goes_after_insertion(old: &[u16], new: &[u16], caret: usize, prefix: usize) -> bool {
    let inserted = new.len().saturating_sub(old.len());
    if caret != prefix || inserted == 0 || new[prefix + inserted..] != old[prefix..] {
        return false;
    }
    let first = is_word_unit(new[prefix]);
    let last = is_word_unit(new[prefix + inserted - 1]);
    let before = caret > 0 && is_word_unit(old[caret - 1]);
    match (first, last) {
        (false, _) => false,
        (true, false) => true,
        (true, true) => before,
    }
}

/// Where a caret at UTF-16 offset `caret` in `old` belongs once the field
/// shows `new` instead: a change wholly after the caret leaves it where it
/// is, a change wholly before it shifts it by the change's length, and a
/// caret inside the changed part goes to that part's end. So text that
/// arrives from elsewhere never moves the place a person is typing at.
pub fn caret_after_replace(old: &str, new: &str, caret: u32) -> u32 {
    let old: Vec<u16> = old.encode_utf16().collect();
    let new: Vec<u16> = new.encode_utf16().collect();
    let caret = (caret as usize).min(old.len());
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let room = old.len().min(new.len()) - prefix;
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    let at = if caret <= prefix && !caret_goes_after_insertion(&old, &new, caret, prefix) {
        caret
    } else if caret >= old.len() - suffix {
        caret + new.len() - old.len()
    } else {
        new.len() - suffix
    };
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// A short, human description of how long ago `at_ms` was.
pub fn relative_time(at_ms: u64, now_ms: u64) -> String {
    let secs = now_ms.saturating_sub(at_ms) / 1000;
    match secs {
        0..=44 => "just now".to_string(),
        45..=89 => "1 min ago".to_string(),
        90..=3_599 => format!("{} min ago", (secs + 30) / 60),
        3_600..=7_199 => "1 hour ago".to_string(),
        7_200..=86_399 => format!("{} hours ago", secs / 3_600),
        86_400..=172_799 => "yesterday".to_string(),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// Whether the open note's latest text is safely in IndexedDB.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SaveState {
    /// Everything typed is stored.
    #[default]
    Saved,
    /// Typed text is waiting for (or in) a write.
    Saving,
    /// The last write failed; the text is kept on the page and in the
    /// recovery journal until a retry succeeds.
    Failed,
}

impl SaveState {
    pub fn label(&self) -> &'static str {
        match self {
            SaveState::Saved => "Saved on this device",
            SaveState::Saving => "Saving…",
            SaveState::Failed => "Not saved yet",
        }
    }
}

/// What the page knows of the sync worker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WorkerView {
    #[default]
    Starting,
    Running {
        ticks: u64,
        notes: u32,
        pending: u32,
    },
    Failed(String),
}

impl WorkerView {
    /// The footer line describing the worker. `synced_pending` is the
    /// pending count of the sync status shown beside it, when there is one:
    /// the worker counts for the footer at most twice a second, and the two
    /// must never disagree.
    pub fn describe(&self, synced_pending: Option<u32>) -> String {
        match self {
            WorkerView::Starting => "Sync worker starting…".to_string(),
            WorkerView::Running { notes, pending, .. } => format!(
                "Sync worker running · {} stored · {} waiting to sync",
                plural(*notes, "note", "notes"),
                plural(synced_pending.unwrap_or(*pending), "change", "changes"),
            ),
            WorkerView::Failed(message) => format!("Sync worker stopped: {message}"),
        }
    }
}

/// How much of the browser's storage this site uses, and whether the
/// browser promised not to evict it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageUse {
    pub usage: u64,
    pub quota: u64,
    pub persisted: bool,
}

impl StorageUse {
    /// The status bar's words, e.g. "Storage: 1.2 MB of 10 GB · kept".
    pub fn describe(&self) -> String {
        let kept = if self.persisted {
            "kept until you delete it"
        } else {
            "may be cleared if the device runs low on space"
        };
        format!(
            "Storage: {} of {} · {kept}",
            human_bytes(self.usage),
            human_bytes(self.quota)
        )
    }
}

/// A byte count as people read it (decimal units, one decimal place).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The live connection as the status bar says it: `(state, words)`.
pub fn live_label(live: LiveState, leader: Option<bool>, now_ms: u64) -> (&'static str, String) {
    let role = match leader {
        Some(true) => "this tab syncs for this browser",
        Some(false) => "another tab syncs for this browser",
        None => "starting",
    };
    match live {
        LiveState::Unknown => ("unknown", format!("Live updates: {role}")),
        LiveState::Connecting => ("connecting", format!("Live updates: connecting · {role}")),
        LiveState::Connected => ("connected", format!("Live updates: on · {role}")),
        LiveState::Retrying { at_ms } => {
            let seconds = at_ms.saturating_sub(now_ms).div_ceil(1000);
            (
                "retrying",
                format!("Live updates: reconnecting in {seconds} s · {role}"),
            )
        }
    }
}

/// The sync indicator: a state keyword (for styling and tests) and the words
/// a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncLabel {
    pub state: &'static str,
    pub text: String,
}

/// Describes the sync status truthfully: never "synced" while anything is
/// pending, always the count of pending changes, and when the last full sync
/// happened.
pub fn sync_label(status: Option<&SyncStatus>, now_ms: u64) -> SyncLabel {
    let Some(status) = status else {
        return SyncLabel {
            state: "starting",
            text: "Starting sync…".to_string(),
        };
    };
    let pending = if status.pending == 0 {
        String::new()
    } else {
        format!(" · {} waiting", plural(status.pending, "change", "changes"))
    };
    let last = status
        .last_synced_at
        .map(|at| format!(" · last synced {}", relative_time(at, now_ms)))
        .unwrap_or_default();
    match &status.state {
        SyncState::Offline => SyncLabel {
            state: "offline",
            text: format!("Offline{pending}{last}"),
        },
        SyncState::Syncing if status.downloaded > 0 => SyncLabel {
            state: "syncing",
            text: format!("Syncing… {} downloaded{pending}", status.downloaded),
        },
        SyncState::Syncing => SyncLabel {
            state: "syncing",
            text: format!("Syncing…{pending}"),
        },
        SyncState::Synced => SyncLabel {
            state: "synced",
            text: format!("Synced{last}"),
        },
        SyncState::Error { message } => {
            let retry = status
                .retry_at
                .map(|at| {
                    format!(
                        " · retrying in {} s",
                        at.saturating_sub(now_ms).div_ceil(1000)
                    )
                })
                .unwrap_or_default();
            SyncLabel {
                state: "error",
                text: format!("Sync problem: {message}{pending}{retry}"),
            }
        }
    }
}

/// "1 note", "2 notes".
pub fn plural(n: u32, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_is_mine_and_theirs_only_on_a_device_that_wrote_one_side() {
        let me = ClientId::new(1, [1; 10]);
        let other = ClientId::new(2, [2; 10]);
        let sides = |server_by, client_by| ConflictSides {
            server: None,
            client: None,
            server_by,
            client_by,
        };
        let labels = conflict_labels(&sides(Some(other), Some(me)), Some(me));
        assert_eq!(
            (labels.keep_first, labels.keep_later, labels.both_keeps),
            ("Keep theirs", "Keep mine", ConflictSide::Later)
        );
        let labels = conflict_labels(&sides(Some(me), Some(other)), Some(me));
        assert_eq!(
            (labels.keep_first, labels.keep_later, labels.both_keeps),
            ("Keep mine", "Keep theirs", ConflictSide::First)
        );
        for (server_by, client_by, me) in [
            (Some(other), Some(other), Some(me)),
            (Some(me), Some(me), Some(me)),
            (None, None, Some(me)),
            (Some(me), Some(other), None),
        ] {
            let labels = conflict_labels(&sides(server_by, client_by), me);
            assert_eq!(labels.keep_later, "Keep later version");
        }
    }

    #[test]
    fn the_copy_of_the_other_version_is_marked_and_fits() {
        assert_eq!(copy_title("Groceries"), "Groceries (other version)");
        assert_eq!(copy_title(""), "(other version)");
        let long = "é".repeat(LIMITS.max_title_bytes);
        let copy = copy_title(&long);
        assert!(copy.len() <= LIMITS.max_title_bytes, "{}", copy.len());
        assert!(copy.ends_with(" (other version)"));
    }
    use crate::domain::newest_first;
    use std::cmp::Ordering;

    #[test]
    fn storage_use_reads_like_a_person_would_say_it() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_250_000), "1.2 MB");
        assert_eq!(human_bytes(10_000_000_000), "10.0 GB");
        let kept = StorageUse {
            usage: 2_000,
            quota: 5_000_000_000,
            persisted: true,
        };
        assert_eq!(
            kept.describe(),
            "Storage: 2.0 kB of 5.0 GB · kept until you delete it"
        );
        assert!(StorageUse {
            persisted: false,
            ..kept
        }
        .describe()
        .contains("may be cleared"));
    }

    #[test]
    fn the_live_label_names_the_state_and_who_syncs() {
        let (state, text) = live_label(LiveState::Retrying { at_ms: 5_500 }, Some(false), 1_000);
        assert_eq!(state, "retrying");
        assert_eq!(
            text,
            "Live updates: reconnecting in 5 s · another tab syncs for this browser"
        );
        let (state, text) = live_label(LiveState::Connected, Some(true), 0);
        assert_eq!(state, "connected");
        assert!(text.contains("this tab syncs"));
    }

    #[test]
    fn the_caret_stays_where_the_person_types_when_text_arrives() {
        // A line added after the caret: it stays.
        assert_eq!(caret_after_replace("one\ntwo", "one\ntwo\nthree", 3), 3);
        // A line added before the caret: it moves with its text.
        assert_eq!(caret_after_replace("one\ntwo", "zero\none\ntwo", 6), 11);
        // Inside a replaced part: the end of the new part.
        assert_eq!(caret_after_replace("abcdef", "abXYZef", 3), 5);
        // UTF-16 offsets, as the DOM counts them.
        assert_eq!(caret_after_replace("é😀x", "Aé😀x", 3), 4);
        assert_eq!(caret_after_replace("", "new", 0), 0);
        // Another tab finishing the word the caret follows: the caret goes
        // after it, so the next word typed here stays whole.
        assert_eq!(caret_after_replace("start a10", "start a104", 9), 10);
        // A new word arriving at the caret: the caret stays on the side
        // where typing on cannot splice into it.
        assert_eq!(caret_after_replace("start a10", "start a10 b1", 9), 9);
        assert_eq!(caret_after_replace("start ", "start a5 ", 6), 9);
        assert_eq!(caret_after_replace("start ", "start a5", 6), 6);
        assert_eq!(caret_after_replace("abc", "", 2), 0);
    }
    use crate::domain::NoteId;

    fn note(n: u64, updated: u64) -> Note {
        let mut note = Note::new(NoteId::new(n, [n as u8; 10]), updated);
        note.title = format!("note {n}");
        note
    }

    fn text(segments: &[Segment]) -> String {
        segments.iter().map(|s| s.text.as_str()).collect()
    }

    fn titles(items: &[ListItem]) -> Vec<String> {
        items.iter().map(|i| text(&i.title)).collect()
    }

    #[test]
    fn list_hides_tombstones_and_sorts_newest_first() {
        let mut dead = note(3, 500);
        dead.deleted = true;
        let items = list_items(
            &[note(1, 100), note(2, 300), dead],
            1_000,
            &ListFilter::default(),
            None,
        );
        assert_eq!(titles(&items), vec!["note 2", "note 1"]);
    }

    #[test]
    fn list_sorts_by_each_order_with_pinned_first() {
        let mut a = note(1, 300);
        a.title = "banana".into();
        a.created_at = 10;
        let mut b = note(2, 100);
        b.title = "Apple".into();
        b.created_at = 30;
        let mut c = note(3, 200);
        c.title = "cherry".into();
        c.created_at = 20;
        let notes = [a, b, c];
        let sorted = |sort| {
            let filter = ListFilter {
                sort,
                ..ListFilter::default()
            };
            titles(&list_items(&notes, 1_000, &filter, None))
        };
        assert_eq!(
            sorted(SortOrder::Updated),
            vec!["banana", "cherry", "Apple"]
        );
        assert_eq!(
            sorted(SortOrder::Created),
            vec!["Apple", "cherry", "banana"]
        );
        assert_eq!(sorted(SortOrder::Title), vec!["Apple", "banana", "cherry"]);
        let mut pinned = notes.clone();
        pinned[2].pinned = true;
        let filter = ListFilter {
            sort: SortOrder::Title,
            ..ListFilter::default()
        };
        let items = list_items(&pinned, 1_000, &filter, None);
        assert_eq!(titles(&items), vec!["cherry", "Apple", "banana"]);
        assert!(items[0].pinned);
        for sort in SortOrder::ALL {
            assert_eq!(SortOrder::parse(sort.as_str()), Some(sort));
        }
    }

    #[test]
    fn list_filters_by_tag_and_by_search_hits_with_marks() {
        let mut a = note(1, 100);
        a.title = "Groceries".into();
        a.body = "buy bread and milk".into();
        a.tags = vec!["home".into()];
        let mut b = note(2, 200);
        b.title = "Bread recipe".into();
        b.tags = vec!["cooking".into(), "home".into()];
        let notes = [a, b];
        let cooking = ListFilter {
            tag: Some("cooking".into()),
            ..ListFilter::default()
        };
        assert_eq!(
            titles(&list_items(&notes, 0, &cooking, None)),
            vec!["Bread recipe"]
        );
        assert_eq!(
            all_tags(&notes),
            vec![("cooking".to_string(), 1), ("home".to_string(), 2)]
        );

        let mut index = SearchIndex::new();
        refresh_index(&mut index, &notes);
        let search = ListFilter {
            query: "brea".into(),
            ..ListFilter::default()
        };
        let hits: HashSet<NoteId> = index.search(&search.query).into_iter().collect();
        let items = list_items(&notes, 0, &search, Some(&hits));
        assert_eq!(titles(&items), vec!["Bread recipe", "Groceries"]);
        assert!(items[0].title.iter().any(|s| s.mark && s.text == "Brea"));
        assert!(items[1].preview.iter().any(|s| s.mark && s.text == "brea"));
        // A query with words but no hits shows nothing, not everything.
        let none = ListFilter {
            query: "zzz".into(),
            ..ListFilter::default()
        };
        assert!(list_items(&notes, 0, &none, Some(&HashSet::new())).is_empty());
        // Deleting a note takes it out of the index.
        let mut gone = notes.clone();
        gone[1].deleted = true;
        refresh_index(&mut index, &gone);
        assert_eq!(index.search("bread"), vec![gone[0].id]);
    }

    #[test]
    fn recently_deleted_lists_only_restorable_texts() {
        let mut kept = note(1, 100);
        kept.title = "kept".into();
        let tombstone = kept.tombstone(500);
        let trashed = |n: &Note, at| Trashed {
            id: n.id,
            note: n.clone(),
            deleted_at: at,
        };
        let live_again = note(2, 100);
        let trash = vec![
            trashed(&kept, 500),
            trashed(&live_again, 400),
            trashed(&note(3, 1), 300),
        ];
        let notes = vec![tombstone.clone(), live_again.clone()];
        let items = trash_items(&trash, &notes, 60_500);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].title, "kept");
        assert_eq!(items[0].when, "deleted 1 min ago");
        assert_eq!(
            stale_trash(&trash, &notes),
            vec![live_again.id, note(3, 1).id]
        );
        let back = restored(&tombstone, &kept, 900);
        assert!(!back.deleted);
        assert_eq!(back.draft(), kept.draft());
        assert_eq!((back.rev, back.updated_at), (tombstone.rev, 900));
    }

    #[test]
    fn only_the_rows_on_screen_and_the_overscan_are_built() {
        // 10,000 rows of 60 px, a 600 px viewport: 10 rows on screen.
        assert_eq!(visible_rows(0.0, 600.0, 60.0, 10_000, 5), 0..16);
        assert_eq!(visible_rows(6_000.0, 600.0, 60.0, 10_000, 5), 95..116);
        // The end of the list, and past it (the list shrank under the scroll).
        assert_eq!(
            visible_rows(599_400.0, 600.0, 60.0, 10_000, 5),
            9_985..10_000
        );
        assert_eq!(visible_rows(1e12, 600.0, 60.0, 10_000, 5), 9_995..10_000);
        // Short lists are built whole; nonsense measurements build from the top.
        assert_eq!(visible_rows(0.0, 600.0, 60.0, 3, 5), 0..3);
        assert_eq!(visible_rows(f64::NAN, f64::NAN, 0.0, 50, 5), 0..6);
        assert_eq!(visible_rows(-30.0, 600.0, 60.0, 0, 5), 0..0);
    }

    #[test]
    fn revealing_a_row_scrolls_as_little_as_possible() {
        assert_eq!(scroll_to_reveal(3, 0.0, 600.0, 60.0), None);
        assert_eq!(scroll_to_reveal(10, 0.0, 600.0, 60.0), Some(60.0));
        assert_eq!(scroll_to_reveal(2, 600.0, 600.0, 60.0), Some(120.0));
        assert_eq!(scroll_to_reveal(0, 0.0, 30.0, 60.0), None);
        assert_eq!(scroll_to_reveal(1, 0.0, 30.0, 60.0), Some(60.0));
    }

    /// The list's order, written plainly as a comparison: what
    /// [`list_order`]'s key sort must agree with.
    fn reference_order(sort: SortOrder, a: &Note, b: &Note) -> Ordering {
        let order = match sort {
            SortOrder::Updated => b.updated_at.cmp(&a.updated_at),
            SortOrder::Created => b.created_at.cmp(&a.created_at),
            SortOrder::Title => title_key(a).cmp(&title_key(b)),
        };
        b.pinned
            .cmp(&a.pinned)
            .then(order)
            .then_with(|| newest_first(a, b))
    }

    proptest::proptest! {
        #[test]
        fn the_order_is_a_sort_of_the_shown_notes(
            stamps in proptest::collection::vec((0u64..50, 0u64..50, proptest::bool::ANY, proptest::bool::ANY, 0u8..4), 0..40),
            sort in 0usize..3,
        ) {
            let notes: Vec<Note> = stamps
                .iter()
                .enumerate()
                .map(|(i, &(updated, created, pinned, deleted, t))| {
                    let mut n = note(i as u64, updated);
                    n.created_at = created;
                    n.pinned = pinned;
                    n.deleted = deleted;
                    n.title = ["b", "A", "a", ""][usize::from(t)].to_string();
                    n
                })
                .collect();
            let filter = ListFilter { sort: SortOrder::ALL[sort], ..ListFilter::default() };
            let order = list_order(&notes, &filter, None);
            let mut naive: Vec<&Note> = notes.iter().filter(|n| !n.deleted).collect();
            naive.sort_by(|a, b| reference_order(filter.sort, a, b));
            let got: Vec<NoteId> = order.iter().map(|&i| notes[i].id).collect();
            let want: Vec<NoteId> = naive.iter().map(|n| n.id).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    /// One change to the notes or to the list's filter, or a frame: the
    /// page takes the changes in only at its next frame, and the search
    /// index only while a search is shown.
    #[derive(Debug, Clone)]
    enum Step {
        Edit {
            at: usize,
            updated: u64,
        },
        Pin {
            at: usize,
        },
        Delete {
            at: usize,
        },
        Retag {
            at: usize,
            tags: u8,
        },
        Retitle {
            at: usize,
            title: u8,
        },
        Rebody {
            at: usize,
            body: u8,
        },
        Create {
            updated: u64,
        },
        /// `count` notes from `at` removed at once, moving every index
        /// after them.
        Remove {
            at: usize,
            count: usize,
        },
        EditMany {
            from: usize,
            count: usize,
            updated: u64,
        },
        /// Every note handed out to change (`Notes::iter_mut`), one edited.
        TouchAll {
            at: usize,
            updated: u64,
        },
        /// A whole new value, as a signal's `set` gives.
        Replace,
        Sort {
            sort: usize,
        },
        Tag {
            tag: Option<u8>,
        },
        /// A query (one with words, or only spaces) with these hits, or none.
        Search {
            hits: Option<(u64, bool)>,
        },
        /// The page's frame: the list and the tags take the notes in, and
        /// the search index too if `searching`.
        Frame {
            searching: bool,
        },
    }

    const TAGS: [&str; 3] = ["home", "Work", "work"];
    const TITLES: [&str; 4] = ["b", "A", "a", ""];
    const BODIES: [&str; 4] = ["", "alpha Beta", "beta gamma\nnote", "Note taking"];
    const QUERIES: [&str; 7] = ["a", "b", "al", "beta", "note", "gam", "beta no"];

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        let at = 0usize..200;
        prop_oneof![
            4 => (at.clone(), 0u64..60).prop_map(|(at, updated)| Step::Edit { at, updated }),
            1 => at.clone().prop_map(|at| Step::Pin { at }),
            1 => at.clone().prop_map(|at| Step::Delete { at }),
            1 => (at.clone(), 0u8..8).prop_map(|(at, tags)| Step::Retag { at, tags }),
            1 => (at.clone(), 0u8..4).prop_map(|(at, title)| Step::Retitle { at, title }),
            2 => (at.clone(), 0u8..4).prop_map(|(at, body)| Step::Rebody { at, body }),
            1 => (0u64..60).prop_map(|updated| Step::Create { updated }),
            1 => (at.clone(), 1usize..4).prop_map(|(at, count)| Step::Remove { at, count }),
            1 => (at.clone(), 0usize..100, 0u64..60)
                .prop_map(|(from, count, updated)| Step::EditMany { from, count, updated }),
            1 => (at, 0u64..60).prop_map(|(at, updated)| Step::TouchAll { at, updated }),
            1 => Just(Step::Replace),
            1 => (0usize..3).prop_map(|sort| Step::Sort { sort }),
            1 => proptest::option::of(0u8..3).prop_map(|tag| Step::Tag { tag }),
            1 => proptest::option::of((any::<u64>(), any::<bool>()))
                .prop_map(|hits| Step::Search { hits }),
            4 => any::<bool>().prop_map(|searching| Step::Frame { searching }),
        ]
    }

    /// The tags of bit set `bits`, in the vocabulary's order.
    fn tags_of(bits: u8) -> Vec<String> {
        (0..TAGS.len())
            .filter(|b| bits & (1 << b) != 0)
            .map(|b| TAGS[b].to_string())
            .collect()
    }

    /// Tag counts written plainly: what [`TagCounts`] must agree with.
    fn reference_tags(notes: &[Note]) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for tag in notes.iter().filter(|n| !n.deleted).flat_map(|n| &n.tags) {
            match counts.iter_mut().find(|(t, _)| t == tag) {
                Some((_, n)) => *n += 1,
                None => counts.push((tag.clone(), 1)),
            }
        }
        counts.sort_by(|(a, _), (b, _)| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b)));
        counts
    }

    /// A search written plainly, as a scan: the live notes where every
    /// word of `query` starts a word of the title or the body.
    fn reference_search(notes: &[Note], query: &str) -> Vec<NoteId> {
        let terms = query_terms(query);
        let mut found: Vec<NoteId> = notes
            .iter()
            .filter(|n| !n.deleted && !terms.is_empty())
            .filter(|n| {
                terms.iter().all(|t| {
                    crate::search::words(&n.title)
                        .chain(crate::search::words(&n.body))
                        .any(|w| w.starts_with(t.as_str()))
                })
            })
            .map(|n| n.id)
            .collect();
        found.sort();
        found
    }

    /// What the kept views must show at a frame, checked against plain
    /// versions made from nothing.
    fn check_frame(
        notes: &Notes,
        filter: &ListFilter,
        hits: Option<&HashSet<NoteId>>,
        kept: (&mut ListOrder, &mut TagCounts, &mut NoteSearch),
        searching: bool,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let (order, tags, search) = kept;
        let got: Vec<NoteId> = order
            .update(notes, filter, hits)
            .iter()
            .map(|&i| notes[i].id)
            .collect();
        let has_words = !query_terms(&filter.query).is_empty();
        let mut naive: Vec<&Note> = notes
            .iter()
            .filter(|n| !n.deleted)
            .filter(|n| filter.tag.as_ref().is_none_or(|t| n.tags.contains(t)))
            .filter(|n| !has_words || hits.is_some_and(|h| h.contains(&n.id)))
            .collect();
        naive.sort_by(|a, b| reference_order(filter.sort, a, b));
        let want: Vec<NoteId> = naive.iter().map(|n| n.id).collect();
        proptest::prop_assert_eq!(got, want);
        proptest::prop_assert_eq!(tags.update(notes), reference_tags(notes));
        if searching {
            search.refresh(notes);
            for query in QUERIES {
                let mut got = search.search(query);
                got.sort();
                proptest::prop_assert_eq!(
                    got,
                    reference_search(notes, query),
                    "searching {}",
                    query
                );
            }
        }
        Ok(())
    }

    proptest::proptest! {
        /// The kept order, tag counts and search index equal plain ones
        /// made from nothing at every frame, whatever came between: edits
        /// of dates, pins, deletes, tags, titles and bodies, new notes,
        /// removals (which move every index after them), many notes at
        /// once, a whole new value, and changes of order, tag filter and
        /// search; the search index only at some frames, as the page
        /// refreshes it only while a search is shown.
        #[test]
        fn the_kept_order_counts_and_index_follow_every_change(
            start in proptest::collection::vec((0u64..60, 0u8..8, 0u8..4, 0u8..4), 0..90),
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let mut next_id = 0u64;
            let mut make = |updated: u64| {
                next_id += 1;
                note(next_id, updated)
            };
            let mut notes = Notes::new(start
                .iter()
                .map(|&(updated, tags, title, body)| {
                    let mut n = make(updated);
                    n.created_at = updated / 2;
                    n.tags = tags_of(tags);
                    n.title = TITLES[usize::from(title)].to_string();
                    n.body = BODIES[usize::from(body)].to_string();
                    n
                })
                .collect());
            let mut filter = ListFilter::default();
            let mut hits: Option<HashSet<NoteId>> = None;
            let mut kept_order = ListOrder::default();
            let mut kept_tags = TagCounts::default();
            let mut kept_search = NoteSearch::default();
            for step in steps.into_iter().chain([Step::Frame { searching: true }]) {
                let len = notes.len().max(1);
                match step {
                    Step::Edit { at, updated } => {
                        if let Some(n) = notes.get_mut(at % len) {
                            n.updated_at = updated;
                        }
                    }
                    Step::Pin { at } => {
                        if let Some(n) = notes.get_mut(at % len) {
                            n.pinned = !n.pinned;
                        }
                    }
                    Step::Delete { at } => {
                        if let Some(n) = notes.get_mut(at % len) {
                            n.deleted = !n.deleted;
                        }
                    }
                    Step::Retag { at, tags } => {
                        if let Some(n) = notes.get_mut(at % len) {
                            n.tags = tags_of(tags);
                        }
                    }
                    Step::Retitle { at, title } => {
                        if let Some(n) = notes.get_mut(at % len) {
                            n.title = TITLES[usize::from(title)].to_string();
                        }
                    }
                    Step::Rebody { at, body } => {
                        if let Some(n) = notes.get_mut(at % len) {
                            n.body = BODIES[usize::from(body)].to_string();
                        }
                    }
                    Step::Create { updated } => notes.push(make(updated)),
                    Step::Remove { at, count } => {
                        let gone: HashSet<NoteId> =
                            notes.iter().skip(at % len).take(count).map(|n| n.id).collect();
                        notes.retain(|n| !gone.contains(&n.id));
                    }
                    Step::EditMany { from, count, updated } => {
                        for i in (from % len..notes.len()).take(count) {
                            if let Some(n) = notes.get_mut(i) {
                                n.updated_at = updated;
                            }
                        }
                    }
                    Step::TouchAll { at, updated } => {
                        if let Some(n) = notes.iter_mut().nth(at % len) {
                            n.updated_at = updated;
                        }
                    }
                    Step::Replace => notes = Notes::from(notes.to_vec()),
                    Step::Sort { sort } => filter.sort = SortOrder::ALL[sort],
                    Step::Tag { tag } => filter.tag = tag.map(|t| TAGS[usize::from(t)].to_string()),
                    Step::Search { hits: mask } => {
                        filter.query = match mask {
                            Some((_, true)) => "words".into(),
                            Some((_, false)) => "  ".into(),
                            None => String::new(),
                        };
                        hits = mask.map(|(mask, _)| {
                            notes
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| mask & (1 << (i % 64)) != 0)
                                .map(|(_, n)| n.id)
                                .collect()
                        });
                    }
                    Step::Frame { searching } => check_frame(
                        &notes,
                        &filter,
                        hits.as_ref(),
                        (&mut kept_order, &mut kept_tags, &mut kept_search),
                        searching,
                    )?,
                }
            }
        }
    }

    #[test]
    fn stepping_through_the_list() {
        let order = [note(1, 0).id, note(2, 0).id, note(3, 0).id];
        assert_eq!(step_in(&order, Some(order[0]), 1), Some(order[1]));
        assert_eq!(step_in(&order, Some(order[1]), -1), Some(order[0]));
        assert_eq!(step_in(&order, Some(order[2]), 1), None);
        assert_eq!(step_in(&order, Some(order[0]), -1), None);
        assert_eq!(step_in(&order, None, 1), Some(order[0]));
        assert_eq!(step_in(&[], None, 1), None);
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = 10_000_000_000;
        assert_eq!(relative_time(now, now), "just now");
        assert_eq!(relative_time(now + 5_000, now), "just now");
        assert_eq!(relative_time(now - 60_000, now), "1 min ago");
        assert_eq!(relative_time(now - 10 * 60_000, now), "10 min ago");
        assert_eq!(relative_time(now - 3 * 3_600_000, now), "3 hours ago");
        assert_eq!(relative_time(now - 30 * 3_600_000, now), "yesterday");
        assert_eq!(relative_time(now - 5 * 86_400_000, now), "5 days ago");
    }

    #[test]
    fn sync_labels_are_truthful() {
        let status = |state, pending| SyncStatus {
            state,
            pending,
            last_synced_at: Some(0),
            downloaded: 0,
            retry_at: None,
        };
        let now = 120_000;
        assert_eq!(sync_label(None, now).state, "starting");
        let synced = sync_label(Some(&status(SyncState::Synced, 0)), now);
        assert_eq!(synced.state, "synced");
        assert_eq!(synced.text, "Synced · last synced 2 min ago");
        let offline = sync_label(Some(&status(SyncState::Offline, 3)), now);
        assert_eq!(
            offline.text,
            "Offline · 3 changes waiting · last synced 2 min ago"
        );
        let mut downloading = status(SyncState::Syncing, 0);
        downloading.downloaded = 4000;
        assert_eq!(
            sync_label(Some(&downloading), now).text,
            "Syncing… 4000 downloaded"
        );
        let mut failing = status(
            SyncState::Error {
                message: "server down".into(),
            },
            1,
        );
        failing.retry_at = Some(now + 4_500);
        assert_eq!(
            sync_label(Some(&failing), now).text,
            "Sync problem: server down · 1 change waiting · retrying in 5 s"
        );
    }

    #[test]
    fn worker_description_counts_correctly() {
        let view = WorkerView::Running {
            ticks: 3,
            notes: 1,
            pending: 2,
        };
        assert_eq!(
            view.describe(None),
            "Sync worker running · 1 note stored · 2 changes waiting to sync"
        );
        // The sync status's count, when known, is the one shown.
        assert_eq!(
            view.describe(Some(0)),
            "Sync worker running · 1 note stored · 0 changes waiting to sync"
        );
        assert!(WorkerView::Failed("x".into())
            .describe(None)
            .contains("stopped: x"));
    }
}
