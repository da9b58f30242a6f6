//! Reading a request body before the server function decodes it, with no
//! allocation that grows with the body: what the boundary needs to refuse a
//! request cheaply ([`super::boundary`]).
//!
//! - [`protocol_version`] finds `req.protocol` without building the JSON
//!   tree (a `serde_json::Value` of an 8 MiB array of zeros is over 100 MB);
//! - [`check_push`] walks a push request as the decoder will, checking that
//!   the decoder will accept it and that it breaks no whole-request limit:
//!   the number of changes, and at most [`MAX_WIRE_TAGS`] tags per note (the
//!   decoder would build every tag as its own string: an 8 MiB array of
//!   empty tags decodes to 64 MB). Strings are checked to be strings and
//!   skipped, never copied; ids are parsed as the decoder parses them. So a
//!   push that passes is decoded once and at most one body's worth of text
//!   is built from it, and one that fails costs nothing beyond its bytes.
//!
//! The shapes here mirror the wire types of `crate::sync::protocol`; a test
//! decodes every case of the boundary's fuzz corpus both ways and requires
//! the same verdict, so the two cannot drift apart unnoticed.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::domain::{ClientId, MutationId, NoteId, Revision, LIMITS};
use crate::sync::hlc::Hlc;

/// Most tags one note of a push may carry on the wire: beyond it the whole
/// request is refused. Four times the limit a stored note has, as a note's
/// tags are checked after trimming and removing duplicates, and a note over
/// the limit but under this is refused alone, with the domain's message.
pub const MAX_WIRE_TAGS: usize = 4 * LIMITS.max_tags;

/// `req.protocol` of a server function's JSON body, if the body is JSON
/// with an unsigned number there.
pub fn protocol_version(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Envelope {
        req: Option<Versioned>,
    }
    #[derive(Deserialize)]
    struct Versioned {
        protocol: Option<u64>,
    }
    serde_json::from_slice::<Envelope>(body).ok()?.req?.protocol
}

/// Why a push body was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushShapeError {
    /// More changes than a push may carry.
    TooManyChanges(usize),
    /// A note with more tags than [`MAX_WIRE_TAGS`].
    TooManyTags,
    /// The body is not a push request; the decoder's message.
    Malformed(String),
}

/// Checks a push body (`{"req": PushRequest}`) as described in the module
/// documentation.
pub fn check_push(body: &[u8]) -> Result<(), PushShapeError> {
    match serde_json::from_slice::<PushEnvelope>(body) {
        Ok(PushEnvelope {
            req: PushShape {
                changes: Changes(n),
                ..
            },
        }) if n > LIMITS.max_batch_changes => Err(PushShapeError::TooManyChanges(n)),
        Ok(_) => Ok(()),
        Err(e) => {
            let message = e.to_string();
            if message.starts_with(TOO_MANY_CHANGES) {
                Err(PushShapeError::TooManyChanges(LIMITS.max_batch_changes + 1))
            } else if message.starts_with(TOO_MANY_TAGS) {
                Err(PushShapeError::TooManyTags)
            } else {
                Err(PushShapeError::Malformed(message))
            }
        }
    }
}

const TOO_MANY_CHANGES: &str = "too many changes";
const TOO_MANY_TAGS: &str = "too many tags";

#[derive(Deserialize)]
struct PushEnvelope {
    req: PushShape,
}

/// `PushRequest`, with the changes counted as they are checked.
#[derive(Deserialize)]
struct PushShape {
    #[serde(rename = "protocol")]
    _protocol: u32,
    #[serde(rename = "client_id")]
    _client_id: ClientId,
    changes: Changes,
}

/// How many changes a push carries, each checked and dropped in turn.
struct Changes(usize);

impl<'de> Deserialize<'de> for Changes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Counting;
        impl<'de> Visitor<'de> for Counting {
            type Value = Changes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence of changes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Changes, A::Error> {
                let mut n = 0usize;
                while seq.next_element::<ChangeShape>()?.is_some() {
                    n += 1;
                    if n == LIMITS.max_batch_changes {
                        break;
                    }
                }
                // Past the limit the rest is only counted, for the message.
                while seq.next_element::<de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Changes(n))
            }
        }
        d.deserialize_seq(Counting)
    }
}

/// `Change`: every field the decoder requires, of the type it requires.
#[derive(Deserialize)]
struct ChangeShape {
    #[serde(rename = "mutation_id")]
    _mutation_id: MutationId,
    #[serde(rename = "note_id")]
    _note_id: NoteId,
    #[serde(rename = "base_rev")]
    _base_rev: Revision,
    #[serde(rename = "base")]
    _base: Option<DraftShape>,
    #[serde(rename = "op")]
    _op: OpShape,
    #[serde(rename = "hlc")]
    _hlc: Hlc,
    #[serde(rename = "created_at")]
    _created_at: u64,
}

/// `NoteDraft`.
#[derive(Deserialize)]
struct DraftShape {
    #[serde(rename = "title")]
    _title: Text,
    #[serde(rename = "body")]
    _body: Text,
    #[serde(rename = "tags")]
    _tags: Tags,
    #[serde(default, rename = "pinned")]
    _pinned: bool,
}

/// `ChangeOp` as its wire reader takes it: a tag, and an upsert's draft
/// fields beside it.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum OpKind {
    Upsert,
    Delete,
}

struct OpShape;

impl<'de> Deserialize<'de> for OpShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            kind: OpKind,
            title: Option<Text>,
            body: Option<Text>,
            tags: Option<Tags>,
            #[serde(default, rename = "pinned")]
            _pinned: bool,
        }
        let wire = Wire::deserialize(d)?;
        if matches!(wire.kind, OpKind::Upsert) {
            for (present, field) in [
                (wire.title.is_some(), "title"),
                (wire.body.is_some(), "body"),
                (wire.tags.is_some(), "tags"),
            ] {
                if !present {
                    return Err(de::Error::custom(format_args!(
                        "missing field `{field}` of `upsert`"
                    )));
                }
            }
        }
        Ok(OpShape)
    }
}

/// A JSON string, checked and not kept.
struct Text;

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Str;
        impl Visitor<'_> for Str {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Text, E> {
                Ok(Text)
            }
        }
        d.deserialize_str(Str)
    }
}

/// A list of tags: strings, at most [`MAX_WIRE_TAGS`] of them.
struct Tags;

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Counting;
        impl<'de> Visitor<'de> for Counting {
            type Value = Tags;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence of tags")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tags, A::Error> {
                let mut n = 0usize;
                while seq.next_element::<Text>()?.is_some() {
                    n += 1;
                    if n > MAX_WIRE_TAGS {
                        return Err(de::Error::custom(TOO_MANY_TAGS));
                    }
                }
                Ok(Tags)
            }
        }
        d.deserialize_seq(Counting)
    }
}
