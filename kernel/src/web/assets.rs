//! Static files: each theme's stylesheet (design tokens, the default base
//! styles, the theme's own), logo and favicon, and the UI's one script.
//! URLs carry the theme's version, so browsers may keep them for a year.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// The UI's script: drag-and-drop on the pipeline board and the idle
/// warning. Everything else works without it.
const SCRIPT: &str = include_str!("app.js");

const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

pub async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        SCRIPT,
    )
        .into_response()
}

/// `style.css`, `logo` or `favicon` of a theme.
pub async fn theme_file(
    State(state): State<AppState>,
    Path((theme, file)): Path<(String, String)>,
) -> Response {
    if !state.themes.contains(&theme) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let t = state.themes.get(Some(&theme));
    match t.asset(&file) {
        Some(a) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(CACHE_FOREVER),
                ),
            ],
            a.bytes.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
