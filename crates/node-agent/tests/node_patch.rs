//! The node patcher against a local HTTP stand-in of the API server that serves one Node,
//! applies RFC 6902 JSON patches the way the API server does (the `status` subresource only
//! changes `.status`, the main resource never changes `.status`) and records every request.
//! The client is the real kube client, configured through a kubeconfig file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use node_agent::Chain;
use node_agent::discovery::discover;
use node_agent::patch::{NodeFacts, desired};
use node_agent::patcher::{PatchError, Reconciled, client, reconcile, run_patcher};
use node_agent::probe::{DeviceNodes, FixtureProbe};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    content_type: String,
    body: Value,
}

#[derive(Default)]
struct State {
    node: Option<Value>,
    pods: Vec<Value>,
    events: Vec<Value>,
    requests: Vec<Recorded>,
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn handle(
    state: &Mutex<State>,
    method: &str,
    path: &str,
    query: &str,
    ct: &str,
    body: &[u8],
) -> (u16, Value) {
    let mut st = state.lock().unwrap();
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    st.requests.push(Recorded {
        method: method.to_owned(),
        path: path.to_owned(),
        content_type: ct.to_owned(),
        body: parsed.clone(),
    });
    if method == "GET" && path == "/api/v1/pods" {
        // Only the field selector the agent uses: spec.nodeName=<node>.
        let node = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("fieldSelector="))
            .map(|v| v.replace("%3D", "=").replace("%2F", "/"))
            .and_then(|v| v.strip_prefix("spec.nodeName=").map(str::to_owned));
        let Some(node) = node else {
            return status(
                400,
                "BadRequest",
                "expected fieldSelector=spec.nodeName=<node>",
            );
        };
        let items: Vec<Value> = st
            .pods
            .iter()
            .filter(|p| p["spec"]["nodeName"] == json!(node))
            .cloned()
            .collect();
        return (
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
        );
    }
    if let Some(ns) = path
        .strip_prefix("/api/v1/namespaces/")
        .and_then(|r| r.strip_suffix("/events"))
    {
        if method != "POST" {
            return status(405, "MethodNotAllowed", method);
        }
        if parsed["involvedObject"]["namespace"] != json!(ns) {
            return status(422, "Invalid", "involvedObject.namespace does not match");
        }
        let mut ev = parsed;
        let n = st.events.len();
        ev["metadata"]["name"] = json!(format!(
            "{}{n}",
            ev["metadata"]["generateName"].as_str().unwrap_or("")
        ));
        st.events.push(ev.clone());
        return (201, ev);
    }
    let (name, sub) = match path.strip_prefix("/api/v1/nodes/") {
        Some(rest) => match rest.split_once('/') {
            Some((n, s)) => (n.to_owned(), Some(s.to_owned())),
            None => (rest.to_owned(), None),
        },
        None => return status(404, "NotFound", "unknown path"),
    };
    let Some(node) = st.node.clone() else {
        return status(404, "NotFound", &format!("nodes \"{name}\" not found"));
    };
    if node["metadata"]["name"] != json!(name) {
        return status(404, "NotFound", &format!("nodes \"{name}\" not found"));
    }
    match (method, sub.as_deref()) {
        ("GET", None) => (200, node),
        ("PATCH", sub @ (None | Some("status"))) => {
            if ct != "application/json-patch+json" {
                return status(415, "UnsupportedMediaType", ct);
            }
            let patch: json_patch::Patch = match serde_json::from_value(parsed) {
                Ok(p) => p,
                Err(e) => return status(400, "BadRequest", &e.to_string()),
            };
            let mut patched = node.clone();
            if let Err(e) = json_patch::patch(&mut patched, &patch) {
                return status(422, "Invalid", &e.to_string());
            }
            let mut result = node;
            if sub.is_some() {
                result["status"] = patched["status"].clone();
            } else {
                let keep = result["status"].clone();
                result = patched;
                result["status"] = keep;
            }
            st.node = Some(result.clone());
            (200, result)
        }
        _ => status(405, "MethodNotAllowed", method),
    }
}

struct ApiServer {
    state: Arc<Mutex<State>>,
    kubeconfig: PathBuf,
    dir: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_api(tag: &str, node: Option<Value>) -> ApiServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Mutex::new(State {
        node,
        ..State::default()
    }));
    let st = state.clone();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let st = st.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let st = st.clone();
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().path().to_owned();
                            let query = req.uri().query().unwrap_or("").to_owned();
                            let ct = req
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let (code, value) = handle(&st, &method, &path, &query, &ct, &body);
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(code)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(value.to_string())))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let dir = std::env::temp_dir().join(format!("node-agent-api-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: agent\n  user: {{}}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: agent\n\
             current-context: standin\n"
        ),
    )
    .unwrap();
    ApiServer {
        state,
        kubeconfig,
        dir,
        task,
    }
}

fn bare_node() -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": "sgx-1", "labels": {"kubernetes.io/arch": "amd64"}},
           "status": {"capacity": {"cpu": "8", "memory": "32Gi"}}})
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn facts(name: &str) -> NodeFacts {
    desired(&discover(&FixtureProbe::open(fixture(name)).unwrap(), None).unwrap()).unwrap()
}

fn take_requests(api: &ApiServer) -> Vec<Recorded> {
    std::mem::take(&mut api.state.lock().unwrap().requests)
}

fn node(api: &ApiServer) -> Value {
    api.state.lock().unwrap().node.clone().unwrap()
}

#[tokio::test]
async fn patches_capacity_and_labels_then_stays_quiet() {
    let api = start_api("fresh", Some(bare_node())).await;
    let kube = client(Some(&api.kubeconfig)).await.unwrap();
    let want = facts("one-socket.json");

    let done = reconcile(&kube, "sgx-1", Some(&want)).await.unwrap();
    assert_eq!(
        done,
        Reconciled {
            labels: true,
            capacity: true
        }
    );
    let reqs = take_requests(&api);
    assert_eq!(
        reqs.iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect::<Vec<_>>(),
        [
            ("GET", "/api/v1/nodes/sgx-1"),
            ("PATCH", "/api/v1/nodes/sgx-1"),
            ("PATCH", "/api/v1/nodes/sgx-1/status"),
        ]
    );
    assert_eq!(reqs[1].content_type, "application/json-patch+json");
    assert_eq!(reqs[2].content_type, "application/json-patch+json");
    assert_eq!(
        reqs[2].body,
        json!([{"op": "add", "path": "/status/capacity/sgx.intel.com~1epc", "value": "4261412864"}])
    );
    let n = node(&api);
    assert_eq!(n["status"]["capacity"]["sgx.intel.com/epc"], "4261412864");
    assert_eq!(n["status"]["capacity"]["cpu"], "8");
    assert_eq!(n["metadata"]["labels"]["sgx.intel.com/capable"], "true");
    assert_eq!(n["metadata"]["labels"]["sgx.confkube.io/sgx2"], "true");
    assert_eq!(n["metadata"]["labels"]["sgx.confkube.io/epc-sections"], "1");
    assert_eq!(n["metadata"]["labels"]["kubernetes.io/arch"], "amd64");

    // In sync: only a GET.
    let done = reconcile(&kube, "sgx-1", Some(&want)).await.unwrap();
    assert_eq!(done, Reconciled::default());
    assert_eq!(take_requests(&api).len(), 1);
}

#[tokio::test]
async fn repairs_drift_and_a_recreated_node() {
    let api = start_api("drift", Some(bare_node())).await;
    let kube = client(Some(&api.kubeconfig)).await.unwrap();
    let want = facts("two-socket.json");
    reconcile(&kube, "sgx-1", Some(&want)).await.unwrap();
    {
        let mut st = api.state.lock().unwrap();
        let n = st.node.as_mut().unwrap();
        n["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("sgx.intel.com/capable");
        n["status"]["capacity"]["sgx.intel.com/epc"] = json!("0");
    }
    let done = reconcile(&kube, "sgx-1", Some(&want)).await.unwrap();
    assert_eq!(
        done,
        Reconciled {
            labels: true,
            capacity: true
        }
    );
    let n = node(&api);
    assert_eq!(n["metadata"]["labels"]["sgx.intel.com/capable"], "true");
    assert_eq!(n["status"]["capacity"]["sgx.intel.com/epc"], "34292629504");

    // The node object is deleted and re-created by the kubelet: everything comes back.
    api.state.lock().unwrap().node = Some(bare_node());
    let done = reconcile(&kube, "sgx-1", Some(&want)).await.unwrap();
    assert_eq!(
        done,
        Reconciled {
            labels: true,
            capacity: true
        }
    );
    assert_eq!(
        node(&api)["status"]["capacity"]["sgx.intel.com/epc"],
        "34292629504"
    );
}

#[tokio::test]
async fn removes_everything_when_sgx_disappears() {
    let api = start_api("gone", Some(bare_node())).await;
    let kube = client(Some(&api.kubeconfig)).await.unwrap();
    reconcile(&kube, "sgx-1", Some(&facts("one-socket.json")))
        .await
        .unwrap();
    take_requests(&api);
    let done = reconcile(&kube, "sgx-1", None).await.unwrap();
    assert_eq!(
        done,
        Reconciled {
            labels: true,
            capacity: true
        }
    );
    let reqs = take_requests(&api);
    assert_eq!(
        reqs[2].body,
        json!([{"op": "remove", "path": "/status/capacity/sgx.intel.com~1epc"}])
    );
    assert_eq!(node(&api), bare_node());
}

#[tokio::test]
async fn missing_node_and_bad_kubeconfig_are_clear_errors() {
    let api = start_api("missing", None).await;
    let kube = client(Some(&api.kubeconfig)).await.unwrap();
    let err = reconcile(&kube, "sgx-1", None).await.unwrap_err();
    assert!(
        matches!(err, PatchError::Api { action: "get", .. }),
        "{err:?}"
    );
    let text = Chain(&err).to_string();
    assert!(text.starts_with("node sgx-1: get: "), "{text}");
    assert!(text.contains("nodes \"sgx-1\" not found"), "{text}");

    let absent = api.dir.join("no-such-kubeconfig");
    let Err(err) = client(Some(&absent)).await else {
        panic!("a missing kubeconfig must be an error");
    };
    assert!(matches!(err, PatchError::Kubeconfig { .. }), "{err:?}");
    assert!(
        Chain(&err).to_string().starts_with(&format!(
            "Kubernetes client configuration: {}: ",
            absent.display()
        )),
        "{err}"
    );
}

async fn wait_for(api: &ApiServer, pred: impl Fn(&Value) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !pred(&node(api)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node never reached the state: {}",
            node(api)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn patcher_follows_device_health() {
    let api = start_api("health", Some(bare_node())).await;
    let kube = client(Some(&api.kubeconfig)).await.unwrap();
    let sgx = discover(
        &FixtureProbe::open(fixture("one-socket.json")).unwrap(),
        None,
    )
    .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(sgx.devices);
    let task = tokio::spawn(run_patcher(
        kube,
        "sgx-1".into(),
        sgx,
        rx,
        Duration::from_secs(3600),
    ));
    wait_for(&api, |n| {
        n["status"]["capacity"]["sgx.intel.com/epc"] == "4261412864"
    })
    .await;
    // /dev/sgx_enclave disappears: the node is cleaned up without waiting for the resync.
    tx.send(DeviceNodes::default()).unwrap();
    wait_for(&api, |n| *n == bare_node()).await;
    task.abort();
}

fn pod(name: &str, uid: &str, node: &str, resources: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "team", "uid": uid},
           "spec": {"nodeName": node, "containers": [{"name": "main", "resources": resources}]},
           "status": {"phase": "Running"}})
}

#[tokio::test]
async fn requested_epc_metrics_and_missing_enclave_events() {
    use node_agent::metrics::{Exporter, Metrics};
    let api = start_api("pods", Some(bare_node())).await;
    api.state.lock().unwrap().pods = vec![
        pod(
            "good",
            "u-good",
            "sgx-1",
            json!({"limits": {"sgx.intel.com/epc": "64Mi", "sgx.intel.com/enclave": "1"}}),
        ),
        pod(
            "missed",
            "u-missed",
            "sgx-1",
            json!({"limits": {"sgx.intel.com/epc": "8Mi"}}),
        ),
        pod(
            "elsewhere",
            "u-else",
            "other-node",
            json!({"limits": {"sgx.intel.com/epc": "8Mi"}}),
        ),
        pod("plain", "u-plain", "sgx-1", json!({"limits": {"cpu": "1"}})),
    ];
    let kube = client(Some(&api.kubeconfig)).await.unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let exporter = Exporter::new(registry, metrics.clone(), api.dir.join("no-proc"));
    let mut reported = std::collections::BTreeSet::new();
    node_agent::pods::scan_pods(&kube, "sgx-1", &metrics, &mut reported)
        .await
        .unwrap();
    let text = exporter.render();
    for line in [
        "confkube_sgx_epc_requested_bytes{namespace=\"team\",pod=\"good\",pod_uid=\"u-good\",container=\"main\"} 67108864",
        "confkube_sgx_epc_requested_bytes{namespace=\"team\",pod=\"missed\",pod_uid=\"u-missed\",container=\"main\"} 8388608",
        "confkube_sgx_pod_missing_enclave{namespace=\"team\",pod=\"missed\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(!text.contains("elsewhere"), "{text}");
    let events = api.state.lock().unwrap().events.clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "SgxEnclaveDeviceMissing");
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["involvedObject"]["name"], "missed");
    assert_eq!(events[0]["involvedObject"]["uid"], "u-missed");
    // The next pass reports nothing new.
    node_agent::pods::scan_pods(&kube, "sgx-1", &metrics, &mut reported)
        .await
        .unwrap();
    assert_eq!(api.state.lock().unwrap().events.len(), 1);
    // The pod is gone: its series go away.
    api.state
        .lock()
        .unwrap()
        .pods
        .retain(|p| p["metadata"]["name"] != "missed");
    node_agent::pods::scan_pods(&kube, "sgx-1", &metrics, &mut reported)
        .await
        .unwrap();
    let text = exporter.render();
    assert!(!text.contains("pod=\"missed\""), "{text}");
    assert!(reported.is_empty());
}

/// Against a real cluster: `CONFKUBE_KUBECONFIG=~/.kube/config CONFKUBE_NODE=<node> cargo test
/// -p node-agent --test node_patch -- --ignored real_cluster`. Patches the node with the
/// one-socket fixture's facts, checks them through the API server, then removes them again.
/// Needs RBAC get/patch on nodes and nodes/status.
#[tokio::test]
#[ignore = "needs a real cluster: set CONFKUBE_KUBECONFIG and CONFKUBE_NODE"]
async fn real_cluster_patch_and_cleanup() {
    let kubeconfig =
        PathBuf::from(std::env::var("CONFKUBE_KUBECONFIG").expect("CONFKUBE_KUBECONFIG"));
    let node_name = std::env::var("CONFKUBE_NODE").expect("CONFKUBE_NODE");
    let kube = client(Some(&kubeconfig)).await.unwrap();
    let want = facts("one-socket.json");
    reconcile(&kube, &node_name, Some(&want)).await.unwrap();
    assert_eq!(
        reconcile(&kube, &node_name, Some(&want)).await.unwrap(),
        Reconciled::default()
    );
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(kube.clone());
    let n = serde_json::to_value(nodes.get(&node_name).await.unwrap()).unwrap();
    assert_eq!(n["status"]["capacity"]["sgx.intel.com/epc"], "4261412864");
    assert_eq!(n["metadata"]["labels"]["sgx.intel.com/capable"], "true");
    reconcile(&kube, &node_name, None).await.unwrap();
    let n = serde_json::to_value(nodes.get(&node_name).await.unwrap()).unwrap();
    assert!(n["status"]["capacity"].get("sgx.intel.com/epc").is_none());
    assert!(
        n["metadata"]["labels"]
            .get("sgx.intel.com/capable")
            .is_none()
    );
}
