//! The request counter and duration histogram of each route (`janua_http_requests_total`,
//! `janua_http_request_duration_seconds`), registered once per route and status: looking a
//! labelled metric up by name and labels (owned strings, hashed) at every request cost more
//! than the request's own accounting.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::http::Method;
use dashmap::DashMap;
use metrics::{Counter, Histogram};

/// The metrics of one route (its matched path, or `unmatched`).
pub struct RouteMetrics {
    route: String,
    duration: Histogram,
    requests: DashMap<(Method, u16), Counter>,
}

static ROUTES: LazyLock<DashMap<String, Arc<RouteMetrics>>> = LazyLock::new(DashMap::new);

/// The metrics of `route`, registered at its first request.
pub fn route(route: &str) -> Arc<RouteMetrics> {
    if let Some(m) = ROUTES.get(route) {
        return m.clone();
    }
    ROUTES
        .entry(route.to_owned())
        .or_insert_with(|| {
            Arc::new(RouteMetrics {
                route: route.to_owned(),
                duration: metrics::histogram!("janua_http_request_duration_seconds", "route" => route.to_owned()),
                requests: DashMap::new(),
            })
        })
        .clone()
}

impl RouteMetrics {
    /// Counts one request answered with `status` after `elapsed`.
    pub fn record(&self, method: &Method, status: u16, elapsed: Duration) {
        let key = (method.clone(), status);
        let counter = match self.requests.get(&key) {
            Some(c) => c.clone(),
            None => self
                .requests
                .entry(key)
                .or_insert_with(|| {
                    metrics::counter!("janua_http_requests_total",
                        "route" => self.route.clone(), "method" => method.as_str().to_owned(),
                        "status" => status.to_string())
                })
                .clone(),
        };
        counter.increment(1);
        self.duration.record(elapsed.as_secs_f64());
    }
}
