//! The CRM core's domain services, one module per concept. Handlers, the CLI
//! and plugins all reach data through these.

pub mod accounts;
pub mod activities;
pub mod bulk;
pub mod cards;
pub mod checks;
pub mod contacts;
pub mod custom_fields;
pub mod deals;
pub mod duplicates;
pub mod export;
pub mod field_definitions;
pub mod links;
pub mod listing;
pub mod merge;
pub mod objects;
pub mod pipelines;
pub mod privacy;
pub mod records;
pub mod search;
pub mod sensitive;
pub mod tenants;
pub mod timeline;
pub mod trash;
