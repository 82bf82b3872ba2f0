//! Cluster policy for the mutator, and parsers for its command-line spellings.

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Toleration};

use crate::quantity;

/// What the cluster adds to, or enforces on, every SGX pod.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Tolerations added to SGX pods (for tainted SGX node pools).
    pub tolerations: Vec<Toleration>,
    /// Node requirements added to every required node-affinity term of SGX pods.
    pub node_affinity: Vec<NodeSelectorRequirement>,
    /// Largest total EPC, in bytes, one pod may request.
    pub max_epc_per_pod: Option<u64>,
}

impl Config {
    /// A configuration that adds nothing and enforces no maximum.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the tolerations to add.
    pub fn with_tolerations(mut self, tolerations: Vec<Toleration>) -> Self {
        self.tolerations = tolerations;
        self
    }

    /// Sets the node-affinity requirements to add.
    pub fn with_node_affinity(mut self, requirements: Vec<NodeSelectorRequirement>) -> Self {
        self.node_affinity = requirements;
        self
    }

    /// Sets the per-pod EPC maximum in bytes.
    pub fn with_max_epc_per_pod(mut self, max: Option<u64>) -> Self {
        self.max_epc_per_pod = max;
        self
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A toleration spec is not `KEY[=VALUE][:EFFECT]`.
    #[error(
        "toleration \"{0}\" is not KEY[=VALUE][:EFFECT] with EFFECT one of NoSchedule, \
         PreferNoSchedule, NoExecute (e.g. sgx.intel.com/epc=true:NoSchedule)"
    )]
    Toleration(String),
    /// A node label spec is not `KEY=VALUE`.
    #[error("node label \"{0}\" is not KEY=VALUE (e.g. sgx.intel.com/capable=true)")]
    NodeLabel(String),
    /// The per-pod maximum is not a whole byte quantity.
    #[error("EPC maximum \"{value}\" {problem}; write a byte quantity such as 256Mi")]
    Quantity {
        /// The text given.
        value: String,
        /// What is wrong with it.
        problem: quantity::QuantityError,
    },
}

/// Parses kubectl-taint-like syntax into a toleration:
/// `key=value:Effect` (Equal), `key:Effect` and `key` (Exists), `key=value` (Equal, any effect).
pub fn parse_toleration(spec: &str) -> Result<Toleration, ConfigError> {
    let bad = || ConfigError::Toleration(spec.to_owned());
    let (kv, effect) = match spec.rsplit_once(':') {
        Some((kv, effect)) => (kv, Some(effect)),
        None => (spec, None),
    };
    if let Some(e) = effect
        && !matches!(e, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
    {
        return Err(bad());
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (kv, None),
    };
    if key.is_empty() || key.contains(char::is_whitespace) || value.is_some_and(str::is_empty) {
        return Err(bad());
    }
    Ok(Toleration {
        key: Some(key.to_owned()),
        operator: Some(if value.is_some() { "Equal" } else { "Exists" }.to_owned()),
        value: value.map(str::to_owned),
        effect: effect.map(str::to_owned),
        toleration_seconds: None,
    })
}

/// Parses `key=value` into a node requirement `key In [value]`.
pub fn parse_node_label(spec: &str) -> Result<NodeSelectorRequirement, ConfigError> {
    match spec.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
            Ok(NodeSelectorRequirement {
                key: k.to_owned(),
                operator: "In".to_owned(),
                values: Some(vec![v.to_owned()]),
            })
        }
        _ => Err(ConfigError::NodeLabel(spec.to_owned())),
    }
}

/// Parses a byte quantity such as `256Mi` for the per-pod maximum.
pub fn parse_epc_max(spec: &str) -> Result<u64, ConfigError> {
    quantity::parse(spec)
        .map(|p| p.value)
        .map_err(|problem| ConfigError::Quantity {
            value: spec.to_owned(),
            problem,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: &str, op: &str, value: Option<&str>, effect: Option<&str>) -> Toleration {
        Toleration {
            key: Some(key.to_owned()),
            operator: Some(op.to_owned()),
            value: value.map(str::to_owned),
            effect: effect.map(str::to_owned),
            toleration_seconds: None,
        }
    }

    #[test]
    fn parses_tolerations() {
        assert_eq!(
            parse_toleration("kubernetes.azure.com/sgx_epc_mem_in_MiB=true:NoSchedule"),
            Ok(tol(
                "kubernetes.azure.com/sgx_epc_mem_in_MiB",
                "Equal",
                Some("true"),
                Some("NoSchedule")
            ))
        );
        assert_eq!(
            parse_toleration("sgx:NoExecute"),
            Ok(tol("sgx", "Exists", None, Some("NoExecute")))
        );
        assert_eq!(
            parse_toleration("sgx"),
            Ok(tol("sgx", "Exists", None, None))
        );
        assert_eq!(
            parse_toleration("sgx=yes"),
            Ok(tol("sgx", "Equal", Some("yes"), None))
        );
    }

    #[test]
    fn rejects_bad_tolerations() {
        for bad in ["", "=v", "k=v:Sometimes", "k=:NoSchedule", "a b"] {
            let err = parse_toleration(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "toleration \"{bad}\" is not KEY[=VALUE][:EFFECT] with EFFECT one of \
                     NoSchedule, PreferNoSchedule, NoExecute (e.g. sgx.intel.com/epc=true:NoSchedule)"
                )
            );
        }
    }

    #[test]
    fn parses_node_labels() {
        assert_eq!(
            parse_node_label("sgx.intel.com/capable=true"),
            Ok(NodeSelectorRequirement {
                key: "sgx.intel.com/capable".to_owned(),
                operator: "In".to_owned(),
                values: Some(vec!["true".to_owned()]),
            })
        );
        assert_eq!(
            parse_node_label("capable").unwrap_err().to_string(),
            "node label \"capable\" is not KEY=VALUE (e.g. sgx.intel.com/capable=true)"
        );
    }

    #[test]
    fn parses_epc_max() {
        assert_eq!(parse_epc_max("256Mi"), Ok(256 << 20));
        assert_eq!(
            parse_epc_max("1.5").unwrap_err().to_string(),
            "EPC maximum \"1.5\" is not a whole number; write a byte quantity such as 256Mi"
        );
    }
}
