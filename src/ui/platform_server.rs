//! The UI's actions during server rendering: there is no local database on
//! the server and no events fire there, so each action does nothing.

use super::{ExportFormat, NotesState};
use crate::app::PageRoute;
use crate::domain::{NoteDraft, NoteId};

pub fn start(_state: NotesState) {}
pub fn create_note(_state: NotesState) {}
pub fn edited(_state: NotesState, _id: NoteId) {}
pub fn delete_note(_state: NotesState, _id: NoteId) {}
pub fn retry_saves(_state: NotesState) {}
pub fn sync_now(_state: NotesState) {}
pub fn import_file(_state: NotesState, _event: leptos::ev::Event) {}
pub fn export_notes(_state: NotesState, _format: ExportFormat) {}
pub fn restore_note(_state: NotesState, _id: NoteId) {}
pub fn resolve_conflict(_state: NotesState, _id: NoteId, _content: Option<NoteDraft>) {}
pub fn keep_both(
    _state: NotesState,
    _id: NoteId,
    _keep: Option<NoteDraft>,
    _copy: Option<NoteDraft>,
) {
}
pub fn sign_out(_state: NotesState) {}
pub fn sign_out_everywhere(
    _state: NotesState,
    _message: leptos::prelude::RwSignal<Option<String>>,
) {
}
pub fn change_password(
    _current: String,
    _new: String,
    _message: leptos::prelude::RwSignal<Option<String>>,
) {
}
pub fn submit_account(
    _create: bool,
    _name: String,
    _password: String,
    _error: leptos::prelude::RwSignal<Option<String>>,
) {
}
pub fn auth_page_opened(_blocked: leptos::prelude::RwSignal<bool>) {}
pub fn signed_in_here() -> Option<String> {
    None
}
pub fn reload() {}
/// The server renders at once (the page starts with the preview closed, so
/// this is not reached while rendering it today).
pub fn render_markdown(body: String, done: impl FnOnce(Result<String, String>) + 'static) {
    done(Ok(crate::markdown::to_safe_html(&body)));
}
pub fn apply_update() {}
pub fn now() -> u64 {
    0
}
/// The page being rendered, which the server provides per request; a
/// render without one (the 404 handler's) is the not-found page.
pub fn current_route() -> PageRoute {
    leptos::prelude::use_context::<PageRoute>().unwrap_or(PageRoute::NotFound)
}
