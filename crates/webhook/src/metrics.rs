//! Prometheus metrics of the admission server, registered in a caller-owned registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of one admission request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// `mutate` or `validate`.
    pub(crate) endpoint: &'static str,
    /// `ignored`, `allowed`, `patched`, `denied` or `bad_request`.
    pub(crate) outcome: &'static str,
}

/// Labels of one denial.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DenialLabels {
    /// `mutate` or `validate`.
    pub(crate) endpoint: &'static str,
    /// The denial's stable reason code (e.g. `request-limit-mismatch`).
    pub(crate) reason: &'static str,
}

/// Labels of an endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndpointLabels {
    /// `mutate` or `validate`.
    pub(crate) endpoint: &'static str,
}

/// Labels of a certificate reload attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReloadLabels {
    /// `reloaded` or `error`.
    pub(crate) result: &'static str,
}

/// Labels of a connection the server closed itself.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ClosedLabels {
    /// `handshake_timeout`, `handshake_failed`, `header_timeout`, `idle_timeout`, `evicted` or
    /// `refused` (see the `http-guard` crate).
    pub(crate) reason: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The server's metric handles; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) denials: Family<DenialLabels, Counter>,
    pub(crate) duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    pub(crate) reloads: Family<ReloadLabels, Counter>,
    pub(crate) handshake_failures: Counter,
    pub(crate) closed: Family<ClosedLabels, Counter>,
}

impl http_guard::Events for Metrics {
    fn closed(&self, why: http_guard::Closed) {
        if matches!(
            why,
            http_guard::Closed::HandshakeFailed | http_guard::Closed::HandshakeTimeout
        ) {
            self.handshake_failures.inc();
        }
        self.closed
            .get_or_create(&ClosedLabels {
                reason: why.as_str(),
            })
            .inc();
    }
}

impl Metrics {
    /// Creates the metrics and registers them under the `confkube_webhook` prefix.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            denials: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            reloads: Family::default(),
            handshake_failures: Counter::default(),
            closed: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("confkube_webhook");
        r.register(
            "admission_requests",
            "Admission requests by endpoint and outcome",
            m.requests.clone(),
        );
        r.register(
            "denials",
            "Denied admission requests by reason",
            m.denials.clone(),
        );
        r.register(
            "admission_duration_seconds",
            "Time from request headers to response, by endpoint",
            m.duration.clone(),
        );
        r.register(
            "certificate_reloads",
            "Serving certificate reloads after the files changed",
            m.reloads.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            m.handshake_failures.clone(),
        );
        r.register(
            "connections_closed",
            "Connections the server closed itself (timeouts, connection bound), by reason",
            m.closed.clone(),
        );
        m
    }
}
