//! The server half (ssr build only): configuration, the axum router and the
//! process lifecycle. Server functions and stores plug in here.

pub mod config;

use std::process::ExitCode;

use axum::routing::get;
use axum::Router;
use leptos::config::get_configuration;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::compression::CompressionLayer;

use crate::app::{shell, App};
use config::Config;

/// Builds the whole HTTP application for the given site options.
pub fn router(options: LeptosOptions) -> Router {
    let routes = generate_route_list(App);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .leptos_routes(&options, routes, {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .layer(CompressionLayer::new())
        .with_state(options)
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
    let addr = options.site_addr;
    let app = router(options);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "notesync listening");
    let served = axum::serve(listener, app.into_make_service())
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
