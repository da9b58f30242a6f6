//! The server's decision for one pushed change, as a pure function: given the
//! note as the server stores it and the incoming [`Change`], what the note
//! becomes and what the client is told. Stores call [`decide`] inside their
//! transaction and only persist what it returns.
//!
//! Rules:
//! - a change that fails [`Change::check`] is rejected;
//! - a change whose `base_rev` is newer than the server's revision of the note
//!   (or that names a revision of a note the server does not have) is
//!   rejected: no server ever handed that revision out;
//! - `base_rev` equal to the server's revision (or [`Revision::NEW`] for an
//!   unknown note) is applied as sent, and clears a recorded conflict: that
//!   is how a person's "choose" resolves it;
//! - an older `base_rev` is resolved with [`resolve`] (server side = the stored
//!   content, client side = the change, base = `change.base`); when the
//!   resolution is conflicted, both sides are recorded as [`ConflictSides`],
//!   so no text is ever lost;
//! - every accepted change makes revision `rev + 1`.
//!
//! No I/O, no clock: the server's time comes in as `now_ms`.

use serde::{Deserialize, Serialize};

use super::hlc::Hlc;
use super::merge::{resolve, Strategy, Version};
use super::protocol::{Change, ChangeOp, ChangeResult, ConflictSides};
use crate::domain::{Note, NoteDraft, Revision};

/// A note as the server stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredNote {
    pub note: Note,
    /// The clock of the last write, for last-writer-wins decisions.
    pub hlc: Hlc,
    /// The feed position of the note's latest change.
    pub seq: u64,
    /// The unresolved conflict, if any.
    pub conflict: Option<ConflictSides>,
    /// The server's clock (Unix ms) when this version was stored; the
    /// tombstone retention counts from it, never from a device's clock.
    pub written_ms: u64,
}

/// How an accepted change was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The base was current: the change was taken as sent.
    Applied,
    /// The base was stale: the change was resolved against the server's copy.
    Merged { conflicted: bool },
}

/// An accepted change: what to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The note after the change (its revision is the next one).
    pub note: Note,
    /// The clock to store with it.
    pub hlc: Hlc,
    /// The conflict to record (`None` clears any recorded one).
    pub conflict: Option<ConflictSides>,
    pub outcome: Outcome,
}

impl Accepted {
    /// What the store persists once it has given the change feed position `seq`.
    pub fn into_stored(self, seq: u64, now_ms: u64) -> StoredNote {
        StoredNote {
            note: self.note,
            hlc: self.hlc,
            seq,
            conflict: self.conflict,
            written_ms: now_ms,
        }
    }

    /// The answer to the client once the change has feed position `seq`.
    pub fn result(&self, seq: u64) -> ChangeResult {
        let rev = self.note.rev;
        match self.outcome {
            Outcome::Applied => ChangeResult::Applied { rev, seq },
            Outcome::Merged { conflicted } => ChangeResult::Merged {
                rev,
                seq,
                conflicted,
            },
        }
    }
}

/// The decision for one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accepted (boxed: it carries a whole note, a rejection only a reason).
    Accept(Box<Accepted>),
    /// Refused; the reason is written for people.
    Reject { reason: String },
}

/// Decides what `change` does to the note stored as `stored` (`None` if the
/// server does not have it), under `strategy`, at server time `now_ms`.
pub fn decide(
    stored: Option<&StoredNote>,
    change: &Change,
    strategy: Strategy,
    now_ms: u64,
) -> Decision {
    if let Err(e) = change.check() {
        return Decision::Reject {
            reason: e.to_string(),
        };
    }
    let incoming = match incoming_content(change) {
        Ok(content) => content,
        Err(reason) => return Decision::Reject { reason },
    };
    let current_rev = stored.map_or(Revision::NEW, |s| s.note.rev);
    if change.base_rev > current_rev {
        let reason = match stored {
            Some(_) => format!(
                "the change starts from revision {} of note {}, but the server only has revision {}",
                change.base_rev.0, change.note_id, current_rev.0
            ),
            None => format!(
                "the change starts from revision {} of note {}, which the server does not have",
                change.base_rev.0, change.note_id
            ),
        };
        return Decision::Reject { reason };
    }
    // A device clock ahead of the server's cannot date an edit in the future,
    // which would pin the note to the top of every list.
    let edit_ms = change.hlc.wall_ms.min(now_ms);
    let Some(stored) = stored else {
        let note = build_note(change, change.created_at, incoming, edit_ms, Revision::NEW);
        return Decision::Accept(Box::new(Accepted {
            note,
            hlc: change.hlc,
            conflict: None,
            outcome: Outcome::Applied,
        }));
    };
    let updated_ms = edit_ms.max(stored.note.updated_at);
    // The result follows both writes, so its clock is the later of the two.
    let hlc = stored.hlc.max(change.hlc);
    if change.base_rev == current_rev {
        let note = build_note(
            change,
            stored.note.created_at,
            incoming,
            updated_ms,
            current_rev,
        );
        return Decision::Accept(Box::new(Accepted {
            note,
            hlc,
            conflict: None,
            outcome: Outcome::Applied,
        }));
    }
    let server = Version {
        content: (!stored.note.deleted).then(|| stored.note.draft()),
        hlc: stored.hlc,
    };
    let client = Version {
        content: incoming,
        hlc: change.hlc,
    };
    let resolution = resolve(strategy, change.base.as_ref(), &server, &client);
    let conflict = if resolution.conflicted {
        Some(ConflictSides {
            server: server.content,
            client: client.content,
        })
    } else {
        // A clean merge of an unrelated edit does not settle a conflict that
        // is still waiting for the person.
        stored.conflict.clone()
    };
    let note = build_note(
        change,
        stored.note.created_at,
        resolution.content,
        updated_ms,
        current_rev,
    );
    Decision::Accept(Box::new(Accepted {
        note,
        hlc,
        conflict,
        outcome: Outcome::Merged {
            conflicted: resolution.conflicted,
        },
    }))
}

/// The content the change asks for, normalised (tags trimmed and
/// de-duplicated) the same way the client's editor does; `None` is a delete.
fn incoming_content(change: &Change) -> Result<Option<NoteDraft>, String> {
    match &change.op {
        ChangeOp::Upsert(draft) => draft
            .clone()
            .revalidate()
            .map(Some)
            .map_err(|e| e.to_string()),
        ChangeOp::Delete => Ok(None),
    }
}

fn build_note(
    change: &Change,
    created_at: u64,
    content: Option<NoteDraft>,
    updated_at: u64,
    current_rev: Revision,
) -> Note {
    let deleted = content.is_none();
    let content = content.unwrap_or_default();
    Note {
        id: change.note_id,
        title: content.title,
        body: content.body,
        tags: content.tags,
        created_at,
        updated_at,
        rev: current_rev.next(),
        deleted,
        pinned: content.pinned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientId, MutationId, NoteId, LIMITS};
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};
    // Our `Strategy`, not proptest's, which the generators below call `Gen`.
    use super::Strategy;
    use proptest::strategy::Strategy as Gen;

    const NOW: u64 = 1_700_000_000_000;

    fn note_id() -> NoteId {
        NoteId::new(1_000, [1; 10])
    }

    fn hlc(wall_ms: u64, n: u8) -> Hlc {
        Hlc {
            wall_ms,
            counter: 0,
            client: ClientId::new(2_000 + u64::from(n), [n; 10]),
        }
    }

    fn draft(title: &str, body: &str) -> NoteDraft {
        NoteDraft {
            title: title.into(),
            body: body.into(),
            tags: vec![],
            pinned: false,
        }
    }

    fn change(m: u8, base_rev: u64, base: Option<NoteDraft>, op: ChangeOp, wall: u64) -> Change {
        Change {
            mutation_id: MutationId::new(3_000 + u64::from(m), [m; 10]),
            note_id: note_id(),
            base_rev: Revision(base_rev),
            base,
            op,
            hlc: hlc(wall, m),
            created_at: 500,
        }
    }

    fn stored(rev: u64, content: Option<NoteDraft>, wall: u64) -> StoredNote {
        let deleted = content.is_none();
        let content = content.unwrap_or_default();
        StoredNote {
            note: Note {
                id: note_id(),
                title: content.title,
                body: content.body,
                tags: content.tags,
                created_at: 100,
                updated_at: wall,
                rev: Revision(rev),
                deleted,
                pinned: false,
            },
            hlc: hlc(wall, 200),
            seq: 7,
            conflict: None,
            written_ms: NOW - 10,
        }
    }

    fn accepted(d: Decision) -> Accepted {
        match d {
            Decision::Accept(a) => *a,
            Decision::Reject { reason } => panic!("rejected: {reason}"),
        }
    }

    fn reason(d: Decision) -> String {
        match d {
            Decision::Reject { reason } => reason,
            Decision::Accept(a) => panic!("accepted: {a:?}"),
        }
    }

    #[test]
    fn a_new_note_is_applied_at_revision_one() {
        let c = change(1, 0, None, ChangeOp::Upsert(draft("t", "body")), 900);
        let a = accepted(decide(None, &c, Strategy::Merge, NOW));
        assert_eq!(a.outcome, Outcome::Applied);
        assert_eq!(a.note.rev, Revision(1));
        assert_eq!(a.note.created_at, 500);
        assert_eq!(a.note.updated_at, 900);
        assert_eq!((a.note.title.as_str(), a.note.body.as_str()), ("t", "body"));
        assert!(!a.note.deleted);
        assert_eq!(a.conflict, None);
        assert_eq!(
            a.result(4),
            ChangeResult::Applied {
                rev: Revision(1),
                seq: 4
            }
        );
        let s = a.into_stored(4, NOW);
        assert_eq!((s.seq, s.written_ms), (4, NOW));
    }

    #[test]
    fn a_current_base_is_applied_keeping_created_at_and_clearing_a_conflict() {
        let mut s = stored(3, Some(draft("t", "old")), 800);
        s.conflict = Some(ConflictSides {
            server: Some(draft("t", "a")),
            client: Some(draft("t", "b")),
        });
        let c = change(
            1,
            3,
            Some(draft("t", "old")),
            ChangeOp::Upsert(draft("t", "new")),
            900,
        );
        let a = accepted(decide(Some(&s), &c, Strategy::Merge, NOW));
        assert_eq!(a.outcome, Outcome::Applied);
        assert_eq!(a.note.rev, Revision(4));
        assert_eq!(a.note.created_at, 100);
        assert_eq!(a.note.body, "new");
        assert_eq!(a.conflict, None);
        assert_eq!(a.hlc, hlc(900, 1));
    }

    #[test]
    fn a_delete_makes_a_tombstone_without_text() {
        let s = stored(1, Some(draft("t", "secret")), 800);
        let c = change(1, 1, None, ChangeOp::Delete, 900);
        let a = accepted(decide(Some(&s), &c, Strategy::Merge, NOW));
        assert!(a.note.deleted);
        assert!(a.note.body.is_empty() && a.note.title.is_empty());
        assert_eq!(a.note.rev, Revision(2));
    }

    #[test]
    fn edit_times_never_go_backwards_nor_into_the_future() {
        let s = stored(1, Some(draft("t", "x")), 800);
        let c = change(1, 1, None, ChangeOp::Upsert(draft("t", "y")), 10);
        assert_eq!(
            accepted(decide(Some(&s), &c, Strategy::Merge, NOW))
                .note
                .updated_at,
            800
        );
        let c = change(
            1,
            1,
            None,
            ChangeOp::Upsert(draft("t", "y")),
            NOW + 1_000_000,
        );
        assert_eq!(
            accepted(decide(Some(&s), &c, Strategy::Merge, NOW))
                .note
                .updated_at,
            NOW
        );
    }

    #[test]
    fn a_base_newer_than_the_server_is_rejected() {
        let s = stored(2, Some(draft("t", "x")), 800);
        let c = change(1, 3, None, ChangeOp::Upsert(draft("t", "y")), 900);
        let r = reason(decide(Some(&s), &c, Strategy::Merge, NOW));
        assert!(
            r.contains("revision 3") && r.contains("only has revision 2"),
            "{r}"
        );
        let c = change(1, 1, None, ChangeOp::Upsert(draft("t", "y")), 900);
        let r = reason(decide(None, &c, Strategy::Merge, NOW));
        assert!(r.contains("does not have"), "{r}");
    }

    #[test]
    fn an_invalid_change_is_rejected_with_the_domain_message() {
        let big = "x".repeat(LIMITS.max_body_bytes + 1);
        let c = change(1, 0, None, ChangeOp::Upsert(draft("t", &big)), 900);
        let r = reason(decide(None, &c, Strategy::Merge, NOW));
        assert!(r.contains("1 MiB"), "{r}");
    }

    #[test]
    fn a_stale_base_is_merged() {
        let base = draft("t", "one\ntwo\nthree\n");
        let s = stored(2, Some(draft("t", "ONE\ntwo\nthree\n")), 800);
        let c = change(
            1,
            1,
            Some(base),
            ChangeOp::Upsert(draft("t", "one\ntwo\nTHREE\n")),
            900,
        );
        let a = accepted(decide(Some(&s), &c, Strategy::Merge, NOW));
        assert_eq!(a.outcome, Outcome::Merged { conflicted: false });
        assert_eq!(a.note.body, "ONE\ntwo\nTHREE\n");
        assert_eq!(a.note.rev, Revision(3));
        assert_eq!(a.conflict, None);
        assert_eq!(a.hlc, hlc(900, 1).max(s.hlc));
        assert_eq!(
            a.result(9),
            ChangeResult::Merged {
                rev: Revision(3),
                seq: 9,
                conflicted: false
            }
        );
    }

    #[test]
    fn an_overlapping_stale_edit_records_both_sides() {
        let base = draft("t", "one\n");
        let s = stored(2, Some(draft("t", "server\n")), 800);
        let c = change(
            1,
            1,
            Some(base),
            ChangeOp::Upsert(draft("t", "client\n")),
            900,
        );
        let a = accepted(decide(Some(&s), &c, Strategy::Merge, NOW));
        assert_eq!(a.outcome, Outcome::Merged { conflicted: true });
        assert!(a.note.body.contains("server\n") && a.note.body.contains("client\n"));
        assert_eq!(
            a.conflict,
            Some(ConflictSides {
                server: Some(draft("t", "server\n")),
                client: Some(draft("t", "client\n")),
            })
        );
    }

    #[test]
    fn a_clean_stale_merge_keeps_a_pending_conflict() {
        let mut s = stored(2, Some(draft("t", "a\nb\n")), 800);
        let sides = ConflictSides {
            server: Some(draft("t", "x")),
            client: Some(draft("t", "y")),
        };
        s.conflict = Some(sides.clone());
        let c = change(
            1,
            1,
            Some(draft("t", "a\nb\n")),
            ChangeOp::Upsert(draft("u", "a\nb\n")),
            900,
        );
        let a = accepted(decide(Some(&s), &c, Strategy::Merge, NOW));
        assert_eq!(a.outcome, Outcome::Merged { conflicted: false });
        assert_eq!(a.conflict, Some(sides));
    }

    #[test]
    fn server_wins_keeps_the_server_text_and_records_the_client_text() {
        let s = stored(2, Some(draft("t", "server\n")), 800);
        let c = change(
            1,
            1,
            Some(draft("t", "one\n")),
            ChangeOp::Upsert(draft("t", "client\n")),
            900,
        );
        let a = accepted(decide(Some(&s), &c, Strategy::ServerWins, NOW));
        assert_eq!(a.note.body, "server\n");
        assert_eq!(a.outcome, Outcome::Merged { conflicted: true });
        let sides = a.conflict.expect("recorded");
        assert_eq!(sides.client, Some(draft("t", "client\n")));
    }

    #[test]
    fn a_stale_edit_revives_a_deleted_note_under_merge() {
        let s = stored(2, None, 800);
        let c = change(
            1,
            1,
            Some(draft("t", "one\n")),
            ChangeOp::Upsert(draft("t", "two\n")),
            900,
        );
        let a = accepted(decide(Some(&s), &c, Strategy::Merge, NOW));
        assert!(!a.note.deleted);
        assert_eq!(a.note.body, "two\n");
        assert_eq!(a.outcome, Outcome::Merged { conflicted: true });
    }

    // ---- properties ----

    /// A minimal idempotency layer around [`decide`], as every store has one:
    /// mutation ids seen before answer `Duplicate` and change nothing.
    #[derive(Default, Clone, PartialEq, Debug)]
    struct Model {
        notes: HashMap<NoteId, StoredNote>,
        seen: HashSet<MutationId>,
        seq: u64,
    }

    impl Model {
        fn push(&mut self, change: &Change, strategy: Strategy) -> ChangeResult {
            if self.seen.contains(&change.mutation_id) {
                return ChangeResult::Duplicate;
            }
            match decide(self.notes.get(&change.note_id), change, strategy, NOW) {
                Decision::Reject { reason } => ChangeResult::rejected(reason),
                Decision::Accept(a) => {
                    self.seq += 1;
                    let result = a.result(self.seq);
                    self.notes
                        .insert(change.note_id, a.into_stored(self.seq, NOW));
                    self.seen.insert(change.mutation_id);
                    result
                }
            }
        }
    }

    fn any_text() -> impl Gen<Value = String> {
        let line = prop::sample::select(vec!["a", "b", "c", "hello", ""]);
        prop::collection::vec(line, 0..5).prop_map(|lines| lines.join("\n") + "\n")
    }

    fn any_change() -> impl Gen<Value = Change> {
        (
            0u8..6,
            0u64..4,
            prop::option::of(any_text()),
            prop::option::weighted(0.85, any_text()),
            0u64..5,
        )
            .prop_map(|(m, base_rev, base, body, wall)| {
                let op = match body {
                    Some(body) => ChangeOp::Upsert(draft("t", &body)),
                    None => ChangeOp::Delete,
                };
                change(m, base_rev, base.map(|b| draft("t", &b)), op, wall)
            })
    }

    fn any_strategy() -> impl Gen<Value = Strategy> {
        prop::sample::select(Strategy::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn replaying_a_sequence_changes_nothing(
            changes in prop::collection::vec(any_change(), 1..12),
            strategy in any_strategy(),
        ) {
            let mut model = Model::default();
            let first: Vec<_> = changes.iter().map(|c| model.push(c, strategy)).collect();
            let after_first = model.clone();
            // A rejected change may fit on replay, once the note has reached
            // its base; every change accepted the first time must be a no-op.
            for (change, result) in changes.iter().zip(&first) {
                if matches!(result, ChangeResult::Applied { .. } | ChangeResult::Merged { .. }) {
                    prop_assert_eq!(model.push(change, strategy), ChangeResult::Duplicate);
                }
            }
            prop_assert_eq!(model, after_first);
        }

        #[test]
        fn revisions_and_seqs_only_grow(
            changes in prop::collection::vec(any_change(), 1..12),
            strategy in any_strategy(),
        ) {
            let mut model = Model::default();
            let mut last_seq = 0;
            for change in &changes {
                let before = model.notes.get(&change.note_id).map(|s| s.note.rev);
                match model.push(change, strategy) {
                    ChangeResult::Applied { rev, seq } | ChangeResult::Merged { rev, seq, .. } => {
                        prop_assert!(seq > last_seq);
                        last_seq = seq;
                        prop_assert_eq!(rev, before.unwrap_or(Revision::NEW).next());
                    }
                    _ => prop_assert_eq!(model.notes.get(&change.note_id).map(|s| s.note.rev), before),
                }
            }
        }

        #[test]
        fn no_text_from_either_side_is_lost(
            base in any_text(),
            server in any_text(),
            client in prop::option::weighted(0.85, any_text()),
            strategy in any_strategy(),
        ) {
            let s = stored(2, Some(draft("t", &server)), 3);
            let op = match &client {
                Some(body) => ChangeOp::Upsert(draft("t", body)),
                None => ChangeOp::Delete,
            };
            let c = change(1, 1, Some(draft("t", &base)), op, 4);
            let a = accepted(decide(Some(&s), &c, strategy, NOW));
            let kept: Vec<&str> = a.note.body.lines().collect();
            let recorded = |side: &Option<NoteDraft>, text: &str| {
                side.as_ref().is_some_and(|d| d.body == text)
            };
            let old: Vec<&str> = base.lines().collect();
            for (text, is_server) in [(Some(server.as_str()), true), (client.as_deref(), false)] {
                let Some(text) = text else { continue };
                let in_conflict = a.conflict.as_ref().is_some_and(|sides| {
                    recorded(if is_server { &sides.server } else { &sides.client }, text)
                });
                for line in text.lines().filter(|l| !old.contains(l)) {
                    prop_assert!(
                        kept.contains(&line) || in_conflict,
                        "{line:?} of {} lost: {a:?}", if is_server { "server" } else { "client" }
                    );
                }
            }
        }
    }
}
