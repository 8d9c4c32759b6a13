//! Who works in a tenant: users, their roles, and teams.

pub mod roles;
pub mod teams;
pub mod users;
