//! The sync worker: a module web worker running the same wasm bundle, one
//! per tab.
//!
//! Exactly one of a browser's workers for a user syncs: the one holding the
//! Web Lock `notesync-sync-{user}`. The others wait on the lock, so when the
//! leader's tab closes (or is frozen, and its page stops the worker) another
//! takes over within moments. The leader owns the sync loop: the pure
//! [`Driver`] over IndexedDB (the [`LocalDb`] replica), the server functions
//! (the transport), the live connection ([`super::live`]) and its timers.
//! It hears every tab's saved edits and sync requests, and tells every tab
//! its status and that data changed, over the user's BroadcastChannel (the
//! typed [`Broadcast`]). Every worker answers its own page's pings with the
//! local counts, and saves its page's edits ([`ToWorker::Save`]): here an
//! IndexedDB transaction commits as soon as the database is done, while the
//! page's replies wait for the page's next frame after each keystroke. It
//! never touches `window`, which does not exist here.

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

use super::db::{newly_unreadable, DbError, EditMeta, LocalDb};
use super::{now_ms, random10};
use crate::api::AppError;
use crate::bridge::{decode, encode, Broadcast, FromWorker, LiveState, ToWorker};
use crate::domain::{ClientId, MutationId, Note, UserId};
use crate::sync::driver::{Driver, DriverConfig, Host, PortError, ReplicaChange, Transport};
use crate::sync::engine::{Event, SyncStatus, Timing};

use super::{live, timings};
use crate::sync::protocol::{PullRequest, PullResponse, PushRequest, PushResponse};

/// Entries asked for per pull: large pages make an initial sync a handful of
/// round trips, each one a resumable checkpoint and one IndexedDB
/// transaction (the server's largest page).
const PULL_LIMIT: u32 = crate::sync::protocol::MAX_PULL_LIMIT;
/// The first page of a download from scratch: small, so that the first
/// screen of notes shows while the rest downloads.
const FIRST_PULL_LIMIT: u32 = 100;
/// Changes per push, the protocol's limit: each request costs a round trip
/// and three transactions whatever its size, so fewer, larger pushes send an
/// import sooner (the driver keeps each request within 8 MiB).
const PUSH_BATCH: usize = 2000;
pub const CHANNEL_NAME: &str = "notesync";

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(message: &FromWorker) {
    // A failed postMessage means the page is gone; there is no one to tell.
    let _ = scope().post_message(&JsValue::from_str(&encode(message)));
}

/// The server functions, called from the worker (fetch works here), for
/// the account whose database the worker holds: every request names it, and
/// once the server says the browser's session is someone else's, no request
/// is made again (the page stops the worker; a new one starts when the
/// account is signed in again).
struct ServerTransport {
    account: UserId,
    stopped: Cell<bool>,
}

impl ServerTransport {
    fn refused(&self, e: AppError) -> PortError {
        match e {
            AppError::Unauthorized => post(&FromWorker::SignedOut),
            AppError::AccountMismatch => {
                self.stopped.set(true);
                post(&FromWorker::WrongAccount);
            }
            _ => {}
        }
        PortError::from(e)
    }

    fn check(&self) -> Result<(), PortError> {
        if self.stopped.get() {
            return Err(PortError {
                message: AppError::AccountMismatch.to_string(),
                retryable: false,
                offline: false,
                push_limit: None,
                retry_after_ms: None,
            });
        }
        Ok(())
    }
}

#[async_trait(?Send)]
impl Transport for ServerTransport {
    async fn push(&self, mut request: PushRequest) -> Result<PushResponse, PortError> {
        self.check()?;
        request.account = Some(self.account.clone());
        let t = timings::start();
        let r = crate::api::push(request).await.map_err(|e| self.refused(e));
        timings::end("push", t);
        r
    }

    async fn pull(&self, mut request: PullRequest) -> Result<PullResponse, PortError> {
        self.check()?;
        request.account = Some(self.account.clone());
        let t = timings::start();
        let r = crate::api::pull(request).await.map_err(|e| self.refused(e));
        timings::end("pull", t);
        r
    }
}

/// The user's BroadcastChannel, as the leader uses it.
struct Channel {
    channel: Option<web_sys::BroadcastChannel>,
    last_status: RefCell<Option<SyncStatus>>,
    live: Cell<LiveState>,
}

impl Channel {
    fn send(&self, message: &Broadcast) {
        if let Some(channel) = &self.channel {
            // Fails only once the channel is closed, as the worker ends.
            let _ = channel.post_message(&JsValue::from_str(&encode(message)));
        }
    }

    fn status(&self, status: &SyncStatus) {
        *self.last_status.borrow_mut() = Some(status.clone());
        self.send(&Broadcast::Sync(status.clone()));
    }

    fn live(&self, state: LiveState) {
        self.live.set(state);
        self.send(&Broadcast::Live(state));
    }

    /// Says the current state again, for a tab that just opened.
    fn repeat(&self) {
        if let Some(status) = self.last_status.borrow().clone() {
            self.send(&Broadcast::Sync(status));
        }
        self.send(&Broadcast::Live(self.live.get()));
    }
}

/// This worker as the driver's host.
struct WorkerHost {
    events: RefCell<Option<mpsc::UnboundedReceiver<Event>>>,
    channel: Rc<Channel>,
}

#[async_trait(?Send)]
impl Host for WorkerHost {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn random_u32(&self) -> u32 {
        random_u32()
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
        self.channel.status(status);
    }

    fn replica_changed(&self, change: ReplicaChange) {
        self.channel.send(&Broadcast::Pulled {
            stored: change.stored,
            dropped: change.dropped,
            others: change.others,
            recreated: change.recreated,
        });
    }
}

/// Waits until this worker holds the browser's sync lock for `user`, which
/// it then keeps for its whole life. Without the Web Locks API it returns at
/// once: every tab then syncs, which is safe (pushes are idempotent), only
/// redundant.
async fn lead(user: &UserId) {
    let navigator = scope().navigator();
    let Ok(locks) = js_sys::Reflect::get(&navigator, &"locks".into()) else {
        return;
    };
    let request = js_sys::Reflect::get(&locks, &"request".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    let Some(request) = request else { return };
    let (granted, wait) = futures::channel::oneshot::channel::<()>();
    let granted = RefCell::new(Some(granted));
    let on_granted = Closure::<dyn FnMut(JsValue) -> js_sys::Promise>::new(move |_lock| {
        if let Some(granted) = granted.borrow_mut().take() {
            let _ = granted.send(());
        }
        // Held while this promise is pending: for the worker's whole life.
        js_sys::Promise::new(&mut |_, _| {})
    });
    let name = JsValue::from_str(&format!("{CHANNEL_NAME}-sync-{user}"));
    if request
        .call2(&locks, &name, on_granted.as_ref().unchecked_ref())
        .is_err()
    {
        return;
    }
    // The lock manager calls it later, once.
    on_granted.forget();
    let _ = wait.await;
}

fn random_u32() -> u32 {
    let b = random10();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn random_jitter() -> u32 {
    let b = random10();
    u32::from(u16::from_le_bytes([b[0], b[1]])) % 1001
}

/// Least time between two counts for the page: the browser's database counts
/// by scanning, about a millisecond per thousand notes, and every saved
/// keystroke asks; a count in the way of the next save delays it.
const REPORT_EVERY_MS: f64 = 500.0;
/// A count waits until no edit was saved for this long, so that it falls
/// in a pause of the typing rather than in front of the next keystroke's
/// save (a count of 10,000 notes holds a save back ~10 ms)...
const REPORT_QUIET_MS: f64 = 250.0;
/// ...but no longer than this after it was due: the footer still follows
/// a person who types without a pause.
const REPORT_DEFER_MAX_MS: f64 = 2_000.0;

/// Answers the page's questions about the local counts, at most every
/// [`REPORT_EVERY_MS`], in a pause of the saves: questions asked meanwhile
/// share the next answer.
struct Reporter {
    db: Rc<LocalDb>,
    ticks: Rc<Cell<u64>>,
    /// When the worker last saved an edit ([`Saver`]).
    last_save_ms: Rc<Cell<f64>>,
    due: Cell<bool>,
    due_since_ms: Cell<f64>,
    last_ms: Cell<f64>,
    reply_to: Cell<Option<u32>>,
}

impl Reporter {
    fn request(self: &Rc<Self>, reply_to: Option<u32>) {
        if reply_to.is_some() {
            self.reply_to.set(reply_to);
        }
        if self.due.replace(true) {
            return;
        }
        let now = js_sys::Date::now();
        self.due_since_ms.set(now);
        self.report_in((self.last_ms.get() + REPORT_EVERY_MS - now).max(0.0));
    }

    fn report_in(self: &Rc<Self>, wait_ms: f64) {
        let me = self.clone();
        gloo_timers::callback::Timeout::new(wait_ms as u32, move || {
            let now = js_sys::Date::now();
            let quiet_at = me.last_save_ms.get() + REPORT_QUIET_MS;
            if now < quiet_at && now < me.due_since_ms.get() + REPORT_DEFER_MAX_MS {
                me.report_in(quiet_at - now);
                return;
            }
            wasm_bindgen_futures::spawn_local(async move {
                me.due.set(false);
                me.last_ms.set(js_sys::Date::now());
                report(&me.db, me.ticks.get(), me.reply_to.take()).await;
            });
        })
        .forget();
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
    // What sync skipped as unreadable since (a pending change, say): the
    // page says so, once.
    let records = newly_unreadable();
    if !records.is_empty() {
        post(&FromWorker::Unreadable { records });
    }
}

/// Saves the page's edits, on the worker's connection (which [`LocalDb`]
/// opens again itself when the browser closed it).
struct Saver {
    db: Rc<LocalDb>,
    /// When it last saved: the [`Reporter`] keeps its counts out of the way.
    last_save_ms: Rc<Cell<f64>>,
}

impl Saver {
    async fn save(
        &self,
        note: &Note,
        base: Option<&Note>,
        mutation_id: MutationId,
        at_ms: u64,
    ) -> Result<Note, DbError> {
        let t = timings::start();
        let result = self
            .db
            .save_edit(note, base, EditMeta { mutation_id, at_ms })
            .await;
        timings::end("worker: save an edit", t);
        self.last_save_ms.set(js_sys::Date::now());
        result
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
        let (wake_live, wake) = mpsc::unbounded::<()>();
        let leader = Rc::new(Cell::new(false));
        let ticks = Rc::new(Cell::new(0u64));
        // One channel object for the worker's whole life: a context hears
        // every other object on the channel, its own included, but not
        // the one that sent.
        let channel = Rc::new(Channel {
            channel: web_sys::BroadcastChannel::new(&format!("{CHANNEL_NAME}-{user}")).ok(),
            last_status: RefCell::new(None),
            live: Cell::new(LiveState::Unknown),
        });
        let worker_id = random_u32();
        let last_save_ms = Rc::new(Cell::new(0.0));
        let reporter = Rc::new(Reporter {
            db: db.clone(),
            ticks: ticks.clone(),
            last_save_ms: last_save_ms.clone(),
            due: Cell::new(false),
            due_since_ms: Cell::new(0.0),
            last_ms: Cell::new(0.0),
            reply_to: Cell::new(None),
        });
        let saver = Rc::new(Saver {
            db: db.clone(),
            last_save_ms,
        });
        {
            let sender = sender.clone();
            let wake_live = wake_live.clone();
            let leader = leader.clone();
            let channel = channel.clone();
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let text = event.data().as_string().unwrap_or_default();
                let reporter = reporter.clone();
                let saver = saver.clone();
                let channel = channel.clone();
                // Only the leader syncs; a follower's page reaches the leader
                // over the channel.
                let sender = leader.get().then(|| sender.clone());
                let wake_live = wake_live.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let send = |event: Event| {
                        if let Some(sender) = &sender {
                            let _ = sender.unbounded_send(event);
                        }
                    };
                    match decode::<ToWorker>(&text) {
                        Ok(ToWorker::Ping { id }) => reporter.request(Some(id)),
                        Ok(ToWorker::LocalChange) => {
                            send(Event::LocalChange);
                            reporter.request(None);
                        }
                        Ok(ToWorker::Connectivity { online }) => {
                            send(Event::Connectivity { online });
                            if online {
                                let _ = wake_live.unbounded_send(());
                            }
                        }
                        Ok(ToWorker::SyncNow) => {
                            send(Event::Poke);
                            let _ = wake_live.unbounded_send(());
                        }
                        Ok(ToWorker::Timings { on }) => timings::set_enabled(on),
                        Ok(ToWorker::Save {
                            id,
                            note,
                            base,
                            mutation_id,
                            at_ms,
                        }) => {
                            let result =
                                saver.save(&note, base.as_deref(), mutation_id, at_ms).await;
                            let saved = result.is_ok();
                            post(&FromWorker::Saved { id, result });
                            if saved {
                                // Said here, at once, rather than by the page
                                // once it heard the answer (after its next
                                // frame), and once: to this worker's sync
                                // loop if it leads, else to the leader and
                                // to the other tabs over the channel.
                                send(Event::LocalChange);
                                channel.send(&Broadcast::Changed {
                                    local: true,
                                    notes: Some(vec![note.id]),
                                    saved_by: Some(worker_id),
                                });
                                reporter.request(None);
                            }
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
            worker: worker_id,
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
        post(&FromWorker::Role { leader: false });
        lead(&user).await;
        leader.set(true);
        post(&FromWorker::Role { leader: true });
        hear_tabs(&channel, &sender, &wake_live);
        {
            let sender = sender.clone();
            let reporter = channel.clone();
            let report: Rc<dyn Fn(LiveState)> = Rc::new(move |state| reporter.live(state));
            let url = live::events_url(&user);
            wasm_bindgen_futures::spawn_local(live::run(url, sender, report, wake, random_jitter));
        }
        let host = WorkerHost {
            events: RefCell::new(Some(receiver)),
            channel,
        };
        let config = DriverConfig {
            client_id,
            timing: Timing::default(),
            pull_limit: PULL_LIMIT,
            first_pull_limit: FIRST_PULL_LIMIT,
            push_batch: PUSH_BATCH,
        };
        let transport = ServerTransport {
            account: user.clone(),
            stopped: Cell::new(false),
        };
        let mut driver = Driver::new(db.as_ref(), &transport, &host, config);
        driver.run().await;
    });
}

/// The leader hears every tab: saved edits, sync requests, and tabs that
/// opened and want the current state.
fn hear_tabs(
    channel: &Rc<Channel>,
    sender: &mpsc::UnboundedSender<Event>,
    wake_live: &mpsc::UnboundedSender<()>,
) {
    let Some(port) = &channel.channel else { return };
    let sender = sender.clone();
    let wake_live = wake_live.clone();
    let repeater = channel.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let text = event.data().as_string().unwrap_or_default();
        match decode::<Broadcast>(&text) {
            Ok(Broadcast::Changed { local: true, .. }) => {
                let _ = sender.unbounded_send(Event::LocalChange);
            }
            Ok(Broadcast::SyncNow) => {
                let _ = sender.unbounded_send(Event::Poke);
                let _ = wake_live.unbounded_send(());
            }
            Ok(Broadcast::StateWanted) => repeater.repeat(),
            // What the leader itself says, or news from an older build.
            Ok(
                Broadcast::Changed { local: false, .. }
                | Broadcast::Pulled { .. }
                | Broadcast::Sync(_)
                | Broadcast::Live(_),
            )
            | Err(_) => {}
        }
    });
    port.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
}
