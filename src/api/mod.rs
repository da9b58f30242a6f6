//! Server functions: the HTTP boundary of the sync protocol.
//!
//! Each function is a thin shim over the server's injected services (see
//! `crate::server::api`), compiled as a typed client call in the browser and
//! the worker. Requests and responses are JSON. Every failure reaches the
//! client as one serialisable [`AppError`]; internals are logged on the
//! server, never sent.

mod error;

pub use error::AppError;

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use crate::domain::UserId;
use crate::sync::protocol::{PullRequest, PullResponse, PushRequest, PushResponse};

/// The signed-in person, as the session names them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    pub id: UserId,
    pub name: String,
}

/// Creates an account and signs it in (a new session).
#[server(prefix = "/api", endpoint = "sign_up", input = Json, output = Json)]
pub async fn sign_up(name: String, password: String) -> Result<Account, AppError> {
    crate::server::api::sign_up(name, password).await
}

/// Signs in: checks the password and starts a new session (the old session
/// id, if any, is replaced).
#[server(prefix = "/api", endpoint = "sign_in", input = Json, output = Json)]
pub async fn sign_in(name: String, password: String) -> Result<Account, AppError> {
    crate::server::api::sign_in(name, password).await
}

/// Signs out: the session is deleted on the server and its cookie cleared.
#[server(prefix = "/api", endpoint = "sign_out", input = Json, output = Json)]
pub async fn sign_out() -> Result<(), AppError> {
    crate::server::api::sign_out().await
}

/// Ends every session of the signed-in person, on every device, this one
/// included: each of them must sign in again (their notes stay on them).
#[server(prefix = "/api", endpoint = "sign_out_everywhere", input = Json, output = Json)]
pub async fn sign_out_everywhere() -> Result<(), AppError> {
    crate::server::api::sign_out_everywhere().await
}

/// Replaces the signed-in person's password, given the current one, and
/// ends their sessions on every other device; this one goes on (under a new
/// session id).
#[server(prefix = "/api", endpoint = "change_password", input = Json, output = Json)]
pub async fn change_password(current: String, new: String) -> Result<(), AppError> {
    crate::server::api::change_password(current, new).await
}

/// Who the session belongs to; `None` when signed out.
#[server(prefix = "/api", endpoint = "whoami", input = Json, output = Json)]
pub async fn whoami() -> Result<Option<Account>, AppError> {
    crate::server::api::whoami().await
}

/// Pushes a batch of local changes; answers one result per change, in order.
#[server(prefix = "/api", endpoint = "push", input = Json, output = Json)]
pub async fn push(req: PushRequest) -> Result<PushResponse, AppError> {
    crate::server::api::push(req).await
}

/// Pulls the feed entries after a checkpoint.
#[server(prefix = "/api", endpoint = "pull", input = Json, output = Json)]
pub async fn pull(req: PullRequest) -> Result<PullResponse, AppError> {
    crate::server::api::pull(req).await
}
