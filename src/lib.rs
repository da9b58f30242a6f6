//! notesync: offline-first notes. The browser's IndexedDB holds the primary
//! copy; a web worker synchronises it with the server (an embedded store by
//! default, Couchbase for deployments that grow past one machine).
//!
//! Module map (DESIGN §2): `domain` and `sync` are pure and compiled
//! everywhere; `bridge` is the typed UI↔worker message set; `ui` holds the
//! components; `server` exists only in the ssr build and `client` only in the
//! hydrate (wasm) build.

#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod bridge;
pub mod domain;
pub mod markdown;
pub mod search;
pub mod store;
pub mod sync;
pub mod transfer;
pub mod ui;
pub mod wire;

#[cfg(feature = "hydrate")]
pub mod client;
#[cfg(feature = "ssr")]
pub mod server;

/// Browser entry point, called by the hydration script Leptos puts in the page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    client::hydrate();
}

/// Web worker entry point, called by `public/worker.js` in the same bundle.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn worker_main(user: String) {
    client::worker::start(user);
}
