//! The sync driver's download path against the real `SyncService`: the small
//! first page, the next page fetched while one is stored, and what the UI is
//! told. The multi-client simulation proves convergence; these pin down the
//! requests a download makes, which is where its speed comes from.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::client::{relaxed, router_with, Browser};
use notesync::api::AppError;
use notesync::domain::{ClientId, MutationId, NoteDraft, NoteId, UserId};
use notesync::server::pokes::poked_changes;
use notesync::server::service::SyncService;
use notesync::store::MemoryStore;
use notesync::sync::driver::{
    Driver, DriverConfig, Host, PortError, ReplicaChange, ReplicaStore, Transport,
};
use notesync::sync::engine::{Action, Event, SyncState, SyncStatus, Timing};
use notesync::sync::hlc::Hlc;
use notesync::sync::memory_replica::MemoryReplica;
use notesync::sync::merge::Strategy;
use notesync::sync::protocol::{
    Change, ChangeOp, Checkpoint, FeedEntry, PokedChanges, ProtocolError, PullRequest,
    PullResponse, PushRequest, PushResponse, PROTOCOL_VERSION,
};

const NOW: u64 = 1_700_000_000_000;

fn user() -> UserId {
    UserId::parse("0190f1c2-7a4b-7c3d-8e9f-0a1b2c3d4e5f").expect("user id")
}

fn draft(text: &str) -> NoteDraft {
    NoteDraft::validated(format!("title {text}"), text.to_string(), vec![]).expect("draft")
}

/// The service, and every pull request the driver sent to it.
struct Recorder {
    service: SyncService,
    pulls: RefCell<Vec<PullRequest>>,
    pushes: RefCell<usize>,
}

#[async_trait(?Send)]
impl Transport for Recorder {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, PortError> {
        *self.pushes.borrow_mut() += 1;
        Ok(self.service.push(&user(), request).await.expect("push"))
    }

    async fn pull(&self, request: PullRequest) -> Result<PullResponse, PortError> {
        self.pulls.borrow_mut().push(request.clone());
        Ok(self.service.pull(&user(), request).await.expect("pull"))
    }
}

impl Recorder {
    fn over(service: SyncService) -> Self {
        Self {
            service,
            pulls: RefCell::default(),
            pushes: RefCell::default(),
        }
    }
}

/// An edit of a note only this replica has, saved to its outbox.
fn edit_mine(replica: &MemoryReplica, host: &Quiet) -> NoteId {
    let mine = NoteId::new(NOW + 99, [99; 10]);
    replica
        .edit(mine, draft("mine"), NOW, host.fresh_mutation_id())
        .expect("edit");
    mine
}

/// An edit saved to this replica's outbox of its own note numbered `n`.
fn edit_own(replica: &MemoryReplica, host: &Quiet, n: u8, draft: NoteDraft) {
    replica
        .edit(
            NoteId::new(NOW + 1, [n; 10]),
            draft,
            NOW,
            host.fresh_mutation_id(),
        )
        .expect("edit");
}

/// Time moves only when the driver waits (to the end of the wait); events
/// come only from the test; every change the driver reports is kept.
#[derive(Default)]
struct Quiet {
    changes: RefCell<Vec<ReplicaChange>>,
    ids: RefCell<u64>,
    waited_ms: RefCell<u64>,
    errors_shown: RefCell<usize>,
}

#[async_trait(?Send)]
impl Host for Quiet {
    fn now_ms(&self) -> u64 {
        NOW + *self.waited_ms.borrow()
    }
    fn random_u32(&self) -> u32 {
        7
    }
    fn fresh_mutation_id(&self) -> MutationId {
        *self.ids.borrow_mut() += 1;
        let n = *self.ids.borrow();
        let mut random = [9u8; 10];
        random[2..].copy_from_slice(&n.to_be_bytes());
        MutationId::new(NOW, random)
    }
    fn online(&self) -> bool {
        true
    }
    async fn wait(&self, deadline: Option<u64>) -> Option<Event> {
        if let Some(at) = deadline {
            let mut waited = self.waited_ms.borrow_mut();
            *waited = (*waited).max(at.saturating_sub(NOW));
        }
        None
    }
    fn poll_event(&self) -> Option<Event> {
        None
    }
    fn status(&self, status: &SyncStatus) {
        if matches!(status.state, SyncState::Error { .. }) {
            *self.errors_shown.borrow_mut() += 1;
        }
    }
    fn replica_changed(&self, change: ReplicaChange) {
        self.changes.borrow_mut().push(change);
    }
}

/// A server holding `count` notes of the user, created by another device.
async fn server_with(count: u8) -> SyncService {
    let service = SyncService::new(
        Arc::new(MemoryStore::new()),
        Strategy::Merge,
        Duration::from_secs(90 * 24 * 3600),
    );
    create_elsewhere(&service, 0..count).await;
    service
}

/// What the server holds for the user: one page from the start (the tests
/// keep it under the page limit).
async fn everything_on(service: &SyncService) -> Vec<FeedEntry> {
    let page = service
        .pull(
            &user(),
            PullRequest {
                protocol: PROTOCOL_VERSION,
                checkpoint: Checkpoint(0),
                limit: 100,
                download_head: None,
                account: None,
            },
        )
        .await
        .expect("pull");
    let PullResponse::Page {
        entries, has_more, ..
    } = page
    else {
        panic!("a page");
    };
    assert!(!has_more, "everything in one page");
    entries
}

/// Another device creates the notes numbered `numbers`.
async fn create_elsewhere(service: &SyncService, numbers: std::ops::Range<u8>) {
    let client = ClientId::new(NOW, [1; 10]);
    let changes = numbers
        .map(|n| Change {
            mutation_id: MutationId::new(NOW, [n; 10]),
            note_id: NoteId::new(NOW + u64::from(n), [n; 10]),
            base_rev: notesync::domain::Revision::NEW,
            base: None,
            op: ChangeOp::Upsert(draft(&format!("note {n}"))),
            hlc: Hlc {
                wall_ms: NOW,
                counter: u32::from(n),
                client,
            },
            created_at: NOW,
        })
        .collect();
    service
        .push(
            &user(),
            PushRequest {
                protocol: PROTOCOL_VERSION,
                client_id: client,
                changes,
                account: None,
            },
        )
        .await
        .expect("seed");
}

/// What the server's poke stream would carry now for a stream that last
/// announced `since`.
async fn poke_since(service: &SyncService, since: u64) -> Box<PokedChanges> {
    let store = service.store();
    let head = store.feed_head(&user()).await.expect("head");
    let changes = poked_changes(store.as_ref(), &user(), since, head)
        .await
        .expect("read")
        .expect("few enough changes for a poke");
    Box::new(changes)
}

fn config(first: u32, rest: u32) -> DriverConfig {
    DriverConfig {
        client_id: ClientId::new(NOW, [2; 10]),
        timing: Timing::default(),
        pull_limit: rest,
        first_pull_limit: first,
        push_batch: 100,
    }
}

/// Steps the driver until it is synced and waits.
async fn settle<T: Transport>(driver: &mut Driver<'_, MemoryReplica, T, Quiet>) {
    for _ in 0..100 {
        let action = driver.step().await;
        let synced = driver.status().state == SyncState::Synced;
        if synced && matches!(action, Action::WaitUntil(_) | Action::WaitForEvent) {
            return;
        }
    }
    panic!("the driver never settled");
}

#[tokio::test]
async fn a_download_starts_small_and_fetches_each_next_page_while_storing() {
    let transport = Recorder::over(server_with(12).await);
    let (replica, host) = (MemoryReplica::new(), Quiet::default());
    let mut driver = Driver::new(&replica, &transport, &host, config(2, 4));
    settle(&mut driver).await;

    assert_eq!(replica.live_notes().len(), 12);
    let pulls = transport.pulls.borrow();
    let asked: Vec<(u64, u32)> = pulls.iter().map(|r| (r.checkpoint.0, r.limit)).collect();
    // 2 + 4 + 4 + 2: the first page small, each page asked for once.
    assert_eq!(asked, vec![(0, 2), (2, 4), (6, 4), (10, 4)]);
    // Every later page of the download names the first page's head.
    assert!(pulls[1..].iter().all(|r| r.download_head == Some(12)));
    // The UI heard of every page, with the notes as stored.
    let told: Vec<usize> = host
        .changes
        .borrow()
        .iter()
        .map(|c| c.stored.len())
        .collect();
    assert_eq!(told, vec![2, 4, 4, 2]);
    let stored = host.changes.borrow()[0].stored[0].clone();
    assert_eq!(replica.note(stored.id), Some(stored));
}

#[tokio::test]
async fn a_page_fetched_ahead_is_dropped_when_a_push_comes_between() {
    let transport = Recorder::over(server_with(6).await);
    let (replica, host) = (MemoryReplica::new(), Quiet::default());
    let mut driver = Driver::new(&replica, &transport, &host, config(2, 2));
    // Starts with a push of nothing, then the first page (2 of 6), which
    // fetches the second ahead.
    while transport.pulls.borrow().len() < 2 {
        driver.step().await;
    }
    assert_eq!(replica.live_notes().len(), 2);
    // A local edit: pushed before the next pull, and the page fetched
    // before the push is not used (it predates what the push changed).
    edit_mine(&replica, &host);
    driver.handle(Event::LocalChange);
    settle(&mut driver).await;

    assert_eq!(*transport.pushes.borrow(), 1);
    let asked: Vec<u64> = transport
        .pulls
        .borrow()
        .iter()
        .map(|r| r.checkpoint.0)
        .collect();
    assert_eq!(asked[..2], [0, 2]);
    assert_eq!(
        asked[2], 2,
        "the page after the push is asked for again: {asked:?}"
    );
    assert_eq!(replica.live_notes().len(), 7);
    assert_eq!(replica.pending_counts().await.expect("counts").total, 0);
}

#[tokio::test]
async fn a_poke_that_carries_the_changes_after_the_checkpoint_needs_no_pull() {
    let transport = Recorder::over(server_with(3).await);
    let (replica, host) = (MemoryReplica::new(), Quiet::default());
    let mut driver = Driver::new(&replica, &transport, &host, config(100, 100));
    settle(&mut driver).await;
    let caught_up = replica.stored_checkpoint();
    let pulls = transport.pulls.borrow().len();
    let told = host.changes.borrow().len();

    // Two notes written elsewhere; the poke covers them from a position
    // before the replica's (the stream announced less than it pulled).
    create_elsewhere(&transport.service, 3..5).await;
    driver.handle(Event::Changes(poke_since(&transport.service, 1).await));
    settle(&mut driver).await;

    assert_eq!(transport.pulls.borrow().len(), pulls, "no pull request");
    assert_eq!(replica.live_notes().len(), 5);
    assert!(replica.stored_checkpoint() > caught_up);
    let changes = host.changes.borrow();
    assert_eq!(changes.len(), told + 1, "the UI heard once");
    let stored: Vec<&str> = changes[told]
        .stored
        .iter()
        .map(|n| n.body.as_str())
        .collect();
    assert_eq!(stored, ["note 3", "note 4"], "only what the replica lacked");
}

#[tokio::test]
async fn a_poke_from_after_the_checkpoint_or_before_a_push_is_not_used() {
    let transport = Recorder::over(server_with(2).await);
    let (replica, host) = (MemoryReplica::new(), Quiet::default());
    let mut driver = Driver::new(&replica, &transport, &host, config(100, 100));
    settle(&mut driver).await;
    let pulls = || transport.pulls.borrow().len();

    // The replica is behind the poke's `since`: what came between is in no
    // poke, so it pulls.
    create_elsewhere(&transport.service, 2..3).await;
    let behind = replica.stored_checkpoint().0 + 1;
    create_elsewhere(&transport.service, 3..4).await;
    let before = pulls();
    driver.handle(Event::Changes(poke_since(&transport.service, behind).await));
    settle(&mut driver).await;
    assert_eq!(pulls(), before + 1);
    assert_eq!(replica.live_notes().len(), 4, "the pull brought both");

    // A local edit is pushed first; the poke read before it is dropped.
    create_elsewhere(&transport.service, 4..5).await;
    let poke = poke_since(&transport.service, replica.stored_checkpoint().0).await;
    edit_mine(&replica, &host);
    driver.handle(Event::LocalChange);
    driver.handle(Event::Changes(poke));
    let before = pulls();
    settle(&mut driver).await;
    assert_eq!(*transport.pushes.borrow(), 1);
    assert_eq!(pulls(), before + 1, "pulled after the push");
    assert_eq!(replica.live_notes().len(), 6);
}

#[tokio::test]
async fn a_new_device_takes_a_whole_snapshot_from_a_poke() {
    let transport = Recorder::over(server_with(3).await);
    let (replica, host) = (MemoryReplica::new(), Quiet::default());
    let mut driver = Driver::new(&replica, &transport, &host, config(100, 100));
    // Read from 0 and complete, it is what a download's first pull would
    // get; the push of nothing the driver starts with does not drop it.
    driver.handle(Event::Changes(poke_since(&transport.service, 0).await));
    settle(&mut driver).await;
    assert!(transport.pulls.borrow().is_empty(), "no pull request");
    assert_eq!(replica.live_notes().len(), 3);
    assert!(
        !replica.resyncing().await.expect("resync mark"),
        "the download finished"
    );
}

#[tokio::test]
async fn a_poke_read_before_a_push_and_arriving_after_it_is_not_used() {
    let transport = Recorder::over(server_with(1).await);
    let (replica, host) = (MemoryReplica::new(), Quiet::default());
    let mut driver = Driver::new(&replica, &transport, &host, config(100, 100));
    settle(&mut driver).await;
    let note = replica.live_notes()[0].clone();

    // Another device edits the note; the poke is read now, so before this
    // replica's own edit of it is pushed, and arrives while that push is on
    // the wire.
    let elsewhere = ClientId::new(NOW, [1; 10]);
    transport
        .service
        .push(
            &user(),
            PushRequest {
                protocol: PROTOCOL_VERSION,
                client_id: elsewhere,
                changes: vec![Change {
                    mutation_id: MutationId::new(NOW, [77; 10]),
                    note_id: note.id,
                    base_rev: note.rev,
                    base: Some(note.draft()),
                    op: ChangeOp::Upsert(draft("from elsewhere")),
                    hlc: Hlc {
                        wall_ms: NOW + 1,
                        counter: 0,
                        client: elsewhere,
                    },
                    created_at: NOW,
                }],
                account: None,
            },
        )
        .await
        .expect("push");
    let stale = poke_since(&transport.service, replica.stored_checkpoint().0).await;
    replica
        .edit(note.id, draft("mine"), NOW + 2, host.fresh_mutation_id())
        .expect("edit");
    driver.handle(Event::LocalChange);
    while *transport.pushes.borrow() == 0 {
        driver.step().await;
    }
    let pulls = transport.pulls.borrow().len();
    driver.handle(Event::Changes(stale));
    settle(&mut driver).await;

    assert_eq!(
        transport.pulls.borrow().len(),
        pulls + 1,
        "pulled instead: the poke predates the push"
    );
    // The server merged the two edits; the replica has that, not the other
    // device's text from before the merge.
    let entries = everything_on(&transport.service).await;
    assert_eq!(replica.note(note.id), Some(entries[0].note.clone()));
}

#[tokio::test]
async fn the_pending_count_follows_edits_offline_and_is_taken_after_the_push_online() {
    let transport = Recorder::over(server_with(1).await);
    let (replica, host) = (MemoryReplica::new(), Quiet::default());
    let mut driver = Driver::new(&replica, &transport, &host, config(100, 100));
    settle(&mut driver).await;

    // Offline, no push is coming: the count is read for the person to see.
    driver.handle(Event::Connectivity { online: false });
    edit_mine(&replica, &host);
    driver.handle(Event::LocalChange);
    assert_eq!(driver.step().await, Action::WaitForEvent);
    assert_eq!(driver.status().pending, 1);
    assert_eq!(*transport.pushes.borrow(), 0);

    // Online, the push counts after settling: nothing is left waiting.
    driver.handle(Event::Connectivity { online: true });
    assert_eq!(driver.step().await, Action::Push);
    assert_eq!(*transport.pushes.borrow(), 1);
    assert_eq!(driver.status().pending, 0);
}

/// The server functions over the real router, as the browser calls them
/// (JSON in the server's request limit, errors as the worker takes them);
/// counts the pushes.
struct OverHttp {
    browser: Browser,
    pushes: RefCell<usize>,
}

impl OverHttp {
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        req: &impl serde::Serialize,
    ) -> Result<T, PortError> {
        let mut browser = self.browser.clone();
        browser
            .call(path, &serde_json::json!({ "req": req }))
            .await
            .map_err(|(_, e)| PortError::from(e))
    }
}

#[async_trait(?Send)]
impl Transport for OverHttp {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, PortError> {
        *self.pushes.borrow_mut() += 1;
        self.call("/api/push", &request).await
    }

    async fn pull(&self, request: PullRequest) -> Result<PullResponse, PortError> {
        self.call("/api/pull", &request).await
    }
}

#[tokio::test]
async fn an_outbox_of_large_notes_goes_out_in_requests_the_server_takes() {
    let router = router_with(relaxed());
    let (browser, _) = Browser::signed_up(&router, "large").await;
    let transport = OverHttp {
        browser,
        pushes: RefCell::default(),
    };
    // 12 notes of 900 KB: 10.8 MB together, over the server's 8 MiB limit
    // for one request, though each note is well within its own.
    let body = |n: usize| format!("{n}\n{}", "a line of a long note\n".repeat(41_000));
    let (replica, host) = (MemoryReplica::new(), Quiet::default());
    for n in 0..12u8 {
        let draft =
            NoteDraft::validated(format!("long {n}"), body(n.into()), vec![]).expect("draft");
        edit_own(&replica, &host, n, draft);
    }
    let mut driver = Driver::new(&replica, &transport, &host, config(100, 100));
    settle(&mut driver).await;
    assert_eq!(driver.status().pending, 0);
    assert!(
        *transport.pushes.borrow() > 1,
        "one request would be refused"
    );

    // Another device of the same person gets every note whole.
    let (other, other_host) = (MemoryReplica::new(), Quiet::default());
    let other_config = DriverConfig {
        client_id: ClientId::new(NOW, [3; 10]),
        ..config(100, 100)
    };
    let mut other_driver = Driver::new(&other, &transport, &other_host, other_config);
    settle(&mut other_driver).await;
    let mut bodies: Vec<String> = other.live_notes().into_iter().map(|n| n.body).collect();
    bodies.sort();
    let mut expected: Vec<String> = (0..12).map(body).collect();
    expected.sort();
    assert_eq!(bodies, expected);
}

/// A server of an older version, which takes at most 3 changes in a push
/// and answers a larger one as every server does (413, naming its limit).
struct OlderServer {
    current: Recorder,
    refused: RefCell<usize>,
}

#[async_trait(?Send)]
impl Transport for OlderServer {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, PortError> {
        if request.changes.len() > 3 {
            *self.refused.borrow_mut() += 1;
            return Err(PortError::from(AppError::Protocol(
                ProtocolError::BatchTooLarge {
                    got: request.changes.len(),
                    max: 3,
                },
            )));
        }
        self.current.push(request).await
    }

    async fn pull(&self, request: PullRequest) -> Result<PullResponse, PortError> {
        self.current.pull(request).await
    }
}

#[tokio::test]
async fn a_server_that_takes_fewer_changes_per_push_gets_them_in_smaller_pushes() {
    let transport = OlderServer {
        current: Recorder::over(server_with(1).await),
        refused: RefCell::default(),
    };
    let (replica, host) = (MemoryReplica::new(), Quiet::default());
    for n in 0..10u8 {
        edit_own(&replica, &host, n, draft(&format!("mine {n}")));
    }
    let mut driver = Driver::new(&replica, &transport, &host, config(100, 100));
    settle(&mut driver).await;
    assert_eq!(driver.status().pending, 0);
    assert_eq!(
        *transport.refused.borrow(),
        1,
        "refused once, then sized to fit"
    );
    // Sent again at once: no error shown, no backoff.
    assert_eq!(*host.errors_shown.borrow(), 0);
    // 10 changes in pushes of at most 3.
    assert_eq!(*transport.current.pushes.borrow(), 4);
    let entries = everything_on(&transport.current.service).await;
    // Another device's note, and the 10.
    assert_eq!(entries.len(), 11);
}

/// A server that answers the first `limited` requests 429, asking for a
/// wait of `retry_after_ms`, then serves them.
struct RateLimited {
    current: Recorder,
    limited: RefCell<u32>,
}

impl RateLimited {
    fn refuse(&self) -> Option<PortError> {
        let mut left = self.limited.borrow_mut();
        (*left > 0).then(|| {
            *left -= 1;
            PortError::from(AppError::RateLimited(3))
        })
    }
}

#[async_trait(?Send)]
impl Transport for RateLimited {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, PortError> {
        match self.refuse() {
            Some(e) => Err(e),
            None => self.current.push(request).await,
        }
    }

    async fn pull(&self, request: PullRequest) -> Result<PullResponse, PortError> {
        match self.refuse() {
            Some(e) => Err(e),
            None => self.current.pull(request).await,
        }
    }
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_the_server_asks_without_an_error() {
    let transport = RateLimited {
        current: Recorder::over(server_with(1).await),
        limited: RefCell::new(2),
    };
    let (replica, host) = (MemoryReplica::new(), Quiet::default());
    edit_own(&replica, &host, 1, draft("mine"));
    let mut driver = Driver::new(&replica, &transport, &host, config(100, 100));
    settle(&mut driver).await;
    assert_eq!(driver.status().pending, 0);
    assert_eq!(*host.errors_shown.borrow(), 0, "a rate limit is no error");
    // Two refusals of 3 s each were waited out, no less.
    assert!(
        *host.waited_ms.borrow() >= 6_000,
        "{}",
        host.waited_ms.borrow()
    );
    assert_eq!(everything_on(&transport.current.service).await.len(), 2);
}

#[tokio::test]
async fn changes_refused_for_the_quota_wait_and_sync_by_themselves_once_there_is_room() {
    use notesync::store::Quota;
    let store = Arc::new(MemoryStore::new());
    let service = SyncService::new(store, Strategy::Merge, Duration::from_secs(86_400))
        .with_quota(Quota {
            max_notes: 2,
            max_bytes: 1_000_000,
        })
        .with_clock(Arc::new(|| NOW));
    let transport = Recorder::over(service);
    let (replica, host) = (MemoryReplica::new(), Quiet::default());
    for n in 1..=3u8 {
        edit_own(&replica, &host, n, draft(&format!("note {n}")));
    }
    let mut driver = Driver::new(&replica, &transport, &host, config(100, 100));
    // Two fit; the third is refused and kept, and the person is told why.
    let mut error = None;
    for _ in 0..20 {
        driver.step().await;
        if let SyncState::Error { message } = driver.status().state {
            error = Some(message);
            break;
        }
    }
    let message = error.expect("the quota is shown");
    assert!(message.contains("limit of 2 notes"), "{message}");
    assert_eq!(driver.status().pending, 1, "the refused change is kept");
    assert_eq!(replica.live_notes().len(), 3, "and its text");
    assert_eq!(everything_on(&transport.service).await.len(), 2);
    // The person deletes a note: the delete goes through, and the refused
    // change follows it with no edit of its own.
    let first = NoteId::new(NOW + 1, [1; 10]);
    assert!(replica.delete(first, NOW, host.fresh_mutation_id()));
    driver.handle(Event::LocalChange);
    settle(&mut driver).await;
    assert_eq!(driver.status().pending, 0);
    let on_server = everything_on(&transport.service).await;
    let live: Vec<String> = on_server
        .iter()
        .filter(|e| !e.note.deleted)
        .map(|e| e.note.body.clone())
        .collect();
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(live.contains(&"note 3".to_string()), "{live:?}");
}
