//! Fuzzing the request decoding and validation (issue 5): random bytes,
//! random JSON values and mutations of valid bodies (JSON-level edits, then
//! byte-level edits) thrown at every server function.
//!
//! Two targets:
//! - through the real router, push and pull with a signed-in session and the
//!   account functions without one: every answer must be a 200 that decodes
//!   as the function's output, or a 4xx whose body is an [`AppError`] of that
//!   status, never a 500 or a panic. The status is also predicted from the
//!   decoding and validation functions the server uses, so a body accepted
//!   or refused for the wrong reason fails too;
//! - the decoding and validation functions directly (much faster), with
//!   their invariants.
//!
//! Cases: `PROPTEST_CASES` (default 256). A failure is shrunk and printed;
//! nothing is written to disk.

use std::time::Instant;

use axum::http::StatusCode;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::client::{relaxed, router_with, Browser, PASSWORD};
use notesync::api::{Account, AppError, Pull, Push, SignIn, SignOut, SignUp, Whoami};
use notesync::domain::{AccountInputError, NoteDraft, Password, UserName, LIMITS};
use notesync::server::boundary::Endpoint;
use notesync::server::inspect::{check_push, PushShapeError, MAX_WIRE_TAGS};
use notesync::store::contract::{create, delete, edit, mutation_id, note_id};
use notesync::sync::protocol::{
    ChangeOp, ChangeResult, Checkpoint, ProtocolError, PullRequest, PullResponse, PushRequest,
    PushResponse, MAX_SAFE_INTEGER, PROTOCOL_VERSION, SUPPORTED_PROTOCOLS,
};

// ---- generating inputs ----

const ENDPOINTS: [&str; 6] = [
    "/api/push",
    "/api/pull",
    "/api/sign_in",
    "/api/sign_up",
    "/api/sign_out",
    "/api/whoami",
];

/// Every seed: the valid bodies, then bodies at and just beyond each limit
/// of the boundary (body size per endpoint, changes per push, tags per note).
/// Made once: every case picks from them.
fn seeds() -> &'static [(usize, Value)] {
    static SEEDS: std::sync::OnceLock<Vec<(usize, Value)>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(make_seeds)
}

fn make_seeds() -> Vec<(usize, Value)> {
    let mut all = valid_seeds();
    all.extend(
        limit_seeds()
            .into_iter()
            .map(|(endpoint, body, _)| (endpoint, body)),
    );
    all
}

/// `body` with a `pad` field making its JSON exactly `len` bytes.
fn padded(mut body: Value, len: usize) -> Value {
    body["pad"] = Value::from("");
    let bare = serde_json::to_vec(&body).expect("serialises").len();
    body["pad"] = Value::from("x".repeat(len - bare));
    assert_eq!(serde_json::to_vec(&body).expect("serialises").len(), len);
    body
}

/// Bodies at each limit (`true`: accepted) and one past it (`false`).
fn limit_seeds() -> Vec<(usize, Value, bool)> {
    let push = |changes: Vec<notesync::sync::protocol::Change>| {
        json!({ "req": PushRequest {
            protocol: PROTOCOL_VERSION,
            client_id: notesync::domain::ClientId::new(1_600_000_000_000, [4; 10]),
            changes,
            account: None,
        }})
    };
    let tagged = |tags: usize| {
        let mut change = create(50, 50, "many tags");
        if let ChangeOp::Upsert(draft) = &mut change.op {
            draft.tags = (0..tags).map(|n| format!("t{n}")).collect();
        }
        push(vec![change])
    };
    let batch = |n: u32| {
        push(
            (1..=n)
                .map(|m| create(1_000 + m, (m % 250) as u8, "x"))
                .collect(),
        )
    };
    let pull = json!({ "req": PullRequest {
        protocol: PROTOCOL_VERSION,
        checkpoint: Checkpoint(0),
        limit: 10,
        download_head: None,
        account: None,
    }});
    let sign_in = json!({ "name": "fuzzer", "password": PASSWORD });
    let limit = |path: &str| Endpoint::of_path(path).body_limit();
    let mut seeds = vec![
        (0, tagged(MAX_WIRE_TAGS), true),
        (0, tagged(MAX_WIRE_TAGS + 1), false),
        (0, batch(LIMITS.max_batch_changes as u32), true),
        (0, batch(LIMITS.max_batch_changes as u32 + 1), false),
    ];
    for (endpoint, body) in [(1, pull), (2, sign_in), (5, json!({}))] {
        let at = limit(ENDPOINTS[endpoint]);
        seeds.push((endpoint, padded(body.clone(), at), true));
        seeds.push((endpoint, padded(body, at + 1), false));
    }
    seeds
}

/// Valid bodies of every endpoint (index into [`ENDPOINTS`], body).
fn valid_seeds() -> Vec<(usize, Value)> {
    let push = |changes| {
        json!({ "req": PushRequest {
            protocol: PROTOCOL_VERSION,
            client_id: notesync::domain::ClientId::new(1_600_000_000_000, [4; 10]),
            changes,
            account: None,
        }})
    };
    let pull = |checkpoint, limit| {
        json!({ "req": PullRequest {
            protocol: PROTOCOL_VERSION,
            checkpoint: Checkpoint(checkpoint),
            limit,
            download_head: None,
            account: None,
        }})
    };
    let mut tagged = create(9, 9, "tagged body\nline two");
    if let ChangeOp::Upsert(draft) = &mut tagged.op {
        draft.tags = vec!["work".into(), "home".into()];
    }
    vec![
        (0, push(vec![create(1, 1, "hello")])),
        (0, push(vec![edit(2, 1, 1, Some("hello"), "hello again")])),
        (0, push(vec![delete(3, 2, 0), create(4, 3, "x"), tagged])),
        (1, pull(0, 10)),
        (1, pull(3, 5_000)),
        (2, json!({ "name": "fuzzer", "password": PASSWORD })),
        (3, json!({ "name": "newcomer", "password": "long enough" })),
        (4, json!({})),
        (5, json!({})),
    ]
}

/// Keys of the protocol, so edits hit fields the decoder knows.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "req", "protocol", "client_id", "changes", "mutation_id", "note_id", "base_rev",
            "base", "op", "kind", "upsert", "delete", "hlc", "wall_ms", "counter", "client",
            "created_at", "title", "body", "tags", "checkpoint", "limit", "name", "password",
        ])
        .prop_map(str::to_string),
        1 => ".{0,8}",
    ]
}

fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            String::new(),
            "upsert".into(),
            "delete".into(),
            note_id(1).to_string(),
            mutation_id(7).to_string(),
            note_id(1).to_string().to_uppercase(),
            "0b8a2b64-5c1e-4d2a-9f00-1a2b3c4d5e6f".into(),
            "00000000-0000-7000-8000-000000000000".into(),
            "\u{0}".into(),
            "\u{212a}im".into(),
            "Ann.Lee".into(),
            "a\u{200b}b\u{202e}c".into(),
            "x".repeat(LIMITS.max_title_bytes + 1),
            "t".repeat(LIMITS.max_tag_chars + 1),
            "p".repeat(257),
        ]),
        ".{0,40}",
        "[a-z0-9._-]{0,34}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0u64..8).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
            (1 << 53) - 1,
            1 << 53,
            (1 << 53) + 1,
        ])
        .prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        interesting_string().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An edit of one JSON node (chosen by its pre-order index, modulo the count).
#[derive(Debug, Clone)]
enum JsonEdit {
    Replace(usize, Value),
    RemoveKey(usize, usize),
    AddKey(usize, String, Value),
    DuplicateElement(usize),
}

/// An edit of the serialised bytes (positions modulo the length).
#[derive(Debug, Clone)]
enum ByteEdit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        4 => (any::<usize>(), json_value()).prop_map(|(n, v)| JsonEdit::Replace(n, v)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(n, k)| JsonEdit::RemoveKey(n, k)),
        1 => (any::<usize>(), key(), json_value()).prop_map(|(n, k, v)| JsonEdit::AddKey(n, k, v)),
        1 => any::<usize>().prop_map(JsonEdit::DuplicateElement),
    ]
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| ByteEdit::Flip(at, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| ByteEdit::Set(at, b)),
        (
            any::<usize>(),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 1..8),
                prop::sample::select(vec![
                    b"\"".to_vec(),
                    b"{".to_vec(),
                    b"}".to_vec(),
                    b"[".to_vec(),
                    b",".to_vec(),
                    b"\\u0000".to_vec(),
                    b"\\ud800".to_vec(),
                    b"1e999".to_vec(),
                    b"-0".to_vec(),
                    b"\xff".to_vec(),
                ]),
            ]
        )
            .prop_map(|(at, bytes)| ByteEdit::Insert(at, bytes)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| ByteEdit::Remove(at, n)),
        any::<usize>().prop_map(ByteEdit::Truncate),
    ]
}

/// Where a case's body comes from.
#[derive(Debug, Clone)]
enum Origin {
    Bytes(Vec<u8>),
    Json {
        value: Value,
        wrap: bool,
    },
    Seed {
        seed: usize,
        json: Vec<JsonEdit>,
        bytes: Vec<ByteEdit>,
    },
}

/// One request: the endpoint (index into [`ENDPOINTS`]) and its body.
#[derive(Debug, Clone)]
struct Case {
    endpoint: usize,
    origin: Origin,
}

fn case() -> impl Strategy<Value = Case> {
    let n_seeds = seeds().len();
    let origin = prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Origin::Bytes),
        2 => (json_value(), any::<bool>()).prop_map(|(value, wrap)| Origin::Json { value, wrap }),
        7 => (
            0..n_seeds,
            prop::collection::vec(json_edit(), 0..4),
            prop::collection::vec(byte_edit(), 0..3),
        )
            .prop_map(|(seed, json, bytes)| Origin::Seed { seed, json, bytes }),
    ];
    // Seeds mostly go to their own endpoint; anything may go anywhere.
    (origin, 0..ENDPOINTS.len(), 0u8..10).prop_map(|(origin, any_endpoint, roll)| {
        let endpoint = match &origin {
            Origin::Seed { seed, .. } if roll < 8 => seeds()[*seed].0,
            _ => any_endpoint,
        };
        Case { endpoint, origin }
    })
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn nth_node<'a>(v: &'a mut Value, idx: &mut usize) -> Option<&'a mut Value> {
    if *idx == 0 {
        return Some(v);
    }
    *idx -= 1;
    match v {
        Value::Array(a) => {
            for child in a.iter_mut() {
                if let Some(found) = nth_node(child, idx) {
                    return Some(found);
                }
            }
        }
        Value::Object(o) => {
            for child in o.values_mut() {
                if let Some(found) = nth_node(child, idx) {
                    return Some(found);
                }
            }
        }
        _ => {}
    }
    None
}

fn apply_json(root: &mut Value, e: &JsonEdit) {
    let (JsonEdit::Replace(n, _)
    | JsonEdit::RemoveKey(n, _)
    | JsonEdit::AddKey(n, _, _)
    | JsonEdit::DuplicateElement(n)) = e;
    let mut idx = n % count_nodes(root);
    let Some(node) = nth_node(root, &mut idx) else {
        return;
    };
    match (e, node) {
        (JsonEdit::Replace(_, v), node) => *node = v.clone(),
        (JsonEdit::RemoveKey(_, k), Value::Object(o)) if !o.is_empty() => {
            let key = o.keys().nth(k % o.len()).cloned().unwrap_or_default();
            o.remove(&key);
        }
        (JsonEdit::RemoveKey(_, k), Value::Array(a)) if !a.is_empty() => {
            let at = k % a.len();
            a.remove(at);
        }
        (JsonEdit::AddKey(_, k, v), Value::Object(o)) => {
            o.insert(k.clone(), v.clone());
        }
        (JsonEdit::DuplicateElement(_), Value::Array(a)) if !a.is_empty() => {
            let first = a[0].clone();
            a.push(first);
        }
        _ => {}
    }
}

fn apply_bytes(bytes: &mut Vec<u8>, e: &ByteEdit) {
    let len = bytes.len();
    match e {
        ByteEdit::Flip(at, bit) if len > 0 => bytes[at % len] ^= 1 << bit,
        ByteEdit::Set(at, b) if len > 0 => bytes[at % len] = *b,
        ByteEdit::Insert(at, new) => {
            let at = at % (len + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        ByteEdit::Remove(at, n) if len > 0 => {
            let at = at % len;
            let end = (at + n).min(len);
            bytes.drain(at..end);
        }
        ByteEdit::Truncate(at) => bytes.truncate(at % (len + 1)),
        _ => {}
    }
}

impl Case {
    fn path(&self) -> &'static str {
        ENDPOINTS[self.endpoint]
    }

    fn body(&self) -> Vec<u8> {
        match &self.origin {
            Origin::Bytes(b) => b.clone(),
            Origin::Json { value, wrap } => {
                let v = if *wrap {
                    json!({ "req": value })
                } else {
                    value.clone()
                };
                serde_json::to_vec(&v).expect("serialises")
            }
            Origin::Seed { seed, json, bytes } => {
                let mut v = seeds()[*seed].1.clone();
                for e in json {
                    apply_json(&mut v, e);
                }
                let mut out = serde_json::to_vec(&v).expect("serialises");
                for e in bytes {
                    apply_bytes(&mut out, e);
                }
                out
            }
        }
    }
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4_096,
        ..Config::default()
    }
}

// ---- the router target ----

/// What the server must answer, predicted from the functions it decodes and
/// validates with.
#[derive(Debug)]
enum Expected {
    /// The body does not decode: a 400 naming the request as malformed (or
    /// the protocol version it carries).
    Unreadable,
    /// Decodes, but is refused as a whole with this error.
    Refused(AppError),
    /// Decodes and is valid: a 200 for push and pull.
    Ok,
    /// An account call that decodes: the outcome depends on the accounts.
    Account,
    /// Over the endpoint's body limit: 413 before it is read.
    TooLarge,
}

fn expected(path: &str, body: &[u8]) -> Expected {
    if body.len() > Endpoint::of_path(path).body_limit() {
        return Expected::TooLarge;
    }
    match path {
        "/api/push" => match serde_json::from_slice::<Push>(body) {
            Err(_) => Expected::Unreadable,
            Ok(_) if check_push(body) == Err(PushShapeError::TooManyTags) => Expected::Unreadable,
            Ok(p) => match p.req.check() {
                Err(e) => Expected::Refused(AppError::Protocol(e)),
                Ok(()) => Expected::Ok,
            },
        },
        "/api/pull" => match serde_json::from_slice::<Pull>(body) {
            Err(_) => Expected::Unreadable,
            Ok(p) => match p.req.effective_limit() {
                Err(e) => Expected::Refused(AppError::Protocol(e)),
                Ok(_) => Expected::Ok,
            },
        },
        "/api/sign_in" => match serde_json::from_slice::<SignIn>(body) {
            Err(_) => Expected::Unreadable,
            Ok(s) if UserName::parse(&s.name).is_err() || Password::parse(&s.password).is_err() => {
                Expected::Refused(AppError::BadCredentials)
            }
            Ok(_) => Expected::Account,
        },
        "/api/sign_up" => match serde_json::from_slice::<SignUp>(body) {
            Err(_) => Expected::Unreadable,
            Ok(s) => match (UserName::parse(&s.name), Password::parse(&s.password)) {
                (Err(e), _) | (Ok(_), Err(e)) => Expected::Refused(AppError::InvalidAccount(e)),
                _ => Expected::Account,
            },
        },
        "/api/sign_out" => match serde_json::from_slice::<SignOut>(body) {
            Err(_) => Expected::Unreadable,
            Ok(_) => Expected::Ok,
        },
        _ => match serde_json::from_slice::<Whoami>(body) {
            Err(_) => Expected::Unreadable,
            Ok(_) => Expected::Ok,
        },
    }
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// Checks one answer against the prediction.
fn check_answer(
    path: &str,
    request: &[u8],
    status: StatusCode,
    body: &[u8],
) -> Result<(), TestCaseError> {
    prop_assert!(
        status == StatusCode::OK || status.is_client_error(),
        "{path}: status {status}: {}",
        text(body)
    );
    if status != StatusCode::OK {
        let e: AppError = serde_json::from_slice(body).map_err(|e| {
            TestCaseError::fail(format!(
                "{path}: {status} is not an AppError ({e}): {}",
                text(body)
            ))
        })?;
        prop_assert!(!e.to_string().is_empty());
        let expected = expected(path, request);
        if matches!(expected, Expected::TooLarge) {
            prop_assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
            prop_assert!(matches!(e, AppError::BadRequest(_)), "{}: {:?}", path, e);
            return Ok(());
        }
        prop_assert_eq!(e.status(), status.as_u16(), "{}: {:?}", path, e);
        return match expected {
            Expected::Unreadable => {
                prop_assert!(
                    matches!(
                        e,
                        AppError::BadRequest(_)
                            | AppError::Protocol(ProtocolError::UnsupportedVersion { .. })
                    ),
                    "{}: unreadable body answered {:?}",
                    path,
                    e
                );
                Ok(())
            }
            Expected::Refused(want) => {
                prop_assert_eq!(e, want, "{}", path);
                Ok(())
            }
            Expected::Account => {
                prop_assert!(
                    matches!(
                        e,
                        AppError::BadCredentials
                            | AppError::NameTaken
                            | AppError::TooManyAttempts(_)
                    ),
                    "{}: {:?}",
                    path,
                    e
                );
                Ok(())
            }
            Expected::Ok => Err(TestCaseError::fail(format!(
                "{path}: a valid request was refused with {e:?}"
            ))),
            Expected::TooLarge => Ok(()),
        };
    }
    match expected(path, request) {
        Expected::Ok | Expected::Account => {}
        other => {
            return Err(TestCaseError::fail(format!(
                "{path}: answered 200 where {other:?} was expected"
            )))
        }
    }
    // Whatever the server accepted, a browser reads back exactly: no number
    // in an answer is beyond what JSON.parse holds.
    let answer: Value = serde_json::from_slice(body)
        .map_err(|e| TestCaseError::fail(format!("{path}: not JSON ({e})")))?;
    prop_assert!(
        numbers_are_safe(&answer),
        "{}: an answer holds a number beyond 2^53 - 1: {}",
        path,
        text(body)
    );
    match path {
        "/api/push" => {
            let res: PushResponse = serde_json::from_slice(body)
                .map_err(|e| TestCaseError::fail(format!("push answer ({e}): {}", text(body))))?;
            let req = serde_json::from_slice::<Push>(request)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .req;
            prop_assert_eq!(res.results.len(), req.changes.len());
            for (change, result) in req.changes.iter().zip(&res.results) {
                if change.check().is_err() {
                    prop_assert!(
                        matches!(result, ChangeResult::Rejected { .. }),
                        "an invalid change was {:?}",
                        result
                    );
                }
            }
        }
        "/api/pull" => {
            let res: PullResponse = serde_json::from_slice(body)
                .map_err(|e| TestCaseError::fail(format!("pull answer ({e}): {}", text(body))))?;
            let req = serde_json::from_slice::<Pull>(request)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .req;
            if let PullResponse::Page {
                entries,
                checkpoint,
                ..
            } = res
            {
                let limit = req.effective_limit().unwrap_or(0) as usize;
                prop_assert!(entries.len() <= limit);
                prop_assert!(entries.iter().all(|e| e.seq > req.checkpoint.0));
                prop_assert!(checkpoint >= req.checkpoint || entries.is_empty());
            }
        }
        "/api/sign_in" | "/api/sign_up" => {
            let _: Account = serde_json::from_slice(body)
                .map_err(|e| TestCaseError::fail(format!("account ({e}): {}", text(body))))?;
        }
        "/api/sign_out" => {
            let _: () = serde_json::from_slice(body)
                .map_err(|e| TestCaseError::fail(format!("sign-out ({e}): {}", text(body))))?;
        }
        _ => {
            let _: Option<Account> = serde_json::from_slice(body)
                .map_err(|e| TestCaseError::fail(format!("whoami ({e}): {}", text(body))))?;
        }
    }
    Ok(())
}

/// Whether every number in `v` is one JavaScript holds exactly.
fn numbers_are_safe(v: &Value) -> bool {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(|n| n <= MAX_SAFE_INTEGER)
            .or_else(|| n.as_i64().map(|n| n.unsigned_abs() <= MAX_SAFE_INTEGER))
            .unwrap_or(true),
        Value::Array(items) => items.iter().all(numbers_are_safe),
        Value::Object(fields) => fields.values().all(numbers_are_safe),
        _ => true,
    }
}

#[test]
fn fuzz_every_endpoint_through_the_router() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let router = router_with(relaxed());
    let signed_in = rt.block_on(async {
        let mut b = Browser::new(&router);
        b.sign_up("fuzzer", PASSWORD).await.expect("signs up");
        b
    });
    // Account calls go without the session, so a sign-in or sign-out in the
    // fuzz cannot end the session that push and pull use.
    let anonymous = Browser::new(&router);
    let config = config();
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let result = runner.run(&case(), |case| {
        let path = case.path();
        let body = case.body();
        let browser = if case.endpoint < 2 {
            &signed_in
        } else {
            &anonymous
        };
        let (status, answer) =
            rt.block_on(browser.clone().send(browser.request(path, body.clone())));
        check_answer(path, &body, status, &answer)
    });
    eprintln!(
        "fuzz through the router: {cases} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // The router still serves the signed-in user after all of it.
    let (status, _) = rt.block_on(signed_in.clone().send(signed_in.request(
        "/api/pull",
        br#"{"req":{"protocol":1,"checkpoint":0,"limit":1}}"#.to_vec(),
    )));
    assert_eq!(status, StatusCode::OK);
}

// ---- the direct target: decoding and validation functions ----

fn check_functions(path: &str, body: &[u8]) -> Result<(), TestCaseError> {
    match path {
        "/api/push" => {
            // The boundary's check before decoding agrees with the decoder:
            // what it passes decodes, and what decodes within the limits on
            // changes and tags it passes.
            let decoded = serde_json::from_slice::<Push>(body).ok().map(|p| p.req);
            let inspected = check_push(body);
            if inspected.is_ok() {
                prop_assert!(decoded.is_some(), "passed the check but does not decode");
            }
            if let Some(req) = &decoded {
                let within = req.changes.len() <= LIMITS.max_batch_changes
                    && req.changes.iter().all(|c| {
                        let tags = |d: &NoteDraft| d.tags.len() <= MAX_WIRE_TAGS;
                        c.base.as_ref().is_none_or(tags)
                            && match &c.op {
                                ChangeOp::Upsert(d) => tags(d),
                                ChangeOp::Delete => true,
                            }
                    });
                prop_assert_eq!(inspected.is_ok(), within, "{:?}", inspected);
            }
            for req in [decoded, serde_json::from_slice::<PushRequest>(body).ok()]
                .into_iter()
                .flatten()
            {
                let whole = req.check();
                if whole.is_ok() {
                    prop_assert!((1..=LIMITS.max_batch_changes).contains(&req.changes.len()));
                    prop_assert!(SUPPORTED_PROTOCOLS.contains(&req.protocol));
                }
                for change in &req.changes {
                    if change.check().is_ok() {
                        if let ChangeOp::Upsert(draft) = &change.op {
                            let once = draft.clone().revalidate().map_err(|e| {
                                TestCaseError::fail(format!("checked draft invalid: {e}"))
                            })?;
                            prop_assert_eq!(once.clone().revalidate().ok(), Some(once.clone()));
                            prop_assert!(once.body.len() <= LIMITS.max_body_bytes);
                            prop_assert!(once.title.len() <= LIMITS.max_title_bytes);
                            prop_assert!(once.tags.len() <= LIMITS.max_tags);
                        }
                    }
                }
                // What decodes re-encodes to the same request.
                let again = serde_json::to_vec(&req).expect("serialises");
                prop_assert_eq!(
                    serde_json::from_slice::<PushRequest>(&again).ok(),
                    Some(req)
                );
            }
        }
        "/api/pull" => {
            if let Ok(p) = serde_json::from_slice::<Pull>(body) {
                match p.req.effective_limit() {
                    Ok(limit) => prop_assert!(limit >= 1 && limit <= p.req.limit),
                    Err(ProtocolError::ZeroLimit) => prop_assert_eq!(p.req.limit, 0),
                    Err(ProtocolError::UnsupportedVersion { got, .. }) => {
                        prop_assert!(!SUPPORTED_PROTOCOLS.contains(&got))
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("pull refused: {e}"))),
                }
            }
        }
        _ => {
            let creds = serde_json::from_slice::<SignIn>(body)
                .ok()
                .map(|s| (s.name, s.password))
                .or_else(|| {
                    serde_json::from_slice::<SignUp>(body)
                        .ok()
                        .map(|s| (s.name, s.password))
                });
            if let Some((name, password)) = creds {
                check_name(&name)?;
                check_password(&password)?;
            }
            // Any text at all as a name or a password.
            let lossy = String::from_utf8_lossy(body);
            check_name(&lossy)?;
            check_password(&lossy)?;
        }
    }
    Ok(())
}

fn check_name(text: &str) -> Result<(), TestCaseError> {
    match UserName::parse(text) {
        Ok(name) => {
            let s = name.as_str();
            prop_assert!((UserName::MIN_LEN..=UserName::MAX_LEN).contains(&s.len()));
            prop_assert!(s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)));
            prop_assert!(s.as_bytes()[0].is_ascii_alphanumeric());
            prop_assert_eq!(UserName::parse(s).ok(), Some(name.clone()));
        }
        Err(e) => prop_assert_eq!(e, AccountInputError::BadName),
    }
    Ok(())
}

fn check_password(text: &str) -> Result<(), TestCaseError> {
    let chars = text.chars().count();
    let valid = (Password::MIN_LEN..=Password::MAX_LEN).contains(&chars);
    match Password::parse(text) {
        Ok(p) => {
            prop_assert!(valid);
            prop_assert_eq!(p.expose(), text);
        }
        Err(e) => {
            prop_assert!(!valid);
            prop_assert_eq!(e, AccountInputError::BadPassword);
        }
    }
    Ok(())
}

#[test]
fn fuzz_decoding_and_validation_functions() {
    let config = config();
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let result = runner.run(&case(), |case| check_functions(case.path(), &case.body()));
    eprintln!(
        "fuzz of the decoding functions: {cases} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The mutators are deterministic and keep valid seeds valid when empty.
#[test]
fn limit_seeds_sit_at_and_just_past_each_limit() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let router = router_with(relaxed());
    let signed_in = rt.block_on(async {
        let mut b = Browser::new(&router);
        b.sign_up("limits", PASSWORD).await.expect("signs up");
        b
    });
    let anonymous = Browser::new(&router);
    for (endpoint, seed, accepted) in limit_seeds() {
        let body = serde_json::to_vec(&seed).expect("serialises");
        let path = ENDPOINTS[endpoint];
        let e = expected(path, &body);
        assert_eq!(
            matches!(e, Expected::Ok | Expected::Account),
            accepted,
            "{path}, {} bytes: {e:?}",
            body.len()
        );
        // And the server answers as predicted.
        let browser = if endpoint < 2 { &signed_in } else { &anonymous };
        let (status, answer) =
            rt.block_on(browser.clone().send(browser.request(path, body.clone())));
        if let Err(e) = check_answer(path, &body, status, &answer) {
            panic!("{path}, {} bytes: {e}", body.len());
        }
    }
}

#[test]
fn seeds_are_valid_requests() {
    for (endpoint, seed) in valid_seeds() {
        let body = serde_json::to_vec(&seed).expect("serialises");
        let path = ENDPOINTS[endpoint];
        let e = expected(path, &body);
        assert!(
            matches!(e, Expected::Ok | Expected::Account),
            "{path}: {e:?}"
        );
    }
    let mut v = seeds()[0].1.clone();
    apply_json(&mut v, &JsonEdit::Replace(0, Value::Null));
    assert_eq!(v, Value::Null);
    let mut b = b"abc".to_vec();
    apply_bytes(&mut b, &ByteEdit::Remove(1, 5));
    assert_eq!(b, b"a");
    let draft = NoteDraft::default();
    assert!(draft.revalidate().is_ok());
}
