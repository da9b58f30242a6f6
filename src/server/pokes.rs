//! Pokes: the server tells every connected browser, over one server-sent
//! event stream (`GET /api/events`), that its user's feed moved, so the
//! browser's sync leader pulls at once instead of at its next poll.
//!
//! Promises:
//! - a poke ([`Poke`], JSON) says the feed's head `seq` and goes only to
//!   streams opened with a session of that user, and only while that session
//!   lasts: before each poke the session is read again, and a stream whose
//!   session ended (signed out, expired) ends with `bye`; a stream asked for
//!   with `?account=` naming another account than the session's is refused
//!   (409), so a tab whose browser signed in as someone else since never
//!   hears of their notes;
//! - when the changes since the stream's previous poke are few (at most
//!   [`POKE_MAX_ENTRIES`] notes, [`POKE_MAX_BYTES`] of JSON), the poke
//!   carries them as a complete pull page from that position
//!   ([`PokedChanges`]), so a browser that had caught up applies them
//!   without a pull's round trip; otherwise, or when reading them fails, it
//!   carries only the head and the browser pulls;
//! - a push through this process pokes at once ([`Pokes::feed_moved`]);
//! - a push through *another* process sharing the store (several instances
//!   over one Couchbase cluster) pokes within one watch interval: a watcher
//!   reads [`SyncStore::feed_head`] of every user with an open stream here
//!   and pokes when it moved. Nothing is sent between instances; the store's
//!   committed watermark is the only shared state;
//! - a stream starts with a `ready` event (the browser pulls after every
//!   (re)connect, so nothing moved while it was away is missed), carries a
//!   `heartbeat` event every [`HEARTBEAT`] so a dead connection is noticed,
//!   and ends after [`MAX_STREAM`] so a session that ended stops being
//!   served; the browser then reconnects, and a new request checks the
//!   session again.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use tokio::sync::watch;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tower_sessions::Session;

use super::auth::SESSION_ACCOUNT;
use super::service::system_clock;
use crate::api::Account;
use crate::domain::UserId;
use crate::store::accounts::AccountStore;
use crate::store::{StoreError, SyncStore};
use crate::sync::protocol::{Checkpoint, Poke, PokedChanges, PullResponse};

/// How often an idle stream says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long one stream lasts before the browser must reconnect.
pub const MAX_STREAM: Duration = Duration::from_secs(5 * 60);
/// How often the watcher reads the feed heads of connected users.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Most notes a poke carries (an edit on another device is one; a pushed
/// batch is up to 2,000, which the browser pulls instead).
pub const POKE_MAX_ENTRIES: u32 = 200;
/// Most bytes of JSON a poke with its changes takes.
pub const POKE_MAX_BYTES: usize = 512 * 1024;

/// The open streams of this process, one watch channel per user holding the
/// last feed head announced.
pub struct Pokes {
    store: Arc<dyn SyncStore>,
    sessions: Arc<dyn AccountStore>,
    users: Mutex<HashMap<UserId, watch::Sender<u64>>>,
    heartbeat: Duration,
    max_stream: Duration,
}

impl std::fmt::Debug for Pokes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pokes")
            .field("connected_users", &self.connected_users())
            .finish_non_exhaustive()
    }
}

impl Pokes {
    /// Pokes for the users of `store`, whose sessions are in `sessions`.
    pub fn new(store: Arc<dyn SyncStore>, sessions: Arc<dyn AccountStore>) -> Self {
        Self {
            store,
            sessions,
            users: Mutex::new(HashMap::new()),
            heartbeat: HEARTBEAT,
            max_stream: MAX_STREAM,
        }
    }

    /// The same with other stream timings (for tests).
    pub fn with_timings(mut self, heartbeat: Duration, max_stream: Duration) -> Self {
        self.heartbeat = heartbeat;
        self.max_stream = max_stream;
        self
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, watch::Sender<u64>>> {
        // A panic while holding this lock leaves the map consistent (every
        // operation on it is a single insert, lookup or retain).
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many users have at least one open stream here.
    pub fn connected_users(&self) -> usize {
        self.users()
            .values()
            .filter(|s| s.receiver_count() > 0)
            .count()
    }

    /// A receiver that changes whenever `user`'s feed head moves past what
    /// was announced.
    pub fn subscribe(&self, user: &UserId) -> watch::Receiver<u64> {
        self.users()
            .entry(user.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// `user`'s feed now reaches `head`: pokes their streams if that is new.
    pub fn feed_moved(&self, user: &UserId, head: u64) {
        if let Some(sender) = self.users().get(user) {
            sender.send_if_modified(|announced| {
                let moved = head > *announced;
                if moved {
                    *announced = head;
                }
                moved
            });
        }
    }

    /// Reads the feed head of every user with an open stream and pokes those
    /// whose feed moved (through another process, say); forgets users
    /// without streams. One failed read is logged and retried next round.
    pub async fn watch_once(&self) {
        let connected: Vec<UserId> = {
            let mut users = self.users();
            users.retain(|_, sender| sender.receiver_count() > 0);
            users.keys().cloned().collect()
        };
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

    /// The event stream of one connection of `user`, opened with session
    /// `session_id` when the user's feed was at `head`.
    pub fn stream(
        &self,
        user: &UserId,
        session_id: String,
        head: u64,
    ) -> impl Stream<Item = Result<Event, Infallible>> {
        let mut feed = self.subscribe(user);
        // Whatever was announced before this stream opened is covered by the
        // pull the browser makes on `ready`.
        feed.mark_unchanged();
        let heartbeat = self.heartbeat;
        let start = Instant::now();
        let mut beats = interval_at(start + heartbeat, heartbeat);
        beats.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let end = start + self.max_stream;
        let ready = Event::default().event("ready").data(head.to_string());
        let first = stream::once(async move { Ok(ready) });
        let connection = Connection {
            store: Arc::clone(&self.store),
            sessions: Arc::clone(&self.sessions),
            user: user.clone(),
            session_id,
            announced: head,
        };
        let rest = stream::unfold(
            (feed, beats, connection, false),
            move |(mut feed, mut beats, mut connection, closed)| async move {
                if closed {
                    return None;
                }
                let bye = || Event::default().event("bye").data("");
                let event = tokio::select! {
                    changed = feed.changed() => match changed {
                        Ok(()) => {
                            let head = *feed.borrow_and_update();
                            match connection.poke(head).await {
                                Some(poke) => poke,
                                None => return Some((Ok(bye()), (feed, beats, connection, true))),
                            }
                        }
                        // The hub is gone: the server is shutting down.
                        Err(_) => return None,
                    },
                    _ = beats.tick() => Event::default().event("heartbeat").data(""),
                    () = tokio::time::sleep_until(end) => {
                        return Some((Ok(bye()), (feed, beats, connection, true)));
                    }
                };
                Some((Ok(event), (feed, beats, connection, false)))
            },
        );
        first.chain(rest)
    }
}

/// One open stream: whose it is, and what it announced last.
struct Connection {
    store: Arc<dyn SyncStore>,
    sessions: Arc<dyn AccountStore>,
    user: UserId,
    session_id: String,
    /// The feed position the last poke (or `ready`) brought the browser to,
    /// if it applied or pulled what it was told.
    announced: u64,
}

impl Connection {
    /// The poke for a feed now at `head`; `None` when the session ended.
    async fn poke(&mut self, head: u64) -> Option<Event> {
        match self
            .sessions
            .load_session(&self.session_id, system_clock()())
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => {
                // Without knowing the session, send nothing of the notes.
                tracing::warn!(user = %self.user, error = %e, "reading the session for a poke failed");
                return Some(poke_event(&Poke {
                    seq: head,
                    changes: None,
                }));
            }
        }
        let changes = match poked_changes(self.store.as_ref(), &self.user, self.announced, head)
            .await
        {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!(user = %self.user, error = %e, "reading the changes for a poke failed");
                None
            }
        };
        self.announced = changes.as_ref().map_or(head, |c| c.checkpoint.0.max(head));
        Some(poke_event(&Poke { seq: head, changes }))
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

/// A poke as an event; one whose JSON would pass [`POKE_MAX_BYTES`] goes
/// without its changes (up to 200 notes of a megabyte each are never encoded
/// whole: the encoding stops at the limit).
fn poke_event(poke: &Poke) -> Event {
    let mut capped = Capped {
        bytes: Vec::new(),
        limit: POKE_MAX_BYTES,
    };
    let data = match serde_json::to_writer(&mut capped, poke) {
        Ok(()) => String::from_utf8(capped.bytes).unwrap_or_default(),
        Err(_) => serde_json::to_string(&Poke {
            seq: poke.seq,
            changes: None,
        })
        .unwrap_or_default(),
    };
    Event::default().event("poke").data(data)
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
    let Some(session_id) = session.id().map(|id| id.to_string()) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    // Where the browser's pull on `ready` brings it, at least: the first
    // poke carries the changes after it.
    let head = match pokes.store.feed_head(&account.id).await {
        Ok(head) => head,
        Err(e) => {
            tracing::warn!(user = %account.id, error = %e, "reading the feed head failed");
            0
        }
    };
    let mut response = Sse::new(pokes.stream(&account.id, session_id, head)).into_response();
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

    #[tokio::test]
    async fn a_move_past_the_announced_head_wakes_subscribers_once() {
        let store = Arc::new(MemoryStore::new());
        let pokes = Pokes::new(store.clone(), store);
        let alice = user("alice");
        let mut feed = pokes.subscribe(&alice);
        pokes.feed_moved(&alice, 3);
        assert!(feed.has_changed().expect("open"));
        assert_eq!(*feed.borrow_and_update(), 3);
        pokes.feed_moved(&alice, 3);
        pokes.feed_moved(&alice, 2);
        assert!(!feed.has_changed().expect("open"));
        pokes.feed_moved(&user("bob"), 9);
        assert!(!feed.has_changed().expect("open"));
    }

    #[tokio::test]
    async fn the_watcher_sees_pushes_made_elsewhere_and_forgets_closed_streams() {
        let store = Arc::new(MemoryStore::new());
        let pokes = Pokes::new(store.clone(), store.clone());
        let alice = user("alice");
        let mut feed = pokes.subscribe(&alice);
        let results = push(store.as_ref(), &alice, &[create(1, 1, "a")]).await;
        assert!(!feed.has_changed().expect("open"));
        pokes.watch_once().await;
        assert!(feed.has_changed().expect("open"));
        let head = *feed.borrow_and_update();
        assert!(matches!(
            results[0],
            crate::sync::protocol::ChangeResult::Applied { seq, .. } if seq == head
        ));
        assert_eq!(pokes.connected_users(), 1);
        drop(feed);
        pokes.watch_once().await;
        assert_eq!(pokes.connected_users(), 0);
        assert!(pokes.users().is_empty());
    }
}
