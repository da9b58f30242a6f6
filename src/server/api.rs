//! The server side of the server functions in [`crate::api`]: find the state
//! and the user, call the service, and give errors their HTTP status.

use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;

use super::state::AppState;
use crate::api::AppError;
use crate::domain::UserId;
use crate::sync::protocol::{PullRequest, PullResponse, PushRequest, PushResponse};

/// The user every request acts for.
///
/// This is the one place the session check goes: until accounts exist, the
/// server has a single fixed user. When they do, this reads the session
/// cookie from the request parts and answers [`AppError::Unauthorized`]
/// without a valid session; every server function already goes through it.
pub async fn current_user() -> Result<UserId, AppError> {
    UserId::parse("local").map_err(|e| {
        tracing::error!(error = %e, "the fixed user id is invalid");
        AppError::Internal
    })
}

/// `push` on the server.
pub async fn push(req: PushRequest) -> Result<PushResponse, AppError> {
    with_status(async {
        let state = state()?;
        let user = current_user().await?;
        state.sync.push(&user, req).await
    })
    .await
}

/// `pull` on the server.
pub async fn pull(req: PullRequest) -> Result<PullResponse, AppError> {
    with_status(async {
        let state = state()?;
        let user = current_user().await?;
        state.sync.pull(&user, req).await
    })
    .await
}

fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState is missing from the server function's context");
        AppError::Internal
    })
}

/// Runs `work` and, if it fails, sets the response status from the error.
async fn with_status<T>(
    work: impl std::future::Future<Output = Result<T, AppError>>,
) -> Result<T, AppError> {
    let result = work.await;
    if let Err(e) = &result {
        if let Some(options) = use_context::<ResponseOptions>() {
            options.set_status(
                axum::http::StatusCode::from_u16(e.status())
                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            );
        }
    }
    result
}
