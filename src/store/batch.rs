//! The push-batch algorithm, written once for every transactional store: the
//! idempotency check, the decision of [`decide`], the sequence numbers and
//! the writes, over a small synchronous [`BatchTxn`] port that a store
//! implements inside its own transaction.
//!
//! Invariant: the store's view through [`BatchTxn`] includes the writes made
//! earlier in the same batch, so a note changed twice in one batch and a
//! mutation id repeated in one batch behave as in two batches.

use super::{Quota, StoreError, Usage, UserHead};
use crate::domain::{MutationId, NoteId};
use crate::sync::apply::{decide, Decision, StoredNote};
use crate::sync::merge::Strategy;
use crate::sync::protocol::{Change, ChangeResult};

/// One user's data inside one open transaction of a store.
pub trait BatchTxn {
    /// The user's head; the default head if the user has none yet.
    fn head(&mut self) -> Result<UserHead, StoreError>;
    /// Stores the user's head.
    fn set_head(&mut self, head: UserHead) -> Result<(), StoreError>;
    /// Whether `id` was accepted before (and not yet forgotten by a purge).
    fn mutation_seen(&mut self, id: MutationId) -> Result<bool, StoreError>;
    /// Remembers that `id` was accepted at server time `now_ms`.
    fn remember_mutation(&mut self, id: MutationId, now_ms: u64) -> Result<(), StoreError>;
    /// The stored note, if any (tombstones included).
    fn load(&mut self, id: NoteId) -> Result<Option<StoredNote>, StoreError>;
    /// Stores `note`, replacing `previous` (the value [`BatchTxn::load`]
    /// returned): the note leaves its old feed position for `note.seq`.
    fn save(&mut self, previous: Option<&StoredNote>, note: &StoredNote) -> Result<(), StoreError>;
    /// What the user's notes take now ([`Usage::of`] summed), counted from
    /// the notes if the store keeps no count yet.
    fn usage(&mut self) -> Result<Usage, StoreError>;
    /// Stores the user's usage.
    fn set_usage(&mut self, usage: Usage) -> Result<(), StoreError>;
}

/// Applies `changes` through `txn` and answers one result per change. The
/// caller commits the transaction on `Ok` and abandons it on `Err`.
pub fn apply_changes(
    txn: &mut impl BatchTxn,
    changes: &[Change],
    strategy: Strategy,
    now_ms: u64,
    quota: Quota,
) -> Result<Vec<ChangeResult>, StoreError> {
    let mut head = txn.head()?;
    let start = txn.usage()?;
    let mut usage = start;
    let mut results = Vec::with_capacity(changes.len());
    for change in changes {
        if txn.mutation_seen(change.mutation_id)? {
            results.push(ChangeResult::Duplicate);
            continue;
        }
        let stored = txn.load(change.note_id)?;
        match decide(stored.as_ref(), change, strategy, now_ms) {
            Decision::Reject { reason, code } => {
                results.push(ChangeResult::Rejected { reason, code })
            }
            Decision::Accept(accepted) => {
                let seq = head
                    .last_seq
                    .checked_add(1)
                    .ok_or_else(|| StoreError::Invalid("sequence numbers exhausted".into()))?;
                let result = accepted.result(seq);
                let next = accepted.into_stored(seq, now_ms);
                let after = usage.replacing(
                    stored.as_ref().map(Usage::of).unwrap_or_default(),
                    Usage::of(&next),
                );
                if let Some(reason) = quota.refuses(usage, after) {
                    results.push(ChangeResult::over_quota(reason));
                    continue;
                }
                usage = after;
                head.last_seq = seq;
                results.push(result);
                txn.save(stored.as_ref(), &next)?;
                txn.remember_mutation(change.mutation_id, now_ms)?;
            }
        }
    }
    txn.set_head(head)?;
    if usage != start {
        txn.set_usage(usage)?;
    }
    Ok(results)
}
