//! Pod normalization: [`mutate`] computes the JSON patch, [`validate`] checks a final pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::patch::Ops as _;
use crate::quantity::{self, MIB, QuantityError, Suffix, format_binary_si};
use crate::{
    AESM_ADDR_ENV, AESMD, AESMD_PATH, AESMD_VOLUME, ENCLAVE, EPC, EPC_ANNOTATION, EPC_MIB_ALIASES,
    PROVISION, QUOTE_PROVIDER_ANNOTATION,
};
use json_patch::Patch;
use jsonptr::{Pointer, PointerBuf};

/// Why a pod is refused. Every message names the container or annotation at fault and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denial {
    /// A quantity of an SGX resource is malformed, negative, fractional or too large.
    #[error(
        "container \"{container}\": {resource} is \"{value}\", which {problem}; {}",
        quantity_hint(resource, problem)
    )]
    BadQuantity {
        /// Container name.
        container: String,
        /// Resource name as written.
        resource: String,
        /// Quantity as written.
        value: String,
        /// What is wrong with it.
        problem: QuantityError,
    },
    /// A MiB alias carries a unit suffix, which would silently multiply the size.
    #[error(
        "container \"{container}\": {resource} is \"{value}\", but this resource counts MiB and takes \
         a plain whole number; write the number of MiB (e.g. 10), or use {EPC} with a byte \
         quantity (e.g. {EPC}: 10Mi)"
    )]
    AliasWithSuffix {
        /// Container name.
        container: String,
        /// Resource name as written.
        resource: String,
        /// Quantity as written.
        value: String,
    },
    /// One resources section names the same EPC under two names.
    #[error(
        "container \"{container}\" sets {} in resources.{section}; they name the same EPC and would \
         be counted twice: keep only {EPC}",
        names.join(" and ")
    )]
    ConflictingNames {
        /// Container name.
        container: String,
        /// `limits` or `requests`.
        section: &'static str,
        /// The EPC resource names found.
        names: Vec<String>,
    },
    /// Requests and limits of an SGX resource differ; SGX resources cannot be overcommitted.
    #[error(
        "container \"{container}\": resources.requests {request} differs from resources.limits \
         {limit}; SGX resources cannot be overcommitted: make requests equal to limits, or remove \
         the request"
    )]
    RequestLimitMismatch {
        /// Container name.
        container: String,
        /// `name=value` of the request.
        request: String,
        /// `name=value` of the limit.
        limit: String,
    },
    /// The quote-provider annotation names no container of the pod.
    #[error(
        "pod annotation {QUOTE_PROVIDER_ANNOTATION} is \"{value}\", which is neither \"aesmd\" nor \
         a container of this pod (containers: {}); set it to \"aesmd\" for out-of-process quoting \
         or to the name of the container that generates quotes",
        containers.join(", ")
    )]
    QuoteProviderMissing {
        /// The annotation value.
        value: String,
        /// The pod's container names.
        containers: Vec<String>,
    },
    /// The quote-provider annotation names a container that requests no EPC.
    #[error(
        "pod annotation {QUOTE_PROVIDER_ANNOTATION} names container \"{container}\", which requests \
         no EPC; in-process quoting runs an enclave: give \"{container}\" an {EPC} limit, or set \
         the annotation to \"aesmd\""
    )]
    QuoteProviderNotSgx {
        /// Container name.
        container: String,
    },
    /// The pod's total EPC is above the configured per-pod maximum.
    #[error(
        "pod requests {} of EPC in total, above this cluster's per-pod maximum of {}; lower the \
         containers' {EPC}, or ask the cluster administrator to raise the webhook's \
         --max-epc-per-pod",
        format_binary_si(*total),
        format_binary_si(*max)
    )]
    EpcAboveMaximum {
        /// The pod's total EPC in bytes.
        total: u64,
        /// The configured maximum in bytes.
        max: u64,
    },
    /// The pod's total EPC does not fit in 64 bits.
    #[error("the pod's total EPC is too large to add up; lower the containers' {EPC}")]
    TotalTooLarge,
    /// Validation found a pod the mutating webhook should have changed.
    #[error(
        "pod is not normalized for SGX ({path} would change): the confkube mutating webhook did \
         not run on it; check that the MutatingWebhookConfiguration for /mutate-pods is installed \
         and its service is reachable"
    )]
    NotNormalized {
        /// JSON Pointer of the first change the mutator would make.
        path: String,
    },
}

fn quantity_hint(resource: &str, problem: &QuantityError) -> &'static str {
    let alias = EPC_MIB_ALIASES.contains(&resource);
    match (problem, alias) {
        (QuantityError::Negative, _) => "SGX resources cannot be negative",
        (QuantityError::TooLarge, _) => "use a realistic size",
        (_, true) => "write a whole number of MiB (e.g. 10)",
        (_, false) if resource == EPC => "write a whole number of bytes (e.g. 10Mi)",
        (_, false) => "write a whole number (e.g. 1)",
    }
}

impl Denial {
    /// A stable kebab-case code, for metrics labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::BadQuantity { .. } => "bad-quantity",
            Denial::AliasWithSuffix { .. } => "alias-with-suffix",
            Denial::ConflictingNames { .. } => "conflicting-names",
            Denial::RequestLimitMismatch { .. } => "request-limit-mismatch",
            Denial::QuoteProviderMissing { .. } => "quote-provider-missing",
            Denial::QuoteProviderNotSgx { .. } => "quote-provider-not-sgx",
            Denial::EpcAboveMaximum { .. } => "epc-above-maximum",
            Denial::TotalTooLarge => "total-too-large",
            Denial::NotNormalized { .. } => "not-normalized",
        }
    }

    /// The HTTP-style status code for the admission response: 403 for policy, 400 otherwise.
    pub fn code(&self) -> u16 {
        match self {
            Denial::EpcAboveMaximum { .. } | Denial::NotNormalized { .. } => 403,
            _ => 400,
        }
    }
}

/// Computes the JSON patch that normalizes an SGX pod.
///
/// For each container and init container with EPC (canonical or alias name) it rewrites aliases
/// to [`EPC`] in bytes, makes requests equal limits, adds [`ENCLAVE`] (and [`PROVISION`] for the
/// in-process quote provider), injects the aesmd socket for out-of-process quoting, adds the
/// configured tolerations and node affinity, and sets the [`EPC_ANNOTATION`] pod total.
/// A pod without EPC gets an empty patch. Applying the patch and calling `mutate` again yields
/// an empty patch.
pub fn mutate(pod: &Pod, config: &Config) -> Result<Patch, Denial> {
    plan(pod, config, true)
}

/// Checks a pod as it will be stored: the same rules as [`mutate`], plus the pod must already
/// be normalized (the mutating webhook ran). Tolerations and affinity are not required.
/// Pods without EPC are always allowed.
pub fn validate(pod: &Pod, config: &Config) -> Result<(), Denial> {
    let patch = plan(pod, config, false)?;
    match patch.first() {
        None => Ok(()),
        Some(op) => Err(Denial::NotNormalized {
            path: op.path().as_str().to_owned(),
        }),
    }
}

const ANNOTATIONS: &Pointer = Pointer::from_static("/metadata/annotations");
const VOLUMES: &Pointer = Pointer::from_static("/spec/volumes");
const TOLERATIONS: &Pointer = Pointer::from_static("/spec/tolerations");
const AFFINITY: &Pointer = Pointer::from_static("/spec/affinity");
const NODE_AFFINITY: &Pointer = Pointer::from_static("/nodeAffinity");
const REQUIRED: &Pointer = Pointer::from_static("/requiredDuringSchedulingIgnoredDuringExecution");
const TERMS: &Pointer = Pointer::from_static("/nodeSelectorTerms");
const MATCH_EXPRESSIONS: &Pointer = Pointer::from_static("/matchExpressions");
const VOLUME_MOUNTS: &Pointer = Pointer::from_static("/volumeMounts");
const ENV: &Pointer = Pointer::from_static("/env");
/// The RFC 6902 "past the last element" array index.
const END: &Pointer = Pointer::from_static("/-");

/// A container and where it sits in the pod spec.
struct Slot<'a> {
    base: PointerBuf,
    container: &'a Container,
}

fn slots(spec: &PodSpec) -> Vec<Slot<'_>> {
    let regular = spec.containers.iter().enumerate().map(|(i, c)| Slot {
        base: PointerBuf::from_tokens(["spec", "containers"]).with_trailing_token(i),
        container: c,
    });
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| Slot {
            base: PointerBuf::from_tokens(["spec", "initContainers"]).with_trailing_token(i),
            container: c,
        });
    regular.chain(init).collect()
}

/// A container's EPC: the bytes and the names it was written under.
struct EpcUse {
    bytes: u64,
    limit_name: Option<String>,
    request_name: Option<String>,
}

type ResourceMap = BTreeMap<String, Quantity>;

fn limits(c: &Container) -> Option<&ResourceMap> {
    c.resources.as_ref().and_then(|r| r.limits.as_ref())
}

fn requests(c: &Container) -> Option<&ResourceMap> {
    c.resources.as_ref().and_then(|r| r.requests.as_ref())
}

fn is_epc_name(name: &str) -> bool {
    name == EPC || EPC_MIB_ALIASES.contains(&name)
}

/// The single EPC entry of one resources section, refusing two names for the same EPC.
fn epc_entry<'a>(
    c: &Container,
    map: Option<&'a ResourceMap>,
    section: &'static str,
) -> Result<Option<(&'a str, &'a Quantity)>, Denial> {
    let entries: Vec<(&str, &Quantity)> = map
        .into_iter()
        .flatten()
        .filter(|(k, _)| is_epc_name(k))
        .map(|(k, q)| (k.as_str(), q))
        .collect();
    match entries.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(Denial::ConflictingNames {
            container: c.name.clone(),
            section,
            names: many.iter().map(|(k, _)| (*k).to_owned()).collect(),
        }),
    }
}

fn bad_quantity(c: &Container, resource: &str, q: &Quantity, problem: QuantityError) -> Denial {
    Denial::BadQuantity {
        container: c.name.clone(),
        resource: resource.to_owned(),
        value: q.0.clone(),
        problem,
    }
}

/// Bytes of EPC for one entry; aliases count MiB.
fn epc_bytes(c: &Container, name: &str, q: &Quantity) -> Result<u64, Denial> {
    let parsed = quantity::parse(&q.0).map_err(|e| bad_quantity(c, name, q, e))?;
    if name == EPC {
        return Ok(parsed.value);
    }
    if parsed.suffix != Suffix::None {
        return Err(Denial::AliasWithSuffix {
            container: c.name.clone(),
            resource: name.to_owned(),
            value: q.0.clone(),
        });
    }
    parsed
        .value
        .checked_mul(MIB)
        .ok_or_else(|| bad_quantity(c, name, q, QuantityError::TooLarge))
}

fn container_epc(c: &Container) -> Result<Option<EpcUse>, Denial> {
    let limit = epc_entry(c, limits(c), "limits")?;
    let request = epc_entry(c, requests(c), "requests")?;
    let limit = limit
        .map(|(n, q)| epc_bytes(c, n, q).map(|b| (n, q, b)))
        .transpose()?;
    let request = request
        .map(|(n, q)| epc_bytes(c, n, q).map(|b| (n, q, b)))
        .transpose()?;
    let bytes = match (&limit, &request) {
        (None, None) => return Ok(None),
        (Some((_, _, l)), None) => *l,
        (None, Some((_, _, r))) => *r,
        (Some((ln, lq, l)), Some((rn, rq, r))) => {
            if l != r {
                return Err(Denial::RequestLimitMismatch {
                    container: c.name.clone(),
                    request: format!("{rn}={}", rq.0),
                    limit: format!("{ln}={}", lq.0),
                });
            }
            *l
        }
    };
    Ok(Some(EpcUse {
        bytes,
        limit_name: limit.map(|(n, _, _)| n.to_owned()),
        request_name: request.map(|(n, _, _)| n.to_owned()),
    }))
}

/// Changes to one resources section: names to remove, then names to set.
#[derive(Default)]
struct MapChanges {
    remove: Vec<String>,
    set: Vec<(String, String)>,
}

impl MapChanges {
    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty()
    }
}

/// Reconciles a device-plugin resource (count): copies limit ↔ request, or adds 1 if `required`.
fn device_changes(
    c: &Container,
    resource: &str,
    required: bool,
    lim: &mut MapChanges,
    req: &mut MapChanges,
) -> Result<(), Denial> {
    let l = limits(c).and_then(|m| m.get(resource));
    let r = requests(c).and_then(|m| m.get(resource));
    let count = |q: &Quantity| {
        quantity::parse(&q.0)
            .map(|p| p.value)
            .map_err(|e| bad_quantity(c, resource, q, e))
    };
    match (l, r) {
        (None, None) if required => {
            lim.set.push((resource.to_owned(), "1".to_owned()));
            req.set.push((resource.to_owned(), "1".to_owned()));
        }
        (None, None) => {}
        (Some(l), None) => {
            count(l)?;
            req.set.push((resource.to_owned(), l.0.clone()));
        }
        (None, Some(r)) => {
            count(r)?;
            lim.set.push((resource.to_owned(), r.0.clone()));
        }
        (Some(l), Some(r)) => {
            if count(l)? != count(r)? {
                return Err(Denial::RequestLimitMismatch {
                    container: c.name.clone(),
                    request: format!("{resource}={}", r.0),
                    limit: format!("{resource}={}", l.0),
                });
            }
        }
    }
    Ok(())
}

fn emit_map(patch: &mut Patch, path: &Pointer, existing: Option<&ResourceMap>, ch: MapChanges) {
    if ch.is_empty() {
        return;
    }
    match existing {
        None => {
            let map: Map<String, Value> = ch
                .set
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            patch.add(path.to_buf(), Value::Object(map));
        }
        Some(_) => {
            for name in ch.remove {
                patch.remove(path.with_trailing_token(name.as_str()));
            }
            for (name, value) in ch.set {
                patch.add(
                    path.with_trailing_token(name.as_str()),
                    Value::String(value),
                );
            }
        }
    }
}

/// How the pod gets quotes, from the quote-provider annotation.
enum Quoting<'a> {
    None,
    Aesmd,
    InProcess(&'a str),
}

fn quoting<'a>(
    pod: &'a Pod,
    slots: &[Slot<'_>],
    epc: &[Option<EpcUse>],
) -> Result<Quoting<'a>, Denial> {
    let Some(value) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(QUOTE_PROVIDER_ANNOTATION))
    else {
        return Ok(Quoting::None);
    };
    if value == AESMD {
        return Ok(Quoting::Aesmd);
    }
    let found = slots
        .iter()
        .zip(epc)
        .find(|(s, _)| s.container.name == *value);
    match found {
        None => Err(Denial::QuoteProviderMissing {
            value: value.clone(),
            containers: slots.iter().map(|s| s.container.name.clone()).collect(),
        }),
        Some((_, None)) => Err(Denial::QuoteProviderNotSgx {
            container: value.clone(),
        }),
        Some((_, Some(_))) => Ok(Quoting::InProcess(value)),
    }
}

/// The pod's effective EPC, computed the way the scheduler sums resources: regular containers
/// and restartable (sidecar) init containers add up; each other init container runs alone
/// beside the sidecars started before it.
fn pod_total(spec: &PodSpec, epc: &[Option<EpcUse>]) -> Result<u64, Denial> {
    let bytes = |e: Option<&Option<EpcUse>>| e.and_then(Option::as_ref).map_or(0, |u| u.bytes);
    let n = spec.containers.len();
    let mut regular: u64 = 0;
    for i in 0..n {
        regular = regular
            .checked_add(bytes(epc.get(i)))
            .ok_or(Denial::TotalTooLarge)?;
    }
    let mut sidecars: u64 = 0;
    let mut init_peak: u64 = 0;
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let b = bytes(epc.get(n + i));
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.checked_add(b).ok_or(Denial::TotalTooLarge)?;
        } else {
            let during = sidecars.checked_add(b).ok_or(Denial::TotalTooLarge)?;
            init_peak = init_peak.max(during);
        }
    }
    let steady = regular.checked_add(sidecars).ok_or(Denial::TotalTooLarge)?;
    Ok(steady.max(init_peak))
}

fn plan(pod: &Pod, config: &Config, placement: bool) -> Result<Patch, Denial> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Patch::default());
    };
    let slots = slots(spec);
    let epc = slots
        .iter()
        .map(|s| container_epc(s.container))
        .collect::<Result<Vec<_>, _>>()?;
    if epc.iter().all(Option::is_none) {
        return Ok(Patch::default());
    }
    let quoting = quoting(pod, &slots, &epc)?;
    let total = pod_total(spec, &epc)?;
    if let Some(max) = config.max_epc_per_pod
        && total > max
    {
        return Err(Denial::EpcAboveMaximum { total, max });
    }

    let mut patch = Patch::default();
    for (slot, usage) in slots.iter().zip(&epc) {
        let c = slot.container;
        let Some(usage) = usage else {
            continue;
        };
        let mut lim = MapChanges::default();
        let mut req = MapChanges::default();
        let text = format_binary_si(usage.bytes);
        for (name, ch) in [
            (&usage.limit_name, &mut lim),
            (&usage.request_name, &mut req),
        ] {
            match name.as_deref() {
                Some(EPC) => {}
                Some(alias) => {
                    ch.remove.push(alias.to_owned());
                    ch.set.push((EPC.to_owned(), text.clone()));
                }
                None => ch.set.push((EPC.to_owned(), text.clone())),
            }
        }
        device_changes(c, ENCLAVE, true, &mut lim, &mut req)?;
        // The quoting container gets the provisioning device: the one named by the annotation
        // (in-process quoting), or with out-of-process quoting the aesmd daemon itself, which
        // runs the provisioning and quoting enclaves (Intel's webhook does the same).
        let provider = match quoting {
            Quoting::InProcess(name) => name == c.name,
            Quoting::Aesmd => c.name == AESMD,
            Quoting::None => false,
        };
        device_changes(c, PROVISION, provider, &mut lim, &mut req)?;
        if lim.is_empty() && req.is_empty() {
            continue;
        }
        let resources = slot.base.with_trailing_token("resources");
        if c.resources.is_none() {
            patch.add(resources.clone(), json!({}));
        }
        emit_map(
            &mut patch,
            &resources.with_trailing_token("limits"),
            limits(c),
            lim,
        );
        emit_map(
            &mut patch,
            &resources.with_trailing_token("requests"),
            requests(c),
            req,
        );
    }

    if matches!(quoting, Quoting::Aesmd) {
        inject_aesmd(&mut patch, spec, &slots, &epc);
    }
    if placement {
        add_tolerations(&mut patch, spec, config);
        add_node_affinity(&mut patch, spec, config);
    }

    let want = format_binary_si(total);
    match pod.metadata.annotations.as_ref() {
        None => patch.add(ANNOTATIONS.to_buf(), json!({ EPC_ANNOTATION: want })),
        Some(annotations) => {
            let current = annotations
                .get(EPC_ANNOTATION)
                .and_then(|v| quantity::parse(v).ok());
            if current.map(|p| p.value) != Some(total) {
                patch.add(
                    ANNOTATIONS.with_trailing_token(EPC_ANNOTATION),
                    Value::String(want),
                );
            }
        }
    }
    Ok(patch)
}

/// Out-of-process quoting: mount the aesmd socket directory and point the SDK at it.
fn inject_aesmd(patch: &mut Patch, spec: &PodSpec, slots: &[Slot<'_>], epc: &[Option<EpcUse>]) {
    let has_daemon = slots.iter().any(|s| s.container.name == AESMD);
    let sidecar = has_daemon
        && slots
            .iter()
            .zip(epc)
            .any(|(s, e)| e.is_some() && s.container.name != AESMD);
    let mut mounted = false;
    for (slot, usage) in slots.iter().zip(epc) {
        let c = slot.container;
        let is_daemon = c.name == AESMD;
        if usage.is_none() && !(sidecar && is_daemon) {
            continue;
        }
        let has_mount = c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == AESMD_PATH);
        if !has_mount {
            let mount = json!({ "name": AESMD_VOLUME, "mountPath": AESMD_PATH });
            match c.volume_mounts {
                None => patch.add(slot.base.concat(VOLUME_MOUNTS), json!([mount])),
                Some(_) => patch.add(slot.base.concat(VOLUME_MOUNTS).concat(END), mount),
            }
            mounted = true;
        }
        let has_env = c.env.iter().flatten().any(|e| e.name == AESM_ADDR_ENV);
        if usage.is_some() && !is_daemon && !has_env {
            let env = json!({ "name": AESM_ADDR_ENV, "value": "1" });
            match c.env {
                None => patch.add(slot.base.concat(ENV), json!([env])),
                Some(_) => patch.add(slot.base.concat(ENV).concat(END), env),
            }
        }
    }
    let has_volume = spec
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == AESMD_VOLUME);
    if mounted && !has_volume {
        let volume = if sidecar {
            json!({ "name": AESMD_VOLUME, "emptyDir": { "medium": "Memory" } })
        } else {
            json!({
                "name": AESMD_VOLUME,
                "hostPath": { "path": AESMD_PATH, "type": "DirectoryOrCreate" }
            })
        };
        match spec.volumes {
            None => patch.add(VOLUMES.to_buf(), json!([volume])),
            Some(_) => patch.add(VOLUMES.concat(END), volume),
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn add_tolerations(patch: &mut Patch, spec: &PodSpec, config: &Config) {
    let existing = spec.tolerations.as_deref().unwrap_or_default();
    let missing: Vec<Value> = config
        .tolerations
        .iter()
        .filter(|t| !existing.contains(t))
        .map(to_json)
        .collect();
    if missing.is_empty() {
        return;
    }
    match spec.tolerations {
        None => patch.add(TOLERATIONS.to_buf(), Value::Array(missing)),
        Some(_) => {
            for t in missing {
                patch.add(TOLERATIONS.concat(END), t);
            }
        }
    }
}

fn add_node_affinity(patch: &mut Patch, spec: &PodSpec, config: &Config) {
    let wanted = &config.node_affinity;
    if wanted.is_empty() {
        return;
    }
    let term = || json!({ "matchExpressions": to_json(wanted) });
    let selector = || json!({ "nodeSelectorTerms": [term()] });
    let Some(affinity) = spec.affinity.as_ref() else {
        let value = json!({ "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": selector() } });
        patch.add(AFFINITY.to_buf(), value);
        return;
    };
    let Some(node) = affinity.node_affinity.as_ref() else {
        let value = json!({ "requiredDuringSchedulingIgnoredDuringExecution": selector() });
        patch.add(AFFINITY.concat(NODE_AFFINITY), value);
        return;
    };
    let required = AFFINITY.concat(NODE_AFFINITY).concat(REQUIRED);
    let Some(sel) = node
        .required_during_scheduling_ignored_during_execution
        .as_ref()
    else {
        patch.add(required, selector());
        return;
    };
    if sel.node_selector_terms.is_empty() {
        // The typed model cannot tell `{}`, `{"nodeSelectorTerms": null}` and `[]` apart, so
        // set the whole member: `add` creates it when absent and replaces it otherwise.
        patch.add(required.concat(TERMS), json!([term()]));
        return;
    }
    // Terms are ORed: every term must carry the requirements.
    for (i, t) in sel.node_selector_terms.iter().enumerate() {
        let path = required
            .concat(TERMS)
            .with_trailing_token(i)
            .concat(MATCH_EXPRESSIONS);
        let have = t.match_expressions.as_deref().unwrap_or_default();
        let missing: Vec<Value> = wanted
            .iter()
            .filter(|r| !have.contains(r))
            .map(to_json)
            .collect();
        if missing.is_empty() {
            continue;
        }
        match t.match_expressions {
            None => patch.add(path, Value::Array(missing)),
            Some(_) => {
                for r in missing {
                    patch.add(path.concat(END), r);
                }
            }
        }
    }
}
