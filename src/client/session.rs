//! Who is signed in on this browser, remembered in localStorage so the app
//! opens and works offline for the last signed-in person, and the sign-out
//! clean-up that removes a person's local data.
//!
//! Promises: the remembered account is only ever one the server confirmed
//! (`whoami`, `sign_in`, `sign_up`); a person's local data (database and
//! recovery journal) is removed only after their sign-out was accepted.
//! Every tab hears when the remembered account changes ([`ACCOUNT_KEY`]'s
//! `storage` event): a tab of another account stops syncing at once.

use crate::api::Account;
use crate::app::PageRoute;
use crate::domain::UserId;

use super::db::LocalDb;

/// The localStorage key of the account signed in on this browser.
pub const ACCOUNT_KEY: &str = "notesync.account";
const CLEAR_KEY: &str = "notesync.clear";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The account last confirmed by the server on this browser.
pub fn cached() -> Option<Account> {
    read_account(&storage()?.get_item(ACCOUNT_KEY).ok()??)
}

/// An account as [`remember`] stores it.
pub fn read_account(json: &str) -> Option<Account> {
    serde_json::from_slice(json.as_bytes()).ok()
}

/// Remembers `account` as the one signed in here.
pub fn remember(account: &Account) {
    if let (Some(s), Ok(json)) = (storage(), serde_json::to_string(account)) {
        let _ = s.set_item(ACCOUNT_KEY, &json);
    }
}

/// The localStorage prefix of `user`'s recovery journal.
pub fn journal_prefix(user: &UserId) -> String {
    format!("notesync.journal.v2.{user}.")
}

/// After the server accepted a sign-out: forget the account and ask the
/// next page (which holds no database handle) to delete `user`'s data.
pub fn signed_out(user: &UserId) {
    if let Some(s) = storage() {
        let _ = s.remove_item(ACCOUNT_KEY);
        let _ = s.set_item(CLEAR_KEY, user.as_str());
    }
}

/// Deletes the local data of a person who signed out, if any is waiting;
/// `on_blocked` is called while a tab of an older build holds the database
/// open (the deletion waits for it).
pub async fn clear_signed_out_data(on_blocked: impl Fn() + 'static) {
    let Some(s) = storage() else { return };
    let Some(user) = s.get_item(CLEAR_KEY).ok().flatten() else {
        return;
    };
    let Ok(user) = UserId::parse(&user) else {
        let _ = s.remove_item(CLEAR_KEY);
        return;
    };
    let prefix = journal_prefix(&user);
    let keys: Vec<String> = (0..s.length().unwrap_or(0))
        .filter_map(|i| s.key(i).ok().flatten())
        .filter(|k| k.starts_with(&prefix))
        .collect();
    for key in keys {
        let _ = s.remove_item(&key);
    }
    if LocalDb::delete(&user, on_blocked).await.is_ok() {
        let _ = s.remove_item(CLEAR_KEY);
    }
}

/// Loads `path` as a new document.
pub fn go(path: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.location().set_href(path);
    }
}

/// The page this document is, as the server marked it on `<body>` (the
/// path it rendered). It is not read from the address: offline, the service
/// worker answers an address it has no copy of with the notes page, which
/// must hydrate as the notes page.
pub fn current_route() -> PageRoute {
    web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
        .and_then(|body| body.get_attribute("data-page"))
        .map_or(PageRoute::NotFound, |path| PageRoute::of_path(&path))
}
