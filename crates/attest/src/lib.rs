//! The confkube attestation service library: an MAA-shaped SGX attestation API on the pure
//! [`dcap`] verifier.
//!
//! **One job:** turn a quote into a signed token a relying party can check with a stock JWT
//! library: `POST /attest/SgxEnclave` (MAA request shape; runtimeData bound to report_data,
//! initTimeData to CONFIGID, nonce echoed), policy ([`policy`]), ES256/RS256 tokens with JWKS and
//! OIDC discovery ([`keys`], [`claims`]), an embedded crash-safe store ([`store`]), collateral from
//! offline bundles or a PCCS/PCS with caching ([`collateral`]), Prometheus metrics ([`metrics`]).
//! For several stateless replicas, signing keys ([`keyfile`]) and the policy can come from mounted
//! files (a Kubernetes Secret and ConfigMap) that are polled and swapped atomically ([`reload`]),
//! as is the HTTPS certificate ([`tls_reload`], [`serve`]).
//!
//! **Not here:** quote verification itself (the `dcap` crate), CLI parsing (the `confkube`
//! binary). Handlers are thin: decode → pure function → encode → metrics.
//!
//! **Specs:** DESIGN.md §5; `shared/spec/dcap-attestation.md` §6 (PCS/PCCS) and §8 (MAA API and
//! claims).

pub mod admin;
pub mod claims;
pub mod collateral;
pub mod keyfile;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod policy_admin;
pub mod policy_doc;
pub mod provider;
pub mod reload;
pub mod secrets;
pub mod serve;
pub mod server;
pub mod store;

pub use tls_reload;
