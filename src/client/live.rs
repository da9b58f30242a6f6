//! The live connection: the sync leader's one server-sent-event stream
//! (`/api/events`) for the whole browser, however many tabs are open. It
//! names the account whose database the leader holds ([`events_url`]): a
//! browser signed in as someone else since is refused, and never hears of
//! their notes.
//!
//! Promises:
//! - a `poke` from the server becomes [`Event::Changes`] when it carries the
//!   changes since the previous one (the driver applies them if they cover
//!   its checkpoint, and pulls otherwise), and [`Event::Poke`] (pull now)
//!   when it carries only the head or cannot be read;
//! - every (re)connection becomes [`Event::Live`] `connected: true`, which
//!   pulls at once, so nothing that moved while it was down is missed; a
//!   drop becomes `connected: false`, which brings the short poll back;
//! - a connection that errs, or says nothing for three of the server's
//!   heartbeat intervals (each `heartbeat` says its interval; [`SILENCE_MS`]
//!   before the first), is closed and retried after a capped, jittered
//!   backoff; a wake-up (the browser came online, a person asked to sync)
//!   retries at once;
//! - a stream the server ends with `bye` (its session ended, or it lasted
//!   its time) reconnects at once, without a backoff;
//! - every state change is reported, so every tab can show it.

use std::rc::Rc;

use futures::channel::mpsc;
use futures::future::{select, Either};
use futures::StreamExt;
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::{now_ms, timings};
use crate::bridge::LiveState;
use crate::sync::engine::{backoff_delay_ms, Event};
use crate::sync::protocol::Poke;

/// Longest quiet before the connection is taken for dead, until the
/// server's first heartbeat says its interval.
pub const SILENCE_MS: u32 = 40_000;
/// Heartbeats a connection may miss before it is taken for dead.
const MISSED_BEATS: u32 = 3;
const BACKOFF_BASE_MS: u64 = 1_000;
const BACKOFF_MAX_MS: u64 = 60_000;
/// The poke stream of `account`'s database.
pub fn events_url(account: &crate::domain::UserId) -> String {
    // A user id is lower-case letters, digits, `_` and `-`: nothing to escape.
    format!("/api/events?account={account}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Signal {
    Ready,
    /// A poke's data: JSON ([`Poke`]).
    Poke(String),
    /// A heartbeat's data: the server's interval in milliseconds.
    Heartbeat(String),
    Bye,
    Error,
}

/// One open EventSource and the handlers it calls; closing drops both.
struct Connection {
    source: web_sys::EventSource,
    _handlers: Vec<Closure<dyn FnMut(web_sys::Event)>>,
}

impl Connection {
    fn open(url: &str, signals: &mpsc::UnboundedSender<Signal>) -> Result<Self, JsValue> {
        let source = web_sys::EventSource::new(url)?;
        let mut handlers = Vec::new();
        for (name, signal) in [
            ("ready", Signal::Ready),
            ("poke", Signal::Poke(String::new())),
            ("heartbeat", Signal::Heartbeat(String::new())),
            ("bye", Signal::Bye),
            ("error", Signal::Error),
        ] {
            let signals = signals.clone();
            let handler =
                Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
                    let data = || {
                        event
                            .dyn_ref::<web_sys::MessageEvent>()
                            .and_then(|m| m.data().as_string())
                            .unwrap_or_default()
                    };
                    let signal = match &signal {
                        Signal::Poke(_) => Signal::Poke(data()),
                        Signal::Heartbeat(_) => Signal::Heartbeat(data()),
                        other => other.clone(),
                    };
                    let _ = signals.unbounded_send(signal);
                });
            source.add_event_listener_with_callback(name, handler.as_ref().unchecked_ref())?;
            handlers.push(handler);
        }
        Ok(Self {
            source,
            _handlers: handlers,
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // After close() the source fires nothing, so the handlers can go.
        self.source.close();
    }
}

/// Keeps the live connection to `url` up for as long as the worker lives.
/// `events` go to the sync driver, `report` says each state change, `wake`
/// retries a waiting reconnection at once, `jitter` gives a number in
/// 0..=1000.
pub async fn run(
    url: String,
    events: mpsc::UnboundedSender<Event>,
    report: Rc<dyn Fn(LiveState)>,
    mut wake: mpsc::UnboundedReceiver<()>,
    jitter: impl Fn() -> u32,
) {
    let mut failures = 0u32;
    loop {
        report(LiveState::Connecting);
        let (signals, mut received) = mpsc::unbounded::<Signal>();
        let connection = Connection::open(&url, &signals);
        let mut connected = false;
        let mut ended_by_server = false;
        let mut silence_ms = SILENCE_MS;
        if connection.is_ok() {
            loop {
                let next = select(received.next(), TimeoutFuture::new(silence_ms)).await;
                match next {
                    Either::Left((Some(Signal::Ready), _)) => {
                        connected = true;
                        failures = 0;
                        report(LiveState::Connected);
                        let _ = events.unbounded_send(Event::Live { connected: true });
                    }
                    Either::Left((Some(Signal::Poke(data)), _)) => {
                        let t = timings::start();
                        let event = match serde_json::from_slice::<Poke>(data.as_bytes()) {
                            Ok(Poke {
                                changes: Some(changes),
                                ..
                            }) => Event::Changes(Box::new(changes)),
                            _ => Event::Poke,
                        };
                        timings::end("poke: read", t);
                        let _ = events.unbounded_send(event);
                    }
                    Either::Left((Some(Signal::Heartbeat(interval)), _)) => {
                        if let Ok(interval_ms) = interval.parse::<u32>() {
                            silence_ms = interval_ms.saturating_mul(MISSED_BEATS).max(1_000);
                        }
                    }
                    Either::Left((Some(Signal::Bye), _)) => {
                        ended_by_server = true;
                        break;
                    }
                    Either::Left((Some(Signal::Error) | None, _)) | Either::Right(_) => break,
                }
            }
        }
        drop(connection);
        if connected {
            let _ = events.unbounded_send(Event::Live { connected: false });
        }
        if ended_by_server {
            continue;
        }
        failures = failures.saturating_add(1);
        let delay = backoff_delay_ms(failures, jitter(), BACKOFF_BASE_MS, BACKOFF_MAX_MS);
        report(LiveState::Retrying {
            at_ms: now_ms().saturating_add(delay),
        });
        let timer = TimeoutFuture::new(u32::try_from(delay).unwrap_or(u32::MAX));
        // Wake-ups that came while connected are stale: drop them first.
        while wake.try_recv().is_ok() {}
        if let Either::Left((None, _)) = select(wake.next(), timer).await {
            // No one can wake us any more: keep the backoff rhythm.
            TimeoutFuture::new(u32::try_from(delay).unwrap_or(u32::MAX)).await;
        }
    }
}
