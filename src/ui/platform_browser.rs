//! The UI's actions in the browser: delegated to the client module.

pub use crate::client::actions::{
    create_note, delete_note, edited, now, resolve_conflict, retry_saves, start, sync_now,
};
