//! The state shared by every request: the services the server functions
//! call. Built once at start-up (or by a test around any store) and handed to
//! the server functions as Leptos context (see [`super::router`]).

use std::sync::Arc;

use super::service::SyncService;

/// What the server functions reach through `expect_context::<AppState>()`.
#[derive(Debug, Clone)]
pub struct AppState {
    pub sync: Arc<SyncService>,
}

impl AppState {
    /// State around one sync service.
    pub fn new(sync: SyncService) -> Self {
        Self {
            sync: Arc::new(sync),
        }
    }
}
