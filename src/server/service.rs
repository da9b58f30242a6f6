//! The sync service: the server's use cases behind the `push` and `pull`
//! server functions, over any [`SyncStore`].
//!
//! It checks requests at the boundary (protocol version, batch size, each
//! change's content), hands the store only valid changes, and turns store
//! failures into [`AppError::Internal`] after logging them: internals never
//! reach a client. It also owns the periodic purge of expired tombstones.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::api::AppError;
use crate::domain::UserId;
use crate::store::{Quota, StoreError, SyncStore};
use crate::sync::merge::Strategy;
use crate::sync::protocol::{ChangeResult, PullRequest, PullResponse, PushRequest, PushResponse};

/// A source of the current time in Unix milliseconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How often expired tombstones are purged.
pub const PURGE_EVERY: Duration = Duration::from_secs(60 * 60);

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

/// Push and pull for signed-in users.
#[derive(Clone)]
pub struct SyncService {
    store: Arc<dyn SyncStore>,
    strategy: Strategy,
    retention: Duration,
    clock: Clock,
    quota: Quota,
}

impl std::fmt::Debug for SyncService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncService")
            .field("strategy", &self.strategy)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl SyncService {
    /// A service over `store` resolving conflicts with `strategy` and keeping
    /// tombstones (and remembered mutation ids) for `retention`.
    pub fn new(store: Arc<dyn SyncStore>, strategy: Strategy, retention: Duration) -> Self {
        Self {
            store,
            strategy,
            retention,
            clock: system_clock(),
            quota: Quota::UNLIMITED,
        }
    }

    /// The same service keeping every account within `quota`.
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self
    }

    /// The quota every account is kept within.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The same service reading time from `clock` (for tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The store the service works on.
    pub fn store(&self) -> Arc<dyn SyncStore> {
        Arc::clone(&self.store)
    }

    /// The conflict strategy in force.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Applies a push batch for `user`: one result per change, in order.
    pub async fn push(&self, user: &UserId, req: PushRequest) -> Result<PushResponse, AppError> {
        req.check()?;
        let mut results: Vec<Option<ChangeResult>> = Vec::with_capacity(req.changes.len());
        let mut valid = Vec::with_capacity(req.changes.len());
        for change in req.changes {
            match change.check() {
                Ok(()) => {
                    results.push(None);
                    valid.push(change);
                }
                Err(e) => results.push(Some(ChangeResult::rejected(e.to_string()))),
            }
        }
        let mut applied = if valid.is_empty() {
            Vec::new()
        } else {
            self.store
                .apply_batch_within(user, &valid, self.strategy, (self.clock)(), self.quota)
                .await
                .map_err(|e| internal("push", user, &e))?
        }
        .into_iter();
        let results = results
            .into_iter()
            .map(|slot| match slot {
                Some(rejected) => Ok(rejected),
                None => applied.next().ok_or(()),
            })
            .collect::<Result<Vec<_>, ()>>()
            .map_err(|()| {
                let e = StoreError::Invalid("the store answered too few results".into());
                internal("push", user, &e)
            })?;
        Ok(PushResponse { results })
    }

    /// Reads `user`'s feed after the request's checkpoint.
    pub async fn pull(&self, user: &UserId, req: PullRequest) -> Result<PullResponse, AppError> {
        let limit = req.effective_limit()?;
        self.store
            .changes_since(user, req.checkpoint, req.download_head, limit)
            .await
            .map_err(|e| internal("pull", user, &e))
    }

    /// Purges the tombstones and mutation ids older than the retention
    /// window; returns how many records were removed.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let retention_ms = u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX);
        let cutoff = (self.clock)().saturating_sub(retention_ms);
        self.store.purge_expired(cutoff).await
    }

    /// Starts the background task that purges every `every`, first at once.
    /// It runs until the runtime shuts down; failures are logged and retried
    /// at the next tick.
    pub fn spawn_purger(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.purge_expired().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "purged expired tombstones"),
                    Err(e) => tracing::error!(error = %e, "purging expired tombstones failed"),
                }
            }
        })
    }
}

fn internal(operation: &'static str, user: &UserId, e: &StoreError) -> AppError {
    tracing::error!(operation, user = %user, error = %e, "store failure");
    AppError::Internal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientId, LIMITS};
    use crate::store::contract::{create, user};
    use crate::store::MemoryStore;
    use crate::sync::protocol::{Checkpoint, ProtocolError, PROTOCOL_VERSION};

    fn service() -> SyncService {
        SyncService::new(
            Arc::new(MemoryStore::new()),
            Strategy::Merge,
            Duration::from_secs(90 * 24 * 3600),
        )
        .with_clock(Arc::new(|| 1_700_000_000_000))
    }

    fn push_req(changes: Vec<crate::sync::protocol::Change>) -> PushRequest {
        PushRequest {
            protocol: PROTOCOL_VERSION,
            client_id: ClientId::new(1, [1; 10]),
            changes,
            account: None,
        }
    }

    #[tokio::test]
    async fn invalid_changes_are_rejected_in_place() {
        let s = service();
        let big = "x".repeat(LIMITS.max_body_bytes + 1);
        let res = s
            .push(
                &user("u"),
                push_req(vec![
                    create(1, 1, "a"),
                    create(2, 2, &big),
                    create(3, 3, "c"),
                ]),
            )
            .await
            .expect("push");
        assert!(matches!(res.results[0], ChangeResult::Applied { .. }));
        assert!(matches!(res.results[1], ChangeResult::Rejected { .. }));
        assert!(matches!(res.results[2], ChangeResult::Applied { .. }));
        let only_bad = s
            .push(&user("u"), push_req(vec![create(4, 4, &big)]))
            .await
            .expect("push");
        assert!(matches!(only_bad.results[0], ChangeResult::Rejected { .. }));
    }

    #[tokio::test]
    async fn whole_request_errors_are_protocol_errors() {
        let s = service();
        let mut req = push_req(vec![create(1, 1, "a")]);
        req.protocol = 99;
        assert!(matches!(
            s.push(&user("u"), req).await,
            Err(AppError::Protocol(ProtocolError::UnsupportedVersion {
                got: 99,
                ..
            }))
        ));
        let pull = PullRequest {
            protocol: PROTOCOL_VERSION,
            checkpoint: Checkpoint(0),
            limit: 0,
            download_head: None,
            account: None,
        };
        assert_eq!(
            s.pull(&user("u"), pull).await,
            Err(AppError::Protocol(ProtocolError::ZeroLimit))
        );
    }

    #[tokio::test]
    async fn purge_uses_the_retention_window() {
        let s = service();
        let purged = s.purge_expired().await.expect("purge");
        assert_eq!(purged, 0);
    }
}
