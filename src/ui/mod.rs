//! Components and pages. Components read [`NotesState`] signals and call the
//! platform actions; the state itself is filled from IndexedDB in the browser.
//!
//! `platform` is the one seam between the UI and the browser: in the hydrate
//! build it is the client's IndexedDB-backed actions, elsewhere a set of
//! no-ops (the server renders only the empty shell).

mod auth;
pub mod model;

#[cfg_attr(feature = "hydrate", path = "platform_browser.rs")]
#[cfg_attr(not(feature = "hydrate"), path = "platform_server.rs")]
mod platform;

use leptos::prelude::*;

pub use auth::{SignInPage, SignUpPage};

use crate::api::Account;
use crate::bridge::LiveState;
use crate::domain::{Note, NoteDraft, NoteId};
use crate::sync::engine::SyncStatus;
use crate::sync::protocol::ConflictSides;
use model::{
    caret_after_replace, list_items, live_label, sync_label, SaveState, StorageUse, WorkerView,
};

/// The page's reactive state. Every field is a signal, so the struct is `Copy`
/// and can be captured by any closure.
#[derive(Clone, Copy)]
pub struct NotesState {
    /// Every note the page holds, tombstones included.
    pub notes: RwSignal<Vec<Note>>,
    /// Whether the notes have been read from IndexedDB yet.
    pub loaded: RwSignal<bool>,
    pub selected: RwSignal<Option<NoteId>>,
    pub save_state: RwSignal<SaveState>,
    /// A storage failure a person must know about, with what to do.
    pub storage_error: RwSignal<Option<String>>,
    pub worker: RwSignal<WorkerView>,
    /// The clock the relative times are computed against.
    pub now_ms: RwSignal<u64>,
    /// Bumped when the open note changed under the editor (another tab, a sync).
    pub editor_epoch: RwSignal<u64>,
    /// What the sync worker last reported.
    pub sync: RwSignal<Option<SyncStatus>>,
    /// Notes whose concurrent edits need a person's choice.
    pub conflicts: RwSignal<Vec<(NoteId, ConflictSides)>>,
    /// Whose notes these are.
    pub account: RwSignal<Option<Account>>,
    /// The server no longer knows this browser's session: sync waits.
    pub session_ended: RwSignal<bool>,
    /// How the last import of a notes file went.
    pub import_message: RwSignal<Option<String>>,
    /// The sync leader's live connection.
    pub live: RwSignal<LiveState>,
    /// Whether this tab's worker syncs for the browser (`None` until known).
    pub leader: RwSignal<Option<bool>>,
    /// A new build is installed and waits for the person to reload.
    pub update_ready: RwSignal<bool>,
    /// Storage used and whether it is persistent, once known.
    pub storage: RwSignal<Option<StorageUse>>,
}

impl NotesState {
    fn new() -> Self {
        Self {
            notes: RwSignal::new(Vec::new()),
            loaded: RwSignal::new(false),
            selected: RwSignal::new(None),
            save_state: RwSignal::new(SaveState::Saved),
            storage_error: RwSignal::new(None),
            worker: RwSignal::new(WorkerView::Starting),
            now_ms: RwSignal::new(0),
            editor_epoch: RwSignal::new(0),
            sync: RwSignal::new(None),
            conflicts: RwSignal::new(Vec::new()),
            account: RwSignal::new(None),
            session_ended: RwSignal::new(false),
            import_message: RwSignal::new(None),
            live: RwSignal::new(LiveState::Unknown),
            leader: RwSignal::new(None),
            update_ready: RwSignal::new(false),
            storage: RwSignal::new(None),
        }
    }

    fn update_note(&self, id: NoteId, change: impl FnOnce(&mut Note)) {
        let now = platform::now();
        self.notes.update(|ns| {
            if let Some(note) = ns.iter_mut().find(|n| n.id == id) {
                change(note);
                note.updated_at = now.max(note.updated_at);
            }
        });
    }
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
                <SyncIndicator state />
                <button
                    id="new-note"
                    class="primary"
                    title="New note (Alt+N)"
                    aria-keyshortcuts="Alt+N"
                    on:click=move |_| platform::create_note(state)
                >
                    "New note"
                </button>
                <ImportButton state />
                <AccountMenu state />
            </header>
            <UpdateBanner state />
            <SessionAlert state />
            <StorageAlert state />
            <div class="layout">
                <NoteList state />
                <Editor state />
            </div>
            <footer class="statusbar">
                <span data-testid="worker-status">{move || state.worker.get().describe()}</span>
                <LiveStatus state />
                <span data-testid="storage-use">
                    {move || state.storage.get().map(|s| s.describe())}
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

/// Imports a notes file (a JSON list of notes, see
/// `model::parse_import`), and says how it went.
#[component]
fn ImportButton(state: NotesState) -> impl IntoView {
    view! {
        <span class="import">
            <label class="button quiet" for="import-file" title="Import notes from a JSON file">
                "Import"
            </label>
            <input
                id="import-file"
                type="file"
                accept=".json,application/json"
                on:change=move |ev| platform::import_file(state, ev)
            />
            <span class="import-status" data-testid="import-status" role="status">
                {move || state.import_message.get()}
            </span>
        </span>
    }
}

#[component]
fn AccountMenu(state: NotesState) -> impl IntoView {
    view! {
        <Show when=move || state.account.with(Option::is_some)>
            <span class="account" data-testid="account-name">
                {move || state.account.with(|a| a.as_ref().map(|a| a.name.clone()))}
            </span>
            <button class="quiet" id="sign-out" on:click=move |_| platform::sign_out(state)>
                "Sign out"
            </button>
        </Show>
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

#[component]
fn NoteList(state: NotesState) -> impl IntoView {
    let items = Memo::new(move |_| state.notes.with(|ns| list_items(ns, state.now_ms.get())));
    view! {
        <nav class="note-list" aria-label="Notes">
            <Show
                when=move || state.loaded.get()
                fallback=|| view! { <p class="muted">"Loading your notes…"</p> }
            >
                <Show when=move || !items.with(Vec::is_empty) fallback=EmptyState>
                    <ul data-testid="note-list">
                        <For
                            each=move || items.get()
                            key=|item| item.clone()
                            children=move |item| {
                                let id = item.id;
                                let selected = move || state.selected.get() == Some(id);
                                let conflicted = move || {
                                    state.conflicts.with(|cs| cs.iter().any(|(n, _)| *n == id))
                                };
                                view! {
                                    <li>
                                        <button
                                            class="note-item"
                                            class:selected=selected
                                            class:conflicted=conflicted
                                            aria-current=move || selected().then_some("true")
                                            data-note-id=id.to_string()
                                            on:click=move |_| state.selected.set(Some(id))
                                        >
                                            <span class="note-title">{item.title}</span>
                                            <span class="note-preview">{item.preview}</span>
                                            <span class="note-when">
                                                {item.when}
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
                </Show>
            </Show>
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
        let id = state.selected.get()?;
        state
            .notes
            .with(|ns| ns.iter().any(|n| n.id == id && !n.deleted))
            .then_some(id)
    });
    let open = move || {
        let id = open_id.get()?;
        untrack(|| {
            state
                .notes
                .with(|ns| ns.iter().find(|n| n.id == id).cloned())
        })
    };
    view! {
        <section class="editor" aria-label="Editor">
            {move || match open() {
                None => {
                    view! { <p class="muted editor-placeholder">"Select a note, or create one."</p> }
                        .into_any()
                }
                Some(note) => view! { <EditorFields state note /> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn EditorFields(state: NotesState, note: Note) -> impl IntoView {
    let id = note.id;
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
            placeholder="Start writing…"
            aria-label="Note text"
            node_ref=body_ref
            prop:value=note.body.clone()
            on:input=move |ev| {
                let body = event_target_value(&ev);
                state.update_note(id, |n| n.body = body);
                platform::edited(state, id);
            }
        ></textarea>
        <div class="editor-bar">
            <span class="save-state" data-testid="save-state" aria-live="polite">
                {move || state.save_state.get().label()}
            </span>
            <button
                class="danger"
                title="Delete this note"
                on:click=move |_| platform::delete_note(state, id)
            >
                "Delete"
            </button>
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
/// The editor shows the merged text with both versions between markers; this
/// panel shows each version whole and lets the person keep one of them, or
/// the merged text as it stands.
#[component]
fn ConflictPanel(state: NotesState, id: NoteId) -> impl IntoView {
    let sides = move || {
        state
            .conflicts
            .with(|cs| cs.iter().find(|(n, _)| *n == id).map(|(_, s)| s.clone()))
    };
    move || {
        sides().map(|sides| {
            let server = sides.server.clone();
            let client = sides.client.clone();
            let keep = move |content: Option<NoteDraft>| {
                move |_| platform::resolve_conflict(state, id, content.clone())
            };
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
                        "Nothing was lost: the editor shows both texts between markers. Compare and choose:"
                    </p>
                    <div class="conflict-sides">
                        <ConflictSide label="Version saved first" content=server.clone() testid="conflict-server" />
                        <ConflictSide label="Version that arrived later" content=client.clone() testid="conflict-client" />
                    </div>
                    <div class="conflict-actions">
                        <button on:click=keep(server)>"Keep first version"</button>
                        <button on:click=keep(client)>"Keep later version"</button>
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
