//! The state shared by every request: the services the server functions
//! call. Built once at start-up (or by a test around any store) and handed to
//! the server functions as Leptos context (see [`super::router`]).

use std::sync::Arc;

use super::auth::Accounts;
use super::pokes::Pokes;
use super::service::SyncService;

/// What the server functions reach through `expect_context::<AppState>()`.
#[derive(Debug, Clone)]
pub struct AppState {
    pub sync: Arc<SyncService>,
    pub accounts: Arc<Accounts>,
    /// The open poke streams of this process.
    pub pokes: Arc<Pokes>,
    /// Session cookies carry `Secure` (the server is behind TLS).
    pub secure_cookies: bool,
    /// A session ends after this many days without a request.
    pub session_days: u32,
}

impl AppState {
    /// State around one sync service and the accounts.
    pub fn new(sync: SyncService, accounts: Accounts) -> Self {
        Self {
            pokes: Arc::new(Pokes::new(sync.store(), accounts.store())),
            sync: Arc::new(sync),
            accounts: Arc::new(accounts),
            secure_cookies: false,
            session_days: 30,
        }
    }

    /// The same state with these session cookie settings.
    pub fn with_sessions(mut self, secure_cookies: bool, session_days: u32) -> Self {
        self.secure_cookies = secure_cookies;
        self.session_days = session_days.max(1);
        self
    }
}
