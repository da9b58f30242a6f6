//! Components and pages. Components read [`NotesState`] signals and call the
//! platform actions; the state itself is filled from IndexedDB in the browser.
//!
//! `platform` is the one seam between the UI and the browser: in the hydrate
//! build it is the client's IndexedDB-backed actions, elsewhere a set of
//! no-ops (the server renders only the empty shell).

pub mod model;

#[cfg_attr(feature = "hydrate", path = "platform_browser.rs")]
#[cfg_attr(not(feature = "hydrate"), path = "platform_server.rs")]
mod platform;

use leptos::prelude::*;

use crate::domain::{Note, NoteId};
use model::{list_items, SaveState, WorkerView};

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
                <button
                    id="new-note"
                    class="primary"
                    title="New note (Alt+N)"
                    aria-keyshortcuts="Alt+N"
                    on:click=move |_| platform::create_note(state)
                >
                    "New note"
                </button>
            </header>
            <StorageAlert state />
            <div class="layout">
                <NoteList state />
                <Editor state />
            </div>
            <footer class="statusbar">
                <span data-testid="worker-status">{move || state.worker.get().describe()}</span>
            </footer>
        </div>
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
                                view! {
                                    <li>
                                        <button
                                            class="note-item"
                                            class:selected=selected
                                            aria-current=move || selected().then_some("true")
                                            data-note-id=id.to_string()
                                            on:click=move |_| state.selected.set(Some(id))
                                        >
                                            <span class="note-title">{item.title}</span>
                                            <span class="note-preview">{item.preview}</span>
                                            <span class="note-when">{item.when}</span>
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
    let open = move || {
        state.editor_epoch.track();
        let id = state.selected.get()?;
        untrack(|| {
            state
                .notes
                .with(|ns| ns.iter().find(|n| n.id == id && !n.deleted).cloned())
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
    view! {
        <input
            id="note-title"
            class="title-input"
            type="text"
            placeholder="Title"
            aria-label="Title"
            autocomplete="off"
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
