//! The WIT contracts this kernel runs plugins of, one module per version.
//!
//! [`latest`] is what the host is written against: its imports are
//! implemented in [`super::imports`] and the sandbox speaks its types. Each
//! older version is a shim in the manner of Zed's extension host: its
//! imports delegate to the latest ones and its exports are called with the
//! latest types converted down (and their answers converted up), so a
//! plugin built years ago keeps loading while the contract grows. A version
//! directory under `wit/` is frozen once released; a new version may only
//! add to the previous one, which is what keeps every shim a set of
//! conversions.

pub mod v0_1;

/// `trellis:plugin@0.2.0`.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/trellis-plugin@0.2.0",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use v0_2 as latest;

/// The contract versions this kernel runs, oldest first.
pub const SUPPORTED: &[&str] = &["0.1.0", "0.2.0"];

/// The newest contract version (what `trellis plugin new` and the SDK
/// build for).
pub const LATEST: &str = "0.2.0";
