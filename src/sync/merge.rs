//! The conflict policy: what a note becomes when the server and a client both
//! changed it since their common base. The server and the client run this same
//! code, so both sides always reach the same result.
//!
//! Bodies are merged word by word ([`merge_text`]): two people typing at
//! different places of the same line merge cleanly, and so do two insertions
//! at the same place (both kept, the server's first). Where the two sides
//! changed the same words differently, both replacements are kept, one after
//! the other, and the merge is flagged: the body never holds conflict markers
//! or any other text nobody typed (a space may separate the two replacements,
//! so that two words are never glued into one).
//!
//! Invariants:
//! - text is never lost silently: every word either side typed since the base
//!   is in the merged body, and whenever the two sides' edits overlap, or a
//!   field both sides changed keeps only one value, [`Resolution::conflicted`]
//!   is set so the caller records both sides whole for a compare-and-choose
//!   view;
//! - with [`Strategy::Merge`] an edit always beats a delete, and tags merge as
//!   sets (a tag added on either side is kept, one removed on either side goes);
//! - the result is a pure function of its inputs (no clock, no randomness) and
//!   respects [`LIMITS`](crate::domain::LIMITS) whenever both sides do.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use similar::{capture_diff_slices, Algorithm, DiffOp};
use thiserror::Error;

use super::hlc::Hlc;
use crate::domain::NoteDraft;

/// The outcome of a three-way text merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextMerge {
    /// The changes did not overlap; this is the merged text.
    Clean(String),
    /// Some changes overlapped. The text holds every change of both sides:
    /// where both replaced the same words, the server's (`ours`) replacement
    /// comes first and the other's right after it.
    Conflicted(String),
}

impl TextMerge {
    /// The merged text.
    pub fn text(&self) -> &str {
        match self {
            TextMerge::Clean(text) | TextMerge::Conflicted(text) => text,
        }
    }

    /// The merged text.
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

/// Splits a text into the units a merge compares: runs of word characters
/// (letters, digits, `_`, and any other non-ASCII character that is not
/// whitespace, so accents and emoji stay with their word), and every other
/// character on its own (spaces, line breaks, punctuation). Concatenated, the
/// tokens are the text.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if is_word_char(c) {
            word_start.get_or_insert(i);
            continue;
        }
        if let Some(start) = word_start.take() {
            out.push(&text[start..i]);
        }
        out.push(&text[i..i + c.len_utf8()]);
    }
    if let Some(start) = word_start {
        out.push(&text[start..]);
    }
    out
}

/// The words and punctuation of `text` as a merge compares them (its tokens
/// other than whitespace), in order. Every one either side typed since the
/// base is in the merged text.
pub fn words(text: &str) -> Vec<&str> {
    tokens(text)
        .into_iter()
        .filter(|t| !t.chars().all(char::is_whitespace))
        .collect()
}

/// One side's change to the base: the tokens `base` of the base became the
/// tokens `side` of that side.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hunk {
    base: Range<usize>,
    side: Range<usize>,
}

/// The changes that turn `base` into `side`, in base order, adjacent ones
/// joined. The diff is similar's Myers with its bounded search, so a merge of
/// two very different 1 MiB bodies costs a bounded amount of work.
fn hunks(base: &[&str], side: &[&str]) -> Vec<Hunk> {
    let mut out: Vec<Hunk> = Vec::new();
    for op in capture_diff_slices(Algorithm::Myers, base, side) {
        let (base_range, side_range) = match op {
            DiffOp::Equal { .. } => continue,
            DiffOp::Delete {
                old_index,
                old_len,
                new_index,
            } => (old_index..old_index + old_len, new_index..new_index),
            DiffOp::Insert {
                old_index,
                new_index,
                new_len,
            } => (old_index..old_index, new_index..new_index + new_len),
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => (
                old_index..old_index + old_len,
                new_index..new_index + new_len,
            ),
        };
        match out.last_mut() {
            Some(last)
                if last.base.end == base_range.start && last.side.end == side_range.start =>
            {
                last.base.end = base_range.end;
                last.side.end = side_range.end;
            }
            _ => out.push(Hunk {
                base: base_range,
                side: side_range,
            }),
        }
    }
    out
}

/// Whether `hunk` overlaps a group of changes spanning `span` of the base:
/// they share a base token, or one inserts strictly inside what the other
/// replaces, or both insert at the same place. An insertion at either end of
/// a replaced span does not overlap it: it goes before or after it.
fn overlaps(span: &Range<usize>, hunk: &Range<usize>) -> bool {
    match (span.is_empty(), hunk.is_empty()) {
        (false, false) => hunk.start < span.end && span.start < hunk.end,
        (false, true) => span.start < hunk.start && hunk.start < span.end,
        (true, false) => hunk.start < span.start && span.start < hunk.end,
        (true, true) => span.start == hunk.start,
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || (!c.is_ascii() && !c.is_whitespace())
}

/// Appends `part` to the merged text. Two words that no input has side by
/// side (one side dropped what separated them, the other's text follows)
/// get a space between them rather than becoming a word nobody typed.
fn push_part(out: &mut String, part: &str) {
    let glued = out.chars().last().is_some_and(is_word_char)
        && part.chars().next().is_some_and(is_word_char);
    if glued {
        out.push(' ');
    }
    out.push_str(part);
}

/// Appends the second of two replacements of the same text, after a space
/// unless one of them ends or starts with whitespace, so the two read apart.
fn push_alternative(out: &mut String, part: &str) {
    let touching = out.chars().last().is_some_and(|c| !c.is_whitespace())
        && part.chars().next().is_some_and(|c| !c.is_whitespace());
    if touching {
        out.push(' ');
    }
    out.push_str(part);
}

/// How many tokens a side has where the base has `span`, given the side's
/// hunks inside it.
fn side_len(span: &Range<usize>, inside: &[Hunk]) -> usize {
    let added: usize = inside.iter().map(|h| h.side.len()).sum();
    let removed: usize = inside.iter().map(|h| h.base.len()).sum();
    span.len() + added - removed
}

/// One region of a three-way walk where both sides changed the base.
struct BothChanged<'a> {
    base: &'a str,
    ours: &'a str,
    theirs: &'a str,
    /// Both inserted at the same place, replacing nothing of the base.
    insertions: bool,
}

/// The three-way walk over units (lines or tokens): regions only one side
/// changed take that side; regions both changed alike are taken once;
/// `both` resolves the rest, returning the text and whether it is a
/// conflict. Units are appended with [`push_part`], so two words never glue.
fn diff3(
    base: &[&str],
    ours: &[&str],
    theirs: &[&str],
    mut both: impl FnMut(BothChanged<'_>) -> (String, bool),
) -> (String, bool) {
    let (ours_hunks, theirs_hunks) = (hunks(base, ours), hunks(base, theirs));
    let (mut i, mut j) = (0, 0);
    // Where the next unmerged base unit is, and the matching position of
    // each side (stable stretches move all three alike).
    let (mut at, mut at_ours, mut at_theirs) = (0usize, 0usize, 0usize);
    let mut out = String::new();
    let mut conflicted = false;
    while i < ours_hunks.len() || j < theirs_hunks.len() {
        // The next group starts at the earliest hunk; at equal starts, an
        // insertion goes first (it does not overlap a replacement there).
        let take_ours = match (ours_hunks.get(i), theirs_hunks.get(j)) {
            (Some(x), Some(y)) => {
                (x.base.start, !x.base.is_empty()) <= (y.base.start, !y.base.is_empty())
            }
            (Some(_), None) => true,
            _ => false,
        };
        let first = if take_ours {
            &ours_hunks[i]
        } else {
            &theirs_hunks[j]
        };
        let stable = first.base.start - at;
        push_part(&mut out, &base[at..first.base.start].concat());
        at_ours += stable;
        at_theirs += stable;
        let mut span = first.base.clone();
        let (i0, j0) = (i, j);
        if take_ours {
            i += 1;
        } else {
            j += 1;
        }
        loop {
            if let Some(h) = ours_hunks.get(i).filter(|h| overlaps(&span, &h.base)) {
                span = span.start.min(h.base.start)..span.end.max(h.base.end);
                i += 1;
            } else if let Some(h) = theirs_hunks.get(j).filter(|h| overlaps(&span, &h.base)) {
                span = span.start.min(h.base.start)..span.end.max(h.base.end);
                j += 1;
            } else {
                break;
            }
        }
        let ours_len = side_len(&span, &ours_hunks[i0..i]);
        let theirs_len = side_len(&span, &theirs_hunks[j0..j]);
        let ours_part = ours[at_ours..at_ours + ours_len].concat();
        let theirs_part = theirs[at_theirs..at_theirs + theirs_len].concat();
        at_ours += ours_len;
        at_theirs += theirs_len;
        let base_part = base[span.clone()].concat();
        at = span.end;
        match (i > i0, j > j0) {
            (true, false) => push_part(&mut out, &ours_part),
            (false, true) => push_part(&mut out, &theirs_part),
            _ if ours_part == theirs_part => push_part(&mut out, &ours_part),
            _ => {
                let (text, conflict) = both(BothChanged {
                    base: &base_part,
                    ours: &ours_part,
                    theirs: &theirs_part,
                    insertions: span.is_empty(),
                });
                conflicted |= conflict;
                push_part(&mut out, &text);
            }
        }
    }
    push_part(&mut out, &base[at..].concat());
    (out, conflicted)
}

/// A text's lines, each with its line break (the last may have none).
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// Merges word by word: two insertions at one place are both kept, the
/// server's first; anything else both sides changed keeps both
/// replacements, one after the other, as a conflict.
fn merge_words(base: &str, ours: &str, theirs: &str) -> (String, bool) {
    let (b, o, t) = (tokens(base), tokens(ours), tokens(theirs));
    diff3(&b, &o, &t, |region| {
        let mut text = region.ours.to_string();
        if region.insertions || region.ours.is_empty() {
            push_part(&mut text, region.theirs);
        } else {
            push_alternative(&mut text, region.theirs);
        }
        (text, !region.insertions)
    })
}

/// Merges the changes `ours` and `theirs` each made to `base`, line by line
/// and, where both changed the same lines, word by word:
///
/// - a change made on one side only is taken;
/// - the same change made on both sides is taken once;
/// - lines both sides added at one place are all kept, `ours`'s first;
/// - lines both changed merge word by word: edits at different places of
///   a line, and insertions at the same place, merge cleanly;
/// - where both changed the same words, both versions of those lines are
///   kept, `ours`'s first, each whole on its own lines, and the result is
///   [`TextMerge::Conflicted`]: a person reads the two versions apart, and
///   no word is spliced into another.
pub fn merge_text(base: &str, ours: &str, theirs: &str) -> TextMerge {
    if ours == theirs || theirs == base {
        return TextMerge::Clean(ours.to_string());
    }
    if ours == base {
        return TextMerge::Clean(theirs.to_string());
    }
    let (b, o, t) = (lines(base), lines(ours), lines(theirs));
    let (text, conflicted) = diff3(&b, &o, &t, |region| {
        if !region.insertions {
            let (words, conflicted) = merge_words(region.base, region.ours, region.theirs);
            if !conflicted {
                return (words, false);
            }
        }
        // Added lines of both sides, or both versions of lines changed
        // alike: each side's lines whole, on lines of their own.
        let mut text = region.ours.to_string();
        if !text.is_empty() && !text.ends_with('\n') && !region.theirs.is_empty() {
            text.push('\n');
        }
        text.push_str(region.theirs);
        (text, !region.insertions)
    });
    if conflicted {
        TextMerge::Conflicted(text)
    } else {
        TextMerge::Clean(text)
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
    /// The person should be shown a compare-and-choose view: the two sides'
    /// edits overlapped (both are in the body, one after the other), or a
    /// side's content did not make it into `content` whole (a title both
    /// sides set, a text a winning strategy or a delete replaced). The caller
    /// records both sides whole.
    pub conflicted: bool,
}

/// Reconciles the server's and the client's version of a note that both
/// changed since `base` (`None` if the server never had the note).
///
/// - [`Strategy::Merge`]: [`merge_drafts`], the server as `ours` and the
///   client as `theirs`, the later [`Hlc`] deciding a title or pin both set.
///   An edit beats a delete (flagged as conflicted); two deletes stay
///   deleted; a delete of exactly the base text wins cleanly.
/// - [`Strategy::ServerWins`], [`Strategy::ClientWins`], [`Strategy::Lww`]:
///   the winning side (for `Lww` the later [`Hlc`]) is kept whole. If the
///   losing side changed anything since the base that the winner does not
///   hold, `conflicted` is set and the caller records both sides.
///
/// A merged note that breaks the limits (both sides' replacements kept can
/// push a body over [`LIMITS.max_body_bytes`](crate::domain::LIMITS)) is
/// replaced by the side with the later [`Hlc`], flagged as conflicted.
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

/// The winner's content, flagged if the loser's own change would vanish
/// silently: its content differs from the base and from what the winner kept.
fn keep_winner(base: &NoteDraft, winner: &Version, loser: &Version) -> Resolution {
    let lost = loser
        .content
        .as_ref()
        .is_some_and(|draft| draft != base && Some(draft) != winner.content.as_ref());
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
    let merged = merge_drafts(base, ours, theirs, server_is_later);
    // With no known base, two different texts are two versions of the
    // note, not two edits of one: both are kept (one after the other, as
    // insertions) and the note is flagged.
    Resolution {
        conflicted: merged.conflicted || (!known_base && ours != theirs),
        ..merged
    }
}

/// The three-way merge of two live versions of a note: the body word by word
/// ([`merge_text`]), the tags as sets ([`merge_tags`]), the title and the pin
/// each from the side that changed it, or from `ours` if both did and
/// `ours_is_later`. The result is conflicted when the bodies' edits
/// overlapped or when both sides set the title (or the pin) to different
/// values, as the earlier value is then kept only in the conflict record.
/// A result over the limits is replaced by the later side, flagged as
/// conflicted.
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
    let title = pick_field(&base.title, &ours.title, &theirs.title, ours_is_later);
    let pinned = pick_field(&base.pinned, &ours.pinned, &theirs.pinned, ours_is_later);
    let conflicted = body.is_conflicted() || title.overruled || pinned.overruled;
    let merged = NoteDraft {
        title: title.value.clone(),
        body: body.into_text(),
        tags: merge_tags(&base.tags, &ours.tags, &theirs.tags),
        pinned: *pinned.value,
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

/// A field's merged value, and whether a different value set by the other
/// side was overruled by it (last writer wins).
struct Picked<'a, T> {
    value: &'a T,
    overruled: bool,
}

/// Last-writer-wins for one field: the side that changed it, or the later
/// side if both (or neither) did.
fn pick_field<'a, T: PartialEq>(
    base: &T,
    ours: &'a T,
    theirs: &'a T,
    ours_is_later: bool,
) -> Picked<'a, T> {
    let value = match (ours != base, theirs != base) {
        (true, false) => ours,
        (false, true) => theirs,
        _ if ours_is_later => ours,
        _ => theirs,
    };
    Picked {
        value,
        overruled: ours != base && theirs != base && ours != theirs,
    }
}

/// Tags merged as sets: a tag stays unless either side removed it, and a tag
/// either side added joins; `ours`'s order first, then `theirs`'s new tags.
fn merge_tags(base: &[String], ours: &[String], theirs: &[String]) -> Vec<String> {
    let removed = |tag: &String, side: &[String]| base.contains(tag) && !side.contains(tag);
    let mut out: Vec<String> = ours
        .iter()
        .filter(|tag| !removed(tag, theirs))
        .cloned()
        .collect();
    for tag in theirs {
        if !out.contains(tag) && !base.contains(tag) {
            out.push(tag.clone());
        }
    }
    out
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
    fn overlapping_changes_keep_both_replacements_without_markers() {
        let got = merge_text(BASE, "one\nours\nthree\n", "one\ntheirs\nthree\n");
        assert_eq!(
            got,
            TextMerge::Conflicted("one\nours\ntheirs\nthree\n".into())
        );
    }

    #[test]
    fn two_people_typing_on_one_line_merge_word_by_word() {
        let base = "shopping: milk eggs\n";
        // Different places of the same line: clean.
        let got = merge_text(
            base,
            "shopping: oat milk eggs\n",
            "shopping: milk eggs bread\n",
        );
        assert_eq!(
            got,
            TextMerge::Clean("shopping: oat milk eggs bread\n".into())
        );
        // The same place: both insertions kept, the server's first, clean.
        let got = merge_text(
            base,
            "shopping: milk eggs a114\n",
            "shopping: milk eggs b115\n",
        );
        assert_eq!(
            got,
            TextMerge::Clean("shopping: milk eggs a114 b115\n".into())
        );
        // The same word changed twice: both kept, never glued, flagged.
        let got = merge_text(base, "shopping: milk hens\n", "shopping: milk legs\n");
        assert_eq!(
            got,
            TextMerge::Conflicted("shopping: milk hens\nshopping: milk legs\n".into())
        );
    }

    #[test]
    fn an_edit_beside_a_replacement_goes_before_or_after_it() {
        let base = "alpha beta gamma";
        let got = merge_text(base, "alpha BETA gamma", "alpha new beta gamma");
        assert_eq!(got, TextMerge::Clean("alpha new BETA gamma".into()));
        let got = merge_text(base, "alpha BETA gamma", "alpha beta new gamma");
        assert_eq!(got, TextMerge::Clean("alpha BETA new gamma".into()));
        let got = merge_text(base, "alpha gamma", "alpha beta gamma delta");
        assert_eq!(got, TextMerge::Clean("alpha gamma delta".into()));
    }

    #[test]
    fn a_deleted_passage_edited_on_the_other_side_keeps_the_edit() {
        let base = "keep this. drop that sentence. end";
        let got = merge_text(
            base,
            "keep this. end",
            "keep this. drop that long sentence. end",
        );
        assert!(got.is_conflicted());
        assert_eq!(
            got.text(),
            "keep this. end\nkeep this. drop that long sentence. end"
        );
    }

    #[test]
    fn a_last_line_without_newline_merges_like_any_other() {
        let got = merge_text("a", "b", "c");
        assert_eq!(got, TextMerge::Conflicted("b\nc".into()));
        let got = merge_text("x\ny", "x\ny!", "X\ny");
        assert_eq!(got, TextMerge::Clean("X\ny!".into()));
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
    fn a_title_both_sides_set_goes_to_the_later_writer_and_is_flagged() {
        let base = draft("t", BASE, &[]);
        let server = version(Some(draft("server", BASE, &["s"])), 10, 1);
        let client = version(Some(draft("client", BASE, &["c"])), 20, 2);
        let got = resolve(Strategy::Merge, Some(&base), &server, &client);
        assert_eq!(got.content, Some(draft("client", BASE, &["s", "c"])));
        assert!(
            got.conflicted,
            "the server's title survives only in the record"
        );
        let got = resolve(Strategy::Merge, Some(&base), &client, &server);
        assert_eq!(got.content, Some(draft("client", BASE, &["c", "s"])));
        assert!(got.conflicted);
        // The same title set on both sides loses nothing.
        let same = version(Some(draft("same", BASE, &[])), 20, 2);
        let got = resolve(Strategy::Merge, Some(&base), &same, &same.clone());
        assert!(!got.conflicted);
    }

    #[test]
    fn tags_merge_as_sets() {
        let base = ["a", "b", "c"].map(String::from);
        let ours = ["a", "c", "x"].map(String::from);
        let theirs = ["b", "a", "y"].map(String::from);
        // b removed by ours, c removed by theirs, x and y added.
        assert_eq!(
            merge_tags(&base, &ours, &theirs),
            ["a", "x", "y"].map(String::from).to_vec()
        );
        assert_eq!(merge_tags(&[], &[], &[]), Vec::<String>::new());
    }

    #[test]
    fn merge_keeps_both_bodies_where_they_overlap_and_flags_it() {
        let base = draft("t", BASE, &[]);
        let server = version(Some(draft("t", "one\nserver\nthree\n", &[])), 10, 1);
        let client = version(Some(draft("t", "one\nclient\nthree\n", &[])), 20, 2);
        let got = resolve(Strategy::Merge, Some(&base), &server, &client);
        assert!(got.conflicted);
        assert_eq!(
            got.content.expect("kept").body,
            "one\nserver\nclient\nthree\n"
        );
    }

    #[test]
    fn merge_without_a_base_merges_against_empty_text() {
        let server = version(Some(draft("", "same\n", &[])), 10, 1);
        let client = version(Some(draft("", "same\n", &[])), 20, 2);
        let got = resolve(Strategy::Merge, None, &server, &client);
        assert_eq!(got.content, Some(draft("", "same\n", &[])));
        assert!(!got.conflicted);

        // Two different texts with no known base are two versions: both
        // kept, flagged.
        let client = version(Some(draft("", "other\n", &[])), 20, 2);
        let got = resolve(Strategy::Merge, None, &server, &client);
        assert!(got.conflicted);
        assert_eq!(got.content.expect("kept").body, "same\nother\n");
        // With the empty text as their known base, they are two insertions.
        let got = resolve(
            Strategy::Merge,
            Some(&NoteDraft::default()),
            &server,
            &client,
        );
        assert!(!got.conflicted);
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
    fn a_winner_is_not_flagged_when_the_loser_lost_nothing() {
        let base = draft("t", BASE, &[]);
        let winner = version(Some(draft("w", "new\n", &[])), 10, 1);
        for loser in [base.clone(), draft("w", "new\n", &[])] {
            let loser = version(Some(loser), 20, 2);
            let got = resolve(Strategy::ServerWins, Some(&base), &winner, &loser);
            assert_eq!(got.content, winner.content);
            assert!(!got.conflicted, "loser {loser:?}");
            let got = resolve(Strategy::ClientWins, Some(&base), &loser, &winner);
            assert_eq!(got.content, winner.content);
            assert!(!got.conflicted, "loser {loser:?}");
        }
        // A loser that only renamed the note loses its title: flagged.
        let renamed = version(Some(draft("l", BASE, &[])), 20, 2);
        let got = resolve(Strategy::ServerWins, Some(&base), &winner, &renamed);
        assert!(got.conflicted);
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
        let client = version(Some(draft("t", BASE, &[])), 10, 2);
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
        let word = prop::sample::select(vec!["a", "b", "c", "hello", "world", "x.", ""]);
        let line = prop::collection::vec(word, 0..4).prop_map(|words| words.join(" "));
        (prop::collection::vec(line, 0..6), any::<bool>()).prop_map(|(lines, newline_at_end)| {
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

    /// The words of `side` that `base` does not have.
    fn new_words<'a>(base: &str, side: &'a str) -> Vec<&'a str> {
        let old = words(base);
        words(side)
            .into_iter()
            .filter(|t| !old.contains(t))
            .collect()
    }

    proptest! {
        #[test]
        fn one_sided_changes_are_taken_as_they_are(base in text(), x in text()) {
            prop_assert_eq!(merge_text(&base, &x, &base), TextMerge::Clean(x.clone()));
            prop_assert_eq!(merge_text(&base, &base, &x), TextMerge::Clean(x.clone()));
            prop_assert_eq!(merge_text(&base, &x, &x), TextMerge::Clean(x.clone()));
        }

        #[test]
        fn merging_never_loses_an_added_word(base in text(), ours in text(), theirs in text()) {
            let merged = merge_text(&base, &ours, &theirs);
            let out = tokens(merged.text());
            for word in new_words(&base, &ours).into_iter().chain(new_words(&base, &theirs)) {
                prop_assert!(out.contains(&word), "{word:?} lost in {merged:?}");
            }
        }

        /// The merge writes nothing of its own but separating whitespace:
        /// every other token of the result comes from one of the three texts
        /// (no marker, no word spliced from two).
        #[test]
        fn merging_adds_no_text_but_whitespace(base in text(), ours in text(), theirs in text()) {
            let merged = merge_text(&base, &ours, &theirs);
            let known: Vec<&str> = [tokens(&base), tokens(&ours), tokens(&theirs)].concat();
            for token in tokens(merged.text()) {
                prop_assert!(
                    token.trim().is_empty() || known.contains(&token),
                    "{token:?} in {merged:?}"
                );
            }
        }

        /// Concatenated, the tokens are the text.
        #[test]
        fn tokens_are_the_text(text in "\\PC{0,40}") {
            prop_assert_eq!(tokens(&text).concat(), text);
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
