//! The client's sync state machine: it decides when to push, when to pull,
//! when to wait and what status to show. It does no I/O and reads no clock:
//! the driver feeds it [`Event`]s with the current time and asks
//! [`SyncMachine::next_action`] what to do.
//!
//! ```text
//!            local edit / poke / online / poll due
//!   ┌──────┐ ─────────────────────────────────────▶ ┌──────────────┐
//!   │ Idle │                                        │ Push*, Pull* │
//!   └──────┘ ◀──────────── all done ─────────────── └──────────────┘
//!      ▲                                              │ failure
//!      │ retry time reached                           ▼
//!      └──────────────────────────────────────── ┌─────────┐
//!                                                 │ Backoff │ (offline: waits for `online`)
//!                                                 └─────────┘
//! ```
//!
//! Invariants:
//! - local changes are pushed before pulling, so a pull brings back the
//!   server's merge of them;
//! - after a failure nothing is attempted before the backoff delay (capped
//!   exponential, with jitter from the driver), except that coming back
//!   online retries at once;
//! - the status is always one of offline / syncing / synced / error, and
//!   "synced" is shown only when nothing is pending and the last pull
//!   reached the end of the feed.

use serde::{Deserialize, Serialize};

use super::protocol::PokedChanges;
use crate::wire::{needed, WireError};

/// Timing of the machine, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often to pull when nothing else triggers a pull.
    pub poll_every_ms: u64,
    /// How often to pull while the live connection is up: its pokes say when
    /// the feed moved, so this poll is only a safety net.
    pub live_poll_every_ms: u64,
    /// First retry delay after a failure.
    pub backoff_base_ms: u64,
    /// Longest retry delay.
    pub backoff_max_ms: u64,
    /// Least time between the starts of two pushes of fresh local edits.
    /// The first edit after a quiet spell is pushed at once; a burst of
    /// typing is pushed at most this often, each push carrying the latest
    /// text, so the server and the other devices are not sent every
    /// keystroke.
    pub push_spacing_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            poll_every_ms: 30_000,
            live_poll_every_ms: 300_000,
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            push_spacing_ms: 200,
        }
    }
}

/// Something that happened, as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The outbox gained or changed entries.
    LocalChange,
    /// The server said the feed moved, or a person asked to sync now.
    Poke,
    /// The server said the feed moved and sent the changes since its
    /// previous poke. To the machine this is a poke; the driver keeps the
    /// changes, and the pull it asks for uses them instead of a request when
    /// they cover the replica's checkpoint.
    Changes(Box<PokedChanges>),
    /// The browser went online or offline.
    Connectivity { online: bool },
    /// The live connection (server pokes) opened or closed. Opening pulls at
    /// once: whatever moved while it was down was not poked.
    Live { connected: bool },
    /// A push finished; `more` says whether pushable entries remain.
    Pushed { more: bool },
    /// A pull page was applied; `more` says whether the feed has more now.
    Pulled { more: bool, entries: u32 },
    /// The server wants a full re-download; the driver reset the checkpoint.
    ResyncStarted,
    /// A request failed. `retryable` is false for errors that no retry can
    /// cure (the server refuses this protocol version, say). `jitter` is a
    /// random number in 0..=1000 chosen by the driver.
    Failed {
        message: String,
        retryable: bool,
        offline: bool,
        jitter: u32,
    },
    /// The number of pending changes in the outbox.
    PendingCount(u32),
}

/// What the driver should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Push,
    Pull,
    /// Wait for an event, or until this time, whichever comes first.
    WaitUntil(u64),
    /// Wait for an event (offline: nothing to do until connectivity returns).
    WaitForEvent,
}

/// The status a person sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", try_from = "SyncStateWire")]
pub enum SyncState {
    Offline,
    Syncing,
    Synced,
    Error { message: String },
}

/// [`SyncState`] as read (crate::wire says why).
#[derive(Deserialize)]
struct SyncStateWire {
    state: SyncStateKind,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum SyncStateKind {
    Offline,
    Syncing,
    Synced,
    Error,
}

impl TryFrom<SyncStateWire> for SyncState {
    type Error = WireError;

    fn try_from(wire: SyncStateWire) -> Result<Self, WireError> {
        Ok(match wire.state {
            SyncStateKind::Offline => SyncState::Offline,
            SyncStateKind::Syncing => SyncState::Syncing,
            SyncStateKind::Synced => SyncState::Synced,
            SyncStateKind::Error => SyncState::Error {
                message: needed(wire.message, "error", "message")?,
            },
        })
    }
}

/// The full status line: state, pending changes, last full sync, progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub state: SyncState,
    pub pending: u32,
    /// When the replica last matched the server (Unix ms).
    pub last_synced_at: Option<u64>,
    /// Entries downloaded in the current run of pulls (large initial syncs).
    pub downloaded: u32,
    /// When the next retry happens, while backing off.
    pub retry_at: Option<u64>,
}

/// The wait before attempt `failures + 1` after `failures` failures in a
/// row: `base_ms` doubled per failure, capped at `max_ms`, of which the upper
/// half is jitter (`jitter` is a random number in 0..=1000), so clients that
/// failed together do not retry together.
pub fn backoff_delay_ms(failures: u32, jitter: u32, base_ms: u64, max_ms: u64) -> u64 {
    let exp = failures.saturating_sub(1).min(16);
    let base = base_ms.saturating_mul(1u64 << exp).min(max_ms);
    let spread = base / 2 * u64::from(jitter.min(1000)) / 1000;
    (base / 2 + spread).max(1).min(max_ms)
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct SyncMachine {
    timing: Timing,
    online: bool,
    live: bool,
    push_needed: bool,
    /// A push of local edits waits until then ([`Timing::push_spacing_ms`]).
    push_not_before: u64,
    /// When the last push started.
    last_push_at: Option<u64>,
    pull_needed: bool,
    failures: u32,
    retry_at: Option<u64>,
    next_poll_at: u64,
    state: SyncState,
    pending: u32,
    last_synced_at: Option<u64>,
    downloaded: u32,
}

impl SyncMachine {
    /// A machine that starts by pushing whatever is pending, then pulling.
    pub fn new(timing: Timing, online: bool) -> Self {
        Self {
            timing,
            online,
            live: false,
            push_needed: true,
            push_not_before: 0,
            last_push_at: None,
            pull_needed: true,
            failures: 0,
            retry_at: None,
            next_poll_at: 0,
            state: if online {
                SyncState::Syncing
            } else {
                SyncState::Offline
            },
            pending: 0,
            last_synced_at: None,
            downloaded: 0,
        }
    }

    /// Feeds one event that happened at `now`.
    pub fn handle(&mut self, event: Event, now: u64) {
        match event {
            Event::LocalChange => {
                if !self.push_needed {
                    self.push_needed = true;
                    self.push_not_before = self
                        .last_push_at
                        .map_or(0, |at| at.saturating_add(self.timing.push_spacing_ms));
                }
            }
            Event::Poke | Event::Changes(_) => self.pull_needed = true,
            Event::Connectivity { online } => {
                self.online = online;
                if online {
                    // Coming back is the best moment to retry: do it at once.
                    self.retry_at = None;
                    self.failures = 0;
                    self.push_needed = true;
                    self.push_not_before = 0;
                    self.pull_needed = true;
                } else {
                    self.state = SyncState::Offline;
                }
            }
            Event::Live { connected } => {
                self.live = connected;
                if connected {
                    self.pull_needed = true;
                } else {
                    let soon = now.saturating_add(self.timing.poll_every_ms);
                    self.next_poll_at = self.next_poll_at.min(soon);
                }
            }
            Event::Pushed { more } => {
                self.recovered();
                self.push_needed = more;
                // The rest of a large outbox goes at once.
                self.push_not_before = 0;
                self.pull_needed = true;
            }
            Event::Pulled { more, entries } => {
                self.recovered();
                self.downloaded = self.downloaded.saturating_add(entries);
                self.pull_needed = more;
                self.next_poll_at = now.saturating_add(self.poll_every());
                if !more && !self.push_needed && self.pending == 0 {
                    self.last_synced_at = Some(now);
                }
            }
            Event::ResyncStarted => {
                self.pull_needed = true;
                self.downloaded = 0;
            }
            Event::Failed {
                message,
                retryable,
                offline,
                jitter,
            } => {
                self.failures = self.failures.saturating_add(1);
                let delay = self.backoff_delay(jitter, retryable);
                self.retry_at = Some(now.saturating_add(delay));
                self.state = if offline {
                    SyncState::Offline
                } else {
                    SyncState::Error { message }
                };
            }
            Event::PendingCount(n) => self.pending = n,
        }
    }

    fn poll_every(&self) -> u64 {
        if self.live {
            self.timing.live_poll_every_ms
        } else {
            self.timing.poll_every_ms
        }
    }

    fn recovered(&mut self) {
        self.failures = 0;
        self.retry_at = None;
        if !matches!(self.state, SyncState::Syncing) {
            self.state = SyncState::Syncing;
        }
    }

    /// Errors no retry can cure wait the longest delay.
    fn backoff_delay(&self, jitter: u32, retryable: bool) -> u64 {
        let failures = if retryable { self.failures } else { u32::MAX };
        backoff_delay_ms(
            failures,
            jitter,
            self.timing.backoff_base_ms,
            self.timing.backoff_max_ms,
        )
    }

    /// What to do next at `now`.
    pub fn next_action(&mut self, now: u64) -> Action {
        if !self.online {
            self.state = SyncState::Offline;
            return Action::WaitForEvent;
        }
        if let Some(at) = self.retry_at {
            if now < at {
                return Action::WaitUntil(at);
            }
            self.retry_at = None;
        }
        if now >= self.next_poll_at && self.failures == 0 {
            self.pull_needed = true;
        }
        if self.push_needed {
            self.state = SyncState::Syncing;
            // Local changes are pushed before pulling, so a pull waits
            // for a push that waits for its spacing.
            if now < self.push_not_before {
                return Action::WaitUntil(self.push_not_before);
            }
            self.last_push_at = Some(now);
            return Action::Push;
        }
        if self.pull_needed {
            self.state = SyncState::Syncing;
            return Action::Pull;
        }
        if self.failures == 0 {
            self.state = if self.pending == 0 {
                SyncState::Synced
            } else {
                // Only refused changes remain: they need the person.
                SyncState::Error {
                    message: format!(
                        "{} change(s) could not be synced; edit them to try again",
                        self.pending
                    ),
                }
            };
            self.downloaded = 0;
        }
        Action::WaitUntil(self.next_poll_at.max(now.saturating_add(1)))
    }

    /// Whether a push will come without any other event: online, not
    /// waiting out a failure, with local changes to push (at the latest
    /// after the push spacing).
    pub fn push_coming(&self) -> bool {
        self.online && self.retry_at.is_none() && self.push_needed
    }

    /// The status to show.
    pub fn status(&self) -> SyncStatus {
        SyncStatus {
            state: self.state.clone(),
            pending: self.pending,
            last_synced_at: self.last_synced_at,
            downloaded: self.downloaded,
            retry_at: self.retry_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn timing() -> Timing {
        Timing {
            poll_every_ms: 10_000,
            live_poll_every_ms: 100_000,
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            push_spacing_ms: 200,
        }
    }

    fn fail(retryable: bool, offline: bool) -> Event {
        Event::Failed {
            message: "boom".into(),
            retryable,
            offline,
            jitter: 500,
        }
    }

    #[test]
    fn starts_by_pushing_then_pulling_then_idles_as_synced() {
        let mut m = SyncMachine::new(timing(), true);
        assert_eq!(m.next_action(0), Action::Push);
        m.handle(Event::Pushed { more: false }, 1);
        assert_eq!(m.next_action(1), Action::Pull);
        m.handle(
            Event::Pulled {
                more: false,
                entries: 3,
            },
            2,
        );
        assert_eq!(m.next_action(2), Action::WaitUntil(10_002));
        assert_eq!(m.status().state, SyncState::Synced);
        assert_eq!(m.status().last_synced_at, Some(2));
    }

    #[test]
    fn pages_are_pulled_until_the_feed_ends() {
        let mut m = SyncMachine::new(timing(), true);
        m.handle(Event::Pushed { more: false }, 0);
        for i in 0..3 {
            assert_eq!(m.next_action(i), Action::Pull);
            m.handle(
                Event::Pulled {
                    more: true,
                    entries: 1000,
                },
                i,
            );
            assert_eq!(m.status().state, SyncState::Syncing);
        }
        assert_eq!(m.status().downloaded, 3000);
        m.handle(
            Event::Pulled {
                more: false,
                entries: 10,
            },
            5,
        );
        assert!(matches!(m.next_action(5), Action::WaitUntil(_)));
        assert_eq!(m.status().state, SyncState::Synced);
    }

    #[test]
    fn a_push_is_coming_only_online_with_changes_and_no_failure_to_wait_out() {
        let mut m = SyncMachine::new(timing(), true);
        m.handle(Event::Pushed { more: false }, 0);
        assert!(!m.push_coming());
        m.handle(Event::LocalChange, 10);
        assert!(m.push_coming());
        m.handle(
            Event::Failed {
                message: "unreachable".into(),
                retryable: true,
                offline: false,
                jitter: 0,
            },
            20,
        );
        assert!(!m.push_coming());
        m.handle(Event::Connectivity { online: true }, 30);
        assert!(m.push_coming());
        m.handle(Event::Connectivity { online: false }, 40);
        assert!(!m.push_coming());
    }

    #[test]
    fn local_changes_push_before_pulling() {
        let mut m = SyncMachine::new(timing(), true);
        m.handle(Event::Pushed { more: false }, 0);
        m.handle(Event::LocalChange, 0);
        assert_eq!(m.next_action(0), Action::Push);
    }

    #[test]
    fn a_burst_of_edits_is_pushed_at_once_and_then_at_most_every_spacing() {
        let mut m = SyncMachine::new(timing(), true);
        assert_eq!(m.next_action(0), Action::Push);
        m.handle(Event::Pushed { more: false }, 5);
        assert_eq!(m.next_action(5), Action::Pull);
        m.handle(
            Event::Pulled {
                more: false,
                entries: 0,
            },
            6,
        );
        // The first edit after a quiet spell goes at once.
        m.handle(Event::LocalChange, 1_000);
        assert_eq!(m.next_action(1_000), Action::Push);
        m.handle(Event::Pushed { more: false }, 1_010);
        // Typing goes on: the next push waits for the spacing, and so does
        // the pull (local changes go first), whatever else happens.
        m.handle(Event::LocalChange, 1_050);
        m.handle(Event::LocalChange, 1_100);
        m.handle(Event::Poke, 1_120);
        assert_eq!(m.next_action(1_120), Action::WaitUntil(1_200));
        assert_eq!(m.status().state, SyncState::Syncing);
        assert_eq!(m.next_action(1_200), Action::Push);
        // A large outbox is pushed batch after batch without waiting.
        m.handle(Event::Pushed { more: true }, 1_210);
        assert_eq!(m.next_action(1_210), Action::Push);
        m.handle(Event::Pushed { more: false }, 1_220);
        assert_eq!(m.next_action(1_220), Action::Pull);
        // Coming back online pushes at once.
        m.handle(Event::LocalChange, 1_230);
        m.handle(Event::Connectivity { online: true }, 1_240);
        assert_eq!(m.next_action(1_240), Action::Push);
    }

    #[test]
    fn poll_and_poke_trigger_pulls() {
        let mut m = SyncMachine::new(timing(), true);
        m.handle(Event::Pushed { more: false }, 0);
        m.handle(
            Event::Pulled {
                more: false,
                entries: 0,
            },
            0,
        );
        assert_eq!(m.next_action(5), Action::WaitUntil(10_000));
        m.handle(Event::Poke, 6);
        assert_eq!(m.next_action(6), Action::Pull);
        m.handle(
            Event::Pulled {
                more: false,
                entries: 0,
            },
            7,
        );
        assert_eq!(m.next_action(10_007), Action::Pull);
    }

    #[test]
    fn failures_back_off_exponentially_with_a_cap() {
        let mut m = SyncMachine::new(timing(), true);
        let mut delays = Vec::new();
        let mut now = 0;
        for _ in 0..10 {
            assert!(matches!(m.next_action(now), Action::Push | Action::Pull));
            m.handle(fail(true, false), now);
            let Action::WaitUntil(at) = m.next_action(now) else {
                panic!("must wait after a failure");
            };
            delays.push(at - now);
            now = at;
        }
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= 60_000));
        assert_eq!(*delays.last().expect("ten delays"), 45_000);
        assert!(matches!(m.status().state, SyncState::Error { .. }));
    }

    #[test]
    fn going_offline_waits_and_coming_back_retries_at_once() {
        let mut m = SyncMachine::new(timing(), true);
        m.handle(fail(true, true), 0);
        assert_eq!(m.status().state, SyncState::Offline);
        m.handle(Event::Connectivity { online: false }, 1);
        assert_eq!(m.next_action(2), Action::WaitForEvent);
        m.handle(Event::Connectivity { online: true }, 3);
        assert_eq!(m.next_action(3), Action::Push);
    }

    #[test]
    fn refused_changes_show_as_an_error_not_as_synced() {
        let mut m = SyncMachine::new(timing(), true);
        m.handle(Event::PendingCount(1), 0);
        m.handle(Event::Pushed { more: false }, 0);
        m.handle(
            Event::Pulled {
                more: false,
                entries: 0,
            },
            0,
        );
        m.next_action(0);
        assert!(matches!(m.status().state, SyncState::Error { .. }));
        assert_eq!(m.status().last_synced_at, None);
    }

    #[test]
    fn a_live_connection_pulls_at_once_then_polls_rarely_until_it_drops() {
        let mut m = SyncMachine::new(timing(), true);
        m.handle(Event::Pushed { more: false }, 0);
        m.handle(
            Event::Pulled {
                more: false,
                entries: 0,
            },
            1,
        );
        assert_eq!(m.next_action(1), Action::WaitUntil(10_001));
        m.handle(Event::Live { connected: true }, 2);
        assert_eq!(m.next_action(2), Action::Pull);
        m.handle(
            Event::Pulled {
                more: false,
                entries: 0,
            },
            3,
        );
        assert_eq!(m.next_action(3), Action::WaitUntil(100_003));
        m.handle(Event::Poke, 50);
        assert_eq!(m.next_action(50), Action::Pull);
        m.handle(
            Event::Pulled {
                more: false,
                entries: 1,
            },
            51,
        );
        m.handle(Event::Live { connected: false }, 60);
        assert_eq!(m.next_action(60), Action::WaitUntil(10_060));
    }

    proptest! {
        /// However edits are spread, two pushes of fresh edits are at least
        /// the spacing apart, and none is left unpushed: once the spacing
        /// has passed, a pending edit is pushed.
        #[test]
        fn typing_is_pushed_spaced_and_never_forgotten(gaps in proptest::collection::vec(0u64..400, 1..80)) {
            let mut m = SyncMachine::new(timing(), true);
            let mut now = 0u64;
            let mut last_push: Option<u64> = None;
            let settle = |m: &mut SyncMachine, now: u64, last_push: &mut Option<u64>| -> Result<(), TestCaseError> {
                loop {
                    match m.next_action(now) {
                        Action::Push => {
                            if let Some(prev) = *last_push {
                                prop_assert!(now - prev >= 200, "pushed at {} after {}", now, prev);
                            }
                            *last_push = Some(now);
                            m.handle(Event::Pushed { more: false }, now);
                        }
                        Action::Pull => m.handle(Event::Pulled { more: false, entries: 0 }, now),
                        Action::WaitUntil(_) | Action::WaitForEvent => return Ok(()),
                    }
                }
            };
            for gap in gaps {
                now += gap;
                m.handle(Event::LocalChange, now);
                settle(&mut m, now, &mut last_push)?;
            }
            settle(&mut m, now + 200, &mut last_push)?;
            prop_assert!(!m.push_needed, "an edit was left unpushed");
            prop_assert_eq!(m.status().state, SyncState::Synced);
        }

        /// Whatever happens, the machine never asks to act before a retry
        /// time it announced, and never acts while offline.
        #[test]
        fn never_acts_early_or_offline(events in proptest::collection::vec(0u8..10, 1..60)) {
            let mut m = SyncMachine::new(timing(), true);
            let mut now = 0u64;
            for e in events {
                now += 700;
                let event = match e {
                    0 => Event::LocalChange,
                    1 => Event::Poke,
                    2 => Event::Connectivity { online: false },
                    3 => Event::Connectivity { online: true },
                    4 => Event::Pushed { more: false },
                    5 => Event::Pulled { more: e % 2 == 0, entries: 1 },
                    6 => fail(true, false),
                    7 => fail(false, false),
                    8 => Event::Live { connected: true },
                    _ => Event::Live { connected: false },
                };
                m.handle(event, now);
                let retry_at = m.status().retry_at;
                let action = m.next_action(now);
                if let (Some(at), true) = (retry_at, m.online) {
                    if now < at {
                        prop_assert_eq!(action, Action::WaitUntil(at));
                    }
                }
                if !m.online {
                    prop_assert_eq!(action, Action::WaitForEvent);
                    prop_assert_eq!(m.status().state, SyncState::Offline);
                }
            }
        }
    }
}
