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
use notesync::store::contract::{create, edit};
use notesync::store::MemoryStore;
use notesync::sync::merge::Strategy;
use notesync::sync::protocol::{
    Change, ChangeOp, Checkpoint, Poke, PushRequest, PushResponse, PROTOCOL_VERSION,
};

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
pub(crate) struct Events {
    body: Body,
    buffered: String,
}

impl Events {
    pub(crate) async fn open(router: &Router, cookie: Option<&str>) -> Result<Self, StatusCode> {
        Self::open_for(router, cookie, None).await
    }

    /// A stream asked for as the browser does, naming the `account` its
    /// local data belongs to.
    async fn open_for(
        router: &Router,
        cookie: Option<&str>,
        account: Option<&str>,
    ) -> Result<Self, StatusCode> {
        let uri = match account {
            Some(account) => format!("/api/events?account={account}"),
            None => "/api/events".to_string(),
        };
        let mut req = Request::get(uri).header(header::HOST, HOST);
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

    /// The events of a response's body.
    pub(crate) fn from_body(body: Body) -> Self {
        Self {
            body,
            buffered: String::new(),
        }
    }

    /// The next event as (name, data), or `None` if none came within `wait`.
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<(String, String)> {
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
        account: None,
    };
    let answer: PushResponse = browser
        .clone()
        .call("/api/push", &serde_json::json!({ "req": req }))
        .await
        .expect("push");
    answer.results.iter().filter_map(|r| r.seq()).max()
}

const SOON: Duration = Duration::from_secs(5);

/// The next event, which must be a poke, decoded.
async fn next_poke(events: &mut Events) -> Poke {
    let (name, data) = events.next(SOON).await.expect("an event");
    assert_eq!(name, "poke", "a poke: {data}");
    serde_json::from_str(&data).unwrap_or_else(|e| panic!("a poke's JSON ({e}): {data}"))
}

/// The bodies of the notes a poke carries, in feed order.
fn carried(poke: &Poke) -> Vec<String> {
    poke.changes
        .as_ref()
        .expect("the poke carries its changes")
        .entries
        .iter()
        .map(|e| e.note.body.clone())
        .collect()
}

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
    for (poke, instance) in [
        (next_poke(&mut here).await, "same instance"),
        (next_poke(&mut there).await, "other instance"),
    ] {
        assert_eq!(poke.seq, seq, "{instance}");
        // The stream opened at the empty feed: the poke carries the note.
        assert_eq!(carried(&poke), ["from the first instance"], "{instance}");
        let changes = poke.changes.expect("changes");
        assert_eq!(
            (changes.since, changes.checkpoint),
            (Checkpoint(0), Checkpoint(seq))
        );
    }

    // Nothing new, nothing sent; a retried push changes nothing either.
    let retried = push(&alice, vec![create(1, 1, "from the first instance")]).await;
    assert_eq!(retried, None, "a duplicate");
    assert_eq!(there.next(Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn a_poke_carries_the_changes_since_the_streams_previous_poke_when_few() {
    let (app, _) = instance(&Arc::new(MemoryStore::new()));
    let (alice, _) = Browser::signed_up(&app, "few").await;
    let before = push(&alice, vec![create(1, 1, "before the stream")])
        .await
        .expect("stored");
    let mut stream = Events::open(&app, alice.cookie.as_deref())
        .await
        .expect("stream");
    assert_eq!(
        stream.next(SOON).await,
        Some(("ready".to_string(), before.to_string()))
    );

    let first = push(
        &alice,
        vec![edit(2, 1, 1, Some("before the stream"), "one")],
    )
    .await
    .expect("stored");
    let poke = next_poke(&mut stream).await;
    assert_eq!(carried(&poke), ["one"], "only what came after `ready`");
    assert_eq!(
        poke.changes.as_ref().map(|c| c.since),
        Some(Checkpoint(before))
    );

    let second = push(&alice, vec![create(3, 2, "two"), create(4, 3, "three")])
        .await
        .expect("stored");
    let poke = next_poke(&mut stream).await;
    assert_eq!(carried(&poke), ["two", "three"]);
    let changes = poke.changes.expect("changes");
    assert_eq!(changes.since, Checkpoint(first));
    assert_eq!(changes.checkpoint, Checkpoint(second));
    // What a replica that applied the first poke would have pulled.
    let pulled = changes.page_from(Checkpoint(first)).expect("covers it");
    assert!(
        matches!(pulled, notesync::sync::protocol::PullResponse::Page { ref entries, has_more: false, .. } if entries.len() == 2)
    );
    assert_eq!(
        changes.page_from(Checkpoint(before)),
        None,
        "a replica behind `since`"
    );
    assert_eq!(changes.page_from(Checkpoint(second)), None, "nothing new");

    // More notes than a poke carries: the head only, and the browser pulls.
    let many: Vec<Change> = (0..=200u8)
        .map(|n| create(100 + u32::from(n), n.wrapping_add(4), "one of many"))
        .collect();
    let last = push(&alice, many).await.expect("stored");
    let poke = next_poke(&mut stream).await;
    assert_eq!((poke.seq, poke.changes), (last, None));

    // Few notes, but too many bytes: the head only.
    let big = "x".repeat(200 * 1024);
    let large = push(
        &alice,
        (0..3u8)
            .map(|n| create(500 + u32::from(n), 220 + n, &big))
            .collect(),
    )
    .await
    .expect("stored");
    let poke = next_poke(&mut stream).await;
    assert_eq!((poke.seq, poke.changes), (large, None));

    // Deletes travel as tombstones, like any pull.
    push(
        &alice,
        vec![Change {
            op: ChangeOp::Delete,
            ..edit(400, 2, 1, None, "")
        }],
    )
    .await
    .expect("stored");
    let poke = next_poke(&mut stream).await;
    let changes = poke.changes.expect("a delete is one change");
    assert_eq!(changes.since, Checkpoint(large));
    assert!(changes.entries[0].note.deleted);
}

#[tokio::test]
async fn a_stream_ends_when_its_session_does() {
    let (app, _) = instance(&Arc::new(MemoryStore::new()));
    let (mut phone, account) = Browser::signed_up(&app, "gone").await;
    let mut laptop = Browser::new(&app);
    laptop
        .sign_in(&account.name, PASSWORD)
        .await
        .expect("signs in");
    let mut stream = Events::open(&app, phone.cookie.as_deref())
        .await
        .expect("stream");
    assert_eq!(
        stream.next(SOON).await.map(|e| e.0).as_deref(),
        Some("ready")
    );
    phone
        .call::<()>("/api/sign_out", &serde_json::json!({}))
        .await
        .expect("signs out");
    push(
        &laptop,
        vec![create(1, 1, "written after the phone signed out")],
    )
    .await;
    // Not a word of the note: the stream says goodbye and ends.
    assert_eq!(
        stream.next(SOON).await,
        Some(("bye".to_string(), "signed out".to_string()))
    );
    assert_eq!(stream.next(Duration::from_millis(300)).await, None);
    assert_eq!(
        Events::open(&app, phone.cookie.as_deref()).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
}

#[tokio::test]
async fn a_stream_naming_another_account_than_the_sessions_is_refused() {
    // A tab of alice's in a browser that bob signed in to since.
    let store = Arc::new(MemoryStore::new());
    let (app, _) = instance(&store);
    let (_, alice) = Browser::signed_up(&app, "alice").await;
    let (bob, bobs_account) = Browser::signed_up(&app, "bob").await;
    assert_eq!(
        Events::open_for(&app, bob.cookie.as_deref(), Some(alice.id.as_str()))
            .await
            .err(),
        Some(StatusCode::CONFLICT)
    );
    let mut own = Events::open_for(&app, bob.cookie.as_deref(), Some(bobs_account.id.as_str()))
        .await
        .expect("a stream for the session's own account");
    assert_eq!(own.next(SOON).await.map(|e| e.0).as_deref(), Some("ready"));
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
    let store = Arc::new(MemoryStore::new());
    let pokes = Arc::new(
        Pokes::new(store.clone(), store)
            .with_timings(Duration::from_millis(50), Duration::from_millis(400)),
    );
    let user = notesync::store::contract::user("idle");
    let events: Vec<_> = futures::StreamExt::collect::<Vec<_>>(pokes.stream(
        &user,
        "a session".into(),
        "127.0.0.1".into(),
        0,
    ))
    .await;
    assert!(
        events.len() >= 5,
        "ready, several heartbeats, bye: {}",
        events.len()
    );
}
