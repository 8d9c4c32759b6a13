//! Version 0.2.0 of the `tidy` plugin, built beside 0.1.0 so the tests can
//! upgrade a tenant from one to the other: the same hook, and a manifest
//! asking for one capability more.
include!("../../tidy/src/hook.rs");

trellis_plugin_sdk::register_plugin!(Tidy, id = "tidy", version = "0.2.0");
