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

use crate::sync::protocol::{PullRequest, PullResponse, PushRequest, PushResponse};

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
