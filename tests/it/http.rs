//! The server functions over HTTP, against the real router (with a memory
//! store behind it): the JSON shapes the browser sends, and every kind of bad
//! input with its status and a message a person can read.

use axum::http::{header, StatusCode};
use serde::Serialize;

use crate::client::{relaxed, router_with, Browser};
use notesync::api::AppError;
use notesync::domain::{ClientId, LIMITS};
use notesync::store::contract::{create, edit};
use notesync::sync::protocol::{
    Change, ChangeResult, Checkpoint, ProtocolError, PullRequest, PullResponse, PushRequest,
    PushResponse, PROTOCOL_VERSION,
};

/// A signed-in browser on a fresh app.
async fn app() -> Browser {
    Browser::signed_up(&router_with(relaxed()), "http").await.0
}

async fn post_raw(app: &Browser, path: &str, body: Vec<u8>, length: bool) -> (StatusCode, Vec<u8>) {
    let mut req = app.request(path, body);
    if !length {
        req.headers_mut().remove(header::CONTENT_LENGTH);
    }
    app.clone().send(req).await
}

async fn post(app: &Browser, path: &str, req: &impl Serialize) -> (StatusCode, Vec<u8>) {
    let body = serde_json::to_vec(&serde_json::json!({ "req": req })).expect("serialises");
    post_raw(app, path, body, true).await
}

fn push_req(changes: Vec<Change>) -> PushRequest {
    PushRequest {
        protocol: PROTOCOL_VERSION,
        client_id: ClientId::new(1_600_000_000_000, [4; 10]),
        changes,
    }
}

async fn push(app: &Browser, changes: Vec<Change>) -> Vec<ChangeResult> {
    let (status, body) = post(app, "/api/push", &push_req(changes)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice::<PushResponse>(&body)
        .expect("a push response")
        .results
}

async fn pull(app: &Browser, checkpoint: u64, limit: u32) -> PullResponse {
    let req = PullRequest {
        protocol: PROTOCOL_VERSION,
        checkpoint: Checkpoint(checkpoint),
        limit,
        download_head: None,
    };
    let (status, body) = post(app, "/api/pull", &req).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("a pull response")
}

fn error(body: &[u8]) -> AppError {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not an AppError ({e}): {}", String::from_utf8_lossy(body)))
}

#[tokio::test]
async fn push_then_pull_round_trips() {
    let app = app().await;
    let results = push(&app, vec![create(1, 1, "first"), create(2, 2, "second")]).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, ChangeResult::Applied { .. })),
        "{results:?}"
    );
    let PullResponse::Page {
        entries,
        checkpoint,
        has_more,
        ..
    } = pull(&app, 0, 100).await
    else {
        panic!("expected a page");
    };
    let bodies: Vec<&str> = entries.iter().map(|e| e.note.body.as_str()).collect();
    assert_eq!(bodies, vec!["first", "second"]);
    assert_eq!(checkpoint, Checkpoint(entries[1].seq));
    assert!(!has_more);
}

#[tokio::test]
async fn malformed_json_is_a_400_with_a_clear_message() {
    let app = app().await;
    for body in [
        &b"{\"req\": {"[..],
        b"not json",
        b"{\"req\": {\"protocol\": 1}}",
        b"{}",
    ] {
        let (status, bytes) = post_raw(&app, "/api/push", body.to_vec(), true).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let e = error(&bytes);
        assert!(matches!(e, AppError::BadRequest(_)), "{e:?}");
        assert!(
            e.to_string().starts_with("the request is malformed: "),
            "{e}"
        );
    }
}

#[tokio::test]
async fn an_unknown_protocol_version_is_a_400_naming_the_versions() {
    let app = app().await;
    let mut req = push_req(vec![create(1, 1, "x")]);
    req.protocol = 99;
    let (status, body) = post(&app, "/api/push", &req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let e = error(&body);
    assert_eq!(
        e,
        AppError::Protocol(ProtocolError::UnsupportedVersion {
            got: 99,
            supported: PROTOCOL_VERSION
        })
    );
    assert!(
        e.to_string().contains("version 99")
            && e.to_string()
                .contains(&format!("version {PROTOCOL_VERSION}")),
        "{e}"
    );

    // A future client may send another shape: the version is still named.
    let next = PROTOCOL_VERSION + 1;
    let future = format!(r#"{{"req": {{"protocol": {next}, "batches": []}}}}"#).into_bytes();
    let (status, body) = post_raw(&app, "/api/pull", future, true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(matches!(
        error(&body),
        AppError::Protocol(ProtocolError::UnsupportedVersion { got, .. }) if got == next
    ));
}

#[tokio::test]
async fn more_changes_than_the_batch_limit_is_a_413() {
    let app = app().await;
    let changes: Vec<Change> = (0..=LIMITS.max_batch_changes as u32)
        .map(|m| create(m + 1, (m % 200) as u8, "x"))
        .collect();
    let (status, body) = post(&app, "/api/push", &push_req(changes)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        error(&body),
        AppError::Protocol(ProtocolError::BatchTooLarge {
            got: LIMITS.max_batch_changes + 1,
            max: LIMITS.max_batch_changes
        })
    );
}

#[tokio::test]
async fn an_empty_push_and_a_zero_limit_are_400s() {
    let app = app().await;
    let (status, body) = post(&app, "/api/push", &push_req(vec![])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error(&body), AppError::Protocol(ProtocolError::EmptyBatch));
    let req = PullRequest {
        protocol: PROTOCOL_VERSION,
        checkpoint: Checkpoint(0),
        limit: 0,
        download_head: None,
    };
    let (status, body) = post(&app, "/api/pull", &req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error(&body), AppError::Protocol(ProtocolError::ZeroLimit));
}

#[tokio::test]
async fn a_note_over_1_mib_is_rejected_and_the_others_applied() {
    let app = app().await;
    let big = "x".repeat(LIMITS.max_body_bytes + 1);
    let results = push(
        &app,
        vec![create(1, 1, "a"), create(2, 2, &big), create(3, 3, "c")],
    )
    .await;
    assert!(matches!(results[0], ChangeResult::Applied { .. }));
    assert!(
        matches!(&results[1], ChangeResult::Rejected { reason, .. } if reason.contains("1 MiB")),
        "{:?}",
        results[1]
    );
    assert!(matches!(results[2], ChangeResult::Applied { .. }));
}

#[tokio::test]
async fn requests_up_to_8_mib_are_read() {
    // Above axum's 2 MiB default, below our limit.
    let app = app().await;
    let full = "y".repeat(LIMITS.max_body_bytes);
    let changes: Vec<Change> = (1..=5u8).map(|n| create(u32::from(n), n, &full)).collect();
    let results = push(&app, changes).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, ChangeResult::Applied { .. })),
        "{results:?}"
    );
}

#[tokio::test]
async fn a_body_over_8_mib_is_a_413() {
    let app = app().await;
    let body = vec![b' '; LIMITS.max_request_bytes + 1];
    for declared in [true, false] {
        let (status, bytes) = post_raw(&app, "/api/push", body.clone(), declared).await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "content-length: {declared}"
        );
        let e = error(&bytes);
        assert!(e.to_string().contains("8 MiB"), "{e}");
    }
}

#[tokio::test]
async fn a_repeated_mutation_id_is_a_duplicate() {
    let app = app().await;
    let first = push(&app, vec![create(1, 1, "once")]).await;
    assert!(matches!(first[0], ChangeResult::Applied { .. }));
    let again = push(&app, vec![create(1, 1, "once")]).await;
    assert_eq!(again, vec![ChangeResult::Duplicate]);
}

#[tokio::test]
async fn a_stale_base_is_merged_keeping_both_texts() {
    let app = app().await;
    push(&app, vec![create(1, 1, "base\n")]).await;
    push(&app, vec![edit(2, 1, 1, Some("base\n"), "laptop\n")]).await;
    let results = push(&app, vec![edit(3, 1, 1, Some("base\n"), "phone\n")]).await;
    assert!(
        matches!(
            results[0],
            ChangeResult::Merged {
                conflicted: true,
                ..
            }
        ),
        "{results:?}"
    );
    let PullResponse::Page { entries, .. } = pull(&app, 0, 10).await else {
        panic!("expected a page");
    };
    let entry = &entries[0];
    assert!(entry.note.body.contains("laptop") && entry.note.body.contains("phone"));
    let sides = entry.conflict.as_ref().expect("conflict recorded");
    assert_eq!(
        sides.server.as_ref().map(|d| d.body.as_str()),
        Some("laptop\n")
    );
    assert_eq!(
        sides.client.as_ref().map(|d| d.body.as_str()),
        Some("phone\n")
    );
}

#[tokio::test]
async fn pull_pages_until_has_more_is_false() {
    let app = app().await;
    let changes: Vec<Change> = (1..=5u8).map(|n| create(u32::from(n), n, "x")).collect();
    push(&app, changes).await;
    let mut checkpoint = 0;
    let mut pages = Vec::new();
    loop {
        let PullResponse::Page {
            entries,
            checkpoint: next,
            has_more,
            ..
        } = pull(&app, checkpoint, 2).await
        else {
            panic!("expected a page");
        };
        pages.push((entries.len(), has_more));
        checkpoint = next.0;
        if !has_more {
            break;
        }
    }
    assert_eq!(pages, vec![(2, true), (2, true), (1, false)]);
    assert_eq!(checkpoint, 5);
    assert_eq!(pull(&app, 99, 2).await, PullResponse::ResyncRequired);
}

#[tokio::test]
async fn other_routes_are_untouched() {
    let mut app = app().await;
    let (status, body) = app
        .send(
            axum::http::Request::get("/healthz")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"ok"[..]));
}

async fn get_page(app: &mut Browser, path: &str) -> (StatusCode, String) {
    let (status, body) = app
        .send(
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    (status, String::from_utf8(body).expect("the page is text"))
}

#[tokio::test]
async fn each_path_renders_its_own_page_and_others_are_a_404() {
    let mut app = app().await;
    let (status, notes) = get_page(&mut app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(notes.contains(r#"id="new-note""#), "{notes}");
    assert!(notes.contains(r#"<body data-page="/">"#), "{notes}");
    for head in [
        "<title>notesync</title>",
        r#"<link rel="manifest" href="/manifest.webmanifest">"#,
        r#"<link id="leptos" rel="stylesheet" href="/pkg/notesync.css">"#,
    ] {
        assert!(notes.contains(head), "{head} in {notes}");
    }
    let (status, sign_in) = get_page(&mut app, "/signin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(sign_in.contains("Sign in to notesync"), "{sign_in}");
    assert!(sign_in.contains(r#"<body data-page="/signin">"#));
    assert!(!sign_in.contains(r#"id="new-note""#));
    let (status, sign_up) = get_page(&mut app, "/signup?from=link").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        sign_up.contains("Create your notesync account"),
        "{sign_up}"
    );
    for path in ["/nowhere", "/signin/extra"] {
        let (status, missing) = get_page(&mut app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(missing.contains("Page not found."), "{path}: {missing}");
        assert!(!missing.contains("Sign in to notesync"));
        assert!(missing.contains("<body>"), "{path}: no page named");
    }
}
