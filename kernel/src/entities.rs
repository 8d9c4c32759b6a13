//! sea-orm entities: one module per table, declared once and used by the
//! services. The schema itself lives in the `trellis-migrations` crate.

pub mod account;
pub mod activity;
pub mod api_token;
pub mod audit_log;
pub mod consent;
pub mod contact;
pub mod contact_account;
pub mod contact_relationship;
pub mod custom_field;
pub mod custom_object;
pub mod deal;
pub mod deal_stage_history;
pub mod event;
pub mod job;
pub mod mfa_recovery_code;
pub mod object_record;
pub mod one_time_token;
pub mod operator;
pub mod outbox;
pub mod pipeline;
pub mod plugin_kv;
pub mod plugin_log;
pub mod plugin_package;
pub mod reseller;
pub mod role;
pub mod session;
pub mod signing_key;
pub mod stage;
pub mod team;
pub mod team_member;
pub mod tenant;
pub mod tenant_edition;
pub mod tenant_key;
pub mod tenant_plugin;
pub mod user;
