//! The UI's actions in the browser: delegated to the client module.

pub use crate::client::account::{change_password, sign_out_everywhere};
pub use crate::client::actions::{
    auth_page_opened, create_note, delete_note, edited, export_notes, import_file, keep_both, now,
    reload, render_markdown, resolve_conflict, restore_note, retry_saves, sign_out, signed_in_here,
    start, submit_account, sync_now,
};
pub use crate::client::pwa::apply_update;
pub use crate::client::session::current_route;
