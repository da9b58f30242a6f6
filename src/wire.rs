//! Reading tagged JSON enums without serde's buffered `Content`.
//!
//! The protocol, the stored outbox and the messages between tabs and workers
//! write enums with their tag inside the object (`{"kind": "upsert", ...}`).
//! serde reads such an internally tagged enum by first copying the whole
//! value into its own `Content` tree, since the tag may come after the other
//! fields, then reading the variant from that copy. Its code for that was
//! 66 KB of the browser's 1.16 MB wasm, 14 KB brotli (docs/performance.md,
//! The bundle), and the copy is made for every message and pulled page.
//!
//! So each such enum keeps its derived `Serialize` (the JSON is unchanged,
//! for servers, stored records and other builds' tabs alike) and reads
//! through a flat struct instead: the tag as a plain enum of names, and every
//! variant's fields as options. `TryFrom` then builds the variant, and a
//! field the variant needs but the object lacks is a [`WireError`], as
//! serde's own "missing field" was. Fields of other variants are ignored, as
//! unknown fields always were.

/// A tagged object that lacks a field its variant needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing field `{field}` of `{variant}`")]
pub struct WireError {
    pub variant: &'static str,
    pub field: &'static str,
}

/// The value of `field`, which `variant` needs.
pub fn needed<T>(
    value: Option<T>,
    variant: &'static str,
    field: &'static str,
) -> Result<T, WireError> {
    value.ok_or(WireError { variant, field })
}
