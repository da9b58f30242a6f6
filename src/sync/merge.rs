//! The conflict policy: what a note becomes when the server and a client both
//! changed it since their common base. The server and the client run this same
//! code, so both sides always reach the same result.
//!
//! Invariants:
//! - text is never lost silently: whenever a side's body does not survive into
//!   the result, [`Resolution::conflicted`] is set so the caller can keep a
//!   conflict copy and show the person a compare-and-choose view;
//! - with [`Strategy::Merge`] an edit always beats a delete;
//! - the result is a pure function of its inputs (no clock, no randomness) and
//!   respects [`LIMITS`](crate::domain::LIMITS) whenever both sides do.

use std::fmt;
use std::str::FromStr;

use diffy::{ConflictStyle, IncompleteHunkStyle, MergeOptions};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::hlc::Hlc;
use crate::domain::NoteDraft;

/// The outcome of a line-based three-way text merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextMerge {
    /// The changes did not overlap; this is the merged text.
    Clean(String),
    /// Some changes overlapped. The text holds every change of both sides, the
    /// overlapping ones between `<<<<<<< ours`, `=======` and `>>>>>>> theirs`
    /// lines.
    Conflicted(String),
}

impl TextMerge {
    /// The merged text, with conflict markers if there are any.
    pub fn text(&self) -> &str {
        match self {
            TextMerge::Clean(text) | TextMerge::Conflicted(text) => text,
        }
    }

    /// The merged text, with conflict markers if there are any.
    pub fn into_text(self) -> String {
        match self {
            TextMerge::Clean(text) | TextMerge::Conflicted(text) => text,
        }
    }

    /// Whether some changes overlapped.
    pub fn is_conflicted(&self) -> bool {
        matches!(self, TextMerge::Conflicted(_))
    }
}

/// Merges line by line the changes `ours` and `theirs` each made to `base`.
pub fn merge_text(base: &str, ours: &str, theirs: &str) -> TextMerge {
    let mut options = MergeOptions::new();
    // Two-sided markers are what a person can read. The git style puts every
    // marker on a line of its own, even after a last line without a newline,
    // so no marker is ever glued to the person's text.
    options
        .set_conflict_style(ConflictStyle::Merge)
        .set_incomplete_hunk_style(IncompleteHunkStyle::Git);
    match options.merge(base, ours, theirs) {
        Ok(text) => TextMerge::Clean(text),
        Err(text) => TextMerge::Conflicted(text),
    }
}

/// How concurrent changes to the same note are reconciled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Bodies merged three-way, title and tags last-writer-wins; an edit beats
    /// a delete.
    #[default]
    Merge,
    /// The server's copy is kept.
    ServerWins,
    /// The client's copy is kept.
    ClientWins,
    /// The copy with the later [`Hlc`] is kept whole.
    Lww,
}

impl Strategy {
    /// Every strategy, in the order they are documented.
    pub const ALL: [Strategy; 4] = [
        Strategy::Merge,
        Strategy::ServerWins,
        Strategy::ClientWins,
        Strategy::Lww,
    ];

    /// The name accepted by [`FromStr`] and used by serde.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Merge => "merge",
            Strategy::ServerWins => "server-wins",
            Strategy::ClientWins => "client-wins",
            Strategy::Lww => "lww",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A conflict strategy name that is not one of [`Strategy::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown conflict strategy {0:?}: expected one of merge, server-wins, client-wins, lww")]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == s)
            .ok_or_else(|| UnknownStrategy(s.chars().take(64).collect()))
    }
}

/// A note's content as one side (server or client) has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The content; `None` means the note was deleted (a tombstone).
    pub content: Option<NoteDraft>,
    /// When this content was written.
    pub hlc: Hlc,
}

/// What the note becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The resulting content; `None` means the note stays deleted.
    pub content: Option<NoteDraft>,
    /// The person should be shown a compare-and-choose view: the body holds
    /// conflict markers, or a side's text did not make it into `content` and
    /// the caller must keep it as a conflict copy.
    pub conflicted: bool,
}

/// Reconciles the server's and the client's version of a note that both
/// changed since `base` (`None` if the server never had the note).
///
/// - [`Strategy::Merge`]: the body is merged with [`merge_text`], the server
///   as `ours` and the client as `theirs`; overlapping changes keep conflict
///   markers and set `conflicted`. Title and tags each come from the side that
///   changed them, or from the later [`Hlc`] if both did. An edit beats a
///   delete (flagged as conflicted); two deletes stay deleted.
/// - [`Strategy::ServerWins`], [`Strategy::ClientWins`], [`Strategy::Lww`]:
///   the winning side (for `Lww` the later [`Hlc`]) is kept whole. If the
///   losing side's body is non-empty, differs from the base and is not what
///   the winner kept, it would vanish, so `conflicted` is set and the caller
///   keeps it as a conflict copy.
///
/// A merged note that breaks the limits (conflict markers can push a body
/// over [`LIMITS.max_body_bytes`](crate::domain::LIMITS)) is replaced by the
/// side with the later [`Hlc`], flagged as conflicted.
///
/// Ties between equal clocks (the same edit seen twice) go to the server.
pub fn resolve(
    strategy: Strategy,
    base: Option<&NoteDraft>,
    server: &Version,
    client: &Version,
) -> Resolution {
    let empty = NoteDraft::default();
    let known_base = base.is_some();
    let base = base.unwrap_or(&empty);
    let server_is_later = server.hlc >= client.hlc;
    let (later, earlier) = if server_is_later {
        (server, client)
    } else {
        (client, server)
    };
    match strategy {
        Strategy::Merge => merge_versions(base, known_base, server, client, server_is_later),
        Strategy::ServerWins => keep_winner(base, server, client),
        Strategy::ClientWins => keep_winner(base, client, server),
        Strategy::Lww => keep_winner(base, later, earlier),
    }
}

/// The winner's content, flagged if the loser's body would vanish silently.
fn keep_winner(base: &NoteDraft, winner: &Version, loser: &Version) -> Resolution {
    let kept_body = winner.content.as_ref().map(|draft| draft.body.as_str());
    let lost = loser.content.as_ref().is_some_and(|draft| {
        !draft.body.is_empty() && draft.body != base.body && Some(draft.body.as_str()) != kept_body
    });
    Resolution {
        content: winner.content.clone(),
        conflicted: lost,
    }
}

/// [`Strategy::Merge`]: the server's copy is `ours`, the client's `theirs`.
fn merge_versions(
    base: &NoteDraft,
    known_base: bool,
    server: &Version,
    client: &Version,
    server_is_later: bool,
) -> Resolution {
    let (ours, theirs) = match (&server.content, &client.content) {
        (None, None) => {
            return Resolution {
                content: None,
                conflicted: false,
            }
        }
        // The deleter saw exactly this text (it is their base): the delete
        // is what they meant, and no one's text is lost.
        (Some(kept), None) | (None, Some(kept)) if known_base && kept == base => {
            return Resolution {
                content: None,
                conflicted: false,
            }
        }
        // The person who deleted may not have seen the other side's text.
        (Some(kept), None) | (None, Some(kept)) => {
            return Resolution {
                content: Some(kept.clone()),
                conflicted: true,
            }
        }
        (Some(ours), Some(theirs)) => (ours, theirs),
    };
    merge_drafts(base, ours, theirs, server_is_later)
}

/// The three-way merge of two live versions of a note: the body line by line
/// (overlaps keep conflict markers and set `conflicted`), title, tags and
/// the pin each
/// from the side that changed it, or from `ours` if both did and
/// `ours_is_later`. A result over the limits is replaced by the later side,
/// flagged as conflicted.
///
/// The server merges a pushed change with this ([`Strategy::Merge`]), and a
/// replica rebases its pending edit on a pulled revision with it, with the
/// server's copy as `ours` both times: where the replica's merge is clean, it
/// is the text the server would have made.
pub fn merge_drafts(
    base: &NoteDraft,
    ours: &NoteDraft,
    theirs: &NoteDraft,
    ours_is_later: bool,
) -> Resolution {
    let body = merge_text(&base.body, &ours.body, &theirs.body);
    let conflicted = body.is_conflicted();
    let merged = NoteDraft {
        title: pick_field(&base.title, &ours.title, &theirs.title, ours_is_later).clone(),
        body: body.into_text(),
        tags: pick_field(&base.tags, &ours.tags, &theirs.tags, ours_is_later).clone(),
        pinned: *pick_field(&base.pinned, &ours.pinned, &theirs.pinned, ours_is_later),
    };
    match merged.revalidate() {
        Ok(content) => Resolution {
            content: Some(content),
            conflicted,
        },
        Err(_) => Resolution {
            content: Some(if ours_is_later { ours } else { theirs }.clone()),
            conflicted: true,
        },
    }
}

/// Last-writer-wins for one field: the side that changed it, or the later side
/// if both (or neither) did.
fn pick_field<'a, T: PartialEq>(
    base: &T,
    ours: &'a T,
    theirs: &'a T,
    ours_is_later: bool,
) -> &'a T {
    match (ours != base, theirs != base) {
        (true, false) => ours,
        (false, true) => theirs,
        _ if ours_is_later => ours,
        _ => theirs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientId, LIMITS};
    use proptest::prelude::*;
    // Our `Strategy`, not proptest's, which the generators below call `Gen`.
    use super::Strategy;
    use proptest::strategy::Strategy as Gen;

    fn hlc(wall_ms: u64, n: u8) -> Hlc {
        Hlc {
            wall_ms,
            counter: 0,
            client: ClientId::new(1_000 + u64::from(n), [n; 10]),
        }
    }

    fn draft(title: &str, body: &str, tags: &[&str]) -> NoteDraft {
        NoteDraft {
            title: title.into(),
            body: body.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pinned: false,
        }
    }

    fn version(content: Option<NoteDraft>, wall_ms: u64, n: u8) -> Version {
        Version {
            content,
            hlc: hlc(wall_ms, n),
        }
    }

    const BASE: &str = "one\ntwo\nthree\n";

    #[test]
    fn the_pin_is_kept_from_the_side_that_changed_it() {
        let base = draft("t", BASE, &[]);
        let pinned = draft("t", BASE, &[]).with_pin(true);
        let edited = draft("t", "one\ntwo\nthree\nfour\n", &[]);
        // Pinned on the server, body edited on the client: both kept.
        let merged = resolve(
            Strategy::Merge,
            Some(&base),
            &version(Some(pinned.clone()), 20, 1),
            &version(Some(edited.clone()), 10, 2),
        );
        let content = merged.content.expect("live");
        assert!(content.pinned && content.body.ends_with("four\n"));
        assert!(!merged.conflicted);
        // Pinned on the client, the server's later edit keeps the pin too.
        let merged = merge_drafts(&base, &edited, &pinned, true);
        assert!(merged.content.expect("live").pinned);
        // Unpinned on one side, untouched on the other: unpinned.
        let merged = merge_drafts(&pinned, &pinned, &base, true);
        assert!(!merged.content.expect("live").pinned);
    }

    // ---- merge_text ----

    #[test]
    fn separate_changes_merge_cleanly() {
        let got = merge_text(BASE, "ONE\ntwo\nthree\n", "one\ntwo\nTHREE\n");
        assert_eq!(got, TextMerge::Clean("ONE\ntwo\nTHREE\n".into()));
    }

    #[test]
    fn overlapping_changes_keep_both_sides_between_markers() {
        let got = merge_text(BASE, "one\nours\nthree\n", "one\ntheirs\nthree\n");
        assert_eq!(
            got,
            TextMerge::Conflicted(
                "one\n<<<<<<< ours\nours\n=======\ntheirs\n>>>>>>> theirs\nthree\n".into()
            )
        );
    }

    #[test]
    fn markers_are_never_glued_to_a_last_line_without_newline() {
        let got = merge_text("a", "b", "c");
        assert!(got.is_conflicted());
        assert!(got.text().lines().any(|l| l == "b"), "{got:?}");
        assert!(got.text().lines().any(|l| l == "c"), "{got:?}");
    }

    // ---- Strategy ----

    #[test]
    fn strategy_names_parse_and_print() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.as_str().parse::<Strategy>(), Ok(strategy));
            assert_eq!(strategy.to_string(), strategy.as_str());
            let json = serde_json::to_string(&strategy).expect("serialises");
            assert_eq!(json, format!("\"{}\"", strategy.as_str()));
        }
        assert_eq!(Strategy::default(), Strategy::Merge);
    }

    #[test]
    fn unknown_strategy_names_are_refused_clearly() {
        for bad in ["", "Merge", "server_wins", "theirs"] {
            let err = bad.parse::<Strategy>().expect_err("refused");
            assert!(err.to_string().contains("server-wins"), "{err}");
        }
    }

    // ---- resolve: Merge ----

    #[test]
    fn merge_combines_bodies_and_takes_each_changed_field() {
        let base = draft("t", BASE, &["a"]);
        let server = version(
            Some(draft("server title", "ONE\ntwo\nthree\n", &["a"])),
            10,
            1,
        );
        let client = version(Some(draft("t", "one\ntwo\nTHREE\n", &["a", "b"])), 5, 2);
        let got = resolve(Strategy::Merge, Some(&base), &server, &client);
        assert_eq!(
            got,
            Resolution {
                content: Some(draft("server title", "ONE\ntwo\nTHREE\n", &["a", "b"])),
                conflicted: false,
            }
        );
    }

    #[test]
    fn merge_gives_a_field_changed_on_both_sides_to_the_later_writer() {
        let base = draft("t", BASE, &[]);
        let server = version(Some(draft("server", BASE, &["s"])), 10, 1);
        let client = version(Some(draft("client", BASE, &["c"])), 20, 2);
        let got = resolve(Strategy::Merge, Some(&base), &server, &client);
        assert_eq!(got.content, Some(draft("client", BASE, &["c"])));
        assert!(!got.conflicted);
        let got = resolve(Strategy::Merge, Some(&base), &client, &server);
        assert_eq!(got.content, Some(draft("client", BASE, &["c"])));
    }

    #[test]
    fn merge_keeps_markers_for_overlapping_body_changes() {
        let base = draft("t", BASE, &[]);
        let server = version(Some(draft("t", "one\nserver\nthree\n", &[])), 10, 1);
        let client = version(Some(draft("t", "one\nclient\nthree\n", &[])), 20, 2);
        let got = resolve(Strategy::Merge, Some(&base), &server, &client);
        assert!(got.conflicted);
        let body = got.content.expect("kept").body;
        assert!(
            body.contains("<<<<<<< ours\nserver\n=======\nclient\n>>>>>>> theirs\n"),
            "{body}"
        );
    }

    #[test]
    fn merge_without_a_base_merges_against_empty_text() {
        let server = version(Some(draft("", "same\n", &[])), 10, 1);
        let client = version(Some(draft("", "same\n", &[])), 20, 2);
        let got = resolve(Strategy::Merge, None, &server, &client);
        assert_eq!(got.content, Some(draft("", "same\n", &[])));
        assert!(!got.conflicted);

        let client = version(Some(draft("", "other\n", &[])), 20, 2);
        let got = resolve(Strategy::Merge, None, &server, &client);
        assert!(got.conflicted);
        let body = got.content.expect("kept").body;
        assert!(
            body.contains("same\n") && body.contains("other\n"),
            "{body}"
        );
    }

    #[test]
    fn merge_lets_an_edit_beat_a_delete_and_flags_it() {
        let base = draft("t", BASE, &[]);
        let edited = draft("t", "one\ntwo\nthree\nfour\n", &[]);
        for (server, client) in [
            (version(None, 30, 1), version(Some(edited.clone()), 20, 2)),
            (version(Some(edited.clone()), 20, 1), version(None, 30, 2)),
        ] {
            let got = resolve(Strategy::Merge, Some(&base), &server, &client);
            assert_eq!(
                got,
                Resolution {
                    content: Some(edited.clone()),
                    conflicted: true,
                }
            );
        }
    }

    #[test]
    fn merge_lets_a_delete_win_over_the_very_text_its_author_saw() {
        let base = draft("t", BASE, &[]);
        for (server, client) in [
            (version(Some(base.clone()), 20, 1), version(None, 30, 2)),
            (version(None, 30, 1), version(Some(base.clone()), 20, 2)),
        ] {
            let got = resolve(Strategy::Merge, Some(&base), &server, &client);
            assert_eq!(
                got,
                Resolution {
                    content: None,
                    conflicted: false,
                }
            );
        }
        // Without a known base the text may be unseen: it is kept and flagged.
        let got = resolve(
            Strategy::Merge,
            None,
            &version(Some(base.clone()), 20, 1),
            &version(None, 30, 2),
        );
        assert!(got.content.is_some() && got.conflicted);
    }

    #[test]
    fn merge_of_two_deletes_stays_deleted() {
        let base = draft("t", BASE, &[]);
        let got = resolve(
            Strategy::Merge,
            Some(&base),
            &version(None, 1, 1),
            &version(None, 2, 2),
        );
        assert_eq!(
            got,
            Resolution {
                content: None,
                conflicted: false,
            }
        );
    }

    #[test]
    fn merge_over_the_body_limit_falls_back_to_the_later_side() {
        // Each side alone fits; the markers plus both sides do not.
        let half = LIMITS.max_body_bytes / 2 + 16;
        let server_body = format!("{}\n", "s".repeat(half));
        let client_body = format!("{}\n", "c".repeat(half));
        let server = version(Some(draft("t", &server_body, &[])), 10, 1);
        let client = version(Some(draft("t", &client_body, &[])), 20, 2);
        let got = resolve(
            Strategy::Merge,
            Some(&draft("t", "", &[])),
            &server,
            &client,
        );
        assert_eq!(got.content, client.content);
        assert!(got.conflicted);
    }

    // ---- resolve: winner strategies ----

    #[test]
    fn server_wins_flags_a_client_body_that_would_vanish() {
        let base = draft("t", BASE, &[]);
        let server = version(Some(draft("s", "server\n", &[])), 10, 1);
        let client = version(Some(draft("c", "client\n", &[])), 20, 2);
        let got = resolve(Strategy::ServerWins, Some(&base), &server, &client);
        assert_eq!(got.content, server.content);
        assert!(got.conflicted);
    }

    #[test]
    fn client_wins_flags_a_server_body_that_would_vanish() {
        let base = draft("t", BASE, &[]);
        let server = version(Some(draft("s", "server\n", &[])), 20, 1);
        let client = version(Some(draft("c", "client\n", &[])), 10, 2);
        let got = resolve(Strategy::ClientWins, Some(&base), &server, &client);
        assert_eq!(got.content, client.content);
        assert!(got.conflicted);
    }

    #[test]
    fn a_winner_is_not_flagged_when_the_loser_lost_no_text() {
        let base = draft("t", BASE, &[]);
        let winner = version(Some(draft("w", "new\n", &[])), 10, 1);
        for loser_body in [BASE, "", "new\n"] {
            let loser = version(Some(draft("l", loser_body, &[])), 20, 2);
            let got = resolve(Strategy::ServerWins, Some(&base), &winner, &loser);
            assert_eq!(got.content, winner.content);
            assert!(!got.conflicted, "loser body {loser_body:?}");
            let got = resolve(Strategy::ClientWins, Some(&base), &loser, &winner);
            assert_eq!(got.content, winner.content);
            assert!(!got.conflicted, "loser body {loser_body:?}");
        }
    }

    #[test]
    fn winner_strategies_follow_deletes_but_flag_a_lost_edit() {
        let base = draft("t", BASE, &[]);
        let edit = version(Some(draft("t", "edited\n", &[])), 10, 1);
        let delete = version(None, 20, 2);
        let got = resolve(Strategy::ClientWins, Some(&base), &edit, &delete);
        assert_eq!(
            got,
            Resolution {
                content: None,
                conflicted: true
            }
        );
        let got = resolve(Strategy::ServerWins, Some(&base), &edit, &delete);
        assert_eq!(
            got,
            Resolution {
                content: edit.content.clone(),
                conflicted: false
            }
        );
        let got = resolve(Strategy::Lww, Some(&base), &edit, &delete);
        assert_eq!(
            got,
            Resolution {
                content: None,
                conflicted: true
            }
        );
        let got = resolve(Strategy::Lww, Some(&base), &delete, &version(None, 5, 3));
        assert_eq!(
            got,
            Resolution {
                content: None,
                conflicted: false
            }
        );
    }

    #[test]
    fn lww_keeps_the_later_side_whole() {
        let base = draft("t", BASE, &[]);
        let server = version(Some(draft("s", "server\n", &["x"])), 20, 1);
        let client = version(Some(draft("c", BASE, &["y"])), 10, 2);
        let got = resolve(Strategy::Lww, Some(&base), &server, &client);
        assert_eq!(
            got,
            Resolution {
                content: server.content.clone(),
                conflicted: false
            }
        );

        let client = version(Some(draft("c", "client\n", &["y"])), 30, 2);
        let got = resolve(Strategy::Lww, Some(&base), &server, &client);
        assert_eq!(
            got,
            Resolution {
                content: client.content.clone(),
                conflicted: true
            }
        );
    }

    // ---- properties ----

    /// Short texts built from a few lines, so that edits overlap often. Some
    /// texts end without a newline, as a person's last line often does.
    fn text() -> impl Gen<Value = String> {
        let line = prop::sample::select(vec!["a", "b", "c", "d", "e", "hello world", ""]);
        (prop::collection::vec(line, 0..7), any::<bool>()).prop_map(|(lines, newline_at_end)| {
            let mut text = lines.join("\n");
            if newline_at_end && !lines.is_empty() {
                text.push('\n');
            }
            text
        })
    }

    fn side() -> impl Gen<Value = Version> {
        let content = prop::option::weighted(
            0.8,
            (
                text(),
                prop::sample::select(vec!["", "x", "y"]),
                any::<bool>(),
            )
                .prop_map(|(body, title, tagged)| {
                    draft(title, &body, if tagged { &["t"] } else { &[] })
                }),
        );
        (content, 0u64..4, 0u8..2).prop_map(|(content, wall_ms, n)| version(content, wall_ms, n))
    }

    fn any_strategy() -> impl Gen<Value = Strategy> {
        prop::sample::select(Strategy::ALL.to_vec())
    }

    fn new_lines<'a>(base: &str, side: &'a str) -> Vec<&'a str> {
        let old: Vec<&str> = base.lines().collect();
        side.lines().filter(|line| !old.contains(line)).collect()
    }

    proptest! {
        #[test]
        fn one_sided_changes_are_taken_as_they_are(base in text(), x in text()) {
            prop_assert_eq!(merge_text(&base, &x, &base), TextMerge::Clean(x.clone()));
            prop_assert_eq!(merge_text(&base, &base, &x), TextMerge::Clean(x.clone()));
            prop_assert_eq!(merge_text(&base, &x, &x), TextMerge::Clean(x.clone()));
        }

        #[test]
        fn merging_never_loses_an_added_line(base in text(), ours in text(), theirs in text()) {
            let merged = merge_text(&base, &ours, &theirs);
            let out: Vec<&str> = merged.text().lines().collect();
            for line in new_lines(&base, &ours).into_iter().chain(new_lines(&base, &theirs)) {
                prop_assert!(out.contains(&line), "{line:?} lost in {merged:?}");
            }
        }

        #[test]
        fn merge_strategy_never_deletes_changed_content(
            base in prop::option::of(text()),
            server in side(),
            client in side(),
        ) {
            let base = base.map(|body| draft("", &body, &[]));
            let got = resolve(Strategy::Merge, base.as_ref(), &server, &client);
            // Content anyone changed since the base is never deleted; a delete
            // wins only over the very text its author saw.
            let changed = |side: &Version| {
                side.content.is_some() && side.content.as_ref() != base.as_ref()
            };
            if changed(&server) || changed(&client) {
                prop_assert!(got.content.is_some());
            }
        }

        #[test]
        fn resolution_is_deterministic(
            strategy in any_strategy(),
            base in prop::option::of(text()),
            server in side(),
            client in side(),
        ) {
            let base = base.map(|body| draft("", &body, &[]));
            let first = resolve(strategy, base.as_ref(), &server, &client);
            let again = resolve(strategy, base.as_ref(), &server.clone(), &client.clone());
            prop_assert_eq!(first, again);
        }
    }
}
