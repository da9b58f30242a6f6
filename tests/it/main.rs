//! The one native integration-test binary (DESIGN §10): the store contract
//! suite against every store, the server functions over HTTP, and the
//! multi-client simulation (real driver and SyncService, injected network
//! faults, convergence and no-loss properties).

mod http;
mod kv_store;
mod simulation;
mod store_contract;
