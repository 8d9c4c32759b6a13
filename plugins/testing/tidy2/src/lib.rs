//! A validate-and-normalise hook (the benchmark hooks up to four copies).
include!("../../tidy/src/hook.rs");

trellis_plugin_sdk::register_plugin!(Tidy);
