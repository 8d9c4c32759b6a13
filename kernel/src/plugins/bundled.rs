//! Plugins built into the kernel (from `plugins/`, by `kernel/build.rs`),
//! installed on demand when an edition needs them, so an edition works on a
//! fresh database without an operator uploading anything.

/// A plugin shipped with the kernel.
pub struct Bundled {
    pub id: &'static str,
    /// Its `plugin.toml`.
    pub manifest: &'static str,
    /// Its component.
    pub component: &'static [u8],
}

/// The bundled plugins.
pub const BUNDLED: &[Bundled] = &[Bundled {
    id: "real-estate",
    manifest: include_str!("../../../plugins/real-estate/plugin.toml"),
    component: include_bytes!(concat!(env!("TRELLIS_PLUGINS_DIR"), "/real_estate.wasm")),
}];

/// The bundled plugin `id`, if there is one.
pub fn find(id: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.id == id)
}
