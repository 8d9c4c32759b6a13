//! What keeps the UI safe in a browser: CSRF tokens on every form, and the
//! response headers (a strict Content-Security-Policy with no inline script
//! or style, no framing, no sniffing).

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie carrying a visitor's CSRF token before sign-in.
pub const VISITOR_COOKIE: &str = "trellis_csrf";

/// The CSRF token of a session: an HMAC of a fixed label under the
/// session's secret. Only a page that can read the HttpOnly session
/// cookie's value (none can) or was rendered for this session knows it; it
/// needs no storage, so it holds across kernel processes.
pub fn session_token(session_secret: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(session_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(b"trellis-csrf-v1");
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// A fresh random token for a visitor's CSRF cookie.
pub fn new_visitor_token() -> String {
    let bytes: [u8; 24] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The `Set-Cookie` value for a visitor's CSRF token.
pub fn visitor_cookie(token: &str, secure: bool) -> String {
    let mut c =
        format!("{VISITOR_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=7200");
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// The visitor's CSRF token from its cookie, if it has one.
pub fn visitor_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == VISITOR_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() >= 16)
}

/// `path` when it is a path of this site (`/contacts?sort=name`), else
/// `None`. Only printable URL characters pass: a browser strips tabs and
/// newlines and reads `\\` as `/`, so `/\t/evil.example` or `/\\evil` would
/// leave the site.
pub fn local_path(path: &str) -> Option<&str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%/?#".contains(c);
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= 2048
        && path.chars().all(allowed);
    ok.then_some(path)
}

/// Compares two tokens in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    if a.is_empty() || a.len() != b.len() {
        return false;
    }
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The headers every UI response carries. Scripts and styles come only from
/// this origin (no inline code, so an injected tag cannot run); images may
/// be inline SVG data (the MFA QR code); forms post only here; no site may
/// frame the UI (clickjacking).
pub fn add_headers(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_pass() {
        for ok in [
            "/",
            "/contacts?sort=-name&filter=custom.tier:eq:gold",
            "/deals/1#x",
        ] {
            assert_eq!(local_path(ok), Some(ok));
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/%09/x\n",
            "https://evil.example",
            "javascript:alert(1)",
            "contacts",
            "/a b",
            "",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }
}
