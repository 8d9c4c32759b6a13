//! The HTTP API's integration suite: every test drives the real router
//! against a real database (see `support`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod activities;
mod audit;
mod auth;
mod authorization;
mod browser;
mod bulk_actions;
mod cli;
mod contacts;
mod custom_fields;
mod deals;
mod duplicates;
mod editions;
mod errors;
mod export;
mod imports;
mod lists;
mod merges;
mod mls;
mod objects;
mod openapi;
mod platform;
mod plugin_units;
mod plugins;
mod privacy;
mod real_estate;
mod search;
mod seed;
mod sensitive;
mod support;
mod tenancy;
mod web;
