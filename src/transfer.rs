//! The files notes go out in and come back from: export as JSON or as a zip
//! of markdown files, and the import of either.
//!
//! Promises:
//! - an export keeps each note's id, so importing it again (here, into
//!   another account, on another device) is idempotent: a note whose id is
//!   already held with the same content is skipped; files without ids
//!   (written by hand or by another tool) are matched on title and body
//!   instead;
//! - an import never reverts: a note held here with other content is
//!   updated (a normal edit) only when the file's copy is newer than the one
//!   here; an older copy is skipped, and so is a note deleted here after the
//!   file's copy was made. The result says how many of each, and how many
//!   deleted notes a newer copy brought back;
//! - a file that holds one id twice is read with the latest copy of it, and
//!   the result says so;
//! - a file is checked whole before anything is stored: it is imported whole
//!   or not at all, and the error names the first bad note and what is wrong;
//! - export then import gives back the same titles, bodies, tags and pins.
//!
//! JSON: a list of `{"id"?, "title", "body", "tags"?, "pinned"?,
//! "created_at"?, "updated_at"?}` (only `title` and `body` required; the
//! hand-written files accepted before export existed still are), in UTF-8,
//! with or without a byte-order mark. A copy without `updated_at` counts as
//! older than any copy held here.
//!
//! Markdown: one `<title>-<id tail>.md` per note, a front matter block whose
//! values are JSON (so also valid YAML), then the body verbatim:
//!
//! ```text
//! ---
//! id: "01937c8e-…"
//! title: "Shopping"
//! tags: ["home"]
//! pinned: false
//! created_at: 1732000000000
//! updated_at: 1732000000000
//! ---
//! Milk, eggs
//! ```
//!
//! A `.md` file without front matter imports with its file name as the title.
//!
//! The zip is written with the `zip` crate (the most used Rust zip crate,
//! maintained, pure Rust and building for wasm32), entries stored without
//! compression: its compressors would add tens of kilobytes of wasm to the
//! page, and a notes export is small. Zips written by other tools with
//! deflate compression are therefore refused with a message saying so.

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read, Write};

use serde::{Deserialize, Serialize};

use crate::domain::{Note, NoteDraft, NoteId, LIMITS};

/// Most notes one import file may hold: enough for years of notes, and a
/// bound on the single IndexedDB transaction an import is.
pub const MAX_IMPORT_NOTES: usize = 50_000;

/// One note of a JSON export or import file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonNote {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<NoteId>,
    title: String,
    body: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    pinned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated_at: Option<u64>,
}

/// A note read from an import file, checked against the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedNote {
    /// The id it had where it was exported, if the file says.
    pub id: Option<NoteId>,
    pub draft: NoteDraft,
    pub created_at: Option<u64>,
    /// When the copy in the file was last edited, if the file says.
    pub updated_at: Option<u64>,
}

/// The UTF-8 byte-order mark some editors put at the start of a text file.
const BOM: &str = "\u{feff}";

fn live(notes: &[Note]) -> impl Iterator<Item = &Note> {
    notes.iter().filter(|n| !n.deleted)
}

fn json_note(note: &Note) -> JsonNote {
    JsonNote {
        id: Some(note.id),
        title: note.title.clone(),
        body: note.body.clone(),
        tags: note.tags.clone(),
        pinned: note.pinned,
        created_at: Some(note.created_at),
        updated_at: Some(note.updated_at),
    }
}

/// Every live note as a JSON export file.
pub fn export_json(notes: &[Note]) -> String {
    let list: Vec<JsonNote> = live(notes).map(json_note).collect();
    serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".to_string())
}

/// One note as a markdown file with its front matter.
pub fn to_markdown(note: &Note) -> String {
    format!(
        "---\nid: {}\ntitle: {}\ntags: {}\npinned: {}\ncreated_at: {}\nupdated_at: {}\n---\n{}",
        json(&note.id.to_string()),
        json(&note.title),
        json(&note.tags),
        note.pinned,
        note.created_at,
        note.updated_at,
        note.body
    )
}

/// A front-matter value: JSON, which is also YAML.
fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A file name for a note: a slug of its title and the tail of its id, which
/// keeps names unique and stable across exports.
fn file_name(note: &Note) -> String {
    let mut slug = String::new();
    for c in note.display_title().chars() {
        if c.is_alphanumeric() {
            slug.extend(c.to_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.chars().count() >= 48 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let id = note.id.to_string();
    let tail = &id[id.len().saturating_sub(8)..];
    if slug.is_empty() {
        format!("note-{tail}.md")
    } else {
        format!("{slug}-{tail}.md")
    }
}

/// Every live note as a zip of markdown files (see the module doc).
pub fn export_zip(notes: &[Note]) -> Result<Vec<u8>, String> {
    use zip::write::SimpleFileOptions;
    let fail = |e: &dyn std::fmt::Display| format!("The zip could not be written: {e}");
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    let mut names = HashSet::new();
    for note in live(notes) {
        let mut name = format!("notes/{}", file_name(note));
        if !names.insert(name.clone()) {
            name = format!(
                "notes/{}-{}.md",
                file_name(note).trim_end_matches(".md"),
                note.id
            );
            names.insert(name.clone());
        }
        writer.start_file(name, options).map_err(|e| fail(&e))?;
        writer
            .write_all(to_markdown(note).as_bytes())
            .map_err(|e| fail(&e))?;
    }
    Ok(writer.finish().map_err(|e| fail(&e))?.into_inner())
}

/// Reads an import file: a zip of markdown files (recognised by its first
/// bytes) or a JSON list of notes. See the module doc for the formats.
pub fn parse_import(bytes: &[u8]) -> Result<Vec<ImportedNote>, String> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return parse_zip(bytes);
    }
    let bytes = bytes.strip_prefix(BOM.as_bytes()).unwrap_or(bytes);
    std::str::from_utf8(bytes)
        .map_err(|_| "This file is neither a notes file (JSON) nor a zip of notes.".to_string())?;
    let notes: Vec<JsonNote> = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "This file is not a notes file (a JSON list of notes with a title and a body): {e}."
        )
    })?;
    check_count(notes.len())?;
    notes
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            NoteDraft::validated(n.title, n.body, n.tags)
                .map(|draft| ImportedNote {
                    id: n.id,
                    draft: draft.with_pin(n.pinned),
                    created_at: n.created_at,
                    updated_at: n.updated_at,
                })
                .map_err(|e| format!("Note {} of the file cannot be imported: {e}.", i + 1))
        })
        .collect()
}

fn check_count(count: usize) -> Result<(), String> {
    if count > MAX_IMPORT_NOTES {
        return Err(format!(
            "This file holds {count} notes; import at most {MAX_IMPORT_NOTES} at a time."
        ));
    }
    Ok(())
}

fn parse_zip(bytes: &[u8]) -> Result<Vec<ImportedNote>, String> {
    let bad = |e: &dyn std::fmt::Display| format!("This zip cannot be read: {e}.");
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(&e))?;
    check_count(archive.len())?;
    // A markdown file is at most a note body plus its front matter; the
    // bound keeps a hostile archive from claiming gigabytes.
    let max_file = (LIMITS.max_body_bytes + LIMITS.max_title_bytes + 64 * 1024) as u64;
    let mut notes = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(|e| bad(&e))?;
        let name = file.name().map_err(|e| bad(&e))?.to_string();
        if file.is_dir() || !name.to_ascii_lowercase().ends_with(".md") {
            continue;
        }
        if file.size() > max_file {
            return Err(format!("{name} in the zip is larger than a note can be."));
        }
        let mut text = String::new();
        file.by_ref()
            .take(max_file)
            .read_to_string(&mut text)
            .map_err(|e| format!("{name} in the zip cannot be read: {e}."))?;
        let stem = name
            .rsplit('/')
            .next()
            .unwrap_or(&name)
            .trim_end_matches(".md")
            .trim_end_matches(".MD");
        notes.push(parse_markdown(&text, stem).map_err(|e| format!("{name}: {e}"))?);
    }
    Ok(notes)
}

/// Reads one markdown file; `stem` (its file name without `.md`) is the
/// title when the file has no front matter.
pub fn parse_markdown(text: &str, stem: &str) -> Result<ImportedNote, String> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    // A file whose front matter has Windows line ends was written by hand:
    // read it all with plain ones. Exports use plain line ends, so a body
    // holding "\r\n" comes back byte for byte.
    let normalised;
    let text = if text.starts_with("---\r\n") {
        normalised = text.replace("\r\n", "\n");
        normalised.as_str()
    } else {
        text
    };
    let Some(rest) = text.strip_prefix("---\n") else {
        let draft = NoteDraft::validated(stem.to_string(), text.to_string(), Vec::new())
            .map_err(|e| format!("cannot be imported: {e}."))?;
        return Ok(ImportedNote {
            id: None,
            draft,
            created_at: None,
            updated_at: None,
        });
    };
    let (head, body) = match rest.find("\n---\n") {
        Some(end) => (&rest[..end], &rest[end + 5..]),
        None if rest.ends_with("\n---") => (&rest[..rest.len() - 4], ""),
        None => return Err("its front matter (between --- lines) is not closed.".into()),
    };
    let mut note = JsonNote {
        id: None,
        title: stem.to_string(),
        body: body.to_string(),
        tags: Vec::new(),
        pinned: false,
        created_at: None,
        updated_at: None,
    };
    for line in head.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("the front matter line {line:?} is not `key: value`."))?;
        let value = value.trim();
        let field = |e: serde_json::Error| format!("the front matter's {key} is not valid: {e}.");
        match key.trim() {
            "id" => note.id = Some(serde_json::from_slice(value.as_bytes()).map_err(field)?),
            "title" => note.title = serde_json::from_slice(value.as_bytes()).map_err(field)?,
            "tags" => note.tags = serde_json::from_slice(value.as_bytes()).map_err(field)?,
            "pinned" => note.pinned = serde_json::from_slice(value.as_bytes()).map_err(field)?,
            "created_at" => {
                note.created_at = Some(serde_json::from_slice(value.as_bytes()).map_err(field)?)
            }
            "updated_at" => {
                note.updated_at = Some(serde_json::from_slice(value.as_bytes()).map_err(field)?)
            }
            // Other tools' keys: ignored.
            _ => {}
        }
    }
    let draft = NoteDraft::validated(note.title, note.body, note.tags)
        .map_err(|e| format!("cannot be imported: {e}."))?
        .with_pin(note.pinned);
    Ok(ImportedNote {
        id: note.id,
        draft,
        created_at: note.created_at,
        updated_at: note.updated_at,
    })
}

/// What importing a file into the notes a browser holds does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportPlan {
    /// Notes to create, ids and creation times kept from the file when it
    /// has them.
    pub create: Vec<Note>,
    /// Notes already held (live or deleted) whose content becomes the
    /// file's, which is newer: normal edits.
    pub update: Vec<(NoteId, NoteDraft)>,
    /// Of `update`, how many bring a note deleted here back.
    pub restored: usize,
    /// Notes of the file already held with the same content.
    pub unchanged: usize,
    /// Notes held here with other content that is as new as the file's copy
    /// or newer: kept as they are.
    pub older: usize,
    /// Notes deleted here after the file's copy was made: left deleted.
    pub deleted_here: usize,
    /// Copies of an id the file holds more than once, past the one used.
    pub repeated: usize,
}

impl ImportPlan {
    /// What a person is told the import did.
    pub fn summary(&self) -> String {
        let notes = |n: usize| if n == 1 { "note" } else { "notes" };
        let created = self.create.len();
        let mut said = format!("Imported {created} {}", notes(created));
        let updated = self.update.len() - self.restored;
        if updated > 0 {
            said.push_str(&format!(", updated {updated}"));
        }
        if self.restored > 0 {
            said.push_str(&format!(
                ", brought back {} deleted {}",
                self.restored,
                notes(self.restored)
            ));
        }
        if self.unchanged > 0 {
            said.push_str(&format!(", {} already here", self.unchanged));
        }
        if self.older > 0 {
            said.push_str(&format!(
                "; kept {} {} newer here than in the file",
                self.older,
                notes(self.older)
            ));
        }
        if self.deleted_here > 0 {
            said.push_str(&format!(
                "; left {} {} deleted here since the file was made",
                self.deleted_here,
                notes(self.deleted_here)
            ));
        }
        if self.repeated > 0 {
            said.push_str(&format!(
                "; the file holds {} more {} of an id it already had (the latest copy was used)",
                self.repeated,
                if self.repeated == 1 { "copy" } else { "copies" }
            ));
        }
        said
    }
}

/// The copies of `imported` to plan, in file order: of the notes with the
/// same id, only the one edited last (the first of equals); and how many
/// were left out.
fn latest_of_each_id(imported: Vec<ImportedNote>) -> (Vec<ImportedNote>, usize) {
    let mut at: HashMap<NoteId, usize> = HashMap::new();
    let mut kept: Vec<Option<ImportedNote>> = Vec::with_capacity(imported.len());
    let mut repeated = 0;
    for note in imported {
        match note.id.and_then(|id| at.get(&id).copied()) {
            Some(i) => {
                repeated += 1;
                let newer = kept[i]
                    .as_ref()
                    .is_some_and(|first| note.updated_at > first.updated_at);
                if newer {
                    kept[i] = Some(note);
                }
            }
            None => {
                if let Some(id) = note.id {
                    at.insert(id, kept.len());
                }
                kept.push(Some(note));
            }
        }
    }
    (kept.into_iter().flatten().collect(), repeated)
}

/// Decides what an import does (see the module doc): `existing` is every
/// note the browser holds, tombstones included; `fresh_id` makes ids for
/// notes the file has none for. Within one file, a note without an id whose
/// title and body came before is skipped.
pub fn plan_import(
    existing: &[Note],
    imported: Vec<ImportedNote>,
    now_ms: u64,
    mut fresh_id: impl FnMut() -> NoteId,
) -> ImportPlan {
    let (imported, repeated) = latest_of_each_id(imported);
    let mut plan = ImportPlan {
        repeated,
        ..ImportPlan::default()
    };
    let held: HashMap<NoteId, &Note> = existing.iter().map(|n| (n.id, n)).collect();
    let mut seen_text: HashSet<(String, String)> = live(existing)
        .map(|n| (n.title.clone(), n.body.clone()))
        .collect();
    for note in imported {
        if let Some(id) = note.id {
            // A copy of unknown age is taken for older than the one here.
            let newer_than = |held: &Note| note.updated_at.is_some_and(|at| at > held.updated_at);
            match held.get(&id) {
                Some(held) if !held.deleted && held.draft() == note.draft => plan.unchanged += 1,
                Some(held) if newer_than(held) => {
                    plan.restored += usize::from(held.deleted);
                    plan.update.push((id, note.draft));
                }
                Some(held) if held.deleted => plan.deleted_here += 1,
                Some(_) => plan.older += 1,
                None => {
                    let created = note.created_at.unwrap_or(now_ms).min(now_ms);
                    seen_text.insert((note.draft.title.clone(), note.draft.body.clone()));
                    plan.create
                        .push(Note::new(id, created).with_draft(note.draft, now_ms));
                }
            }
        } else if seen_text.insert((note.draft.title.clone(), note.draft.body.clone())) {
            plan.create
                .push(Note::new(fresh_id(), now_ms).with_draft(note.draft, now_ms));
        } else {
            plan.unchanged += 1;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u64) -> NoteId {
        NoteId::new(1_700_000_000_000 + n, [n as u8; 10])
    }

    fn note(n: u64, title: &str, body: &str, tags: &[&str], pinned: bool) -> Note {
        let draft = NoteDraft::validated(
            title.into(),
            body.into(),
            tags.iter().map(|t| t.to_string()).collect(),
        )
        .expect("valid")
        .with_pin(pinned);
        Note::new(id(n), 1_000 + n).with_draft(draft, 2_000 + n)
    }

    fn sample() -> Vec<Note> {
        let mut dead = note(3, "gone", "text", &[], false);
        dead = dead.tombstone(5_000);
        vec![
            note(
                1,
                "Shopping",
                "Milk\n\n---\neggs \"quoted\"\r\n",
                &["home"],
                true,
            ),
            note(2, "", "no title: just a body\n", &["a", "b c"], false),
            dead,
        ]
    }

    fn same_content(imported: &[ImportedNote], notes: &[Note]) {
        let live: Vec<&Note> = notes.iter().filter(|n| !n.deleted).collect();
        assert_eq!(imported.len(), live.len());
        for n in live {
            let back = imported
                .iter()
                .find(|i| i.id == Some(n.id))
                .expect("every note comes back with its id");
            assert_eq!(back.draft, n.draft());
            assert_eq!(back.created_at, Some(n.created_at));
        }
    }

    #[test]
    fn json_export_round_trips_live_notes() {
        let notes = sample();
        let file = export_json(&notes);
        let back = parse_import(file.as_bytes()).expect("reads back");
        same_content(&back, &notes);
    }

    #[test]
    fn zip_export_round_trips_live_notes() {
        let notes = sample();
        let zip = export_zip(&notes).expect("writes");
        assert!(zip.starts_with(b"PK\x03\x04"));
        let back = parse_import(&zip).expect("reads back");
        same_content(&back, &notes);
    }

    #[test]
    fn markdown_without_front_matter_takes_its_file_name() {
        let note = parse_markdown("# Hello\nworld", "My note").expect("reads");
        assert_eq!(note.id, None);
        assert_eq!(note.draft.title, "My note");
        assert_eq!(note.draft.body, "# Hello\nworld");
        let unclosed = parse_markdown("---\nid: \"x\"\nbody", "n").expect_err("unclosed");
        assert!(unclosed.contains("not closed"), "{unclosed}");
        let bad_id = parse_markdown("---\nid: \"nope\"\n---\n", "n").expect_err("bad id");
        assert!(bad_id.contains("id is not valid"), "{bad_id}");
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_first_bad_note() {
        let not_a_list = parse_import(br#"{"title":"a","body":"b"}"#).expect_err("not a list");
        assert!(
            not_a_list.starts_with("This file is not a notes file"),
            "{not_a_list}"
        );
        let unknown = parse_import(br#"[{"title":"a","body":"b","colour":"red"}]"#)
            .expect_err("unknown field");
        assert!(unknown.contains("colour"), "{unknown}");
        let long_title = "t".repeat(LIMITS.max_title_bytes + 1);
        let file = format!(r#"[{{"title":"ok","body":""}},{{"title":"{long_title}","body":""}}]"#);
        let too_long = parse_import(file.as_bytes()).expect_err("title over the limit");
        assert!(too_long.starts_with("Note 2 of the file"), "{too_long}");
        let binary = parse_import(&[0xff, 0xfe, 0]).expect_err("binary");
        assert!(binary.contains("neither"), "{binary}");
        let broken_zip = parse_import(b"PK\x03\x04garbage").expect_err("broken zip");
        assert!(
            broken_zip.starts_with("This zip cannot be read"),
            "{broken_zip}"
        );
    }

    #[test]
    fn hand_written_json_still_imports_with_tags_optional_and_normalised() {
        let notes = parse_import(
            br#"[{"title":"a","body":"one\ntwo","tags":[" x ","x","y"]},{"title":"b","body":""}]"#,
        )
        .expect("a valid file");
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0].id, None);
        assert_eq!(notes[0].draft.tags, vec!["x".to_string(), "y".to_string()]);
        assert!(!notes[1].draft.pinned);
        assert_eq!(parse_import(b"[]"), Ok(Vec::new()));
    }

    #[test]
    fn a_file_over_the_note_limit_is_refused() {
        let file = format!(
            "[{}]",
            vec![r#"{"title":"","body":""}"#; MAX_IMPORT_NOTES + 1].join(",")
        );
        let refused = parse_import(file.as_bytes()).expect_err("too many notes");
        assert!(
            refused.contains(&format!("at most {MAX_IMPORT_NOTES}")),
            "{refused}"
        );
    }

    #[test]
    fn importing_twice_changes_nothing_the_second_time() {
        let notes = sample();
        let file = parse_import(export_json(&notes).as_bytes()).expect("reads");
        let mut next = 100;
        let mut fresh = || {
            next += 1;
            id(next)
        };
        // Into an empty browser: every live note is created with its id.
        let first = plan_import(&[], file.clone(), 9_000, &mut fresh);
        assert_eq!(first.create.len(), 2);
        assert_eq!(first.create[0].id, id(1));
        assert!(first.create[0].pinned);
        assert_eq!(first.create[0].created_at, 1_001);
        // Into the browser that holds them now: nothing to do.
        let second = plan_import(&first.create, file.clone(), 9_500, &mut fresh);
        assert_eq!(
            second,
            ImportPlan {
                unchanged: 2,
                ..ImportPlan::default()
            }
        );
        // A held note edited, or deleted, after the file was made keeps its
        // edit or its delete (next test).
        let mut changed = first.create.clone();
        changed[0].body = "edited".into();
        changed[1] = changed[1].tombstone(9_600);
        let third = plan_import(&changed, file, 9_700, &mut fresh);
        assert!(third.update.is_empty() && third.create.is_empty());
        assert_eq!((third.older, third.deleted_here), (1, 1));
        // Without ids, title and body decide, within the file too.
        let hand =
            parse_import(br#"[{"title":"x","body":"y"},{"title":"x","body":"y"}]"#).expect("reads");
        let once = plan_import(&[], hand.clone(), 1, &mut fresh);
        assert_eq!((once.create.len(), once.unchanged), (1, 1));
        let again = plan_import(&once.create, hand, 2, &mut fresh);
        assert_eq!((again.create.len(), again.unchanged), (0, 2));
    }

    /// A file holding `notes` as JSON, each with `updated_at`.
    fn file_of(notes: &[(u64, &str, u64)]) -> Vec<ImportedNote> {
        let list: Vec<serde_json::Value> = notes
            .iter()
            .map(|(n, body, updated_at)| {
                serde_json::json!({
                    "id": id(*n), "title": "t", "body": body, "updated_at": updated_at
                })
            })
            .collect();
        parse_import(serde_json::to_string(&list).expect("json").as_bytes()).expect("reads")
    }

    #[test]
    fn an_import_never_reverts_a_newer_edit_nor_brings_a_delete_back_unsaid() {
        let mut fresh = || id(99);
        let here = |body: &str, updated_at: u64| {
            Note::new(id(1), 1).with_draft(
                NoteDraft::validated("t".into(), body.into(), vec![]).expect("valid"),
                updated_at,
            )
        };
        // The file's copy is older than the edit here: the edit stays.
        let older = plan_import(
            &[here("newer here", 5_000)],
            file_of(&[(1, "old", 4_000)]),
            9_000,
            &mut fresh,
        );
        assert_eq!((older.update.len(), older.older), (0, 1));
        assert!(
            older
                .summary()
                .contains("kept 1 note newer here than in the file"),
            "{}",
            older.summary()
        );
        // A copy without a date is never taken for newer.
        let undated =
            parse_import(format!(r#"[{{"id":"{}","title":"t","body":"x"}}]"#, id(1)).as_bytes())
                .expect("reads");
        assert_eq!(
            plan_import(&[here("here", 5)], undated, 9_000, &mut fresh).older,
            1
        );
        // The file's copy is newer: it is a normal edit.
        let newer = plan_import(
            &[here("stale here", 3_000)],
            file_of(&[(1, "newer in the file", 4_000)]),
            9_000,
            &mut fresh,
        );
        assert_eq!(
            newer.update,
            vec![(
                id(1),
                file_of(&[(1, "newer in the file", 0)])[0].draft.clone()
            )]
        );
        assert_eq!(newer.summary(), "Imported 0 notes, updated 1");
        // Deleted here after the file was made: left deleted, and said.
        let gone = here("text", 3_000).tombstone(6_000);
        let kept_deleted = plan_import(
            std::slice::from_ref(&gone),
            file_of(&[(1, "text", 3_000)]),
            9_000,
            &mut fresh,
        );
        assert!(kept_deleted.update.is_empty());
        assert_eq!(kept_deleted.deleted_here, 1);
        assert!(
            kept_deleted.summary().contains("left 1 note deleted here"),
            "{}",
            kept_deleted.summary()
        );
        // Edited in the file after the delete here: brought back, and said.
        let back = plan_import(
            &[gone],
            file_of(&[(1, "edited later", 7_000)]),
            9_000,
            &mut fresh,
        );
        assert_eq!((back.update.len(), back.restored), (1, 1));
        assert!(
            back.summary().contains("brought back 1 deleted note"),
            "{}",
            back.summary()
        );
    }

    #[test]
    fn a_file_repeating_an_id_is_read_with_its_latest_copy_and_says_so() {
        let mut fresh = || id(99);
        let plan = plan_import(
            &[],
            file_of(&[
                (1, "first", 10),
                (2, "other", 10),
                (1, "latest", 30),
                (1, "middle", 20),
            ]),
            100,
            &mut fresh,
        );
        let bodies: Vec<&str> = plan.create.iter().map(|n| n.body.as_str()).collect();
        assert_eq!(bodies, ["latest", "other"]);
        assert_eq!(plan.repeated, 2);
        assert!(
            plan.summary()
                .starts_with("Imported 2 notes; the file holds 2 more copies of an id"),
            "{}",
            plan.summary()
        );
    }

    #[test]
    fn a_utf8_byte_order_mark_is_accepted() {
        let json = "\u{feff}[{\"title\":\"bom\",\"body\":\"from an editor that writes one\"}]";
        let notes = parse_import(json.as_bytes()).expect("reads past the mark");
        assert_eq!(notes[0].draft.title, "bom");
        let md = parse_markdown("\u{feff}---\ntitle: \"front\"\n---\nbody", "file").expect("reads");
        assert_eq!(
            (md.draft.title.as_str(), md.draft.body.as_str()),
            ("front", "body")
        );
    }

    proptest! {
        /// Any notes survive both export formats unchanged.
        #[test]
        fn any_notes_round_trip_through_both_formats(
            notes in proptest::collection::vec(
                ("\\PC{0,20}", "(\\PC|\n){0,60}", proptest::collection::vec("[a-z]{1,5}", 0..3), any::<bool>()),
                0..6,
            ),
        ) {
            let notes: Vec<Note> = notes
                .into_iter()
                .enumerate()
                .map(|(i, (title, body, tags, pinned))| {
                    let draft = NoteDraft::validated(title, body, tags).expect("valid").with_pin(pinned);
                    Note::new(id(i as u64), 10).with_draft(draft, 20)
                })
                .collect();
            let json = parse_import(export_json(&notes).as_bytes()).expect("json reads back");
            same_content(&json, &notes);
            let zip = parse_import(&export_zip(&notes).expect("zip writes")).expect("zip reads back");
            same_content(&zip, &notes);
        }
    }
}
