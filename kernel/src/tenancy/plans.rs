//! The plans Trellis sells and their limits. A tenant names its plan; the
//! limits are enforced where the counted thing is written (see
//! [`super::usage`]), counted in the database so they hold across kernel
//! processes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Starter,
    Professional,
    Enterprise,
    /// Negotiated terms: no limits enforced by the kernel.
    Custom,
}

/// A plan's limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct Limits {
    pub contacts: Option<i64>,
    pub users: Option<i64>,
    pub plugins: Option<i64>,
    pub api_requests_per_minute: Option<i64>,
    pub storage_bytes: Option<i64>,
}

const GIB: i64 = 1024 * 1024 * 1024;

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Starter => "starter",
            Plan::Professional => "professional",
            Plan::Enterprise => "enterprise",
            Plan::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<Plan> {
        Some(match s {
            "starter" => Plan::Starter,
            "professional" => Plan::Professional,
            "enterprise" => Plan::Enterprise,
            "custom" => Plan::Custom,
            _ => return None,
        })
    }

    pub fn limits(self) -> Limits {
        match self {
            Plan::Starter => Limits {
                contacts: Some(1_000),
                users: Some(3),
                plugins: Some(3),
                api_requests_per_minute: Some(120),
                storage_bytes: Some(GIB),
            },
            Plan::Professional => Limits {
                contacts: Some(10_000),
                users: Some(10),
                plugins: Some(10),
                api_requests_per_minute: Some(600),
                storage_bytes: Some(10 * GIB),
            },
            Plan::Enterprise => Limits {
                contacts: Some(100_000),
                users: None,
                plugins: None,
                api_requests_per_minute: Some(3_000),
                storage_bytes: Some(100 * GIB),
            },
            Plan::Custom => Limits::default(),
        }
    }
}
