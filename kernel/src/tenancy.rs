//! Tenancy above the CRM: resellers owning tenants, plans and their limits,
//! the usage counters behind them, and the operators (platform and reseller
//! administrators) who manage tenants from outside.

pub mod operators;
pub mod plans;
pub mod storage;
pub mod support;
pub mod usage;
