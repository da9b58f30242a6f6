//! The one native integration-test binary (DESIGN §10): the store contract
//! suite against every store, the server functions over HTTP, the
//! multi-client simulation (real driver and SyncService, injected network
//! faults, convergence and no-loss properties), the KV store's fault and
//! concurrency suites over its fake, and the same suites against a live
//! Couchbase cluster (ignored unless one is configured).

mod client;
mod couchbase_live;
mod driver;
mod fuzz;
mod http;
mod kv_store;
mod pokes;
mod security;
mod simulation;
mod store_contract;
