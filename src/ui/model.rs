//! View models: the plain data the components render, derived from domain
//! values by pure functions that are tested natively.

use crate::bridge::LiveState;
use crate::domain::{newest_first, Note, NoteDraft, NoteId};
use crate::sync::engine::{SyncState, SyncStatus};

/// One row of the notes list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListItem {
    pub id: NoteId,
    pub title: String,
    pub preview: String,
    pub when: String,
}

/// The rows of the notes list: live notes only, most recently edited first.
pub fn list_items(notes: &[Note], now_ms: u64) -> Vec<ListItem> {
    let mut live: Vec<&Note> = notes.iter().filter(|n| !n.deleted).collect();
    live.sort_by(|a, b| newest_first(a, b));
    live.into_iter()
        .map(|n| ListItem {
            id: n.id,
            title: n.display_title(),
            preview: n.preview(120),
            when: relative_time(n.updated_at, now_ms),
        })
        .collect()
}

/// Where a caret at UTF-16 offset `caret` in `old` belongs once the field
/// shows `new` instead: a change wholly after the caret leaves it where it
/// is, a change wholly before it shifts it by the change's length, and a
/// caret inside the changed part goes to that part's end. So text that
/// arrives from elsewhere never moves the place a person is typing at.
pub fn caret_after_replace(old: &str, new: &str, caret: u32) -> u32 {
    let old: Vec<u16> = old.encode_utf16().collect();
    let new: Vec<u16> = new.encode_utf16().collect();
    let caret = (caret as usize).min(old.len());
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let room = old.len().min(new.len()) - prefix;
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    let at = if caret <= prefix {
        caret
    } else if caret >= old.len() - suffix {
        caret + new.len() - old.len()
    } else {
        new.len() - suffix
    };
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// A short, human description of how long ago `at_ms` was.
pub fn relative_time(at_ms: u64, now_ms: u64) -> String {
    let secs = now_ms.saturating_sub(at_ms) / 1000;
    match secs {
        0..=44 => "just now".to_string(),
        45..=89 => "1 min ago".to_string(),
        90..=3_599 => format!("{} min ago", (secs + 30) / 60),
        3_600..=7_199 => "1 hour ago".to_string(),
        7_200..=86_399 => format!("{} hours ago", secs / 3_600),
        86_400..=172_799 => "yesterday".to_string(),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// Whether the open note's latest text is safely in IndexedDB.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SaveState {
    /// Everything typed is stored.
    #[default]
    Saved,
    /// Typed text is waiting for (or in) a write.
    Saving,
    /// The last write failed; the text is kept on the page and in the
    /// recovery journal until a retry succeeds.
    Failed,
}

impl SaveState {
    pub fn label(&self) -> &'static str {
        match self {
            SaveState::Saved => "Saved on this device",
            SaveState::Saving => "Saving…",
            SaveState::Failed => "Not saved yet",
        }
    }
}

/// What the page knows of the sync worker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WorkerView {
    #[default]
    Starting,
    Running {
        ticks: u64,
        notes: u32,
        pending: u32,
    },
    Failed(String),
}

impl WorkerView {
    /// The footer line describing the worker.
    pub fn describe(&self) -> String {
        match self {
            WorkerView::Starting => "Sync worker starting…".to_string(),
            WorkerView::Running { notes, pending, .. } => format!(
                "Sync worker running · {} stored · {} waiting to sync",
                plural(*notes, "note", "notes"),
                plural(*pending, "change", "changes"),
            ),
            WorkerView::Failed(message) => format!("Sync worker stopped: {message}"),
        }
    }
}

/// How much of the browser's storage this site uses, and whether the
/// browser promised not to evict it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageUse {
    pub usage: u64,
    pub quota: u64,
    pub persisted: bool,
}

impl StorageUse {
    /// The status bar's words, e.g. "Storage: 1.2 MB of 10 GB · kept".
    pub fn describe(&self) -> String {
        let kept = if self.persisted {
            "kept until you delete it"
        } else {
            "may be cleared if the device runs low on space"
        };
        format!(
            "Storage: {} of {} · {kept}",
            human_bytes(self.usage),
            human_bytes(self.quota)
        )
    }
}

/// A byte count as people read it (decimal units, one decimal place).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The live connection as the status bar says it: `(state, words)`.
pub fn live_label(live: LiveState, leader: Option<bool>, now_ms: u64) -> (&'static str, String) {
    let role = match leader {
        Some(true) => "this tab syncs for this browser",
        Some(false) => "another tab syncs for this browser",
        None => "starting",
    };
    match live {
        LiveState::Unknown => ("unknown", format!("Live updates: {role}")),
        LiveState::Connecting => ("connecting", format!("Live updates: connecting · {role}")),
        LiveState::Connected => ("connected", format!("Live updates: on · {role}")),
        LiveState::Retrying { at_ms } => {
            let seconds = at_ms.saturating_sub(now_ms).div_ceil(1000);
            (
                "retrying",
                format!("Live updates: reconnecting in {seconds} s · {role}"),
            )
        }
    }
}

/// Most notes one import file may hold: enough for years of notes, and a
/// bound on the single IndexedDB transaction an import is.
pub const MAX_IMPORT_NOTES: usize = 50_000;

/// One note of an import file. `tags` may be left out.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportedNote {
    title: String,
    body: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// Reads an import file: a JSON array of `{"title", "body", "tags"}`
/// objects. Every note is checked against the limits before anything is
/// stored, so a file is imported whole or not at all; the error names the
/// first bad note (counting from 1) and what is wrong with it.
pub fn parse_import(text: &str) -> Result<Vec<NoteDraft>, String> {
    let notes: Vec<ImportedNote> = serde_json::from_str(text).map_err(|e| {
        format!(
            "This file is not a notes file (a JSON list of notes with a title and a body): {e}."
        )
    })?;
    if notes.len() > MAX_IMPORT_NOTES {
        return Err(format!(
            "This file holds {} notes; import at most {MAX_IMPORT_NOTES} at a time.",
            notes.len()
        ));
    }
    notes
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            NoteDraft::validated(n.title, n.body, n.tags)
                .map_err(|e| format!("Note {} of the file cannot be imported: {e}.", i + 1))
        })
        .collect()
}

/// The sync indicator: a state keyword (for styling and tests) and the words
/// a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncLabel {
    pub state: &'static str,
    pub text: String,
}

/// Describes the sync status truthfully: never "synced" while anything is
/// pending, always the count of pending changes, and when the last full sync
/// happened.
pub fn sync_label(status: Option<&SyncStatus>, now_ms: u64) -> SyncLabel {
    let Some(status) = status else {
        return SyncLabel {
            state: "starting",
            text: "Starting sync…".to_string(),
        };
    };
    let pending = if status.pending == 0 {
        String::new()
    } else {
        format!(" · {} waiting", plural(status.pending, "change", "changes"))
    };
    let last = status
        .last_synced_at
        .map(|at| format!(" · last synced {}", relative_time(at, now_ms)))
        .unwrap_or_default();
    match &status.state {
        SyncState::Offline => SyncLabel {
            state: "offline",
            text: format!("Offline{pending}{last}"),
        },
        SyncState::Syncing if status.downloaded > 0 => SyncLabel {
            state: "syncing",
            text: format!("Syncing… {} downloaded{pending}", status.downloaded),
        },
        SyncState::Syncing => SyncLabel {
            state: "syncing",
            text: format!("Syncing…{pending}"),
        },
        SyncState::Synced => SyncLabel {
            state: "synced",
            text: format!("Synced{last}"),
        },
        SyncState::Error { message } => {
            let retry = status
                .retry_at
                .map(|at| {
                    format!(
                        " · retrying in {} s",
                        at.saturating_sub(now_ms).div_ceil(1000)
                    )
                })
                .unwrap_or_default();
            SyncLabel {
                state: "error",
                text: format!("Sync problem: {message}{pending}{retry}"),
            }
        }
    }
}

/// "1 note", "2 notes".
pub fn plural(n: u32, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_use_reads_like_a_person_would_say_it() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_250_000), "1.2 MB");
        assert_eq!(human_bytes(10_000_000_000), "10.0 GB");
        let kept = StorageUse {
            usage: 2_000,
            quota: 5_000_000_000,
            persisted: true,
        };
        assert_eq!(
            kept.describe(),
            "Storage: 2.0 kB of 5.0 GB · kept until you delete it"
        );
        assert!(StorageUse {
            persisted: false,
            ..kept
        }
        .describe()
        .contains("may be cleared"));
    }

    #[test]
    fn the_live_label_names_the_state_and_who_syncs() {
        let (state, text) = live_label(LiveState::Retrying { at_ms: 5_500 }, Some(false), 1_000);
        assert_eq!(state, "retrying");
        assert_eq!(
            text,
            "Live updates: reconnecting in 5 s · another tab syncs for this browser"
        );
        let (state, text) = live_label(LiveState::Connected, Some(true), 0);
        assert_eq!(state, "connected");
        assert!(text.contains("this tab syncs"));
    }

    #[test]
    fn an_import_file_is_read_whole_with_tags_optional_and_normalised() {
        let drafts = parse_import(
            r#"[{"title":"a","body":"one\ntwo","tags":[" x ","x","y"]},{"title":"b","body":""}]"#,
        )
        .expect("a valid file");
        assert_eq!(
            drafts,
            vec![
                NoteDraft {
                    title: "a".into(),
                    body: "one\ntwo".into(),
                    tags: vec!["x".into(), "y".into()],
                },
                NoteDraft {
                    title: "b".into(),
                    body: String::new(),
                    tags: Vec::new(),
                },
            ]
        );
        assert_eq!(parse_import("[]"), Ok(Vec::new()));
    }

    #[test]
    fn a_bad_import_file_is_refused_naming_the_first_bad_note() {
        let not_a_list = parse_import(r#"{"title":"a","body":"b"}"#).expect_err("not a list");
        assert!(
            not_a_list.starts_with("This file is not a notes file"),
            "{not_a_list}"
        );
        let unknown_field = parse_import(r#"[{"title":"a","body":"b","colour":"red"}]"#)
            .expect_err("unknown field");
        assert!(unknown_field.contains("colour"), "{unknown_field}");
        let long_title = "t".repeat(crate::domain::LIMITS.max_title_bytes + 1);
        let file = format!(r#"[{{"title":"ok","body":""}},{{"title":"{long_title}","body":""}}]"#);
        let too_long = parse_import(&file).expect_err("title over the limit");
        assert!(too_long.starts_with("Note 2 of the file"), "{too_long}");
    }

    #[test]
    fn an_import_file_over_the_note_limit_is_refused() {
        let file = format!(
            "[{}]",
            vec![r#"{"title":"","body":""}"#; MAX_IMPORT_NOTES + 1].join(",")
        );
        let refused = parse_import(&file).expect_err("too many notes");
        assert!(
            refused.contains(&format!("at most {MAX_IMPORT_NOTES}")),
            "{refused}"
        );
    }

    #[test]
    fn the_caret_stays_where_the_person_types_when_text_arrives() {
        // A line added after the caret: it stays.
        assert_eq!(caret_after_replace("one\ntwo", "one\ntwo\nthree", 3), 3);
        // A line added before the caret: it moves with its text.
        assert_eq!(caret_after_replace("one\ntwo", "zero\none\ntwo", 6), 11);
        // Inside a replaced part: the end of the new part.
        assert_eq!(caret_after_replace("abcdef", "abXYZef", 3), 5);
        // UTF-16 offsets, as the DOM counts them.
        assert_eq!(caret_after_replace("é😀x", "Aé😀x", 3), 4);
        assert_eq!(caret_after_replace("", "new", 0), 0);
        assert_eq!(caret_after_replace("abc", "", 2), 0);
    }
    use crate::domain::NoteId;

    fn note(n: u64, updated: u64) -> Note {
        let mut note = Note::new(NoteId::new(n, [n as u8; 10]), updated);
        note.title = format!("note {n}");
        note
    }

    #[test]
    fn list_hides_tombstones_and_sorts_newest_first() {
        let mut dead = note(3, 500);
        dead.deleted = true;
        let items = list_items(&[note(1, 100), note(2, 300), dead], 1_000);
        let titles: Vec<_> = items.iter().map(|i| i.title.as_str()).collect();
        assert_eq!(titles, vec!["note 2", "note 1"]);
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = 10_000_000_000;
        assert_eq!(relative_time(now, now), "just now");
        assert_eq!(relative_time(now + 5_000, now), "just now");
        assert_eq!(relative_time(now - 60_000, now), "1 min ago");
        assert_eq!(relative_time(now - 10 * 60_000, now), "10 min ago");
        assert_eq!(relative_time(now - 3 * 3_600_000, now), "3 hours ago");
        assert_eq!(relative_time(now - 30 * 3_600_000, now), "yesterday");
        assert_eq!(relative_time(now - 5 * 86_400_000, now), "5 days ago");
    }

    #[test]
    fn sync_labels_are_truthful() {
        let status = |state, pending| SyncStatus {
            state,
            pending,
            last_synced_at: Some(0),
            downloaded: 0,
            retry_at: None,
        };
        let now = 120_000;
        assert_eq!(sync_label(None, now).state, "starting");
        let synced = sync_label(Some(&status(SyncState::Synced, 0)), now);
        assert_eq!(synced.state, "synced");
        assert_eq!(synced.text, "Synced · last synced 2 min ago");
        let offline = sync_label(Some(&status(SyncState::Offline, 3)), now);
        assert_eq!(
            offline.text,
            "Offline · 3 changes waiting · last synced 2 min ago"
        );
        let mut downloading = status(SyncState::Syncing, 0);
        downloading.downloaded = 4000;
        assert_eq!(
            sync_label(Some(&downloading), now).text,
            "Syncing… 4000 downloaded"
        );
        let mut failing = status(
            SyncState::Error {
                message: "server down".into(),
            },
            1,
        );
        failing.retry_at = Some(now + 4_500);
        assert_eq!(
            sync_label(Some(&failing), now).text,
            "Sync problem: server down · 1 change waiting · retrying in 5 s"
        );
    }

    #[test]
    fn worker_description_counts_correctly() {
        let view = WorkerView::Running {
            ticks: 3,
            notes: 1,
            pending: 2,
        };
        assert_eq!(
            view.describe(),
            "Sync worker running · 1 note stored · 2 changes waiting to sync"
        );
        assert!(WorkerView::Failed("x".into())
            .describe()
            .contains("stopped: x"));
    }
}
