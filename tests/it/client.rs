//! A test client for the real router: requests as a browser on the same
//! origin sends them, with the session cookie the server set.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use leptos::prelude::LeptosOptions;
use serde::Serialize;
use tower::ServiceExt;

use notesync::api::{Account, AppError};
use notesync::server::auth::{Accounts, AttemptLimits, SESSION_COOKIE};
use notesync::server::limits::ProtectionSettings;
use notesync::server::service::SyncService;
use notesync::server::{router, AppState};
use notesync::store::{AccountStore, MemoryStore, SyncStore};
use notesync::sync::merge::Strategy;

pub const HOST: &str = "notes.test";
pub const ORIGIN: &str = "http://notes.test";

/// Generous limits, so only the tests about limits meet them.
pub fn relaxed() -> AttemptLimits {
    AttemptLimits {
        per_name_burst: 1_000,
        per_address_burst: 1_000,
        refill: Duration::from_millis(1),
    }
}

/// Limits on requests and rates that no test meets unless it is about them.
pub fn unlimited() -> ProtectionSettings {
    ProtectionSettings {
        max_in_flight: 100_000,
        pushes_per_second: 1_000_000,
        push_burst: 1_000_000,
        pulls_per_second: 1_000_000,
        pull_burst: 1_000_000,
    }
}

/// The whole app over one memory store.
pub fn router_with(limits: AttemptLimits) -> Router {
    router_over(Arc::new(MemoryStore::new()), limits, false)
}

/// The whole app over `store` (notes, users and sessions), with these
/// attempt limits; `secure_cookies` as behind TLS.
pub fn router_over<S>(store: Arc<S>, limits: AttemptLimits, secure_cookies: bool) -> Router
where
    S: SyncStore + AccountStore + 'static,
{
    let options = LeptosOptions::builder().output_name("notesync").build();
    let sync = SyncService::new(
        store.clone(),
        Strategy::Merge,
        Duration::from_secs(90 * 24 * 60 * 60),
    );
    let accounts = Accounts::new(store, limits).expect("accounts");
    router(
        options,
        AppState::new(sync, accounts)
            .with_sessions(secure_cookies, 30)
            .with_protection(unlimited()),
    )
}

/// The whole app over `store`, its state changed by `adjust` (limits,
/// stream settings, session renewal) before the router is built.
pub fn router_adjusted<S>(
    store: Arc<S>,
    limits: AttemptLimits,
    adjust: impl FnOnce(AppState) -> AppState,
) -> Router
where
    S: SyncStore + AccountStore + 'static,
{
    let options = LeptosOptions::builder().output_name("notesync").build();
    let sync = SyncService::new(
        store.clone(),
        Strategy::Merge,
        Duration::from_secs(90 * 24 * 60 * 60),
    );
    let accounts = Accounts::new(store, limits).expect("accounts");
    let state = AppState::new(sync, accounts)
        .with_sessions(false, 30)
        .with_protection(unlimited());
    router(options, adjust(state))
}

/// One browser: a router and the session cookie it holds, if any.
#[derive(Clone)]
pub struct Browser {
    pub router: Router,
    pub cookie: Option<String>,
}

static NAMES: AtomicU32 = AtomicU32::new(0);

/// A fresh user name.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", NAMES.fetch_add(1, Ordering::Relaxed))
}

pub const PASSWORD: &str = "correct horse battery";

impl Browser {
    pub fn new(router: &Router) -> Self {
        Self {
            router: router.clone(),
            cookie: None,
        }
    }

    /// A browser signed up (and so signed in) as a new user.
    pub async fn signed_up(router: &Router, prefix: &str) -> (Self, Account) {
        let mut b = Self::new(router);
        let account = b
            .sign_up(&unique_name(prefix), PASSWORD)
            .await
            .expect("signs up");
        (b, account)
    }

    pub async fn sign_up(
        &mut self,
        name: &str,
        password: &str,
    ) -> Result<Account, (StatusCode, AppError)> {
        let body = serde_json::json!({ "name": name, "password": password });
        self.call("/api/sign_up", &body).await
    }

    pub async fn sign_in(
        &mut self,
        name: &str,
        password: &str,
    ) -> Result<Account, (StatusCode, AppError)> {
        let body = serde_json::json!({ "name": name, "password": password });
        self.call("/api/sign_in", &body).await
    }

    /// Posts JSON and decodes the answer or the error; keeps a new cookie.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &mut self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, (StatusCode, AppError)> {
        let bytes = serde_json::to_vec(body).expect("serialises");
        let (status, body) = self.send(self.request(path, bytes)).await;
        if status.is_success() {
            Ok(serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!(
                    "unexpected answer ({e}): {}",
                    String::from_utf8_lossy(&body)
                )
            }))
        } else {
            Err((status, decode_error(&body)))
        }
    }

    /// A same-origin POST with this browser's cookie.
    pub fn request(&self, path: &str, body: Vec<u8>) -> Request<Body> {
        let mut req = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::ORIGIN, ORIGIN)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len());
        if let Some(cookie) = &self.cookie {
            req = req.header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"));
        }
        req.body(Body::from(body)).expect("request")
    }

    /// Sends any request; remembers the session cookie the server sets.
    pub async fn send(&mut self, req: Request<Body>) -> (StatusCode, Vec<u8>) {
        let res = self.router.clone().oneshot(req).await.expect("response");
        for value in res.headers().get_all(header::SET_COOKIE) {
            let text = value.to_str().expect("ascii cookie");
            if let Some(rest) = text.strip_prefix(&format!("{SESSION_COOKIE}=")) {
                let value = rest.split(';').next().unwrap_or("");
                let expired = text.contains("Max-Age=0") || value.is_empty();
                self.cookie = (!expired).then(|| value.to_string());
            }
        }
        let status = res.status();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        (status, bytes.to_vec())
    }

    /// The raw `Set-Cookie` headers of a sign-in, for their attributes.
    pub async fn sign_in_headers(&mut self, name: &str, password: &str) -> Vec<String> {
        let body = serde_json::to_vec(&serde_json::json!({ "name": name, "password": password }))
            .expect("serialises");
        let res = self
            .router
            .clone()
            .oneshot(self.request("/api/sign_in", body))
            .await
            .expect("response");
        res.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_string())
            .collect()
    }
}

pub fn decode_error(body: &[u8]) -> AppError {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not an AppError ({e}): {}", String::from_utf8_lossy(body)))
}
