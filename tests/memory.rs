//! What refusing a request costs in memory: every `/api/` request the
//! server refuses, however hostile its body, is refused with at most twice
//! its body's size allocated (plus a fixed 64 KiB for the request's own
//! bookkeeping), measured by a counting global allocator.
//!
//! Its own test binary: the allocator is process-wide, and it counts per
//! thread, so each case runs on one current-thread runtime and sees only
//! what the router allocates for it. Bodies arrive as a stream of 64 KiB
//! chunks made as the server reads them, so a body never read costs
//! nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use leptos::prelude::LeptosOptions;
use tower::ServiceExt;

use notesync::server::auth::{Accounts, AttemptLimits, SESSION_COOKIE};
use notesync::server::limits::ProtectionSettings;
use notesync::server::service::SyncService;
use notesync::server::{router, AppState};
use notesync::store::contract::create;
use notesync::store::MemoryStore;
use notesync::sync::merge::Strategy;
use notesync::sync::protocol::{PushRequest, PROTOCOL_VERSION};

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

#[expect(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one only counts and defers to the system's"
)]
// SAFETY: every call is passed to the system allocator unchanged; the
// counters are thread-locals that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What a request may cost besides twice its body.
const ALLOWANCE: isize = 64 * 1024;
const CHUNK: usize = 64 * 1024;
const HOST: &str = "notes.test";
const ORIGIN: &str = "http://notes.test";

fn app(protection: ProtectionSettings) -> Router {
    let store = Arc::new(MemoryStore::new());
    let limits = AttemptLimits {
        per_name_burst: 1_000,
        per_address_burst: 1_000,
        refill: Duration::from_millis(1),
    };
    let sync = SyncService::new(store.clone(), Strategy::Merge, Duration::from_secs(86_400));
    let accounts = Accounts::new(store, limits).expect("accounts");
    let state = AppState::new(sync, accounts).with_protection(protection);
    router(
        LeptosOptions::builder().output_name("notesync").build(),
        state,
    )
}

async fn sign_up(app: &Router) -> String {
    let body = br#"{"name":"memory","password":"correct horse battery"}"#.to_vec();
    let req = Request::post("/api/sign_up")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{SESSION_COOKIE}=")))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    cookie
}

/// A body of `bytes`, made in chunks as the server reads it.
fn streamed(bytes: Arc<Vec<u8>>) -> Body {
    let chunks = bytes.len().div_ceil(CHUNK);
    let stream = futures::stream::iter((0..chunks).map(move |i| {
        let end = ((i + 1) * CHUNK).min(bytes.len());
        Ok::<_, Infallible>(Bytes::copy_from_slice(&bytes[i * CHUNK..end]))
    }));
    Body::from_stream(stream)
}

struct Case {
    name: &'static str,
    path: &'static str,
    body: Vec<u8>,
    signed_in: bool,
    origin: &'static str,
    status: StatusCode,
}

/// Sends `case` (with and without its length declared) and checks its
/// answer and the most memory it held at once.
async fn refuse(app: &Router, cookie: &str, case: &Case) {
    let body = Arc::new(case.body.clone());
    for declared in [true, false] {
        let mut req = Request::post(case.path)
            .header(header::HOST, HOST)
            .header(header::ORIGIN, case.origin)
            .header(header::CONTENT_TYPE, "application/json");
        if declared {
            req = req.header(header::CONTENT_LENGTH, body.len());
        }
        if case.signed_in {
            req = req.header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"));
        }
        let req = req.body(streamed(Arc::clone(&body))).expect("request");
        let app = app.clone();
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let res = app.oneshot(req).await.expect("response");
        let status = res.status();
        let answer = res.into_body().collect().await.expect("body").to_bytes();
        let peak = PEAK.with(Cell::get) - base;
        assert_eq!(
            status,
            case.status,
            "{} (declared: {declared}): {}",
            case.name,
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        );
        let bound = 2 * body.len() as isize + ALLOWANCE;
        eprintln!(
            "{:<48} declared={declared:<5} body {:>9} B  peak {:>9} B  ({:.2}x)",
            case.name,
            body.len(),
            peak,
            peak as f64 / body.len() as f64
        );
        assert!(
            peak <= bound,
            "{} (declared: {declared}): {peak} bytes held for a {} byte body",
            case.name,
            body.len()
        );
    }
}

/// `{"req": <inner>}` padded with spaces inside to `len` bytes.
fn wrapped(inner: &str, len: usize) -> Vec<u8> {
    let mut body = format!("{{\"req\":{inner}").into_bytes();
    body.resize(len.saturating_sub(1).max(body.len()), b' ');
    body.push(b'}');
    body
}

fn array_of(item: &str, len: usize) -> Vec<u8> {
    let mut body = b"{\"req\":[".to_vec();
    while body.len() + item.len() + 3 < len {
        body.extend_from_slice(item.as_bytes());
        body.push(b',');
    }
    body.extend_from_slice(item.as_bytes());
    body.extend_from_slice(b"]}");
    body
}

/// A valid push of changes made by `change` until the body is near `len`,
/// then `tail` in place of its last bytes.
fn push_of(len: usize, protocol: u32, change: impl Fn(u32) -> String, tail: &str) -> Vec<u8> {
    let envelope = PushRequest {
        protocol,
        client_id: notesync::domain::ClientId::new(1_600_000_000_000, [4; 10]),
        changes: Vec::new(),
        account: None,
    };
    let head = serde_json::to_string(&serde_json::json!({ "req": envelope })).expect("json");
    let open = head.trim_end_matches("]}}");
    let mut body = open.to_string();
    let mut m = 1;
    while body.len() + 4_096 < len {
        if m > 1 {
            body.push(',');
        }
        body.push_str(&change(m));
        m += 1;
    }
    body.push_str(tail);
    body.into_bytes()
}

fn change_json(m: u32, text: &str) -> String {
    serde_json::to_string(&create(m, (m % 250) as u8, text)).expect("json")
}

#[tokio::test]
async fn every_refusal_costs_at_most_twice_its_body() {
    let eight = 8 * 1024 * 1024 - 1024;
    let app = app(ProtectionSettings {
        push_burst: 1_000,
        pull_burst: 1_000,
        ..ProtectionSettings::default()
    });
    let cookie = sign_up(&app).await;
    let body_of = |n: usize| "x".repeat(n);
    let cases = vec![
        Case {
            name: "zeros, no session",
            path: "/api/push",
            body: array_of("0", eight),
            signed_in: false,
            origin: ORIGIN,
            status: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "zeros, another site",
            path: "/api/push",
            body: array_of("0", eight),
            signed_in: true,
            origin: "http://evil.test",
            status: StatusCode::FORBIDDEN,
        },
        Case {
            name: "zeros as the request",
            path: "/api/push",
            body: array_of("0", eight),
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "empty objects as the request",
            path: "/api/push",
            body: array_of("{}", eight),
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "deep nesting",
            path: "/api/push",
            body: vec![b'['; eight],
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "an escaped string as a key",
            path: "/api/push",
            body: wrapped(
                &format!("{{\"{}\":1}}", "\\u0061".repeat(eight / 6 - 4)),
                eight,
            ),
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "valid changes, then broken JSON",
            path: "/api/push",
            body: push_of(
                eight,
                PROTOCOL_VERSION,
                |m| change_json(m, &body_of(5_000)),
                ",{",
            ),
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "valid changes, then a bad id",
            path: "/api/push",
            body: push_of(
                eight,
                PROTOCOL_VERSION,
                |m| change_json(m, &body_of(5_000)),
                &format!(
                    ",{}]}}}}",
                    change_json(9, "x").replace("\"mutation_id\":\"", "\"mutation_id\":\"z")
                ),
            ),
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "valid changes of another protocol version",
            path: "/api/push",
            body: push_of(eight, 99, |m| change_json(m, &body_of(5_000)), "]}}"),
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "more changes than a push carries",
            path: "/api/push",
            body: push_of(eight, PROTOCOL_VERSION, |m| change_json(m, "x"), "]}}"),
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::PAYLOAD_TOO_LARGE,
        },
        Case {
            name: "a note with a million empty tags",
            path: "/api/push",
            body: push_of(
                1_024,
                PROTOCOL_VERSION,
                |m| change_json(m, "x"),
                &format!(
                    "{}]}}}}",
                    change_json(1, "x").replace(
                        "\"tags\":[]",
                        &format!("\"tags\":[{}\"\"]", "\"\",".repeat((eight - 2_048) / 3))
                    )
                ),
            ),
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "over the push limit",
            path: "/api/push",
            body: array_of("0", 9 * 1024 * 1024),
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::PAYLOAD_TOO_LARGE,
        },
        Case {
            name: "a pull of eight megabytes",
            path: "/api/pull",
            body: array_of("0", eight),
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::PAYLOAD_TOO_LARGE,
        },
        Case {
            name: "a sign-in of eight megabytes",
            path: "/api/sign_in",
            body: array_of("0", eight),
            signed_in: false,
            origin: ORIGIN,
            status: StatusCode::PAYLOAD_TOO_LARGE,
        },
        Case {
            name: "a malformed pull",
            path: "/api/pull",
            body: array_of("0", 4_000),
            signed_in: true,
            origin: ORIGIN,
            status: StatusCode::BAD_REQUEST,
        },
    ];
    for case in &cases {
        refuse(&app, &cookie, case).await;
    }
}

#[tokio::test]
async fn a_push_over_the_accounts_rate_is_refused_before_its_body_is_read() {
    let app = app(ProtectionSettings {
        pushes_per_second: 1,
        push_burst: 1,
        ..ProtectionSettings::default()
    });
    let cookie = sign_up(&app).await;
    let ok = push_of(
        0,
        PROTOCOL_VERSION,
        |m| change_json(m, "x"),
        &format!("{}]}}}}", change_json(1, "x")),
    );
    let case = |body: Vec<u8>, status| Case {
        name: "over the rate",
        path: "/api/push",
        body,
        signed_in: true,
        origin: ORIGIN,
        status,
    };
    let first = ok.clone();
    refuse_once(&app, &cookie, &case(first, StatusCode::OK)).await;
    refuse(
        &app,
        &cookie,
        &case(
            array_of("0", 8 * 1024 * 1024 - 1024),
            StatusCode::TOO_MANY_REQUESTS,
        ),
    )
    .await;
}

/// Sends `case` once, declared, to spend an allowance.
async fn refuse_once(app: &Router, cookie: &str, case: &Case) {
    let req = Request::post(case.path)
        .header(header::HOST, HOST)
        .header(header::ORIGIN, case.origin)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"))
        .body(Body::from(case.body.clone()))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    assert_eq!(res.status(), case.status);
}
