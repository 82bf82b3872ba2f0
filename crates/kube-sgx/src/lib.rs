//! Pure Kubernetes logic for Intel SGX pods: resource names and aliases, exact EPC quantity
//! math, pod mutation (`mutate(pod, &config) -> JSON patch`), validation (allow or a denial
//! a user can act on), and AdmissionReview v1 decoding/encoding around them.
//!
//! What it does not do: no network, no TLS, no clock, no environment, no files and no
//! Kubernetes client, except the one client constructor [`client`] behind the `client` feature
//! (off by default; the node agent and the webhook's certgen turn it on). The `webhook` crate serves this over HTTPS; the node agent applies the
//! [`node`] capacity and label patches with its client.
//!
//! Specs followed: the confkube resource contract (DESIGN.md §3: canonical
//! `sgx.intel.com/epc` in bytes, MiB aliases `sgx.intel.com/sgx_epc_mem_in_MiB` and
//! `kubernetes.azure.com/sgx_epc_mem_in_MiB`, `sgx.intel.com/enclave` / `provision`, the
//! `sgx.intel.com/quote-provider` and `sgx.intel.com/epc` pod annotations); the behaviour of
//! Intel's SGX admission webhook (requests = limits, integral quantities, aesmd socket
//! injection, pod EPC annotation for Kata); Kubernetes AdmissionReview v1 (uid echoed,
//! base64 RFC 6902 JSON Patch, built with the `json-patch` and `jsonptr` crates, which also do
//! the RFC 6901 pointer escaping); the Kubernetes quantity grammar (`resource.Quantity`).
//!
//! ```
//! use k8s_openapi::api::core::v1::Pod;
//! let pod: Pod = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "p"},
//!     "spec": {"containers": [{"name": "app",
//!         "resources": {"limits": {"sgx.intel.com/sgx_epc_mem_in_MiB": "10"}}}]}
//! }))?;
//! let patch = kube_sgx::mutate(&pod, &kube_sgx::Config::new())?;
//! assert!(serde_json::to_string(&patch)?.contains(r#""path":"/spec/containers/0/resources/limits/sgx.intel.com~1epc","value":"10Mi""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod admission;
#[cfg(feature = "client")]
pub mod client;
mod config;
mod mutate;
pub mod node;
mod patch;
pub mod quantity;

pub use config::{Config, ConfigError, parse_epc_max, parse_node_label, parse_toleration};
pub use json_patch::{self, Patch, PatchOperation};
pub use jsonptr;
pub use k8s_openapi;
pub use mutate::{Denial, mutate, validate};

/// Canonical EPC resource: a byte quantity advertised in node capacity.
pub const EPC: &str = "sgx.intel.com/epc";
/// Device-plugin resource giving a container `/dev/sgx_enclave`.
pub const ENCLAVE: &str = "sgx.intel.com/enclave";
/// Device-plugin resource giving a container `/dev/sgx_provision`.
pub const PROVISION: &str = "sgx.intel.com/provision";
/// EPC aliases counted in whole MiB, rewritten to [`EPC`]: the FAQ example's name and AKS
/// generation 1's name.
pub const EPC_MIB_ALIASES: [&str; 2] = [
    "sgx.intel.com/sgx_epc_mem_in_MiB",
    "kubernetes.azure.com/sgx_epc_mem_in_MiB",
];
/// Pod annotation: `aesmd` for out-of-process quoting, or the name of the quoting container.
pub const QUOTE_PROVIDER_ANNOTATION: &str = "sgx.intel.com/quote-provider";
/// Pod annotation carrying the pod's total EPC (read by Kata Containers).
pub const EPC_ANNOTATION: &str = "sgx.intel.com/epc";
/// The quote-provider value selecting out-of-process quoting, and the sidecar's name.
pub const AESMD: &str = "aesmd";
/// Directory of the aesmd socket (`aesm.socket`).
pub const AESMD_PATH: &str = "/var/run/aesmd";
/// Name of the injected volume holding the aesmd socket.
pub const AESMD_VOLUME: &str = "aesmd-socket";
/// Environment variable telling the SGX quote library to use aesmd.
pub const AESM_ADDR_ENV: &str = "SGX_AESM_ADDR";
