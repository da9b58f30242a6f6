//! What keeps one client, one account or a crowd from exhausting a shared
//! server, besides the per-request checks of [`super::boundary`]:
//!
//! - a global limit on requests in flight ([`in_flight`]): past it a request
//!   is answered `503` with `Retry-After` at once, before any of its body is
//!   read; the event streams, which live for hours, are capped on their own
//!   ([`super::pokes::StreamSettings`]);
//! - per-account rate limits on pushes and pulls ([`Protection::check_rate`]),
//!   answered `429` with `Retry-After`, which the browser's sync driver waits
//!   out before it tries again.
//!
//! Every limit has a flag ([`super::config::Config`]); the defaults and what
//! each costs are in `docs/operations.md`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use super::respond::{error_response, EVENTS_PATH};
use crate::api::AppError;
use crate::domain::UserId;

/// The limits of one server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtectionSettings {
    /// Requests handled at once (event streams aside).
    pub max_in_flight: usize,
    /// Pushes one account may make per second, sustained.
    pub pushes_per_second: u32,
    /// Pushes one account may make at once before the rate applies.
    pub push_burst: u32,
    /// Pulls one account may make per second, sustained.
    pub pulls_per_second: u32,
    /// Pulls one account may make at once before the rate applies.
    pub pull_burst: u32,
}

impl Default for ProtectionSettings {
    fn default() -> Self {
        Self {
            max_in_flight: 512,
            pushes_per_second: 10,
            push_burst: 60,
            pulls_per_second: 20,
            pull_burst: 200,
        }
    }
}

/// Which rate an account's request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Push,
    Pull,
}

/// The shared state of the limits.
pub struct Protection {
    settings: ProtectionSettings,
    in_flight: Arc<Semaphore>,
    pushes: DefaultKeyedRateLimiter<UserId>,
    pulls: DefaultKeyedRateLimiter<UserId>,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn per_second(rate: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(rate.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl Protection {
    pub fn new(settings: ProtectionSettings) -> Self {
        Self {
            settings,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            pushes: RateLimiter::keyed(per_second(settings.pushes_per_second, settings.push_burst)),
            pulls: RateLimiter::keyed(per_second(settings.pulls_per_second, settings.pull_burst)),
        }
    }

    /// The limits in force.
    pub fn settings(&self) -> ProtectionSettings {
        self.settings
    }

    /// Counts one push or pull of `user`; over the rate, the seconds to wait.
    pub fn check_rate(&self, user: &UserId, rate: Rate) -> Result<(), AppError> {
        let limiter = match rate {
            Rate::Push => &self.pushes,
            Rate::Pull => &self.pulls,
        };
        limiter.check_key(user).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::RateLimited(retry_after_secs(wait))
        })
    }

    /// Forgets the rate state of accounts whose allowance is whole again.
    pub fn forget_idle(&self) {
        self.pushes.retain_recent();
        self.pulls.retain_recent();
        self.pushes.shrink_to_fit();
        self.pulls.shrink_to_fit();
    }

    /// Requests being handled now (event streams aside).
    pub fn requests_in_flight(&self) -> usize {
        self.settings.max_in_flight.max(1) - self.in_flight.available_permits()
    }
}

/// Whole seconds to wait, at least one.
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Axum middleware: a request beyond [`ProtectionSettings::max_in_flight`]
/// is answered `503` with `Retry-After: 1` at once; the event streams and
/// `/healthz` are not counted.
pub async fn in_flight(
    State(protection): State<Arc<Protection>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path == EVENTS_PATH || path == "/healthz" {
        return next.run(req).await;
    }
    let Ok(permit) = Arc::clone(&protection.in_flight).try_acquire_owned() else {
        tracing::warn!(path = %req.uri().path(), "busy: too many requests in flight");
        return error_response(&AppError::Busy(1));
    };
    let response = next.run(req).await;
    drop(permit);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_refuses_past_its_burst_and_says_how_long_to_wait() {
        let protection = Protection::new(ProtectionSettings {
            pushes_per_second: 1,
            push_burst: 2,
            ..ProtectionSettings::default()
        });
        let ann = UserId::parse("ann").expect("id");
        let bob = UserId::parse("bob").expect("id");
        assert!(protection.check_rate(&ann, Rate::Push).is_ok());
        assert!(protection.check_rate(&ann, Rate::Push).is_ok());
        assert_eq!(
            protection.check_rate(&ann, Rate::Push),
            Err(AppError::RateLimited(1))
        );
        assert!(
            protection.check_rate(&ann, Rate::Pull).is_ok(),
            "pulls apart"
        );
        assert!(
            protection.check_rate(&bob, Rate::Push).is_ok(),
            "per account"
        );
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }
}
