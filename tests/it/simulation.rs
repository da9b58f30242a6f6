//! The multi-client simulation (DESIGN §10): N browser replicas, each a
//! [`MemoryReplica`] run by the real [`Driver`], against the real
//! [`SyncService`] over the memory store, the redb embedded store and the KV
//! (Couchbase-shaped) store over its fake, all in one process, with one
//! manual clock.
//!
//! A random schedule interleaves local edits (bursts of coalesced
//! keystrokes), driver steps, network faults (a request lost before the
//! server, a response lost after the server applied it, a request delivered
//! twice, a push held back and delivered after others acted) and clients
//! going offline and online. Then the faults stop, everyone comes online and
//! every driver runs until it is idle; the test fails if that does not
//! happen within a bounded number of rounds.
//!
//! Properties:
//! - convergence: every replica holds exactly the server's notes, with an
//!   empty outbox (edits, line removals, title changes and deletes);
//! - no acknowledged edit is lost: in insert-only runs, every token the
//!   server accepted (whether or not the client saw the answer) is in the
//!   final body;
//! - no body ever holds a conflict-marker line (a merge writes no text of
//!   its own);
//! - people typing words into one line of one note, in any order and with
//!   any faults, converge with every word typed and never a conflict;
//! - with device clocks up to a day off either way, the replicas still
//!   converge and no acknowledged token is lost;
//! - a typing session never conflicts with itself: one client, one note,
//!   edits while pushes are in flight and answers are lost, and the final
//!   text is the last text typed, with no conflict ever reported.
//!
//! Case counts: `PROPTEST_CASES` when set, else a per-test default small
//! enough for CI (the redb variants cost a file per case).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tempfile::TempDir;

use notesync::domain::{ClientId, MutationId, Note, NoteDraft, NoteId, Revision, UserId};
use notesync::server::embedded::EmbeddedStore;
use notesync::server::pokes::poked_changes;
use notesync::server::service::SyncService;
use notesync::store::kv::FakeCluster;
use notesync::store::{MemoryStore, SyncStore};
use notesync::sync::driver::{Driver, DriverConfig, Host, PortError, ReplicaChange, Transport};
use notesync::sync::engine::{Action, Event, SyncStatus, Timing};
use notesync::sync::memory_replica::MemoryReplica;
use notesync::sync::merge::Strategy as MergeStrategy;
use notesync::sync::protocol::{
    Change, ChangeOp, ChangeResult, Checkpoint, FeedEntry, PullRequest, PullResponse, PushRequest,
    PushResponse, RejectCode, MAX_PULL_LIMIT, PROTOCOL_VERSION,
};

const START_MS: u64 = 1_700_000_000_000;
/// How long the server keeps tombstones and mutation ids.
const RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// Rounds of "run every driver until it waits" before the test gives up.
const SETTLE_ROUNDS: usize = 12;
/// Steps one driver may take in one settle round.
const SETTLE_STEPS: usize = 40;

// ---------------------------------------------------------------------------
// The schedule

/// What the network does to the next request of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Lost before the server: not applied.
    LoseRequest,
    /// Applied, but the answer is lost: the client sees an offline error.
    LoseResponse,
    /// Delivered twice; the client sees the second answer.
    Duplicate,
    /// Held back (the client times out) and delivered by a later `Deliver`.
    Delay,
}

/// One keystroke-sized edit.
#[derive(Debug, Clone, Copy)]
enum EditKind {
    /// Inserts a new unique token line at line `at` (modulo the length).
    Insert { at: u16 },
    /// Sets the title to a new unique token.
    Title,
    /// Removes line `at` (modulo the length), if there is one.
    DropLine { at: u16 },
    /// Inserts a new unique token as a word of the first line, before its
    /// word `at` (modulo the words): people typing on one line.
    Word { at: u16 },
}

#[derive(Debug, Clone)]
enum Op {
    /// A burst of edits of one note, each saved (and coalesced) on its own.
    /// `in_flight`: they happen while the client's next push is on the wire.
    Type {
        client: u8,
        note: u8,
        edits: Vec<EditKind>,
        in_flight: bool,
    },
    Delete {
        client: u8,
        note: u8,
    },
    /// Runs the client's driver `steps` times; `fault` hits its first request.
    Step {
        client: u8,
        fault: Fault,
        steps: u8,
    },
    /// The oldest held-back push reaches the server; its answer is dropped.
    Deliver,
    /// The client's worker stops and a new one starts over the same
    /// replica (a tab closed and reopened): everything only in memory is gone.
    Restart {
        client: u8,
    },
    /// The server pokes the client's live connection, as its stream does:
    /// with the changes since the stream's previous poke when they are few.
    /// The client handles it at its next step, so it may be stale by then;
    /// `late`: it arrives only during the client's next push.
    Poke {
        client: u8,
        late: bool,
    },
    Offline {
        client: u8,
    },
    Online {
        client: u8,
    },
    Tick {
        ms: u16,
    },
    /// The retention window passes and the server purges: every tombstone
    /// and mutation id written so far is forgotten. Only when no change is
    /// unsent or on the wire (the window is months; see `Op::Purge` in
    /// `run`), and later edits use notes created after it.
    Purge,
}

/// What a run may do.
#[derive(Debug, Clone, Copy)]
struct Mode {
    max_clients: u8,
    notes: u8,
    deletes: bool,
    drop_lines: bool,
    titles: bool,
    purges: bool,
    /// Edits are words typed into one line instead of lines.
    words: bool,
    /// Device clocks differ from the server's by up to a day either way.
    skewed: bool,
}

#[derive(Debug, Clone)]
struct Scenario {
    clients: u8,
    pull_limit: u32,
    push_batch: usize,
    seed: u64,
    /// Each client's clock minus the server's, in ms.
    skews: Vec<i64>,
    ops: Vec<Op>,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::None),
        1 => Just(Fault::LoseRequest),
        2 => Just(Fault::LoseResponse),
        1 => Just(Fault::Duplicate),
        1 => Just(Fault::Delay),
    ]
}

fn edit_kind(mode: Mode) -> impl Strategy<Value = EditKind> {
    let mut kinds: Vec<(u32, BoxedStrategy<EditKind>)> = vec![if mode.words {
        (6, any::<u16>().prop_map(|at| EditKind::Word { at }).boxed())
    } else {
        (
            6,
            any::<u16>().prop_map(|at| EditKind::Insert { at }).boxed(),
        )
    }];
    if mode.titles {
        kinds.push((2, Just(EditKind::Title).boxed()));
    }
    if mode.drop_lines {
        kinds.push((
            2,
            any::<u16>()
                .prop_map(|at| EditKind::DropLine { at })
                .boxed(),
        ));
    }
    prop::strategy::Union::new_weighted(kinds)
}

fn op(mode: Mode) -> impl Strategy<Value = Op> {
    let c = mode.max_clients;
    let n = mode.notes;
    let mut ops: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (
            8,
            (
                0..c,
                0..n,
                prop::collection::vec(edit_kind(mode), 1..5),
                prop::bool::weighted(0.25),
            )
                .prop_map(|(client, note, edits, in_flight)| Op::Type {
                    client,
                    note,
                    edits,
                    in_flight,
                })
                .boxed(),
        ),
        (
            10,
            (0..c, fault(), 1u8..4)
                .prop_map(|(client, fault, steps)| Op::Step {
                    client,
                    fault,
                    steps,
                })
                .boxed(),
        ),
        (1, Just(Op::Deliver).boxed()),
        (1, (0..c).prop_map(|client| Op::Restart { client }).boxed()),
        (
            3,
            (0..c, prop::bool::weighted(0.3))
                .prop_map(|(client, late)| Op::Poke { client, late })
                .boxed(),
        ),
        (1, (0..c).prop_map(|client| Op::Offline { client }).boxed()),
        (1, (0..c).prop_map(|client| Op::Online { client }).boxed()),
        (2, (0u16..3_000).prop_map(|ms| Op::Tick { ms }).boxed()),
    ];
    if mode.purges {
        ops.push((1, Just(Op::Purge).boxed()));
    }
    if mode.deletes {
        ops.push((
            1,
            (0..c, 0..n)
                .prop_map(|(client, note)| Op::Delete { client, note })
                .boxed(),
        ));
    }
    prop::strategy::Union::new_weighted(ops)
}

/// A day, the largest skew of a device clock the simulation tries.
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn skew(mode: Mode) -> BoxedStrategy<i64> {
    if mode.skewed {
        prop_oneof![1 => Just(0i64), 1 => Just(DAY_MS), 1 => Just(-DAY_MS), 2 => -DAY_MS..=DAY_MS]
            .boxed()
    } else {
        Just(0i64).boxed()
    }
}

fn scenario(mode: Mode, ops: std::ops::Range<usize>) -> impl Strategy<Value = Scenario> {
    (
        1..=mode.max_clients,
        1u32..6,
        1usize..4,
        any::<u64>(),
        prop::collection::vec(skew(mode), usize::from(mode.max_clients)),
        prop::collection::vec(op(mode), ops),
    )
        .prop_map(
            |(clients, pull_limit, push_batch, seed, skews, ops)| Scenario {
                clients,
                pull_limit,
                push_batch,
                seed,
                skews,
                ops,
            },
        )
}

// ---------------------------------------------------------------------------
// The world: the server, the shared clock and the wire

enum Backend {
    Memory,
    Embedded,
    /// The KV store over the fake Couchbase (no KV faults: the network
    /// faults of the schedule are the point here; `kv_store` injects KV ones).
    Kv,
}

struct World {
    clock: Arc<AtomicU64>,
    service: SyncService,
    user: UserId,
    /// Pushes held back by [`Fault::Delay`], oldest first.
    delayed: RefCell<VecDeque<PushRequest>>,
    /// Every change the server processed and its result, answered or not.
    log: RefCell<Vec<(Change, ChangeResult)>>,
    tokens: Cell<u64>,
    _dir: Option<TempDir>,
}

impl World {
    fn new(backend: Backend) -> Self {
        let clock = Arc::new(AtomicU64::new(START_MS));
        let (store, dir): (Arc<dyn SyncStore>, _) = match backend {
            Backend::Memory => (Arc::new(MemoryStore::new()), None),
            Backend::Embedded => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let store = EmbeddedStore::open(dir.path()).expect("store opens");
                (Arc::new(store), Some(dir))
            }
            Backend::Kv => {
                let cluster = FakeCluster::new(crate::kv_store::CLOCK_START);
                (Arc::new(crate::kv_store::store(&cluster, "sim")), None)
            }
        };
        let read = clock.clone();
        let service = SyncService::new(store, MergeStrategy::Merge, RETENTION)
            .with_clock(Arc::new(move || read.load(Ordering::SeqCst)));
        Self {
            clock,
            service,
            user: UserId::parse("sim").expect("valid user"),
            delayed: RefCell::new(VecDeque::new()),
            log: RefCell::new(Vec::new()),
            tokens: Cell::new(0),
            _dir: dir,
        }
    }

    fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    fn token(&self, client: usize) -> String {
        let n = self.tokens.get() + 1;
        self.tokens.set(n);
        // One word, as a person types it: the merge compares words.
        format!("tok_c{client}_{n}")
    }

    async fn serve(&self, request: PushRequest) -> PushResponse {
        let changes = request.changes.clone();
        let response = self
            .service
            .push(&self.user, request)
            .await
            .expect("the server accepts every push the driver makes");
        assert_eq!(response.results.len(), changes.len());
        self.log
            .borrow_mut()
            .extend(changes.into_iter().zip(response.results.iter().cloned()));
        response
    }

    async fn deliver_delayed(&self) {
        let next = self.delayed.borrow_mut().pop_front();
        if let Some(request) = next {
            self.serve(request).await;
        }
    }

    /// The server's whole state, as a fresh replica would pull it.
    async fn server_state(&self) -> Vec<FeedEntry> {
        self.server_snapshot().await.0
    }

    /// The whole feed and its head, the last seq handed out: where every
    /// replica's checkpoint ends once it has pulled everything.
    /// The poke a live stream that last announced `since` sends now, as
    /// `src/server/pokes.rs` builds it, and where it leaves the stream.
    async fn poke_since(&self, since: u64) -> (Event, u64) {
        let store = self.service.store();
        let head = store.feed_head(&self.user).await.expect("head");
        let changes = poked_changes(store.as_ref(), &self.user, since, head)
            .await
            .expect("read");
        match changes {
            Some(changes) => {
                let announced = changes.checkpoint.0.max(head);
                (Event::Changes(Box::new(changes)), announced)
            }
            None => (Event::Poke, head),
        }
    }

    async fn server_snapshot(&self) -> (Vec<FeedEntry>, u64) {
        let request = PullRequest {
            protocol: PROTOCOL_VERSION,
            checkpoint: Checkpoint(0),
            limit: MAX_PULL_LIMIT,
            download_head: None,
            account: None,
        };
        match self.service.pull(&self.user, request).await.expect("pull") {
            PullResponse::Page {
                entries,
                has_more,
                head,
                ..
            } => {
                assert!(!has_more, "the simulation stays far below one page");
                (entries, head)
            }
            PullResponse::ResyncRequired => panic!("a pull from 0 never needs a resync"),
        }
    }
}

type Hook = Box<dyn FnOnce()>;

/// One client's network: faults on demand, and edits that happen while a
/// push is on the wire.
struct SimTransport {
    world: Rc<World>,
    online: Rc<Cell<bool>>,
    fault: Cell<Fault>,
    in_flight_edits: RefCell<Vec<Hook>>,
    /// Pokes read before the client's next push, which arrive while that
    /// push is on the wire (handled after it, like any event).
    late_pokes: RefCell<Vec<Event>>,
    /// The client's event queue.
    arriving: Rc<RefCell<VecDeque<Event>>>,
}

fn offline(message: &str) -> PortError {
    PortError {
        message: message.into(),
        retryable: true,
        offline: true,
        push_limit: None,
        retry_after_ms: None,
    }
}

impl SimTransport {
    fn run_in_flight_edits(&self) {
        let hooks = std::mem::take(&mut *self.in_flight_edits.borrow_mut());
        for hook in hooks {
            hook();
        }
    }
}

#[async_trait(?Send)]
impl Transport for SimTransport {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, PortError> {
        if !self.online.get() {
            return Err(offline("offline"));
        }
        // The person keeps typing after the driver read the outbox.
        self.run_in_flight_edits();
        self.arriving
            .borrow_mut()
            .extend(self.late_pokes.borrow_mut().drain(..));
        match self.fault.replace(Fault::None) {
            Fault::None => Ok(self.world.serve(request).await),
            Fault::LoseRequest => Err(offline("request lost")),
            Fault::LoseResponse => {
                self.world.serve(request).await;
                Err(offline("response lost"))
            }
            Fault::Duplicate => {
                self.world.serve(request.clone()).await;
                Ok(self.world.serve(request).await)
            }
            Fault::Delay => {
                self.world.delayed.borrow_mut().push_back(request);
                Err(PortError {
                    message: "timed out".into(),
                    retryable: true,
                    offline: false,
                    push_limit: None,
                    retry_after_ms: None,
                })
            }
        }
    }

    async fn pull(&self, request: PullRequest) -> Result<PullResponse, PortError> {
        if !self.online.get() {
            return Err(offline("offline"));
        }
        match self.fault.replace(Fault::None) {
            Fault::None | Fault::Duplicate => {}
            Fault::LoseRequest | Fault::LoseResponse | Fault::Delay => {
                return Err(offline("pull lost"));
            }
        }
        Ok(self
            .world
            .service
            .pull(&self.world.user, request)
            .await
            .expect("the server answers every pull the driver makes"))
    }
}

/// One client's environment: the shared clock, a seeded generator, an event
/// queue, waits that never block, and the page that shows the replica.
struct SimHost {
    world: Rc<World>,
    client: u8,
    online: Rc<Cell<bool>>,
    events: Rc<RefCell<VecDeque<Event>>>,
    rng: Cell<u64>,
    ids: Cell<u64>,
    page: RefCell<PageView>,
    /// Where the client's live stream's last poke (or its opening) left it.
    announced: Cell<u64>,
    /// This device's clock minus the server's.
    skew: i64,
}

/// What the browser page shows of its replica, kept as the page keeps it:
/// its own saves at once (the text as stored, at the revision stored), the
/// sync leader's `ReplicaChange`s late (one operation after they happened,
/// so after the edits that came meanwhile), each stored note taken only when
/// its revision is later than the page's copy, each dropped one read back.
/// Once every change has arrived, the page must show exactly the replica:
/// the revision rule never keeps an older text or drops a newer one.
#[derive(Default)]
struct PageView {
    notes: BTreeMap<NoteId, Note>,
    /// Changes told, not yet arrived.
    inbox: Vec<ReplicaChange>,
    /// Changes told before the current operation: they arrive at its end.
    arriving: Vec<ReplicaChange>,
}

impl SimHost {
    /// The page saved (or deleted) `id`: it shows what was stored.
    fn page_saved(&self, replica: &MemoryReplica, id: NoteId) {
        let mut page = self.page.borrow_mut();
        match replica.note(id) {
            Some(note) => page.notes.insert(id, note),
            None => page.notes.remove(&id),
        };
    }

    /// An operation begins: what was told before it will arrive at its end.
    fn page_op_begins(&self) {
        let mut page = self.page.borrow_mut();
        let told = std::mem::take(&mut page.inbox);
        page.arriving.extend(told);
    }

    /// The operation ended: the changes told before it arrive. With `all`,
    /// every change told so far arrives.
    fn page_op_ends(&self, replica: &MemoryReplica, all: bool) {
        let changes = {
            let mut page = self.page.borrow_mut();
            let mut changes = std::mem::take(&mut page.arriving);
            if all {
                changes.append(&mut page.inbox);
            }
            changes
        };
        for change in changes {
            for note in change.stored {
                let mut page = self.page.borrow_mut();
                let newer = page
                    .notes
                    .get(&note.id)
                    .is_none_or(|held| note.rev > held.rev);
                if newer {
                    page.notes.insert(note.id, note);
                }
            }
            for id in change.dropped {
                self.page_saved(replica, id);
            }
        }
    }

    /// Whether the page shows the replica, once nothing is on its way.
    fn page_matches(&self, replica: &MemoryReplica) -> Result<(), String> {
        let page = self.page.borrow();
        if !page.inbox.is_empty() || !page.arriving.is_empty() {
            return Ok(());
        }
        let stored: BTreeMap<NoteId, Note> =
            replica.notes().into_iter().map(|n| (n.id, n)).collect();
        for (id, note) in &stored {
            let shown = page.notes.get(id);
            if shown.map(|n| (&n.title, &n.body, n.deleted))
                != Some((&note.title, &note.body, note.deleted))
            {
                return Err(format!(
                    "client {}'s page shows {shown:?} for note {id}, which is stored as {note:?}",
                    self.client
                ));
            }
        }
        if let Some(extra) = page.notes.keys().find(|id| !stored.contains_key(id)) {
            return Err(format!(
                "client {}'s page shows note {extra}, which is not stored",
                self.client
            ));
        }
        Ok(())
    }
}

impl SimHost {
    /// The server's time for a time read off this device's clock.
    fn server_time(&self, device_ms: u64) -> u64 {
        device_ms.saturating_add_signed(-self.skew)
    }

    fn next_random(&self) -> u64 {
        // xorshift64*: deterministic per seed, good enough for jitter.
        let mut x = self.rng.get().max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn push_event(&self, event: Event) {
        self.events.borrow_mut().push_back(event);
    }
}

#[async_trait(?Send)]
impl Host for SimHost {
    fn now_ms(&self) -> u64 {
        self.world.now().saturating_add_signed(self.skew)
    }

    fn random_u32(&self) -> u32 {
        (self.next_random() >> 32) as u32
    }

    fn fresh_mutation_id(&self) -> MutationId {
        let n = self.ids.get() + 1;
        self.ids.set(n);
        let mut random = [0u8; 10];
        random[0] = self.client;
        random[2..].copy_from_slice(&n.to_be_bytes());
        MutationId::new(self.now_ms(), random)
    }

    fn online(&self) -> bool {
        self.online.get()
    }

    async fn wait(&self, deadline: Option<u64>) -> Option<Event> {
        if let Some(event) = self.events.borrow_mut().pop_front() {
            return Some(event);
        }
        if let Some(deadline) = deadline {
            self.world
                .clock
                .fetch_max(self.server_time(deadline), Ordering::SeqCst);
        }
        None
    }

    fn poll_event(&self) -> Option<Event> {
        self.events.borrow_mut().pop_front()
    }

    fn status(&self, _status: &SyncStatus) {}

    fn replica_changed(&self, change: ReplicaChange) {
        self.page.borrow_mut().inbox.push(change);
    }
}

struct Parts {
    replica: Rc<MemoryReplica>,
    host: Rc<SimHost>,
    transport: SimTransport,
    client_id: ClientId,
}

/// The `n`-th note of the notes created after `generation` purges.
fn note_id(n: u8, generation: u8) -> NoteId {
    let mut random = [n; 10];
    random[0] = generation;
    NoteId::new(1_000 + u64::from(n), random)
}

/// Applies one edit the way the editor does: read the stored note, change
/// it, save (coalescing) and tell the driver. Returns the draft saved.
fn edit(
    world: &World,
    replica: &MemoryReplica,
    host: &SimHost,
    client: usize,
    note: NoteId,
    kind: EditKind,
) -> Option<NoteDraft> {
    let current = replica.note(note);
    if current.as_ref().is_some_and(|n| n.deleted) {
        // The editor of a deleted note is gone.
        return None;
    }
    let mut draft = current.map(|n| n.draft()).unwrap_or_default();
    let mut lines: Vec<String> = draft.body.lines().map(str::to_string).collect();
    match kind {
        EditKind::Insert { at } => {
            let at = usize::from(at) % (lines.len() + 1);
            lines.insert(at, world.token(client));
        }
        EditKind::Title => draft.title = world.token(client),
        EditKind::DropLine { at } => {
            if !lines.is_empty() {
                let at = usize::from(at) % lines.len();
                lines.remove(at);
            }
        }
        EditKind::Word { at } => {
            if lines.is_empty() {
                lines.push(String::new());
            }
            let mut words: Vec<String> = lines[0].split(' ').map(str::to_string).collect();
            words.retain(|w| !w.is_empty());
            let at = usize::from(at) % (words.len() + 1);
            words.insert(at, world.token(client));
            lines[0] = words.join(" ");
        }
    }
    draft.body = lines.iter().map(|l| format!("{l}\n")).collect();
    world.advance(1);
    replica
        .edit(note, draft.clone(), host.now_ms(), host.fresh_mutation_id())
        .expect("simulated drafts are valid");
    host.page_saved(replica, note);
    host.push_event(Event::LocalChange);
    Some(draft)
}

/// What a run leaves behind for the properties to judge.
struct Outcome {
    server: Vec<FeedEntry>,
    replicas: Vec<Rc<MemoryReplica>>,
    log: Vec<(Change, ChangeResult)>,
    /// The last draft typed per note (meaningful with one client).
    last_typed: BTreeMap<NoteId, NoteDraft>,
}

fn is_wait(action: Action) -> bool {
    matches!(action, Action::WaitUntil(_) | Action::WaitForEvent)
}

/// Runs the scenario, then settles. `Err` when the replicas do not settle.
fn run(scenario: &Scenario, mode: Mode, backend: Backend) -> Result<Outcome, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server_head = |world: &World| rt.block_on(world.server_snapshot()).1;
    let world = Rc::new(World::new(backend));
    let clients = usize::from(scenario.clients);
    let parts: Vec<Parts> = (0..clients)
        .map(|i| {
            let online = Rc::new(Cell::new(true));
            let index = u8::try_from(i).expect("few clients");
            let events = Rc::new(RefCell::new(VecDeque::new()));
            Parts {
                replica: Rc::new(MemoryReplica::for_client(ClientId::new(
                    START_MS,
                    [index.wrapping_add(1); 10],
                ))),
                host: Rc::new(SimHost {
                    world: world.clone(),
                    client: index,
                    online: online.clone(),
                    events: events.clone(),
                    rng: Cell::new(scenario.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9)),
                    ids: Cell::new(0),
                    page: RefCell::default(),
                    announced: Cell::new(0),
                    skew: scenario.skews.get(i).copied().unwrap_or(0),
                }),
                transport: SimTransport {
                    world: world.clone(),
                    online,
                    fault: Cell::new(Fault::None),
                    in_flight_edits: RefCell::new(Vec::new()),
                    late_pokes: RefCell::new(Vec::new()),
                    arriving: events,
                },
                client_id: ClientId::new(START_MS, [index.wrapping_add(1); 10]),
            }
        })
        .collect();
    fn start<'a>(
        p: &'a Parts,
        scenario: &Scenario,
    ) -> Driver<'a, MemoryReplica, SimTransport, SimHost> {
        Driver::new(
            &*p.replica,
            &p.transport,
            &*p.host,
            DriverConfig {
                client_id: p.client_id,
                timing: Timing::default(),
                pull_limit: scenario.pull_limit,
                first_pull_limit: scenario.pull_limit,
                push_batch: scenario.push_batch,
            },
        )
    }
    let mut drivers: Vec<_> = parts.iter().map(|p| start(p, scenario)).collect();
    let last_typed: Rc<RefCell<BTreeMap<NoteId, NoteDraft>>> = Rc::default();
    let mut generation = 0u8;

    for op in &scenario.ops {
        for p in &parts {
            p.host.page_op_begins();
        }
        match op {
            Op::Type {
                client,
                note,
                edits,
                in_flight,
            } => {
                let i = usize::from(*client) % clients;
                let note = note_id(*note % mode.notes, generation);
                let (world, replica, host) = (
                    world.clone(),
                    parts[i].replica.clone(),
                    parts[i].host.clone(),
                );
                let typed = last_typed.clone();
                let edits = edits.clone();
                let burst = move || {
                    for kind in edits {
                        if let Some(draft) = edit(&world, &replica, &host, i, note, kind) {
                            typed.borrow_mut().insert(note, draft);
                        }
                    }
                };
                if *in_flight {
                    parts[i]
                        .transport
                        .in_flight_edits
                        .borrow_mut()
                        .push(Box::new(burst));
                } else {
                    burst();
                }
            }
            Op::Delete { client, note } => {
                let i = usize::from(*client) % clients;
                let p = &parts[i];
                world.advance(1);
                let id = note_id(*note % mode.notes, generation);
                if p.replica
                    .delete(id, world.now(), p.host.fresh_mutation_id())
                {
                    p.host.page_saved(&p.replica, id);
                    p.host.push_event(Event::LocalChange);
                    last_typed.borrow_mut().remove(&id);
                }
            }
            Op::Step {
                client,
                fault,
                steps,
            } => {
                let i = usize::from(*client) % clients;
                parts[i].transport.fault.set(*fault);
                for _ in 0..*steps {
                    rt.block_on(drivers[i].step());
                }
                parts[i].transport.fault.set(Fault::None);
                // Edits meant for a push that did not happen land now:
                // between a settle and the next batch.
                parts[i].transport.run_in_flight_edits();
            }
            Op::Deliver => rt.block_on(world.deliver_delayed()),
            Op::Restart { client } => {
                let i = usize::from(*client) % clients;
                parts[i].host.events.borrow_mut().clear();
                parts[i].transport.late_pokes.borrow_mut().clear();
                drivers[i] = start(&parts[i], scenario);
                // The new worker's stream opens at the feed's head.
                parts[i].host.announced.set(server_head(&world));
            }
            Op::Poke { client, late } => {
                let p = &parts[usize::from(*client) % clients];
                if p.host.online.get() {
                    let poke = rt.block_on(world.poke_since(p.host.announced.get()));
                    p.host.announced.set(poke.1);
                    if *late {
                        p.transport.late_pokes.borrow_mut().push(poke.0);
                    } else {
                        p.host.push_event(poke.0);
                    }
                }
            }
            Op::Offline { client } => {
                let p = &parts[usize::from(*client) % clients];
                p.host.online.set(false);
                p.host.push_event(Event::Connectivity { online: false });
            }
            Op::Online { client } => {
                let p = &parts[usize::from(*client) % clients];
                p.host.online.set(true);
                p.host.push_event(Event::Connectivity { online: true });
            }
            Op::Tick { ms } => world.advance(u64::from(*ms)),
            Op::Purge => {
                // An edit never sent in the window (a device offline for
                // months) may meet its note deleted elsewhere and purged: it
                // is saved again as a new note. What stays out: a change
                // sent and unanswered across the window (no device waits
                // months for an answer), and a note id used again after its
                // tombstone was purged (ids are UUIDv7: only the
                // simulation's fixed ids repeat, so an unsent creation may
                // take the id of a note purged meanwhile). An edit waiting
                // to land during a push is typed already; run after the
                // purge, it would use a note id of before it.
                let quiet = world.delayed.borrow().is_empty()
                    && parts.iter().all(|p| {
                        p.replica
                            .pending()
                            .iter()
                            .all(|c| c.sent.is_none() && c.base_rev > Revision::NEW)
                            && p.transport.in_flight_edits.borrow().is_empty()
                    });
                if quiet {
                    world.advance(u64::try_from(RETENTION.as_millis()).expect("fits") + 1);
                    rt.block_on(world.service.purge_expired()).expect("purge");
                    generation = generation.wrapping_add(1);
                }
            }
        }
        for p in &parts {
            p.host.page_op_ends(&p.replica, false);
            p.host.page_matches(&p.replica)?;
        }
    }

    // The network heals: held-back pushes arrive, everyone comes online.
    while !world.delayed.borrow().is_empty() {
        rt.block_on(world.deliver_delayed());
    }
    for p in &parts {
        p.transport.run_in_flight_edits();
        p.transport.fault.set(Fault::None);
        if !p.host.online.get() {
            p.host.online.set(true);
            p.host.push_event(Event::Connectivity { online: true });
        }
    }
    let idle = |p: &Parts, head: u64| {
        p.replica.pending().is_empty() && p.replica.stored_checkpoint() == Checkpoint(head)
    };
    let mut settled = false;
    for _ in 0..SETTLE_ROUNDS {
        for (p, driver) in parts.iter().zip(drivers.iter_mut()) {
            for _ in 0..SETTLE_STEPS {
                let action = rt.block_on(driver.step());
                if is_wait(action) && idle(p, server_head(&world)) {
                    break;
                }
            }
        }
        let head = server_head(&world);
        if parts.iter().all(|p| idle(p, head)) {
            settled = true;
            break;
        }
    }
    if !settled {
        let stuck: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "client {i}: checkpoint {:?}, outbox {:?}",
                    p.replica.stored_checkpoint(),
                    p.replica.pending()
                )
            })
            .collect();
        return Err(format!(
            "the replicas did not settle; server head {}:\n{}",
            server_head(&world),
            stuck.join("\n")
        ));
    }
    for p in &parts {
        p.host.page_op_ends(&p.replica, true);
        p.host.page_matches(&p.replica)?;
    }
    let server = rt.block_on(world.server_state());
    drop(drivers);
    let log = world.log.borrow().clone();
    let typed = last_typed.borrow().clone();
    Ok(Outcome {
        server,
        replicas: parts.into_iter().map(|p| p.replica).collect(),
        log,
        last_typed: typed,
    })
}

// ---------------------------------------------------------------------------
// Properties

type NoteState = (String, String, Vec<String>, bool, Revision);

fn server_notes(outcome: &Outcome) -> BTreeMap<NoteId, NoteState> {
    outcome
        .server
        .iter()
        .map(|e| {
            let n = &e.note;
            (
                n.id,
                (
                    n.title.clone(),
                    n.body.clone(),
                    n.tags.clone(),
                    n.deleted,
                    n.rev,
                ),
            )
        })
        .collect()
}

fn replica_notes(replica: &MemoryReplica) -> BTreeMap<NoteId, NoteState> {
    replica
        .notes()
        .into_iter()
        .map(|n| (n.id, (n.title, n.body, n.tags, n.deleted, n.rev)))
        .collect()
}

fn check_convergence(outcome: &Outcome) -> Result<(), TestCaseError> {
    let server = server_notes(outcome);
    for (i, replica) in outcome.replicas.iter().enumerate() {
        prop_assert!(
            replica.pending().is_empty(),
            "client {} still has pending changes",
            i
        );
        let local = replica_notes(replica);
        prop_assert_eq!(&local, &server, "client {} differs from the server", i);
    }
    Ok(())
}

/// Convergence of the live notes. After a purge, a replica that saw a
/// delete before the purge rightly keeps its tombstone; the server does not.
fn check_live_convergence(outcome: &Outcome) -> Result<(), TestCaseError> {
    let live = |notes: BTreeMap<NoteId, NoteState>| -> BTreeMap<NoteId, NoteState> {
        notes.into_iter().filter(|(_, n)| !n.3).collect()
    };
    let server = live(server_notes(outcome));
    for (i, replica) in outcome.replicas.iter().enumerate() {
        let pending = replica.pending();
        prop_assert!(
            pending.is_empty(),
            "client {} still has pending changes: {:?}",
            i,
            pending
        );
        let local = live(replica_notes(replica));
        prop_assert_eq!(&local, &server, "client {} differs from the server", i);
    }
    Ok(())
}

fn tokens_in(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace().filter(|w| w.starts_with("tok_"))
}

fn check_no_loss(outcome: &Outcome) -> Result<(), TestCaseError> {
    let server: BTreeMap<NoteId, &FeedEntry> =
        outcome.server.iter().map(|e| (e.note.id, e)).collect();
    for (change, result) in &outcome.log {
        let accepted = matches!(
            result,
            ChangeResult::Applied { .. } | ChangeResult::Merged { .. } | ChangeResult::Duplicate
        );
        let ChangeOp::Upsert(draft) = &change.op else {
            continue;
        };
        if !accepted {
            continue;
        }
        let body = server
            .get(&change.note_id)
            .map(|e| e.note.body.as_str())
            .unwrap_or_default();
        let kept: BTreeSet<&str> = tokens_in(body).collect();
        for token in tokens_in(&draft.body) {
            prop_assert!(
                kept.contains(token),
                "token {} of mutation {:?} ({:?}) is not in the final body {:?}",
                token,
                change.mutation_id,
                result,
                body
            );
        }
    }
    Ok(())
}

/// `s` after one client created the note and every client synced it: the
/// people typing into it share it, as they do (two devices creating the same
/// note id is the simulation's fixed ids, not something people do).
fn shared_note(mut s: Scenario) -> Scenario {
    let mut ops = vec![Op::Type {
        client: 0,
        note: 0,
        edits: vec![EditKind::Word { at: 0 }],
        in_flight: false,
    }];
    ops.extend((0..s.clients).map(|client| Op::Step {
        client,
        fault: Fault::None,
        steps: 6,
    }));
    ops.append(&mut s.ops);
    s.ops = ops;
    s
}

/// No body, on the server or on any replica, holds a conflict-marker line:
/// a merge never writes text nobody typed.
fn check_no_markers(outcome: &Outcome) -> Result<(), TestCaseError> {
    let marker = |line: &str| {
        ["<<<<<<<", "=======", ">>>>>>>"]
            .iter()
            .any(|m| line.starts_with(m))
    };
    let bodies = outcome
        .server
        .iter()
        .map(|e| e.note.clone())
        .chain(outcome.replicas.iter().flat_map(|r| r.notes()));
    for note in bodies {
        prop_assert!(
            !note.body.lines().any(marker),
            "a marker line in {:?}",
            note.body
        );
    }
    Ok(())
}

/// No merge was flagged and no conflict recorded: people typing words into
/// one line never conflict, whatever the order their edits arrive in.
fn check_no_conflict(outcome: &Outcome) -> Result<(), TestCaseError> {
    for (change, result) in &outcome.log {
        prop_assert!(
            !matches!(
                result,
                ChangeResult::Merged {
                    conflicted: true,
                    ..
                }
            ),
            "{:?} conflicted: {:?}",
            change.mutation_id,
            change
        );
    }
    prop_assert!(outcome.server.iter().all(|e| e.conflict.is_none()));
    Ok(())
}

fn check_no_self_conflict(outcome: &Outcome) -> Result<(), TestCaseError> {
    for (change, result) in &outcome.log {
        prop_assert!(
            !matches!(
                result,
                ChangeResult::Merged {
                    conflicted: true,
                    ..
                }
            ),
            "a typing session conflicted with itself at {:?}: {:?}",
            change.mutation_id,
            change
        );
    }
    for entry in &outcome.server {
        prop_assert!(entry.conflict.is_none(), "the server recorded a conflict");
        let typed = outcome.last_typed.get(&entry.note.id);
        prop_assert_eq!(typed, Some(&entry.note.draft()), "the last typed text");
    }
    for replica in &outcome.replicas {
        prop_assert!(
            replica.conflicts().is_empty(),
            "the replica recorded a conflict"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Runs

/// `PROPTEST_CASES` when set, else `default`.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(cases)
}

const CONVERGE: Mode = Mode {
    max_clients: 4,
    notes: 3,
    deletes: true,
    drop_lines: true,
    titles: true,
    purges: false,
    words: false,
    skewed: false,
};

const PURGING: Mode = Mode {
    purges: true,
    ..CONVERGE
};

const INSERT_ONLY: Mode = Mode {
    max_clients: 4,
    notes: 2,
    deletes: false,
    drop_lines: false,
    titles: true,
    purges: false,
    words: false,
    skewed: false,
};

const TYPING: Mode = Mode {
    max_clients: 1,
    notes: 1,
    deletes: false,
    drop_lines: true,
    titles: true,
    purges: false,
    words: false,
    skewed: false,
};

/// Up to three people typing words into the same line of one note.
const ONE_LINE: Mode = Mode {
    max_clients: 3,
    notes: 1,
    deletes: false,
    drop_lines: false,
    titles: false,
    purges: false,
    words: true,
    skewed: false,
};

/// Device clocks up to a day off, either way.
const SKEWED: Mode = Mode {
    skewed: true,
    ..CONVERGE
};

const SKEWED_INSERT_ONLY: Mode = Mode {
    skewed: true,
    ..INSERT_ONLY
};

fn outcome(result: Result<Outcome, String>) -> Result<Outcome, TestCaseError> {
    result.map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn replicas_converge_over_the_memory_store(s in scenario(CONVERGE, 1..80)) {
        let o = outcome(run(&s, CONVERGE, Backend::Memory))?;
        check_convergence(&o)?;
        check_no_markers(&o)?;
    }

    #[test]
    fn no_acknowledged_edit_is_lost_over_the_memory_store(s in scenario(INSERT_ONLY, 1..80)) {
        let o = outcome(run(&s, INSERT_ONLY, Backend::Memory))?;
        check_convergence(&o)?;
        check_no_loss(&o)?;
    }

    #[test]
    fn replicas_converge_across_tombstone_purges(s in scenario(PURGING, 1..80)) {
        check_live_convergence(&outcome(run(&s, PURGING, Backend::Memory))?)?;
    }

    #[test]
    fn a_typing_session_never_conflicts_with_itself(s in scenario(TYPING, 1..80)) {
        let o = outcome(run(&s, TYPING, Backend::Memory))?;
        check_convergence(&o)?;
        check_no_self_conflict(&o)?;
    }

    #[test]
    fn people_typing_on_one_line_converge_with_every_word(
        s in scenario(ONE_LINE, 1..80).prop_map(shared_note)
    ) {
        let o = outcome(run(&s, ONE_LINE, Backend::Memory))?;
        check_convergence(&o)?;
        check_no_loss(&o)?;
        check_no_conflict(&o)?;
        check_no_markers(&o)?;
    }

    #[test]
    fn replicas_converge_with_device_clocks_a_day_off(s in scenario(SKEWED, 1..80)) {
        let o = outcome(run(&s, SKEWED, Backend::Memory))?;
        check_convergence(&o)?;
        check_no_markers(&o)?;
    }

    #[test]
    fn no_acknowledged_edit_is_lost_with_device_clocks_a_day_off(
        s in scenario(SKEWED_INSERT_ONLY, 1..80)
    ) {
        let o = outcome(run(&s, SKEWED_INSERT_ONLY, Backend::Memory))?;
        check_convergence(&o)?;
        check_no_loss(&o)?;
        check_no_markers(&o)?;
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn replicas_converge_over_the_embedded_store(s in scenario(CONVERGE, 1..60)) {
        check_convergence(&outcome(run(&s, CONVERGE, Backend::Embedded))?)?;
    }

    #[test]
    fn no_acknowledged_edit_is_lost_over_the_embedded_store(s in scenario(INSERT_ONLY, 1..60)) {
        let o = outcome(run(&s, INSERT_ONLY, Backend::Embedded))?;
        check_convergence(&o)?;
        check_no_loss(&o)?;
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn replicas_converge_over_the_kv_store(s in scenario(CONVERGE, 1..60)) {
        check_convergence(&outcome(run(&s, CONVERGE, Backend::Kv))?)?;
    }

    #[test]
    fn replicas_converge_across_tombstone_purges_over_the_kv_store(s in scenario(PURGING, 1..60)) {
        check_live_convergence(&outcome(run(&s, PURGING, Backend::Kv))?)?;
    }

    #[test]
    fn no_acknowledged_edit_is_lost_over_the_kv_store(s in scenario(INSERT_ONLY, 1..60)) {
        let o = outcome(run(&s, INSERT_ONLY, Backend::Kv))?;
        check_convergence(&o)?;
        check_no_loss(&o)?;
    }
}

// ---------------------------------------------------------------------------
// The minimal cases the properties found, kept as plain regression tests.

fn typing(in_flight: bool) -> Op {
    Op::Type {
        client: 0,
        note: 0,
        edits: vec![EditKind::Insert { at: 0 }],
        in_flight,
    }
}

fn step(fault: Fault, steps: u8) -> Op {
    Op::Step {
        client: 0,
        fault,
        steps,
    }
}

fn one_client(ops: Vec<Op>) -> Scenario {
    Scenario {
        clients: 1,
        pull_limit: 1,
        push_batch: 1,
        seed: 0,
        skews: Vec::new(),
        ops,
    }
}

/// A retry must resend exactly what may have been applied: typing on after a
/// lost answer once reused the mutation id with the newer text, the server
/// answered `Duplicate` and the newer text was dropped from the outbox.
#[test]
fn typing_after_a_lost_answer_is_not_lost() {
    let s = one_client(vec![
        step(Fault::None, 1),
        typing(true),
        step(Fault::None, 1),
        step(Fault::LoseResponse, 1),
        typing(false),
    ]);
    let o = run(&s, TYPING, Backend::Memory).expect("settles");
    check_no_loss(&o).expect("no loss");
    check_no_self_conflict(&o).expect("no self-conflict");
}

/// A push whose answer was lost must be resent exactly even by the next
/// worker: the sent copy once lived only in the driver's memory, so after a
/// restart the newer text went out under the old mutation id, was answered
/// `Duplicate`, and was dropped.
#[test]
fn typing_after_a_lost_answer_and_a_restart_is_not_lost() {
    let s = one_client(vec![
        step(Fault::None, 1),
        typing(false),
        step(Fault::LoseResponse, 1),
        Op::Restart { client: 0 },
        typing(false),
    ]);
    let o = run(&s, TYPING, Backend::Memory).expect("settles");
    check_no_loss(&o).expect("no loss");
    check_no_self_conflict(&o).expect("no self-conflict");
}

/// A new note typed on after its push was acknowledged but before it was
/// pulled back once went out with no base and was merged against an empty
/// text: a conflict with itself.
#[test]
fn typing_on_a_new_note_before_pulling_it_back_does_not_conflict() {
    let s = one_client(vec![
        typing(true),
        typing(false),
        step(Fault::Delay, 3),
        typing(true),
        step(Fault::LoseResponse, 1),
        step(Fault::None, 3),
        typing(false),
    ]);
    let o = run(&s, TYPING, Backend::Memory).expect("settles");
    check_no_self_conflict(&o).expect("no self-conflict");
    let s = one_client(vec![
        step(Fault::None, 1),
        typing(true),
        step(Fault::None, 1),
        step(Fault::Duplicate, 1),
        typing(false),
    ]);
    let o = run(&s, TYPING, Backend::Memory).expect("settles");
    check_no_self_conflict(&o).expect("no self-conflict");
}

/// A download from checkpoint 0 of more than one page after a purge once
/// never ended: its second page started below the purge watermark, the
/// server answered `resync_required`, and the download began again.
#[test]
fn a_new_device_downloads_many_pages_after_a_purge() {
    let typing_on = |note| Op::Type {
        client: 0,
        note,
        edits: vec![EditKind::Insert { at: 0 }],
        in_flight: false,
    };
    let s = Scenario {
        clients: 2,
        pull_limit: 1,
        push_batch: 3,
        seed: 0,
        skews: Vec::new(),
        ops: vec![
            typing_on(0),
            typing_on(1),
            typing_on(2),
            step(Fault::None, 6),
            Op::Delete { client: 0, note: 2 },
            step(Fault::None, 6),
            Op::Purge,
        ],
    };
    let o = run(&s, PURGING, Backend::Memory).expect("settles");
    check_live_convergence(&o).expect("converges");
    assert_eq!(
        o.replicas[1].notes().len(),
        2,
        "the new device has both live notes"
    );
}

/// A device offline for longer than the tombstone retention edits a note
/// that another device deleted meanwhile, and the delete was purged: the
/// server no longer has the note, so the edit was refused for ever and the
/// text stayed stuck on that device ("edit them to try again"). It is now
/// saved again as a new note, synced to every device.
#[test]
fn an_edit_of_a_note_deleted_and_purged_meanwhile_comes_back_as_a_new_note() {
    let s = Scenario {
        clients: 2,
        pull_limit: 5,
        push_batch: 3,
        seed: 0,
        skews: Vec::new(),
        ops: vec![
            Op::Type {
                client: 0,
                note: 0,
                edits: vec![EditKind::Insert { at: 0 }],
                in_flight: false,
            },
            step(Fault::None, 4),
            Op::Step {
                client: 1,
                fault: Fault::None,
                steps: 4,
            },
            Op::Offline { client: 1 },
            Op::Type {
                client: 1,
                note: 0,
                edits: vec![EditKind::Insert { at: 1 }],
                in_flight: false,
            },
            Op::Delete { client: 0, note: 0 },
            step(Fault::None, 4),
            Op::Purge,
        ],
    };
    let o = run(&s, PURGING, Backend::Memory).expect("settles");
    check_live_convergence(&o).expect("converges");
    let gone = o.log.iter().any(|(_, r)| {
        matches!(
            r,
            ChangeResult::Rejected {
                code: Some(RejectCode::Gone),
                ..
            }
        )
    });
    assert!(gone, "the edit met its note purged: {:?}", o.log);
    let live: Vec<&FeedEntry> = o.server.iter().filter(|e| !e.note.deleted).collect();
    assert_eq!(
        live.len(),
        1,
        "the edit lives on as one new note: {:?}",
        o.server
    );
    assert_ne!(live[0].note.id, note_id(0, 0));
    assert_eq!(
        tokens_in(&live[0].note.body).count(),
        2,
        "{:?}",
        live[0].note.body
    );
}
