//! Request extractors with errors in the kernel's problem format: JSON bodies
//! (400 malformed, 413 too large, 415 wrong type, 422 naming the field) and
//! the expected version of a write (If-Match or the body's `version`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_TYPE, IF_MATCH};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crm::records::from_json;
use crate::error::{Error, Result};

/// A JSON request body.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json") || m.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest(r.body_text())
            }
        })?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::MalformedJson(e.to_string()))?;
        if let Some(path) = nul_path(&value, String::new()) {
            // PostgreSQL cannot store NUL in text or jsonb; SQLite could, and
            // the two databases must accept the same data.
            return Err(Error::field(
                path,
                "invalid_value",
                "text may not contain NUL characters",
            ));
        }
        Ok(JsonBody(from_json(value)?))
    }
}

/// The path of the first string or key holding a NUL character.
fn nul_path(value: &Value, path: String) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(p)
            } else {
                nul_path(v, p)
            }
        }),
        _ => None,
    }
}

/// The version a write expects: from `If-Match` (an ETag `"N"`) or from a
/// `version` member of the JSON body, which is removed from the body. The
/// flag says whether it came from If-Match (412 on mismatch) or the body (409).
pub fn expected_version(headers: &HeaderMap, body: Option<&mut Value>) -> Result<(i64, bool)> {
    let from_body = body
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove("version"));
    if let Some(v) = from_body {
        let n = v.as_i64().ok_or_else(|| {
            Error::field(
                "version",
                "invalid_type",
                "expected the integer version you read",
            )
        })?;
        return Ok((n, false));
    }
    match if_match(headers)? {
        Some(n) => Ok((n, true)),
        None => Err(Error::PreconditionRequired),
    }
}

/// The version named by an `If-Match` header, if one was sent.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>> {
    let Some(raw) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or("").trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<i64>().map(Some).map_err(|_| {
        Error::BadRequest("If-Match must be the ETag of the record, e.g. \"3\"".to_owned())
    })
}

/// The ETag header value of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}
