//! The HTTP boundary of the server functions under `/api/`: request size and
//! error statuses that the server-function machinery does not handle itself.
//!
//! - A request body over [`LIMITS.max_request_bytes`](crate::domain::LIMITS)
//!   is answered 413 before any of it is decoded.
//! - Errors raised while decoding a request, before our code runs, reach us
//!   as server-function error responses with status 500. They are given the
//!   status of their [`AppError`]: a request that cannot be read is a 400,
//!   and one that names another protocol version gets the version error, so
//!   an old client is told to update even if the shape of its request changed.
//!
//! Every error body is a JSON [`AppError`], which the client decodes.

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;

use crate::api::AppError;
use crate::domain::LIMITS;
use crate::sync::protocol::{ProtocolError, PROTOCOL_VERSION, SUPPORTED_PROTOCOLS};

/// The prefix of every server function's path.
pub const API_PREFIX: &str = "/api/";

/// Largest error body we read back to fix its status; ours are tiny.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Axum middleware enforcing the boundary rules above on `/api/` requests;
/// other requests pass through untouched.
pub async fn api_boundary(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with(API_PREFIX) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = LIMITS.max_request_bytes;
    if declared.is_some_and(|len| len > limit as u64) {
        return too_large();
    }
    // Reading fails when the body passes the limit, or when the connection
    // breaks, in which case nobody reads the answer anyway.
    let Ok(bytes) = to_bytes(body, limit).await else {
        return too_large();
    };
    let res = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    if !res.headers().contains_key(SERVER_FN_ERROR_HEADER) {
        return res;
    }
    let (mut res_parts, res_body) = res.into_parts();
    let Ok(error_bytes) = to_bytes(res_body, MAX_ERROR_BYTES).await else {
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, &AppError::Internal);
    };
    let Ok(error) = serde_json::from_slice::<AppError>(&error_bytes) else {
        return Response::from_parts(res_parts, Body::from(error_bytes));
    };
    // On the server, `Unreachable` only ever comes from failing to read the
    // request (the server-function error mapping is shared with the client).
    let error = match error {
        AppError::Unreachable(message) => unreadable_request(&bytes, message),
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

/// The error for a request body that could not be decoded.
fn unreadable_request(body: &Bytes, message: String) -> AppError {
    let version = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("req")?.get("protocol")?.as_u64());
    match version {
        Some(got) if !u32::try_from(got).is_ok_and(|got| SUPPORTED_PROTOCOLS.contains(&got)) => {
            AppError::Protocol(ProtocolError::UnsupportedVersion {
                got: u32::try_from(got).unwrap_or(u32::MAX),
                supported: PROTOCOL_VERSION,
            })
        }
        _ => AppError::BadRequest(message),
    }
}

fn status_of(error: &AppError) -> StatusCode {
    StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn too_large() -> Response {
    let error = AppError::BadRequest(format!(
        "the request is larger than the {} MiB limit; push fewer changes at a time",
        LIMITS.max_request_bytes / (1024 * 1024)
    ));
    error_response(StatusCode::PAYLOAD_TOO_LARGE, &error)
}

fn error_response(status: StatusCode, error: &AppError) -> Response {
    let body = serde_json::to_vec(error).unwrap_or_default();
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut()
        .insert(SERVER_FN_ERROR_HEADER, HeaderValue::from_static("api"));
    res
}
