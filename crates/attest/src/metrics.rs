//! Prometheus metrics of the attestation service (prometheus-client), one registry passed
//! explicitly.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Route and HTTP status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern.
    pub route: String,
    /// The HTTP status.
    pub status: u16,
}

/// Route only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route pattern.
    pub route: String,
}

/// A verification outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `verified`, a DESIGN.md §4 error code, or a policy code.
    pub result: String,
    /// The final TCB status when verified, else empty.
    pub tcb_status: String,
}

/// A cache counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `collateral`, `pck` or `collateral_source`.
    pub cache: String,
    /// `hit` or `miss`.
    pub event: String,
}

/// A configuration reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `signing-keys`, `policy` or `tls`.
    pub source: String,
    /// `ok` or `error`.
    pub result: String,
}

/// A configuration source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `signing-keys`, `policy` or `tls`.
    pub source: String,
}

/// A secret release decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecretReleaseLabels {
    /// The secret's name (empty when no such secret exists, so callers cannot grow the label
    /// set); never its value.
    pub secret: String,
    /// `released`, `token-invalid`, `release-denied`, `secret-not-found`, `no-transfer-key`,
    /// or an attestation error code (one-step release).
    pub result: String,
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by route.
    pub latency: Family<RouteLabels, Histogram>,
    /// Attestation outcomes.
    pub outcomes: Family<OutcomeLabels, Counter>,
    /// Cache events, sampled from the verifier and the collateral cache at scrape time.
    pub cache: Family<CacheLabels, Gauge>,
    /// Reloads of `--signing-key-dir` / `--policy-file` / `--tls-cert`+`--tls-key` after a
    /// content change, by result.
    pub config_reloads: Family<ReloadLabels, Counter>,
    /// 1 while a source's current content is rejected and the last good one is served.
    pub config_stale: Family<SourceLabels, Gauge>,
    /// Secret release decisions by secret and result.
    pub secret_releases: Family<SecretReleaseLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry of its own with every metric registered (tests, library use).
    pub fn new() -> Self {
        Self::with_registry(Registry::default())
    }

    /// Registers every metric, prefixed `confkube_attest_`, in `registry` (the process's one
    /// registry, created by the binary) and keeps it, to serve it at `/metrics`.
    pub fn with_registry(mut registry: Registry) -> Self {
        let sub = registry.sub_registry_with_prefix("confkube_attest");
        let requests = Family::<RequestLabels, Counter>::default();
        sub.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        sub.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        sub.register(
            "attestations",
            "Attestation outcomes: verified (by TCB status), or the error or policy code",
            outcomes.clone(),
        );
        let cache = Family::<CacheLabels, Gauge>::default();
        sub.register(
            "cache_events",
            "Cumulative cache hits and misses (verified collateral, PCK chains, collateral source)",
            cache.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        sub.register(
            "config_reloads",
            "Reloads of the signing key directory, the policy file and the TLS certificate after a \
             content change, by result (error: the last good configuration stays)",
            config_reloads.clone(),
        );
        let config_stale = Family::<SourceLabels, Gauge>::default();
        sub.register(
            "config_stale",
            "1 while the current content of a configuration source is rejected and the last good \
             configuration is served",
            config_stale.clone(),
        );
        let secret_releases = Family::<SecretReleaseLabels, Counter>::default();
        sub.register(
            "secret_releases",
            "Secret release decisions by secret name and result (released, or the problem code)",
            secret_releases.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            outcomes,
            cache,
            config_reloads,
            config_stale,
            secret_releases,
        }
    }

    /// Sets a cache gauge.
    pub fn set_cache(&self, cache: &str, event: &str, value: u64) {
        self.cache
            .get_or_create(&CacheLabels {
                cache: cache.into(),
                event: event.into(),
            })
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }

    /// Counts a reload of `source` (`signing-keys`, `policy`, `tls`) and sets its staleness.
    pub fn config_reload(&self, source: &str, ok: bool) {
        // Staleness first: whoever sees the count also sees the flag.
        self.config_stale
            .get_or_create(&SourceLabels {
                source: source.into(),
            })
            .set(i64::from(!ok));
        self.config_reloads
            .get_or_create(&ReloadLabels {
                source: source.into(),
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }

    /// Creates the series of a configured source at zero, so that rates and alerts see them.
    pub fn config_source(&self, source: &str) {
        for result in ["ok", "error"] {
            let _ = self.config_reloads.get_or_create(&ReloadLabels {
                source: source.into(),
                result: result.into(),
            });
        }
        self.config_stale
            .get_or_create(&SourceLabels {
                source: source.into(),
            })
            .set(0);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metrics_join_the_process_registry_with_unchanged_names() {
        let mut registry = Registry::default();
        let process = Counter::<u64>::default();
        registry.register(
            "process_events",
            "Another component's metric",
            process.clone(),
        );
        process.inc();
        let m = Metrics::with_registry(registry);
        m.config_source("policy");
        let text = m.encode();
        assert!(text.contains("\nprocess_events_total 1\n"), "{text}");
        assert!(
            text.contains("\nconfkube_attest_config_stale{source=\"policy\"} 0\n"),
            "{text}"
        );
        // A registry of its own encodes the same service metrics.
        let own = Metrics::new();
        own.config_source("policy");
        let own_text = own.encode();
        assert!(
            own_text.contains("\nconfkube_attest_config_stale{source=\"policy\"} 0\n"),
            "{own_text}"
        );
        assert!(!own_text.contains("process_events"));
    }
}
