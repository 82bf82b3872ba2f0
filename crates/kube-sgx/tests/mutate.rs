#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Table-driven mutation and validation cases: each patch is applied with an independent
//! RFC 6902 implementation (`json-patch`) and the resulting pod compared whole.

use k8s_openapi::api::core::v1::Pod;
use kube_sgx::{Config, Denial, mutate, parse_node_label, parse_toleration, validate};
use serde_json::{Value, json};

fn pod(v: &Value) -> Pod {
    serde_json::from_value(v.clone()).expect("test pod is a valid Pod")
}

/// Mutates, applies the patch, checks the result equals `expected`, then checks the result is
/// a fixed point (`mutate` gives an empty patch) and passes `validate`.
fn check(name: &str, input: Value, config: &Config, expected: Value) {
    let patch = mutate(&pod(&input), config).unwrap_or_else(|e| panic!("{name}: denied: {e}"));
    let ops: json_patch::Patch =
        serde_json::from_str(&serde_json::to_string(&patch).unwrap()).unwrap();
    let mut doc = input;
    json_patch::patch(&mut doc, &ops).unwrap_or_else(|e| panic!("{name}: patch fails: {e}"));
    assert_eq!(doc, expected, "{name}: patched pod");
    let again = mutate(&pod(&doc), config).unwrap();
    assert!(
        again.is_empty(),
        "{name}: not idempotent: {}",
        serde_json::to_string(&again).unwrap()
    );
    assert_eq!(validate(&pod(&doc), config), Ok(()), "{name}: validate");
}

/// The FAQ's example Job, as JSON (quantities as the YAML integer the FAQ writes).
fn faq_job() -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "sgx-test", "labels": {"app": "sgx-test"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "sgx-test"}},
                "spec": {
                    "containers": [{
                        "name": "sgxtest",
                        "image": "oeciteam/sgx-test:1.0",
                        "resources": {"limits": {"sgx.intel.com/sgx_epc_mem_in_MiB": 10}}
                    }],
                    "restartPolicy": "Never"
                }
            },
            "backoffLimit": 0
        }
    })
}

/// The pod the Job controller creates from the FAQ Job's template.
fn faq_pod() -> Value {
    let job = faq_job();
    let template = &job["spec"]["template"];
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "sgx-test-", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    })
}

fn sgx(epc: &str) -> Value {
    json!({"sgx.intel.com/epc": epc, "sgx.intel.com/enclave": "1"})
}

/// Resources of a quoting container: EPC, the enclave and the provisioning device.
fn sgx_provision(epc: &str) -> Value {
    json!({"sgx.intel.com/epc": epc, "sgx.intel.com/enclave": "1", "sgx.intel.com/provision": "1"})
}

#[test]
fn faq_job_verbatim() {
    let expected = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "sgx-test-",
            "labels": {"app": "sgx-test"},
            "annotations": {"sgx.intel.com/epc": "10Mi"}
        },
        "spec": {
            "containers": [{
                "name": "sgxtest",
                "image": "oeciteam/sgx-test:1.0",
                "resources": {"limits": sgx("10Mi"), "requests": sgx("10Mi")}
            }],
            "restartPolicy": "Never"
        }
    });
    check("faq", faq_pod(), &Config::new(), expected);
}

#[test]
fn faq_job_patch_ops() {
    let patch = mutate(&pod(&faq_pod()), &Config::new()).unwrap();
    assert_eq!(
        serde_json::to_value(&patch).unwrap(),
        json!([
            {"op": "remove", "path": "/spec/containers/0/resources/limits/sgx.intel.com~1sgx_epc_mem_in_MiB"},
            {"op": "add", "path": "/spec/containers/0/resources/limits/sgx.intel.com~1epc", "value": "10Mi"},
            {"op": "add", "path": "/spec/containers/0/resources/limits/sgx.intel.com~1enclave", "value": "1"},
            {"op": "add", "path": "/spec/containers/0/resources/requests", "value": sgx("10Mi")},
            {"op": "add", "path": "/metadata/annotations", "value": {"sgx.intel.com/epc": "10Mi"}}
        ])
    );
}

#[test]
fn intel_style_pod_with_host_aesmd() {
    let input = json!({
        "metadata": {"name": "intel", "annotations": {"sgx.intel.com/quote-provider": "aesmd"}},
        "spec": {"containers": [{
            "name": "app",
            "image": "app:1",
            "env": [{"name": "A", "value": "b"}],
            "resources": {
                "limits": {"cpu": "1", "sgx.intel.com/epc": "512Ki"},
                "requests": {"cpu": "500m", "sgx.intel.com/epc": "512Ki"}
            }
        }]}
    });
    let expected = json!({
        "metadata": {"name": "intel", "annotations": {
            "sgx.intel.com/quote-provider": "aesmd",
            "sgx.intel.com/epc": "512Ki"
        }},
        "spec": {
            "containers": [{
                "name": "app",
                "image": "app:1",
                "env": [{"name": "A", "value": "b"}, {"name": "SGX_AESM_ADDR", "value": "1"}],
                "volumeMounts": [{"name": "aesmd-socket", "mountPath": "/var/run/aesmd"}],
                "resources": {
                    "limits": {"cpu": "1", "sgx.intel.com/epc": "512Ki", "sgx.intel.com/enclave": "1"},
                    "requests": {"cpu": "500m", "sgx.intel.com/epc": "512Ki", "sgx.intel.com/enclave": "1"}
                }
            }],
            "volumes": [{"name": "aesmd-socket",
                         "hostPath": {"path": "/var/run/aesmd", "type": "DirectoryOrCreate"}}]
        }
    });
    check("intel", input, &Config::new(), expected);
}

#[test]
fn aks_gen1_pod_with_tolerations() {
    let config = Config::new().with_tolerations(vec![
        parse_toleration("kubernetes.azure.com/sgx_epc_mem_in_MiB=true:NoSchedule").unwrap(),
        parse_toleration("sgx.intel.com/epc:NoSchedule").unwrap(),
    ]);
    let input = json!({
        "metadata": {"name": "aks", "annotations": {"team": "x"}},
        "spec": {
            "containers": [{
                "name": "oe",
                "resources": {
                    "limits": {"kubernetes.azure.com/sgx_epc_mem_in_MiB": "82"},
                    "requests": {"kubernetes.azure.com/sgx_epc_mem_in_MiB": "82"}
                }
            }],
            "tolerations": [{"key": "kubernetes.azure.com/sgx_epc_mem_in_MiB", "operator": "Equal",
                             "value": "true", "effect": "NoSchedule"}]
        }
    });
    let expected = json!({
        "metadata": {"name": "aks", "annotations": {"team": "x", "sgx.intel.com/epc": "82Mi"}},
        "spec": {
            "containers": [{"name": "oe", "resources": {"limits": sgx("82Mi"), "requests": sgx("82Mi")}}],
            "tolerations": [
                {"key": "kubernetes.azure.com/sgx_epc_mem_in_MiB", "operator": "Equal",
                 "value": "true", "effect": "NoSchedule"},
                {"key": "sgx.intel.com/epc", "operator": "Exists", "effect": "NoSchedule"}
            ]
        }
    });
    check("aks-gen1", input, &config, expected);
}

#[test]
fn multi_container_with_in_process_quoting() {
    let input = json!({
        "metadata": {"name": "multi", "annotations": {"sgx.intel.com/quote-provider": "signer"}},
        "spec": {"containers": [
            {"name": "web", "resources": {"limits": {"memory": "1Gi"}}},
            {"name": "signer", "resources": {"limits": {"sgx.intel.com/epc": "8Mi"}}},
            {"name": "worker", "resources": {"requests": {"sgx.intel.com/sgx_epc_mem_in_MiB": "2"}}},
            {"name": "plain"}
        ]}
    });
    let mut signer = sgx("8Mi");
    signer["sgx.intel.com/provision"] = json!("1");
    let expected = json!({
        "metadata": {"name": "multi", "annotations": {
            "sgx.intel.com/quote-provider": "signer",
            "sgx.intel.com/epc": "10Mi"
        }},
        "spec": {"containers": [
            {"name": "web", "resources": {"limits": {"memory": "1Gi"}}},
            {"name": "signer", "resources": {"limits": signer, "requests": signer}},
            {"name": "worker", "resources": {"requests": sgx("2Mi"), "limits": sgx("2Mi")}},
            {"name": "plain"}
        ]}
    });
    check("multi", input, &Config::new(), expected);
}

#[test]
fn init_containers_and_native_sidecars() {
    let input = json!({
        "metadata": {"name": "init"},
        "spec": {
            "initContainers": [
                {"name": "proxy", "restartPolicy": "Always",
                 "resources": {"limits": {"sgx.intel.com/epc": "1Mi"}}},
                {"name": "provision", "resources": {"limits": {"sgx.intel.com/sgx_epc_mem_in_MiB": "20"}}}
            ],
            "containers": [{"name": "main", "resources": {"limits": {"sgx.intel.com/epc": "8Mi"}}}]
        }
    });
    // Total: max(main 8 + sidecar 1, sidecar 1 + init 20) = 21Mi.
    let expected = json!({
        "metadata": {"name": "init", "annotations": {"sgx.intel.com/epc": "21Mi"}},
        "spec": {
            "initContainers": [
                {"name": "proxy", "restartPolicy": "Always",
                 "resources": {"limits": sgx("1Mi"), "requests": sgx("1Mi")}},
                {"name": "provision", "resources": {"limits": sgx("20Mi"), "requests": sgx("20Mi")}}
            ],
            "containers": [{"name": "main", "resources": {"limits": sgx("8Mi"), "requests": sgx("8Mi")}}]
        }
    });
    check("init", input, &Config::new(), expected);
}

#[test]
fn aesmd_sidecar_gets_memory_volume() {
    let input = json!({
        "metadata": {"name": "sidecar", "annotations": {"sgx.intel.com/quote-provider": "aesmd"}},
        "spec": {
            "containers": [
                {"name": "app", "resources": {"limits": {"sgx.intel.com/epc": "16Mi"}}},
                {"name": "aesmd", "volumeMounts": [{"name": "conf", "mountPath": "/etc/aesmd.conf"}],
                 "resources": {"limits": {"sgx.intel.com/epc": "1Mi"}}}
            ],
            "volumes": [{"name": "conf", "configMap": {"name": "aesmd-conf"}}]
        }
    });
    let expected = json!({
        "metadata": {"name": "sidecar", "annotations": {
            "sgx.intel.com/quote-provider": "aesmd",
            "sgx.intel.com/epc": "17Mi"
        }},
        "spec": {
            "containers": [
                {"name": "app",
                 "resources": {"limits": sgx("16Mi"), "requests": sgx("16Mi")},
                 "volumeMounts": [{"name": "aesmd-socket", "mountPath": "/var/run/aesmd"}],
                 "env": [{"name": "SGX_AESM_ADDR", "value": "1"}]},
                {"name": "aesmd",
                 "volumeMounts": [{"name": "conf", "mountPath": "/etc/aesmd.conf"},
                                  {"name": "aesmd-socket", "mountPath": "/var/run/aesmd"}],
                 "resources": {"limits": sgx_provision("1Mi"), "requests": sgx_provision("1Mi")}}
            ],
            "volumes": [
                {"name": "conf", "configMap": {"name": "aesmd-conf"}},
                {"name": "aesmd-socket", "emptyDir": {"medium": "Memory"}}
            ]
        }
    });
    check("sidecar", input, &Config::new(), expected);
}

#[test]
fn node_affinity_added_to_every_term() {
    let config = Config::new().with_node_affinity(vec![
        parse_node_label("sgx.intel.com/capable=true").unwrap(),
    ]);
    let want = json!({"key": "sgx.intel.com/capable", "operator": "In", "values": ["true"]});
    let zone = json!({"key": "zone", "operator": "In", "values": ["a"]});
    let input = json!({
        "metadata": {"name": "aff", "annotations": {"sgx.intel.com/epc": "10485760"}},
        "spec": {
            "containers": [{"name": "c", "resources": {"limits": sgx("10Mi"), "requests": sgx("10Mi")}}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [zone]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
                ]}}}
        }
    });
    let expected = json!({
        "metadata": {"name": "aff", "annotations": {"sgx.intel.com/epc": "10485760"}},
        "spec": {
            "containers": [{"name": "c", "resources": {"limits": sgx("10Mi"), "requests": sgx("10Mi")}}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [zone, want]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}],
                     "matchExpressions": [want]}
                ]}}}
        }
    });
    check("affinity", input, &config, expected);

    // No affinity at all: the whole subtree is added.
    let bare = json!({"metadata": {}, "spec": {"containers": [
        {"name": "c", "resources": {"limits": {"sgx.intel.com/epc": "1Mi"}}}]}});
    let expected = json!({
        "metadata": {"annotations": {"sgx.intel.com/epc": "1Mi"}},
        "spec": {
            "containers": [{"name": "c", "resources": {"limits": sgx("1Mi"), "requests": sgx("1Mi")}}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [want]}]}}}
        }
    });
    check("affinity-bare", bare, &config, expected);
}

#[test]
fn already_mutated_pod_is_left_alone() {
    let done = json!({
        "metadata": {"name": "done", "annotations": {"sgx.intel.com/epc": "10Mi"}},
        "spec": {"containers": [{"name": "c", "resources": {
            "limits": {"sgx.intel.com/epc": "10485760", "sgx.intel.com/enclave": "1"},
            "requests": {"sgx.intel.com/epc": "10Mi", "sgx.intel.com/enclave": "1"}}}]}
    });
    assert!(mutate(&pod(&done), &Config::new()).unwrap().is_empty());
    assert_eq!(validate(&pod(&done), &Config::new()), Ok(()));
}

#[test]
fn non_sgx_pods_are_never_touched() {
    let config = Config::new()
        .with_tolerations(vec![parse_toleration("sgx:NoSchedule").unwrap()])
        .with_max_epc_per_pod(Some(0));
    let cases = [
        json!({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c"}]}}),
        json!({"metadata": {"name": "b", "annotations": {"sgx.intel.com/quote-provider": "nope"}},
               "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1.5"}}}]}}),
        json!({"metadata": {"name": "c"}, "spec": {"containers": [{"name": "c",
               "resources": {"limits": {"sgx.intel.com/enclave": "1"}}}]}}),
        json!({"metadata": {"name": "no-spec"}}),
    ];
    for input in cases {
        let p = pod(&input);
        assert_eq!(
            serde_json::to_string(&mutate(&p, &config).unwrap()).unwrap(),
            "[]",
            "{input}"
        );
        assert_eq!(validate(&p, &config), Ok(()), "{input}");
    }
}

fn one(limits: Value, requests: Value) -> Value {
    json!({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "app", "resources": {"limits": limits, "requests": requests}}]}})
}

#[test]
fn denials_have_actionable_messages() {
    let config = Config::new().with_max_epc_per_pod(Some(64 << 20));
    let alias = "sgx.intel.com/sgx_epc_mem_in_MiB";
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "fractional MiB",
            one(json!({alias: "1.5"}), json!({})),
            "bad-quantity",
            "container \"app\": sgx.intel.com/sgx_epc_mem_in_MiB is \"1.5\", which is not a whole \
             number; write a whole number of MiB (e.g. 10)",
        ),
        (
            "negative MiB",
            one(
                json!({"kubernetes.azure.com/sgx_epc_mem_in_MiB": "-10"}),
                json!({}),
            ),
            "bad-quantity",
            "container \"app\": kubernetes.azure.com/sgx_epc_mem_in_MiB is \"-10\", which is \
             negative; SGX resources cannot be negative",
        ),
        (
            "fractional bytes",
            one(json!({"sgx.intel.com/epc": "100m"}), json!({})),
            "bad-quantity",
            "container \"app\": sgx.intel.com/epc is \"100m\", which is not a whole number; write \
             a whole number of bytes (e.g. 10Mi)",
        ),
        (
            "not a quantity",
            one(json!({"sgx.intel.com/epc": "10MB"}), json!({})),
            "bad-quantity",
            "container \"app\": sgx.intel.com/epc is \"10MB\", which is not a Kubernetes quantity; \
             write a whole number of bytes (e.g. 10Mi)",
        ),
        (
            "too large",
            one(json!({alias: "17592186044416"}), json!({})),
            "bad-quantity",
            "container \"app\": sgx.intel.com/sgx_epc_mem_in_MiB is \"17592186044416\", which is \
             too large; use a realistic size",
        ),
        (
            "fractional enclave",
            one(
                json!({"sgx.intel.com/epc": "1Mi", "sgx.intel.com/enclave": "0.5"}),
                json!({}),
            ),
            "bad-quantity",
            "container \"app\": sgx.intel.com/enclave is \"0.5\", which is not a whole number; \
             write a whole number (e.g. 1)",
        ),
        (
            "alias with suffix",
            one(json!({alias: "10Mi"}), json!({})),
            "alias-with-suffix",
            "container \"app\": sgx.intel.com/sgx_epc_mem_in_MiB is \"10Mi\", but this resource \
             counts MiB and takes a plain whole number; write the number of MiB (e.g. 10), or use \
             sgx.intel.com/epc with a byte quantity (e.g. sgx.intel.com/epc: 10Mi)",
        ),
        (
            "alias and canonical",
            one(json!({alias: "10", "sgx.intel.com/epc": "10Mi"}), json!({})),
            "conflicting-names",
            "container \"app\" sets sgx.intel.com/epc and sgx.intel.com/sgx_epc_mem_in_MiB in \
             resources.limits; they name the same EPC and would be counted twice: keep only \
             sgx.intel.com/epc",
        ),
        (
            "two aliases",
            one(
                json!({}),
                json!({alias: "1", "kubernetes.azure.com/sgx_epc_mem_in_MiB": "1"}),
            ),
            "conflicting-names",
            "container \"app\" sets kubernetes.azure.com/sgx_epc_mem_in_MiB and \
             sgx.intel.com/sgx_epc_mem_in_MiB in resources.requests; they name the same EPC and \
             would be counted twice: keep only sgx.intel.com/epc",
        ),
        (
            "requests below limits",
            one(
                json!({"sgx.intel.com/epc": "10Mi"}),
                json!({"sgx.intel.com/epc": "5Mi"}),
            ),
            "request-limit-mismatch",
            "container \"app\": resources.requests sgx.intel.com/epc=5Mi differs from \
             resources.limits sgx.intel.com/epc=10Mi; SGX resources cannot be overcommitted: make \
             requests equal to limits, or remove the request",
        ),
        (
            "alias request vs canonical limit",
            one(json!({"sgx.intel.com/epc": "10Mi"}), json!({alias: "12"})),
            "request-limit-mismatch",
            "container \"app\": resources.requests sgx.intel.com/sgx_epc_mem_in_MiB=12 differs \
             from resources.limits sgx.intel.com/epc=10Mi; SGX resources cannot be overcommitted: \
             make requests equal to limits, or remove the request",
        ),
        (
            "enclave mismatch",
            one(
                json!({"sgx.intel.com/epc": "1Mi", "sgx.intel.com/enclave": "1"}),
                json!({"sgx.intel.com/enclave": "2"}),
            ),
            "request-limit-mismatch",
            "container \"app\": resources.requests sgx.intel.com/enclave=2 differs from \
             resources.limits sgx.intel.com/enclave=1; SGX resources cannot be overcommitted: make \
             requests equal to limits, or remove the request",
        ),
        (
            "above maximum",
            one(json!({"sgx.intel.com/epc": "128Mi"}), json!({})),
            "epc-above-maximum",
            "pod requests 128Mi of EPC in total, above this cluster's per-pod maximum of 64Mi; \
             lower the containers' sgx.intel.com/epc, or ask the cluster administrator to raise \
             the webhook's --max-epc-per-pod",
        ),
    ];
    for (name, input, reason, message) in cases {
        let p = pod(&input);
        let denial = mutate(&p, &config).unwrap_err();
        assert_eq!(denial.to_string(), message, "{name}");
        assert_eq!(denial.reason(), reason, "{name}");
        assert_eq!(
            validate(&p, &config).unwrap_err(),
            denial,
            "{name}: validate"
        );
    }
}

#[test]
fn quote_provider_denials() {
    let mut input = one(json!({"sgx.intel.com/epc": "1Mi"}), json!({}));
    input["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar"}));
    input["metadata"]["annotations"] = json!({"sgx.intel.com/quote-provider": "signer"});
    let denial = mutate(&pod(&input), &Config::new()).unwrap_err();
    assert_eq!(
        denial.to_string(),
        "pod annotation sgx.intel.com/quote-provider is \"signer\", which is neither \"aesmd\" nor \
         a container of this pod (containers: app, sidecar); set it to \"aesmd\" for \
         out-of-process quoting or to the name of the container that generates quotes"
    );
    assert_eq!(denial.code(), 400);

    input["metadata"]["annotations"] = json!({"sgx.intel.com/quote-provider": "sidecar"});
    let denial = mutate(&pod(&input), &Config::new()).unwrap_err();
    assert_eq!(
        denial.to_string(),
        "pod annotation sgx.intel.com/quote-provider names container \"sidecar\", which requests \
         no EPC; in-process quoting runs an enclave: give \"sidecar\" an sgx.intel.com/epc limit, \
         or set the annotation to \"aesmd\""
    );
    assert_eq!(denial.reason(), "quote-provider-not-sgx");
}

#[test]
fn total_overflow_is_denied() {
    let input = json!({"metadata": {}, "spec": {"containers": [
        {"name": "a", "resources": {"limits": {"sgx.intel.com/epc": "15Ei"}}},
        {"name": "b", "resources": {"limits": {"sgx.intel.com/epc": "15Ei"}}}]}});
    let denial = mutate(&pod(&input), &Config::new()).unwrap_err();
    assert_eq!(denial, Denial::TotalTooLarge);
    assert_eq!(
        denial.to_string(),
        "the pod's total EPC is too large to add up; lower the containers' sgx.intel.com/epc"
    );
}

#[test]
fn validate_rejects_unmutated_pods() {
    let denial = validate(&pod(&faq_pod()), &Config::new()).unwrap_err();
    assert_eq!(
        denial.to_string(),
        "pod is not normalized for SGX \
         (/spec/containers/0/resources/limits/sgx.intel.com~1sgx_epc_mem_in_MiB would change): \
         the confkube mutating webhook did not run on it; check that the \
         MutatingWebhookConfiguration for /mutate-pods is installed and its service is reachable"
    );
    assert_eq!(denial.code(), 403);
    assert_eq!(denial.reason(), "not-normalized");

    // Tolerations are placement hints: validate does not demand them.
    let config = Config::new().with_tolerations(vec![parse_toleration("sgx:NoSchedule").unwrap()]);
    let done = json!({"metadata": {"annotations": {"sgx.intel.com/epc": "1Mi"}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": sgx("1Mi"), "requests": sgx("1Mi")}}]}});
    assert_eq!(validate(&pod(&done), &config), Ok(()));
    assert!(!mutate(&pod(&done), &config).unwrap().is_empty());
}

#[test]
fn aesmd_daemonset_pod_mounts_the_host_socket_directory() {
    // Intel's aesmd DaemonSet: one container named aesmd, quote-provider aesmd, 1Mi of EPC.
    let input = json!({
        "metadata": {"name": "aesmd-x", "annotations": {"sgx.intel.com/quote-provider": "aesmd"}},
        "spec": {"containers": [{"name": "aesmd",
                                 "resources": {"limits": {"sgx.intel.com/epc": "1Mi"}}}]}
    });
    let expected = json!({
        "metadata": {"name": "aesmd-x", "annotations": {
            "sgx.intel.com/quote-provider": "aesmd",
            "sgx.intel.com/epc": "1Mi"
        }},
        "spec": {
            "containers": [{"name": "aesmd",
                "resources": {"limits": sgx_provision("1Mi"), "requests": sgx_provision("1Mi")},
                "volumeMounts": [{"name": "aesmd-socket", "mountPath": "/var/run/aesmd"}]}],
            "volumes": [{"name": "aesmd-socket",
                         "hostPath": {"path": "/var/run/aesmd", "type": "DirectoryOrCreate"}}]
        }
    });
    check("aesmd-daemonset", input, &Config::new(), expected);
}

/// Mutates `input`, asserts the exact patch, applies it with `json-patch` to the very JSON it
/// was computed from, and checks the result is a fixed point that `validate` accepts.
fn exact(name: &str, input: Value, config: &Config, want_ops: Value) {
    let patch = mutate(&pod(&input), config).unwrap_or_else(|e| panic!("{name}: denied: {e}"));
    assert_eq!(
        serde_json::to_value(&patch).unwrap(),
        want_ops,
        "{name}: patch"
    );
    let ops: json_patch::Patch = serde_json::from_value(want_ops).unwrap();
    let mut doc = input;
    json_patch::patch(&mut doc, &ops).unwrap_or_else(|e| panic!("{name}: patch fails: {e}"));
    let again = mutate(&pod(&doc), config).unwrap();
    assert!(
        again.is_empty(),
        "{name}: not idempotent: {}",
        serde_json::to_value(&again).unwrap()
    );
    assert_eq!(validate(&pod(&doc), config), Ok(()), "{name}: validate");
}

/// Issue 11 item 6: members the typed Pod model cannot tell from absent (`{}`, `null`, `[]`)
/// get patches that create or replace the member, never an append into a missing array.
#[test]
fn empty_or_missing_intermediate_members() {
    let affinity = Config::new().with_node_affinity(vec![
        parse_node_label("sgx.intel.com/capable=true").unwrap(),
    ]);
    let want = json!({"key": "sgx.intel.com/capable", "operator": "In", "values": ["true"]});
    let term = json!({"matchExpressions": [want]});
    let required = "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution";
    let with_spec = |extra: Value| {
        let mut spec = json!({"containers": [{"name": "c",
            "resources": {"limits": sgx("1Mi"), "requests": sgx("1Mi")}}]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        json!({"metadata": {"name": "p", "annotations": {"sgx.intel.com/epc": "1Mi"}}, "spec": spec})
    };
    let cases = [
        (
            "required {}",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}}),
            json!([{"op": "add", "path": format!("{required}/nodeSelectorTerms"), "value": [term]}]),
        ),
        (
            "nodeSelectorTerms null",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": null}}}}),
            json!([{"op": "add", "path": format!("{required}/nodeSelectorTerms"), "value": [term]}]),
        ),
        (
            "nodeSelectorTerms []",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": []}}}}),
            json!([{"op": "add", "path": format!("{required}/nodeSelectorTerms"), "value": [term]}]),
        ),
        (
            "nodeAffinity {}",
            json!({"affinity": {"nodeAffinity": {}}}),
            json!([{"op": "add", "path": required, "value": {"nodeSelectorTerms": [term]}}]),
        ),
        (
            "required null",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": null}}}),
            json!([{"op": "add", "path": required, "value": {"nodeSelectorTerms": [term]}}]),
        ),
        (
            "affinity {}",
            json!({"affinity": {}}),
            json!([{"op": "add", "path": "/spec/affinity/nodeAffinity",
                    "value": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}]),
        ),
        (
            "affinity null",
            json!({"affinity": null}),
            json!([{"op": "add", "path": "/spec/affinity", "value": {"nodeAffinity":
                    {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}}]),
        ),
        (
            "term {}",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{}]}}}}),
            json!([{"op": "add", "path": format!("{required}/nodeSelectorTerms/0/matchExpressions"),
                    "value": [want]}]),
        ),
        (
            "matchExpressions null",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": null}]}}}}),
            json!([{"op": "add", "path": format!("{required}/nodeSelectorTerms/0/matchExpressions"),
                    "value": [want]}]),
        ),
    ];
    for (name, extra, ops) in cases {
        exact(name, with_spec(extra), &affinity, ops);
    }

    let tolerate = Config::new().with_tolerations(vec![
        parse_toleration("sgx.intel.com/epc:NoSchedule").unwrap(),
    ]);
    let tol = json!({"key": "sgx.intel.com/epc", "operator": "Exists", "effect": "NoSchedule"});
    exact(
        "tolerations null",
        with_spec(json!({"tolerations": null})),
        &tolerate,
        json!([{"op": "add", "path": "/spec/tolerations", "value": [tol]}]),
    );
    exact(
        "tolerations []",
        with_spec(json!({"tolerations": []})),
        &tolerate,
        json!([{"op": "add", "path": "/spec/tolerations/-", "value": tol}]),
    );

    // Resources and annotations: `null` members are replaced, `{}` members are filled.
    let c = Config::new();
    exact(
        "limits null, annotations null",
        json!({"metadata": {"name": "p", "annotations": null}, "spec": {"containers": [{"name": "c",
            "resources": {"limits": null, "requests": sgx("1Mi")}}]}}),
        &c,
        json!([
            {"op": "add", "path": "/spec/containers/0/resources/limits", "value": sgx("1Mi")},
            {"op": "add", "path": "/metadata/annotations", "value": {"sgx.intel.com/epc": "1Mi"}}
        ]),
    );
    exact(
        "limits {}",
        json!({"metadata": {"name": "p", "annotations": {}}, "spec": {"containers": [{"name": "c",
            "resources": {"limits": {}, "requests": {"sgx.intel.com/epc": "1Mi"}}}]}}),
        &c,
        json!([
            {"op": "add", "path": "/spec/containers/0/resources/limits/sgx.intel.com~1epc", "value": "1Mi"},
            {"op": "add", "path": "/spec/containers/0/resources/limits/sgx.intel.com~1enclave", "value": "1"},
            {"op": "add", "path": "/spec/containers/0/resources/requests/sgx.intel.com~1enclave", "value": "1"},
            {"op": "add", "path": "/metadata/annotations/sgx.intel.com~1epc", "value": "1Mi"}
        ]),
    );
    exact(
        "aesmd with null mounts, env and volumes",
        json!({"metadata": {"name": "p", "annotations": {"sgx.intel.com/quote-provider": "aesmd",
                                                         "sgx.intel.com/epc": "1Mi"}},
               "spec": {"volumes": null, "containers": [{"name": "c", "env": null, "volumeMounts": null,
                   "resources": {"limits": sgx("1Mi"), "requests": sgx("1Mi")}}]}}),
        &c,
        json!([
            {"op": "add", "path": "/spec/containers/0/volumeMounts",
             "value": [{"name": "aesmd-socket", "mountPath": "/var/run/aesmd"}]},
            {"op": "add", "path": "/spec/containers/0/env", "value": [{"name": "SGX_AESM_ADDR", "value": "1"}]},
            {"op": "add", "path": "/spec/volumes", "value": [{"name": "aesmd-socket",
                "hostPath": {"path": "/var/run/aesmd", "type": "DirectoryOrCreate"}}]}
        ]),
    );
}
