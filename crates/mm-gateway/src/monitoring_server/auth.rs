//! Access control: an optional bearer token.
//!
//! With a token configured (`HttpToken`, `--http-token`, or `MM_GATEWAY_HTTP_TOKEN`), every data
//! endpoint requires it, either as `Authorization: Bearer TOKEN` (scrapers, `mm top`) or as the
//! `mm_token` cookie, which the dashboard gets by opening `/?token=TOKEN` once (browsers cannot
//! put headers on server-sent event streams). The comparison takes the same time wherever the
//! first difference is. Without a token, the server relies on listening on loopback only.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::ServerState;

/// The cookie the dashboard keeps the token in.
pub(crate) const COOKIE: &str = "mm_token";

/// Whether `offered` is the token (constant time in the token's content).
pub(crate) fn token_matches(expected: &str, offered: &str) -> bool {
    expected.as_bytes().ct_eq(offered.as_bytes()).into()
}

/// The token a request offers, from its `Authorization` header or its cookie.
fn offered_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    {
        return value.strip_prefix("Bearer ").map(str::trim);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| {
            cookie
                .trim()
                .strip_prefix(COOKIE)
                .and_then(|rest| rest.strip_prefix('='))
        })
}

/// Whether the request may see data.
pub(crate) fn authorized(state: &ServerState, headers: &HeaderMap) -> bool {
    match &state.token {
        None => true,
        Some(token) => {
            offered_token(headers).is_some_and(|offered| token_matches(token.expose(), offered))
        }
    }
}

/// Middleware: 401 unless the request carries the token (when one is configured).
pub(crate) async fn require_token(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    if authorized(&state, request.headers()) {
        return next.run(request).await;
    }
    unauthorized()
}

/// 401 with a hint (never the token).
pub(crate) fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Bearer realm=\"mm-gateway\""),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::Json(serde_json::json!({
            "error": "this gateway's monitoring requires a token: send `Authorization: Bearer TOKEN`, or open /?token=TOKEN in the browser"
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn matches_only_the_exact_token() {
        assert!(token_matches("abc123", "abc123"));
        assert!(!token_matches("abc123", "abc124"));
        assert!(!token_matches("abc123", "abc1234"));
        assert!(!token_matches("abc123", ""));
    }

    #[test]
    fn offered_by_header_or_cookie() {
        let mut headers = HeaderMap::new();
        assert_eq!(offered_token(&headers), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; mm_token=xyz; b=2"),
        );
        assert_eq!(offered_token(&headers), Some("xyz"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok"),
        );
        assert_eq!(offered_token(&headers), Some("tok"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic tok"));
        assert_eq!(offered_token(&headers), None);
    }
}
