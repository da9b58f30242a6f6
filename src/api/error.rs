//! The one error type of the server-function boundary.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

use crate::domain::AccountInputError;
use crate::sync::driver::PortError;
use crate::sync::protocol::ProtocolError;

/// What a client is told when a server function fails. Messages are written
/// for people; server internals never appear in them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AppError {
    /// The request is well-formed but speaks another protocol or breaks a limit.
    #[error("{0}")]
    Protocol(ProtocolError),
    /// The request could not be read.
    #[error("the request is malformed: {0}")]
    BadRequest(String),
    /// No valid session.
    #[error("you are signed out; sign in again to sync")]
    Unauthorized,
    /// The name and password do not match an account (which of the two is
    /// wrong is never said).
    #[error("wrong name or password")]
    BadCredentials,
    /// Sign-up with a name someone already has.
    #[error("that name is taken; choose another")]
    NameTaken,
    /// A name or password outside the rules.
    #[error("{0}")]
    InvalidAccount(AccountInputError),
    /// Too many sign-in or sign-up attempts; retry after this many seconds.
    #[error("too many attempts; try again in {0} s")]
    TooManyAttempts(u64),
    /// Too many pushes or pulls from this account; the client waits this
    /// many seconds before it tries again (also in `Retry-After`).
    #[error("too many requests from this account; syncing again in {0} s")]
    RateLimited(u64),
    /// The server is handling as many requests as it takes; retry after
    /// this many seconds (also in `Retry-After`).
    #[error("the server is busy; trying again in {0} s")]
    Busy(u64),
    /// A state-changing request from another site (CSRF).
    #[error("the request came from another site and was refused")]
    Forbidden,
    /// The request named the account its local data belongs to, and the
    /// session is another account's (someone else signed in in this
    /// browser since): refused, and nothing changed.
    #[error("this browser is now signed in to another account; nothing was synced")]
    AccountMismatch,
    /// The server failed; the details are in its log.
    #[error("the server had a problem; your changes are kept and will be retried")]
    Internal,
    /// The server could not be reached or its answer was unreadable (client side).
    #[error("could not reach the server: {0}")]
    Unreachable(String),
}

impl AppError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AppError::Internal
                | AppError::Unreachable(_)
                | AppError::RateLimited(_)
                | AppError::Busy(_)
        )
    }

    /// For an error that says when to try again: after how many seconds
    /// (what the server sends as `Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AppError::RateLimited(secs)
            | AppError::Busy(secs)
            | AppError::TooManyAttempts(secs) => Some(*secs),
            _ => None,
        }
    }

    /// For a push refused for its number of changes: the most the server
    /// takes, so the client can send the same changes in smaller pushes.
    pub fn push_limit(&self) -> Option<usize> {
        match self {
            AppError::Protocol(ProtocolError::BatchTooLarge { max, .. }) => Some(*max),
            _ => None,
        }
    }

    /// The HTTP status the server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Protocol(ProtocolError::BatchTooLarge { .. }) => 413,
            AppError::Protocol(_) | AppError::BadRequest(_) => 400,
            AppError::Unauthorized | AppError::BadCredentials => 401,
            AppError::InvalidAccount(_) => 400,
            AppError::Forbidden => 403,
            AppError::NameTaken | AppError::AccountMismatch => 409,
            AppError::TooManyAttempts(_) | AppError::RateLimited(_) => 429,
            AppError::Busy(_) => 503,
            AppError::Internal => 500,
            AppError::Unreachable(_) => 503,
        }
    }
}

/// A failed server call as the sync driver needs to know it. A push refused
/// for its count is retryable: sent again in smaller pushes, it is taken.
impl From<AppError> for PortError {
    fn from(e: AppError) -> Self {
        let push_limit = e.push_limit();
        PortError {
            offline: matches!(e, AppError::Unreachable(_)),
            retryable: e.is_retryable() || push_limit.is_some(),
            message: e.to_string(),
            push_limit,
            retry_after_ms: match e {
                AppError::RateLimited(secs) | AppError::Busy(secs) => {
                    Some(secs.max(1).saturating_mul(1_000))
                }
                _ => None,
            },
        }
    }
}

impl From<AccountInputError> for AppError {
    fn from(e: AccountInputError) -> Self {
        AppError::InvalidAccount(e)
    }
}

impl From<ProtocolError> for AppError {
    fn from(e: ProtocolError) -> Self {
        AppError::Protocol(e)
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::MissingArg(m) => AppError::BadRequest(m),
            ServerFnErrorErr::Request(m) | ServerFnErrorErr::Deserialization(m) => {
                AppError::Unreachable(m)
            }
            _ => AppError::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_kind_of_error() {
        assert_eq!(
            AppError::Protocol(ProtocolError::BatchTooLarge { got: 501, max: 500 }).status(),
            413
        );
        assert_eq!(AppError::Protocol(ProtocolError::EmptyBatch).status(), 400);
        assert_eq!(AppError::Unauthorized.status(), 401);
        assert_eq!(AppError::AccountMismatch.status(), 409);
        assert!(!AppError::AccountMismatch.is_retryable());
        assert!(AppError::Internal.is_retryable());
        assert!(!AppError::BadRequest("x".into()).is_retryable());
    }

    #[test]
    fn argument_errors_are_bad_requests() {
        let e = AppError::from_server_fn_error(ServerFnErrorErr::Args("missing field".into()));
        assert!(matches!(e, AppError::BadRequest(_)));
        let e = AppError::from_server_fn_error(ServerFnErrorErr::Registration("x".into()));
        assert_eq!(e, AppError::Internal);
    }
}
