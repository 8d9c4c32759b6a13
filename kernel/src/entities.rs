//! sea-orm entities: one module per table, declared once and used by the
//! services. The schema itself lives in the `trellis-migrations` crate.

pub mod account;
pub mod activity;
pub mod api_token;
pub mod audit_log;
pub mod contact;
pub mod contact_account;
pub mod contact_relationship;
pub mod custom_field;
pub mod deal;
pub mod deal_stage_history;
pub mod pipeline;
pub mod stage;
pub mod tenant;
pub mod user;
