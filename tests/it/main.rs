//! The one native integration-test binary (DESIGN §10): the store contract
//! suite against every store, and the server functions over HTTP.

mod http;
mod simulation;
mod store_contract;
