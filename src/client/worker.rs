//! The sync worker: a module web worker running the same wasm bundle.
//!
//! It owns the background loop (a `gloo-timers` tick), keeps its own handle on
//! IndexedDB, and answers the page over the typed [`crate::bridge`]. The sync
//! protocol plugs into this loop; the worker never touches `window`, which does
//! not exist here.

use std::cell::Cell;
use std::rc::Rc;

use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use super::db::LocalDb;
use crate::bridge::{decode, encode, FromWorker, ToWorker};

/// How often the loop wakes when nothing else wakes it.
const TICK_MS: u32 = 1_000;
/// Every this many ticks the worker reports unasked, so the page's view of it
/// stays fresh even when nothing is edited.
const REPORT_EVERY_TICKS: u64 = 5;

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(message: &FromWorker) {
    // A failed postMessage means the page is gone; there is no one to tell.
    let _ = scope().post_message(&JsValue::from_str(&encode(message)));
}

async fn report(db: &LocalDb, ticks: u64, reply_to: Option<u32>) {
    match db.counts().await {
        Ok((notes, pending)) => post(&FromWorker::Status {
            reply_to,
            ticks,
            notes,
            pending,
        }),
        Err(e) => post(&FromWorker::Failed {
            message: e.to_string(),
        }),
    }
}

/// Starts the worker: opens the database, then runs the tick loop forever.
pub fn start() {
    console_error_panic_hook::set_once();
    wasm_bindgen_futures::spawn_local(async {
        let db = match LocalDb::open().await {
            Ok(db) => Rc::new(db),
            Err(e) => {
                post(&FromWorker::Failed {
                    message: e.to_string(),
                });
                return;
            }
        };
        let ticks = Rc::new(Cell::new(0u64));
        {
            let db = db.clone();
            let ticks = ticks.clone();
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let text = event.data().as_string().unwrap_or_default();
                let db = db.clone();
                let ticks = ticks.get();
                wasm_bindgen_futures::spawn_local(async move {
                    match decode::<ToWorker>(&text) {
                        Ok(ToWorker::Ping { id }) => report(&db, ticks, Some(id)).await,
                        Ok(ToWorker::LocalChange) => report(&db, ticks, None).await,
                        Err(e) => post(&FromWorker::Failed {
                            message: e.to_string(),
                        }),
                    }
                });
            });
            scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            // The handler lives as long as the worker.
            on_message.forget();
        }
        post(&FromWorker::Ready {
            schema_version: db.schema_version(),
        });
        loop {
            TimeoutFuture::new(TICK_MS).await;
            ticks.set(ticks.get() + 1);
            if ticks.get().is_multiple_of(REPORT_EVERY_TICKS) {
                report(&db, ticks.get(), None).await;
            }
        }
    });
}
