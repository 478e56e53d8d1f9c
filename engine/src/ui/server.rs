//! The HTTP server: one thread of its own per address, running a
//! current-thread tokio runtime with axum's router, until the process exits.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use axum::extract::{Path, RawQuery};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{api, page, prometheus, registry, UiError};
use crate::query::lock;

/// The servers of this process: (asked-for address, bound address).
fn servers() -> &'static Mutex<Vec<(SocketAddr, SocketAddr)>> {
    static SERVERS: OnceLock<Mutex<Vec<(SocketAddr, SocketAddr)>>> = OnceLock::new();
    SERVERS.get_or_init(|| Mutex::new(Vec::new()))
}

/// The address a server listens on for `addr`, starting one if none does.
pub(super) fn ensure_running(addr: SocketAddr) -> Result<SocketAddr, UiError> {
    let mut running = lock(servers());
    if let Some((_, bound)) = running
        .iter()
        .find(|(asked, bound)| *asked == addr || *bound == addr)
    {
        return Ok(*bound);
    }
    let bound = start(addr)?;
    running.push((addr, bound));
    Ok(bound)
}

/// Binds `addr` (on the caller's thread, so that an error is the caller's)
/// and serves on a new thread.
fn start(addr: SocketAddr) -> Result<SocketAddr, UiError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| UiError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| UiError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| UiError::Bind { addr, source })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(UiError::Start)?;
    std::thread::Builder::new()
        .name("runnel-ui".into())
        .spawn(move || {
            runtime.block_on(async move {
                // Copies new progress reports into each query's history
                // once a second, whether or not a page is open.
                tokio::spawn(async {
                    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
                    loop {
                        every.tick().await;
                        registry::sample_all();
                    }
                });
                let served = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => axum::serve(listener, router()).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = served {
                    tracing::error!("live view on {bound} stopped: {e}");
                }
            })
        })
        .map_err(UiError::Start)?;
    tracing::info!("live view at http://{bound}/");
    Ok(bound)
}

fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/queries", get(queries))
        .route("/api/queries/{id}", get(query))
        .route("/api/queries/{id}/progress", get(progress))
        .route("/api/queries/{id}/latency", get(latency))
        .route("/api/queries/{id}/latency/seconds", get(latency_seconds))
        .route("/metrics", get(metrics))
        .fallback(not_found)
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page::HTML,
    )
        .into_response()
}

async fn queries() -> Response {
    let docs: Vec<api::QueryDoc> = registry::all()
        .iter()
        .map(|q| api::query_doc(&q.shared))
        .collect();
    Json(docs).into_response()
}

fn unknown(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": format!("no query '{id}' is served here") })),
    )
        .into_response()
}

async fn query(Path(id): Path<String>) -> Response {
    match registry::find(&id) {
        Some(q) => Json(api::query_doc(&q.shared)).into_response(),
        None => unknown(&id),
    }
}

/// Which reports `/progress` answers with.
enum Reports {
    /// The query's recent ones (`recent_progress`).
    Recent,
    /// The kept history after a batch (`?after=N`), or all of it
    /// (`?history`).
    History(Option<u64>),
}

/// The reports a query string asks for, or what is wrong with it.
fn reports(raw: Option<&str>) -> Result<Reports, String> {
    let Some(raw) = raw else {
        return Ok(Reports::Recent);
    };
    for pair in raw.split('&') {
        if pair == "history" || pair.starts_with("history=") {
            return Ok(Reports::History(None));
        }
        if let Some(v) = pair.strip_prefix("after=") {
            return v
                .parse()
                .map(|a| Reports::History(Some(a)))
                .map_err(|_| format!("after={v} is not a batch id"));
        }
    }
    Ok(Reports::Recent)
}

/// A 400 answer with a JSON error.
fn bad_request(why: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": why })),
    )
        .into_response()
}

async fn progress(Path(id): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let which = match reports(raw.as_deref()) {
        Ok(w) => w,
        Err(bad) => return bad_request(bad),
    };
    match registry::find(&id) {
        Some(q) => match which {
            Reports::Recent => Json(api::progress(&q.shared)).into_response(),
            Reports::History(after) => Json(q.history(after)).into_response(),
        },
        None => unknown(&id),
    }
}

async fn latency(Path(id): Path<String>) -> Response {
    match registry::find(&id) {
        Some(q) => Json(api::latency(&q.shared)).into_response(),
        None => unknown(&id),
    }
}

/// The `after=MS` of a query string (ms since the Unix epoch), if any.
fn after_ms(raw: Option<&str>) -> Result<Option<i64>, String> {
    for pair in raw.unwrap_or("").split('&') {
        if let Some(v) = pair.strip_prefix("after=") {
            return v
                .parse()
                .map(Some)
                .map_err(|_| format!("after={v} is not a time in ms since the Unix epoch"));
        }
    }
    Ok(None)
}

async fn latency_seconds(Path(id): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let after = match after_ms(raw.as_deref()) {
        Ok(a) => a,
        Err(bad) => return bad_request(bad),
    };
    match registry::find(&id) {
        Some(q) => Json(q.seconds(after)).into_response(),
        None => unknown(&id),
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        prometheus::render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": "not found" })),
    )
        .into_response()
}
