//! The server side of the server functions in [`crate::api`]: find the state
//! and the user, call the service, and give errors their HTTP status.

use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;

use tower_sessions::Session;

use super::auth::{self, SESSION_ACCOUNT, SESSION_RENEWED};
use super::state::AppState;
use crate::api::{Account, AppError};
use crate::domain::UserId;
use crate::sync::protocol::{ChangeResult, PullRequest, PullResponse, PushRequest, PushResponse};

/// The signed-in user the request acts for, from its session cookie;
/// [`AppError::Unauthorized`] without a valid, unexpired session. Every
/// server function that touches notes goes through here, and the stores
/// scope every key by the id it returns.
pub async fn current_user() -> Result<UserId, AppError> {
    let session = session().await?;
    match session.get::<Account>(SESSION_ACCOUNT).await {
        Ok(Some(account)) => Ok(account.id),
        Ok(None) => Err(AppError::Unauthorized),
        Err(e) => {
            tracing::error!(error = %e, "reading the session failed");
            Err(AppError::Internal)
        }
    }
}

/// Refuses a request that names the account its local data belongs to
/// (`named`) when the session is someone else's: the browser's cookie now
/// belongs to another account, signed in in another tab, and acting on it
/// would move one person's notes into the other's account.
pub fn same_account(session: &UserId, named: Option<&UserId>) -> Result<(), AppError> {
    match named {
        Some(named) if named != session => Err(AppError::AccountMismatch),
        _ => Ok(()),
    }
}

async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>().await.map_err(|e| {
        tracing::error!(error = %e, "the session layer is missing");
        AppError::Internal
    })
}

fn client_address() -> Option<std::net::SocketAddr> {
    use_context::<axum::http::request::Parts>().and_then(|parts| auth::client_address(&parts))
}

/// Starts a fresh session for `account`: a new id (so a session id planted
/// before sign-in is worthless), then the account in it.
async fn start_session(account: &Account) -> Result<(), AppError> {
    let session = session().await?;
    let failed = |e: tower_sessions::session::Error| {
        tracing::error!(error = %e, "writing the session failed");
        AppError::Internal
    };
    session.cycle_id().await.map_err(failed)?;
    session
        .insert(SESSION_ACCOUNT, account)
        .await
        .map_err(failed)?;
    session
        .insert(SESSION_RENEWED, super::service::system_clock()())
        .await
        .map_err(failed)?;
    session.save().await.map_err(failed)
}

/// `sign_up` on the server.
pub async fn sign_up(name: String, password: String) -> Result<Account, AppError> {
    with_status(async {
        let state = state()?;
        let account = state
            .accounts
            .sign_up(&name, &password, client_address())
            .await?;
        start_session(&account).await?;
        Ok(account)
    })
    .await
}

/// `sign_in` on the server.
pub async fn sign_in(name: String, password: String) -> Result<Account, AppError> {
    with_status(async {
        let state = state()?;
        let account = state
            .accounts
            .sign_in(&name, &password, client_address())
            .await?;
        start_session(&account).await?;
        Ok(account)
    })
    .await
}

/// `sign_out` on the server: the session is deleted from the store.
pub async fn sign_out() -> Result<(), AppError> {
    with_status(async {
        session().await?.flush().await.map_err(|e| {
            tracing::error!(error = %e, "deleting the session failed");
            AppError::Internal
        })
    })
    .await
}

/// `sign_out_everywhere` on the server: every session of the person is
/// deleted from the store, and their streams here end at once (streams on
/// other instances end at their next session check).
pub async fn sign_out_everywhere() -> Result<(), AppError> {
    with_status(async {
        let state = state()?;
        let user = current_user().await?;
        let ended = state
            .accounts
            .store()
            .end_sessions(&user, None)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "ending the sessions failed");
                AppError::Internal
            })?;
        state.pokes.end_sessions(&user, None);
        tracing::info!(user = %user, ended, "signed out everywhere");
        session().await?.flush().await.map_err(|e| {
            tracing::error!(error = %e, "deleting the session failed");
            AppError::Internal
        })
    })
    .await
}

/// `change_password` on the server.
pub async fn change_password(current: String, new: String) -> Result<(), AppError> {
    with_status(async {
        let state = state()?;
        let session = session().await?;
        let account = match session.get::<Account>(SESSION_ACCOUNT).await {
            Ok(Some(account)) => account,
            Ok(None) => return Err(AppError::Unauthorized),
            Err(e) => {
                tracing::error!(error = %e, "reading the session failed");
                return Err(AppError::Internal);
            }
        };
        let keep = session
            .id()
            .map(|id| auth::session_key(&id))
            .ok_or(AppError::Unauthorized)?;
        let ended = state
            .accounts
            .change_password(&account, &current, &new, &keep, client_address())
            .await?;
        state.pokes.end_sessions(&account.id, Some(&keep));
        tracing::info!(user = %account.id, ended, "password changed");
        // A new id for the session that goes on, as at sign-in.
        start_session(&account).await
    })
    .await
}

/// `whoami` on the server.
pub async fn whoami() -> Result<Option<Account>, AppError> {
    with_status(async {
        session()
            .await?
            .get::<Account>(SESSION_ACCOUNT)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reading the session failed");
                AppError::Internal
            })
    })
    .await
}

/// `push` on the server.
pub async fn push(req: PushRequest) -> Result<PushResponse, AppError> {
    with_status(async {
        let state = state()?;
        let user = current_user().await?;
        same_account(&user, req.account.as_ref())?;
        let response = state.sync.push(&user, req).await?;
        if let Some(head) = response.results.iter().filter_map(ChangeResult::seq).max() {
            state.pokes.feed_moved(&user, head);
        }
        Ok(response)
    })
    .await
}

/// `pull` on the server.
pub async fn pull(req: PullRequest) -> Result<PullResponse, AppError> {
    with_status(async {
        let state = state()?;
        let user = current_user().await?;
        same_account(&user, req.account.as_ref())?;
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
