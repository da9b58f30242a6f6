//! The sync worker: a module web worker running the same wasm bundle.
//!
//! It owns the sync loop: the pure [`Driver`] over IndexedDB (the
//! [`LocalDb`] replica), the server functions (the transport) and this
//! worker's timers and messages (the host). It tells the page its status over
//! the typed [`crate::bridge`] and every tab that data changed over a
//! BroadcastChannel. It never touches `window`, which does not exist here.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use async_trait::async_trait;
use futures::channel::mpsc;
use futures::future::{select, Either};
use futures::StreamExt;
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use super::db::LocalDb;
use super::{now_ms, random10};
use crate::api::AppError;
use crate::bridge::{decode, encode, FromWorker, ToWorker};
use crate::domain::{ClientId, MutationId, UserId};
use crate::sync::driver::{Driver, DriverConfig, Host, PortError, Transport};
use crate::sync::engine::{Event, SyncStatus, Timing};
use crate::sync::protocol::{PullRequest, PullResponse, PushRequest, PushResponse};

/// Entries asked for per pull: large pages make an initial sync a handful of
/// round trips, each one a resumable checkpoint.
const PULL_LIMIT: u32 = 2_000;
/// Changes per push.
const PUSH_BATCH: usize = 500;
pub const CHANNEL_NAME: &str = "notesync";

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(message: &FromWorker) {
    // A failed postMessage means the page is gone; there is no one to tell.
    let _ = scope().post_message(&JsValue::from_str(&encode(message)));
}

/// The server functions, called from the worker (fetch works here).
struct ServerTransport;

fn port_error(e: AppError) -> PortError {
    if e == AppError::Unauthorized {
        post(&FromWorker::SignedOut);
    }
    PortError {
        offline: matches!(e, AppError::Unreachable(_)),
        retryable: e.is_retryable(),
        message: e.to_string(),
    }
}

#[async_trait(?Send)]
impl Transport for ServerTransport {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, PortError> {
        crate::api::push(request).await.map_err(port_error)
    }

    async fn pull(&self, request: PullRequest) -> Result<PullResponse, PortError> {
        crate::api::pull(request).await.map_err(port_error)
    }
}

/// This worker as the driver's host.
struct WorkerHost {
    events: RefCell<Option<mpsc::UnboundedReceiver<Event>>>,
    channel: Option<web_sys::BroadcastChannel>,
}

#[async_trait(?Send)]
impl Host for WorkerHost {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn random_u32(&self) -> u32 {
        let b = random10();
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    fn fresh_mutation_id(&self) -> MutationId {
        MutationId::new(now_ms(), random10())
    }

    fn online(&self) -> bool {
        scope().navigator().on_line()
    }

    async fn wait(&self, deadline: Option<u64>) -> Option<Event> {
        // Taken out for the wait so no RefCell borrow spans an await; the
        // driver is the only caller and never waits twice at once.
        let mut events = self.events.borrow_mut().take()?;
        let event = match deadline {
            None => events.next().await,
            Some(at) => {
                let ms = at.saturating_sub(now_ms()).min(u64::from(u32::MAX));
                let timer = TimeoutFuture::new(u32::try_from(ms).unwrap_or(u32::MAX));
                match select(events.next(), timer).await {
                    Either::Left((event, _)) => event,
                    Either::Right(((), _)) => None,
                }
            }
        };
        *self.events.borrow_mut() = Some(events);
        event
    }

    fn poll_event(&self) -> Option<Event> {
        self.events.borrow_mut().as_mut()?.try_recv().ok()
    }

    fn status(&self, status: &SyncStatus) {
        post(&FromWorker::Sync(status.clone()));
    }

    fn page_applied(&self, _entries: usize) {
        if let Some(channel) = &self.channel {
            let _ = channel.post_message(&JsValue::from_str("changed"));
        }
    }
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

/// Starts the worker: opens the database, answers the page, runs the sync loop.
pub fn start(user: String) {
    console_error_panic_hook::set_once();
    wasm_bindgen_futures::spawn_local(async move {
        let user = match UserId::parse(&user) {
            Ok(user) => user,
            Err(e) => {
                post(&FromWorker::Failed {
                    message: e.to_string(),
                });
                return;
            }
        };
        let db = match LocalDb::open(&user).await {
            Ok(db) => Rc::new(db),
            Err(e) => {
                post(&FromWorker::Failed {
                    message: e.to_string(),
                });
                return;
            }
        };
        let client_id = match db.client_id(|| ClientId::new(now_ms(), random10())).await {
            Ok(id) => id,
            Err(e) => {
                post(&FromWorker::Failed {
                    message: e.to_string(),
                });
                return;
            }
        };
        let (sender, receiver) = mpsc::unbounded::<Event>();
        let ticks = Rc::new(Cell::new(0u64));
        {
            let db = db.clone();
            let ticks = ticks.clone();
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let text = event.data().as_string().unwrap_or_default();
                let db = db.clone();
                let ticks = ticks.get();
                let sender = sender.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    match decode::<ToWorker>(&text) {
                        Ok(ToWorker::Ping { id }) => report(&db, ticks, Some(id)).await,
                        Ok(ToWorker::LocalChange) => {
                            let _ = sender.unbounded_send(Event::LocalChange);
                            report(&db, ticks, None).await;
                        }
                        Ok(ToWorker::Connectivity { online }) => {
                            let _ = sender.unbounded_send(Event::Connectivity { online });
                        }
                        Ok(ToWorker::SyncNow) => {
                            let _ = sender.unbounded_send(Event::Poke);
                        }
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
        // The tick: a heartbeat the page can see, independent of sync.
        {
            let ticks = ticks.clone();
            wasm_bindgen_futures::spawn_local(async move {
                loop {
                    TimeoutFuture::new(1_000).await;
                    ticks.set(ticks.get() + 1);
                }
            });
        }
        let host = WorkerHost {
            events: RefCell::new(Some(receiver)),
            channel: web_sys::BroadcastChannel::new(&format!("{CHANNEL_NAME}-{user}")).ok(),
        };
        let config = DriverConfig {
            client_id,
            timing: Timing::default(),
            pull_limit: PULL_LIMIT,
            push_batch: PUSH_BATCH,
        };
        let mut driver = Driver::new(db.as_ref(), &ServerTransport, &host, config);
        driver.run().await;
    });
}
