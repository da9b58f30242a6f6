//! Local full-text search over note titles and bodies: an in-memory inverted
//! index kept up to date note by note, and the highlighting of matches.
//!
//! Pure (no I/O, no browser), so it is tested and benchmarked natively and
//! runs unchanged in the page.
//!
//! Matching rules, the same for finding and for highlighting:
//! - text is split into words at every character that is not alphanumeric,
//!   and words are compared lower-cased (Unicode `to_lowercase`);
//! - every word of the query must be the start of some word of the note's
//!   title or body (prefix match, so results appear while a word is still
//!   being typed); a query with no words matches nothing;
//! - results are a set: ordering is the list's business.
//!
//! Invariants: each document's words are recorded with it, so re-indexing or
//! removing a document removes exactly its postings; postings are sorted slot
//! numbers without duplicates; a freed slot is reused.
//!
//! Why hand-written rather than a crate: the page needs prefix matching, a
//! highlight that agrees exactly with the matching, and incremental updates
//! on every keystroke, in a few kilobytes of wasm. Full engines (tantivy) do
//! not build for the browser; the small wasm-friendly ones bring ranking and
//! stemming we do not use, and their own tokeniser, which the highlighter
//! would then have to imitate.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

/// The words of `text`, lower-cased, in order (repeats kept).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    word_spans(text).map(|(start, end)| lower(&text[start..end]))
}

/// The byte ranges of the words of `text`.
fn word_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, _) = chars.by_ref().find(|(_, c)| c.is_alphanumeric())?;
        let mut end = text.len();
        while let Some(&(i, c)) = chars.peek() {
            if !c.is_alphanumeric() {
                end = i;
                break;
            }
            chars.next();
        }
        Some((start, end))
    })
}

fn lower(word: &str) -> String {
    word.chars().flat_map(char::to_lowercase).collect()
}

/// The words of a query, lower-cased and de-duplicated, in order.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in words(query) {
        if !terms.contains(&word) {
            terms.push(word);
        }
    }
    terms
}

struct Doc {
    slot: u32,
    fingerprint: u64,
    terms: Vec<u32>,
}

/// An inverted index from words to documents keyed by `K` (note ids).
pub struct SearchIndex<K> {
    docs: HashMap<K, Doc>,
    /// Which key holds each slot; `None` for a free slot.
    slots: Vec<Option<K>>,
    free: Vec<u32>,
    /// Every word seen, in order, with its term number.
    vocabulary: BTreeMap<String, u32>,
    /// Per term number: the sorted slots of the documents holding it.
    postings: Vec<Vec<u32>>,
}

impl<K> Default for SearchIndex<K> {
    fn default() -> Self {
        Self {
            docs: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            vocabulary: BTreeMap::new(),
            postings: Vec::new(),
        }
    }
}

fn fingerprint(title: &str, body: &str) -> u64 {
    let mut h = DefaultHasher::new();
    title.hash(&mut h);
    body.hash(&mut h);
    h.finish()
}

impl<K: Copy + Eq + Hash> SearchIndex<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many documents are indexed.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Indexes (or re-indexes) a document. Returns whether anything changed:
    /// a document whose title and body are as last indexed costs one hash.
    pub fn upsert(&mut self, key: K, title: &str, body: &str) -> bool {
        let print = fingerprint(title, body);
        if self.docs.get(&key).is_some_and(|d| d.fingerprint == print) {
            return false;
        }
        let slot = match self.docs.get(&key) {
            Some(doc) => doc.slot,
            None => self.take_slot(key),
        };
        self.unpost(key);
        let mut terms: Vec<u32> = words(title)
            .chain(words(body))
            .map(|w| self.term_id(w))
            .collect();
        terms.sort_unstable();
        terms.dedup();
        for &t in &terms {
            let list = &mut self.postings[t as usize];
            if let Err(at) = list.binary_search(&slot) {
                list.insert(at, slot);
            }
        }
        self.docs.insert(
            key,
            Doc {
                slot,
                fingerprint: print,
                terms,
            },
        );
        true
    }

    /// Removes a document (a deleted note). Unknown keys are ignored.
    pub fn remove(&mut self, key: K) {
        self.unpost(key);
        if let Some(doc) = self.docs.remove(&key) {
            self.slots[doc.slot as usize] = None;
            self.free.push(doc.slot);
        }
    }

    /// Keeps only the documents `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let gone: Vec<K> = self.docs.keys().filter(|k| !keep(k)).copied().collect();
        for key in gone {
            self.remove(key);
        }
    }

    /// The keys of every document matching `query` (see the module doc), in
    /// no particular order.
    pub fn search(&self, query: &str) -> Vec<K> {
        let terms = query_terms(query);
        if terms.is_empty() {
            return Vec::new();
        }
        let words_per_set = self.slots.len().div_ceil(64);
        let mut result: Option<Vec<u64>> = None;
        for term in &terms {
            let mut set = vec![0u64; words_per_set];
            for (_, &t) in self
                .vocabulary
                .range::<str, _>((
                    std::ops::Bound::Included(term.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(word, _)| word.starts_with(term.as_str()))
            {
                for &slot in &self.postings[t as usize] {
                    set[slot as usize / 64] |= 1 << (slot % 64);
                }
            }
            result = Some(match result {
                None => set,
                Some(mut acc) => {
                    for (a, s) in acc.iter_mut().zip(&set) {
                        *a &= s;
                    }
                    acc
                }
            });
        }
        let Some(set) = result else { return Vec::new() };
        let mut found = Vec::new();
        for (i, &bits) in set.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let slot = i * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(Some(key)) = self.slots.get(slot) {
                    found.push(*key);
                }
            }
        }
        found
    }

    fn take_slot(&mut self, key: K) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(key);
                slot
            }
            None => {
                self.slots.push(Some(key));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }

    fn term_id(&mut self, word: String) -> u32 {
        if let Some(&id) = self.vocabulary.get(&word) {
            return id;
        }
        let id = u32::try_from(self.postings.len()).unwrap_or(u32::MAX);
        self.postings.push(Vec::new());
        self.vocabulary.insert(word, id);
        id
    }

    /// Drops `key`'s postings (its slot and record stay).
    fn unpost(&mut self, key: K) {
        let Some(doc) = self.docs.get_mut(&key) else {
            return;
        };
        for &t in &doc.terms {
            let list = &mut self.postings[t as usize];
            if let Ok(at) = list.binary_search(&doc.slot) {
                list.remove(at);
            }
        }
        // Words no longer used by any note stay in the vocabulary with an
        // empty posting list: cheaper than renumbering, and bounded by the
        // words ever typed in this page.
        doc.terms.clear();
        doc.fingerprint = 0;
    }
}

/// A piece of text to show, marked when it is part of a match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    pub text: String,
    pub mark: bool,
}

impl Segment {
    fn plain(text: &str) -> Self {
        Self {
            text: text.to_string(),
            mark: false,
        }
    }
}

/// How many bytes of `word` make up its part that matches `term` as a
/// prefix (compared lower-cased), if it does.
fn matched_prefix(word: &str, term: &str) -> Option<usize> {
    let mut lowered = String::new();
    for (i, c) in word.char_indices() {
        if lowered.len() >= term.len() {
            return lowered.starts_with(term).then_some(i);
        }
        lowered.extend(c.to_lowercase());
        if !term.starts_with(lowered.as_str()) && !lowered.starts_with(term) {
            return None;
        }
    }
    lowered.starts_with(term).then_some(word.len())
}

/// `text` cut into segments, with every word start that matches one of
/// `terms` (from [`query_terms`]) marked. Concatenated, the segments are
/// `text`.
pub fn highlight(text: &str, terms: &[String]) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut last = 0;
    for (start, end) in word_spans(text) {
        let word = &text[start..end];
        let Some(len) = terms.iter().filter_map(|t| matched_prefix(word, t)).max() else {
            continue;
        };
        if start > last {
            out.push(Segment::plain(&text[last..start]));
        }
        out.push(Segment {
            text: text[start..start + len].to_string(),
            mark: true,
        });
        last = start + len;
    }
    if last < text.len() || out.is_empty() {
        out.push(Segment::plain(&text[last..]));
    }
    out
}

/// A one-line excerpt of `body` (whitespace flattened) of about `max_chars`
/// characters, starting a little before the first match of `terms` so the
/// match is visible, with the matches marked. Without a match in the body,
/// the excerpt is its start.
pub fn snippet(body: &str, terms: &[String], max_chars: usize) -> Vec<Segment> {
    const LEAD_CHARS: usize = 30;
    // Without search words the snippet is the text's start, so only that
    // much is flattened (one char more tells whether it was cut): every row
    // of the list makes one at each change of the notes, and flattening
    // each whole body was most of a row's cost.
    let flat = flatten_whitespace(body, terms.is_empty().then_some(max_chars + 1));
    let first = if terms.is_empty() {
        0
    } else {
        word_spans(&flat)
            .find(|&(s, e)| {
                terms
                    .iter()
                    .any(|t| matched_prefix(&flat[s..e], t).is_some())
            })
            .map(|(s, _)| flat[..s].chars().count())
            .unwrap_or(0)
    };
    let total = flat.chars().count();
    let start = first.saturating_sub(LEAD_CHARS);
    // Start at a word boundary when cutting into the text.
    let mut chars: Vec<char> = flat.chars().skip(start).take(max_chars).collect();
    let mut lead = String::new();
    if start > 0 {
        let skip = chars
            .iter()
            .position(|c| *c == ' ')
            .filter(|&p| start + p < first)
            .map(|p| p + 1)
            .unwrap_or(0);
        chars.drain(..skip);
        lead.push('…');
    }
    let cut_end = start + max_chars < total;
    let mut text: String = lead;
    text.extend(chars);
    if cut_end {
        let trimmed = text.trim_end().len();
        text.truncate(trimmed);
        text.push('…');
    }
    highlight(&text, terms)
}

/// `text` with its whitespace runs made single spaces and its ends
/// trimmed; with a `limit`, it stops after the word that brings it to at
/// least `limit` chars.
fn flatten_whitespace(text: &str, limit: Option<usize>) -> String {
    let mut flat = String::new();
    let mut chars = 0;
    for word in text.split_whitespace() {
        if limit.is_some_and(|limit| chars >= limit) {
            break;
        }
        if !flat.is_empty() {
            flat.push(' ');
            chars += 1;
        }
        flat.push_str(word);
        chars += word.chars().count();
    }
    flat
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn found(index: &SearchIndex<u32>, q: &str) -> BTreeSet<u32> {
        index.search(q).into_iter().collect()
    }

    fn set(keys: &[u32]) -> BTreeSet<u32> {
        keys.iter().copied().collect()
    }

    #[test]
    fn finds_by_title_and_body_words_by_prefix_all_words_required() {
        let mut index = SearchIndex::new();
        index.upsert(1, "Shopping list", "Milk, eggs and BREAD");
        index.upsert(
            2,
            "Trip to Lisbon",
            "Book the train; pack bread for the way",
        );
        index.upsert(3, "", "Zürich café notes");
        assert_eq!(found(&index, "bread"), set(&[1, 2]));
        assert_eq!(found(&index, "shop"), set(&[1]));
        assert_eq!(found(&index, "BREAD lisb"), set(&[2]));
        assert_eq!(found(&index, "zür CAFÉ"), set(&[3]));
        assert_eq!(found(&index, "read"), set(&[]), "inside a word is no match");
        assert_eq!(found(&index, "  ,; "), set(&[]), "no words, no results");
        assert_eq!(found(&index, "bread nowhere"), set(&[]));
    }

    #[test]
    fn re_indexing_and_removing_forget_old_words() {
        let mut index = SearchIndex::new();
        assert!(index.upsert(1, "alpha", "beta"));
        assert!(
            !index.upsert(1, "alpha", "beta"),
            "unchanged text is skipped"
        );
        assert!(index.upsert(1, "gamma", "beta"));
        assert_eq!(found(&index, "alpha"), set(&[]));
        assert_eq!(found(&index, "gamma"), set(&[1]));
        index.upsert(2, "gamma", "");
        index.remove(1);
        assert_eq!(found(&index, "gamma"), set(&[2]));
        assert_eq!(index.len(), 1);
        // The freed slot is reused by the next new note.
        index.upsert(3, "delta", "");
        assert_eq!(index.slots.len(), 2);
        assert_eq!(found(&index, "delta"), set(&[3]));
        index.retain(|k| *k == 3);
        assert_eq!(found(&index, "gamma"), set(&[]));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn highlight_marks_matching_word_starts_only() {
        let terms = query_terms("cat Do");
        let segments = highlight("Category: dogs, a cat; educate", &terms);
        let marked: Vec<&str> = segments
            .iter()
            .filter(|s| s.mark)
            .map(|s| s.text.as_str())
            .collect();
        assert_eq!(marked, vec!["Cat", "do", "cat"]);
        let whole: String = segments.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(whole, "Category: dogs, a cat; educate");
        assert_eq!(
            highlight("nothing here", &terms),
            vec![Segment::plain("nothing here")]
        );
        assert_eq!(highlight("", &terms), vec![Segment::plain("")]);
    }

    #[test]
    fn snippet_starts_near_the_first_match() {
        let body = format!(
            "{} needle in the middle {}",
            "hay ".repeat(40),
            "hay ".repeat(40)
        );
        let segments = snippet(&body, &query_terms("needle"), 60);
        let text: String = segments.iter().map(|s| s.text.as_str()).collect();
        assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
        assert!(segments.iter().any(|s| s.mark && s.text == "needle"));
        assert!(text.chars().count() <= 62, "{text}");
        let short = snippet("just\n\ntwo  lines", &[], 60);
        assert_eq!(short, vec![Segment::plain("just two lines")]);
    }

    proptest! {
        /// The index agrees with a direct scan of every document, after any
        /// sequence of upserts and removals.
        #[test]
        fn index_agrees_with_a_scan(
            ops in proptest::collection::vec((0u32..6, proptest::option::of("[a-dA-D ]{0,12}")), 1..30),
            query in "[a-d]{1,2}( [a-d]{1,2})?",
        ) {
            let mut index = SearchIndex::new();
            let mut docs: std::collections::BTreeMap<u32, String> = Default::default();
            for (key, text) in ops {
                match text {
                    Some(text) => { index.upsert(key, "", &text); docs.insert(key, text); }
                    None => { index.remove(key); docs.remove(&key); }
                }
            }
            let terms = query_terms(&query);
            let expected: BTreeSet<u32> = docs
                .iter()
                .filter(|(_, text)| terms.iter().all(|t| words(text).any(|w| w.starts_with(t.as_str()))))
                .map(|(k, _)| *k)
                .collect();
            prop_assert_eq!(found(&index, &query), expected);
        }

        /// Highlighting never changes the text, and marks exactly the words a
        /// search would match on.
        #[test]
        fn highlight_is_lossless_and_agrees_with_matching(
            text in "[a-cA-CéÉ ,.]{0,30}", query in "[a-cé]{1,2}",
        ) {
            let terms = query_terms(&query);
            let segments = highlight(&text, &terms);
            let whole: String = segments.iter().map(|s| s.text.as_str()).collect();
            prop_assert_eq!(&whole, &text);
            let any_mark = segments.iter().any(|s| s.mark);
            let mut index = SearchIndex::new();
            index.upsert(1u32, "", &text);
            prop_assert_eq!(any_mark, !index.search(&query).is_empty());
        }

        /// Without search words, the snippet made from the text's start
        /// alone is the one made from the whole text flattened.
        #[test]
        fn a_plain_snippet_reads_only_the_start_and_loses_nothing(
            body in "[ab é\n\t]{0,60}", max_chars in 0usize..40,
        ) {
            let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut text: String = flat.chars().take(max_chars).collect();
            if max_chars < flat.chars().count() {
                let trimmed = text.trim_end().len();
                text.truncate(trimmed);
                text.push('…');
            }
            prop_assert_eq!(snippet(&body, &[], max_chars), highlight(&text, &[]));
        }
    }
}
