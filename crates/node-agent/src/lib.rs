//! The confkube node agent: makes an Intel SGX node usable by Kubernetes.
//!
//! **One job:** on one node, find out what SGX it has and tell Kubernetes: discovery behind a
//! [`probe::Probe`] (CPUID leaves 0x7/0x12, `/dev/sgx_*`, per-NUMA `sgx_total_bytes`), the
//! kubelet device plugin for `sgx.intel.com/enclave` and `sgx.intel.com/provision`
//! ([`plugin`]), the node's `sgx.intel.com/epc` capacity and SGX labels as patches
//! ([`patch`]), and EPC metrics ([`metrics`], [`procfs`]).
//!
//! **Not here:** pod mutation (the webhook), quote verification (dcap/attest), EPC enforcement
//! (the kernel has no EPC cgroup in mainline), CDI specs, and the CLI (the `confkube` binary).
//!
//! **Specs:** kubelet device plugin API v1beta1 and its restart rules, Intel's SGX resource
//! model and CPUID leaf 0x12 (`shared/spec/kubernetes-sgx.md` §1, §2), DESIGN.md §3 names.

pub mod discovery;
pub mod probe;
