//! Prometheus metrics, one registry per running app (no global recorder, so tests can run many
//! servers in one process).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub db_pool_connections: Gauge,
    pub overhead: Histogram,
    pub rate_limited: Counter,
    /// Time from sending to the upstream's response headers, by provider.
    pub upstream_latency: Family<ProviderLabels, Histogram>,
    /// Failed upstream attempts (connect errors, timeouts, 429/5xx), by provider.
    pub upstream_errors: Family<ProviderLabels, Counter>,
    pub wallet_holds: Counter,
    pub wallet_refusals: Counter,
    pub wallet_settlements: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tokenone");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let db_pool_connections = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Open database connections",
            db_pool_connections.clone(),
        );
        let overhead = Histogram::new(exponential_buckets(0.000_01, 2.0, 20));
        registry.register(
            "gateway_overhead_seconds",
            "Time a proxy call spends in the gateway, excluding the wait for the upstream",
            overhead.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited",
            "Proxy calls refused by the rate limiter",
            rate_limited.clone(),
        );
        let upstream_latency = Family::<ProviderLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 18))
        });
        registry.register(
            "upstream_latency_seconds",
            "Upstream time to response headers by provider",
            upstream_latency.clone(),
        );
        let upstream_errors = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Failed upstream attempts by provider",
            upstream_errors.clone(),
        );
        let wallet_holds = Counter::default();
        registry.register(
            "wallet_holds",
            "Wallet reservations made for live calls",
            wallet_holds.clone(),
        );
        let wallet_refusals = Counter::default();
        registry.register(
            "wallet_refusals",
            "Live calls refused because the wallet could not cover them",
            wallet_refusals.clone(),
        );
        let wallet_settlements = Counter::default();
        registry.register("wallet_settlements", "Live calls settled", wallet_settlements.clone());
        Metrics {
            registry: Arc::new(registry),
            requests,
            latency,
            db_pool_connections,
            overhead,
            rate_limited,
            upstream_latency,
            upstream_errors,
            wallet_holds,
            wallet_refusals,
            wallet_settlements,
        }
    }

    /// Registers a metric owned elsewhere (the call writer's queue depth, rate-limit fallbacks).
    pub fn register_extra(&mut self, name: &str, help: &str, metric: impl prometheus_client::registry::Metric) {
        if let Some(r) = Arc::get_mut(&mut self.registry) {
            r.register(name, help, metric);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
