//! The page's notes, each with a version that changes whenever the note may
//! have: what lets the list's order, its tag counts and the search index
//! follow the notes by redoing only the notes that changed.
//!
//! Promises:
//! - every way to change a note goes through [`Notes`], and gives the note
//!   a version never given before (in this process): reading the notes is
//!   through `Deref` to a slice, and there is no `DerefMut`;
//! - so a note whose version at its index is the one a reader saw there is
//!   the very note it saw, field for field; a reader that keeps what it
//!   made of each note by index redoes only the indices whose version
//!   differs. Moving notes (a removal) gives the moved indices other
//!   versions, which is safe: they are redone.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::Note;

/// Versions are unique across every [`Notes`] of the process, so replacing
/// the whole value (a signal's `set`) cannot bring back a version a reader
/// saw for another note.
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

fn fresh_version() -> u64 {
    NEXT_VERSION.fetch_add(1, Ordering::Relaxed)
}

/// The notes, and a version for each (see the module's promises).
#[derive(Debug, Clone, Default)]
pub struct Notes {
    list: Vec<Note>,
    versions: Vec<u64>,
}

impl Notes {
    pub fn new(list: Vec<Note>) -> Self {
        let versions = list.iter().map(|_| fresh_version()).collect();
        Self { list, versions }
    }

    /// Each note's version, by index.
    pub fn versions(&self) -> &[u64] {
        &self.versions
    }

    /// The note at `index`, to change.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut Note> {
        let note = self.list.get_mut(index)?;
        self.versions[index] = fresh_version();
        Some(note)
    }

    /// The first note for which `found` holds, to change.
    pub fn find_mut(&mut self, found: impl FnMut(&Note) -> bool) -> Option<&mut Note> {
        let index = self.list.iter().position(found)?;
        self.get_mut(index)
    }

    /// Every note, to change: all of them get new versions.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Note> {
        for version in &mut self.versions {
            *version = fresh_version();
        }
        self.list.iter_mut()
    }

    pub fn push(&mut self, note: Note) {
        self.list.push(note);
        self.versions.push(fresh_version());
    }

    pub fn extend(&mut self, notes: impl IntoIterator<Item = Note>) {
        for note in notes {
            self.push(note);
        }
    }

    /// Keeps the notes for which `keep` holds; they keep their versions.
    pub fn retain(&mut self, keep: impl FnMut(&Note) -> bool) {
        let kept: Vec<bool> = self.list.iter().map(keep).collect();
        let mut list = kept.iter();
        self.list.retain(|_| list.next() == Some(&true));
        let mut versions = kept.iter();
        self.versions.retain(|_| versions.next() == Some(&true));
    }
}

/// The versions a reader of [`Notes`] saw, by index: which notes it must
/// look at again.
#[derive(Debug, Default)]
pub struct Seen(Vec<u64>);

impl Seen {
    /// Whether the note at `index` may not be the one seen there (a new
    /// index counts as changed).
    pub fn may_differ(&self, notes: &Notes, index: usize) -> bool {
        self.0.get(index) != notes.versions.get(index)
    }

    /// `notes` as seen now (reusing this one's buffer).
    pub fn saw(mut self, notes: &Notes) -> Self {
        self.0.clear();
        self.0.extend_from_slice(&notes.versions);
        self
    }
}

impl Deref for Notes {
    type Target = [Note];

    fn deref(&self) -> &[Note] {
        &self.list
    }
}

impl From<Vec<Note>> for Notes {
    fn from(list: Vec<Note>) -> Self {
        Self::new(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NoteId;

    fn note(n: u64) -> Note {
        Note::new(NoteId::new(n, [n as u8; 10]), n)
    }

    #[test]
    fn every_change_gives_a_new_version_and_nothing_else_does() {
        let mut notes = Notes::new(vec![note(1), note(2), note(3)]);
        let first = notes.versions().to_vec();
        assert_eq!(notes.len(), 3);
        assert_eq!(notes[1].id, note(2).id);

        notes.get_mut(1).expect("there").body.push('x');
        let second = notes.versions().to_vec();
        assert_eq!((second[0], second[2]), (first[0], first[2]));
        assert_ne!(second[1], first[1]);

        notes.find_mut(|n| n.id == note(3).id).expect("there");
        assert_ne!(notes.versions()[2], second[2]);

        notes.retain(|n| n.id != note(2).id);
        assert_eq!(notes.len(), 2);
        assert_eq!(
            notes.versions()[0],
            first[0],
            "a kept note keeps its version"
        );
        assert_eq!(notes.versions().len(), 2);

        notes.push(note(4));
        let pushed = notes.versions().to_vec();
        let _ = notes.iter_mut().count();
        assert!(notes.versions().iter().zip(&pushed).all(|(a, b)| a != b));
    }

    #[test]
    fn a_new_value_never_repeats_a_version() {
        let a = Notes::new(vec![note(1)]);
        let b = Notes::new(vec![note(1)]);
        assert_ne!(a.versions(), b.versions());
    }
}
