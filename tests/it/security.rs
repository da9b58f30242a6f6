//! Hostile HTTP tests (issue 5): what another user, a stranger without a
//! session, another site, a password guesser and a sender of malformed
//! input can do through the real router. One test per attack, named
//! `attack_NN_<what>`; `docs/security-tests.md` lists them all.
//!
//! Every test asserts the exact status and [`AppError`] of each refusal, and
//! that the refused request changed nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore;

use crate::client::{
    decode_error, relaxed, router_over, router_with, unique_name, Browser, HOST, ORIGIN, PASSWORD,
};
use notesync::api::{Account, AppError};
use notesync::domain::{AccountInputError, ClientId, Note, Revision, LIMITS};
use notesync::server::auth::{
    session_key, AttemptLimits, StoreSessions, SESSION_ACCOUNT, SESSION_COOKIE,
};
use notesync::server::boundary::Endpoint;
use notesync::server::embedded::EmbeddedStore;
use notesync::server::inspect::MAX_WIRE_TAGS;
use notesync::server::limits::ProtectionSettings;
use notesync::server::pokes::StreamSettings;
use notesync::store::contract::{create, delete, edit, mutation_id, note_id};
use notesync::store::{AccountStore, MemoryStore};
use notesync::sync::protocol::{
    Change, ChangeOp, ChangeResult, Checkpoint, ProtocolError, PullRequest, PullResponse,
    PushRequest, PushResponse, RejectCode, MAX_PULL_LIMIT, PROTOCOL_VERSION,
};

// ---- helpers ----

/// Every server function, with a body it accepts.
const ENDPOINTS: [&str; 6] = [
    "/api/push",
    "/api/pull",
    "/api/sign_up",
    "/api/sign_in",
    "/api/sign_out",
    "/api/whoami",
];

fn client_a() -> ClientId {
    ClientId::new(1_600_000_000_000, [4; 10])
}

fn push_req(changes: Vec<Change>) -> PushRequest {
    PushRequest {
        protocol: PROTOCOL_VERSION,
        client_id: client_a(),
        changes,
        account: None,
    }
}

fn pull_req(checkpoint: u64, limit: u32) -> PullRequest {
    PullRequest {
        protocol: PROTOCOL_VERSION,
        checkpoint: Checkpoint(checkpoint),
        limit,
        download_head: None,
        account: None,
    }
}

fn wrapped(req: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(&json!({ "req": req })).expect("serialises")
}

/// A same-origin POST of raw bytes with `b`'s cookie; `b` keeps its cookie.
async fn raw(b: &Browser, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    b.clone().send(b.request(path, body)).await
}

/// Sends `req` and expects a refusal with `status` and an error `want`
/// accepts; returns the error.
async fn refusal(
    b: &Browser,
    req: Request<Body>,
    status: StatusCode,
    want: impl Fn(&AppError) -> bool,
) -> AppError {
    let (got, body) = b.clone().send(req).await;
    assert_eq!(got, status, "{}", String::from_utf8_lossy(&body));
    let e = decode_error(&body);
    assert!(want(&e), "unexpected error {e:?}");
    e
}

fn bad_request(e: &AppError) -> bool {
    matches!(e, AppError::BadRequest(m) if !m.is_empty())
        && e.to_string().starts_with("the request is malformed: ")
}

fn is(want: AppError) -> impl Fn(&AppError) -> bool {
    move |e| *e == want
}

async fn push(b: &Browser, changes: Vec<Change>) -> Vec<ChangeResult> {
    let (status, body) = raw(b, "/api/push", wrapped(&push_req(changes))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice::<PushResponse>(&body)
        .expect("a push response")
        .results
}

async fn pull(b: &Browser, checkpoint: u64, limit: u32) -> PullResponse {
    let (status, body) = raw(b, "/api/pull", wrapped(&pull_req(checkpoint, limit))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("a pull response")
}

/// Every note `b`'s user has, from the start of their feed.
async fn notes(b: &Browser) -> Vec<Note> {
    match pull(b, 0, MAX_PULL_LIMIT).await {
        PullResponse::Page {
            entries, has_more, ..
        } => {
            assert!(!has_more);
            entries.into_iter().map(|e| e.note).collect()
        }
        PullResponse::ResyncRequired => panic!("resync from checkpoint 0"),
    }
}

async fn whoami(b: &Browser) -> Option<Account> {
    let (status, body) = raw(b, "/api/whoami", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("an account or null")
}

/// A signed-in app on a memory store.
async fn one_user() -> Browser {
    Browser::signed_up(&router_with(relaxed()), "sec").await.0
}

/// Two users of one app; A has written `n` notes.
async fn two_users(n: u8) -> (Browser, Browser) {
    let router = router_with(relaxed());
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let (b, _) = Browser::signed_up(&router, "bob").await;
    if n > 0 {
        let changes = (1..=n)
            .map(|i| create(u32::from(i), i, &format!("secret of ann {i}")))
            .collect();
        let results = push(&a, changes).await;
        assert!(results
            .iter()
            .all(|r| matches!(r, ChangeResult::Applied { .. })));
    }
    (a, b)
}

/// A still works: the router answers, and a valid push lands.
async fn still_answers(b: &Browser, m: u32) {
    let r = push(b, vec![create(m, 200, "still here")]).await;
    assert!(matches!(r[0], ChangeResult::Applied { .. }), "{r:?}");
}

fn body_text(note: &Note) -> &str {
    note.body.as_str()
}

fn session_id(b: &Browser) -> String {
    b.cookie.clone().expect("a session cookie")
}

/// The key the stores keep the session of `cookie` under.
fn stored_key(cookie: &str) -> String {
    session_key(&cookie.parse::<Id>().expect("a session id"))
}

fn with_cookie(router: &axum::Router, cookie: &str) -> Browser {
    Browser {
        router: router.clone(),
        cookie: Some(cookie.to_string()),
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

fn set_header(req: &mut Request<Body>, name: header::HeaderName, value: &str) {
    req.headers_mut()
        .insert(name, HeaderValue::from_str(value).expect("header"));
}

fn from(addr: &str, mut req: Request<Body>) -> Request<Body> {
    let addr: SocketAddr = addr.parse().expect("address");
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

fn credentials(name: &str, password: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "name": name, "password": password })).expect("serialises")
}

fn rejected(r: &ChangeResult, needle: &str) -> bool {
    matches!(r, ChangeResult::Rejected { reason, .. } if reason.contains(needle))
}

fn strict(burst: u32, per_address: u32) -> AttemptLimits {
    AttemptLimits {
        per_name_burst: burst,
        per_address_burst: per_address,
        refill: Duration::from_secs(3600),
    }
}

// ---- isolation: one user against another's notes ----

#[tokio::test]
async fn attack_01_pull_from_zero_sees_no_other_users_notes() {
    let (a, b) = two_users(5).await;
    assert_eq!(notes(&a).await.len(), 5);
    assert_eq!(
        pull(&b, 0, 100).await,
        PullResponse::Page {
            entries: vec![],
            checkpoint: Checkpoint(0),
            has_more: false,
            head: 0,
        }
    );
}

#[tokio::test]
async fn attack_02_pull_from_the_other_users_checkpoints() {
    let (a, b) = two_users(5).await;
    let seqs: Vec<u64> = match pull(&a, 0, 100).await {
        PullResponse::Page { entries, .. } => entries.iter().map(|e| e.seq).collect(),
        PullResponse::ResyncRequired => panic!("resync"),
    };
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    // Past the end of B's own (empty) feed: B must resync, and gets nothing of A's.
    for checkpoint in seqs.iter().copied().chain([0]).map(|s| s.saturating_sub(1)) {
        let answer = pull(&b, checkpoint, 100).await;
        let expected = if checkpoint == 0 {
            PullResponse::Page {
                entries: vec![],
                checkpoint: Checkpoint(0),
                has_more: false,
                head: 0,
            }
        } else {
            PullResponse::ResyncRequired
        };
        assert_eq!(answer, expected, "checkpoint {checkpoint}");
    }
}

#[tokio::test]
async fn attack_03_pull_with_huge_checkpoints_and_limits() {
    let (_a, b) = two_users(3).await;
    push(&b, vec![create(1, 100, "bob's")]).await;
    for checkpoint in [2, 3, 4, (1 << 53) - 1] {
        assert_eq!(
            pull(&b, checkpoint, u32::MAX).await,
            PullResponse::ResyncRequired,
            "checkpoint {checkpoint}"
        );
    }
    // Beyond what a browser reads back exactly: refused, as such.
    for checkpoint in [1 << 53, u64::MAX - 1, u64::MAX] {
        let (status, body) = raw(&b, "/api/pull", wrapped(&pull_req(checkpoint, u32::MAX))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "checkpoint {checkpoint}");
        let error: AppError = serde_json::from_slice(&body).expect("an AppError");
        assert!(
            matches!(error, AppError::Protocol(ProtocolError::OutOfRange { got, .. }) if got == checkpoint),
            "{error:?}"
        );
    }
    let PullResponse::Page { entries, .. } = pull(&b, 0, u32::MAX).await else {
        panic!("expected a page");
    };
    let bodies: Vec<&str> = entries.iter().map(|e| body_text(&e.note)).collect();
    assert_eq!(bodies, vec!["bob's"]);
}

#[tokio::test]
async fn attack_04_push_to_the_other_users_note_id_makes_an_own_note() {
    let (a, b) = two_users(1).await;
    // The same note id, and a fresh mutation id: B's own new note.
    let r = push(&b, vec![create(77, 1, "bob overwrites")]).await;
    assert_eq!(
        r,
        vec![ChangeResult::Applied {
            rev: Revision(1),
            seq: 1
        }]
    );
    let a_notes = notes(&a).await;
    assert_eq!(a_notes.len(), 1);
    assert_eq!(a_notes[0].id, note_id(1));
    assert_eq!(a_notes[0].body, "secret of ann 1");
    assert_eq!(a_notes[0].rev, Revision(1));
    let b_notes = notes(&b).await;
    assert_eq!(b_notes.len(), 1);
    assert_eq!(b_notes[0].body, "bob overwrites");
}

#[tokio::test]
async fn attack_05_edit_the_other_users_note_from_its_revision_and_base() {
    let (a, b) = two_users(1).await;
    // A edits to revision 2, so B can name a real, current revision.
    push(&a, vec![edit(2, 1, 1, Some("secret of ann 1"), "ann v2")]).await;
    let r = push(&b, vec![edit(3, 1, 2, Some("ann v2"), "bob was here")]).await;
    assert!(
        rejected(&r[0], "which the server does not have"),
        "{:?}",
        r[0]
    );
    let a_notes = notes(&a).await;
    assert_eq!(
        (a_notes[0].body.as_str(), a_notes[0].rev),
        ("ann v2", Revision(2))
    );
    assert!(notes(&b).await.is_empty());
}

#[tokio::test]
async fn attack_06_delete_the_other_users_note_by_id() {
    let (a, b) = two_users(2).await;
    let r = push(&b, vec![delete(10, 1, 1)]).await;
    assert!(
        rejected(&r[0], "which the server does not have"),
        "{:?}",
        r[0]
    );
    // From revision 0 the delete is B's own tombstone, nothing of A's.
    let r = push(&b, vec![delete(11, 2, 0)]).await;
    assert!(
        matches!(r[0], ChangeResult::Applied { seq: 1, .. }),
        "{r:?}"
    );
    let a_notes = notes(&a).await;
    assert_eq!(a_notes.len(), 2);
    assert!(a_notes.iter().all(|n| !n.deleted), "{a_notes:?}");
    let b_notes = notes(&b).await;
    assert_eq!(b_notes.len(), 1);
    assert!(b_notes[0].deleted);
}

#[tokio::test]
async fn attack_07_forged_client_id_of_the_other_user() {
    let (a, b) = two_users(1).await;
    // B pushes as A's client id (push_req always uses A's client id).
    let r = push(&b, vec![edit(20, 1, 1, Some("secret of ann 1"), "forged")]).await;
    assert!(
        rejected(&r[0], "which the server does not have"),
        "{:?}",
        r[0]
    );
    let r = push(&b, vec![create(21, 2, "b with a's client id")]).await;
    assert!(matches!(r[0], ChangeResult::Applied { seq: 1, .. }));
    // A's own client is unaffected: its next edit applies cleanly.
    let r = push(&a, vec![edit(22, 1, 1, Some("secret of ann 1"), "ann v2")]).await;
    assert_eq!(
        r,
        vec![ChangeResult::Applied {
            rev: Revision(2),
            seq: 2
        }]
    );
}

#[tokio::test]
async fn attack_08_reused_mutation_id_is_not_a_duplicate_for_another_user() {
    let (a, b) = two_users(1).await;
    // Mutation 1 is A's; B sends the very same change.
    let r = push(&b, vec![create(1, 1, "secret of ann 1")]).await;
    assert!(
        matches!(r[0], ChangeResult::Applied { seq: 1, .. }),
        "B must not learn that A used this mutation id: {r:?}"
    );
    assert_eq!(
        push(&a, vec![create(1, 1, "secret of ann 1")]).await,
        vec![ChangeResult::Duplicate]
    );
    assert_eq!(
        push(&b, vec![create(1, 1, "secret of ann 1")]).await,
        vec![ChangeResult::Duplicate]
    );
}

#[tokio::test]
async fn attack_09_forged_owner_fields_in_the_request_are_ignored() {
    let router = router_with(relaxed());
    let (a, account_a) = Browser::signed_up(&router, "ann").await;
    let (b, _) = Browser::signed_up(&router, "bob").await;
    let mut body = serde_json::to_value(push_req(vec![create(1, 1, "planted")])).expect("json");
    // `account` on the request is the name of the account the local data
    // belongs to, checked against the session (attack_122); in a change it
    // means nothing.
    body["changes"][0]["account"] = json!(account_a.id);
    for key in ["user", "user_id", "owner"] {
        body[key] = json!(account_a.id);
        body["changes"][0][key] = json!(account_a.id);
    }
    let (status, bytes) = raw(&b, "/api/push", wrapped(&body)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(notes(&a).await.is_empty(), "the note went to A");
    assert_eq!(notes(&b).await[0].body, "planted");
}

#[tokio::test]
async fn attack_10_other_users_note_id_answers_like_an_unknown_id() {
    let (_a, b) = two_users(1).await;
    let theirs = push(&b, vec![edit(5, 1, 1, Some("x"), "probe")]).await;
    let unknown = push(&b, vec![edit(6, 99, 1, Some("x"), "probe")]).await;
    let reason = |r: &ChangeResult, id: u8| match r {
        ChangeResult::Rejected { reason, .. } => reason.replace(&note_id(id).to_string(), "<id>"),
        other => panic!("expected a rejection, got {other:?}"),
    };
    assert_eq!(reason(&theirs[0], 1), reason(&unknown[0], 99));
}

#[tokio::test]
async fn attack_11_feed_seqs_and_revisions_start_fresh_per_user() {
    let (_a, b) = two_users(50).await;
    let r = push(&b, vec![create(1, 1, "b1"), create(2, 60, "b2")]).await;
    assert_eq!(
        r,
        vec![
            ChangeResult::Applied {
                rev: Revision(1),
                seq: 1
            },
            ChangeResult::Applied {
                rev: Revision(1),
                seq: 2
            }
        ]
    );
}

/// What B sees of the app: the answers to B's pushes and pulls.
async fn bobs_view(a_notes: u8) -> (Vec<ChangeResult>, Vec<PullResponse>) {
    let (_a, b) = two_users(a_notes).await;
    let results = push(
        &b,
        vec![
            create(1, 1, "b1"),
            create(2, 2, "b2"),
            edit(3, 1, 1, Some("b1"), "b1 v2"),
            delete(4, 2, 1),
            edit(5, 3, 4, None, "stale"),
        ],
    )
    .await;
    let mut pages = Vec::new();
    for checkpoint in [0, 1, 2, 3, 4, 5, 50, 51, (1 << 53) - 1] {
        for limit in [1, 2, 100] {
            pages.push(pull(&b, checkpoint, limit).await);
        }
    }
    (results, pages)
}

#[tokio::test]
async fn attack_12_answers_do_not_depend_on_the_other_users_notes() {
    let empty = bobs_view(0).await;
    let full = bobs_view(50).await;
    assert!(
        matches!(&empty.1[0], PullResponse::Page { entries, .. } if entries.len() == 1),
        "{:?}",
        empty.1[0]
    );
    assert_eq!(empty, full);
}

#[tokio::test]
async fn attack_13_whoami_names_only_the_own_account() {
    let router = router_with(relaxed());
    let (a, account_a) = Browser::signed_up(&router, "ann").await;
    let (b, account_b) = Browser::signed_up(&router, "bob").await;
    assert_ne!(account_a.id, account_b.id);
    assert_eq!(whoami(&a).await, Some(account_a));
    assert_eq!(whoami(&b).await, Some(account_b));
}

#[tokio::test]
async fn attack_14_signing_in_as_another_user_in_the_same_browser() {
    let router = router_with(relaxed());
    let (mut shared, _) = Browser::signed_up(&router, "ann").await;
    push(&shared, vec![create(1, 1, "ann's")]).await;
    let a_cookie = session_id(&shared);
    let bob = unique_name("bob");
    Browser::new(&router)
        .sign_up(&bob, PASSWORD)
        .await
        .expect("bob signs up");
    let account = shared.sign_in(&bob, PASSWORD).await.expect("signs in");
    assert_eq!(account.name, bob);
    assert_ne!(session_id(&shared), a_cookie);
    assert!(notes(&shared).await.is_empty(), "bob sees ann's notes");
    // A's old session id is gone with the rotation.
    let old = with_cookie(&router, &a_cookie);
    assert_eq!(whoami(&old).await, None);
}

#[tokio::test]
async fn attack_15_isolation_holds_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("opens"));
    let router = router_over(store, relaxed(), false);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let (b, _) = Browser::signed_up(&router, "bob").await;
    push(&a, vec![create(1, 1, "ann's"), create(2, 2, "ann's too")]).await;
    assert!(notes(&b).await.is_empty());
    assert_eq!(pull(&b, 1, 10).await, PullResponse::ResyncRequired);
    let r = push(&b, vec![edit(3, 1, 1, Some("ann's"), "bob's")]).await;
    assert!(rejected(&r[0], "which the server does not have"));
    let r = push(&b, vec![create(1, 1, "bob's own")]).await;
    assert_eq!(
        r,
        vec![ChangeResult::Applied {
            rev: Revision(1),
            seq: 1
        }]
    );
    let bodies: Vec<String> = notes(&a).await.into_iter().map(|n| n.body).collect();
    assert_eq!(bodies, vec!["ann's", "ann's too"]);
}

// ---- authentication ----

#[tokio::test]
async fn attack_16_push_without_a_cookie() {
    let router = router_with(relaxed());
    let anon = Browser::new(&router);
    let req = anon.request("/api/push", wrapped(&push_req(vec![create(1, 1, "x")])));
    refusal(
        &anon,
        req,
        StatusCode::UNAUTHORIZED,
        is(AppError::Unauthorized),
    )
    .await;
}

#[tokio::test]
async fn attack_17_pull_without_a_cookie() {
    let (a, _b) = two_users(2).await;
    let anon = Browser::new(&a.router);
    let req = anon.request("/api/pull", wrapped(&pull_req(0, 100)));
    refusal(
        &anon,
        req,
        StatusCode::UNAUTHORIZED,
        is(AppError::Unauthorized),
    )
    .await;
}

#[tokio::test]
async fn attack_18_whoami_without_a_cookie_is_nobody() {
    let (a, _b) = two_users(0).await;
    assert_eq!(whoami(&Browser::new(&a.router)).await, None);
    assert!(whoami(&a).await.is_some());
}

#[tokio::test]
async fn attack_19_forged_random_session_id() {
    let a = one_user().await;
    let real = session_id(&a);
    for _ in 0..20 {
        let forged = Id::default().to_string();
        assert_ne!(forged, real);
        let b = with_cookie(&a.router, &forged);
        assert_eq!(whoami(&b).await, None);
        let req = b.request("/api/pull", wrapped(&pull_req(0, 10)));
        refusal(
            &b,
            req,
            StatusCode::UNAUTHORIZED,
            is(AppError::Unauthorized),
        )
        .await;
    }
}

#[tokio::test]
async fn attack_20_syntactically_invalid_cookies() {
    let a = one_user().await;
    let real = session_id(&a);
    let long = "A".repeat(4000);
    let truncated = real[..real.len() - 1].to_string();
    let extended = format!("{real}A");
    for value in [
        "",
        "x",
        "not base64!!",
        "../../../etc/passwd",
        "\"quoted\"",
        long.as_str(),
        truncated.as_str(),
        extended.as_str(),
        "AAAAAAAAAAAAAAAAAAAAAA==",
    ] {
        let b = with_cookie(&a.router, value);
        let req = b.request("/api/push", wrapped(&push_req(vec![create(1, 1, "x")])));
        refusal(
            &b,
            req,
            StatusCode::UNAUTHORIZED,
            is(AppError::Unauthorized),
        )
        .await;
    }
    // Bytes that are not text at all.
    let mut req = Browser::new(&a.router).request("/api/pull", wrapped(&pull_req(0, 1)));
    req.headers_mut().insert(
        header::COOKIE,
        HeaderValue::from_bytes(format!("{SESSION_COOKIE}=\u{e9}\u{ff}").as_bytes())
            .expect("opaque header"),
    );
    refusal(
        &a,
        req,
        StatusCode::UNAUTHORIZED,
        is(AppError::Unauthorized),
    )
    .await;
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_21_expired_session_in_the_store() {
    let store = Arc::new(MemoryStore::new());
    let router = router_over(store.clone(), relaxed(), false);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let id = stored_key(&session_id(&a));
    assert!(whoami(&a).await.is_some(), "the session works before");
    let bytes = store
        .load_session(&id, 0)
        .await
        .expect("loads")
        .expect("the session is stored under its key");
    store
        .save_session(&id, None, &bytes, now_ms() - 1_000)
        .await
        .expect("saves");
    assert_eq!(whoami(&a).await, None);
    let req = a.request("/api/push", wrapped(&push_req(vec![create(1, 1, "x")])));
    refusal(
        &a,
        req,
        StatusCode::UNAUTHORIZED,
        is(AppError::Unauthorized),
    )
    .await;
}

#[tokio::test]
async fn attack_22_session_record_with_a_past_expiry_date() {
    let store = Arc::new(MemoryStore::new());
    let router = router_over(store.clone(), relaxed(), false);
    let (_, account) = Browser::signed_up(&router, "ann").await;
    let sessions = StoreSessions(store.clone());
    let record = |expiry: time::OffsetDateTime| Record {
        id: Id::default(),
        data: HashMap::from([(
            SESSION_ACCOUNT.to_string(),
            serde_json::to_value(&account).expect("json"),
        )]),
        expiry_date: expiry,
    };
    let now = time::OffsetDateTime::now_utc();
    let expired = record(now - time::Duration::minutes(1));
    sessions.save(&expired).await.expect("saves");
    let b = with_cookie(&router, &expired.id.to_string());
    assert_eq!(whoami(&b).await, None);
    let req = b.request("/api/pull", wrapped(&pull_req(0, 10)));
    refusal(
        &b,
        req,
        StatusCode::UNAUTHORIZED,
        is(AppError::Unauthorized),
    )
    .await;
    // The same record with a future expiry is a session: the test can fail.
    let live = record(now + time::Duration::hours(1));
    sessions.save(&live).await.expect("saves");
    let c = with_cookie(&router, &live.id.to_string());
    assert_eq!(whoami(&c).await, Some(account));
}

#[tokio::test]
async fn attack_23_signed_out_cookie_is_refused_on_replay() {
    let mut a = one_user().await;
    push(&a, vec![create(1, 1, "mine")]).await;
    let old = session_id(&a);
    a.call::<()>("/api/sign_out", &json!({}))
        .await
        .expect("signs out");
    assert_eq!(a.cookie, None, "the cookie is cleared");
    let replay = with_cookie(&a.router, &old);
    assert_eq!(whoami(&replay).await, None);
    for (path, body) in [
        ("/api/pull", wrapped(&pull_req(0, 10))),
        ("/api/push", wrapped(&push_req(vec![create(2, 2, "x")]))),
    ] {
        let req = replay.request(path, body);
        refusal(
            &replay,
            req,
            StatusCode::UNAUTHORIZED,
            is(AppError::Unauthorized),
        )
        .await;
    }
}

#[tokio::test]
async fn attack_24_planted_session_id_is_replaced_at_sign_in() {
    let router = router_with(relaxed());
    let name = unique_name("fix");
    Browser::new(&router)
        .sign_up(&name, PASSWORD)
        .await
        .expect("signs up");
    let planted = Id::default().to_string();
    let mut victim = with_cookie(&router, &planted);
    victim.sign_in(&name, PASSWORD).await.expect("signs in");
    let after = session_id(&victim);
    assert_ne!(after, planted);
    let attacker = with_cookie(&router, &planted);
    assert_eq!(whoami(&attacker).await, None);
    assert!(whoami(&victim).await.is_some());
    // Signing in again rotates again and retires the previous id.
    victim.sign_in(&name, PASSWORD).await.expect("signs in");
    assert_ne!(session_id(&victim), after);
    assert_eq!(whoami(&with_cookie(&router, &after)).await, None);
}

#[tokio::test]
async fn attack_25_session_id_is_rotated_at_sign_up() {
    let router = router_with(relaxed());
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let before = session_id(&a);
    let mut same = a.clone();
    same.sign_up(&unique_name("bob"), PASSWORD)
        .await
        .expect("signs up");
    assert_ne!(session_id(&same), before);
    assert_eq!(whoami(&with_cookie(&router, &before)).await, None);
}

#[tokio::test]
async fn attack_26_cookie_attributes_keep_scripts_and_other_sites_out() {
    let router = router_with(relaxed());
    let (mut a, account) = Browser::signed_up(&router, "ann").await;
    let headers = a.sign_in_headers(&account.name, PASSWORD).await;
    let cookie = headers
        .iter()
        .find(|h| h.starts_with(&format!("{SESSION_COOKIE}=")))
        .unwrap_or_else(|| panic!("no session cookie in {headers:?}"));
    let attributes: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for wanted in ["httponly", "samesite=lax", "path=/"] {
        assert!(
            attributes.iter().any(|a| a == wanted),
            "{wanted} missing from {cookie}"
        );
    }
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain")),
        "{cookie}"
    );
    assert!(!attributes.iter().any(|a| a == "secure"), "{cookie}");
}

#[tokio::test]
async fn attack_27_cookie_is_secure_behind_tls() {
    let router = router_over(Arc::new(MemoryStore::new()), relaxed(), true);
    let (mut a, account) = Browser::signed_up(&router, "ann").await;
    let headers = a.sign_in_headers(&account.name, PASSWORD).await;
    let cookie = headers
        .iter()
        .find(|h| h.starts_with(&format!("{SESSION_COOKIE}=")))
        .expect("a session cookie");
    assert!(
        cookie
            .split(';')
            .any(|a| a.trim().eq_ignore_ascii_case("secure")),
        "{cookie}"
    );
}

#[tokio::test]
async fn attack_28_wrong_password_and_unknown_name_answer_the_same() {
    let router = router_with(relaxed());
    let (_, account) = Browser::signed_up(&router, "ann").await;
    let anon = Browser::new(&router);
    let wrong = raw(
        &anon,
        "/api/sign_in",
        credentials(&account.name, "wrong password"),
    )
    .await;
    let unknown = raw(
        &anon,
        "/api/sign_in",
        credentials(&unique_name("nobody"), "wrong password"),
    )
    .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(decode_error(&wrong.1), AppError::BadCredentials);
    assert_eq!(wrong, unknown, "the answers differ");
}

#[tokio::test]
async fn attack_29_sign_up_with_a_taken_name() {
    let router = router_with(relaxed());
    let (_, account) = Browser::signed_up(&router, "ann").await;
    let mut other = Browser::new(&router);
    assert_eq!(
        other.sign_up(&account.name, "another password").await,
        Err((StatusCode::CONFLICT, AppError::NameTaken))
    );
    assert_eq!(other.cookie, None, "no session for a refused sign-up");
    // The original password still works; the second sign-up changed nothing.
    let mut again = Browser::new(&router);
    assert_eq!(again.sign_in(&account.name, PASSWORD).await, Ok(account));
}

#[tokio::test]
async fn attack_30_names_differing_in_case_or_spaces_are_one_account() {
    let router = router_with(relaxed());
    let name = unique_name("ann");
    let (mut first, mut second) = (Browser::new(&router), Browser::new(&router));
    let account = first.sign_up(&name, PASSWORD).await.expect("signs up");
    for variant in [
        name.to_uppercase(),
        format!("  {name}\t"),
        format!("A{}", &name[1..]),
    ] {
        assert_eq!(
            second.sign_up(&variant, PASSWORD).await,
            Err((StatusCode::CONFLICT, AppError::NameTaken)),
            "{variant:?}"
        );
        assert_eq!(
            second.sign_in(&variant, PASSWORD).await.as_ref(),
            Ok(&account)
        );
    }
}

#[tokio::test]
async fn attack_31_invalid_names_at_sign_up() {
    let router = router_with(relaxed());
    let long = "x".repeat(33);
    for name in [
        "", "ab", "-ann", ".ann", "_ann", "ann lee", "a/b", "a\\b", "ann\0", "<script>", "ann;--",
        "a@b.c", &long,
    ] {
        let mut b = Browser::new(&router);
        assert_eq!(
            b.sign_up(name, PASSWORD).await,
            Err((
                StatusCode::BAD_REQUEST,
                AppError::InvalidAccount(AccountInputError::BadName)
            )),
            "{name:?}"
        );
        assert_eq!(b.cookie, None);
    }
}

#[tokio::test]
async fn attack_32_unicode_lookalike_names() {
    let router = router_with(relaxed());
    for name in [
        "\u{430}nn",   // Cyrillic a
        "an\u{200b}n", // zero-width space
        "\u{ff41}nn",  // fullwidth a
        "ann\u{301}",  // combining acute
        "\u{202e}nna", // right-to-left override
        "\u{130}an",   // dotted capital I lower-cases to two chars
        "ann\u{feff}", // byte-order mark
        "\u{1d41a}nn", // mathematical bold a
        "ännchen",     // not ASCII
    ] {
        let mut b = Browser::new(&router);
        assert_eq!(
            b.sign_up(name, PASSWORD).await,
            Err((
                StatusCode::BAD_REQUEST,
                AppError::InvalidAccount(AccountInputError::BadName)
            )),
            "{name:?}"
        );
    }
}

#[tokio::test]
async fn attack_33_kelvin_sign_folds_into_the_existing_account() {
    // U+212A KELVIN SIGN lower-cases to ASCII 'k': it must reach the same
    // account, never a second, lookalike one.
    let router = router_with(relaxed());
    let name = unique_name("kim");
    let account = Browser::new(&router)
        .sign_up(&name, PASSWORD)
        .await
        .expect("signs up");
    let lookalike = format!("\u{212a}{}", &name[1..]);
    let mut b = Browser::new(&router);
    assert_eq!(
        b.sign_up(&lookalike, PASSWORD).await,
        Err((StatusCode::CONFLICT, AppError::NameTaken))
    );
    assert_eq!(b.sign_in(&lookalike, PASSWORD).await, Ok(account));
}

#[tokio::test]
async fn attack_34_invalid_passwords_at_sign_up() {
    let router = router_with(relaxed());
    let long = "p".repeat(257);
    let long_wide = "\u{1f600}".repeat(257);
    for password in ["", "short", "1234567", long.as_str(), long_wide.as_str()] {
        let mut b = Browser::new(&router);
        assert_eq!(
            b.sign_up(&unique_name("pw"), password).await,
            Err((
                StatusCode::BAD_REQUEST,
                AppError::InvalidAccount(AccountInputError::BadPassword)
            )),
            "{} chars",
            password.chars().count()
        );
    }
    // The bounds count characters: 8 wide characters are a valid password.
    let mut b = Browser::new(&router);
    assert!(b
        .sign_up(&unique_name("pw"), "\u{e4}".repeat(8).as_str())
        .await
        .is_ok());
}

#[tokio::test]
async fn attack_35_sign_in_with_malformed_credentials() {
    let router = router_with(relaxed());
    let (_, account) = Browser::signed_up(&router, "ann").await;
    let long = "p".repeat(8_000);
    for (name, password) in [
        ("", PASSWORD),
        (account.name.as_str(), ""),
        ("\u{430}nn", PASSWORD),
        (account.name.as_str(), long.as_str()),
    ] {
        let mut b = Browser::new(&router);
        assert_eq!(
            b.sign_in(name, password).await,
            Err((StatusCode::UNAUTHORIZED, AppError::BadCredentials)),
            "{name:?}"
        );
        assert_eq!(b.cookie, None);
    }
    // Past the sign-in's body limit: refused before it is read.
    let mut b = Browser::new(&router);
    let huge = "p".repeat(100_000);
    assert!(matches!(
        b.sign_in(&account.name, &huge).await,
        Err((StatusCode::PAYLOAD_TOO_LARGE, AppError::BadRequest(_)))
    ));
    assert_eq!(b.cookie, None);
}

#[tokio::test]
async fn attack_36_sign_up_cannot_choose_its_user_id() {
    let router = router_with(relaxed());
    let (a, account_a) = Browser::signed_up(&router, "ann").await;
    push(&a, vec![create(1, 1, "ann's")]).await;
    let mut b = Browser::new(&router);
    let body = json!({
        "name": unique_name("bob"),
        "password": PASSWORD,
        "id": account_a.id,
        "account": { "id": account_a.id, "name": account_a.name },
    });
    let account_b: Account = b.call("/api/sign_up", &body).await.expect("signs up");
    assert_ne!(account_b.id, account_a.id);
    assert_eq!(whoami(&b).await, Some(account_b));
    assert!(notes(&b).await.is_empty());
}

#[tokio::test]
async fn attack_37_password_is_compared_exactly() {
    let router = router_with(relaxed());
    let (_, account) = Browser::signed_up(&router, "ann").await;
    for guess in [
        PASSWORD.to_uppercase(),
        format!("{PASSWORD} "),
        format!(" {PASSWORD}"),
        PASSWORD[..PASSWORD.len() - 1].to_string(),
        format!("{PASSWORD}\0"),
    ] {
        assert_eq!(
            Browser::new(&router).sign_in(&account.name, &guess).await,
            Err((StatusCode::UNAUTHORIZED, AppError::BadCredentials)),
            "{guess:?}"
        );
    }
}

#[tokio::test]
async fn attack_38_sign_out_without_a_session_changes_nothing() {
    let (a, _b) = two_users(1).await;
    let mut anon = Browser::new(&a.router);
    anon.call::<()>("/api/sign_out", &json!({}))
        .await
        .expect("answers");
    let mut forged = with_cookie(&a.router, &Id::default().to_string());
    forged
        .call::<()>("/api/sign_out", &json!({}))
        .await
        .expect("answers");
    assert_eq!(notes(&a).await.len(), 1, "A is still signed in");
}

// ---- cross-site requests (CSRF) ----

/// A POST as another site's page would send it, with `b`'s cookie.
fn cross_site(b: &Browser, path: &str, origin: &str) -> Request<Body> {
    let body = match path {
        "/api/push" => wrapped(&push_req(vec![create(900, 150, "csrf")])),
        "/api/pull" => wrapped(&pull_req(0, 10)),
        "/api/sign_up" | "/api/sign_in" => credentials("csrfvictim", PASSWORD),
        _ => b"{}".to_vec(),
    };
    let mut req = b.request(path, body);
    set_header(&mut req, header::ORIGIN, origin);
    req
}

/// Expects `req` refused as cross-site; `b` keeps its session.
async fn forbidden(b: &Browser, req: Request<Body>) {
    refusal(b, req, StatusCode::FORBIDDEN, is(AppError::Forbidden)).await;
}

#[tokio::test]
async fn attack_39_cross_site_push() {
    let a = one_user().await;
    forbidden(&a, cross_site(&a, "/api/push", "http://evil.example")).await;
    assert!(notes(&a).await.is_empty(), "the push was applied");
}

#[tokio::test]
async fn attack_40_cross_site_pull() {
    let a = one_user().await;
    forbidden(&a, cross_site(&a, "/api/pull", "http://evil.example")).await;
}

#[tokio::test]
async fn attack_41_cross_site_sign_in() {
    let router = router_with(relaxed());
    let mut owner = Browser::new(&router);
    owner
        .sign_up("csrfvictim", PASSWORD)
        .await
        .expect("signs up");
    // Login CSRF: another site signs the visitor in as the attacker.
    let visitor = Browser::new(&router);
    let req = cross_site(&visitor, "/api/sign_in", "https://evil.example");
    let res = tower::ServiceExt::oneshot(router.clone(), req)
        .await
        .expect("response");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn attack_42_cross_site_sign_up() {
    let router = router_with(relaxed());
    let visitor = Browser::new(&router);
    forbidden(
        &visitor,
        cross_site(&visitor, "/api/sign_up", "http://evil.example"),
    )
    .await;
    // No account was made: the name is still free.
    let mut later = Browser::new(&router);
    assert!(later.sign_up("csrfvictim", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn attack_43_cross_site_sign_out() {
    let a = one_user().await;
    forbidden(&a, cross_site(&a, "/api/sign_out", "http://evil.example")).await;
    assert!(whoami(&a).await.is_some(), "the session was ended");
}

#[tokio::test]
async fn attack_44_cross_site_whoami() {
    let a = one_user().await;
    forbidden(&a, cross_site(&a, "/api/whoami", "http://evil.example")).await;
}

#[tokio::test]
async fn attack_45_origin_null() {
    let a = one_user().await;
    for path in ENDPOINTS {
        forbidden(&a, cross_site(&a, path, "null")).await;
    }
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_46_origin_with_the_right_host_and_another_port() {
    let a = one_user().await;
    for origin in [
        "http://notes.test:8080",
        "http://notes.test:80",
        "http://notes.test:",
    ] {
        forbidden(&a, cross_site(&a, "/api/push", origin)).await;
    }
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_47_origin_with_our_host_as_a_prefix_or_suffix() {
    let a = one_user().await;
    for origin in [
        "http://notes.test.evil.example",
        "http://evil-notes.test",
        "http://evil.notes.test",
        "http://notes.testx",
        "http://notes.test@evil.example",
        "http://evil.example/http://notes.test",
        "http://notes.test/",
        "notes.test",
        "ftp://notes.test",
        "",
    ] {
        forbidden(&a, cross_site(&a, "/api/push", origin)).await;
    }
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_48_origin_that_is_not_text() {
    let a = one_user().await;
    let mut req = cross_site(&a, "/api/push", ORIGIN);
    req.headers_mut().insert(
        header::ORIGIN,
        HeaderValue::from_bytes(b"http://notes.test\xff").expect("opaque header"),
    );
    forbidden(&a, req).await;
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_49_origin_without_a_host_header() {
    let a = one_user().await;
    let mut req = cross_site(&a, "/api/push", ORIGIN);
    req.headers_mut().remove(header::HOST);
    forbidden(&a, req).await;
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_50_no_origin_but_sec_fetch_site_cross_site() {
    let a = one_user().await;
    for path in ENDPOINTS {
        let mut req = cross_site(&a, path, ORIGIN);
        req.headers_mut().remove(header::ORIGIN);
        set_header(
            &mut req,
            header::HeaderName::from_static("sec-fetch-site"),
            "cross-site",
        );
        forbidden(&a, req).await;
    }
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_51_no_origin_and_no_sec_fetch_site_is_a_non_browser_client() {
    let a = one_user().await;
    let mut req = a.request("/api/push", wrapped(&push_req(vec![create(1, 1, "cli")])));
    req.headers_mut().remove(header::ORIGIN);
    let (status, body) = a.clone().send(req).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    // Same-site fetch metadata without Origin is allowed too.
    let mut req = a.request("/api/pull", wrapped(&pull_req(0, 10)));
    req.headers_mut().remove(header::ORIGIN);
    set_header(
        &mut req,
        header::HeaderName::from_static("sec-fetch-site"),
        "same-origin",
    );
    let (status, _) = a.clone().send(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(notes(&a).await[0].body, "cli");
}

#[tokio::test]
async fn attack_52_form_encoded_cross_site_post() {
    // A plain HTML form needs no CORS preflight; the Origin check stops it.
    let a = one_user().await;
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data",
    ] {
        let mut req = cross_site(&a, "/api/push", "http://evil.example");
        set_header(&mut req, header::CONTENT_TYPE, content_type);
        forbidden(&a, req).await;
    }
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_53_other_methods_from_another_site() {
    let a = one_user().await;
    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        let mut req = cross_site(&a, "/api/push", "http://evil.example");
        *req.method_mut() = method;
        forbidden(&a, req).await;
    }
}

#[tokio::test]
async fn attack_54_get_cannot_reach_a_server_function() {
    let a = one_user().await;
    let mut req = a.request("/api/push?req=x", Vec::new());
    *req.method_mut() = Method::GET;
    set_header(&mut req, header::ORIGIN, "http://evil.example");
    let (status, _) = a.clone().send(req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(notes(&a).await.is_empty(), "a GET changed state");
}

// ---- sign-in and sign-up rate limits ----

#[tokio::test]
async fn attack_55_password_guessing_on_one_account() {
    let router = router_with(strict(3, 1_000));
    let name = unique_name("ann");
    Browser::new(&router)
        .sign_up(&name, PASSWORD)
        .await
        .expect("signs up");
    // The sign-up does not count: sign-ups and sign-ins are limited apart.
    let mut attacker = Browser::new(&router);
    for _ in 0..3 {
        assert_eq!(
            attacker.sign_in(&name, "guess guess").await,
            Err((StatusCode::UNAUTHORIZED, AppError::BadCredentials))
        );
    }
    let Err((status, e)) = attacker.sign_in(&name, "guess guess").await else {
        panic!("signed in");
    };
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        matches!(e, AppError::TooManyAttempts(s) if (1..=3600).contains(&s)),
        "{e:?}"
    );
    assert!(e.to_string().contains("try again in"), "{e}");
    // Even the right password is refused now: guessing learns nothing.
    assert!(matches!(
        attacker.sign_in(&name, PASSWORD).await,
        Err((StatusCode::TOO_MANY_REQUESTS, AppError::TooManyAttempts(_)))
    ));
    assert_eq!(attacker.cookie, None);
    // Other names are not affected.
    assert_eq!(
        attacker.sign_in(&unique_name("other"), PASSWORD).await,
        Err((StatusCode::UNAUTHORIZED, AppError::BadCredentials))
    );
}

#[tokio::test]
async fn attack_56_password_guessing_from_many_addresses() {
    let router = router_with(strict(2, 1_000));
    let name = unique_name("ann");
    let b = Browser::new(&router);
    for (i, expected) in [
        StatusCode::UNAUTHORIZED,
        StatusCode::UNAUTHORIZED,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::TOO_MANY_REQUESTS,
    ]
    .into_iter()
    .enumerate()
    {
        let req = from(
            &format!("203.0.113.{}:4000", i + 1),
            b.request("/api/sign_in", credentials(&name, "guess guess")),
        );
        let (status, body) = b.clone().send(req).await;
        assert_eq!(status, expected, "attempt {i}");
        assert_eq!(decode_error(&body).status(), expected.as_u16());
    }
}

#[tokio::test]
async fn attack_57_many_names_from_one_address() {
    let router = router_with(strict(1_000, 3));
    let b = Browser::new(&router);
    let attempt = |addr: &str| {
        from(
            addr,
            b.request(
                "/api/sign_in",
                credentials(&unique_name("spray"), "guess guess"),
            ),
        )
    };
    for _ in 0..3 {
        let (status, _) = b.clone().send(attempt("198.51.100.7:1")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The port does not make another client.
    let (status, body) = b.clone().send(attempt("198.51.100.7:2")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(matches!(decode_error(&body), AppError::TooManyAttempts(_)));
    // Another address is not affected.
    let (status, _) = b.clone().send(attempt("198.51.100.8:1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn attack_58_sign_up_is_limited_per_name() {
    let router = router_with(strict(2, 1_000));
    let name = unique_name("ann");
    let mut b = Browser::new(&router);
    assert!(b.sign_up(&name, PASSWORD).await.is_ok());
    assert_eq!(
        Browser::new(&router).sign_up(&name, PASSWORD).await,
        Err((StatusCode::CONFLICT, AppError::NameTaken))
    );
    assert!(matches!(
        Browser::new(&router).sign_up(&name, PASSWORD).await,
        Err((StatusCode::TOO_MANY_REQUESTS, AppError::TooManyAttempts(_)))
    ));
}

#[tokio::test]
async fn attack_59_sign_up_is_limited_per_address() {
    let router = router_with(strict(1_000, 2));
    let b = Browser::new(&router);
    let attempt = |addr: &str| {
        from(
            addr,
            b.request("/api/sign_up", credentials(&unique_name("mass"), PASSWORD)),
        )
    };
    for _ in 0..2 {
        let (status, _) = b.clone().send(attempt("192.0.2.1:1")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = b.clone().send(attempt("192.0.2.1:1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(matches!(decode_error(&body), AppError::TooManyAttempts(_)));
    let (status, _) = b.clone().send(attempt("192.0.2.2:1")).await;
    assert_eq!(status, StatusCode::OK);
}

// ---- input limits and malformed input ----

#[tokio::test]
async fn attack_60_body_over_8_mib_on_every_endpoint() {
    let a = one_user().await;
    let mut big = br#"{"req":""#.to_vec();
    big.resize(LIMITS.max_request_bytes + 1, b'x');
    for path in ENDPOINTS {
        for declared in [true, false] {
            let mut req = a.request(path, big.clone());
            if !declared {
                req.headers_mut().remove(header::CONTENT_LENGTH);
            }
            let e = refusal(&a, req, StatusCode::PAYLOAD_TOO_LARGE, bad_request).await;
            let limit = if path == "/api/push" {
                "8 MiB"
            } else {
                "KiB limit"
            };
            assert!(e.to_string().contains(limit), "{path}: {e}");
        }
        // A lying Content-Length cannot sneak it in either.
        let mut req = a.request(path, big.clone());
        set_header(&mut req, header::CONTENT_LENGTH, "10");
        let (status, _) = a.clone().send(req).await;
        assert!(status.is_client_error(), "{path}: {status}");
    }
    still_answers(&a, 1).await;
}

#[tokio::test]
async fn attack_61_batch_over_the_change_limit() {
    let a = one_user().await;
    let changes: Vec<Change> = (0..=LIMITS.max_batch_changes as u32)
        .map(|m| create(m + 1, (m % 200) as u8, "x"))
        .collect();
    let req = a.request("/api/push", wrapped(&push_req(changes)));
    refusal(
        &a,
        req,
        StatusCode::PAYLOAD_TOO_LARGE,
        is(AppError::Protocol(ProtocolError::BatchTooLarge {
            got: LIMITS.max_batch_changes + 1,
            max: LIMITS.max_batch_changes,
        })),
    )
    .await;
    assert!(notes(&a).await.is_empty(), "part of the batch was applied");
}

#[tokio::test]
async fn attack_62_note_body_over_1_mib() {
    let a = one_user().await;
    let big = "x".repeat(LIMITS.max_body_bytes + 1);
    let r = push(&a, vec![create(1, 1, "ok"), create(2, 2, &big)]).await;
    assert!(matches!(r[0], ChangeResult::Applied { .. }));
    assert!(rejected(&r[1], "1 MiB"), "{:?}", r[1]);
    assert_eq!(notes(&a).await.len(), 1);
}

/// A change creating a note with this content.
fn with_content(m: u32, note: u8, title: &str, body: &str, tags: Vec<String>) -> Change {
    let mut c = create(m, note, body);
    if let ChangeOp::Upsert(draft) = &mut c.op {
        draft.title = title.to_string();
        draft.tags = tags;
    }
    c
}

#[tokio::test]
async fn attack_63_title_over_the_limit() {
    let a = one_user().await;
    let long = "t".repeat(LIMITS.max_title_bytes + 1);
    let wide = "\u{e9}".repeat(LIMITS.max_title_bytes / 2 + 1);
    let r = push(
        &a,
        vec![
            with_content(1, 1, &long, "b", vec![]),
            with_content(2, 2, &wide, "b", vec![]),
        ],
    )
    .await;
    assert!(rejected(&r[0], "title"), "{:?}", r[0]);
    assert!(rejected(&r[1], "title"), "{:?}", r[1]);
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_64_too_many_and_too_long_tags() {
    let a = one_user().await;
    let many: Vec<String> = (0..=LIMITS.max_tags).map(|i| format!("t{i}")).collect();
    let long = vec!["x".repeat(LIMITS.max_tag_chars + 1)];
    let r = push(
        &a,
        vec![
            with_content(1, 1, "t", "b", many),
            with_content(2, 2, "t", "b", long),
        ],
    )
    .await;
    assert!(rejected(&r[0], "tags"), "{:?}", r[0]);
    assert!(rejected(&r[1], "tag"), "{:?}", r[1]);
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_65_control_characters_in_title_body_and_tags() {
    let a = one_user().await;
    let r = push(
        &a,
        vec![
            with_content(1, 1, "ti\u{0}tle", "b", vec![]),
            with_content(2, 2, "t", "bo\u{1b}[2Jdy", vec![]),
            with_content(3, 3, "t", "b", vec!["ta\u{7}g".into()]),
            with_content(4, 4, "line\nbreak", "b", vec![]),
            with_content(5, 5, "t", "tabs\tand\r\nlines", vec![]),
        ],
    )
    .await;
    for (i, field) in ["title", "body", "tag"].iter().enumerate() {
        assert!(rejected(&r[i], field), "{i}: {:?}", r[i]);
    }
    assert!(rejected(&r[3], "title"), "{:?}", r[3]);
    assert!(matches!(r[4], ChangeResult::Applied { .. }), "{:?}", r[4]);
}

#[tokio::test]
async fn attack_66_oversized_base_content() {
    let a = one_user().await;
    let big = "x".repeat(LIMITS.max_body_bytes + 1);
    let r = push(&a, vec![create(1, 1, "v1")]).await;
    assert!(matches!(r[0], ChangeResult::Applied { .. }));
    let r = push(&a, vec![edit(2, 1, 1, Some(&big), "v2")]).await;
    assert!(rejected(&r[0], "1 MiB"), "{:?}", r[0]);
    assert_eq!(notes(&a).await[0].body, "v1");
}

/// A valid push body as JSON, for field-level tampering.
fn push_json() -> Value {
    json!({ "req": push_req(vec![create(1, 1, "x")]) })
}

async fn tampered(a: &Browser, path: &str, value: &Value) -> AppError {
    let req = a.request(path, serde_json::to_vec(value).expect("json"));
    refusal(a, req, StatusCode::BAD_REQUEST, bad_request).await
}

#[tokio::test]
async fn attack_67_bad_note_ids() {
    let a = one_user().await;
    let v4 = "0b8a2b64-5c1e-4d2a-9f00-1a2b3c4d5e6f";
    let upper = note_id(1).to_string().to_uppercase();
    let braces = format!("{{{}}}", note_id(1));
    let simple = note_id(1).to_string().replace('-', "");
    for id in [
        json!(v4),
        json!(upper),
        json!(braces),
        json!(simple),
        json!(""),
        json!("../../x"),
        json!(12345),
        json!(null),
        json!(["a"]),
        json!(format!("{}0", note_id(1))),
        json!("00000000-0000-0000-0000-000000000000"),
    ] {
        let mut body = push_json();
        body["req"]["changes"][0]["note_id"] = id.clone();
        let e = tampered(&a, "/api/push", &body).await;
        assert!(!e.to_string().contains("panicked"), "{id}: {e}");
    }
    assert!(notes(&a).await.is_empty());
    still_answers(&a, 1).await;
}

#[tokio::test]
async fn attack_68_bad_mutation_and_client_ids() {
    let a = one_user().await;
    for (field, value) in [
        ("mutation_id", json!("not-a-uuid")),
        (
            "mutation_id",
            json!(mutation_id(1).to_string().to_uppercase()),
        ),
        ("mutation_id", json!(0)),
    ] {
        let mut body = push_json();
        body["req"]["changes"][0][field] = value;
        tampered(&a, "/api/push", &body).await;
    }
    for value in [
        json!("0b8a2b64-5c1e-4d2a-9f00-1a2b3c4d5e6f"),
        json!(true),
        json!(""),
    ] {
        let mut body = push_json();
        body["req"]["client_id"] = value;
        tampered(&a, "/api/push", &body).await;
    }
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_69_wrong_json_types() {
    let a = one_user().await;
    let mut cases: Vec<(&str, Value)> = Vec::new();
    for (key, value) in [
        ("protocol", json!("1")),
        ("protocol", json!(-1)),
        ("protocol", json!(1.5)),
        ("changes", json!({})),
        ("changes", json!("[]")),
        ("client_id", json!({"id": 1})),
    ] {
        let mut body = push_json();
        body["req"][key] = value;
        cases.push(("/api/push", body));
    }
    for (key, value) in [
        ("base_rev", json!(-1)),
        ("base_rev", json!("1")),
        ("created_at", json!(1e300)),
        ("op", json!({"kind": "explode"})),
        ("op", json!("delete")),
        ("hlc", json!(5)),
    ] {
        let mut body = push_json();
        body["req"]["changes"][0][key] = value;
        cases.push(("/api/push", body));
    }
    for (key, value) in [
        ("checkpoint", json!(-1)),
        ("checkpoint", json!("0")),
        ("limit", json!(1.5)),
        ("limit", json!(u64::from(u32::MAX) + 1)),
        ("protocol", json!(null)),
    ] {
        let mut body = json!({ "req": pull_req(0, 10) });
        body["req"][key] = value;
        cases.push(("/api/pull", body));
    }
    cases.push(("/api/sign_in", json!({"name": 1, "password": PASSWORD})));
    cases.push(("/api/sign_up", json!({"name": "ann", "password": ["x"]})));
    cases.push(("/api/push", json!({"req": []})));
    cases.push(("/api/push", json!([1, 2, 3])));
    for (path, body) in &cases {
        tampered(&a, path, body).await;
    }
    assert!(notes(&a).await.is_empty());
    still_answers(&a, 2).await;
}

#[tokio::test]
async fn attack_70_checkpoint_past_u64() {
    let a = one_user().await;
    let body = br#"{"req":{"protocol":1,"checkpoint":18446744073709551616,"limit":10}}"#.to_vec();
    let req = a.request("/api/pull", body);
    refusal(&a, req, StatusCode::BAD_REQUEST, bad_request).await;
}

#[tokio::test]
async fn attack_71_missing_fields() {
    let a = one_user().await;
    let mut cases = vec![
        ("/api/sign_in", json!({"name": "ann"})),
        ("/api/sign_in", json!({"password": PASSWORD})),
        ("/api/sign_up", json!({"name": "ann"})),
        ("/api/sign_up", json!({})),
        ("/api/pull", json!({"req": {"protocol": 1, "limit": 10}})),
        ("/api/pull", json!({})),
        ("/api/push", json!({"req": {"protocol": 1, "changes": []}})),
    ];
    for key in [
        "mutation_id",
        "note_id",
        "base_rev",
        "op",
        "hlc",
        "created_at",
    ] {
        let mut body = push_json();
        body["req"]["changes"][0]
            .as_object_mut()
            .expect("object")
            .remove(key);
        cases.push(("/api/push", body));
    }
    for (path, body) in &cases {
        tampered(&a, path, body).await;
    }
    still_answers(&a, 1).await;
}

#[tokio::test]
async fn attack_72_unknown_protocol_version_on_pull() {
    let a = one_user().await;
    for got in [0, PROTOCOL_VERSION + 1, u32::MAX] {
        let mut req = pull_req(0, 10);
        req.protocol = got;
        let r = a.request("/api/pull", wrapped(&req));
        refusal(
            &a,
            r,
            StatusCode::BAD_REQUEST,
            is(AppError::Protocol(ProtocolError::UnsupportedVersion {
                got,
                supported: PROTOCOL_VERSION,
            })),
        )
        .await;
    }
}

/// Whether `path` takes no arguments (its body is an empty object).
fn no_arguments(path: &str) -> bool {
    matches!(path, "/api/sign_out" | "/api/whoami")
}

/// Sends `body` to `path`: functions with arguments must refuse it with a
/// 400; those without (sent signed out, so nothing is lost) ignore an
/// unknown key and answer `null` when `ignored` says the body is a JSON
/// object, else refuse it too.
async fn malformed(a: &Browser, path: &str, body: Vec<u8>, ignored: bool) {
    if body.len() > Endpoint::of_path(path).body_limit() {
        let req = a.request(path, body);
        refusal(a, req, StatusCode::PAYLOAD_TOO_LARGE, bad_request).await;
        return;
    }
    if no_arguments(path) {
        let anon = Browser::new(&a.router);
        let req = anon.request(path, body);
        if ignored {
            let (status, bytes) = anon.clone().send(req).await;
            assert_eq!(
                (status, bytes.as_slice()),
                (StatusCode::OK, &b"null"[..]),
                "{path}"
            );
        } else {
            refusal(&anon, req, StatusCode::BAD_REQUEST, bad_request).await;
        }
    } else {
        let req = a.request(path, body);
        refusal(a, req, StatusCode::BAD_REQUEST, bad_request).await;
    }
}

#[tokio::test]
async fn attack_73_deeply_nested_json() {
    let a = one_user().await;
    for path in ENDPOINTS {
        for depth in [200, 100_000] {
            let mut body = br#"{"req":"#.to_vec();
            body.extend(std::iter::repeat_n(b'[', depth));
            body.extend(std::iter::repeat_n(b']', depth));
            body.push(b'}');
            malformed(&a, path, body, true).await;
        }
        // Unbalanced: never closes.
        malformed(&a, path, vec![b'['; 100_000], false).await;
    }
    still_answers(&a, 1).await;
}

#[tokio::test]
async fn attack_74_bytes_that_are_not_utf8() {
    let a = one_user().await;
    for path in ENDPOINTS {
        malformed(&a, path, b"\xff\xfe\xfd".to_vec(), false).await;
        malformed(&a, path, b"{\"req\":\"\xc3\x28\"}".to_vec(), true).await;
        malformed(
            &a,
            path,
            b"{\"name\":\"ann\xed\xa0\x80\",\"password\":\"x\"}".to_vec(),
            true,
        )
        .await;
    }
    still_answers(&a, 1).await;
}

#[tokio::test]
async fn attack_75_empty_body() {
    let a = one_user().await;
    for path in ["/api/push", "/api/pull", "/api/sign_in", "/api/sign_up"] {
        let req = a.request(path, Vec::new());
        refusal(&a, req, StatusCode::BAD_REQUEST, bad_request).await;
    }
    still_answers(&a, 1).await;
}

#[tokio::test]
async fn attack_76_trailing_garbage_and_duplicate_keys() {
    let a = one_user().await;
    let mut trailing = wrapped(&push_req(vec![create(1, 1, "x")]));
    trailing.extend_from_slice(b"{\"req\":1}");
    let duplicate = format!(
        r#"{{"name":"{0}","name":"other","password":"{PASSWORD}"}}"#,
        unique_name("dup")
    );
    for (path, body) in [
        ("/api/push", trailing),
        ("/api/sign_up", duplicate.into_bytes()),
        (
            "/api/pull",
            br#"{"req":{"protocol":1,"checkpoint":0,"limit":1,"limit":2}}"#.to_vec(),
        ),
    ] {
        let req = a.request(path, body);
        refusal(&a, req, StatusCode::BAD_REQUEST, bad_request).await;
    }
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_77_non_json_content_types_are_read_as_json_or_refused() {
    let a = one_user().await;
    // Form encoding is not JSON: a 400, never a 500.
    let mut req = a.request("/api/sign_in", b"name=ann&password=secret123".to_vec());
    set_header(
        &mut req,
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded",
    );
    refusal(&a, req, StatusCode::BAD_REQUEST, bad_request).await;
    let mut req = a.request(
        "/api/pull",
        b"--x\r\nContent-Disposition: form-data\r\n\r\n--x--".to_vec(),
    );
    set_header(
        &mut req,
        header::CONTENT_TYPE,
        "multipart/form-data; boundary=x",
    );
    refusal(&a, req, StatusCode::BAD_REQUEST, bad_request).await;
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_78_a_refusal_is_not_turned_into_a_redirect() {
    // Browsers' HTML forms ask for text/html; the server-function layer would
    // answer them with a redirect to the Referer.
    let router = router_with(relaxed());
    let anon = Browser::new(&router);
    let mut req = anon.request("/api/push", wrapped(&push_req(vec![create(1, 1, "x")])));
    set_header(&mut req, header::ACCEPT, "text/html");
    set_header(&mut req, header::REFERER, "http://notes.test/notes");
    refusal(
        &anon,
        req,
        StatusCode::UNAUTHORIZED,
        is(AppError::Unauthorized),
    )
    .await;
}

#[tokio::test]
async fn attack_79_pull_limit_is_capped() {
    let a = one_user().await;
    let changes: Vec<Change> = (1..=3u8).map(|n| create(u32::from(n), n, "x")).collect();
    push(&a, changes).await;
    for limit in [u32::MAX, MAX_PULL_LIMIT + 1] {
        let PullResponse::Page {
            entries, has_more, ..
        } = pull(&a, 0, limit).await
        else {
            panic!("expected a page");
        };
        assert_eq!((entries.len(), has_more), (3, false));
    }
    let req = a.request("/api/pull", wrapped(&pull_req(0, 0)));
    refusal(
        &a,
        req,
        StatusCode::BAD_REQUEST,
        is(AppError::Protocol(ProtocolError::ZeroLimit)),
    )
    .await;
}

#[tokio::test]
async fn attack_80_empty_push_batch() {
    let a = one_user().await;
    let req = a.request("/api/push", wrapped(&push_req(vec![])));
    refusal(
        &a,
        req,
        StatusCode::BAD_REQUEST,
        is(AppError::Protocol(ProtocolError::EmptyBatch)),
    )
    .await;
}

#[tokio::test]
async fn attack_81_malformed_input_without_a_session_is_still_unauthorized_or_400() {
    // Without a session, every push is refused for the session before its
    // body is read, well-formed or not: never a 500.
    let router = router_with(relaxed());
    let anon = Browser::new(&router);
    let req = anon.request("/api/push", b"{\"req\":".to_vec());
    refusal(
        &anon,
        req,
        StatusCode::UNAUTHORIZED,
        is(AppError::Unauthorized),
    )
    .await;
    let mut big = push_req(vec![create(1, 1, "x")]);
    big.protocol = 7;
    let req = anon.request("/api/push", wrapped(&big));
    refusal(
        &anon,
        req,
        StatusCode::UNAUTHORIZED,
        is(AppError::Unauthorized),
    )
    .await;
}

#[tokio::test]
async fn attack_82_sign_out_and_whoami_ignore_arguments() {
    let a = one_user().await;
    let (status, body) = raw(&a, "/api/whoami", br#"{"user":"someone-else"}"#.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let who: Option<Account> = serde_json::from_slice(&body).expect("account");
    assert_eq!(who, whoami(&a).await);
    assert!(who.is_some());
}

#[tokio::test]
async fn attack_83_router_keeps_answering_after_hostile_input() {
    let a = one_user().await;
    let big = vec![b'['; LIMITS.max_request_bytes];
    for (path, body) in [
        ("/api/push", big.clone()),
        ("/api/pull", b"\0\0\0".to_vec()),
        (
            "/api/sign_in",
            br#"{"name":"\ud800","password":"\udfff"}"#.to_vec(),
        ),
        (
            "/api/push",
            br#"{"req":{"protocol":1,"client_id":"\u0000"}}"#.to_vec(),
        ),
    ] {
        let (status, bytes) = raw(&a, path, body).await;
        assert!(status.is_client_error(), "{path}: {status}");
        let e = decode_error(&bytes);
        assert_ne!(e, AppError::Internal);
    }
    still_answers(&a, 1).await;
    assert!(whoami(&a).await.is_some());
}

#[tokio::test]
async fn attack_122_a_request_naming_another_account_is_refused_and_changes_nothing() {
    // A browser whose tab holds ann's notes while its cookie is bob's now
    // (bob signed in in another tab): its push and pull name ann.
    let router = router_with(relaxed());
    let (a, account_a) = Browser::signed_up(&router, "ann").await;
    let (b, account_b) = Browser::signed_up(&router, "bob").await;
    push(&b, vec![create(1, 1, "bob's own")]).await;
    let mismatch = || is(AppError::AccountMismatch);
    let named = |req: &mut PushRequest| req.account = Some(account_a.id.clone());
    let mut planted = push_req(vec![create(2, 2, "ann's, typed in ann's tab")]);
    named(&mut planted);
    refusal(
        &b,
        b.request("/api/push", wrapped(&planted)),
        StatusCode::CONFLICT,
        mismatch(),
    )
    .await;
    let mut pull_as_ann = pull_req(0, MAX_PULL_LIMIT);
    pull_as_ann.account = Some(account_a.id.clone());
    let e = refusal(
        &b,
        b.request("/api/pull", wrapped(&pull_as_ann)),
        StatusCode::CONFLICT,
        mismatch(),
    )
    .await;
    assert!(!e.to_string().contains("bob's own"), "{e}");
    assert!(notes(&a).await.is_empty(), "the push reached ann");
    let bobs: Vec<String> = notes(&b).await.into_iter().map(|n| n.body).collect();
    assert_eq!(bobs, ["bob's own"], "the push reached bob");
    // Naming the session's own account is what every request of its
    // browser does.
    let mut own = push_req(vec![create(3, 3, "bob's second")]);
    own.account = Some(account_b.id.clone());
    let (status, body) = raw(&b, "/api/push", wrapped(&own)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: PushResponse = serde_json::from_slice(&body).expect("a push response");
    assert!(matches!(answer.results[0], ChangeResult::Applied { .. }));
}

/// Keeps the helper list honest: the test host and origin agree.
#[test]
fn the_test_origin_is_the_test_host() {
    assert_eq!(ORIGIN, format!("http://{HOST}"));
}

// ---- sessions: stored as hashes, sliding, ended everywhere ----

/// `b` signed in again as `name` in a fresh browser on the same router.
async fn another_device(router: &axum::Router, name: &str) -> Browser {
    let mut b = Browser::new(router);
    b.sign_in(name, PASSWORD).await.expect("signs in");
    b
}

async fn pull_status(b: &Browser) -> StatusCode {
    raw(b, "/api/pull", wrapped(&pull_req(0, 10))).await.0
}

#[tokio::test]
async fn attack_84_the_store_holds_no_session_id() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cookie = {
        let store = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let router = router_over(store.clone(), relaxed(), false);
        let (a, _) = Browser::signed_up(&router, "ann").await;
        let cookie = session_id(&a);
        assert!(store
            .load_session(&stored_key(&cookie), 0)
            .await
            .expect("load")
            .is_some());
        assert_eq!(store.load_session(&cookie, 0).await.expect("load"), None);
        cookie
    };
    // Neither the cookie's text nor the id's number is anywhere in the file.
    let file = std::fs::read(dir.path().join(notesync::server::embedded::FILE_NAME)).expect("file");
    let id = cookie.parse::<Id>().expect("an id");
    for needle in [cookie.clone(), id.0.to_string()] {
        assert!(
            !file.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} is on disk"
        );
    }
}

#[tokio::test]
async fn attack_85_the_stored_key_is_not_a_cookie() {
    let store = Arc::new(MemoryStore::new());
    let router = router_over(store.clone(), relaxed(), false);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    push(&a, vec![create(1, 1, "mine")]).await;
    let key = stored_key(&session_id(&a));
    let thief = with_cookie(&router, &key);
    assert_eq!(whoami(&thief).await, None);
    assert_eq!(pull_status(&thief).await, StatusCode::UNAUTHORIZED);
    assert_eq!(notes(&a).await.len(), 1);
}

/// The expiry (Unix ms) the store holds for `b`'s session.
async fn stored_expiry(store: &MemoryStore, b: &Browser) -> i128 {
    let bytes = store
        .load_session(&stored_key(&session_id(b)), 0)
        .await
        .expect("load")
        .expect("stored");
    let record: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let date: time::OffsetDateTime =
        serde_json::from_value(record["expiry_date"].clone()).expect("a date");
    date.unix_timestamp_nanos() / 1_000_000
}

#[tokio::test]
async fn attack_86_a_session_in_use_slides_and_one_unused_does_not() {
    let store = Arc::new(MemoryStore::new());
    let router = crate::client::router_adjusted(store.clone(), relaxed(), |s| {
        s.with_session_refresh(Duration::ZERO)
    });
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let signed_in = stored_expiry(&store, &a).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(pull_status(&a).await, StatusCode::OK);
    let used = stored_expiry(&store, &a).await;
    assert!(used > signed_in, "the expiry moved: {signed_in} -> {used}");
    // With the default renewal (once a day), a request writes nothing.
    let store = Arc::new(MemoryStore::new());
    let router = router_over(store.clone(), relaxed(), false);
    let (b, _) = Browser::signed_up(&router, "bob").await;
    let before = stored_expiry(&store, &b).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(pull_status(&b).await, StatusCode::OK);
    assert_eq!(stored_expiry(&store, &b).await, before);
}

#[tokio::test]
async fn attack_87_sign_out_everywhere_ends_every_device_of_that_person_only() {
    let router = router_with(relaxed());
    let (a, account) = Browser::signed_up(&router, "ann").await;
    let (b, _) = Browser::signed_up(&router, "bob").await;
    push(&a, vec![create(1, 1, "ann's")]).await;
    let phone = another_device(&router, &account.name).await;
    let tablet = another_device(&router, &account.name).await;
    let mut a = a;
    a.call::<()>("/api/sign_out_everywhere", &json!({}))
        .await
        .expect("signs out everywhere");
    assert_eq!(a.cookie, None, "this device's cookie is cleared too");
    for device in [&phone, &tablet] {
        assert_eq!(pull_status(device).await, StatusCode::UNAUTHORIZED);
        assert_eq!(whoami(device).await, None);
    }
    assert_eq!(
        pull_status(&b).await,
        StatusCode::OK,
        "bob is not signed out"
    );
    let again = another_device(&router, &account.name).await;
    assert_eq!(notes(&again).await.len(), 1, "the notes are kept");
}

#[tokio::test]
async fn attack_88_sign_out_everywhere_without_a_session() {
    let router = router_with(relaxed());
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let anon = Browser::new(&router);
    let req = anon.request("/api/sign_out_everywhere", b"{}".to_vec());
    refusal(
        &anon,
        req,
        StatusCode::UNAUTHORIZED,
        is(AppError::Unauthorized),
    )
    .await;
    forbidden(
        &a,
        cross_site(&a, "/api/sign_out_everywhere", "http://evil.example"),
    )
    .await;
    assert_eq!(pull_status(&a).await, StatusCode::OK);
}

fn passwords(current: &str, new: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "current": current, "new": new })).expect("json")
}

#[tokio::test]
async fn attack_89_change_password_needs_the_current_one() {
    let router = router_with(relaxed());
    let (a, account) = Browser::signed_up(&router, "ann").await;
    let phone = another_device(&router, &account.name).await;
    let req = a.request(
        "/api/change_password",
        passwords("not my password", "a new password"),
    );
    refusal(
        &a,
        req,
        StatusCode::UNAUTHORIZED,
        is(AppError::BadCredentials),
    )
    .await;
    assert_eq!(pull_status(&a).await, StatusCode::OK);
    assert_eq!(
        pull_status(&phone).await,
        StatusCode::OK,
        "no session ended"
    );
    another_device(&router, &account.name).await;
    assert!(Browser::new(&router)
        .sign_in(&account.name, "a new password")
        .await
        .is_err());
}

#[tokio::test]
async fn attack_90_change_password_ends_the_other_sessions_and_keeps_this_one() {
    let router = router_with(relaxed());
    let (mut a, account) = Browser::signed_up(&router, "ann").await;
    push(&a, vec![create(1, 1, "kept")]).await;
    let old = session_id(&a);
    let phone = another_device(&router, &account.name).await;
    let tablet = another_device(&router, &account.name).await;
    a.call::<()>(
        "/api/change_password",
        &json!({ "current": PASSWORD, "new": "a new password" }),
    )
    .await
    .expect("changes the password");
    assert_ne!(session_id(&a), old, "this session goes on under a new id");
    assert_eq!(notes(&a).await.len(), 1);
    assert_eq!(whoami(&with_cookie(&router, &old)).await, None);
    for device in [&phone, &tablet] {
        assert_eq!(pull_status(device).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        Browser::new(&router).sign_in(&account.name, PASSWORD).await,
        Err((StatusCode::UNAUTHORIZED, AppError::BadCredentials))
    );
    assert!(Browser::new(&router)
        .sign_in(&account.name, "a new password")
        .await
        .is_ok());
}

#[tokio::test]
async fn attack_91_change_password_to_an_invalid_one() {
    let router = router_with(relaxed());
    let (a, account) = Browser::signed_up(&router, "ann").await;
    for new in ["short", "", &"p".repeat(257)] {
        let req = a.request("/api/change_password", passwords(PASSWORD, new));
        refusal(
            &a,
            req,
            StatusCode::BAD_REQUEST,
            is(AppError::InvalidAccount(AccountInputError::BadPassword)),
        )
        .await;
    }
    another_device(&router, &account.name).await;
}

#[tokio::test]
async fn attack_92_change_password_cannot_be_used_to_guess() {
    let router = router_with(strict(2, 1_000));
    let (a, account) = Browser::signed_up(&router, "ann").await;
    let mut statuses = Vec::new();
    for n in 0..4 {
        let req = a.request(
            "/api/change_password",
            passwords(&format!("guess number {n}"), "a new password"),
        );
        statuses.push(a.clone().send(req).await.0);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // Nothing changed: the session and the password are as they were.
    assert_eq!(pull_status(&a).await, StatusCode::OK);
    let _ = account;
}

#[tokio::test]
async fn attack_93_change_password_from_another_site_or_without_a_session() {
    let router = router_with(relaxed());
    let (a, account) = Browser::signed_up(&router, "ann").await;
    let mut req = a.request(
        "/api/change_password",
        passwords(PASSWORD, "a new password"),
    );
    set_header(&mut req, header::ORIGIN, "http://evil.example");
    forbidden(&a, req).await;
    let anon = Browser::new(&router);
    let req = anon.request(
        "/api/change_password",
        passwords(PASSWORD, "a new password"),
    );
    refusal(
        &anon,
        req,
        StatusCode::UNAUTHORIZED,
        is(AppError::Unauthorized),
    )
    .await;
    assert!(Browser::new(&router)
        .sign_in(&account.name, PASSWORD)
        .await
        .is_ok());
}

#[tokio::test]
async fn attack_94_sign_out_everywhere_ends_the_live_streams_here() {
    let router = router_with(relaxed());
    let (mut a, account) = Browser::signed_up(&router, "ann").await;
    let phone = another_device(&router, &account.name).await;
    let mut stream = crate::pokes::Events::open(&router, phone.cookie.as_deref())
        .await
        .expect("a stream");
    assert_eq!(
        stream
            .next(Duration::from_secs(5))
            .await
            .map(|e| e.0)
            .as_deref(),
        Some("ready")
    );
    a.call::<()>("/api/sign_out_everywhere", &json!({}))
        .await
        .expect("signs out everywhere");
    assert_eq!(stream.next(Duration::from_secs(2)).await, None, "ended");
    assert_eq!(
        crate::pokes::Events::open(&router, phone.cookie.as_deref())
            .await
            .err(),
        Some(StatusCode::UNAUTHORIZED)
    );
}

// ---- limits: rates, requests in flight, body sizes ----

fn limited(settings: ProtectionSettings) -> axum::Router {
    crate::client::router_adjusted(Arc::new(MemoryStore::new()), relaxed(), |s| {
        s.with_protection(settings)
    })
}

async fn send_full(router: &axum::Router, req: Request<Body>) -> axum::response::Response {
    tower::ServiceExt::oneshot(router.clone(), req)
        .await
        .expect("response")
}

#[tokio::test]
async fn attack_95_pushes_over_the_accounts_rate_are_429_with_retry_after() {
    let router = limited(ProtectionSettings {
        pushes_per_second: 1,
        push_burst: 3,
        ..crate::client::unlimited()
    });
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let (b, _) = Browser::signed_up(&router, "bob").await;
    for m in 1..=3 {
        push(&a, vec![create(m, m as u8, "within the burst")]).await;
    }
    let res = send_full(
        &router,
        a.request("/api/push", wrapped(&push_req(vec![create(4, 4, "over")]))),
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers()[header::RETRY_AFTER]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(decode_error(&body), AppError::RateLimited(wait));
    assert_eq!(notes(&a).await.len(), 3, "the refused push changed nothing");
    push(&b, vec![create(1, 1, "bob is not limited")]).await;
}

#[tokio::test]
async fn attack_96_pulls_have_their_own_rate() {
    let router = limited(ProtectionSettings {
        pulls_per_second: 1,
        pull_burst: 2,
        ..crate::client::unlimited()
    });
    let (a, _) = Browser::signed_up(&router, "ann").await;
    assert_eq!(pull_status(&a).await, StatusCode::OK);
    assert_eq!(pull_status(&a).await, StatusCode::OK);
    let req = a.request("/api/pull", wrapped(&pull_req(0, 10)));
    refusal(&a, req, StatusCode::TOO_MANY_REQUESTS, |e| {
        matches!(e, AppError::RateLimited(1..=2))
    })
    .await;
    push(&a, vec![create(1, 1, "pushes still go")]).await;
}

/// A body that sends `first` and then waits until `release` is dropped or
/// sent to.
fn held_body(first: Vec<u8>, release: tokio::sync::oneshot::Receiver<()>) -> Body {
    let first = futures::stream::once(async move {
        Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(first))
    });
    let rest = futures::stream::once(async move {
        let _ = release.await;
        Ok::<_, std::convert::Infallible>(axum::body::Bytes::new())
    });
    Body::from_stream(futures::StreamExt::chain(first, rest))
}

#[tokio::test]
async fn attack_97_requests_over_the_in_flight_limit_get_503_at_once() {
    let router = limited(ProtectionSettings {
        max_in_flight: 1,
        ..crate::client::unlimited()
    });
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let (release, held) = tokio::sync::oneshot::channel();
    let body = wrapped(&push_req(vec![create(1, 1, "slow")]));
    let mut slow = a.request("/api/push", Vec::new());
    *slow.body_mut() = held_body(body, held);
    slow.headers_mut().remove(header::CONTENT_LENGTH);
    let in_flight = tokio::spawn({
        let router = router.clone();
        async move { send_full(&router, slow).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let res = send_full(&router, a.request("/api/pull", wrapped(&pull_req(0, 10)))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    let health = send_full(
        &router,
        Request::get("/healthz")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "health checks are not counted"
    );
    let _ = release.send(());
    let done = in_flight.await.expect("joined");
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(notes(&a).await.len(), 1, "only the held push landed");
}

#[tokio::test]
async fn attack_98_a_push_without_a_session_is_refused_before_its_body() {
    let router = router_with(relaxed());
    let anon = Browser::new(&router);
    let (_release, held) = tokio::sync::oneshot::channel();
    let mut req = anon.request("/api/push", Vec::new());
    *req.body_mut() = held_body(b"{\"req\":".to_vec(), held);
    req.headers_mut().remove(header::CONTENT_LENGTH);
    let res = tokio::time::timeout(Duration::from_secs(2), send_full(&router, req))
        .await
        .expect("answered without waiting for the body");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn attack_99_a_cross_site_push_is_refused_before_its_body() {
    let a = one_user().await;
    let (_release, held) = tokio::sync::oneshot::channel();
    let mut req = a.request("/api/push", Vec::new());
    *req.body_mut() = held_body(b"{\"req\":".to_vec(), held);
    req.headers_mut().remove(header::CONTENT_LENGTH);
    set_header(&mut req, header::ORIGIN, "http://evil.example");
    let res = tokio::time::timeout(Duration::from_secs(2), send_full(&a.router, req))
        .await
        .expect("answered without waiting for the body");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_100_each_endpoint_has_its_own_body_limit() {
    let a = one_user().await;
    for (path, limit) in [
        ("/api/pull", 4 * 1024),
        ("/api/sign_in", 16 * 1024),
        ("/api/sign_up", 16 * 1024),
        ("/api/whoami", 1024),
        ("/api/sign_out", 1024),
        ("/api/change_password", 16 * 1024),
    ] {
        assert_eq!(Endpoint::of_path(path).body_limit(), limit);
        let mut body = br#"{"req":""#.to_vec();
        body.resize(limit + 1, b'x');
        let req = a.request(path, body);
        let e = refusal(&a, req, StatusCode::PAYLOAD_TOO_LARGE, bad_request).await;
        assert!(e.to_string().contains("KiB limit"), "{path}: {e}");
    }
    assert!(whoami(&a).await.is_some(), "still signed in");
}

#[tokio::test]
async fn attack_101_a_note_with_too_many_tags_refuses_the_whole_push() {
    let a = one_user().await;
    let mut change = create(1, 1, "tagged");
    if let ChangeOp::Upsert(draft) = &mut change.op {
        draft.tags = (0..=MAX_WIRE_TAGS).map(|n| format!("t{n}")).collect();
    }
    let req = a.request(
        "/api/push",
        wrapped(&push_req(vec![create(2, 2, "innocent"), change])),
    );
    refusal(&a, req, StatusCode::BAD_REQUEST, bad_request).await;
    assert!(
        notes(&a).await.is_empty(),
        "nothing of the push was applied"
    );
}

#[tokio::test]
async fn attack_102_many_distinct_tags_cost_no_quadratic_time() {
    let a = one_user().await;
    let tags: Vec<String> = (0..200_000).map(|n| format!("tag{n}")).collect();
    let mut change = create(1, 1, "tagged");
    if let ChangeOp::Upsert(draft) = &mut change.op {
        draft.tags = tags;
    }
    let started = std::time::Instant::now();
    let req = a.request("/api/push", wrapped(&push_req(vec![change])));
    refusal(&a, req, StatusCode::BAD_REQUEST, bad_request).await;
    // Before the check, 200,000 distinct tags took minutes of one core.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(notes(&a).await.is_empty());
}

// ---- sign-in limits that cannot be turned against a person ----

#[tokio::test]
async fn attack_103_sign_ups_naming_an_account_do_not_spend_its_sign_ins() {
    let router = router_with(strict(2, 1_000));
    let (_, account) = Browser::signed_up(&router, "ann").await;
    for _ in 0..3 {
        let _ = Browser::new(&router).sign_up(&account.name, PASSWORD).await;
    }
    assert!(Browser::new(&router)
        .sign_in(&account.name, PASSWORD)
        .await
        .is_ok());
}

#[tokio::test]
async fn attack_104_one_address_cannot_keep_a_name_locked() {
    let limits = AttemptLimits {
        per_name_burst: 1,
        per_address_burst: 1,
        refill: Duration::from_millis(600),
    };
    let router = router_with(limits);
    let name = unique_name("ann");
    let b = Browser::new(&router);
    let sign_in = |addr: &str, password: &str| {
        from(
            addr,
            b.request("/api/sign_in", credentials(&name, password)),
        )
    };
    Browser::new(&router)
        .sign_up(&name, PASSWORD)
        .await
        .expect("signs up");
    // The attacker spends the name's attempt, as often as its address allows.
    let (status, _) = b
        .clone()
        .send(sign_in("203.0.113.9:1", "guess guess"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The name has its attempt back in half the time the address waits.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, _) = b
        .clone()
        .send(sign_in("203.0.113.9:1", "guess guess"))
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address still waits"
    );
    let (status, _) = b.clone().send(sign_in("198.51.100.1:1", PASSWORD)).await;
    assert_eq!(status, StatusCode::OK, "the owner signs in");
}

#[tokio::test]
async fn attack_105_ipv6_addresses_count_per_64() {
    let router = router_with(strict(1_000, 2));
    let b = Browser::new(&router);
    let attempt = |addr: &str| {
        from(
            addr,
            b.request(
                "/api/sign_in",
                credentials(&unique_name("v6"), "guess guess"),
            ),
        )
    };
    for addr in ["[2001:db8:1:2::1]:1", "[2001:db8:1:2:ffff::9]:1"] {
        assert_eq!(
            b.clone().send(attempt(addr)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, _) = b
        .clone()
        .send(attempt("[2001:db8:1:2:dead:beef::1]:1"))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the same /64");
    let (status, _) = b.clone().send(attempt("[2001:db8:1:3::1]:1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another /64");
}

#[tokio::test]
async fn attack_106_an_ipv4_mapped_address_counts_as_ipv4() {
    let router = router_with(strict(1_000, 2));
    let b = Browser::new(&router);
    let attempt = |addr: &str| {
        from(
            addr,
            b.request(
                "/api/sign_in",
                credentials(&unique_name("v4"), "guess guess"),
            ),
        )
    };
    assert_eq!(
        b.clone().send(attempt("198.51.100.7:1")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.clone().send(attempt("[::ffff:198.51.100.7]:1")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.clone().send(attempt("[::ffff:198.51.100.7]:2")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

// ---- live streams: capped per account and per address ----

async fn open_stream(router: &axum::Router, cookie: &str, addr: &str) -> crate::pokes::Events {
    let req = from(
        addr,
        Request::get("/api/events")
            .header(header::HOST, HOST)
            .header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"))
            .body(Body::empty())
            .expect("request"),
    );
    let res = send_full(router, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut events = crate::pokes::Events::from_body(res.into_body());
    assert_eq!(
        events
            .next(Duration::from_secs(5))
            .await
            .map(|e| e.0)
            .as_deref(),
        Some("ready")
    );
    events
}

fn with_streams(per_account: usize, per_address: usize) -> axum::Router {
    crate::client::router_adjusted(Arc::new(MemoryStore::new()), relaxed(), |s| {
        s.with_streams(StreamSettings {
            per_account,
            per_address,
            ..StreamSettings::default()
        })
    })
}

#[tokio::test]
async fn attack_107_streams_of_one_account_are_capped_oldest_closed_first() {
    let router = with_streams(2, 100);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let cookie = session_id(&a);
    let mut first = open_stream(&router, &cookie, "192.0.2.1:1").await;
    let mut second = open_stream(&router, &cookie, "192.0.2.2:1").await;
    let mut third = open_stream(&router, &cookie, "192.0.2.3:1").await;
    assert_eq!(
        first.next(Duration::from_secs(2)).await,
        None,
        "the oldest closed"
    );
    push(&a, vec![create(1, 1, "poked")]).await;
    for stream in [&mut second, &mut third] {
        let (name, _) = stream.next(Duration::from_secs(5)).await.expect("an event");
        assert_eq!(name, "poke", "the two newest stay live");
    }
}

#[tokio::test]
async fn attack_108_streams_from_one_address_are_capped_across_accounts() {
    let router = with_streams(100, 2);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let (b, _) = Browser::signed_up(&router, "bob").await;
    let mut anns = open_stream(&router, &session_id(&a), "[2001:db8::1]:1").await;
    let _bobs = open_stream(&router, &session_id(&b), "[2001:db8::2]:1").await;
    let mut elsewhere = open_stream(&router, &session_id(&a), "192.0.2.1:1").await;
    let _more = open_stream(&router, &session_id(&b), "[2001:db8::3]:1").await;
    assert_eq!(
        anns.next(Duration::from_secs(2)).await,
        None,
        "the /64's oldest closed"
    );
    push(&a, vec![create(1, 1, "poked")]).await;
    let (name, _) = elsewhere
        .next(Duration::from_secs(5))
        .await
        .expect("an event");
    assert_eq!(name, "poke", "ann's stream from another address stays");
}

// ---- quotas: an account cannot fill the disk ----

fn with_quota(max_notes: u64, max_bytes: u64) -> axum::Router {
    crate::client::router_adjusted(Arc::new(MemoryStore::new()), relaxed(), |mut s| {
        s.sync = Arc::new((*s.sync).clone().with_quota(notesync::store::Quota {
            max_notes,
            max_bytes,
        }));
        s
    })
}

fn over_quota(r: &ChangeResult) -> bool {
    matches!(
        r,
        ChangeResult::Rejected {
            code: Some(RejectCode::Quota),
            reason,
        } if reason.contains("limit")
    )
}

async fn head_of(b: &Browser) -> u64 {
    match pull(b, 0, 1).await {
        PullResponse::Page { head, .. } => head,
        PullResponse::ResyncRequired => panic!("resync from 0"),
    }
}

#[tokio::test]
async fn attack_109_notes_past_the_quota_are_refused_and_stored_nowhere() {
    let router = with_quota(3, 1_000_000);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let r = push(&a, (1..=3).map(|m| create(m, m as u8, "fits")).collect()).await;
    assert!(r.iter().all(|r| matches!(r, ChangeResult::Applied { .. })));
    let before = head_of(&a).await;
    let r = push(&a, vec![create(4, 4, "one too many")]).await;
    assert!(over_quota(&r[0]), "{r:?}");
    assert_eq!(head_of(&a).await, before, "no seq was taken");
    assert_eq!(notes(&a).await.len(), 3);
}

#[tokio::test]
async fn attack_110_text_past_the_quota_is_refused() {
    let router = with_quota(1_000, 10_000);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    push(&a, vec![create(1, 1, &"a".repeat(6_000))]).await;
    let r = push(&a, vec![create(2, 2, &"b".repeat(6_000))]).await;
    assert!(over_quota(&r[0]), "{r:?}");
    // An edit growing the note past it is refused; one shrinking it is taken.
    let big = "a".repeat(6_000);
    let r = push(&a, vec![edit(3, 1, 1, Some(&big), &"c".repeat(12_000))]).await;
    assert!(over_quota(&r[0]), "{r:?}");
    let r = push(&a, vec![edit(4, 1, 1, Some(&big), "short now")]).await;
    assert!(matches!(r[0], ChangeResult::Applied { .. }), "{r:?}");
    let kept: Vec<String> = notes(&a).await.into_iter().map(|n| n.body).collect();
    assert_eq!(kept, vec!["short now".to_string()]);
}

#[tokio::test]
async fn attack_111_deletes_go_through_over_the_quota() {
    let router = with_quota(2, 1_000_000);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    push(&a, vec![create(1, 1, "one"), create(2, 2, "two")]).await;
    let r = push(&a, vec![create(3, 3, "three"), delete(4, 1, 1)]).await;
    assert!(over_quota(&r[0]), "{r:?}");
    assert!(matches!(r[1], ChangeResult::Applied { .. }), "{r:?}");
    let live: Vec<String> = notes(&a)
        .await
        .into_iter()
        .filter(|n| !n.deleted)
        .map(|n| n.body)
        .collect();
    assert_eq!(live, vec!["two".to_string()]);
}

#[tokio::test]
async fn attack_112_a_refused_change_is_taken_when_sent_again_with_room() {
    let router = with_quota(1, 1_000_000);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    push(&a, vec![create(1, 1, "first")]).await;
    let waiting = create(2, 2, "waiting for room");
    let r = push(&a, vec![waiting.clone()]).await;
    assert!(over_quota(&r[0]));
    // Not remembered: sent again while still full, refused again, not a duplicate.
    let r = push(&a, vec![waiting.clone()]).await;
    assert!(over_quota(&r[0]), "{r:?}");
    push(&a, vec![delete(3, 1, 1)]).await;
    let r = push(&a, vec![waiting]).await;
    assert!(matches!(r[0], ChangeResult::Applied { .. }), "{r:?}");
}

#[tokio::test]
async fn attack_113_one_full_account_does_not_limit_another() {
    let router = with_quota(1, 1_000_000);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let (b, _) = Browser::signed_up(&router, "bob").await;
    push(&a, vec![create(1, 1, "ann's")]).await;
    assert!(over_quota(&push(&a, vec![create(2, 2, "more")]).await[0]));
    let r = push(&b, vec![create(1, 1, "bob's")]).await;
    assert!(matches!(r[0], ChangeResult::Applied { .. }), "{r:?}");
}

#[tokio::test]
async fn attack_114_one_batch_cannot_pass_the_quota_together() {
    let router = with_quota(2, 1_000_000);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let r = push(&a, (1..=5).map(|m| create(m, m as u8, "x")).collect()).await;
    let applied = r
        .iter()
        .filter(|r| matches!(r, ChangeResult::Applied { .. }))
        .count();
    assert_eq!(applied, 2);
    assert!(r[2..].iter().all(over_quota), "{r:?}");
    assert_eq!(notes(&a).await.len(), 2);
}

#[tokio::test]
async fn attack_115_conflict_copies_count_against_the_quota() {
    let router = with_quota(1_000, 200);
    let (a, _) = Browser::signed_up(&router, "ann").await;
    push(&a, vec![create(1, 1, "line one\nline two")]).await;
    push(
        &a,
        vec![edit(2, 1, 1, Some("line one\nline two"), "line one\nmine")],
    )
    .await;
    // A stale edit of the same line keeps both texts, which must fit.
    let r = push(
        &a,
        vec![edit(
            3,
            1,
            1,
            Some("line one\nline two"),
            &format!("line one\n{}", "y".repeat(150)),
        )],
    )
    .await;
    assert!(over_quota(&r[0]), "{r:?}");
    assert_eq!(notes(&a).await[0].body, "line one\nmine");
}

// ---- more limits that must not be turned around ----

#[tokio::test]
async fn attack_116_the_push_rate_is_per_account_not_per_session() {
    let router = limited(ProtectionSettings {
        pushes_per_second: 1,
        push_burst: 2,
        ..crate::client::unlimited()
    });
    let (a, account) = Browser::signed_up(&router, "ann").await;
    let phone = another_device(&router, &account.name).await;
    push(&a, vec![create(1, 1, "one")]).await;
    push(&phone, vec![create(2, 2, "two")]).await;
    let req = phone.request("/api/push", wrapped(&push_req(vec![create(3, 3, "three")])));
    refusal(&phone, req, StatusCode::TOO_MANY_REQUESTS, |e| {
        matches!(e, AppError::RateLimited(_))
    })
    .await;
    assert_eq!(notes(&a).await.len(), 2);
}

#[tokio::test]
async fn attack_117_event_streams_do_not_take_requests_in_flight() {
    let router = crate::client::router_adjusted(Arc::new(MemoryStore::new()), relaxed(), |s| {
        s.with_protection(ProtectionSettings {
            max_in_flight: 1,
            ..crate::client::unlimited()
        })
    });
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let _stream = open_stream(&router, &session_id(&a), "192.0.2.1:1").await;
    let _another = open_stream(&router, &session_id(&a), "192.0.2.2:1").await;
    assert_eq!(pull_status(&a).await, StatusCode::OK);
    push(&a, vec![create(1, 1, "still served")]).await;
}

#[tokio::test]
async fn attack_118_a_renewed_session_still_ends_at_sign_out() {
    let router = crate::client::router_adjusted(Arc::new(MemoryStore::new()), relaxed(), |s| {
        s.with_session_refresh(Duration::ZERO)
    });
    let (mut a, _) = Browser::signed_up(&router, "ann").await;
    assert_eq!(pull_status(&a).await, StatusCode::OK);
    let old = session_id(&a);
    a.call::<()>("/api/sign_out", &json!({}))
        .await
        .expect("signs out");
    let replay = with_cookie(&router, &old);
    assert_eq!(pull_status(&replay).await, StatusCode::UNAUTHORIZED);
    assert_eq!(whoami(&replay).await, None);
}

#[tokio::test]
async fn attack_119_change_password_with_a_huge_body() {
    let router = router_with(relaxed());
    let (a, account) = Browser::signed_up(&router, "ann").await;
    let huge = "p".repeat(100_000);
    let req = a.request("/api/change_password", passwords(PASSWORD, &huge));
    refusal(&a, req, StatusCode::PAYLOAD_TOO_LARGE, bad_request).await;
    assert!(Browser::new(&router)
        .sign_in(&account.name, PASSWORD)
        .await
        .is_ok());
    assert_eq!(pull_status(&a).await, StatusCode::OK);
}

#[tokio::test]
async fn attack_120_an_unreadable_push_naming_another_version_is_told_to_update() {
    let a = one_user().await;
    // JSON, but of another shape: eight megabytes of changes this version
    // cannot read, and a client id it would refuse.
    let mut body = br#"{"req":{"protocol":99,"client_id":"x","changes":["#.to_vec();
    while body.len() < LIMITS.max_request_bytes - 64 {
        body.extend_from_slice(br#"{"shape":"of the future"},"#);
    }
    body.extend_from_slice(br#"{}]}}"#);
    let req = a.request("/api/push", body);
    refusal(&a, req, StatusCode::BAD_REQUEST, |e| {
        matches!(
            e,
            AppError::Protocol(ProtocolError::UnsupportedVersion { got: 99, .. })
        )
    })
    .await;
    assert!(notes(&a).await.is_empty());
}

#[tokio::test]
async fn attack_121_a_change_password_cannot_name_another_account() {
    let router = router_with(relaxed());
    let (a, _) = Browser::signed_up(&router, "ann").await;
    let (_, bob) = Browser::signed_up(&router, "bob").await;
    let body = serde_json::to_vec(&json!({
        "current": PASSWORD,
        "new": "bob is mine now",
        "name": bob.name,
        "account": bob.id,
    }))
    .expect("json");
    let (status, _) = raw(&a, "/api/change_password", body).await;
    assert_eq!(status, StatusCode::OK, "it changed ann's own password");
    assert!(Browser::new(&router)
        .sign_in(&bob.name, PASSWORD)
        .await
        .is_ok());
    assert!(Browser::new(&router)
        .sign_in(&bob.name, "bob is mine now")
        .await
        .is_err());
}
