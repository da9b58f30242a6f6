//! The pure sync core: protocol types, the outbox with keystroke coalescing,
//! the merge policy, the replica's rules, the client state machine, and
//! what a page restores from its own copies ([`recovery`]).
//!
//! Promise: nothing in this module does I/O, reads a clock or draws random
//! numbers. Time and randomness come in as arguments, effects go out as data,
//! so every rule here is tested natively and deterministically.

pub mod apply;
pub mod driver;
pub mod engine;
pub mod hlc;
pub mod memory_replica;
pub mod merge;
pub mod outbox;
pub mod protocol;
pub mod recovery;
pub mod replica;

pub use apply::{decide, Accepted, Decision, Outcome, StoredNote};
pub use hlc::Hlc;
pub use merge::{merge_text, resolve, Resolution, Strategy, TextMerge, UnknownStrategy, Version};
pub use outbox::{coalesce, Edit, PendingChange, PendingOp};
pub use protocol::PROTOCOL_VERSION;
