//! A hybrid logical clock (HLC): timestamps that follow wall-clock time where
//! clocks agree and still order causally related events where they do not.
//!
//! Invariants:
//! - [`Hlc`] is totally ordered by `(wall_ms, counter, client)`, and that
//!   order agrees with equality, so two distinct clocks never tie;
//! - [`Hlc::tick`] and [`Hlc::receive`] return a clock strictly greater than
//!   every clock they were given (the only exception is the ceiling
//!   `(u64::MAX, u32::MAX)`, which they saturate at instead of panicking);
//! - nothing here reads a clock: the current time is always an argument.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::domain::ClientId;

/// A hybrid logical clock reading, stamped on every change a client makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hlc {
    /// The physical part: milliseconds since the Unix epoch, never decreasing.
    pub wall_ms: u64,
    /// Orders events that share the same `wall_ms`.
    pub counter: u32,
    /// The replica that made the reading; breaks the last ties between replicas.
    pub client: ClientId,
}

impl Hlc {
    /// The smallest reading of `client`, before any event.
    pub fn zero(client: ClientId) -> Self {
        Self {
            wall_ms: 0,
            counter: 0,
            client,
        }
    }

    /// The reading for a local event (an edit, or sending a change) at `now_ms`.
    ///
    /// The wall part never goes back, even if the local clock does; the counter
    /// orders events within one millisecond.
    #[must_use]
    pub fn tick(self, now_ms: u64) -> Self {
        let (wall_ms, counter) = if now_ms > self.wall_ms {
            (now_ms, 0)
        } else {
            successor(self.wall_ms, self.counter)
        };
        Self {
            wall_ms,
            counter,
            client: self.client,
        }
    }

    /// The reading after receiving `remote` at `now_ms`: greater than both this
    /// reading and `remote`, and still this replica's.
    #[must_use]
    pub fn receive(self, remote: Hlc, now_ms: u64) -> Self {
        let (wall_ms, counter) = if now_ms > self.wall_ms && now_ms > remote.wall_ms {
            (now_ms, 0)
        } else {
            // The largest of the two (wall, counter) pairs; the successor of it
            // is greater than both, whatever the client ids are.
            let top = (self.wall_ms, self.counter).max((remote.wall_ms, remote.counter));
            successor(top.0, top.1)
        };
        Self {
            wall_ms,
            counter,
            client: self.client,
        }
    }
}

/// The next `(wall, counter)` pair. When the counter is exhausted the wall part
/// moves on by a millisecond rather than wrapping, which would go back in time.
fn successor(wall_ms: u64, counter: u32) -> (u64, u32) {
    match counter.checked_add(1) {
        Some(next) => (wall_ms, next),
        None if wall_ms < u64::MAX => (wall_ms + 1, 0),
        None => (wall_ms, counter),
    }
}

impl Ord for Hlc {
    /// Written out rather than derived so that reordering the fields can never
    /// silently change which edit wins.
    fn cmp(&self, other: &Self) -> Ordering {
        self.wall_ms
            .cmp(&other.wall_ms)
            .then(self.counter.cmp(&other.counter))
            .then(self.client.cmp(&other.client))
    }
}

impl PartialOrd for Hlc {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn client(n: u8) -> ClientId {
        ClientId::new(1_000 + u64::from(n), [n; 10])
    }

    fn hlc(wall_ms: u64, counter: u32, n: u8) -> Hlc {
        Hlc {
            wall_ms,
            counter,
            client: client(n),
        }
    }

    const CEILING: (u64, u32) = (u64::MAX, u32::MAX);

    fn at_ceiling(h: Hlc) -> bool {
        (h.wall_ms, h.counter) == CEILING
    }

    #[test]
    fn zero_is_the_smallest_reading_of_a_client() {
        let z = Hlc::zero(client(1));
        assert_eq!((z.wall_ms, z.counter), (0, 0));
        assert!(z < z.tick(0));
    }

    #[test]
    fn tick_follows_the_wall_clock_when_it_moves_forward() {
        let h = hlc(100, 7, 1).tick(150);
        assert_eq!(h, hlc(150, 0, 1));
    }

    #[test]
    fn tick_counts_when_the_wall_clock_stands_still_or_goes_back() {
        assert_eq!(hlc(100, 7, 1).tick(100), hlc(100, 8, 1));
        assert_eq!(hlc(100, 7, 1).tick(40), hlc(100, 8, 1));
    }

    #[test]
    fn an_exhausted_counter_moves_the_wall_on_instead_of_wrapping() {
        assert_eq!(hlc(100, u32::MAX, 1).tick(100), hlc(101, 0, 1));
    }

    #[test]
    fn the_ceiling_saturates_without_panicking() {
        let top = hlc(u64::MAX, u32::MAX, 1);
        assert_eq!(top.tick(u64::MAX), top);
        assert_eq!(top.receive(hlc(u64::MAX, u32::MAX, 2), 0), top);
    }

    #[test]
    fn receive_jumps_past_a_remote_clock_that_is_ahead() {
        let local = hlc(100, 3, 1);
        let remote = hlc(200, 9, 2);
        assert_eq!(local.receive(remote, 150), hlc(200, 10, 1));
    }

    #[test]
    fn receive_takes_the_wall_clock_when_it_is_ahead_of_both() {
        assert_eq!(hlc(100, 3, 1).receive(hlc(200, 9, 2), 300), hlc(300, 0, 1));
    }

    #[test]
    fn receive_with_equal_walls_counts_past_the_larger_counter() {
        assert_eq!(hlc(100, 3, 1).receive(hlc(100, 9, 2), 50), hlc(100, 10, 1));
        assert_eq!(hlc(100, 9, 1).receive(hlc(100, 3, 2), 50), hlc(100, 10, 1));
    }

    #[test]
    fn order_is_wall_then_counter_then_client() {
        assert!(hlc(1, 9, 9) < hlc(2, 0, 0));
        assert!(hlc(1, 1, 9) < hlc(1, 2, 0));
        assert!(hlc(1, 1, 1) < hlc(1, 1, 2));
    }

    #[test]
    fn serde_round_trips() {
        let h = hlc(1_700_000_000_000, 4, 3);
        let json = serde_json::to_string(&h).expect("serialises");
        assert_eq!(serde_json::from_str::<Hlc>(&json).ok(), Some(h));
    }

    /// Readings from a small range so that walls and counters collide often,
    /// plus readings near the top to exercise saturation.
    fn any_hlc() -> impl Strategy<Value = Hlc> {
        let wall = prop_oneof![0u64..8, (u64::MAX - 3)..=u64::MAX, any::<u64>()];
        let counter = prop_oneof![0u32..4, (u32::MAX - 2)..=u32::MAX];
        (wall, counter, 0u8..3).prop_map(|(w, c, n)| hlc(w, c, n))
    }

    fn any_now() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..10, (u64::MAX - 3)..=u64::MAX, any::<u64>()]
    }

    proptest! {
        #[test]
        fn tick_is_strictly_monotonic(start in any_hlc(), nows in prop::collection::vec(any_now(), 1..20)) {
            let mut h = start;
            for now in nows {
                let next = h.tick(now);
                prop_assert!(next > h || at_ceiling(h), "{next:?} after {h:?}");
                prop_assert!(next.wall_ms >= now);
                prop_assert_eq!(next.client, h.client);
                h = next;
            }
        }

        #[test]
        fn receive_is_greater_than_both(local in any_hlc(), remote in any_hlc(), now in any_now()) {
            let got = local.receive(remote, now);
            let ceiling = at_ceiling(local) || at_ceiling(remote);
            prop_assert!(got > local || ceiling, "{got:?} not after local {local:?}");
            prop_assert!(got > remote || ceiling, "{got:?} not after remote {remote:?}");
            prop_assert!(got >= local && got.wall_ms >= now);
            prop_assert_eq!(got.client, local.client);
        }

        #[test]
        fn order_is_total_and_agrees_with_eq(a in any_hlc(), b in any_hlc(), c in any_hlc()) {
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a.partial_cmp(&b), Some(a.cmp(&b)));
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
        }
    }
}
