//! The dashboard: one page and its script and style, embedded in the binary (no CDN, works
//! offline). The page holds no data; it reads `/api/live`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ServerState;
use super::auth::{COOKIE, token_matches, unauthorized};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

/// The page may load only what the gateway serves.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'";

/// Query of `/`.
#[derive(Debug, Deserialize)]
pub(crate) struct IndexParams {
    token: Option<String>,
}

/// `GET /` (and `/?token=TOKEN`, which keeps the token in an HttpOnly cookie and redirects to
/// `/`, so it does not stay in the address bar).
pub(crate) async fn index(
    State(state): State<Arc<ServerState>>,
    Query(params): Query<IndexParams>,
) -> Response {
    if let Some(offered) = params.token {
        return match &state.token {
            Some(token) if token_matches(token.expose(), &offered) => (
                StatusCode::SEE_OTHER,
                [
                    (
                        header::SET_COOKIE,
                        format!("{COOKIE}={offered}; HttpOnly; SameSite=Strict; Path=/"),
                    ),
                    (header::LOCATION, "/".to_owned()),
                    (header::CACHE_CONTROL, "no-store".to_owned()),
                ],
            )
                .into_response(),
            Some(_) => unauthorized(),
            None => (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response(),
        };
    }
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /dashboard.js`.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard.css`.
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
