//! The documents the KV sync store keeps, and their keys.
//!
//! Key layout (every per-user key starts with `u:{user}:`; user ids never
//! contain `:`, so no two users share a key and no user key looks like a
//! global one):
//! - `u:{user}:head` — [`HeadDoc`]: committed watermark, purge watermarks,
//!   lease;
//! - `u:{user}:log:{seq}` — [`SlotDoc`]: the change accepted at `seq`,
//!   claimed with `insert`;
//! - `u:{user}:note:{note_id}` — the [`StoredNote`], written with CAS;
//! - `u:{user}:mut:{mutation_id}` — [`MutationDoc`]: the mutation id was
//!   applied, at which seq;
//! - `u:{user}:idx:{k}` — [`IndexShard`] `k` of [`INDEX_SHARDS`]: note id →
//!   latest seq, for full resyncs without a query service;
//! - `g:users:count` and `g:users:{n}` — the user directory, so the purge can
//!   visit every user without a range scan.
//!
//! Every part has a bounded length (user ids ≤ 64 bytes, ids 36, seqs ≤ 20
//! digits), so no key needs hashing: the longest is about 110 bytes, far
//! below [`MAX_KEY_BYTES`] (the tests check the bound).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::port::MAX_KEY_BYTES;
use crate::domain::{MutationId, NoteId, UserId};
use crate::store::{Usage, UserHead};
use crate::sync::apply::StoredNote;

/// How many documents a user's note index is split over. Fixed forever: a
/// note's shard is a function of its id and this number.
pub const INDEX_SHARDS: u64 = 16;

fn checked(key: String) -> String {
    debug_assert!(key.len() < MAX_KEY_BYTES, "key too long: {key}");
    key
}

/// The key of `user`'s head document.
pub fn head_key(user: &UserId) -> String {
    checked(format!("u:{user}:head"))
}

/// The key of `user`'s log slot `seq`.
pub fn slot_key(user: &UserId, seq: u64) -> String {
    checked(format!("u:{user}:log:{seq}"))
}

/// The key of `user`'s note `id`.
pub fn note_key(user: &UserId, id: NoteId) -> String {
    checked(format!("u:{user}:note:{id}"))
}

/// The key recording that `user`'s mutation `id` was applied.
pub fn mutation_key(user: &UserId, id: MutationId) -> String {
    checked(format!("u:{user}:mut:{id}"))
}

/// The key of `user`'s index shard `shard`.
pub fn shard_key(user: &UserId, shard: u64) -> String {
    checked(format!("u:{user}:idx:{shard}"))
}

/// The counter of user directory entries.
pub const DIRECTORY_COUNT_KEY: &str = "g:users:count";

/// The key of user directory entry `n` (1-based).
pub fn directory_key(n: u64) -> String {
    checked(format!("g:users:{n}"))
}

/// The index shard that holds note `id`: FNV-1a of its text, so every
/// server and every build agrees (std's hasher is randomised per process).
pub fn shard_of(id: NoteId) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % INDEX_SHARDS
}

/// A user's right to write, held by one server at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Unique per acquisition: server node and a counter.
    pub token: String,
    /// Port time (Unix ms) after which anyone may take the lease over.
    pub expires_ms: u64,
}

/// Per-user bookkeeping, the only document every writer contends on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadDoc {
    /// Every slot up to this seq exists, is applied, and is visible to
    /// readers; nothing above it is.
    pub committed: u64,
    /// Tombstones with a seq up to this one may have been purged: older
    /// checkpoints must resync.
    pub purge_watermark: u64,
    /// Log slots up to this seq may have been removed: pulls from older
    /// checkpoints read the note index instead of the log.
    pub log_floor: u64,
    /// The writer holding the user, if any.
    pub lease: Option<Lease>,
    /// What the user's notes take, as of `committed`; absent until the
    /// first batch counts it, and dropped whenever a writer applies a slot
    /// it did not decide (it is then counted again from the notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl HeadDoc {
    /// The feed bookkeeping in the terms of the [`crate::store`] contract.
    pub fn user_head(&self) -> UserHead {
        UserHead {
            last_seq: self.committed,
            purge_watermark: self.purge_watermark,
        }
    }
}

/// One accepted change, claimed at its seq with `insert`. It carries the
/// whole note as the change left it, so whoever finds it uncommitted can
/// apply it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotDoc {
    /// The lease token of the writer that claimed the slot.
    pub token: String,
    /// The note's seq the change was decided against (0: no note). The slot
    /// applies only on top of exactly that version; otherwise it is void.
    pub prev_seq: u64,
    pub mutation_id: MutationId,
    /// The note after the change; `note.seq` is the slot's seq.
    pub note: StoredNote,
}

/// A mutation id that was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationDoc {
    /// The slot that applied it.
    pub seq: u64,
    /// Server time of the change (Unix ms): the retention counts from it.
    pub at_ms: u64,
}

/// Where one note stands in the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub seq: u64,
    pub deleted: bool,
    pub written_ms: u64,
}

impl IndexEntry {
    /// The entry of `note` as stored.
    pub fn of(note: &StoredNote) -> Self {
        Self {
            seq: note.seq,
            deleted: note.note.deleted,
            written_ms: note.written_ms,
        }
    }
}

/// One shard of a user's note index: note id → its latest applied change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexShard {
    pub notes: BTreeMap<NoteId, IndexEntry>,
}

impl IndexShard {
    /// Records `entry` unless a later one is there: merging is commutative
    /// and idempotent, so concurrent or repeated merges agree.
    pub fn merge(&mut self, id: NoteId, entry: IndexEntry) -> bool {
        match self.notes.get(&id) {
            Some(existing) if existing.seq >= entry.seq => false,
            _ => {
                self.notes.insert(id, entry);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_keys_fit_couchbase() {
        let user = UserId::parse(&"u".repeat(UserId::MAX_LEN)).expect("valid user");
        let note = NoteId::new(u64::MAX >> 16, [0xff; 10]);
        let mutation = MutationId::new(u64::MAX >> 16, [0xff; 10]);
        let longest = [
            head_key(&user),
            slot_key(&user, u64::MAX),
            note_key(&user, note),
            mutation_key(&user, mutation),
            shard_key(&user, INDEX_SHARDS - 1),
            directory_key(u64::MAX),
        ];
        for key in &longest {
            assert!(key.len() < MAX_KEY_BYTES, "{key} is {} bytes", key.len());
        }
        assert_eq!(note_key(&user, note).len(), 2 + 64 + 6 + 36);
    }

    #[test]
    fn keys_of_different_users_never_collide() {
        let a = UserId::parse("a").expect("valid");
        let ab = UserId::parse("a-b").expect("valid");
        assert_ne!(head_key(&a), head_key(&ab));
        assert!(!slot_key(&ab, 1).starts_with(&format!("u:{a}:")));
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let ids: Vec<NoteId> = (0..64u8).map(|n| NoteId::new(1, [n; 10])).collect();
        let shards: std::collections::BTreeSet<u64> = ids.iter().map(|&id| shard_of(id)).collect();
        assert!(shards.len() > 8, "64 ids landed in {} shards", shards.len());
        assert!(ids.iter().all(|&id| shard_of(id) < INDEX_SHARDS));
        assert_eq!(shard_of(ids[0]), shard_of(ids[0]));
    }

    #[test]
    fn index_merges_keep_the_latest_entry() {
        let id = NoteId::new(1, [1; 10]);
        let entry = |seq| IndexEntry {
            seq,
            deleted: false,
            written_ms: 0,
        };
        let mut shard = IndexShard::default();
        assert!(shard.merge(id, entry(5)));
        assert!(!shard.merge(id, entry(3)));
        assert!(!shard.merge(id, entry(5)));
        assert!(shard.merge(id, entry(7)));
        assert_eq!(shard.notes[&id].seq, 7);
    }
}
