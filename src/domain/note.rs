//! The note itself, and the validated content a person can edit.

use serde::{Deserialize, Serialize};

use super::{DomainError, NoteId, Revision, LIMITS};

/// The editable content of a note: what a person types. Constructing one
/// validates it against [`LIMITS`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NoteDraft {
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    /// Shown above unpinned notes in the list. Absent in data written before
    /// pinning existed, which reads as unpinned.
    #[serde(default)]
    pub pinned: bool,
}

impl NoteDraft {
    /// Bytes of text: title, body and tags.
    pub fn text_bytes(&self) -> usize {
        text_bytes(&self.title, &self.body, &self.tags)
    }

    /// Checks the draft against the limits, normalising tags (trimmed, empty
    /// ones dropped, duplicates removed, order kept). The draft is unpinned;
    /// see the `pinned` field.
    pub fn validated(title: String, body: String, tags: Vec<String>) -> Result<Self, DomainError> {
        if title.len() > LIMITS.max_title_bytes {
            return Err(DomainError::TitleTooLong {
                len: title.len(),
                max: LIMITS.max_title_bytes,
            });
        }
        if title.chars().any(char::is_control) {
            return Err(DomainError::ControlCharacter { field: "the title" });
        }
        if body.len() > LIMITS.max_body_bytes {
            return Err(DomainError::BodyTooLarge {
                len: body.len(),
                max: LIMITS.max_body_bytes,
            });
        }
        // Tabs and line breaks are text; other control characters (NUL and
        // friends) only ever come from corrupted or hostile input.
        if body
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(DomainError::ControlCharacter { field: "the body" });
        }
        let mut clean: Vec<String> = Vec::with_capacity(tags.len());
        for tag in tags {
            let tag = tag.trim().to_string();
            if tag.is_empty() || clean.contains(&tag) {
                continue;
            }
            if tag.chars().count() > LIMITS.max_tag_chars || tag.chars().any(char::is_control) {
                return Err(DomainError::BadTag {
                    tag: tag.chars().take(80).collect(),
                    max: LIMITS.max_tag_chars,
                });
            }
            clean.push(tag);
        }
        if clean.len() > LIMITS.max_tags {
            return Err(DomainError::TooManyTags {
                count: clean.len(),
                max: LIMITS.max_tags,
            });
        }
        Ok(Self {
            title,
            body,
            tags: clean,
            pinned: false,
        })
    }

    /// The same draft, pinned or not.
    pub fn with_pin(self, pinned: bool) -> Self {
        Self { pinned, ..self }
    }

    /// Re-checks a draft that came from outside (the network, IndexedDB).
    pub fn revalidate(self) -> Result<Self, DomainError> {
        let pinned = self.pinned;
        Self::validated(self.title, self.body, self.tags).map(|d| d.with_pin(pinned))
    }
}

/// A note as a replica holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub id: NoteId,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Milliseconds since the Unix epoch of the last edit, on the editing device.
    pub updated_at: u64,
    /// The server revision this copy last saw; [`Revision::NEW`] if never synced.
    pub rev: Revision,
    /// A tombstone: the note was deleted and its text dropped.
    pub deleted: bool,
    /// Listed before unpinned notes. `serde(default)`: notes stored or sent
    /// before pinning existed read as unpinned.
    #[serde(default)]
    pub pinned: bool,
}

fn text_bytes(title: &str, body: &str, tags: &[String]) -> usize {
    title.len() + body.len() + tags.iter().map(String::len).sum::<usize>()
}

impl Note {
    /// Bytes of text: title, body and tags.
    pub fn text_bytes(&self) -> usize {
        text_bytes(&self.title, &self.body, &self.tags)
    }

    /// A fresh, empty note made at `now_ms`.
    pub fn new(id: NoteId, now_ms: u64) -> Self {
        Self {
            id,
            title: String::new(),
            body: String::new(),
            tags: Vec::new(),
            created_at: now_ms,
            updated_at: now_ms,
            rev: Revision::NEW,
            deleted: false,
            pinned: false,
        }
    }

    /// The editable part of this note.
    pub fn draft(&self) -> NoteDraft {
        NoteDraft {
            title: self.title.clone(),
            body: self.body.clone(),
            tags: self.tags.clone(),
            pinned: self.pinned,
        }
    }

    /// This note with its content replaced by `draft`, edited at `now_ms`.
    pub fn with_draft(&self, draft: NoteDraft, now_ms: u64) -> Self {
        Self {
            title: draft.title,
            body: draft.body,
            tags: draft.tags,
            pinned: draft.pinned,
            updated_at: now_ms.max(self.updated_at),
            ..self.clone()
        }
    }

    /// This note turned into a tombstone at `now_ms`: the text is dropped.
    pub fn tombstone(&self, now_ms: u64) -> Self {
        Self {
            title: String::new(),
            body: String::new(),
            tags: Vec::new(),
            pinned: false,
            updated_at: now_ms.max(self.updated_at),
            deleted: true,
            ..self.clone()
        }
    }

    /// The title to show in a list: the title, else the first non-empty line of
    /// the body, else "Untitled".
    pub fn display_title(&self) -> String {
        let title = self.title.trim();
        if !title.is_empty() {
            return title.to_string();
        }
        self.body
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.chars().take(80).collect())
            .unwrap_or_else(|| "Untitled".to_string())
    }

    /// A one-line preview of the body for the list.
    pub fn preview(&self, max_chars: usize) -> String {
        let flat: String = self.body.split_whitespace().collect::<Vec<_>>().join(" ");
        if flat.chars().count() <= max_chars {
            flat
        } else {
            let cut: String = flat.chars().take(max_chars).collect();
            format!("{}…", cut.trim_end())
        }
    }
}

/// Orders notes for the list: most recently edited first, ties broken by id so
/// the order is stable.
pub fn newest_first(a: &Note, b: &Note) -> std::cmp::Ordering {
    b.updated_at
        .cmp(&a.updated_at)
        .then_with(|| b.id.cmp(&a.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> NoteId {
        NoteId::new(n, [n as u8; 10])
    }

    #[test]
    fn draft_limits_are_enforced() {
        let big = "x".repeat(LIMITS.max_body_bytes + 1);
        assert!(matches!(
            NoteDraft::validated(String::new(), big, vec![]),
            Err(DomainError::BodyTooLarge { .. })
        ));
        let exact = "x".repeat(LIMITS.max_body_bytes);
        assert!(NoteDraft::validated(String::new(), exact, vec![]).is_ok());
        assert!(matches!(
            NoteDraft::validated("t".repeat(2000), String::new(), vec![]),
            Err(DomainError::TitleTooLong { .. })
        ));
        assert!(matches!(
            NoteDraft::validated("a\u{0}b".into(), String::new(), vec![]),
            Err(DomainError::ControlCharacter { .. })
        ));
        assert!(NoteDraft::validated("t".into(), "line\n\tindented\r\n".into(), vec![]).is_ok());
    }

    #[test]
    fn tags_are_normalised_and_limited() {
        let draft = NoteDraft::validated(
            "t".into(),
            String::new(),
            vec![" work ".into(), "".into(), "work".into(), "home".into()],
        )
        .expect("valid");
        assert_eq!(draft.tags, vec!["work".to_string(), "home".to_string()]);
        let many = (0..=LIMITS.max_tags).map(|i| format!("t{i}")).collect();
        assert!(matches!(
            NoteDraft::validated("t".into(), String::new(), many),
            Err(DomainError::TooManyTags { .. })
        ));
        assert!(matches!(
            NoteDraft::validated("t".into(), String::new(), vec!["x".repeat(65)]),
            Err(DomainError::BadTag { .. })
        ));
    }

    #[test]
    fn tombstones_drop_text_and_keep_identity() {
        let note = Note::new(id(1), 10).with_draft(
            NoteDraft::validated("Title".into(), "secret".into(), vec!["a".into()]).expect("valid"),
            20,
        );
        let dead = note.tombstone(30);
        assert!(dead.deleted);
        assert!(dead.body.is_empty() && dead.title.is_empty() && dead.tags.is_empty());
        assert_eq!(dead.id, note.id);
        assert_eq!(dead.created_at, 10);
        assert_eq!(dead.updated_at, 30);
    }

    #[test]
    fn notes_written_before_pinning_existed_read_as_unpinned() {
        let note = Note::new(id(1), 10);
        let mut json = serde_json::to_value(&note).expect("serialises");
        json.as_object_mut().expect("an object").remove("pinned");
        let old: Note = serde_json::from_value(json).expect("old data reads");
        assert!(!old.pinned);
        let draft: NoteDraft =
            serde_json::from_str(r#"{"title":"t","body":"b","tags":[]}"#).expect("old draft");
        assert!(!draft.pinned);
        // The pin survives revalidation and a round trip through a draft.
        let pinned = draft.with_pin(true).revalidate().expect("valid");
        assert!(pinned.pinned);
        assert!(note.with_draft(pinned, 20).pinned);
        assert!(
            !note
                .with_draft(NoteDraft::default().with_pin(true), 20)
                .tombstone(30)
                .pinned
        );
    }

    #[test]
    fn edit_time_never_goes_backwards() {
        let note = Note::new(id(1), 100);
        let edited = note.with_draft(NoteDraft::default(), 50);
        assert_eq!(edited.updated_at, 100);
    }

    #[test]
    fn display_title_falls_back_to_the_body() {
        let mut note = Note::new(id(1), 0);
        assert_eq!(note.display_title(), "Untitled");
        note.body = "\n\n  First line  \nsecond".into();
        assert_eq!(note.display_title(), "First line");
        note.title = "Real".into();
        assert_eq!(note.display_title(), "Real");
    }

    #[test]
    fn preview_is_flat_and_cut() {
        let mut note = Note::new(id(1), 0);
        note.body = "one\ntwo   three".into();
        assert_eq!(note.preview(100), "one two three");
        assert_eq!(note.preview(5), "one t…");
    }

    #[test]
    fn list_order_is_newest_first_and_stable() {
        let mut notes = [
            Note::new(id(1), 5),
            Note::new(id(2), 9),
            Note::new(id(3), 5),
        ];
        notes.sort_by(newest_first);
        let order: Vec<_> = notes.iter().map(|n| n.id).collect();
        assert_eq!(order, vec![id(2), id(3), id(1)]);
    }
}
