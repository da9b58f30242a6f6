//! The poke stream (`GET /api/events`) over HTTP: who may open it, what it
//! says, and the cross-instance path. Two routers over one shared store stand
//! for two server processes over one Couchbase cluster: each has its own
//! pokes and watcher, and nothing passes between them but the store.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use leptos::prelude::LeptosOptions;
use tower::ServiceExt;

use crate::client::{relaxed, unique_name, Browser, HOST, PASSWORD};
use notesync::domain::ClientId;
use notesync::server::auth::{Accounts, SESSION_COOKIE};
use notesync::server::pokes::Pokes;
use notesync::server::service::SyncService;
use notesync::server::{router, AppState};
use notesync::store::contract::create;
use notesync::store::MemoryStore;
use notesync::sync::merge::Strategy;
use notesync::sync::protocol::{Change, PushRequest, PushResponse, PROTOCOL_VERSION};

/// One server instance over `store`; its watcher reads heads every 20 ms.
fn instance(store: &Arc<MemoryStore>) -> (Router, Arc<Pokes>) {
    let sync = SyncService::new(
        store.clone(),
        Strategy::Merge,
        Duration::from_secs(90 * 24 * 60 * 60),
    );
    let accounts = Accounts::new(store.clone(), relaxed()).expect("accounts");
    let state = AppState::new(sync, accounts);
    let pokes = Arc::clone(&state.pokes);
    Arc::clone(&pokes).spawn_watcher(Duration::from_millis(20));
    let options = LeptosOptions::builder().output_name("notesync").build();
    (router(options, state), pokes)
}

/// An open event stream, read event by event.
struct Events {
    body: Body,
    buffered: String,
}

impl Events {
    async fn open(router: &Router, cookie: Option<&str>) -> Result<Self, StatusCode> {
        let mut req = Request::get("/api/events").header(header::HOST, HOST);
        if let Some(cookie) = cookie {
            req = req.header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"));
        }
        let res = router
            .clone()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        if res.status() != StatusCode::OK {
            return Err(res.status());
        }
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/event-stream",
            "an event stream"
        );
        Ok(Self {
            body: res.into_body(),
            buffered: String::new(),
        })
    }

    /// The next event as (name, data), or `None` if none came within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<(String, String)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffered.find("\n\n") {
                let block: String = self.buffered.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}:")))
                        .map(|v| v.trim().to_string())
                        .unwrap_or_default()
                };
                return Some((field("event"), field("data")));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??
                .expect("a body frame");
            if let Ok(data) = frame.into_data() {
                self.buffered.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

/// Pushes `changes`; the highest seq stored, if any change was stored.
async fn push(browser: &Browser, changes: Vec<Change>) -> Option<u64> {
    let req = PushRequest {
        protocol: PROTOCOL_VERSION,
        client_id: ClientId::new(1_600_000_000_000, [7; 10]),
        changes,
    };
    let answer: PushResponse = browser
        .clone()
        .call("/api/push", &serde_json::json!({ "req": req }))
        .await
        .expect("push");
    answer.results.iter().filter_map(|r| r.seq()).max()
}

const SOON: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_stream_needs_a_session() {
    let (app, _) = instance(&Arc::new(MemoryStore::new()));
    assert_eq!(
        Events::open(&app, None).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        Events::open(&app, Some("forged-session-id")).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
}

#[tokio::test]
async fn a_push_on_one_instance_pokes_streams_on_both() {
    let store = Arc::new(MemoryStore::new());
    let (first, _) = instance(&store);
    let (second, second_pokes) = instance(&store);
    let mut alice = Browser::new(&first);
    alice
        .sign_up(&unique_name("poke"), PASSWORD)
        .await
        .expect("signs up");
    let cookie = alice.cookie.clone().expect("a session");

    // The session lives in the shared store, so either instance accepts it.
    let mut here = Events::open(&first, Some(&cookie)).await.expect("stream");
    let mut there = Events::open(&second, Some(&cookie)).await.expect("stream");
    assert_eq!(here.next(SOON).await.map(|e| e.0).as_deref(), Some("ready"));
    assert_eq!(
        there.next(SOON).await.map(|e| e.0).as_deref(),
        Some("ready")
    );
    assert_eq!(second_pokes.connected_users(), 1);

    let seq = push(&alice, vec![create(1, 1, "from the first instance")])
        .await
        .expect("stored");
    let expected = Some(("poke".to_string(), seq.to_string()));
    assert_eq!(here.next(SOON).await, expected, "same instance");
    assert_eq!(there.next(SOON).await, expected, "other instance");

    // Nothing new, nothing sent; a retried push changes nothing either.
    let retried = push(&alice, vec![create(1, 1, "from the first instance")]).await;
    assert_eq!(retried, None, "a duplicate");
    assert_eq!(there.next(Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn a_poke_reaches_only_its_user() {
    let store = Arc::new(MemoryStore::new());
    let (app, _) = instance(&store);
    let (alice, _) = Browser::signed_up(&app, "alice").await;
    let (bob, _) = Browser::signed_up(&app, "bob").await;
    let mut bobs = Events::open(&app, bob.cookie.as_deref())
        .await
        .expect("stream");
    assert_eq!(bobs.next(SOON).await.map(|e| e.0).as_deref(), Some("ready"));
    push(&alice, vec![create(1, 1, "alice's")]).await;
    assert_eq!(bobs.next(Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn an_idle_stream_beats_and_ends_so_the_session_is_checked_again() {
    let pokes = Pokes::new(Arc::new(MemoryStore::new()))
        .with_timings(Duration::from_millis(50), Duration::from_millis(400));
    let user = notesync::store::contract::user("idle");
    let events: Vec<_> = futures::StreamExt::collect::<Vec<_>>(pokes.stream(&user)).await;
    assert!(
        events.len() >= 5,
        "ready, several heartbeats, bye: {}",
        events.len()
    );
}
