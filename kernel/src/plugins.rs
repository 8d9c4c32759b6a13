//! The plugin platform: WebAssembly components (the `trellis:plugin` WIT
//! contract in `wit/`) run in a wasmtime sandbox with hard limits, reaching
//! only what their manifest asks for and the tenant's admin granted.
//!
//! - [`manifest`]: `plugin.toml`, read before any code runs.
//! - [`contract`]: the WIT versions this kernel runs, older ones as shims.
//! - [`engine`]: the engine, its epoch ticker, the compiled-component cache.
//! - [`sandbox`]: one invocation in a fresh store with its limits.
//! - [`imports`], [`outbound`]: the host functions, checked on every call.
//! - [`grants`]: capabilities granted → the policy record calls run under.
//! - [`runtime`]: the process's host: enabled plugins, invoke, breaker.
//! - [`hooks`]: before-write and after-write hooks on records.
//! - [`registry`]: installing packages and enabling them per tenant.
//! - [`secrets`]: `writeOnly` configuration values, sealed at rest.

pub mod bundled;
pub mod contract;
pub mod engine;
pub mod grants;
pub mod hooks;
pub mod imports;
pub mod manifest;
pub mod outbound;
pub mod registry;
pub mod runtime;
pub mod sandbox;
pub mod secrets;

pub use runtime::Runtime;
