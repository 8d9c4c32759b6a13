//! Identity: API tokens today; sessions, passwords and MFA arrive with the
//! identity issue and plug into the same [`crate::context::RequestContext`].

pub mod tokens;
