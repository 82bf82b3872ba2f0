//! HTTPS admission server for confkube: serves `kube-sgx`'s pod mutation and validation to
//! the Kubernetes API server.
//!
//! Endpoints: `POST /mutate-pods` and `POST /validate-pods` (AdmissionReview v1 in and out),
//! `GET /healthz`, `GET /readyz` (503 once shutdown starts), `GET /metrics` (OpenMetrics text
//! from the registry the caller passes in). TLS is rustls with the aws-lc-rs provider; the
//! certificate and key are PEM files ([`ReloadingCert`], from the `tls-reload` crate) that the
//! server re-reads every [`Options::reload_interval`] and swaps without a restart, counting and
//! logging each outcome.
//! Malformed, oversized or slow bodies get a 400 with a message, never a 500 or a panic.
//!
//! [`certgen`] is the bootstrap for clusters without cert-manager: it keeps a self-signed CA and
//! serving certificate in a `kubernetes.io/tls` Secret (reused while valid, renewed before it
//! expires) and sets `caBundle` in the webhook configurations. Its decisions are pure
//! functions; [`certgen::cluster`] makes the API calls with the kube client.
//!
//! What it does not do: no pod logic (all of it is in `kube-sgx`), no ACME or external CA, no
//! watching (certgen is a one-shot run, e.g. a Helm hook Job; the server reloads the mounted
//! files). It builds no runtime: the caller runs [`Server::serve`] and
//! [`certgen::cluster::run`] on a tokio runtime.
//!
//! Specs followed: Kubernetes "Dynamic Admission Control" (AdmissionReview v1 over HTTPS,
//! HTTP 200 with a response of the same version), RFC 8446/5246 via rustls, OpenMetrics text
//! exposition; RFC 5280 for the certificates certgen issues and checks.

pub mod certgen;
mod metrics;
mod server;

pub use server::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES, Limits, Options, ServeError, Server,
};
pub use tls_reload::{self, CertFiles, Reload, ReloadingCert, TlsFileError};

pub use kube_sgx;
pub use prometheus_client::registry::Registry;
