//! The versioned wire protocol between a replica and the server.
//!
//! History of `PROTOCOL_VERSION` (a change to any type below bumps it):
//! - 1: first version: notes with title, body, tags and tombstones.

/// The version of the protocol this build speaks. The server answers any
/// other version with a clear error instead of guessing.
pub const PROTOCOL_VERSION: u32 = 1;
