//! Answers the layers in front of the server functions send themselves
//! ([`super::boundary`], [`super::limits`]): an [`AppError`] as JSON with
//! its status, and `Retry-After` when it says when to try again.

use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;

use crate::api::AppError;

/// The path of the event stream (an ordinary route, not a server function).
pub const EVENTS_PATH: &str = "/api/events";

/// The HTTP status of `error`.
pub fn status_of(error: &AppError) -> StatusCode {
    StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The response for `error`: its status, its JSON, and `Retry-After` when
/// it says when to retry.
pub fn error_response(error: &AppError) -> Response {
    let body = serde_json::to_vec(error).unwrap_or_default();
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status_of(error);
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(SERVER_FN_ERROR_HEADER, HeaderValue::from_static("api"));
    if let Some(secs) = error.retry_after_secs() {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}
