//! Pure domain types shared by the server and the browser: notes, their ids and
//! revisions, and the limits every note must respect.
//!
//! Everything here parses and never trusts: a value of these types is valid by
//! construction, so the layers above check input once, at their boundary.

mod account;
mod ids;
mod limits;
mod note;
mod user;

pub use account::{AccountInputError, Password, UserName};
pub use ids::{ClientId, MutationId, NoteId, Revision};
pub use limits::{Limits, LIMITS};
pub use note::{newest_first, Note, NoteDraft};
pub use user::{InvalidUserId, UserId};

use thiserror::Error;

/// Why a value from outside (a form, the network, IndexedDB) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error(
        "{kind} must be a lowercase UUIDv7 like 0190f1c2-7a4b-7c3d-8e9f-0a1b2c3d4e5f, got {got:?}"
    )]
    BadId { kind: &'static str, got: String },
    #[error("the title is {len} bytes; the limit is {max} bytes")]
    TitleTooLong { len: usize, max: usize },
    #[error("the note body is {len} bytes; the limit is {max} bytes (1 MiB)")]
    BodyTooLarge { len: usize, max: usize },
    #[error("a note may have at most {max} tags, this one has {count}")]
    TooManyTags { count: usize, max: usize },
    #[error("tag {tag:?} is invalid: tags are 1 to {max} characters, without control characters")]
    BadTag { tag: String, max: usize },
    #[error("{field} contains a control character that is not allowed")]
    ControlCharacter { field: &'static str },
    #[error("{field} is {got}, beyond the largest value every client can read back ({max})")]
    OutOfRange {
        field: &'static str,
        got: u64,
        max: u64,
    },
}
