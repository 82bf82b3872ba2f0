//! AdmissionReview v1 on the wire: decode a request body, run [`crate::mutate`] or
//! [`crate::validate`], encode the response body.
//!
//! The response is encoded here rather than with `kube::core::admission`, which writes `patch`
//! as an array of numbers instead of the base64 string the API server expects
//! (kube-rs/kube#1781). Only pod `CREATE` requests are examined; every other request is
//! allowed unchanged, so a misconfigured rule can never block unrelated objects, and a pod whose
//! JSON cannot contain an EPC resource name is allowed without being decoded at all.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{Config, Denial, Patch, mutate, validate};

/// The only AdmissionReview version spoken.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Which answer the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/mutate-pods`: allow with a JSON patch, or deny.
    Mutate,
    /// `/validate-pods`: allow or deny, never patch.
    Validate,
    /// Allow everything unchanged, decoding only the envelope (baseline and emergency bypass).
    Passthrough,
}

/// What the review decided, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Not a pod creation, or a pod without EPC, or passthrough: allowed, no patch.
    Ignored,
    /// An SGX pod allowed as it is.
    Allowed,
    /// An SGX pod allowed with a patch.
    Patched,
    /// Denied; the [`Denial::reason`] code.
    Denied(&'static str),
}

/// A decided review: the response body and the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    /// The AdmissionReview response, JSON.
    pub body: Vec<u8>,
    /// What was decided.
    pub outcome: Outcome,
}

/// serde_json's error decoding a body or an object, kept whole: [`JsonError::get`] tells the
/// category, line and column. Two are equal when they say the same at the same place.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(std::sync::Arc<serde_json::Error>);

impl JsonError {
    /// The decoder's error.
    pub fn get(&self) -> &serde_json::Error {
        &self.0
    }
}

impl From<serde_json::Error> for JsonError {
    fn from(e: serde_json::Error) -> Self {
        Self(std::sync::Arc::new(e))
    }
}

impl PartialEq for JsonError {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.get(), other.get());
        a.classify() == b.classify()
            && a.line() == b.line()
            && a.column() == b.column()
            && a.to_string() == b.to_string()
    }
}

impl Eq for JsonError {}

/// The body cannot be answered with an AdmissionReview (the server replies 400 with this text).
///
/// Each message shows its cause (the decoder's words), so none is exposed again as `source()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    /// The body is not a JSON AdmissionReview.
    #[error("request body is not a JSON AdmissionReview: {0}")]
    Json(JsonError),
    /// The body is some other object: its `kind` (expected `AdmissionReview`).
    #[error("request body has kind \"{0}\", expected AdmissionReview")]
    Kind(String),
    /// The body is an AdmissionReview of another version: its `apiVersion` (expected
    /// [`API_VERSION`]).
    #[error(
        "AdmissionReview apiVersion is \"{0}\", but this webhook speaks {API_VERSION} only; set \
         admissionReviewVersions: [\"v1\"] in the webhook configuration"
    )]
    Version(String),
    /// The review carries no `request`.
    #[error("AdmissionReview has no request")]
    MissingRequest,
    /// A pod creation without `request.object`.
    #[error("AdmissionReview request {uid} creates a pod but has no request.object")]
    MissingObject {
        /// The request uid.
        uid: String,
    },
    /// `request.object` is not a Pod.
    #[error("AdmissionReview request {uid}: request.object is not a valid Pod: {error}")]
    Object {
        /// The request uid.
        uid: String,
        /// The decoder's error (line and column within `request.object`).
        error: JsonError,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(borrow)]
    request: Option<RequestIn<'a>>,
}

#[derive(Deserialize, Default)]
struct GroupResource {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<'a> {
    uid: String,
    #[serde(default)]
    kind: Option<GroupResource>,
    #[serde(default)]
    resource: Option<GroupResource>,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
}

impl RequestIn<'_> {
    fn is_pod_create(&self) -> bool {
        let core_pods = match (&self.resource, &self.kind) {
            (Some(r), _) => r.group.is_empty() && r.resource == "pods",
            (None, Some(k)) => k.group.is_empty() && k.kind == "Pod",
            (None, None) => false,
        };
        core_pods
            && self.sub_resource.as_deref().unwrap_or_default().is_empty()
            && self.operation.as_deref() == Some("CREATE")
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut>,
}

#[derive(Serialize)]
struct StatusOut {
    status: &'static str,
    code: u16,
    reason: &'static str,
    message: String,
}

/// Decides one AdmissionReview body for `endpoint`.
pub fn review(endpoint: Endpoint, body: &[u8], config: &Config) -> Result<Reviewed, ReviewError> {
    let input: ReviewIn<'_> =
        serde_json::from_slice(body).map_err(|e| ReviewError::Json(e.into()))?;
    if input.kind != "AdmissionReview" {
        return Err(ReviewError::Kind(input.kind));
    }
    if input.api_version != API_VERSION {
        return Err(ReviewError::Version(input.api_version));
    }
    let request = input.request.ok_or(ReviewError::MissingRequest)?;
    let uid = request.uid.as_str();
    if endpoint == Endpoint::Passthrough || !request.is_pod_create() {
        return Ok(answer(uid, Decision::Allow, Outcome::Ignored));
    }
    let raw = request.object.ok_or_else(|| ReviewError::MissingObject {
        uid: uid.to_owned(),
    })?;
    if !may_request_epc(raw.get()) {
        return Ok(answer(uid, Decision::Allow, Outcome::Ignored));
    }
    let lean: lean::Pod = serde_json::from_str(raw.get()).map_err(|e| ReviewError::Object {
        uid: uid.to_owned(),
        error: e.into(),
    })?;
    let has_metadata = lean.has_metadata();
    let pod: Pod = lean.into();
    Ok(decide(endpoint, uid, &pod, has_metadata, config))
}

/// `patch` preceded by the creation of an empty `/metadata`.
fn with_metadata(patch: Patch) -> Patch {
    let mut ops = vec![json_patch::PatchOperation::Add(json_patch::AddOperation {
        path: jsonptr::PointerBuf::from_tokens(["metadata"]),
        value: serde_json::Value::Object(serde_json::Map::new()),
    })];
    ops.extend(patch.0);
    Patch(ops)
}

/// Cheap pre-check on the raw pod JSON: false only when the pod certainly names no EPC
/// resource, so it can be allowed without decoding. Without any backslash escape every JSON
/// string is literal, so a resource key must appear verbatim; the API server encodes objects
/// with Go's encoding/json, which escapes neither `/` nor letters. Any escape means "decode".
fn may_request_epc(raw: &str) -> bool {
    raw.contains('\\') || raw.contains(crate::EPC) || raw.contains("_epc_mem_in_MiB")
}

enum Decision {
    Allow,
    Patch(Patch),
    Deny(Denial),
}

/// `has_metadata`: whether the object has a `metadata` member. The typed Pod cannot tell a
/// missing `metadata` from an empty one, and the patch's `/metadata/...` operations need the
/// member to exist in the object it applies to.
fn decide(
    endpoint: Endpoint,
    uid: &str,
    pod: &Pod,
    has_metadata: bool,
    config: &Config,
) -> Reviewed {
    let sgx = |outcome| {
        if is_sgx(pod) {
            outcome
        } else {
            Outcome::Ignored
        }
    };
    match endpoint {
        Endpoint::Mutate => match mutate(pod, config) {
            Ok(patch) if patch.is_empty() => answer(uid, Decision::Allow, sgx(Outcome::Allowed)),
            Ok(patch) if has_metadata => answer(uid, Decision::Patch(patch), Outcome::Patched),
            Ok(patch) => answer(uid, Decision::Patch(with_metadata(patch)), Outcome::Patched),
            Err(d) => {
                let reason = d.reason();
                answer(uid, Decision::Deny(d), Outcome::Denied(reason))
            }
        },
        Endpoint::Validate => match validate(pod, config) {
            Ok(()) => answer(uid, Decision::Allow, sgx(Outcome::Allowed)),
            Err(d) => {
                let reason = d.reason();
                answer(uid, Decision::Deny(d), Outcome::Denied(reason))
            }
        },
        Endpoint::Passthrough => answer(uid, Decision::Allow, Outcome::Ignored),
    }
}

fn is_sgx(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.resources.as_ref())
        .flat_map(|r| r.limits.iter().chain(r.requests.iter()).flatten())
        .any(|(k, _)| k == crate::EPC || crate::EPC_MIB_ALIASES.contains(&k.as_str()))
}

fn answer(uid: &str, decision: Decision, outcome: Outcome) -> Reviewed {
    let body = match decision {
        Decision::Allow => allowed_body(uid, None),
        Decision::Patch(patch) => allowed_body(uid, Some(&patch)),
        Decision::Deny(d) => {
            let code = d.code();
            let status = StatusOut {
                status: "Failure",
                code,
                reason: if code == 403 {
                    "Forbidden"
                } else {
                    "BadRequest"
                },
                message: d.to_string(),
            };
            let out = ReviewOut {
                api_version: API_VERSION,
                kind: "AdmissionReview",
                response: ResponseOut {
                    uid,
                    allowed: false,
                    status: Some(status),
                },
            };
            // Serializing strings and integers cannot fail.
            serde_json::to_vec(&out).unwrap_or_default()
        }
    };
    Reviewed { body, outcome }
}

/// The allowed response, written directly: the hot path of the webhook. Only `uid` needs JSON
/// escaping; base64 text never does.
fn allowed_body(uid: &str, patch: Option<&Patch>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"#,
    );
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, uid);
    out.extend_from_slice(br#","allowed":true"#);
    if let Some(patch) = patch {
        out.extend_from_slice(br#","patchType":"JSONPatch","patch":""#);
        let json = serde_json::to_vec(patch).unwrap_or_default();
        let start = out.len();
        out.resize(
            start + base64::encoded_len(json.len(), true).unwrap_or(0),
            0,
        );
        let written = STANDARD
            .encode_slice(&json, out.get_mut(start..).unwrap_or_default())
            .unwrap_or(0);
        out.truncate(start + written);
        out.push(b'"');
    }
    out.extend_from_slice(b"}}");
    out
}

/// The fields of a Pod that [`crate::mutate`] and [`crate::validate`] read, decoded without
/// allocating the rest of the object (images, probes, owner references, ...), then turned into
/// a `k8s_openapi` Pod holding just those fields. Decoding is about 3x faster than the full
/// Pod; `tests::lean_decode_matches_full_decode` and the fuzz target check that both give the
/// same answers.
mod lean {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1 as core;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub(super) struct Pod {
        #[serde(default)]
        metadata: Option<Metadata>,
        #[serde(default)]
        spec: Option<Spec>,
    }

    impl Pod {
        /// Whether the object has a (non-null) `metadata` member.
        pub(super) fn has_metadata(&self) -> bool {
            self.metadata.is_some()
        }
    }

    #[derive(Deserialize, Default)]
    struct Metadata {
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Spec {
        #[serde(default)]
        containers: Vec<Container>,
        #[serde(default)]
        init_containers: Option<Vec<Container>>,
        #[serde(default)]
        tolerations: Option<Vec<core::Toleration>>,
        #[serde(default)]
        affinity: Option<core::Affinity>,
        #[serde(default)]
        volumes: Option<Vec<Named>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Container {
        name: String,
        #[serde(default)]
        resources: Option<core::ResourceRequirements>,
        #[serde(default)]
        env: Option<Vec<Named>>,
        #[serde(default)]
        volume_mounts: Option<Vec<Mount>>,
        #[serde(default)]
        restart_policy: Option<String>,
    }

    #[derive(Deserialize)]
    struct Named {
        name: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Mount {
        #[serde(default)]
        name: String,
        mount_path: String,
    }

    impl From<Container> for core::Container {
        fn from(c: Container) -> Self {
            core::Container {
                name: c.name,
                resources: c.resources,
                env: c.env.map(|v| {
                    v.into_iter()
                        .map(|e| core::EnvVar {
                            name: e.name,
                            ..Default::default()
                        })
                        .collect()
                }),
                volume_mounts: c.volume_mounts.map(|v| {
                    v.into_iter()
                        .map(|m| core::VolumeMount {
                            name: m.name,
                            mount_path: m.mount_path,
                            ..Default::default()
                        })
                        .collect()
                }),
                restart_policy: c.restart_policy,
                ..Default::default()
            }
        }
    }

    impl From<Pod> for core::Pod {
        fn from(p: Pod) -> Self {
            let containers = |v: Vec<Container>| v.into_iter().map(Into::into).collect();
            core::Pod {
                metadata: ObjectMeta {
                    annotations: p.metadata.and_then(|m| m.annotations),
                    ..Default::default()
                },
                spec: p.spec.map(|s| core::PodSpec {
                    containers: containers(s.containers),
                    init_containers: s.init_containers.map(containers),
                    tolerations: s.tolerations,
                    affinity: s.affinity,
                    volumes: s.volumes.map(|v| {
                        v.into_iter()
                            .map(|n| core::Volume {
                                name: n.name,
                                ..Default::default()
                            })
                            .collect()
                    }),
                    ..Default::default()
                }),
                status: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lean_decode_matches_full_decode() {
        let config = Config::new()
            .with_tolerations(vec![crate::parse_toleration("sgx:NoSchedule").unwrap()])
            .with_node_affinity(vec![crate::parse_node_label("sgx=true").unwrap()]);
        let pods = [
            json!({"metadata": {"name": "a", "annotations": {"sgx.intel.com/quote-provider": "aesmd"}},
                   "spec": {"containers": [
                       {"name": "app", "image": "x", "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "volumeMounts": [{"name": "v", "mountPath": "/v", "readOnly": true}],
                        "resources": {"limits": {"sgx.intel.com/sgx_epc_mem_in_MiB": "4"}}},
                       {"name": "aesmd", "resources": {"limits": {"sgx.intel.com/epc": "1Mi"}}}],
                       "initContainers": [{"name": "i", "restartPolicy": "Always",
                        "resources": {"requests": {"sgx.intel.com/epc": "2Mi"}}}],
                       "volumes": [{"name": "v", "emptyDir": {}}],
                       "tolerations": [{"key": "k", "operator": "Exists"}],
                       "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                           {"nodeSelectorTerms": [{"matchExpressions": [{"key": "z", "operator": "Exists"}]}]}}}}}),
            json!({"metadata": {"annotations": {"sgx.intel.com/quote-provider": "app"}},
                   "spec": {"containers": [{"name": "app", "resources": {"limits": {"sgx.intel.com/epc": "3Mi"},
                                                                          "requests": {"sgx.intel.com/epc": "2Mi"}}}]}}),
            json!({"spec": {"containers": [{"name": "c", "env": null, "volumeMounts": [],
                   "resources": {"limits": {"kubernetes.azure.com/sgx_epc_mem_in_MiB": "1"}}}]}}),
            json!({"metadata": {}}),
        ];
        for pod in pods {
            let full: Pod = serde_json::from_value(pod.clone()).unwrap();
            let lean: Pod = serde_json::from_value::<lean::Pod>(pod.clone())
                .unwrap()
                .into();
            assert_eq!(mutate(&lean, &config), mutate(&full, &config), "{pod}");
            assert_eq!(validate(&lean, &config), validate(&full, &config), "{pod}");
        }
    }

    #[test]
    fn allowed_body_escapes_uid() {
        let body = allowed_body("a\"b", None);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"a\"b","allowed":true}}"#
        );
    }
}
