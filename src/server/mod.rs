//! The server half (ssr build only): configuration, the sync service and its
//! embedded store, the axum router and the process lifecycle.
//!
//! Server functions reach the services through Leptos context: [`router`]
//! provides the [`AppState`] to every server function (and page render) with
//! `leptos_routes_with_context`, which also mounts every registered server
//! function under `/api/`.

pub mod api;
pub mod auth;
pub mod boundary;
pub mod config;
pub mod embedded;
pub mod service;
pub mod state;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use leptos::config::get_configuration;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::compression::CompressionLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::app::{shell, App};
use crate::domain::LIMITS;
use config::Config;
use embedded::EmbeddedStore;
use service::{SyncService, PURGE_EVERY};
pub use state::AppState;

/// Builds the whole HTTP application for the given site options around
/// `state` (tests build it around a memory store or a temporary database).
pub fn router(options: LeptosOptions, state: AppState) -> Router {
    // Explicit registration keeps the server functions reachable even where
    // the linker drops `inventory`'s automatic registration (test binaries).
    leptos::server_fn::axum::register_explicit::<crate::api::Push>();
    leptos::server_fn::axum::register_explicit::<crate::api::Pull>();
    leptos::server_fn::axum::register_explicit::<crate::api::SignUp>();
    leptos::server_fn::axum::register_explicit::<crate::api::SignIn>();
    leptos::server_fn::axum::register_explicit::<crate::api::SignOut>();
    leptos::server_fn::axum::register_explicit::<crate::api::Whoami>();
    let sessions = SessionManagerLayer::new(auth::StoreSessions(state.accounts.store()))
        .with_name(auth::SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.secure_cookies)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(i64::from(
            state.session_days,
        ))));
    let routes = generate_route_list(App);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .leptos_routes_with_context(&options, routes, move || provide_context(state.clone()), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        // Server functions read their bodies under this limit; the boundary
        // answers 413 above it.
        .layer(DefaultBodyLimit::max(LIMITS.max_request_bytes))
        .layer(sessions)
        .layer(axum::middleware::from_fn(auth::origin_check))
        .layer(axum::middleware::from_fn(boundary::api_boundary))
        .layer(CompressionLayer::new())
        .with_state(options)
}

/// Opens the embedded store in the configured data directory and builds the
/// services around it: notes, users and sessions all live in it.
pub fn build_state(config: &Config) -> Result<AppState, String> {
    let store = Arc::new(EmbeddedStore::open(&config.data_dir).map_err(|e| e.to_string())?);
    let retention = Duration::from_secs(u64::from(config.tombstone_retention_days) * 24 * 60 * 60);
    let sync = SyncService::new(store.clone(), config.conflict_strategy, retention);
    let limits = auth::AttemptLimits {
        per_name_burst: config.attempts_per_name,
        per_address_burst: config.attempts_per_address,
        ..auth::AttemptLimits::default()
    };
    let accounts = auth::Accounts::new(store, limits).map_err(|e| e.to_string())?;
    Ok(AppState::new(sync, accounts).with_sessions(config.secure_cookies, config.session_days))
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run() -> ExitCode {
    let config = Config::parse_args();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "notesync=info,tower_http=warn".into()),
        )
        .init();

    let conf = match get_configuration(Some(&config.leptos_toml)) {
        Ok(conf) => conf,
        Err(e) => {
            tracing::error!("cannot read {}: {e}", config.leptos_toml);
            return ExitCode::FAILURE;
        }
    };
    let mut options = conf.leptos_options;
    if let Some(addr) = config.addr {
        options.site_addr = addr;
    }
    if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
        tracing::error!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let state = match build_state(&config) {
        Ok(state) => state,
        Err(e) => {
            tracing::error!(
                "cannot open the store in {}: {e}",
                config.data_dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    Arc::clone(&state.sync).spawn_purger(PURGE_EVERY);
    spawn_session_purger(Arc::clone(&state.accounts), PURGE_EVERY);
    let addr = options.site_addr;
    let strategy = state.sync.strategy();
    let app = router(options, state);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        %strategy,
        retention_days = config.tombstone_retention_days,
        "notesync listening"
    );
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Drops expired sessions and idle rate-limit state every `every`, so
/// neither grows with abandoned sign-ins or with every address ever seen.
fn spawn_session_purger(accounts: Arc<auth::Accounts>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            accounts.forget_idle_attempts();
            let now = service::system_clock()();
            match accounts.store().purge_sessions(now).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "expired sessions purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
