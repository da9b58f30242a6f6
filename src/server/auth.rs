//! Accounts on the server: argon2id password hashes, cookie sessions kept in
//! the configured store, sign-in rate limits and the cross-site (Origin)
//! check on every state-changing request.
//!
//! Promises:
//! - a password is only ever kept as an argon2id PHC hash with its own salt;
//! - a wrong name and a wrong password answer the same error after the same
//!   work (an unknown name is verified against a dummy hash), so sign-in
//!   does not tell whether an account exists;
//! - sessions live in the [`AccountStore`], so restarts and other server
//!   instances see them; the session id is rotated at sign-in and the session
//!   deleted from the store at sign-out;
//! - sign-in and sign-up are limited per account name and per client address;
//! - a POST whose `Origin` (or, without one, `Sec-Fetch-Site`) shows another
//!   site is refused with 403 before any handler runs.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use async_trait::async_trait;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use super::service::system_clock;
use crate::api::{Account, AppError};
use crate::domain::{Password, UserId, UserName};
use crate::store::{AccountError, AccountStore, UserRecord};

/// The session key holding the signed-in [`Account`].
pub const SESSION_ACCOUNT: &str = "account";

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "notesync_session";

/// The session key holding when the session was last renewed (Unix ms).
pub const SESSION_RENEWED: &str = "renewed_ms";

/// How often a session in use is renewed, by default: its expiry then
/// slides to the full session lifetime from that request. Once a day keeps
/// the store's writes to one per person per day.
pub const SESSION_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);

/// Renews `session` if it was last renewed `every` ago or longer: marks it
/// changed, so the session layer saves it with a new expiry (the full
/// lifetime from now) and sends the cookie again.
pub async fn refresh_session(
    session: &tower_sessions::Session,
    every: Duration,
) -> Result<(), AppError> {
    let failed = |e: tower_sessions::session::Error| {
        tracing::error!(error = %e, "renewing the session failed");
        AppError::Internal
    };
    let now = system_clock()();
    let renewed = session
        .get::<u64>(SESSION_RENEWED)
        .await
        .map_err(failed)?
        .unwrap_or(0);
    let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
    if now.saturating_sub(renewed) >= every_ms {
        session.insert(SESSION_RENEWED, now).await.map_err(failed)?;
    }
    Ok(())
}

/// How many sign-in and sign-up attempts are allowed: a burst, refilled at
/// one attempt per `refill`.
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimits {
    pub per_name_burst: u32,
    pub per_address_burst: u32,
    pub refill: Duration,
}

impl Default for AttemptLimits {
    fn default() -> Self {
        Self {
            per_name_burst: 5,
            per_address_burst: 20,
            refill: Duration::from_secs(12),
        }
    }
}

/// Sign-up and sign-in over an [`AccountStore`].
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    per_name: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<String>,
    /// Verified when the name is unknown, so both failures cost the same.
    dummy_hash: String,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

fn quota(burst: u32, refill: Duration) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(refill.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| {
            tracing::error!(error = %e, "hashing a password failed");
            AppError::Internal
        })
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Hashing is CPU work measured in tens of milliseconds: off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(error = %e, "a password task failed");
        AppError::Internal
    })
}

fn store_failure(e: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %e, "the account store failed");
    AppError::Internal
}

impl Accounts {
    pub fn new(store: Arc<dyn AccountStore>, limits: AttemptLimits) -> Result<Self, AppError> {
        Ok(Self {
            store,
            per_name: RateLimiter::keyed(quota(limits.per_name_burst, limits.refill)),
            per_address: RateLimiter::keyed(quota(limits.per_address_burst, limits.refill)),
            dummy_hash: hash_password("not a password anyone has")?,
        })
    }

    /// Forgets rate-limit state of names and addresses whose allowance is
    /// whole again, so the limiters' memory does not grow with every name or
    /// address ever tried.
    pub fn forget_idle_attempts(&self) {
        self.per_name.retain_recent();
        self.per_address.retain_recent();
        self.per_name.shrink_to_fit();
        self.per_address.shrink_to_fit();
    }

    /// How many names and addresses the limiters hold state for.
    pub fn tracked_attempt_keys(&self) -> usize {
        self.per_name.len() + self.per_address.len()
    }

    /// The store sessions are kept in.
    pub fn store(&self) -> Arc<dyn AccountStore> {
        Arc::clone(&self.store)
    }

    /// Counts an attempt for `name` from `address`, refusing it over the limits.
    fn attempt(&self, name: &str, address: Option<SocketAddr>) -> Result<(), AppError> {
        let address = address.map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        let wait = |not_until: governor::NotUntil<_>| {
            let secs = not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1);
            AppError::TooManyAttempts(secs)
        };
        self.per_address.check_key(&address).map_err(wait)?;
        self.per_name.check_key(&name.to_string()).map_err(wait)?;
        Ok(())
    }

    /// Creates an account.
    pub async fn sign_up(
        &self,
        name: &str,
        password: &str,
        address: Option<SocketAddr>,
    ) -> Result<Account, AppError> {
        let name = UserName::parse(name)?;
        let password = Password::parse(password)?;
        self.attempt(name.as_str(), address)?;
        let hash = blocking(move || hash_password(password.expose())).await??;
        let mut random = [0u8; 16];
        argon2::password_hash::rand_core::RngCore::fill_bytes(&mut OsRng, &mut random);
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let id = UserId::parse(&format!("u{hex}")).map_err(store_failure)?;
        let record = UserRecord {
            id: id.clone(),
            name: name.to_string(),
            password_hash: hash,
            created_at: system_clock()(),
        };
        match self.store.create_user(&record).await {
            Ok(()) => Ok(Account {
                id,
                name: name.to_string(),
            }),
            Err(AccountError::NameTaken) => Err(AppError::NameTaken),
            Err(AccountError::Store(e)) => Err(store_failure(e)),
        }
    }

    /// Checks a name and password.
    pub async fn sign_in(
        &self,
        name: &str,
        password: &str,
        address: Option<SocketAddr>,
    ) -> Result<Account, AppError> {
        // Malformed input cannot match an account: the same answer as a miss.
        let (Ok(name), Ok(password)) = (UserName::parse(name), Password::parse(password)) else {
            return Err(AppError::BadCredentials);
        };
        self.attempt(name.as_str(), address)?;
        let user = self
            .store
            .user_by_name(name.as_str())
            .await
            .map_err(store_failure)?;
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let matches = blocking(move || verify_password(password.expose(), &hash)).await?;
        match user {
            Some(user) if matches => Ok(Account {
                id: user.id,
                name: user.name,
            }),
            _ => Err(AppError::BadCredentials),
        }
    }
}

/// The key a session is stored under: the SHA-256 of its id, in hex. The
/// stores never hold a session id itself, so a copy of the database (a
/// backup, a stolen disk) holds no cookie that would sign anyone in.
pub fn session_key(id: &Id) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// tower-sessions' store over our [`AccountStore`]; sessions are stored
/// under [`session_key`].
#[derive(Clone)]
pub struct StoreSessions(pub Arc<dyn AccountStore>);

impl std::fmt::Debug for StoreSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreSessions")
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for StoreSessions {
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let bytes =
            serde_json::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let expires_ms =
            u64::try_from(record.expiry_date.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        self.0
            .save_session(&session_key(&record.id), &bytes, expires_ms)
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(bytes) = self
            .0
            .load_session(&session_key(id), system_clock()())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| session_store::Error::Decode(e.to_string()))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.0
            .delete_session(&session_key(id))
            .await
            .map_err(backend)
    }
}

/// Whether a request's `Origin` header names the host it was sent to.
fn same_origin(origin: &str, host: &str) -> bool {
    origin.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https") && rest.eq_ignore_ascii_case(host)
    })
}

/// Refuses state-changing requests sent by another site (CSRF): every POST
/// must carry an `Origin` equal to its own host, or, from a client that sends
/// no `Origin` (not a browser), no `Sec-Fetch-Site: cross-site`.
pub async fn origin_check(request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let headers = request.headers();
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = headers
            .get(header::ORIGIN)
            .map(|o| o.to_str().unwrap_or(""));
        let fetch_site = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok());
        let allowed = match (origin, host) {
            (Some(origin), Some(host)) => same_origin(origin, host),
            (Some(_), None) => false,
            (None, _) => fetch_site != Some("cross-site"),
        };
        if !allowed {
            tracing::warn!(?origin, ?host, path = %request.uri().path(), "cross-site request refused");
            let body = serde_json::to_string(&AppError::Forbidden).unwrap_or_default();
            return (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// The client's address, where the server was started with connect info.
pub fn client_address(parts: &axum::http::request::Parts) -> Option<SocketAddr> {
    client_address_in(&parts.extensions)
}

/// The client's address from a request's extensions.
pub fn client_address_in(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}

/// The key per-address limits count under: an IPv4 address as it is, an
/// IPv6 address by its /64 (one subscriber's network: a single host can
/// take any address in it), an IPv4-mapped IPv6 address as IPv4.
pub fn address_key(address: Option<IpAddr>) -> String {
    match address {
        None => "unknown".to_string(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_only_their_own_host() {
        assert!(same_origin("http://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(same_origin("https://Notes.Example", "notes.example"));
        assert!(!same_origin("http://evil.example", "notes.example"));
        assert!(!same_origin("http://notes.example.evil", "notes.example"));
        assert!(!same_origin("null", "notes.example"));
        assert!(!same_origin("ftp://notes.example", "notes.example"));
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[tokio::test]
    async fn attempts_are_limited_per_name_and_per_address() {
        let store: Arc<dyn AccountStore> = Arc::new(crate::store::MemoryStore::new());
        let limits = AttemptLimits {
            per_name_burst: 2,
            per_address_burst: 3,
            refill: Duration::from_secs(3600),
        };
        let accounts = Accounts::new(store, limits).expect("accounts");
        let here: SocketAddr = "10.0.0.1:1".parse().expect("addr");
        let there: SocketAddr = "10.0.0.2:1".parse().expect("addr");
        for _ in 0..2 {
            assert_eq!(
                accounts.sign_in("ann", "password1", Some(here)).await,
                Err(AppError::BadCredentials)
            );
        }
        assert!(
            matches!(
                accounts.sign_in("ann", "password1", Some(there)).await,
                Err(AppError::TooManyAttempts(_))
            ),
            "per name, from any address"
        );
        assert_eq!(
            accounts.sign_in("bob", "password1", Some(here)).await,
            Err(AppError::BadCredentials)
        );
        assert!(
            matches!(
                accounts.sign_in("cat", "password1", Some(here)).await,
                Err(AppError::TooManyAttempts(_))
            ),
            "per address, for any name"
        );
    }

    #[tokio::test]
    async fn idle_limiter_state_is_forgotten() {
        let store: Arc<dyn AccountStore> = Arc::new(crate::store::MemoryStore::new());
        let limits = AttemptLimits {
            per_name_burst: 5,
            per_address_burst: 500,
            refill: Duration::from_millis(1),
        };
        let accounts = Accounts::new(store, limits).expect("accounts");
        for n in 0..20 {
            let _ = accounts
                .sign_in(&format!("name{n}"), "password1", None)
                .await;
        }
        assert!(accounts.tracked_attempt_keys() >= 20);
        tokio::time::sleep(Duration::from_millis(50)).await;
        accounts.forget_idle_attempts();
        assert_eq!(accounts.tracked_attempt_keys(), 0);
    }
}
