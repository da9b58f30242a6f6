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
/// one attempt per `refill` per address, and twice as fast per name.
///
/// Sign-in and sign-up count apart (a stream of sign-ups naming someone's
/// account must not spend their sign-in attempts), and a name's allowance
/// refills twice as fast as an address may attempt, so no single address
/// can keep a name locked out: it can take at most every other attempt the
/// name is allowed. Addresses count per IPv4 address and per IPv6 /64
/// ([`address_key`]).
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
    sign_in: Limiters,
    sign_up: Limiters,
    /// Verified when the name is unknown, so both failures cost the same.
    dummy_hash: String,
}

/// One kind of attempt's limiters.
struct Limiters {
    per_name: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<String>,
}

impl Limiters {
    fn new(limits: AttemptLimits) -> Self {
        Self {
            per_name: RateLimiter::keyed(quota(limits.per_name_burst, limits.refill / 2)),
            per_address: RateLimiter::keyed(quota(limits.per_address_burst, limits.refill)),
        }
    }

    /// Counts an attempt for `name` from `address`, refusing it over either limit.
    fn attempt(&self, name: &str, address: Option<SocketAddr>) -> Result<(), AppError> {
        let address = address_key(address.map(|a| a.ip()));
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

    fn forget_idle(&self) {
        self.per_name.retain_recent();
        self.per_address.retain_recent();
        self.per_name.shrink_to_fit();
        self.per_address.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.per_name.len() + self.per_address.len()
    }
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
            sign_in: Limiters::new(limits),
            sign_up: Limiters::new(limits),
            dummy_hash: hash_password("not a password anyone has")?,
        })
    }

    /// Forgets rate-limit state of names and addresses whose allowance is
    /// whole again, so the limiters' memory does not grow with every name or
    /// address ever tried.
    pub fn forget_idle_attempts(&self) {
        self.sign_in.forget_idle();
        self.sign_up.forget_idle();
    }

    /// How many names and addresses the limiters hold state for.
    pub fn tracked_attempt_keys(&self) -> usize {
        self.sign_in.len() + self.sign_up.len()
    }

    /// The store sessions are kept in.
    pub fn store(&self) -> Arc<dyn AccountStore> {
        Arc::clone(&self.store)
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
        self.sign_up.attempt(name.as_str(), address)?;
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
        self.sign_in.attempt(name.as_str(), address)?;
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

    /// Replaces `account`'s password after checking the current one (counted
    /// as a sign-in attempt, so it cannot be used to guess), then ends every
    /// session of the account but `keep` (the one that asked).
    pub async fn change_password(
        &self,
        account: &Account,
        current: &str,
        new: &str,
        keep: &str,
        address: Option<SocketAddr>,
    ) -> Result<u64, AppError> {
        let new = Password::parse(new)?;
        let Ok(current) = Password::parse(current) else {
            return Err(AppError::BadCredentials);
        };
        self.sign_in.attempt(&account.name, address)?;
        let user = self
            .store
            .user_by_name(&account.name)
            .await
            .map_err(store_failure)?
            .filter(|u| u.id == account.id)
            .ok_or(AppError::Unauthorized)?;
        let stored = user.password_hash.clone();
        if !blocking(move || verify_password(current.expose(), &stored)).await? {
            return Err(AppError::BadCredentials);
        }
        let hash = blocking(move || hash_password(new.expose())).await??;
        if !self
            .store
            .set_password(&account.name, &hash)
            .await
            .map_err(store_failure)?
        {
            return Err(AppError::Unauthorized);
        }
        self.store
            .end_sessions(&account.id, Some(keep))
            .await
            .map_err(store_failure)
    }
}

/// The key a session is stored under: the SHA-256 of its id, in hex. The
/// stores never hold a session id itself, so a copy of the database (a
/// backup, a stolen disk) holds no cookie that would sign anyone in.
pub fn session_key(id: &Id) -> String {
    session_key_of(&id.to_string())
}

/// [`session_key`] of a session id in its text form (the cookie's value).
pub fn session_key_of(id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A session record's JSON without its `id`: what is stored, so that the
/// stored bytes hold no session id either (it is given back on loading).
pub fn without_id(record: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(record)?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("id");
    }
    serde_json::to_vec(&value)
}

/// A session record as stored: without its id.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRecord {
    data: std::collections::HashMap<String, serde_json::Value>,
    expiry_date: time::OffsetDateTime,
}

/// tower-sessions' store over our [`AccountStore`]; sessions are stored
/// under [`session_key`], without their id.
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
        let stored = StoredRecord {
            data: record.data.clone(),
            expiry_date: record.expiry_date,
        };
        let bytes =
            serde_json::to_vec(&stored).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let expires_ms =
            u64::try_from(record.expiry_date.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let user = record
            .data
            .get(SESSION_ACCOUNT)
            .and_then(|account| serde_json::from_value::<Account>(account.clone()).ok())
            .map(|account| account.id);
        self.0
            .save_session(&session_key(&record.id), user.as_ref(), &bytes, expires_ms)
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
        let stored: StoredRecord = serde_json::from_slice(&bytes)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data: stored.data,
            expiry_date: stored.expiry_date,
        }))
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
