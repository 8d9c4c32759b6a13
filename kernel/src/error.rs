//! The kernel's error type, with stable codes, and its one mapping to HTTP.
//!
//! Every failure a client can see has a `snake_case` code that does not change
//! between releases, so clients can match on it. The HTTP shape is RFC 9457
//! `application/problem+json`; validation failures add the failing field
//! paths in `errors`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One failing field of a request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldError {
    /// Path of the field in the request body, e.g. `custom.score` or `items[3].email`.
    pub field: String,
    /// Stable machine-readable reason, e.g. `required`, `invalid_type`, `too_large`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The same error, nested under a prefix (`items[3]`, `custom`).
    pub fn nested(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("authentication required")]
    Unauthenticated,
    #[error("the email or password is wrong")]
    InvalidCredentials,
    #[error("{0}")]
    MfaRequired(&'static str),
    #[error("the session has expired; sign in again")]
    SessionExpired,
    #[error("too many failed attempts; try again in {retry_after} seconds")]
    TooManyAttempts { retry_after: u64 },
    #[error(
        "the plan's limit of {max} {limit} per minute is reached; retry in {retry_after} seconds"
    )]
    RateLimited {
        limit: &'static str,
        max: i64,
        retry_after: u64,
    },
    #[error("the plan's limit on {limit} ({max}) is reached; nothing was written")]
    PlanLimit { limit: &'static str, max: i64 },
    #[error("this tenant is suspended")]
    TenantSuspended,
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("permission denied: {0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the record was changed by someone else (current version {current})")]
    VersionConflict { current: i64 },
    #[error("the record was changed by someone else (current version {current})")]
    PreconditionFailed { current: i64 },
    #[error("this write needs the record's version: send If-Match or a `version` field")]
    PreconditionRequired,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A create refused under the tenant's `block` duplicate policy.
    #[error("this {object} very likely exists already ({}); merge or change it instead", .candidates.len())]
    Duplicate {
        object: &'static str,
        candidates: Vec<crate::crm::duplicates::Candidate>,
    },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type: send application/json")]
    UnsupportedMediaType,
    #[error("validation failed: {}", describe_fields(.0))]
    Validation(Vec<FieldError>),
    #[error("bulk operation failed; nothing was written: {}", describe_items(.0))]
    Bulk(Vec<BulkItemError>),
    /// A plugin a write depends on (a before-write hook) failed; nothing
    /// was written.
    #[error("{0}; nothing was written")]
    PluginFailed(String),
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A failing item of a bulk request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BulkItemError {
    /// Position of the item in the request's `items`.
    pub index: usize,
    /// Stable code of the failure.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Failing fields of the item, when the failure is a validation error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

fn describe_fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_items(items: &[BulkItemError]) -> String {
    let shown: Vec<String> = items
        .iter()
        .take(5)
        .map(|i| {
            if i.errors.is_empty() {
                format!("item {}: {}", i.index, i.message)
            } else {
                format!("item {}: {}", i.index, describe_fields(&i.errors))
            }
        })
        .collect();
    let more = items.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} (and {more} more)", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A validation failure of a single field.
    pub fn field(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, code, message)])
    }

    /// The failure as one line for a person: a validation's field messages
    /// joined, else the error's own message (pages show it above a form).
    pub fn summary(&self) -> String {
        match self {
            Error::Validation(errors) => errors
                .iter()
                .map(|f| f.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::MalformedJson(_) => "malformed_json",
            Error::InvalidCursor => "invalid_cursor",
            Error::Unauthenticated => "unauthenticated",
            Error::InvalidCredentials => "invalid_credentials",
            Error::MfaRequired(_) => "mfa_required",
            Error::SessionExpired => "session_expired",
            Error::TooManyAttempts { .. } => "too_many_attempts",
            Error::RateLimited { .. } => "rate_limited",
            Error::PlanLimit { .. } => "plan_limit_reached",
            Error::TenantSuspended => "tenant_suspended",
            Error::InvalidToken(_) => "invalid_token",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::RouteNotFound => "route_not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::VersionConflict { .. } => "version_conflict",
            Error::PreconditionFailed { .. } => "precondition_failed",
            Error::PreconditionRequired => "precondition_required",
            Error::Conflict { code, .. } => code,
            Error::Duplicate { .. } => "duplicate",
            Error::PayloadTooLarge => "payload_too_large",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::Validation(_) => "validation_failed",
            Error::Bulk(_) => "bulk_failed",
            Error::PluginFailed(_) => "plugin_failed",
            Error::Database(_) | Error::Internal(_) => "internal_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) | Error::MalformedJson(_) | Error::InvalidCursor => {
                StatusCode::BAD_REQUEST
            }
            Error::Unauthenticated
            | Error::InvalidCredentials
            | Error::MfaRequired(_)
            | Error::SessionExpired => StatusCode::UNAUTHORIZED,
            Error::TooManyAttempts { .. } | Error::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::PlanLimit { .. } => StatusCode::PAYMENT_REQUIRED,
            Error::TenantSuspended => StatusCode::FORBIDDEN,
            Error::InvalidToken(_) => StatusCode::BAD_REQUEST,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) | Error::RouteNotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::VersionConflict { .. } | Error::Conflict { .. } | Error::Duplicate { .. } => {
                StatusCode::CONFLICT
            }
            Error::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Error::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Validation(_) | Error::Bulk(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::PluginFailed(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The RFC 9457 problem document every error response carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
    /// Failing fields, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Failing items, for bulk requests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<BulkItemError>,
    /// The record's current version, for concurrency conflicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
    /// The plan limit or rate limit that was hit (`contacts`, `users`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The records a refused create very likely duplicates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<crate::crm::duplicates::Candidate>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: String) -> Self {
        Problem {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors: Vec::new(),
            items: Vec::new(),
            current_version: None,
            limit: None,
            candidates: Vec::new(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            body,
        )
            .into_response()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // The cause stays in the log; the client gets an opaque message.
            tracing::error!(error = ?self, "request failed");
        }
        let detail = match &self {
            Error::Database(_) | Error::Internal(_) => "an internal error occurred".to_owned(),
            other => other.to_string(),
        };
        let mut problem = Problem::new(status, self.code(), detail);
        let retry_after = match &self {
            Error::TooManyAttempts { retry_after } | Error::RateLimited { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        };
        let www_authenticate = status == StatusCode::UNAUTHORIZED;
        match self {
            Error::RateLimited { limit, .. } | Error::PlanLimit { limit, .. } => {
                problem.limit = Some(limit.to_owned())
            }
            Error::Validation(errors) => problem.errors = errors,
            Error::Bulk(items) => problem.items = items,
            Error::Duplicate { candidates, .. } => problem.candidates = candidates,
            Error::VersionConflict { current } | Error::PreconditionFailed { current } => {
                problem.current_version = Some(current)
            }
            _ => {}
        }
        let mut response = problem.into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if www_authenticate {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
