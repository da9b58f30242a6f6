//! The HTTP boundary of the server functions under `/api/`: what a request
//! must pass before its body is read, the body's size, and the error
//! statuses that the server-function machinery does not set itself.
//!
//! In this order, each before anything costlier (the cross-site check and
//! the limit on requests in flight run before this, in their own layers):
//! 1. the body's declared length against the endpoint's limit
//!    ([`Endpoint::body_limit`]: 8 MiB for a push, a few KiB elsewhere): over
//!    it, `413` before a byte is read;
//! 2. for the endpoints that act for a signed-in person, the session, read
//!    from the store by its cookie: without one, `401` before a byte is read.
//!    A session older than a day is renewed here, so a person who uses the
//!    app is never signed out (the expiry slides);
//! 3. pushes and pulls count against their account's rate
//!    ([`super::limits`]): over it, `429` with `Retry-After`;
//! 4. the body is read up to the limit (`413` beyond it), once, into one
//!    buffer of exactly its size when its length was declared;
//! 5. a push body is checked as the decoder will read it, with no allocation
//!    that grows with it ([`super::inspect::check_push`]): the protocol
//!    version, the number of changes and each change's shape. So a refused
//!    request costs its bytes and nothing more, and the decode that follows
//!    cannot fail;
//! 6. errors raised while decoding a request, before our code runs, reach
//!    us as server-function error responses with status 500; they are given
//!    the status of their [`AppError`]: a request that cannot be read is a
//!    400, and one that names another protocol version gets the version
//!    error (found without building the JSON tree), so an old client is told
//!    to update even if the shape of its request changed.
//!
//! Every error body is a JSON [`AppError`], which the client decodes; `429`
//! and `503` carry `Retry-After`.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;
use tower_sessions::Session;

use super::auth::{refresh_session, SESSION_ACCOUNT};
use super::inspect::{check_push, protocol_version, PushShapeError, MAX_WIRE_TAGS};
use super::limits::Rate;
pub use super::respond::error_response;
use super::respond::status_of;
use super::state::AppState;
use crate::api::{Account, AppError};
use crate::domain::LIMITS;
use crate::sync::protocol::{ProtocolError, PROTOCOL_VERSION, SUPPORTED_PROTOCOLS};

/// The prefix of every server function's path.
pub const API_PREFIX: &str = "/api/";

pub use super::respond::EVENTS_PATH;

/// Largest error body we read back to fix its status; ours are tiny.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// The server functions, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Push,
    Pull,
    SignUp,
    SignIn,
    SignOut,
    SignOutEverywhere,
    ChangePassword,
    Whoami,
    /// Any other path under `/api/`.
    Other,
}

impl Endpoint {
    /// The endpoint of a path under `/api/`.
    pub fn of_path(path: &str) -> Self {
        match path.strip_prefix(API_PREFIX).unwrap_or("") {
            "push" => Self::Push,
            "pull" => Self::Pull,
            "sign_up" => Self::SignUp,
            "sign_in" => Self::SignIn,
            "sign_out" => Self::SignOut,
            "sign_out_everywhere" => Self::SignOutEverywhere,
            "change_password" => Self::ChangePassword,
            "whoami" => Self::Whoami,
            _ => Self::Other,
        }
    }

    /// The largest body the endpoint reads: a push's batch limit; room for a
    /// pull request, for a name and two passwords, or for an empty object.
    pub fn body_limit(self) -> usize {
        match self {
            Self::Push => LIMITS.max_request_bytes,
            Self::SignUp | Self::SignIn | Self::ChangePassword => 16 * 1024,
            Self::Pull => 4 * 1024,
            Self::SignOut | Self::SignOutEverywhere | Self::Whoami | Self::Other => 1024,
        }
    }

    /// Whether the endpoint acts for a signed-in person, so a request
    /// without a session is refused before its body is read.
    fn needs_session(self) -> bool {
        matches!(
            self,
            Self::Push | Self::Pull | Self::SignOutEverywhere | Self::ChangePassword
        )
    }

    /// The per-account rate the endpoint counts against.
    fn rate(self) -> Option<Rate> {
        match self {
            Self::Push => Some(Rate::Push),
            Self::Pull => Some(Rate::Pull),
            _ => None,
        }
    }
}

/// Axum middleware enforcing the boundary rules above on `/api/` requests
/// (other than the event stream); other requests pass through untouched.
/// Runs inside the session layer.
pub async fn api_boundary(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // Server functions take POSTs only; the router answers anything else
    // 405 without reading it.
    if !path.starts_with(API_PREFIX) || path == EVENTS_PATH || req.method() != Method::POST {
        return next.run(req).await;
    }
    let endpoint = Endpoint::of_path(path);
    let (parts, body) = req.into_parts();
    let limit = endpoint.body_limit();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return too_large(limit);
    }
    if let Some(session) = parts.extensions.get::<Session>() {
        match signed_in(&state, session, endpoint).await {
            Ok(Some(account)) => {
                if let Some(rate) = endpoint.rate() {
                    if let Err(e) = state.protection.check_rate(&account.id, rate) {
                        return error_response(&e);
                    }
                }
            }
            Ok(None) if endpoint.needs_session() => return error_response(&AppError::Unauthorized),
            Ok(None) => {}
            Err(e) => return error_response(&e),
        }
    }
    let Some(bytes) = read_body(body, declared, limit).await else {
        return too_large(limit);
    };
    if endpoint == Endpoint::Push {
        if let Err(e) = check_push_body(&bytes) {
            return error_response(&e);
        }
    }
    // Only a small body is kept for reading the protocol version of a
    // request the decoder refuses; a push that passed its check decodes.
    let kept = (bytes.len() <= 64 * 1024).then(|| bytes.clone());
    let res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !res.headers().contains_key(SERVER_FN_ERROR_HEADER) {
        return res;
    }
    let (mut res_parts, res_body) = res.into_parts();
    let Some(error_bytes) = read_body(res_body, None, MAX_ERROR_BYTES).await else {
        return error_response(&AppError::Internal);
    };
    let Ok(error) = serde_json::from_slice::<AppError>(&error_bytes) else {
        return Response::from_parts(res_parts, Body::from(error_bytes));
    };
    // On the server, `Unreachable` only ever comes from failing to read the
    // request (the server-function error mapping is shared with the client).
    let error = match error {
        AppError::Unreachable(message) => {
            unreadable_request(kept.as_deref().and_then(protocol_version), message)
        }
        other => other,
    };
    res_parts.status = status_of(&error);
    match serde_json::to_vec(&error) {
        Ok(body) => {
            res_parts.headers.remove(CONTENT_LENGTH);
            Response::from_parts(res_parts, Body::from(body))
        }
        Err(_) => Response::from_parts(res_parts, Body::from(error_bytes)),
    }
}

/// The account of the request's session, renewing a session older than a
/// day. Only read for the endpoints that use it.
async fn signed_in(
    state: &AppState,
    session: &Session,
    endpoint: Endpoint,
) -> Result<Option<Account>, AppError> {
    if !endpoint.needs_session() && endpoint != Endpoint::Whoami {
        return Ok(None);
    }
    let account = session.get::<Account>(SESSION_ACCOUNT).await.map_err(|e| {
        tracing::error!(error = %e, "reading the session failed");
        AppError::Internal
    })?;
    if account.is_some() {
        refresh_session(session, state.session_refresh).await?;
    }
    Ok(account)
}

/// Reads a body of at most `limit` bytes; `None` when it is larger (or the
/// connection broke, when nobody reads the answer anyway). A body of one
/// chunk is kept as it came; one with a declared length is copied into one
/// buffer of that size as it arrives; one without is gathered in its chunks
/// and joined once at the end, so the peak is the body plus one copy.
async fn read_body(body: Body, declared: Option<u64>, limit: usize) -> Option<Bytes> {
    let declared = declared.map(|len| usize::try_from(len).unwrap_or(limit).min(limit));
    let mut chunks = body.into_data_stream();
    let mut total = 0usize;
    let mut first: Option<Bytes> = None;
    let mut sized: Option<Vec<u8>> = None;
    let mut gathered: Vec<Bytes> = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let data = chunk.ok()?;
        total += data.len();
        if total > limit {
            return None;
        }
        if let Some(buffer) = &mut sized {
            buffer.extend_from_slice(&data);
        } else if let Some(previous) = first.take() {
            match declared {
                Some(len) => {
                    let mut buffer = Vec::with_capacity(len.max(total));
                    buffer.extend_from_slice(&previous);
                    buffer.extend_from_slice(&data);
                    sized = Some(buffer);
                }
                None => gathered.extend([previous, data]),
            }
        } else if gathered.is_empty() {
            first = Some(data);
        } else {
            gathered.push(data);
        }
    }
    if let Some(buffer) = sized {
        return Some(Bytes::from(buffer));
    }
    if gathered.is_empty() {
        return Some(first.unwrap_or_default());
    }
    let mut joined = Vec::with_capacity(total);
    for chunk in gathered {
        joined.extend_from_slice(&chunk);
    }
    Some(Bytes::from(joined))
}

/// Checks a push body before it is decoded (see [`check_push`]).
fn check_push_body(bytes: &[u8]) -> Result<(), AppError> {
    if let Some(got) = protocol_version(bytes) {
        if let Some(e) = unsupported(got) {
            return Err(e);
        }
    }
    check_push(bytes).map_err(|e| match e {
        PushShapeError::TooManyChanges(got) => AppError::Protocol(ProtocolError::BatchTooLarge {
            got,
            max: LIMITS.max_batch_changes,
        }),
        PushShapeError::TooManyTags => AppError::BadRequest(format!(
            "a note in this push has more than {MAX_WIRE_TAGS} tags"
        )),
        PushShapeError::Malformed(message) => AppError::BadRequest(message),
    })
}

fn unsupported(got: u64) -> Option<AppError> {
    (!u32::try_from(got).is_ok_and(|got| SUPPORTED_PROTOCOLS.contains(&got))).then(|| {
        AppError::Protocol(ProtocolError::UnsupportedVersion {
            got: u32::try_from(got).unwrap_or(u32::MAX),
            supported: PROTOCOL_VERSION,
        })
    })
}

/// The error for a request body that could not be decoded, which named
/// protocol version `version`, if it named one.
fn unreadable_request(version: Option<u64>, message: String) -> AppError {
    version
        .and_then(unsupported)
        .unwrap_or(AppError::BadRequest(message))
}

fn too_large(limit: usize) -> Response {
    let error = if limit >= 1024 * 1024 {
        AppError::BadRequest(format!(
            "the request is larger than the {} MiB limit; push fewer changes at a time",
            limit / (1024 * 1024)
        ))
    } else {
        AppError::BadRequest(format!(
            "the request is larger than this call's {} KiB limit",
            limit / 1024
        ))
    };
    let mut res = error_response(&error);
    *res.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    res
}
