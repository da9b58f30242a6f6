//! Components and pages. Components read [`NotesState`] signals and call the
//! platform actions; the state itself is filled from IndexedDB in the browser.
//!
//! `platform` is the one seam between the UI and the browser: in the hydrate
//! build it is the client's IndexedDB-backed actions, elsewhere a set of
//! no-ops (the server renders only the empty shell).

mod auth;
pub mod model;
pub mod notes;

#[cfg_attr(feature = "hydrate", path = "platform_browser.rs")]
#[cfg_attr(not(feature = "hydrate"), path = "platform_server.rs")]
mod platform;

use leptos::either::Either;
use leptos::prelude::*;

pub use auth::{SignInPage, SignUpPage};
pub use platform::current_route;

use std::collections::{HashMap, HashSet};

use crate::api::Account;
use crate::bridge::LiveState;
use crate::domain::{ClientId, Note, NoteDraft, NoteId};
use crate::search::{query_terms, Segment};
use crate::sync::engine::SyncStatus;
use crate::sync::protocol::ConflictSides;
use model::{
    caret_after_replace, conflict_labels, list_item, live_label, scroll_to_reveal, sync_label,
    trash_items, visible_rows, ConflictSide, ListFilter, ListOrder, NoteSearch, SaveState,
    SortOrder, StorageUse, TagCounts, Trashed, WorkerView,
};
use notes::Notes;

/// Rows built beyond each edge of the visible part of the notes list.
pub const LIST_OVERSCAN: usize = 60;
/// The height of a row of the notes list until one is measured (the CSS
/// gives every row the same height, so one measurement holds for all).
pub const DEFAULT_ROW_PX: f64 = 68.0;

/// The two export files (see [`crate::transfer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Zip,
}

/// The page's reactive state. Every field is a signal, so the struct is `Copy`
/// and can be captured by any closure.
#[derive(Clone, Copy)]
pub struct NotesState {
    /// Every note the page holds, tombstones included.
    pub notes: RwSignal<Notes>,
    /// Whether the notes have been read from IndexedDB yet.
    pub loaded: RwSignal<bool>,
    pub selected: RwSignal<Option<NoteId>>,
    /// Each note whose latest text is not stored yet, and why: a note not
    /// listed is saved. One note that cannot be saved never marks another.
    pub save_states: RwSignal<HashMap<NoteId, SaveState>>,
    /// A storage failure a person must know about, with what to do.
    pub storage_error: RwSignal<Option<String>>,
    /// Something the app did on its own that a person should know about
    /// (notes written back into a deleted database, records it could not
    /// read, the last push before signing out).
    pub notice: RwSignal<Option<String>>,
    /// Set when another account signed in in this browser while this tab
    /// holds this account's notes: that account's name. Sync stops until
    /// this tab's account signs in again.
    pub other_account: RwSignal<Option<String>>,
    /// A newer build upgraded the local database: this tab must reload.
    pub outdated: RwSignal<bool>,
    /// A sign-out is under way (its last push, then the server's answer).
    pub signing_out: RwSignal<bool>,
    pub worker: RwSignal<WorkerView>,
    /// The clock the relative times are computed against.
    pub now_ms: RwSignal<u64>,
    /// Bumped when the open note changed under the editor (another tab, a sync).
    pub editor_epoch: RwSignal<u64>,
    /// What the sync worker last reported.
    pub sync: RwSignal<Option<SyncStatus>>,
    /// Notes whose concurrent edits need a person's choice.
    pub conflicts: RwSignal<Vec<(NoteId, ConflictSides)>>,
    /// This browser profile's replica id, once read: which side of a
    /// conflict this device wrote.
    pub client_id: RwSignal<Option<ClientId>>,
    /// Whose notes these are.
    pub account: RwSignal<Option<Account>>,
    /// The server no longer knows this browser's session: sync waits.
    pub session_ended: RwSignal<bool>,
    /// How the last import or export of a notes file went.
    pub import_message: RwSignal<Option<String>>,
    /// The sync leader's live connection.
    pub live: RwSignal<LiveState>,
    /// Whether this tab's worker syncs for the browser (`None` until known).
    pub leader: RwSignal<Option<bool>>,
    /// A new build is installed and waits for the person to reload.
    pub update_ready: RwSignal<bool>,
    /// Storage used and whether it is persistent, once known.
    pub storage: RwSignal<Option<StorageUse>>,
    /// The search words, tag filter and order of the list.
    pub filter: RwSignal<ListFilter>,
    /// Bumped once a frame after the notes changed: what the list and the
    /// other views over every note follow, so that a paste arriving as
    /// thirty input events (or a page of pulled notes) costs them one
    /// recompute, not thirty. The editor follows `notes` itself.
    pub listed: RwSignal<u64>,
    /// The list as shown, as positions in `notes` (with the id found there
    /// when it was made): filtered, searched and sorted. Rows are built only
    /// for its visible part ([`NoteList`]).
    pub order: Memo<Vec<(usize, NoteId)>>,
    /// The notes list's scroll offset, viewport height and row height, in
    /// CSS pixels: what decides which rows are built.
    pub list_scroll: RwSignal<f64>,
    pub list_viewport: RwSignal<f64>,
    pub row_px: RwSignal<f64>,
    /// The notes list's scrolling element, once rendered.
    pub list_ref: NodeRef<leptos::html::Nav>,
    /// The selected note as it is now (tombstones included): what the
    /// editor's parts follow, so that a keystroke looks the note up once.
    pub open_note: Memo<Option<Note>>,
    /// Where a note was last found in `notes`: a keystroke's lookups start
    /// there, so they cost nothing while one note is being typed in.
    hint: StoredValue<Option<(NoteId, usize)>>,
    /// Texts of deleted notes kept on this device for "Recently deleted".
    pub trash: RwSignal<Vec<Trashed>>,
    /// Whether the list shows the recently deleted notes instead.
    pub show_trash: RwSignal<bool>,
    /// The note just deleted, offered for undo.
    pub undo: RwSignal<Option<NoteId>>,
    /// Whether the editor shows the rendered markdown instead of the text.
    pub preview: RwSignal<bool>,
}

impl NotesState {
    fn new() -> Self {
        let notes = RwSignal::new(Notes::default());
        let filter = RwSignal::new(ListFilter::default());
        let now_ms = RwSignal::new(0);
        let listed = RwSignal::new(0u64);
        let bump_pending = StoredValue::new(false);
        // The bump comes with the next frame: everything that changed the
        // notes before it (a paste's thirty input events, a pulled page)
        // makes one recompute, and it is in that very frame. Chromium holds
        // timers back until the frame after an input, so a timer would show
        // a keystroke one frame later. A hidden page draws no frames: a
        // timer then.
        Effect::new(move |_| {
            notes.track();
            if !bump_pending.get_value() {
                bump_pending.set_value(true);
                let bump = move || {
                    bump_pending.set_value(false);
                    listed.update(|n| *n += 1);
                };
                if document().hidden() {
                    set_timeout(bump, std::time::Duration::ZERO);
                } else {
                    request_animation_frame(bump);
                }
            }
        });
        let hint = StoredValue::new(None::<(NoteId, usize)>);
        let selected = RwSignal::new(None::<NoteId>);
        let open_note = Memo::new(move |_| {
            let id = selected.get()?;
            notes.with(|ns| position_of(ns, id, hint).map(|i| ns[i].clone()))
        });
        // Every note, as of the last bump.
        let listed_notes = move |f: &mut dyn FnMut(&Notes)| {
            listed.track();
            notes.with_untracked(|ns| f(ns));
        };
        // The search index lives as long as the page and follows the notes
        // note by note (see `NoteSearch`); it is only brought up to date
        // while there is something to search for.
        let index = StoredValue::new(NoteSearch::default());
        let hits = Memo::new(move |_| {
            let query = filter.with(|f| f.query.clone());
            if query_terms(&query).is_empty() {
                return None;
            }
            listed_notes(&mut |ns| index.update_value(|ix| ix.refresh(ns)));
            let found: HashSet<NoteId> = index
                .with_value(|ix| ix.search(&query))
                .into_iter()
                .collect();
            Some(found)
        });
        // Kept from bump to bump, so that typing moves one note instead of
        // sorting them all (`ListOrder`).
        let kept_order = StoredValue::new(ListOrder::default());
        let order = Memo::new(move |_| {
            let mut order = Vec::new();
            listed_notes(&mut |ns| {
                filter.with(|f| {
                    hits.with(|h| {
                        kept_order.update_value(|kept| {
                            order = kept
                                .update(ns, f, h.as_ref())
                                .iter()
                                .map(|&i| (i, ns[i].id))
                                .collect();
                        })
                    })
                });
            });
            order
        });
        Self {
            notes,
            loaded: RwSignal::new(false),
            selected,
            save_states: RwSignal::new(HashMap::new()),
            storage_error: RwSignal::new(None),
            notice: RwSignal::new(None),
            other_account: RwSignal::new(None),
            outdated: RwSignal::new(false),
            signing_out: RwSignal::new(false),
            worker: RwSignal::new(WorkerView::Starting),
            now_ms,
            editor_epoch: RwSignal::new(0),
            sync: RwSignal::new(None),
            conflicts: RwSignal::new(Vec::new()),
            client_id: RwSignal::new(None),
            account: RwSignal::new(None),
            session_ended: RwSignal::new(false),
            import_message: RwSignal::new(None),
            live: RwSignal::new(LiveState::Unknown),
            leader: RwSignal::new(None),
            update_ready: RwSignal::new(false),
            storage: RwSignal::new(None),
            filter,
            listed,
            order,
            list_scroll: RwSignal::new(0.0),
            list_viewport: RwSignal::new(800.0),
            row_px: RwSignal::new(DEFAULT_ROW_PX),
            list_ref: NodeRef::new(),
            open_note,
            hint,
            trash: RwSignal::new(Vec::new()),
            show_trash: RwSignal::new(false),
            undo: RwSignal::new(None),
            preview: RwSignal::new(false),
        }
    }

    /// The ids of the notes list as shown, in order (untracked).
    pub fn shown_ids(&self) -> Vec<NoteId> {
        self.order
            .with_untracked(|o| o.iter().map(|&(_, id)| id).collect())
    }

    /// Runs `f` over every note as of the last [`NotesState::listed`] bump,
    /// tracking the bump rather than every change.
    pub fn with_listed<T>(&self, f: impl FnOnce(&Notes) -> T) -> T {
        self.listed.track();
        self.notes.with_untracked(|ns| f(ns))
    }

    /// Scrolls the notes list so that note `id`'s row is in view (built,
    /// and on screen), if the list shows it.
    pub fn reveal(&self, id: NoteId) {
        let index = self
            .order
            .with_untracked(|o| o.iter().position(|&(_, shown)| shown == id));
        let Some(index) = index else { return };
        let scroll = self.list_scroll.get_untracked();
        let viewport = self.list_viewport.get_untracked();
        if let Some(to) = scroll_to_reveal(index, scroll, viewport, self.row_px.get_untracked()) {
            // The signal first: the scroll event comes a frame later, and
            // the row must be built before anything focuses it.
            self.list_scroll.set(to);
            if let Some(nav) = self.list_ref.get_untracked() {
                nav.set_scroll_top(to as i32);
            }
        }
    }

    fn update_note(&self, id: NoteId, change: impl FnOnce(&mut Note)) {
        let now = platform::now();
        let hint = self.hint;
        self.notes.update(|ns| {
            if let Some(note) = position_of(ns, id, hint).and_then(|i| ns.get_mut(i)) {
                change(note);
                note.updated_at = now.max(note.updated_at);
            }
        });
    }

    /// Whether note `id`'s latest text is stored (tracked).
    pub fn save_state_of(&self, id: NoteId) -> SaveState {
        self.save_states
            .with(|states| states.get(&id).cloned().unwrap_or_default())
    }

    /// Note `id` as the page holds it now (untracked).
    pub fn note(&self, id: NoteId) -> Option<Note> {
        self.notes
            .with_untracked(|ns| position_of(ns, id, self.hint).map(|i| ns[i].clone()))
    }
}

/// Where note `id` is in `notes`: at the hinted place if it is still there,
/// else found by a scan, which becomes the hint.
fn position_of(
    notes: &[Note],
    id: NoteId,
    hint: StoredValue<Option<(NoteId, usize)>>,
) -> Option<usize> {
    if let Some((hinted, i)) = hint.get_value() {
        if hinted == id && notes.get(i).is_some_and(|n| n.id == id) {
            return Some(i);
        }
    }
    let found = notes.iter().position(|n| n.id == id)?;
    hint.set_value(Some((id, found)));
    Some(found)
}

/// The notes page: the list, the editor and the status bar.
#[component]
pub fn NotesPage() -> impl IntoView {
    let state = NotesState::new();
    provide_context(state);
    Effect::new(move |_| untrack(|| platform::start(state)));

    view! {
        <div class="app">
            <header class="topbar">
                <h1 class="brand">"notesync"</h1>
                <SearchBox state />
                <button
                    id="new-note"
                    class="primary"
                    title="New note (Alt+N)"
                    aria-keyshortcuts="Alt+N"
                    on:click=move |_| platform::create_note(state)
                >
                    "New note"
                </button>
                <SyncIndicator state />
                <TransferButtons state />
                <AccountMenu state />
            </header>
            <UpdateBanner state />
            <OutdatedAlert state />
            <AccountAlert state />
            <SessionAlert state />
            <StorageAlert state />
            <Notice state />
            <UndoToast state />
            <main class="layout">
                <aside class="sidebar" aria-label="Notes list">
                    <ListControls state />
                    {move || {
                        if state.show_trash.get() {
                            Either::Left(view! { <TrashList state /> })
                        } else {
                            Either::Right(view! { <NoteList state /> })
                        }
                    }}
                </aside>
                <Editor state />
            </main>
            <footer class="statusbar">
                <span data-testid="worker-status">
                    {move || {
                        let pending = state.sync.with(|s| s.as_ref().map(|s| s.pending));
                        state.worker.with(|w| w.describe(pending))
                    }}
                </span>
                <LiveStatus state />
                <span data-testid="storage-use">
                    {move || state.storage.get().map(|s| s.describe())}
                </span>
                <span class="import-status" data-testid="import-status" role="status">
                    {move || state.import_message.get()}
                </span>
            </footer>
        </div>
    }
}

#[component]
fn SyncIndicator(state: NotesState) -> impl IntoView {
    let label = Memo::new(move |_| {
        state
            .sync
            .with(|s| sync_label(s.as_ref(), state.now_ms.get()))
    });
    view! {
        <button
            class="sync-indicator"
            data-testid="sync-status"
            data-state=move || label.get().state
            title="Sync now"
            aria-live="polite"
            on:click=move |_| platform::sync_now(state)
        >
            <span class="dot" aria-hidden="true"></span>
            {move || label.get().text}
        </button>
    }
}

/// Export (JSON or a zip of markdown files) and import of either, with how
/// the last one went. See [`crate::transfer`] for the formats.
#[component]
fn TransferButtons(state: NotesState) -> impl IntoView {
    view! {
        <span class="transfer" role="group" aria-label="Export and import">
            <button
                id="export-json"
                class="quiet"
                title="Download every note as one JSON file"
                on:click=move |_| platform::export_notes(state, ExportFormat::Json)
            >
                "Export JSON"
            </button>
            <button
                id="export-zip"
                class="quiet"
                title="Download every note as a markdown file, in one zip"
                on:click=move |_| platform::export_notes(state, ExportFormat::Zip)
            >
                "Export zip"
            </button>
            <label class="button quiet" for="import-file" title="Import notes from a JSON or zip export">
                "Import"
            </label>
            <input
                id="import-file"
                type="file"
                accept=".json,.zip,application/json,application/zip"
                on:change=move |ev| platform::import_file(state, ev)
            />
        </span>
    }
}

/// The search field: results as you type, in the list.
#[component]
fn SearchBox(state: NotesState) -> impl IntoView {
    view! {
        <div class="search" role="search">
            <label for="search" class="visually-hidden">"Search notes"</label>
            <input
                id="search"
                type="search"
                placeholder="Search notes (/)"
                autocomplete="off"
                aria-keyshortcuts="/ Control+K"
                aria-controls="note-list"
                prop:value=move || state.filter.with(|f| f.query.clone())
                on:input=move |ev| {
                    let query = event_target_value(&ev);
                    state.show_trash.set(false);
                    state.filter.update(|f| f.query = query);
                }
                on:keydown=move |ev| match ev.key().as_str() {
                    "Escape" => state.filter.update(|f| f.query.clear()),
                    // Enter opens the first result.
                    "Enter" => {
                        if let Some(first) = state.shown_ids().first().copied() {
                            state.selected.set(Some(first));
                        }
                    }
                    _ => {}
                }
            />
        </div>
    }
}

/// Sorting, the tag filter and the way to the recently deleted notes.
#[component]
fn ListControls(state: NotesState) -> impl IntoView {
    let kept_tags = StoredValue::new(TagCounts::default());
    let tags = Memo::new(move |_| {
        let mut tags = Vec::new();
        state.with_listed(|ns| kept_tags.update_value(|kept| tags = kept.update(ns)));
        tags
    });
    let deleted_count = Memo::new(move |_| {
        state
            .trash
            .with(|t| state.with_listed(|ns| trash_items(t, ns, 0).len()))
    });
    let sort = move || state.filter.with(|f| f.sort);
    let tag = move || state.filter.with(|f| f.tag.clone());
    view! {
        <div class="list-controls">
            <label class="control">
                <span>"Sort"</span>
                <select
                    id="sort"
                    on:change=move |ev| {
                        if let Some(order) = SortOrder::parse(&event_target_value(&ev)) {
                            state.filter.update(|f| f.sort = order);
                        }
                    }
                >
                    {SortOrder::ALL
                        .into_iter()
                        .map(|order| {
                            view! {
                                <option value=order.as_str() prop:selected=move || sort() == order>
                                    {order.label()}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <label class="control">
                <span>"Tag"</span>
                <select
                    id="tag-filter"
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        state.filter.update(|f| f.tag = (!value.is_empty()).then_some(value));
                    }
                >
                    <option value="" prop:selected=move || tag().is_none()>"All notes"</option>
                    <For
                        each=move || tags.get()
                        key=|entry| entry.clone()
                        children=move |(name, count)| {
                            let is_chosen = {
                                let name = name.clone();
                                move || tag().as_deref() == Some(name.as_str())
                            };
                            view! {
                                <option value=name.clone() prop:selected=is_chosen>
                                    {format!("{name} ({count})")}
                                </option>
                            }
                        }
                    />
                </select>
            </label>
            <button
                id="show-trash"
                class="quiet"
                aria-pressed=move || state.show_trash.get().to_string()
                on:click=move |_| state.show_trash.update(|s| *s = !*s)
            >
                {move || format!("Recently deleted ({})", deleted_count.get())}
            </button>
        </div>
    }
}

/// The notes deleted on this device or learnt deleted through sync whose
/// text is kept here, each with Restore.
#[component]
fn TrashList(state: NotesState) -> impl IntoView {
    let items = Memo::new(move |_| {
        state.trash.with(|t| {
            state
                .notes
                .with(|ns| trash_items(t, ns, state.now_ms.get()))
        })
    });
    view! {
        <nav class="note-list trash" aria-label="Recently deleted notes">
            <p class="muted trash-help">
                "Deleted notes can be restored here, on any of your devices, until the server forgets the delete."
            </p>
            {shown_or(
                move || !items.with(Vec::is_empty),
                move || view! {
                    <ul data-testid="trash-list">
                        <For
                            each=move || items.get()
                            key=|item| item.clone()
                            children=move |item| {
                                let id = item.id;
                                view! {
                                    <li class="trash-item" data-note-id=id.to_string()>
                                        <span class="note-title">{item.title.clone()}</span>
                                        <span class="note-preview">{item.preview}</span>
                                        <span class="note-when">{item.when}</span>
                                        <button
                                            class="restore"
                                            aria-label=format!("Restore {}", item.title)
                                            on:click=move |_| platform::restore_note(state, id)
                                        >
                                            "Restore"
                                        </button>
                                    </li>
                                }
                            }
                        />
                    </ul>
                },
                || view! { <p class="muted" data-testid="trash-empty">"Nothing deleted recently."</p> },
            )}
        </nav>
    }
}

/// After a delete: the way back.
#[component]
fn UndoToast(state: NotesState) -> impl IntoView {
    view! {
        <Show when=move || state.undo.with(Option::is_some)>
            <div class="toast" role="status" data-testid="undo-toast">
                <span>"Note deleted."</span>
                <button
                    id="undo-delete"
                    title="Undo the delete (Alt+Z)"
                    aria-keyshortcuts="Alt+Z"
                    on:click=move |_| {
                        if let Some(id) = state.undo.get_untracked() {
                            platform::restore_note(state, id);
                        }
                    }
                >
                    "Undo"
                </button>
                <button class="quiet" aria-label="Dismiss" on:click=move |_| state.undo.set(None)>
                    "×"
                </button>
            </div>
        </Show>
    }
}

/// `<Show>` with a typed fallback. Leptos' `Show` takes its fallback as a
/// type-erased view, and each erased view keeps an asynchronous hydration of
/// its tree that this app never runs (docs/performance.md, The bundle). Like
/// `Show`, the condition is memoised, so the shown branch is built again only
/// when the condition flips.
fn shown_or<C, F>(
    when: impl Fn() -> bool + Send + Sync + 'static,
    children: impl Fn() -> C + Send + Sync + 'static,
    fallback: impl Fn() -> F + Send + Sync + 'static,
) -> impl IntoView
where
    C: IntoView + 'static,
    F: IntoView + 'static,
{
    let when = Memo::new(move |_| when());
    move || {
        if when.get() {
            Either::Left(children())
        } else {
            Either::Right(fallback())
        }
    }
}

/// Search matches shown with `<mark>`.
fn marked(segments: Vec<Segment>) -> impl IntoView {
    segments
        .into_iter()
        .map(|s| {
            if s.mark {
                Either::Left(view! { <mark>{s.text}</mark> })
            } else {
                Either::Right(s.text)
            }
        })
        .collect_view()
}

#[component]
fn AccountMenu(state: NotesState) -> impl IntoView {
    view! {
        <Show when=move || state.account.with(Option::is_some)>
            <span class="account" data-testid="account-name">
                {move || state.account.with(|a| a.as_ref().map(|a| a.name.clone()))}
            </span>
            <button
                class="quiet"
                id="sign-out"
                disabled=move || state.signing_out.get()
                on:click=move |_| platform::sign_out(state)
            >
                {move || if state.signing_out.get() { "Signing out…" } else { "Sign out" }}
            </button>
            <AccountSettings state=state />
        </Show>
    }
}

/// "Sign out everywhere" and "Change password", folded away.
#[component]
fn AccountSettings(state: NotesState) -> impl IntoView {
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let message = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if let Err(e) = crate::domain::Password::parse(&new.get_untracked()) {
            message.set(Some(e.to_string()));
            return;
        }
        message.set(None);
        platform::change_password(current.get_untracked(), new.get_untracked(), message);
        current.set(String::new());
        new.set(String::new());
    };
    view! {
        <details class="account-settings" data-testid="account-settings">
            <summary>"Account ▾"</summary>
            <div class="account-panel">
            <button
                class="quiet"
                id="sign-out-everywhere"
                on:click=move |_| platform::sign_out_everywhere(state, message)
            >
                "Sign out everywhere"
            </button>
            <form id="change-password" on:submit=submit>
                <label for="current-password">"Current password"</label>
                <input
                    id="current-password"
                    type="password"
                    autocomplete="current-password"
                    required
                    prop:value=move || current.get()
                    on:input=move |ev| current.set(event_target_value(&ev))
                />
                <label for="new-password">"New password"</label>
                <input
                    id="new-password"
                    type="password"
                    autocomplete="new-password"
                    required
                    prop:value=move || new.get()
                    on:input=move |ev| new.set(event_target_value(&ev))
                />
                <button type="submit">"Change password"</button>
            </form>
            <Show when=move || message.get().is_some()>
                <p role="status" data-testid="account-message">
                    {move || message.get().unwrap_or_default()}
                </p>
            </Show>
            </div>
        </details>
    }
}

/// Whether other devices' edits arrive live, and which tab syncs.
#[component]
fn LiveStatus(state: NotesState) -> impl IntoView {
    let label =
        Memo::new(move |_| live_label(state.live.get(), state.leader.get(), state.now_ms.get()));
    view! {
        <span
            class="live-status"
            data-testid="live-status"
            data-state=move || label.get().0
            data-leader=move || state.leader.get().map(|l| l.to_string())
        >
            {move || label.get().1}
        </span>
    }
}

/// Offers a new build once its service worker is installed.
#[component]
fn UpdateBanner(state: NotesState) -> impl IntoView {
    view! {
        <Show when=move || state.update_ready.get()>
            <div class="banner" role="status" data-testid="update-ready">
                <p>"A new version of notesync is ready."</p>
                <button class="primary" on:click=move |_| platform::apply_update()>
                    "Reload"
                </button>
            </div>
        </Show>
    }
}

/// This tab's notes belong to one account while the browser is signed in
/// as another now: sync has stopped; the edits stay here.
#[component]
fn AccountAlert(state: NotesState) -> impl IntoView {
    let mine = move || {
        state
            .account
            .with(|a| a.as_ref().map(|a| a.name.clone()).unwrap_or_default())
    };
    view! {
        <Show when=move || state.other_account.with(Option::is_some)>
            <div class="alert" role="alert" data-testid="other-account">
                <p>
                    {move || format!(
                        "This tab belongs to {}; {} signed in elsewhere in this browser. ",
                        mine(),
                        state.other_account.get().unwrap_or_default(),
                    )}
                    {move || format!(
                        "Syncing has stopped here. Your notes and edits in this tab stay on this device, and sync when {} signs in again.",
                        mine(),
                    )}
                </p>
                <a class="button" href="/signin">{move || format!("Sign in as {}", mine())}</a>
                <button on:click=move |_| platform::reload()>"Reload"</button>
            </div>
        </Show>
    }
}

/// A newer build upgraded the local database: this one let go of it.
#[component]
fn OutdatedAlert(state: NotesState) -> impl IntoView {
    view! {
        <Show when=move || state.outdated.get()>
            <div class="alert" role="alert" data-testid="outdated">
                <p>
                    "A newer version of notesync, open in another tab, updated the notes database. "
                    "Reload this tab to go on; what you typed here is kept in a recovery copy until then."
                </p>
                <button class="primary" on:click=move |_| platform::reload()>"Reload"</button>
            </div>
        </Show>
    }
}

/// What the app did on its own that a person should know, until dismissed.
#[component]
fn Notice(state: NotesState) -> impl IntoView {
    view! {
        <Show when=move || state.notice.with(Option::is_some)>
            <div class="banner" role="status" data-testid="notice">
                <p>{move || state.notice.get().unwrap_or_default()}</p>
                <button class="quiet" aria-label="Dismiss" on:click=move |_| state.notice.set(None)>
                    "×"
                </button>
            </div>
        </Show>
    }
}

#[component]
fn SessionAlert(state: NotesState) -> impl IntoView {
    view! {
        <Show when=move || state.session_ended.get()>
            <div class="alert" role="alert" data-testid="session-ended">
                <p>
                    "Your session has ended. Your notes and edits are kept on this device; "
                    "sign in again to sync them."
                </p>
                <a class="button" href="/signin">"Sign in again"</a>
            </div>
        </Show>
    }
}

#[component]
fn StorageAlert(state: NotesState) -> impl IntoView {
    view! {
        <Show when=move || state.storage_error.get().is_some()>
            <div class="alert" role="alert" data-testid="storage-error">
                <p>{move || state.storage_error.get().unwrap_or_default()}</p>
                <button on:click=move |_| platform::retry_saves(state)>"Retry saving"</button>
            </div>
        </Show>
    }
}

/// The notes list. Only the rows in view (and [`LIST_OVERSCAN`] more on
/// each side) are built; padding stands in for the rest, so a change to one
/// note of 10,000 costs one sort and a handful of rows, not 10,000 rows.
#[component]
fn NoteList(state: NotesState) -> impl IntoView {
    let order = state.order;
    let searching = move || {
        state
            .filter
            .with(|f| !query_terms(&f.query).is_empty() || f.tag.is_some())
    };
    let range = Memo::new(move |_| {
        visible_rows(
            state.list_scroll.get(),
            state.list_viewport.get(),
            state.row_px.get(),
            order.with(Vec::len),
            LIST_OVERSCAN,
        )
    });
    let rows = Memo::new(move |_| {
        let range = range.get();
        let terms = state.filter.with(|f| query_terms(&f.query));
        let now = state.now_ms.get();
        state.with_listed(|ns| {
            order.with(|o| {
                o.get(range)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|&(i, id)| {
                        // The notes may have moved since the order was made
                        // (a bump is pending): then the note is found by id.
                        ns.get(i)
                            .filter(|n| n.id == id)
                            .or_else(|| ns.iter().find(|n| n.id == id))
                    })
                    .map(|n| list_item(n, &terms, now))
                    .collect::<Vec<_>>()
            })
        })
    });
    let spacing = move |above: bool| {
        let range = range.get();
        let rows = if above {
            range.start
        } else {
            order.with(Vec::len).saturating_sub(range.end)
        };
        format!("{}px", rows as f64 * state.row_px.get())
    };
    let list_ref = state.list_ref;
    let measure = move || {
        let Some(nav) = list_ref.get_untracked() else {
            return;
        };
        let viewport = f64::from(nav.client_height());
        if viewport > 0.0 && viewport != state.list_viewport.get_untracked() {
            state.list_viewport.set(viewport);
        }
        let row = nav
            .query_selector("#note-list > li")
            .ok()
            .flatten()
            .and_then(|el| {
                leptos::wasm_bindgen::JsCast::dyn_into::<leptos::web_sys::HtmlElement>(el).ok()
            })
            .map(|el| f64::from(el.offset_height()))
            .unwrap_or(0.0);
        if row >= 1.0 && (row - state.row_px.get_untracked()).abs() > 0.5 {
            state.row_px.set(row);
        }
    };
    // After rows are (re)built, the real sizes are known; and on resize.
    Effect::new(move |_| {
        rows.track();
        measure();
    });
    Effect::new(move |_| {
        let handle = window_event_listener(leptos::ev::resize, move |_| measure());
        on_cleanup(move || handle.remove());
    });
    view! {
        <nav
            class="note-list"
            aria-label="Notes"
            node_ref=list_ref
            on:scroll=move |_| {
                if let Some(nav) = list_ref.get_untracked() {
                    state.list_scroll.set(f64::from(nav.scroll_top()));
                }
            }
        >
            {shown_or(
                move || state.loaded.get(),
                move || shown_or(
                    move || !order.with(Vec::is_empty),
                    move || view! {
                        <ul
                            data-testid="note-list"
                            id="note-list"
                            aria-rowcount=move || order.with(Vec::len).to_string()
                            style:padding-top=move || spacing(true)
                            style:padding-bottom=move || spacing(false)
                        >
                            <For
                                each=move || rows.get()
                                // By id: a row whose note changed is updated in
                                // place, so it keeps keyboard focus.
                                key=|item| item.id
                                children=move |item| {
                                    let id = item.id;
                                    let row = Memo::new(move |_| {
                                        rows.with(|r| r.iter().find(|i| i.id == id).cloned())
                                            .unwrap_or_else(|| item.clone())
                                    });
                                    let selected = move || state.selected.get() == Some(id);
                                    let conflicted = move || {
                                        state.conflicts.with(|cs| cs.iter().any(|(n, _)| *n == id))
                                    };
                                    let pinned = move || row.with(|r| r.pinned);
                                    view! {
                                        <li>
                                            <button
                                                class="note-item"
                                                class:selected=selected
                                                class:conflicted=conflicted
                                                class:pinned=pinned
                                                aria-current=move || selected().then_some("true")
                                                data-note-id=id.to_string()
                                                on:click=move |_| state.selected.set(Some(id))
                                            >
                                                <span class="note-title">{move || marked(row.with(|r| r.title.clone()))}</span>
                                                <span class="note-preview">{move || marked(row.with(|r| r.preview.clone()))}</span>
                                                <span class="note-when">
                                                    {move || pinned().then(|| view! { <span class="pin-mark">"Pinned · "</span> })}
                                                    {move || row.with(|r| r.when.clone())}
                                                    {move || row.with(|r| (!r.tags.is_empty()).then(|| format!(" · {}", r.tags.join(", "))))
                                                        .map(|tags| view! { <span class="note-tags">{tags}</span> })}
                                                    <Show when=conflicted>
                                                        <span class="badge">" · needs your choice"</span>
                                                    </Show>
                                                </span>
                                            </button>
                                        </li>
                                    }
                                }
                            />
                        </ul>
                    },
                    move || {
                        if searching() {
                            Either::Left(view! {
                                <p class="muted empty" data-testid="no-results" role="status">
                                    "No notes match."
                                </p>
                            })
                        } else {
                            Either::Right(view! { <EmptyState /> })
                        }
                    },
                ),
                || view! { <p class="muted">"Loading your notes…"</p> },
            )}
        </nav>
    }
}

#[component]
fn EmptyState() -> impl IntoView {
    view! {
        <div class="empty" data-testid="empty-state">
            <p class="empty-title">"No notes yet"</p>
            <p class="muted">
                "Press " <kbd>"Alt"</kbd> "+" <kbd>"N"</kbd>
                " or the New note button. Notes are saved on this device as you type."
            </p>
        </div>
    }
}

#[component]
fn Editor(state: NotesState) -> impl IntoView {
    // Only opening another note (or the open one going away) rebuilds the
    // fields; keystrokes and synced changes update them in place.
    let open_id = Memo::new(move |_| {
        state
            .open_note
            .with(|n| n.as_ref().filter(|n| !n.deleted).map(|n| n.id))
    });
    let open = move || {
        let id = open_id.get()?;
        untrack(|| state.note(id))
    };
    view! {
        <section class="editor" aria-label="Editor">
            {move || match open() {
                None => Either::Left(view! {
                    <p class="muted editor-placeholder">"Select a note, or create one."</p>
                }),
                Some(note) => Either::Right(view! { <EditorFields state note /> }),
            }}
        </section>
    }
}

#[component]
fn EditorFields(state: NotesState, note: Note) -> impl IntoView {
    let id = note.id;
    let pinned = move || {
        state
            .open_note
            .with(|n| n.as_ref().is_some_and(|n| n.id == id && n.pinned))
    };
    let title_ref = NodeRef::<leptos::html::Input>::new();
    let body_ref = NodeRef::<leptos::html::Textarea>::new();
    // The open note changed under the editor (a sync, another tab): show the
    // new text in place, keeping focus and the caret where the person was.
    Effect::new(move |seen: Option<u64>| {
        let epoch = state.editor_epoch.get();
        if seen.is_some_and(|s| s != epoch) {
            let current = state
                .notes
                .with_untracked(|ns| ns.iter().find(|n| n.id == id).cloned());
            if let Some(note) = current {
                if let Some(el) = title_ref.get_untracked() {
                    let caret = el.selection_start().ok().flatten();
                    if let Some(caret) = replace_text(&el.value(), &note.title, caret) {
                        el.set_value(&note.title);
                        let _ = el.set_selection_range(caret, caret);
                    }
                }
                if let Some(el) = body_ref.get_untracked() {
                    let caret = el.selection_start().ok().flatten();
                    if let Some(caret) = replace_text(&el.value(), &note.body, caret) {
                        el.set_value(&note.body);
                        let _ = el.set_selection_range(caret, caret);
                    }
                }
            }
        }
        epoch
    });
    view! {
        <ConflictPanel state id />
        <input
            id="note-title"
            class="title-input"
            type="text"
            placeholder="Title"
            aria-label="Title"
            autocomplete="off"
            node_ref=title_ref
            prop:value=note.title.clone()
            on:input=move |ev| {
                let title = event_target_value(&ev);
                state.update_note(id, |n| n.title = title);
                platform::edited(state, id);
            }
        />
        <textarea
            id="note-body"
            class="body-input"
            placeholder="Start writing… (markdown)"
            aria-label="Note text"
            hidden=move || state.preview.get()
            node_ref=body_ref
            prop:value=note.body.clone()
            on:input=move |ev| {
                let body = event_target_value(&ev);
                state.update_note(id, |n| n.body = body);
                platform::edited(state, id);
            }
        ></textarea>
        <Show when=move || state.preview.get()>
            <Preview state id />
        </Show>
        <TagEditor state id />
        <div class="editor-tools" role="toolbar" aria-label="Note">
            <button
                id="pin"
                class="quiet"
                aria-pressed=move || pinned().to_string()
                title="Pinned notes stay at the top of the list"
                on:click=move |_| {
                    state.update_note(id, |n| n.pinned = !n.pinned);
                    platform::edited(state, id);
                }
            >
                {move || if pinned() { "Unpin" } else { "Pin" }}
            </button>
            <button
                id="preview-toggle"
                class="quiet"
                aria-pressed=move || state.preview.get().to_string()
                title="Show the text rendered as markdown"
                on:click=move |_| state.preview.update(|p| *p = !*p)
            >
                "Preview"
            </button>
        </div>
        <div class="editor-bar">
            <span class="save-state" data-testid="save-state" aria-live="polite">
                {move || state.save_state_of(id).label()}
            </span>
            <button
                id="delete-note"
                class="danger"
                title="Delete this note (Alt+Delete); it can be restored"
                aria-keyshortcuts="Alt+Delete"
                on:click=move |_| platform::delete_note(state, id)
            >
                "Delete"
            </button>
        </div>
    }
}

/// The open note's body rendered as markdown. The renderer is loaded on
/// first use (`src/client/split.rs`), so the HTML can arrive a moment after
/// the preview opens; until then the region says it is busy.
#[component]
fn Preview(state: NotesState, id: NoteId) -> impl IntoView {
    let rendered = RwSignal::new(None::<Result<String, String>>);
    // Renders run one after another but may finish out of order (the first
    // waits for the chunk): only the latest request's result is shown.
    let requested = StoredValue::new(0u64);
    Effect::new(move |_| {
        let body = state
            .open_note
            .with(|n| n.as_ref().filter(|n| n.id == id).map(|n| n.body.clone()));
        let Some(body) = body else { return };
        requested.update_value(|r| *r += 1);
        let this = requested.get_value();
        platform::render_markdown(body, move |result| {
            if requested.try_get_value() == Some(this) {
                rendered.try_set(Some(result));
            }
        });
    });
    view! {
        <div
            class="preview markdown"
            data-testid="preview"
            role="region"
            aria-label="Preview"
            aria-busy=move || rendered.with(Option::is_none).to_string()
            inner_html=move || {
                rendered.with(|r| match r {
                    Some(Ok(html)) => html.clone(),
                    _ => String::new(),
                })
            }
        ></div>
        {move || {
            rendered
                .with(|r| match r {
                    Some(Err(message)) => Some(message.clone()),
                    _ => None,
                })
                .map(|message| view! { <p class="alert preview-error" role="alert">{message}</p> })
        }}
    }
}

/// The open note's tags, each removable, and a field adding one on Enter or
/// a comma. A tag over the limits is refused with the reason.
#[component]
fn TagEditor(state: NotesState, id: NoteId) -> impl IntoView {
    let error = RwSignal::new(None::<String>);
    let input_ref = NodeRef::<leptos::html::Input>::new();
    let tags = move || {
        state
            .open_note
            .with(|n| n.as_ref().filter(|n| n.id == id).map(|n| n.tags.clone()))
            .unwrap_or_default()
    };
    let set_tags = move |tags: Vec<String>| {
        let current = state.note(id);
        let Some(note) = current else { return };
        match NoteDraft::validated(note.title, note.body, tags) {
            Ok(draft) => {
                error.set(None);
                state.update_note(id, |n| n.tags = draft.tags);
                platform::edited(state, id);
            }
            Err(e) => error.set(Some(format!("{e}."))),
        }
    };
    view! {
        <div class="tags" role="group" aria-label="Tags">
            <For
                each=tags
                key=|tag| tag.clone()
                children=move |tag| {
                    let remove = tag.clone();
                    view! {
                        <span class="tag" data-tag=tag.clone()>
                            {tag.clone()}
                            <button
                                class="tag-remove"
                                aria-label=format!("Remove tag {tag}")
                                on:click=move |_| {
                                    let mut now = tags();
                                    now.retain(|t| *t != remove);
                                    set_tags(now);
                                }
                            >
                                "×"
                            </button>
                        </span>
                    }
                }
            />
            <input
                id="tag-input"
                class="tag-input"
                type="text"
                placeholder="Add tag"
                aria-label="Add a tag"
                autocomplete="off"
                node_ref=input_ref
                on:keydown=move |ev| {
                    if ev.key() == "Enter" || ev.key() == "," {
                        ev.prevent_default();
                        let tag = event_target_value(&ev);
                        if !tag.trim().is_empty() {
                            let mut now = tags();
                            now.push(tag);
                            set_tags(now);
                            if let Some(el) = input_ref.get_untracked() {
                                el.set_value("");
                            }
                        }
                    }
                }
            />
            <span class="form-error" role="alert">{move || error.get()}</span>
        </div>
    }
}

/// The caret to set when a field showing `shown` must show `wanted`, or
/// `None` when it already does.
fn replace_text(shown: &str, wanted: &str, caret: Option<u32>) -> Option<u32> {
    (shown != wanted).then(|| {
        let at = caret.unwrap_or_else(|| u32::try_from(shown.encode_utf16().count()).unwrap_or(0));
        caret_after_replace(shown, wanted, at)
    })
}

/// The compare-and-choose view of a note whose concurrent edits overlapped.
/// The editor shows the merged text (the overlapping parts of both versions
/// one after the other); this panel shows each version whole and lets the
/// person keep one, keep both (the other becomes a new note), or keep the
/// text in the editor, as it stands or once tidied.
#[component]
fn ConflictPanel(state: NotesState, id: NoteId) -> impl IntoView {
    let sides = move || {
        state
            .conflicts
            .with(|cs| cs.iter().find(|(n, _)| *n == id).map(|(_, s)| s.clone()))
    };
    move || {
        sides().map(|sides| {
            let labels = conflict_labels(&sides, state.client_id.get());
            let server = sides.server.clone();
            let client = sides.client.clone();
            let keep = move |content: Option<NoteDraft>| {
                move |_| platform::resolve_conflict(state, id, content.clone())
            };
            let (kept, copied) = match labels.both_keeps {
                ConflictSide::First => (server.clone(), client.clone()),
                ConflictSide::Later => (client.clone(), server.clone()),
            };
            let keep_both = move |_| platform::keep_both(state, id, kept.clone(), copied.clone());
            let keep_merged = move |_| {
                let current = state.notes.with_untracked(|ns| {
                    ns.iter().find(|n| n.id == id).map(Note::draft)
                });
                platform::resolve_conflict(state, id, current);
            };
            view! {
                <div class="conflict" role="region" aria-label="Conflicting versions" data-testid="conflict">
                    <p class="conflict-title">
                        "This note was changed on two devices at once and the changes overlap. "
                        "Nothing was lost: the editor shows both versions merged, the overlapping "
                        "parts one after the other. Compare and choose, or tidy the text in the editor:"
                    </p>
                    <div class="conflict-sides">
                        <ConflictSide label=labels.first content=server.clone() testid="conflict-server" />
                        <ConflictSide label=labels.later content=client.clone() testid="conflict-client" />
                    </div>
                    <div class="conflict-actions">
                        <button on:click=keep(server)>{labels.keep_first}</button>
                        <button on:click=keep(client)>{labels.keep_later}</button>
                        <button on:click=keep_both>"Keep both"</button>
                        <button on:click=keep_merged>"Keep the text in the editor"</button>
                    </div>
                </div>
            }
        })
    }
}

#[component]
fn ConflictSide(
    label: &'static str,
    content: Option<NoteDraft>,
    testid: &'static str,
) -> impl IntoView {
    let (title, body) = match content {
        Some(d) => (d.title, d.body),
        None => ("(deleted)".to_string(), String::new()),
    };
    view! {
        <figure class="conflict-side" data-testid=testid>
            <figcaption>{label}</figcaption>
            <p class="conflict-side-title">{title}</p>
            <pre>{body}</pre>
        </figure>
    }
}
