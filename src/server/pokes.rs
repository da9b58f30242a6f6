//! Pokes: the server tells every connected browser, over one server-sent
//! event stream (`GET /api/events`), that its user's feed moved, so the
//! browser's sync leader pulls at once instead of at its next poll.
//!
//! Promises:
//! - a poke ([`Poke`], JSON) says the feed's head `seq` and goes only to
//!   streams opened with a session of that user, and only while that session
//!   lasts: before each poke, and every [`StreamSettings::session_check`]
//!   while idle, the stream reads its session again, and a stream whose
//!   session ended (signed out, expired) ends with `bye`; a stream asked for
//!   with `?account=` naming another account than the session's is refused
//!   (409), so a tab whose browser signed in as someone else since never
//!   hears of their notes;
//! - one feed read per user per poke: the changes a poke carries are read
//!   and encoded once, by the user's feed task, and every stream of that
//!   user sends the same text. When they are few (at most
//!   [`POKE_MAX_ENTRIES`] notes, [`POKE_MAX_BYTES`] of JSON), the poke
//!   carries them as a complete pull page from the previous poke
//!   ([`PokedChanges`]), so a browser that had caught up applies them
//!   without a pull's round trip; otherwise, or when reading them fails, it
//!   carries only the head and the browser pulls;
//! - a push through this process pokes at once ([`Pokes::feed_moved`]);
//! - a push through *another* process sharing the store (several instances
//!   over one Couchbase cluster) pokes within one watch interval: a watcher
//!   reads [`SyncStore::feed_head`] of every user with an open stream here
//!   and pokes when it moved. Nothing is sent between instances; the store's
//!   committed watermark is the only shared state;
//! - open streams are capped per user and per client address
//!   ([`StreamSettings::per_account`], [`StreamSettings::per_address`]; IPv6
//!   addresses count per /64): a stream over either cap closes the oldest
//!   stream of that user or address, which ends without a word;
//! - every event has data, since browsers dispatch no event without: a
//!   stream starts with `ready` (the feed's head; the browser pulls after
//!   every (re)connect, so nothing moved while it was away is missed),
//!   carries `heartbeat` (its interval in milliseconds, so the browser knows
//!   how long a silence means a dead connection) every
//!   [`StreamSettings::heartbeat`], and ends with `bye` after
//!   [`StreamSettings::max_stream`] (the browser reconnects at once);
//! - [`Pokes::shutdown`] ends every stream at once, so a server stopping
//!   does not wait on them; browsers reconnect when it is back.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use tokio::sync::{oneshot, watch};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tower_sessions::Session;

use super::auth::{address_key, client_address_in, session_key, SESSION_ACCOUNT};
use super::service::system_clock;
use crate::api::Account;
use crate::domain::UserId;
use crate::store::accounts::AccountStore;
use crate::store::{StoreError, SyncStore};
use crate::sync::protocol::{Checkpoint, Poke, PokedChanges, PullResponse};

/// How often an idle stream says it is alive, by default.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long one stream lasts, by default, before the browser must reconnect.
pub const MAX_STREAM: Duration = Duration::from_secs(6 * 60 * 60);
/// How often an idle stream reads its session again.
pub const SESSION_CHECK: Duration = Duration::from_secs(5 * 60);
/// How often the watcher reads the feed heads of connected users.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Most notes a poke carries (an edit on another device is one; a pushed
/// batch is up to 2,000, which the browser pulls instead).
pub const POKE_MAX_ENTRIES: u32 = 200;
/// Most bytes of JSON a poke with its changes takes.
pub const POKE_MAX_BYTES: usize = 512 * 1024;

/// The timings and caps of the event streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// The interval of `heartbeat` events.
    pub heartbeat: Duration,
    /// How long a stream lasts before it says `bye`.
    pub max_stream: Duration,
    /// How often an idle stream reads its session again.
    pub session_check: Duration,
    /// Most open streams of one user (one per browser; tabs share it).
    pub per_account: usize,
    /// Most open streams from one client address (IPv6: one /64).
    pub per_address: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            heartbeat: HEARTBEAT,
            max_stream: MAX_STREAM,
            session_check: SESSION_CHECK,
            per_account: 16,
            per_address: 64,
        }
    }
}

/// One poke, encoded once for every stream of its user.
type PokeText = Arc<str>;

/// The open streams of this process, grouped per user, each user with the
/// task that reads and encodes their pokes.
pub struct Pokes {
    store: Arc<dyn SyncStore>,
    sessions: Arc<dyn AccountStore>,
    settings: StreamSettings,
    hub: Mutex<Hub>,
    closing: watch::Sender<bool>,
    next_stream: AtomicU64,
}

#[derive(Default)]
struct Hub {
    users: HashMap<UserId, UserFeed>,
    /// Open streams per client address key, oldest first.
    addresses: HashMap<String, VecDeque<u64>>,
}

/// One user's streams and what their feed task announces.
struct UserFeed {
    /// The head the feed task is to announce; moves up only.
    head: watch::Sender<u64>,
    /// The latest poke, as every stream of the user sends it.
    pokes: watch::Sender<Option<PokeText>>,
    /// Open streams, oldest first: id, address key, and what closes it.
    streams: VecDeque<OpenStream>,
}

struct OpenStream {
    id: u64,
    address: String,
    session_key: String,
    close: oneshot::Sender<()>,
}

impl std::fmt::Debug for Pokes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pokes")
            .field("connected_users", &self.connected_users())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Pokes {
    /// Pokes for the users of `store`, whose sessions are in `sessions`.
    pub fn new(store: Arc<dyn SyncStore>, sessions: Arc<dyn AccountStore>) -> Self {
        Self {
            store,
            sessions,
            settings: StreamSettings::default(),
            hub: Mutex::new(Hub::default()),
            closing: watch::channel(false).0,
            next_stream: AtomicU64::new(1),
        }
    }

    /// The same with other stream timings and caps.
    pub fn with_settings(mut self, settings: StreamSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The same with other stream timings (for tests).
    pub fn with_timings(mut self, heartbeat: Duration, max_stream: Duration) -> Self {
        self.settings.heartbeat = heartbeat;
        self.settings.max_stream = max_stream;
        self
    }

    /// The timings and caps in force.
    pub fn settings(&self) -> StreamSettings {
        self.settings
    }

    fn hub(&self) -> std::sync::MutexGuard<'_, Hub> {
        // A panic while holding this lock leaves the maps consistent (every
        // operation on them completes before it can panic).
        self.hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many users have at least one open stream here.
    pub fn connected_users(&self) -> usize {
        self.hub()
            .users
            .values()
            .filter(|u| !u.streams.is_empty())
            .count()
    }

    /// How many streams are open here.
    pub fn open_streams(&self) -> usize {
        self.hub().users.values().map(|u| u.streams.len()).sum()
    }

    /// `user`'s feed now reaches `head`: pokes their streams if that is new.
    pub fn feed_moved(&self, user: &UserId, head: u64) {
        if let Some(feed) = self.hub().users.get(user) {
            feed.head.send_if_modified(|announced| {
                let moved = head > *announced;
                if moved {
                    *announced = head;
                }
                moved
            });
        }
    }

    /// Ends every open stream now and every stream opened from now on: the
    /// server is stopping.
    pub fn shutdown(&self) {
        self.closing.send_replace(true);
        let mut hub = self.hub();
        for (_, feed) in hub.users.drain() {
            for stream in feed.streams {
                let _ = stream.close.send(());
            }
        }
        hub.addresses.clear();
    }

    /// Ends the streams of `user` here whose session is not `keep` (signed
    /// out everywhere, or the password changed).
    pub fn end_sessions(&self, user: &UserId, keep: Option<&str>) {
        let mut hub = self.hub();
        let hub = &mut *hub;
        let Some(feed) = hub.users.get_mut(user) else {
            return;
        };
        let (kept, ended): (VecDeque<_>, VecDeque<_>) = feed
            .streams
            .drain(..)
            .partition(|s| Some(s.session_key.as_str()) == keep);
        feed.streams = kept;
        if feed.streams.is_empty() {
            hub.users.remove(user);
        }
        for stream in ended {
            remove_id(&mut hub.addresses, &stream.address, stream.id);
            let _ = stream.close.send(());
        }
    }

    /// Reads the feed head of every user with an open stream and pokes those
    /// whose feed moved (through another process, say). One failed read is
    /// logged and retried next round.
    pub async fn watch_once(&self) {
        let connected: Vec<UserId> = self.hub().users.keys().cloned().collect();
        for user in connected {
            match self.store.feed_head(&user).await {
                Ok(head) => self.feed_moved(&user, head),
                Err(e) => tracing::warn!(user = %user, error = %e, "reading the feed head failed"),
            }
        }
    }

    /// Starts the watcher: [`Pokes::watch_once`] every `every`.
    pub fn spawn_watcher(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                self.watch_once().await;
            }
        })
    }

    /// Registers a stream of `user` from `address`, closing the oldest
    /// streams over the caps; answers its id, the poke receiver and what
    /// closes it. Starts the user's feed task with the first stream.
    fn open(
        &self,
        user: &UserId,
        session_key: String,
        address: String,
        head: u64,
    ) -> (
        u64,
        watch::Receiver<Option<PokeText>>,
        oneshot::Receiver<()>,
    ) {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (close, closed) = oneshot::channel();
        let mut hub = self.hub();
        let hub = &mut *hub;
        let feed = hub.users.entry(user.clone()).or_insert_with(|| {
            let (head_tx, head_rx) = watch::channel(head);
            let (pokes_tx, _) = watch::channel(None);
            tokio::spawn(feed_task(
                Arc::clone(&self.store),
                user.clone(),
                head_rx,
                pokes_tx.clone(),
                head,
            ));
            UserFeed {
                head: head_tx,
                pokes: pokes_tx,
                streams: VecDeque::new(),
            }
        });
        let pokes = feed.pokes.subscribe();
        let mut evicted = Vec::new();
        while feed.streams.len() >= self.settings.per_account.max(1) {
            if let Some(old) = feed.streams.pop_front() {
                evicted.push(old);
            }
        }
        feed.streams.push_back(OpenStream {
            id,
            address: address.clone(),
            session_key,
            close,
        });
        let at_address = hub.addresses.entry(address.clone()).or_default();
        let mut over_address = Vec::new();
        while at_address.len() >= self.settings.per_address.max(1) {
            if let Some(old) = at_address.pop_front() {
                over_address.push(old);
            }
        }
        at_address.push_back(id);
        for old in &evicted {
            remove_id(&mut hub.addresses, &old.address, old.id);
        }
        for old_id in over_address {
            for feed in hub.users.values_mut() {
                if let Some(at) = feed.streams.iter().position(|s| s.id == old_id) {
                    if let Some(old) = feed.streams.remove(at) {
                        evicted.push(old);
                    }
                }
            }
        }
        hub.users.retain(|_, feed| !feed.streams.is_empty());
        for old in evicted {
            tracing::info!(user = %user, stream = old.id, "closing the oldest stream over the cap");
            let _ = old.close.send(());
        }
        (id, pokes, closed)
    }

    /// Forgets a stream that ended; the user's feed task ends with their
    /// last stream.
    fn forget(&self, user: &UserId, id: u64) {
        let mut hub = self.hub();
        let hub = &mut *hub;
        if let Some(feed) = hub.users.get_mut(user) {
            if let Some(at) = feed.streams.iter().position(|s| s.id == id) {
                if let Some(gone) = feed.streams.remove(at) {
                    remove_id(&mut hub.addresses, &gone.address, id);
                }
            }
            if feed.streams.is_empty() {
                hub.users.remove(user);
            }
        }
    }

    /// The event stream of one connection of `user` from `address`, opened
    /// with the session stored under `session_key` when the user's feed was
    /// at `head`.
    pub fn stream(
        self: &Arc<Self>,
        user: &UserId,
        session_key: String,
        address: String,
        head: u64,
    ) -> impl Stream<Item = Result<Event, Infallible>> {
        let settings = self.settings;
        let mut closing = self.closing.subscribe();
        if *closing.borrow_and_update() {
            return stream::empty().left_stream();
        }
        let (id, mut pokes, closed) = self.open(user, session_key.clone(), address, head);
        // Whatever was announced before this stream opened is covered by the
        // pull the browser makes on `ready`.
        pokes.mark_unchanged();
        let start = Instant::now();
        let mut beats = interval_at(start + settings.heartbeat, settings.heartbeat);
        beats.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let ready = Event::default().event("ready").data(head.to_string());
        let first = stream::once(async move { Ok(ready) });
        let connection = Connection {
            pokes: Arc::clone(self),
            sessions: Arc::clone(&self.sessions),
            user: user.clone(),
            id,
            session_key,
            session_checked: start,
            end: start + settings.max_stream,
            closed,
            closing,
            heartbeat: settings.heartbeat.as_millis().to_string(),
        };
        let rest = stream::unfold(
            (pokes, beats, connection, false),
            move |(mut pokes, mut beats, mut connection, over)| async move {
                if over {
                    return None;
                }
                let bye = |reason: &str| Event::default().event("bye").data(reason);
                let event = tokio::select! {
                    changed = pokes.changed() => {
                        let text = match changed {
                            Ok(()) => pokes.borrow_and_update().clone(),
                            // The user's feed is gone: the stream was closed.
                            Err(_) => return None,
                        };
                        let Some(text) = text else {
                            return Some((Ok(heartbeat(&connection.heartbeat)), (pokes, beats, connection, false)));
                        };
                        match connection.session_lasts(settings.session_check, true).await {
                            Lasts::Yes => Event::default().event("poke").data(&*text),
                            // Without knowing the session, send nothing of the notes.
                            Lasts::Unknown => Event::default().event("poke").data(head_only(&text)),
                            Lasts::No => return Some((Ok(bye("signed out")), (pokes, beats, connection, true))),
                        }
                    },
                    _ = beats.tick() => {
                        match connection.session_lasts(settings.session_check, false).await {
                            Lasts::No => return Some((Ok(bye("signed out")), (pokes, beats, connection, true))),
                            Lasts::Yes | Lasts::Unknown => heartbeat(&connection.heartbeat),
                        }
                    }
                    () = tokio::time::sleep_until(connection.end) => {
                        return Some((Ok(bye("reconnect")), (pokes, beats, connection, true)));
                    }
                    _ = &mut connection.closed => return None,
                    _ = connection.closing.changed() => return None,
                };
                Some((Ok(event), (pokes, beats, connection, false)))
            },
        );
        first.chain(rest).right_stream()
    }
}

fn remove_id(addresses: &mut HashMap<String, VecDeque<u64>>, address: &str, id: u64) {
    if let Some(ids) = addresses.get_mut(address) {
        ids.retain(|&other| other != id);
        if ids.is_empty() {
            addresses.remove(address);
        }
    }
}

fn heartbeat(interval_ms: &str) -> Event {
    Event::default().event("heartbeat").data(interval_ms)
}

/// The head of an encoded poke without its changes.
fn head_only(text: &str) -> String {
    let seq = serde_json::from_str::<HeadOnly>(text).map_or(0, |p| p.seq);
    serde_json::to_string(&Poke { seq, changes: None }).unwrap_or_default()
}

#[derive(serde::Deserialize)]
struct HeadOnly {
    seq: u64,
}

/// Reads and encodes `user`'s pokes, once for all their streams: each time
/// the head to announce moves, the changes since the previous poke.
async fn feed_task(
    store: Arc<dyn SyncStore>,
    user: UserId,
    mut head: watch::Receiver<u64>,
    pokes: watch::Sender<Option<PokeText>>,
    mut announced: u64,
) {
    while head.changed().await.is_ok() {
        let head = *head.borrow_and_update();
        if head <= announced {
            continue;
        }
        let changes = match poked_changes(store.as_ref(), &user, announced, head).await {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "reading the changes for a poke failed");
                None
            }
        };
        announced = changes.as_ref().map_or(head, |c| c.checkpoint.0.max(head));
        let text = encode_poke(&Poke { seq: head, changes });
        pokes.send_replace(Some(Arc::from(text)));
    }
}

enum Lasts {
    Yes,
    No,
    /// The store could not say.
    Unknown,
}

/// One open stream: whose it is, and how it ends.
struct Connection {
    pokes: Arc<Pokes>,
    sessions: Arc<dyn AccountStore>,
    user: UserId,
    id: u64,
    session_key: String,
    session_checked: Instant,
    end: Instant,
    closed: oneshot::Receiver<()>,
    closing: watch::Receiver<bool>,
    heartbeat: String,
}

impl Connection {
    /// Whether the stream's session still lasts: read from the store before
    /// every poke (`now`), and otherwise once every `every`.
    async fn session_lasts(&mut self, every: Duration, now: bool) -> Lasts {
        if !now && self.session_checked.elapsed() < every {
            return Lasts::Yes;
        }
        self.session_checked = Instant::now();
        match self
            .sessions
            .load_session(&self.session_key, system_clock()())
            .await
        {
            Ok(Some(_)) => Lasts::Yes,
            Ok(None) => Lasts::No,
            Err(e) => {
                tracing::warn!(user = %self.user, error = %e, "reading a stream's session failed");
                Lasts::Unknown
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.pokes.forget(&self.user, self.id);
    }
}

/// The changes a poke of `user`'s feed, now at `head`, carries for a stream
/// that last announced `since`: the complete page read from there, if at
/// most [`POKE_MAX_ENTRIES`] seqs passed (each change has its own seq, so
/// that bounds the notes before any is read). Shared with the tests that
/// play the server's part.
pub async fn poked_changes(
    store: &dyn SyncStore,
    user: &UserId,
    since: u64,
    head: u64,
) -> Result<Option<PokedChanges>, StoreError> {
    if head.saturating_sub(since) > u64::from(POKE_MAX_ENTRIES) {
        return Ok(None);
    }
    let page = store
        .changes_since(user, Checkpoint(since), None, POKE_MAX_ENTRIES)
        .await?;
    Ok(match page {
        PullResponse::Page {
            entries,
            checkpoint,
            has_more: false,
            head,
        } => Some(PokedChanges {
            since: Checkpoint(since),
            entries,
            checkpoint,
            head,
        }),
        _ => None,
    })
}

/// A writer that refuses to grow past its limit, so that encoding stops
/// there instead of building megabytes it would throw away.
struct Capped {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("over the poke's size limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A poke's JSON; one that would pass [`POKE_MAX_BYTES`] goes without its
/// changes (up to 200 notes of a megabyte each are never encoded whole: the
/// encoding stops at the limit).
fn encode_poke(poke: &Poke) -> String {
    let mut capped = Capped {
        bytes: Vec::new(),
        limit: POKE_MAX_BYTES,
    };
    match serde_json::to_writer(&mut capped, poke) {
        Ok(()) => String::from_utf8(capped.bytes).unwrap_or_default(),
        Err(_) => serde_json::to_string(&Poke {
            seq: poke.seq,
            changes: None,
        })
        .unwrap_or_default(),
    }
}

/// The query of `GET /api/events`.
#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    /// The account whose local data the browser's pokes are for.
    account: Option<UserId>,
}

/// `GET /api/events`: the poke stream of the signed-in user; 401 without a
/// session; 409 with [`AppError::AccountMismatch`](crate::api::AppError)
/// when `?account=` names another account than the session's.
pub async fn events(
    State(pokes): State<Arc<Pokes>>,
    Query(query): Query<EventsQuery>,
    session: Session,
    req: Request,
) -> Response {
    let account = match session.get::<Account>(SESSION_ACCOUNT).await {
        Ok(Some(account)) => account,
        Ok(None) => return StatusCode::UNAUTHORIZED.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "reading the session failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if let Err(e) = super::api::same_account(&account.id, query.account.as_ref()) {
        return (StatusCode::CONFLICT, axum::Json(e)).into_response();
    }
    let Some(key) = session.id().map(|id| session_key(&id)) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let address = address_key(client_address_in(req.extensions()).map(|a: SocketAddr| a.ip()));
    // Where the browser's pull on `ready` brings it, at least: the first
    // poke carries the changes after it.
    let head = match pokes.store.feed_head(&account.id).await {
        Ok(head) => head,
        Err(e) => {
            tracing::warn!(user = %account.id, error = %e, "reading the feed head failed");
            0
        }
    };
    let mut response = Sse::new(pokes.stream(&account.id, key, address, head)).into_response();
    // Proxies must not buffer or cache the stream.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache, no-transform"),
    );
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::{create, push, user};
    use crate::store::MemoryStore;
    use crate::sync::merge::Strategy;
    use crate::sync::protocol::{Change, ChangeResult};
    use async_trait::async_trait;
    use std::sync::atomic::AtomicUsize;

    /// A memory store that counts its feed reads.
    #[derive(Default)]
    struct CountingStore {
        inner: MemoryStore,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl SyncStore for CountingStore {
        async fn apply_batch_within(
            &self,
            user: &UserId,
            changes: &[Change],
            strategy: Strategy,
            now_ms: u64,
            quota: crate::store::Quota,
        ) -> Result<Vec<ChangeResult>, StoreError> {
            self.inner
                .apply_batch_within(user, changes, strategy, now_ms, quota)
                .await
        }

        async fn changes_since(
            &self,
            user: &UserId,
            checkpoint: Checkpoint,
            download_head: Option<u64>,
            limit: u32,
        ) -> Result<PullResponse, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner
                .changes_since(user, checkpoint, download_head, limit)
                .await
        }

        async fn feed_head(&self, user: &UserId) -> Result<u64, StoreError> {
            self.inner.feed_head(user).await
        }

        async fn purge_expired(&self, older_than_ms: u64) -> Result<u64, StoreError> {
            self.inner.purge_expired(older_than_ms).await
        }
    }

    async fn session(store: &MemoryStore, key: &str) {
        store
            .save_session(key, None, b"{}", u64::MAX)
            .await
            .expect("session");
    }

    async fn next(stream: &mut (impl Stream<Item = Result<Event, Infallible>> + Unpin)) -> String {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .expect("infallible");
        format!("{event:?}")
    }

    #[tokio::test]
    async fn a_move_past_the_announced_head_wakes_the_users_streams_once() {
        let store = Arc::new(MemoryStore::new());
        session(&store, "s").await;
        let pokes = Arc::new(Pokes::new(store.clone(), store.clone()));
        let alice = user("alice");
        let mut stream = Box::pin(pokes.stream(&alice, "s".into(), "a".into(), 0));
        assert!(next(&mut stream).await.contains("ready"));
        push(store.as_ref(), &alice, &[create(1, 1, "a")]).await;
        pokes.feed_moved(&alice, 1);
        assert!(next(&mut stream).await.contains("poke"));
        pokes.feed_moved(&alice, 1);
        pokes.feed_moved(&user("bob"), 9);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), stream.next())
                .await
                .is_err(),
            "nothing new"
        );
    }

    #[tokio::test]
    async fn one_feed_read_per_poke_serves_every_stream_of_the_user() {
        let counting = Arc::new(CountingStore::default());
        let sessions = Arc::new(MemoryStore::new());
        for key in ["s1", "s2", "s3"] {
            session(&sessions, key).await;
        }
        let pokes = Arc::new(Pokes::new(counting.clone(), sessions));
        let alice = user("alice");
        let mut streams: Vec<_> = ["s1", "s2", "s3"]
            .iter()
            .map(|key| Box::pin(pokes.stream(&alice, (*key).into(), format!("addr-{key}"), 0)))
            .collect();
        for stream in &mut streams {
            assert!(next(stream).await.contains("ready"));
        }
        push(counting.as_ref(), &alice, &[create(1, 1, "shared")]).await;
        pokes.feed_moved(&alice, 1);
        for stream in &mut streams {
            let poke = next(stream).await;
            assert!(poke.contains("poke") && poke.contains("shared"), "{poke}");
        }
        assert_eq!(
            counting.reads.load(Ordering::SeqCst),
            1,
            "one read for three streams"
        );
    }

    #[tokio::test]
    async fn streams_over_a_cap_close_the_oldest_first() {
        let store = Arc::new(MemoryStore::new());
        session(&store, "s").await;
        let settings = StreamSettings {
            per_account: 2,
            per_address: 3,
            ..StreamSettings::default()
        };
        let pokes = Arc::new(Pokes::new(store.clone(), store.clone()).with_settings(settings));
        let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
        let mut first = Box::pin(pokes.stream(&alice, "s".into(), "home".into(), 0));
        let mut second = Box::pin(pokes.stream(&alice, "s".into(), "work".into(), 0));
        let mut third = Box::pin(pokes.stream(&alice, "s".into(), "cafe".into(), 0));
        for stream in [&mut first, &mut second, &mut third] {
            assert!(next(stream).await.contains("ready"));
        }
        // Alice's oldest stream was closed for her third.
        assert!(first.next().await.is_none(), "the oldest of the user ends");
        assert_eq!(pokes.open_streams(), 2);
        // Per address: "cafe" holds alice's third; bob and carol fill it.
        let mut bobs = Box::pin(pokes.stream(&bob, "s".into(), "cafe".into(), 0));
        let mut carols = Box::pin(pokes.stream(&carol, "s".into(), "cafe".into(), 0));
        assert!(next(&mut bobs).await.contains("ready"));
        assert!(next(&mut carols).await.contains("ready"));
        assert_eq!(pokes.open_streams(), 4);
        let mut another = Box::pin(pokes.stream(&bob, "s".into(), "cafe".into(), 0));
        assert!(next(&mut another).await.contains("ready"));
        assert!(
            third.next().await.is_none(),
            "the oldest of the address ends"
        );
        assert_eq!(pokes.open_streams(), 4);
        drop((second, bobs, carols, another));
        assert_eq!(pokes.open_streams(), 0);
        assert_eq!(pokes.connected_users(), 0);
        assert!(pokes.hub().addresses.is_empty());
    }

    #[tokio::test]
    async fn heartbeats_and_bye_carry_data_so_browsers_dispatch_them() {
        let store = Arc::new(MemoryStore::new());
        session(&store, "s").await;
        let pokes = Arc::new(
            Pokes::new(store.clone(), store.clone())
                .with_timings(Duration::from_millis(30), Duration::from_millis(200)),
        );
        let events: Vec<String> = pokes
            .stream(&user("idle"), "s".into(), "a".into(), 0)
            .map(|e| format!("{:?}", e.expect("infallible")))
            .collect()
            .await;
        assert!(events.len() >= 4, "ready, heartbeats, bye: {events:?}");
        for event in &events {
            // An SSE event without a data line is never dispatched.
            assert!(event.contains("data: "), "an event without data: {event}");
        }
        assert!(events[1].contains("event: heartbeat") && events[1].contains("data: 30"));
        assert!(events.last().is_some_and(|e| e.contains("event: bye")));
    }

    #[tokio::test]
    async fn shutdown_ends_every_stream_at_once() {
        let store = Arc::new(MemoryStore::new());
        session(&store, "s").await;
        let pokes = Arc::new(Pokes::new(store.clone(), store.clone()));
        let mut streams: Vec<_> = (0..3)
            .map(|n| Box::pin(pokes.stream(&user(&format!("u{n}")), "s".into(), "a".into(), 0)))
            .collect();
        for stream in &mut streams {
            assert!(next(stream).await.contains("ready"));
        }
        pokes.shutdown();
        for stream in &mut streams {
            let end = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
            assert!(matches!(end, Ok(None)), "the stream ended");
        }
        let mut late = Box::pin(pokes.stream(&user("late"), "s".into(), "a".into(), 0));
        assert!(
            late.next().await.is_none(),
            "no stream opens while stopping"
        );
    }

    #[tokio::test]
    async fn a_stream_whose_session_ended_says_bye_at_its_next_check() {
        let store = Arc::new(MemoryStore::new());
        session(&store, "s").await;
        let settings = StreamSettings {
            heartbeat: Duration::from_millis(20),
            session_check: Duration::from_millis(40),
            ..StreamSettings::default()
        };
        let pokes = Arc::new(Pokes::new(store.clone(), store.clone()).with_settings(settings));
        let mut stream = Box::pin(pokes.stream(&user("gone"), "s".into(), "a".into(), 0));
        assert!(next(&mut stream).await.contains("ready"));
        store.delete_session("s").await.expect("signed out");
        let mut seen = Vec::new();
        while let Some(event) = tokio::time::timeout(Duration::from_secs(2), stream.next())
            .await
            .expect("in time")
        {
            seen.push(format!("{:?}", event.expect("infallible")));
        }
        assert!(
            seen.last().is_some_and(|e| e.contains("event: bye")),
            "{seen:?}"
        );
    }
}
