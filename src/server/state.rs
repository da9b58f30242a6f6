//! The state shared by every request: the services the server functions
//! call. Built once at start-up (or by a test around any store) and handed to
//! the server functions as Leptos context (see [`super::router`]).

use std::sync::Arc;

use std::time::Duration;

use super::auth::{Accounts, SESSION_REFRESH};
use super::limits::{Protection, ProtectionSettings};
use super::pokes::{Pokes, StreamSettings};
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
    /// A session in use is renewed this often (its expiry slides).
    pub session_refresh: Duration,
    /// The limits on requests in flight and on each account's rates.
    pub protection: Arc<Protection>,
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
            session_refresh: SESSION_REFRESH,
            protection: Arc::new(Protection::new(ProtectionSettings::default())),
        }
    }

    /// The same state with these limits.
    pub fn with_protection(mut self, settings: ProtectionSettings) -> Self {
        self.protection = Arc::new(Protection::new(settings));
        self
    }

    /// The same state renewing sessions in use every `every` (tests renew
    /// at every request to see the expiry move).
    pub fn with_session_refresh(mut self, every: Duration) -> Self {
        self.session_refresh = every;
        self
    }

    /// The same state with these event stream timings and caps (before any
    /// stream opened).
    pub fn with_streams(mut self, settings: StreamSettings) -> Self {
        self.pokes =
            Arc::new(Pokes::new(self.sync.store(), self.accounts.store()).with_settings(settings));
        self
    }

    /// The same state with these session cookie settings.
    pub fn with_sessions(mut self, secure_cookies: bool, session_days: u32) -> Self {
        self.secure_cookies = secure_cookies;
        self.session_days = session_days.max(1);
        self
    }
}
