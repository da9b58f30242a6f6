//! The Couchbase-shaped store: the sync algorithm written once over a small
//! KV port with Couchbase's semantics, and an in-memory fake of that port
//! that injects faults. Runtime-free like the rest of [`crate::store`]; the
//! adapter over the real SDK lives in `server::couchbase` (ssr only).
//!
//! - [`port`]: the [`KvPort`] trait and its error kinds;
//! - [`model`]: the documents and the key layout;
//! - [`algorithm`]: [`KvSyncStore`], lease / log slots / committed watermark;
//! - [`fake`]: [`FakeCluster`] and its fault-injecting nodes;
//! - [`accounts`]: users and sessions over the same port.
//!
//! `docs/design-notes.md` ("The KV store") argues why the feed has no gaps.

pub mod accounts;
pub mod algorithm;
pub mod fake;
pub mod model;
pub mod port;

pub use algorithm::{KvConfig, KvSyncStore};
pub use fake::{FakeCluster, FakeKv, Fault, FaultRates};
pub use port::{Cas, Expiry, KvError, KvPort, Versioned, MAX_KEY_BYTES};
