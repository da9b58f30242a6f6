//! The server half (ssr build only): configuration, the sync service and its
//! stores (embedded redb, or Couchbase through the KV store's adapter), the
//! axum router and the process lifecycle.
//!
//! Server functions reach the services through Leptos context: [`router`]
//! provides the [`AppState`] to every server function (and page render) with
//! `leptos_routes_with_context`, which also mounts every registered server
//! function under `/api/`.

pub mod api;
pub mod auth;
pub mod boundary;
pub mod config;
pub mod couchbase;
pub mod embedded;
pub mod inspect;
pub mod limits;
pub mod pokes;
pub mod pwa;
pub mod respond;
pub mod service;
pub mod state;

use std::future::IntoFuture;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use leptos::config::get_configuration;
use leptos::prelude::*;
use leptos_axum::{AxumRouteListing, LeptosRoutes};
use tower_http::compression::CompressionLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use thiserror::Error;

use crate::app::{shell, PageRoute};
use crate::domain::LIMITS;
use crate::store::kv::{KvConfig, KvSyncStore};
use crate::store::{AccountStore, StoreError, SyncStore};
use config::{Config, MissingSetting, StoreKind};
use couchbase::{ConnectError, CouchbaseKv};
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
    leptos::server_fn::axum::register_explicit::<crate::api::SignOutEverywhere>();
    leptos::server_fn::axum::register_explicit::<crate::api::ChangePassword>();
    let sessions = SessionManagerLayer::new(auth::StoreSessions(state.accounts.store()))
        .with_name(auth::SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.secure_cookies)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(i64::from(
            state.session_days,
        ))));
    let routes = PageRoute::served_paths()
        .map(|path| {
            AxumRouteListing::new(
                path.to_string(),
                leptos_router::SsrMode::default(),
                [leptos_router::Method::Get],
                Vec::new(),
            )
        })
        .collect();
    let service_worker = Arc::new(pwa::ServiceWorker::new(
        std::path::Path::new(&*options.site_root),
        &options.site_pkg_dir,
        &options.output_name,
    ));
    let pokes = Arc::clone(&state.pokes);
    let protection = Arc::clone(&state.protection);
    let boundary_state = state.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(
            Router::new()
                .route("/sw.js", get(pwa::script))
                .with_state(service_worker),
        )
        .merge(
            Router::new()
                .route("/api/events", get(pokes::events))
                .with_state(pokes),
        )
        .leptos_routes_with_context(&options, routes, move || page_context(&state), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        // Layers run from the last added inwards: the cheapest refusals
        // first, and no body is read before the session is known.
        // Server functions read their bodies under this limit; the boundary
        // answers 413 above each endpoint's own.
        .layer(DefaultBodyLimit::max(LIMITS.max_request_bytes))
        .layer(axum::middleware::from_fn_with_state(
            boundary_state,
            boundary::api_boundary,
        ))
        .layer(sessions)
        .layer(axum::middleware::from_fn(auth::origin_check))
        .layer(axum::middleware::from_fn_with_state(
            protection,
            limits::in_flight,
        ))
        .layer(CompressionLayer::new())
        .with_state(options)
}

/// What a page render reads from context: the services, and which page the
/// request's path names (leptos_axum has provided the request's parts).
fn page_context(state: &AppState) {
    provide_context(state.clone());
    let route = use_context::<axum::http::request::Parts>().map_or(PageRoute::NotFound, |parts| {
        PageRoute::of_path(parts.uri.path())
    });
    provide_context(route);
}

/// Why the server could not open its store.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error("cannot create the data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error("cannot open the embedded store: {0}")]
    Embedded(#[from] StoreError),
    #[error(transparent)]
    Setting(#[from] MissingSetting),
    #[error("cannot use Couchbase: {0}")]
    Couchbase(#[from] ConnectError),
    #[error("cannot set up accounts: {0}")]
    Accounts(crate::api::AppError),
}

/// Opens the configured store (the embedded one in the data directory, or
/// Couchbase) and builds the services around it: notes, users and sessions
/// all live in that one store.
pub async fn build_state(config: &Config) -> Result<AppState, BuildError> {
    let retention = Duration::from_secs(u64::from(config.tombstone_retention_days) * 24 * 60 * 60);
    let (store, accounts): (Arc<dyn SyncStore>, Arc<dyn AccountStore>) = match config.store {
        StoreKind::Embedded => {
            std::fs::create_dir_all(&config.data_dir).map_err(|source| BuildError::DataDir {
                dir: config.data_dir.display().to_string(),
                source,
            })?;
            let store = Arc::new(EmbeddedStore::open(&config.data_dir)?);
            (store.clone(), store)
        }
        StoreKind::Couchbase => {
            let settings = config.couchbase.settings()?;
            let port = CouchbaseKv::connect(&settings).await?;
            let store = Arc::new(KvSyncStore::new(
                port,
                KvConfig::new(node_name(), retention),
            ));
            (store.clone(), store)
        }
    };
    let sync =
        SyncService::new(store, config.conflict_strategy, retention).with_quota(config.quota());
    let limits = auth::AttemptLimits {
        per_name_burst: config.attempts_per_name,
        per_address_burst: config.attempts_per_address,
        ..auth::AttemptLimits::default()
    };
    let accounts = auth::Accounts::new(accounts, limits).map_err(BuildError::Accounts)?;
    Ok(AppState::new(sync, accounts)
        .with_sessions(config.secure_cookies, config.session_days)
        .with_streams(config.streams())
        .with_protection(config.protection()))
}

/// This process's name in lease tokens: unique among the servers sharing a
/// cluster (process id and start time).
fn node_name() -> String {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{started:x}", std::process::id())
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
    let state = match build_state(&config).await {
        Ok(state) => state,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    Arc::clone(&state.sync).spawn_purger(PURGE_EVERY);
    Arc::clone(&state.pokes).spawn_watcher(Duration::from_millis(config.poke_watch_ms));
    spawn_session_purger(
        Arc::clone(&state.accounts),
        Arc::clone(&state.protection),
        PURGE_EVERY,
    );
    let addr = options.site_addr;
    let strategy = state.sync.strategy();
    let state_pokes = Arc::clone(&state.pokes);
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
        store = ?config.store,
        data_dir = %config.data_dir.display(),
        %strategy,
        retention_days = config.tombstone_retention_days,
        "notesync listening"
    );
    let pokes = Arc::clone(&state_pokes);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stopped.await;
    })
    .into_future();
    let mut serving = tokio::spawn(serving);
    tokio::select! {
        served = &mut serving => return exit_code(served),
        () = shutdown_signal() => {}
    }
    // Event streams never end by themselves: end them, so the graceful
    // shutdown has only the requests under way to wait for, and give those
    // a bounded time.
    tracing::info!("stopping");
    pokes.shutdown();
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, serving).await {
        Ok(served) => exit_code(served),
        Err(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still under way at the end of the grace time were dropped");
            ExitCode::SUCCESS
        }
    }
}

/// How long a stopping server waits for the requests under way.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1_500);

fn exit_code(served: Result<std::io::Result<()>, tokio::task::JoinError>) -> ExitCode {
    match served {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            tracing::error!("server failed: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!("server task failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Drops expired sessions and idle rate-limit state every `every`, so
/// neither grows with abandoned sign-ins or with every address ever seen.
fn spawn_session_purger(
    accounts: Arc<auth::Accounts>,
    protection: Arc<limits::Protection>,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            accounts.forget_idle_attempts();
            protection.forget_idle();
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
