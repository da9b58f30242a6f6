//! Local search over 10,000 notes, natively: what the page does per
//! keystroke in the search field.
//!
//! Notes are shaped like the browser benchmark's: a title of about 40
//! characters, a body of about 1 KB of words drawn from a 2,000-word
//! vocabulary (Zipf-like: a few words very common, most rare), two tags.
//!
//! Measured:
//! - `index/build`: indexing all 10,000 notes from empty (a page's first
//!   search after opening);
//! - `query/<kind>`: one search of the index;
//! - `keystroke/<kind>`: one search as the page runs it: the index brought
//!   up to date with the notes (all unchanged: one hash each), the search,
//!   the list's order (filter, sort) and the rows the list builds at its top
//!   (highlight, snippet: the rows in view and the overscan, as the page's
//!   virtualised list does).
//!
//! Besides criterion's means, the bench times 1,000 queries of each kind one
//! by one and prints their p50, p95 and max to stderr: the target
//! is a p95 under 50 ms at 10k notes.
//!
//! `cargo bench --bench search --no-default-features --features ssr`; the
//! figures are recorded in the README.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use notesync::domain::{Note, NoteDraft, NoteId};
use notesync::search::query_terms;
use notesync::search::SearchIndex;
use notesync::ui::model::{list_item, list_order, refresh_index, visible_rows, ListFilter};
use notesync::ui::{DEFAULT_ROW_PX, LIST_OVERSCAN};

/// The list's height in the benchmark's 1280×800 window, in CSS pixels.
const LIST_VIEWPORT_PX: f64 = 600.0;

const NOTES: usize = 10_000;
const VOCABULARY: usize = 2_000;

/// A small deterministic generator (xorshift64*), so every run searches the
/// same notes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A word index, skewed towards small numbers (common words).
    fn word(&mut self) -> usize {
        let a = (self.next() % VOCABULARY as u64) as usize;
        let b = (self.next() % VOCABULARY as u64) as usize;
        a.min(b)
    }
}

/// 2,000 distinct made-up words of 3 to 9 letters.
fn vocabulary() -> Vec<String> {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fe", "go", "hu", "ji", "pe",
        "zo",
    ];
    (0..VOCABULARY)
        .map(|i| {
            let mut word = String::new();
            let mut n = i + 16;
            while n > 0 {
                word.push_str(SYLLABLES[n % 16]);
                n /= 16;
            }
            if i % 3 == 0 {
                word.push('s');
            }
            word
        })
        .collect()
}

fn notes(words: &[String], rng: &mut Rng) -> Vec<Note> {
    (0..NOTES)
        .map(|i| {
            let mut title = String::new();
            while title.len() < 40 {
                title.push_str(&words[rng.word()]);
                title.push(' ');
            }
            let mut body = String::new();
            while body.len() < 1_000 {
                body.push_str(&words[rng.word()]);
                body.push(if rng.next().is_multiple_of(12) {
                    '\n'
                } else {
                    ' '
                });
            }
            let draft = NoteDraft::validated(
                title.trim().to_string(),
                body,
                vec!["work".into(), format!("t{}", i % 7)],
            )
            .expect("valid note");
            let ms = 1_700_000_000_000 + i as u64;
            Note::new(NoteId::new(ms, [(i % 251) as u8; 10]), ms).with_draft(draft, ms)
        })
        .collect()
}

/// The kinds of query measured, each a list of 1,000 queries.
fn queries(words: &[String], rng: &mut Rng) -> Vec<(&'static str, Vec<String>)> {
    let mut pick = |f: &mut dyn FnMut(&mut Rng) -> String| (0..1_000).map(|_| f(rng)).collect();
    vec![
        // A whole word, common or rare.
        ("word", pick(&mut |r| words[r.word()].clone())),
        // The first two letters of a word: the broadest prefix a person types.
        ("prefix2", pick(&mut |r| words[r.word()][..2].to_string())),
        // Two words, the second being typed.
        (
            "two_words",
            pick(&mut |r| {
                let second = &words[r.word()];
                format!("{} {}", words[r.word()], &second[..3.min(second.len())])
            }),
        ),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

fn report(what: &str, mut times: Vec<Duration>, results: usize) {
    times.sort();
    eprintln!(
        "{what:<22} p50 {:>9.3} ms   p95 {:>9.3} ms   max {:>9.3} ms   ({} results on average)",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        percentile(&times, 0.95).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        results / times.len().max(1),
    );
}

fn search(c: &mut Criterion) {
    let words = vocabulary();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let notes = notes(&words, &mut rng);
    let queries = queries(&words, &mut rng);

    let started = Instant::now();
    let mut index = SearchIndex::new();
    refresh_index(&mut index, &notes);
    eprintln!(
        "index of {NOTES} notes built in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    // Query by query, for the percentiles.
    for (kind, list) in &queries {
        let mut times = Vec::with_capacity(list.len());
        let mut found = 0;
        for q in list {
            let t = Instant::now();
            let hits = index.search(q);
            times.push(t.elapsed());
            found += hits.len();
        }
        report(&format!("query/{kind}"), times, found);

        let mut times = Vec::with_capacity(list.len());
        let mut shown = 0;
        for q in list {
            let t = Instant::now();
            refresh_index(&mut index, &notes);
            let hits: HashSet<NoteId> = index.search(q).into_iter().collect();
            let filter = ListFilter {
                query: q.clone(),
                ..ListFilter::default()
            };
            let order = list_order(&notes, &filter, Some(&hits));
            let window = visible_rows(
                0.0,
                LIST_VIEWPORT_PX,
                DEFAULT_ROW_PX,
                order.len(),
                LIST_OVERSCAN,
            );
            let terms = query_terms(&filter.query);
            let rows: Vec<_> = order[window]
                .iter()
                .map(|&i| list_item(&notes[i], &terms, 0))
                .collect();
            times.push(t.elapsed());
            black_box(rows);
            shown += order.len();
        }
        report(&format!("keystroke/{kind}"), times, shown);
    }

    let mut group = c.benchmark_group("search");
    group.sample_size(10);
    group.bench_function("index/build", |b| {
        b.iter(|| {
            let mut index = SearchIndex::new();
            refresh_index(&mut index, black_box(&notes));
            index
        })
    });
    for (kind, list) in &queries {
        let mut i = 0;
        group.bench_function(format!("query/{kind}"), |b| {
            b.iter(|| {
                i = (i + 1) % list.len();
                index.search(black_box(&list[i]))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
