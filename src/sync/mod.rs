//! The pure sync core: protocol types, the outbox with keystroke coalescing,
//! and (as it grows) the merge policy and the client state machine.
//!
//! Promise: nothing in this module does I/O, reads a clock or draws random
//! numbers. Time and randomness come in as arguments, effects go out as data,
//! so every rule here is tested natively and deterministically.

pub mod hlc;
pub mod merge;
pub mod outbox;
pub mod protocol;

pub use hlc::Hlc;
pub use merge::{merge_text, resolve, Resolution, Strategy, TextMerge, UnknownStrategy, Version};
pub use outbox::{coalesce, Edit, PendingChange, PendingOp};
pub use protocol::PROTOCOL_VERSION;
