//! The process's metrics in Prometheus' text format at `/metrics`. Every crate records through
//! the `metrics` facade; this installs the one recorder that renders them.

use std::sync::OnceLock;
use std::time::Duration;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: from half a millisecond to ten seconds.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. If another recorder was installed first
/// (a test harness's), this one still renders, but sees nothing.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder =
                PrometheusBuilder::new().set_buckets(&BUCKETS).unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows none of it");
            }
            // Histograms are folded into their buckets by upkeep; without the exporter's own
            // listener nobody else runs it.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let upkeep = handle.clone();
                runtime.spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        upkeep.run_upkeep();
                    }
                });
            }
            handle
        })
        .clone()
}

/// `GET /metrics` for peers on this host only (a sidecar, `tessera top` beside the process, a
/// test): the figures name routes, services and volumes an outsider has no business reading.
/// Others hear 404 and are pointed at the metrics listener ([`open_route`] on an address of
/// its own, which a network policy can open to the scraper alone).
pub fn route() -> Router {
    let handle = prometheus();
    Router::new().route(
        "/metrics",
        get(move |request: Request| {
            let handle = handle.clone();
            async move {
                // A request with no peer came through no socket: a call inside this process.
                let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
                if peer.is_some_and(|peer| !peer.ip().is_loopback()) {
                    return tessera_web::Problem::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "metrics are served to this host only, and on the metrics listener (--metrics-listen)",
                    )
                    .into_response();
                }
                render(&handle)
            }
        }),
    )
}

/// `GET /metrics` for whoever reaches the listener it is served on.
pub fn open_route() -> Router {
    let handle = prometheus();
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { render(&handle) }
        }),
    )
}

pub(crate) fn render(handle: &PrometheusHandle) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
}
