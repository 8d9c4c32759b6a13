//! Outbound HTTP for plugins: only to hosts the tenant granted from the
//! manifest's allow-list, with a timeout and a cap on the response size.
//! Redirects are not followed (a redirect could lead off the allow-list);
//! the plugin sees the 3xx and may follow it with a new, re-checked call.

use std::sync::OnceLock;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::plugins::imports::CallEnv;
use crate::plugins::sandbox::{HostError, HttpResponse, OutboundRequest};

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Largest response body handed to a plugin.
const MAX_BODY: usize = 8 << 20;

fn client() -> &'static Client<Https, Full<Bytes>> {
    static CLIENT: OnceLock<Client<Https, Full<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Client::builder(TokioExecutor::new()).build(https)
    })
}

/// The allow-list name of a URL's authority: `host`, or `host:port` when
/// the port is not the scheme's default.
fn allow_list_name(uri: &hyper::Uri) -> Option<String> {
    let host = uri.host()?.to_ascii_lowercase();
    let default = match uri.scheme_str()? {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    Some(match uri.port_u16() {
        Some(p) if p != default => format!("{host}:{p}"),
        _ => host,
    })
}

/// Performs a plugin's request if its host was granted.
pub async fn fetch(env: &CallEnv, req: OutboundRequest) -> Result<HttpResponse, HostError> {
    let uri: hyper::Uri = req
        .url
        .parse()
        .map_err(|_| HostError::Failed(format!("`{}` is not a URL", req.url)))?;
    let Some(name) = allow_list_name(&uri) else {
        return Err(HostError::Failed(
            "only http:// and https:// URLs with a host can be fetched".to_owned(),
        ));
    };
    if !env.grants.allows_host(&name) {
        return Err(env
            .denied(
                &format!("http:{name}"),
                format!("the plugin may not reach {name}: it is not on its granted allow-list"),
            )
            .await);
    }
    let method = hyper::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| HostError::Failed(format!("`{}` is not an HTTP method", req.method)))?;
    let mut builder = hyper::Request::builder().method(method).uri(uri);
    for (k, v) in &req.headers {
        if k.eq_ignore_ascii_case("host") {
            continue;
        }
        builder = builder.header(k.as_str(), v.as_str());
    }
    let request = builder
        .body(Full::new(Bytes::from(req.body)))
        .map_err(|e| HostError::Failed(format!("invalid request: {e}")))?;
    let response = tokio::time::timeout(env.http_timeout, client().request(request))
        .await
        .map_err(|_| HostError::Failed(format!("{name} did not answer in time")))?
        .map_err(|e| HostError::Failed(format!("request to {name} failed: {e}")))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let body = tokio::time::timeout(
        env.http_timeout,
        Limited::new(response.into_body(), MAX_BODY).collect(),
    )
    .await
    .map_err(|_| HostError::Failed(format!("{name} did not send its body in time")))?
    .map_err(|e| HostError::Limit(format!("response body from {name}: {e}")))?
    .to_bytes()
    .to_vec();
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_names_carry_only_non_default_ports() {
        let name = |u: &str| allow_list_name(&u.parse().unwrap());
        assert_eq!(
            name("https://API.example.com/x"),
            Some("api.example.com".to_owned())
        );
        assert_eq!(
            name("http://example.com:80/"),
            Some("example.com".to_owned())
        );
        assert_eq!(
            name("http://127.0.0.1:8081/a"),
            Some("127.0.0.1:8081".to_owned())
        );
        assert_eq!(name("ftp://example.com/"), None);
        assert_eq!(name("/relative"), None);
    }
}
