//! The live view of running queries: a web page, a JSON API and Prometheus
//! metrics, served over HTTP (cargo feature `ui`).
//!
//! [`StreamingQuery::serve_ui`] lists a query in the process-wide registry
//! (`registry`) and starts the process's HTTP server on that address if none
//! runs there yet; every query served in one process appears on every page.
//! A query stays listed, with its end time and error, until the process
//! exits.
//!
//! Endpoints (`server`): `/` the page (`page`: one HTML document, its script
//! and style compiled into the binary), `/api/queries`, `/api/queries/{id}`,
//! `/api/queries/{id}/progress` (the recent reports; `?history`: the last 15
//! minutes the server kept; `?after=N`: those after batch N),
//! `/api/queries/{id}/latency` (`api`), `/api/queries/{id}/latency/seconds`
//! (p50/p99/p99.9 of each second; `?after=MS`: those after that time), and
//! `/metrics` in the Prometheus text format (`prometheus`). Once a second the
//! server copies each query's new progress reports into the history it keeps
//! and closes a second of latency: the difference between the query's merged
//! histogram now and a second ago (`registry`).
//!
//! Owns the registry, the server thread and what it answers. It must not
//! run on an operator task's thread or touch anything per event: it reads
//! only what the runtimes already hand over once per epoch or batch (the
//! progress reports, the merged latency histograms, the totals, the ring
//! gauges sampled at epoch markers), under the same locks the handle uses. The server is one thread of its own running
//! a current-thread tokio runtime; it lives until the process exits.

mod api;
mod page;
mod prometheus;
mod registry;
mod server;

use std::net::{SocketAddr, ToSocketAddrs};

use crate::query::StreamingQuery;

/// Where and how the live view listens.
#[derive(Clone, Debug)]
pub struct UiOptions {
    addr: String,
    allow_remote: bool,
}

impl UiOptions {
    /// Listen on `addr` (`HOST:PORT`; port 0 picks a free one). A loopback
    /// address unless [`UiOptions::allow_remote`] says otherwise.
    pub fn new(addr: impl Into<String>) -> UiOptions {
        UiOptions {
            addr: addr.into(),
            allow_remote: false,
        }
    }

    /// Accept an address other than loopback (`0.0.0.0`, a LAN address):
    /// the view has no authentication, so anyone who reaches the port sees
    /// every served query's names, plans and figures.
    pub fn allow_remote(mut self, allow: bool) -> UiOptions {
        self.allow_remote = allow;
        self
    }
}

/// Why the live view could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UiError {
    /// The address does not parse or resolve.
    #[error("live view: cannot resolve '{addr}': {reason}")]
    Address {
        /// The address as given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The address is not a loopback one and remote access was not allowed.
    #[error(
        "live view: {addr} is not a loopback address; the view has no authentication, so \
         serving it beyond this machine must be asked for explicitly (allow_remote, or \
         --ui-allow-remote on the command line)"
    )]
    NotLoopback {
        /// The refused address.
        addr: SocketAddr,
    },
    /// Binding the listening socket failed.
    #[error("live view: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server's thread or runtime could not start.
    #[error("live view: cannot start the server: {0}")]
    Start(#[source] std::io::Error),
}

impl UiOptions {
    /// Resolves the address and checks it (loopback unless allowed): what
    /// [`StreamingQuery::serve_ui_with`] does first, for a caller that wants
    /// to refuse a bad address before it starts a query.
    pub fn resolve(&self) -> Result<SocketAddr, UiError> {
        resolve(self)
    }
}

/// Checks `options` and resolves its address.
fn resolve(options: &UiOptions) -> Result<SocketAddr, UiError> {
    let addrs: Vec<SocketAddr> = options
        .addr
        .to_socket_addrs()
        .map_err(|e| UiError::Address {
            addr: options.addr.clone(),
            reason: e.to_string(),
        })?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(UiError::Address {
            addr: options.addr.clone(),
            reason: "it resolves to no address".into(),
        });
    };
    if !options.allow_remote {
        if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(UiError::NotLoopback { addr: *bad });
        }
    }
    Ok(first)
}

impl StreamingQuery {
    /// Serves the live view of this query (and of every other query served
    /// in this process) on `addr`, a loopback address such as
    /// `127.0.0.1:4040` (port 0 picks a free port); returns the address it
    /// listens on. A second call on the same address adds the query to the
    /// page already served there. Another address than loopback is refused:
    /// see [`StreamingQuery::serve_ui_with`].
    pub fn serve_ui(&self, addr: impl Into<String>) -> Result<SocketAddr, UiError> {
        self.serve_ui_with(&UiOptions::new(addr))
    }

    /// [`StreamingQuery::serve_ui`] with options (e.g. a non-loopback
    /// address, explicitly allowed).
    pub fn serve_ui_with(&self, options: &UiOptions) -> Result<SocketAddr, UiError> {
        let addr = resolve(options)?;
        registry::register(self.shared());
        server::ensure_running(addr)
    }
}
