//! The account actions beyond signing in and out: ending every session of
//! the person ("Sign out everywhere") and changing the password (which ends
//! the sessions on their other devices).

use leptos::prelude::*;

use super::session;
use crate::api::AppError;
use crate::ui::NotesState;

/// Asks the server to end every session of this person, this one included,
/// after a warning if changes have not synced; then opens the sign-in page,
/// like signing out. Other devices keep their notes and unsynced changes
/// and ask their person to sign in again.
pub fn sign_out_everywhere(state: NotesState, message: RwSignal<Option<String>>) {
    let Some(account) = state.account.get_untracked() else {
        return;
    };
    let unsynced = state.sync.get_untracked().map_or(0, |s| s.pending);
    let question = if unsynced > 0 {
        format!(
            "{unsynced} change(s) have not reached the server yet and will be lost from this \
             device. Sign out on every device anyway?"
        )
    } else {
        "Sign out on every device, this one included?".to_string()
    };
    let confirmed = web_sys::window()
        .and_then(|w| w.confirm_with_message(&question).ok())
        .unwrap_or(false);
    if !confirmed {
        return;
    }
    wasm_bindgen_futures::spawn_local(async move {
        match crate::api::sign_out_everywhere().await {
            Ok(()) => {
                session::signed_out(&account.id);
                session::go("/signin");
            }
            Err(e) => message.set(Some(format!(
                "Could not sign out everywhere: {e}. Nothing changed; try again when online."
            ))),
        }
    });
}

/// Changes the password; says how it went in `message`.
pub fn change_password(current: String, new: String, message: RwSignal<Option<String>>) {
    wasm_bindgen_futures::spawn_local(async move {
        let said = match crate::api::change_password(current, new).await {
            Ok(()) => "Password changed. Your other devices are signed out.".to_string(),
            Err(AppError::BadCredentials) => {
                "The current password is wrong; the password did not change.".to_string()
            }
            Err(e) => format!("The password did not change: {e}"),
        };
        message.set(Some(said));
    });
}
