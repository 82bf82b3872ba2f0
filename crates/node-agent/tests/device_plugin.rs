//! The node agent's device plugins against a stand-in kubelet written from the v1beta1 spec
//! (`shared/spec/kubernetes-sgx.md` §1): a `Registration` server on `<dir>/kubelet.sock` that,
//! like the kubelet, validates the request and then dials the plugin's endpoint, calls
//! `GetDevicePluginOptions` and follows `ListAndWatch`. A kubelet restart is simulated the way
//! a new kubelet behaves: the old server stops and every socket in the directory is deleted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use node_agent::agent::{AgentConfig, AgentError, run};
use node_agent::plugin::{PluginError, SgxResource, unix_channel};
use node_agent::probe::FixtureProbe;
use node_agent::v1beta1::device_plugin_client::DevicePluginClient;
use node_agent::v1beta1::registration_server::{Registration, RegistrationServer};
use node_agent::v1beta1::{
    AllocateRequest, ContainerAllocateRequest, DeviceSpec, Empty, ListAndWatchResponse,
    RegisterRequest,
};
use prometheus_client::registry::Registry;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

/// What the stand-in kubelet saw.
#[derive(Debug)]
enum Seen {
    Registered(RegisterRequest),
    Devices(String, ListAndWatchResponse),
}

struct StandInKubelet {
    dir: PathBuf,
    events: mpsc::UnboundedSender<Seen>,
}

#[tonic::async_trait]
impl Registration for StandInKubelet {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let req = request.into_inner();
        // The kubelet's checks: supported version, extended resource name, endpoint file.
        if req.version != "v1beta1" {
            return Err(Status::invalid_argument(format!(
                "unsupported version {}",
                req.version
            )));
        }
        if !req.resource_name.contains('/') || req.resource_name.starts_with("kubernetes.io/") {
            return Err(Status::invalid_argument("invalid resource name"));
        }
        if req.endpoint.contains('/') {
            return Err(Status::invalid_argument("endpoint must be a file name"));
        }
        let endpoint = self.dir.join(&req.endpoint);
        let resource = req.resource_name.clone();
        let events = self.events.clone();
        events.send(Seen::Registered(req)).unwrap();
        tokio::spawn(async move {
            let channel = unix_channel(endpoint)
                .await
                .expect("kubelet dials the plugin");
            let mut client = DevicePluginClient::new(channel);
            let options = client
                .get_device_plugin_options(Empty {})
                .await
                .unwrap()
                .into_inner();
            assert!(!options.pre_start_required && !options.get_preferred_allocation_available);
            let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
            while let Ok(Some(resp)) = stream.message().await {
                if events.send(Seen::Devices(resource.clone(), resp)).is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Empty {}))
    }
}

/// A running stand-in kubelet; dropping `stop` stops it.
struct Kubelet {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn start_kubelet(dir: &Path, events: mpsc::UnboundedSender<Seen>) -> Kubelet {
    let sock = dir.join("kubelet.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let svc = StandInKubelet {
        dir: dir.to_owned(),
        events,
    };
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(svc))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
    });
    Kubelet {
        stop: Some(stop),
        task,
    }
}

impl Kubelet {
    /// Stops the kubelet and, like a new kubelet starting, deletes every socket in `dir`.
    async fn restart(mut self, dir: &Path, events: mpsc::UnboundedSender<Seen>) -> Kubelet {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
        self.task.abort();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sock") {
                std::fs::remove_file(path).unwrap();
            }
        }
        start_kubelet(dir, events)
    }
}

struct Env {
    dir: PathBuf,
    fixture: PathBuf,
}

impl Env {
    fn new(tag: &str) -> Self {
        // Unix socket paths are limited to 108 bytes: keep the directory short.
        let dir = PathBuf::from(format!("/tmp/na-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fixture = dir.join("machine.json");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/one-socket.json"),
            &fixture,
        )
        .unwrap();
        Self { dir, fixture }
    }

    fn set_devices(&self, devices: &[&str]) {
        let text = std::fs::read_to_string(&self.fixture).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["devices"] = serde_json::json!(devices);
        // Write then rename, so the agent never reads a half-written file.
        let tmp = self.dir.join("machine.json.tmp");
        std::fs::write(&tmp, v.to_string()).unwrap();
        std::fs::rename(&tmp, &self.fixture).unwrap();
    }

    fn config(&self, enclave_limit: u32, provision_limit: u32) -> AgentConfig {
        AgentConfig {
            device_plugin_dir: self.dir.clone(),
            proc_root: self.dir.join("proc"),
            enclave_limit,
            provision_limit,
            epc_size: None,
            metrics_listen: None,
            poll_interval: Duration::from_millis(20),
            rescan_interval: Duration::from_millis(20),
            node_patch: None,
        }
    }

    fn start_agent(&self, enclave_limit: u32, provision_limit: u32) -> tokio::task::JoinHandle<()> {
        let probe = Arc::new(FixtureProbe::open(&self.fixture).unwrap());
        let cfg = self.config(enclave_limit, provision_limit);
        tokio::spawn(async move {
            run(cfg, probe, Registry::default()).await.unwrap();
        })
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("stand-in kubelet saw nothing within 20 s")
        .expect("event channel open")
}

/// Waits until both resources registered and sent their first device list.
async fn both_registered_and_listed(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
) -> (Vec<RegisterRequest>, Vec<(String, ListAndWatchResponse)>) {
    let mut regs = Vec::new();
    let mut lists = Vec::new();
    while regs.len() < 2 || lists.len() < 2 {
        match next(rx).await {
            Seen::Registered(r) => regs.push(r),
            Seen::Devices(res, l) => lists.push((res, l)),
        }
    }
    regs.sort_by(|a, b| a.resource_name.cmp(&b.resource_name));
    lists.sort_by(|a, b| a.0.cmp(&b.0));
    (regs, lists)
}

async fn plugin_client(
    dir: &Path,
    resource: SgxResource,
) -> DevicePluginClient<tonic::transport::Channel> {
    DevicePluginClient::new(
        unix_channel(dir.join(resource.socket_name()))
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_allocate_and_health() {
    let env = Env::new("reg");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _kubelet = start_kubelet(&env.dir, tx.clone());
    let agent = env.start_agent(110, 3);

    let (regs, lists) = both_registered_and_listed(&mut rx).await;
    assert_eq!(regs[0].version, "v1beta1");
    assert_eq!(regs[0].resource_name, "sgx.intel.com/enclave");
    assert_eq!(regs[0].endpoint, "sgx.intel.com-enclave.sock");
    assert_eq!(regs[1].resource_name, "sgx.intel.com/provision");
    assert_eq!(regs[1].endpoint, "sgx.intel.com-provision.sock");
    let opts = regs[0].options.unwrap();
    assert!(!opts.pre_start_required && !opts.get_preferred_allocation_available);

    let (res, enclave) = &lists[0];
    assert_eq!(res, "sgx.intel.com/enclave");
    assert_eq!(enclave.devices.len(), 110);
    assert_eq!(enclave.devices[0].id, "sgx-enclave-0");
    assert_eq!(enclave.devices[109].id, "sgx-enclave-109");
    assert!(
        enclave
            .devices
            .iter()
            .all(|d| d.health == "Healthy" && d.topology.is_none())
    );
    let (res, provision) = &lists[1];
    assert_eq!(res, "sgx.intel.com/provision");
    assert_eq!(
        provision
            .devices
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        ["sgx-provision-0", "sgx-provision-1", "sgx-provision-2"]
    );

    // Allocate, as the kubelet calls it for a container.
    let mut enclave_client = plugin_client(&env.dir, SgxResource::Enclave).await;
    let resp = enclave_client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["sgx-enclave-7".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.container_responses[0].devices,
        vec![DeviceSpec {
            container_path: "/dev/sgx_enclave".into(),
            host_path: "/dev/sgx_enclave".into(),
            permissions: "rw".into(),
        }]
    );
    let mut provision_client = plugin_client(&env.dir, SgxResource::Provision).await;
    let resp = provision_client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["sgx-provision-2".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.container_responses[0].devices[0].host_path,
        "/dev/sgx_provision"
    );

    // A malformed request is a gRPC error, and the plugin keeps serving.
    let err = provision_client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["sgx-provision-3".into()],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "unknown device ID \"sgx-provision-3\" for sgx.intel.com/provision (this plugin serves sgx-provision-0 to sgx-provision-2)"
    );

    // The enclave device disappears: ListAndWatch turns Unhealthy, Allocate is refused.
    env.set_devices(&["sgx_provision"]);
    loop {
        if let Seen::Devices(res, list) = next(&mut rx).await {
            assert_eq!(
                res, "sgx.intel.com/enclave",
                "only the enclave resource changed"
            );
            assert_eq!(list.devices.len(), 110);
            assert!(list.devices.iter().all(|d| d.health == "Unhealthy"));
            break;
        }
    }
    let err = enclave_client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["sgx-enclave-7".into()],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);

    // It comes back: Healthy again.
    env.set_devices(&["sgx_enclave", "sgx_provision"]);
    loop {
        if let Seen::Devices(res, list) = next(&mut rx).await {
            assert_eq!(res, "sgx.intel.com/enclave");
            assert!(list.devices.iter().all(|d| d.health == "Healthy"));
            break;
        }
    }
    agent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_100_kubelet_restarts() {
    let env = Env::new("rst");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut kubelet = start_kubelet(&env.dir, tx.clone());
    let agent = env.start_agent(110, 110);
    let (regs, _) = both_registered_and_listed(&mut rx).await;
    assert_eq!(regs.len(), 2);
    for round in 0..100 {
        kubelet = kubelet.restart(&env.dir, tx.clone()).await;
        let (regs, lists) = both_registered_and_listed(&mut rx).await;
        assert_eq!(
            regs[0].resource_name, "sgx.intel.com/enclave",
            "round {round}"
        );
        assert_eq!(
            regs[1].resource_name, "sgx.intel.com/provision",
            "round {round}"
        );
        assert_eq!(lists[0].1.devices.len(), 110, "round {round}");
        assert!(env.dir.join("sgx.intel.com-enclave.sock").exists());
    }
    // Still serving Allocate after the restarts.
    let resp = plugin_client(&env.dir, SgxResource::Enclave)
        .await
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["sgx-enclave-0".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.container_responses.len(), 1);
    agent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_the_kubelet_then_registers() {
    let env = Env::new("late");
    let agent = env.start_agent(2, 2);
    // The plugin serves before any kubelet exists.
    let sock = env.dir.join("sgx.intel.com-enclave.sock");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "plugin socket never appeared"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let opts = plugin_client(&env.dir, SgxResource::Enclave)
        .await
        .get_device_plugin_options(Empty {})
        .await
        .unwrap()
        .into_inner();
    assert!(!opts.pre_start_required);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _kubelet = start_kubelet(&env.dir, tx);
    let (regs, lists) = both_registered_and_listed(&mut rx).await;
    assert_eq!(regs.len(), 2);
    assert_eq!(lists[1].1.devices.len(), 2);
    agent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_socket_another_live_plugin_serves() {
    let env = Env::new("live");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _kubelet = start_kubelet(&env.dir, tx);
    let first = env.start_agent(1, 1);
    both_registered_and_listed(&mut rx).await;
    let probe = Arc::new(FixtureProbe::open(&env.fixture).unwrap());
    let err = run(env.config(1, 1), probe, Registry::default())
        .await
        .unwrap_err();
    // Both plugins refuse; whichever reports first stops the agent.
    let path = match &err {
        AgentError::Plugin(PluginError::SocketInUse { path }) => path.clone(),
        other => panic!("unexpected error {other:?}"),
    };
    assert!(
        path == env.dir.join("sgx.intel.com-enclave.sock")
            || path == env.dir.join("sgx.intel.com-provision.sock"),
        "{path:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: another device plugin is serving on this socket; stop it first (two plugins for one resource would fight over the kubelet registration)",
            path.display()
        )
    );
    first.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaces_a_stale_socket() {
    let env = Env::new("stale");
    // A socket file nobody listens on any more (a crashed plugin).
    let stale = env.dir.join("sgx.intel.com-enclave.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _kubelet = start_kubelet(&env.dir, tx);
    let agent = env.start_agent(1, 1);
    let (regs, _) = both_registered_and_listed(&mut rx).await;
    assert_eq!(regs[0].endpoint, "sgx.intel.com-enclave.sock");
    agent.abort();
}

/// Issue 16 item 8: without a kubelet the error says the directory is missing and names the
/// flag (it used to be a bare "No such file or directory" on the socket path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_plugin_directory_names_the_flag() {
    let env = Env::new("nodir");
    let mut cfg = env.config(1, 1);
    cfg.device_plugin_dir = env.dir.join("absent");
    let probe = Arc::new(FixtureProbe::open(&env.fixture).unwrap());
    let err = run(cfg, probe, Registry::default()).await.unwrap_err();
    let AgentError::Plugin(PluginError::DirectoryMissing { dir }) = &err else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(dir, &env.dir.join("absent"));
    assert_eq!(
        err.to_string(),
        format!(
            "device-plugin directory {} does not exist: is a kubelet running on this node? Set \
             --device-plugin-dir to the kubelet's device-plugin directory (default \
             /var/lib/kubelet/device-plugins, mounted from the host)",
            dir.display()
        )
    );
}

/// Stopping the agent (dropping its future, as the binary does on SIGTERM) removes both
/// plugin sockets; a socket that a new instance put in place is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_are_removed_when_the_agent_stops() {
    let env = Env::new("stop");
    let agent = env.start_agent(1, 1);
    let sockets = [
        env.dir.join(SgxResource::Enclave.socket_name()),
        env.dir.join(SgxResource::Provision.socket_name()),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !sockets.iter().all(|s| s.exists()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sockets never appeared"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    agent.abort();
    let _ = agent.await;
    // The plugin tasks are aborted with the agent and dropped by the runtime right after.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sockets.iter().any(|s| s.exists()) {
        let left: Vec<_> = sockets.iter().filter(|s| s.exists()).collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left:?} left behind"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_and_busy_port() {
    let env = Env::new("met");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _kubelet = start_kubelet(&env.dir, tx);
    // Find a free port, then let the agent bind it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = env.config(110, 110);
    cfg.metrics_listen = Some(addr);
    let probe = Arc::new(FixtureProbe::open(&env.fixture).unwrap());
    let agent = tokio::spawn(run(cfg.clone(), probe.clone(), Registry::default()));
    both_registered_and_listed(&mut rx).await;
    let page = http_get(addr, "/metrics").await;
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    for line in [
        "confkube_sgx_epc_capacity_bytes 4261412864",
        "confkube_sgx_device_healthy{resource=\"sgx.intel.com/enclave\"} 1",
        "confkube_sgx_registrations_total{resource=\"sgx.intel.com/enclave\",result=\"ok\"} 1",
    ] {
        assert!(
            page.lines().any(|l| l == line),
            "missing {line:?} in\n{page}"
        );
    }
    let other = http_get(addr, "/").await;
    assert!(other.starts_with("HTTP/1.1 404 Not Found"), "{other}");
    agent.abort();
    let _ = agent.await;

    // The port is taken: a clear error naming the address.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let env2 = Env::new("met2");
    let mut cfg = env2.config(1, 1);
    cfg.metrics_listen = Some(busy.local_addr().unwrap());
    let err = run(cfg, probe, Registry::default()).await.unwrap_err();
    assert!(matches!(err, AgentError::Metrics { .. }), "{err:?}");
    assert!(
        node_agent::Chain(&err).to_string().starts_with(&format!(
            "metrics listener {}: ",
            busy.local_addr().unwrap()
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_request_bytes_get_a_grpc_error() {
    let env = Env::new("raw");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _kubelet = start_kubelet(&env.dir, tx);
    let agent = env.start_agent(2, 2);
    both_registered_and_listed(&mut rx).await;
    let channel = unix_channel(env.dir.join(SgxResource::Enclave.socket_name()))
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    // A RegisterRequest {version: "x"} is the bytes 0a 01 78; read as an AllocateRequest, field
    // 1 is a ContainerAllocateRequest holding the lone key byte 0x78 (field 15, varint) with no
    // value: not decodable.
    let codec =
        tonic_prost::ProstCodec::<RegisterRequest, node_agent::v1beta1::AllocateResponse>::default(
        );
    for path in [
        "/v1beta1.DevicePlugin/Allocate",
        "/v1beta1.DevicePlugin/GetPreferredAllocation",
    ] {
        grpc.ready().await.unwrap();
        let status = grpc
            .unary(
                Request::new(RegisterRequest {
                    version: "x".into(),
                    ..Default::default()
                }),
                tonic::codegen::http::uri::PathAndQuery::from_static(path),
                codec.clone(),
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal, "{path}: {status:?}");
        assert!(
            status
                .message()
                .contains("failed to decode Protobuf message"),
            "{path}: {status:?}"
        );
    }
    // The plugin is still serving.
    let ok = plugin_client(&env.dir, SgxResource::Enclave)
        .await
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["sgx-enclave-1".into()],
            }],
        })
        .await
        .unwrap();
    assert_eq!(ok.into_inner().container_responses.len(), 1);
    agent.abort();
}
