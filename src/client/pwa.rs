//! The page's side of the installable app: registers the service worker
//! (`/sw.js`, see `server::pwa`), offers a new version once one is installed,
//! and keeps an eye on storage (persistence and usage).
//!
//! Promises:
//! - a new build is offered, never forced: the new worker waits until the
//!   person chooses "Reload", and only then takes over and the page reloads;
//! - the first install takes over at once without reloading anything;
//! - updates are looked for at start, every [`UPDATE_CHECK_MS`] and whenever
//!   the tab comes back into view;
//! - persistent storage is asked for once, after the first note is saved
//!   here; usage and quota are shown and refreshed after saves.

use std::cell::Cell;

use gloo_timers::callback::{Interval, Timeout};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::ui::model::StorageUse;
use crate::ui::NotesState;

/// How often a long-open tab looks for a new build.
pub const UPDATE_CHECK_MS: u32 = 30 * 60 * 1000;
const PERSIST_ASKED_KEY: &str = "notesync.persist_asked";

thread_local! {
    /// Set when the person asked for the new version: the next change of
    /// controller reloads the page (the first install's does not).
    static RELOAD_ON_TAKEOVER: Cell<bool> = const { Cell::new(false) };
    static ESTIMATE_PENDING: Cell<bool> = const { Cell::new(false) };
}

fn service_workers() -> Option<web_sys::ServiceWorkerContainer> {
    let navigator = web_sys::window()?.navigator();
    // Absent on insecure origins and in some private modes.
    js_sys::Reflect::get(&navigator, &"serviceWorker".into())
        .ok()
        .filter(|v| !v.is_undefined())
        .map(|_| navigator.service_worker())
}

/// Registers the service worker and watches for new versions.
pub fn register(state: NotesState) {
    let Some(container) = service_workers() else {
        return;
    };
    let on_takeover = Closure::<dyn FnMut()>::new(move || {
        if RELOAD_ON_TAKEOVER.get() {
            if let Some(w) = web_sys::window() {
                let _ = w.location().reload();
            }
        }
    });
    container.set_oncontrollerchange(Some(on_takeover.as_ref().unchecked_ref()));
    on_takeover.forget();
    let options = web_sys::RegistrationOptions::new();
    options.set_scope("/");
    options.set_update_via_cache(web_sys::ServiceWorkerUpdateViaCache::None);
    let registering = container.register_with_options("/sw.js", &options);
    wasm_bindgen_futures::spawn_local(async move {
        let registration = match JsFuture::from(registering).await {
            Ok(r) => r.unchecked_into::<web_sys::ServiceWorkerRegistration>(),
            Err(e) => {
                // The app still works; it just cannot start offline.
                web_sys::console::warn_1(&format!("service worker not registered: {e:?}").into());
                return;
            }
        };
        watch_updates(state, &container, registration);
    });
}

fn watch_updates(
    state: NotesState,
    container: &web_sys::ServiceWorkerContainer,
    registration: web_sys::ServiceWorkerRegistration,
) {
    // A page already controlled by a worker is running a build; a waiting
    // worker is then a newer one.
    if container.controller().is_some() && registration.waiting().is_some() {
        state.update_ready.set(true);
    }
    // An update may have begun before this page got here.
    if let Some(installing) = registration.installing() {
        offer_once_installed(state, installing);
    }
    let watched = registration.clone();
    let on_found = Closure::<dyn FnMut()>::new(move || {
        if let Some(installing) = watched.installing() {
            offer_once_installed(state, installing);
        }
    });
    registration.set_onupdatefound(Some(on_found.as_ref().unchecked_ref()));
    on_found.forget();
    let _ = registration.update();
    let periodic = registration.clone();
    Interval::new(UPDATE_CHECK_MS, move || {
        let _ = periodic.update();
    })
    .forget();
    let _ = window_event_listener(leptos::ev::visibilitychange, move |_| {
        let visible = web_sys::window()
            .and_then(|w| w.document())
            .is_some_and(|d| !d.hidden());
        if visible {
            let _ = registration.update();
        }
    });
}

/// Offers the new version once `worker` is installed, unless it is the
/// first worker of this browser (nothing controls the page yet).
fn offer_once_installed(state: NotesState, worker: web_sys::ServiceWorker) {
    let watched = worker.clone();
    let on_state = Closure::<dyn FnMut()>::new(move || {
        let has_controller = service_workers().and_then(|c| c.controller()).is_some();
        if watched.state() == web_sys::ServiceWorkerState::Installed && has_controller {
            state.update_ready.set(true);
        }
    });
    worker.set_onstatechange(Some(on_state.as_ref().unchecked_ref()));
    on_state.forget();
}

/// The person chose the new version: let it take over, then reload.
pub fn apply_update() {
    let Some(container) = service_workers() else {
        return;
    };
    wasm_bindgen_futures::spawn_local(async move {
        let Ok(ready) = container.ready() else { return };
        let Ok(registration) = JsFuture::from(ready).await else {
            return;
        };
        let registration = registration.unchecked_into::<web_sys::ServiceWorkerRegistration>();
        match registration.waiting() {
            Some(waiting) => {
                RELOAD_ON_TAKEOVER.set(true);
                let _ = waiting.post_message(&JsValue::from_str("skip-waiting"));
            }
            None => {
                if let Some(w) = web_sys::window() {
                    let _ = w.location().reload();
                }
            }
        }
    });
}

fn storage_manager() -> Option<web_sys::StorageManager> {
    let navigator = web_sys::window()?.navigator();
    js_sys::Reflect::get(&navigator, &"storage".into())
        .ok()
        .filter(|v| !v.is_undefined())
        .map(|_| navigator.storage())
}

async fn call_bool(promise: Result<js_sys::Promise, JsValue>) -> Option<bool> {
    JsFuture::from(promise.ok()?).await.ok()?.as_bool()
}

/// Reads usage, quota and persistence into `state.storage`.
pub async fn refresh_storage(state: NotesState) {
    let Some(manager) = storage_manager() else {
        return;
    };
    let persisted = call_bool(manager.persisted()).await.unwrap_or(false);
    let Ok(estimate) = manager.estimate() else {
        return;
    };
    let Ok(estimate) = JsFuture::from(estimate).await else {
        return;
    };
    let estimate = estimate.unchecked_into::<web_sys::StorageEstimate>();
    state.storage.set(Some(StorageUse {
        usage: estimate.get_usage().unwrap_or(0.0) as u64,
        quota: estimate.get_quota().unwrap_or(0.0) as u64,
        persisted,
    }));
}

/// After a note was saved: asks once for persistent storage (so the browser
/// does not evict the notes under pressure), and refreshes the usage shown,
/// at most once a few seconds.
pub fn note_saved(state: NotesState) {
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        if storage.get_item(PERSIST_ASKED_KEY).ok().flatten().is_none() {
            let _ = storage.set_item(PERSIST_ASKED_KEY, "1");
            if let Some(manager) = storage_manager() {
                wasm_bindgen_futures::spawn_local(async move {
                    let _ = call_bool(manager.persist()).await;
                    refresh_storage(state).await;
                });
            }
        }
    }
    if ESTIMATE_PENDING.replace(true) {
        return;
    }
    Timeout::new(3_000, move || {
        ESTIMATE_PENDING.set(false);
        wasm_bindgen_futures::spawn_local(refresh_storage(state));
    })
    .forget();
}
