//! The kubelet device plugin (API v1beta1) for `sgx.intel.com/enclave` and
//! `sgx.intel.com/provision`.
//!
//! Per resource: refuse a socket another live plugin answers on, remove a stale one, serve the
//! `DevicePlugin` service on `<dir>/sgx.intel.com-<type>.sock`, then `Register` with the kubelet
//! on `<dir>/kubelet.sock` (retrying until it answers). When the socket file is deleted or
//! replaced (a new kubelet deletes all sockets when it starts) the server is stopped, its
//! `ListAndWatch` streams are ended, and the cycle starts again.

use crate::metrics::Metrics;
use crate::probe::DeviceNodes;
use crate::v1beta1::device_plugin_server::{DevicePlugin, DevicePluginServer};
use crate::v1beta1::registration_client::RegistrationClient;
use crate::v1beta1::{
    AllocateRequest, AllocateResponse, ContainerAllocateResponse,
    ContainerPreferredAllocationResponse, Device, DevicePluginOptions, DeviceSpec, Empty,
    ListAndWatchResponse, PreStartContainerRequest, PreStartContainerResponse,
    PreferredAllocationRequest, PreferredAllocationResponse, RegisterRequest,
};
use hyper_util::rt::TokioIo;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::transport::{Channel, Endpoint, Server, Uri};
use tonic::{Request, Response, Status};

/// The API version sent in `RegisterRequest.version`.
pub const API_VERSION: &str = "v1beta1";
/// The kubelet's registration socket file name inside the device-plugin directory.
pub const KUBELET_SOCKET: &str = "kubelet.sock";
/// The default device-plugin directory.
pub const DEFAULT_DIR: &str = "/var/lib/kubelet/device-plugins";
/// Health string for a usable device.
pub const HEALTHY: &str = "Healthy";
/// Health string for an unusable device.
pub const UNHEALTHY: &str = "Unhealthy";

/// A device-plugin resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SgxResource {
    /// `sgx.intel.com/enclave`: `/dev/sgx_enclave`.
    Enclave,
    /// `sgx.intel.com/provision`: `/dev/sgx_provision`.
    Provision,
}

impl SgxResource {
    /// Both resources.
    pub const ALL: [Self; 2] = [Self::Enclave, Self::Provision];

    /// The device type: `enclave` or `provision`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Enclave => "enclave",
            Self::Provision => "provision",
        }
    }

    /// The extended resource name, e.g. `sgx.intel.com/enclave`.
    pub fn resource_name(self) -> &'static str {
        match self {
            Self::Enclave => kube_sgx::ENCLAVE,
            Self::Provision => kube_sgx::PROVISION,
        }
    }

    /// The socket file name, `<namespace>-<type>.sock` as Intel's plugin names it.
    pub fn socket_name(self) -> &'static str {
        match self {
            Self::Enclave => "sgx.intel.com-enclave.sock",
            Self::Provision => "sgx.intel.com-provision.sock",
        }
    }

    /// The device node handed to containers (host and container path).
    pub fn device_path(self) -> &'static str {
        match self {
            Self::Enclave => "/dev/sgx_enclave",
            Self::Provision => "/dev/sgx_provision",
        }
    }

    /// Whether the device node this resource hands out exists.
    pub fn healthy(self, devices: &DeviceNodes) -> bool {
        match self {
            Self::Enclave => devices.enclave,
            Self::Provision => devices.provision,
        }
    }

    /// The device ID of the `index`-th device: `sgx-enclave-<index>`.
    pub fn device_id(self, index: u32) -> String {
        format!("sgx-{}-{index}", self.kind())
    }

    fn parse_device_id(self, id: &str, count: u32) -> Option<u32> {
        let index: u32 = id
            .strip_prefix("sgx-")?
            .strip_prefix(self.kind())?
            .strip_prefix('-')?
            .parse()
            .ok()?;
        (index < count && id == self.device_id(index)).then_some(index)
    }
}

/// Why the device plugin stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The kubelet's device-plugin directory does not exist (no kubelet on this node, or the
    /// agent looks in the wrong place).
    #[error(
        "device-plugin directory {dir} does not exist: is a kubelet running on this node? Set \
         --device-plugin-dir to the kubelet's device-plugin directory (default \
         /var/lib/kubelet/device-plugins, mounted from the host)"
    )]
    DirectoryMissing {
        /// The directory looked for.
        dir: PathBuf,
    },
    /// Another live plugin answers on the socket.
    #[error(
        "{path}: another device plugin is serving on this socket; stop it first (two plugins \
         for one resource would fight over the kubelet registration)"
    )]
    SocketInUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket could not be created, removed or inspected.
    #[error("device plugin socket {path}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("device plugin server for {resource}")]
    Serve {
        /// The resource name.
        resource: &'static str,
        /// The cause.
        source: tonic::transport::Error,
    },
}

/// How one resource's plugin runs.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The kubelet device-plugin directory (`--device-plugin-dir`).
    pub dir: PathBuf,
    /// Which resource.
    pub resource: SgxResource,
    /// How many devices to advertise (`--enclave-limit` / `--provision-limit`).
    pub count: u32,
    /// How often the socket file is checked for deletion, and the first Register retry delay.
    pub poll_interval: Duration,
}

impl PluginConfig {
    /// The plugin's own socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join(self.resource.socket_name())
    }
}

/// The `DevicePlugin` gRPC service for one resource.
#[derive(Debug, Clone)]
pub struct DevicePluginService {
    resource: SgxResource,
    count: u32,
    health: watch::Receiver<DeviceNodes>,
    stop: watch::Receiver<bool>,
    metrics: Metrics,
}

impl DevicePluginService {
    /// A service advertising `count` devices whose health follows `health`; its
    /// `ListAndWatch` streams end when `stop` turns true.
    pub fn new(
        resource: SgxResource,
        count: u32,
        health: watch::Receiver<DeviceNodes>,
        stop: watch::Receiver<bool>,
        metrics: Metrics,
    ) -> Self {
        Self {
            resource,
            count,
            health,
            stop,
            metrics,
        }
    }

    fn devices(&self, healthy: bool) -> ListAndWatchResponse {
        let health = if healthy { HEALTHY } else { UNHEALTHY };
        ListAndWatchResponse {
            devices: (0..self.count)
                .map(|i| Device {
                    id: self.resource.device_id(i),
                    health: health.to_owned(),
                    // nil, never an empty list: the TopologyManager rejects an empty one.
                    topology: None,
                })
                .collect(),
        }
    }
}

#[tonic::async_trait]
impl DevicePlugin for DevicePluginService {
    async fn get_device_plugin_options(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: false,
        }))
    }

    type ListAndWatchStream = ReceiverStream<Result<ListAndWatchResponse, Status>>;

    async fn list_and_watch(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        let mut health = self.health.clone();
        let mut stop = self.stop.clone();
        let this = self.clone();
        tokio::spawn(async move {
            let mut last: Option<bool> = None;
            loop {
                let healthy = this.resource.healthy(&health.borrow_and_update());
                if last != Some(healthy) {
                    last = Some(healthy);
                    this.metrics.set_device_health(this.resource, healthy);
                    if tx.send(Ok(this.devices(healthy))).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    changed = health.changed() => if changed.is_err() { return },
                    _ = stop.wait_for(|s| *s) => return,
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let mut container_responses = Vec::new();
        for (i, req) in request
            .into_inner()
            .container_requests
            .into_iter()
            .enumerate()
        {
            let size = usize::try_from(req.allocation_size).map_err(|_| {
                Status::invalid_argument(format!(
                    "container request {i}: allocation_size {} is negative",
                    req.allocation_size
                ))
            })?;
            let mut chosen: Vec<String> = Vec::new();
            for id in req
                .must_include_device_i_ds
                .iter()
                .chain(req.available_device_i_ds.iter())
            {
                if chosen.len() >= size {
                    break;
                }
                if !chosen.contains(id) {
                    chosen.push(id.clone());
                }
            }
            container_responses.push(ContainerPreferredAllocationResponse {
                device_i_ds: chosen,
            });
        }
        Ok(Response::new(PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        request: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let result = allocate(
            self.resource,
            self.count,
            &self.health.borrow(),
            request.into_inner(),
        );
        self.metrics.count_allocation(self.resource, result.is_ok());
        result.map(Response::new)
    }

    async fn pre_start_container(
        &self,
        _request: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}

/// The pure Allocate decision: one `DeviceSpec` (rw) per container, after checking every ID is
/// one of ours and healthy.
pub fn allocate(
    resource: SgxResource,
    count: u32,
    devices: &DeviceNodes,
    request: AllocateRequest,
) -> Result<AllocateResponse, Status> {
    if request.container_requests.is_empty() {
        return Err(Status::invalid_argument(
            "AllocateRequest has no container requests",
        ));
    }
    let healthy = resource.healthy(devices);
    let mut container_responses = Vec::with_capacity(request.container_requests.len());
    for (i, container) in request.container_requests.iter().enumerate() {
        if container.devices_ids.is_empty() {
            return Err(Status::invalid_argument(format!(
                "container request {i} asks for no {} devices",
                resource.resource_name()
            )));
        }
        for id in &container.devices_ids {
            if resource.parse_device_id(id, count).is_none() {
                return Err(Status::invalid_argument(format!(
                    "unknown device ID {id:?} for {} (this plugin serves {} to {})",
                    resource.resource_name(),
                    resource.device_id(0),
                    resource.device_id(count.saturating_sub(1)),
                )));
            }
            if !healthy {
                return Err(Status::failed_precondition(format!(
                    "device {id} is {UNHEALTHY}: {} does not exist on this node",
                    resource.device_path()
                )));
            }
        }
        container_responses.push(ContainerAllocateResponse {
            devices: vec![DeviceSpec {
                container_path: resource.device_path().to_owned(),
                host_path: resource.device_path().to_owned(),
                permissions: "rw".to_owned(),
            }],
            ..Default::default()
        });
    }
    Ok(AllocateResponse {
        container_responses,
    })
}

/// A gRPC channel over the Unix socket at `path` (authority `localhost`, as the kubelet uses).
pub async fn unix_channel(path: PathBuf) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// Refuses a socket a live plugin answers on; removes a stale file.
async fn claim_socket(path: &Path) -> Result<(), PluginError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(PluginError::Socket {
                path: path.to_owned(),
                source,
            });
        }
        Ok(_) => {}
    }
    if UnixStream::connect(path).await.is_ok() {
        return Err(PluginError::SocketInUse {
            path: path.to_owned(),
        });
    }
    tracing::info!(socket = %path.display(), "removing stale device plugin socket");
    std::fs::remove_file(path).map_err(|source| PluginError::Socket {
        path: path.to_owned(),
        source,
    })
}

/// Why one registration attempt failed (logged and retried).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The kubelet socket does not answer.
    #[error("cannot connect to the kubelet at {path}")]
    Connect {
        /// The kubelet socket.
        path: PathBuf,
        /// The cause.
        source: tonic::transport::Error,
    },
    /// The kubelet answered the Register call with an error.
    #[error("kubelet refused registration")]
    Refused {
        /// The kubelet's gRPC status.
        source: tonic::Status,
    },
}

async fn register_once(cfg: &PluginConfig) -> Result<(), RegisterError> {
    let path = cfg.dir.join(KUBELET_SOCKET);
    let channel = unix_channel(path.clone())
        .await
        .map_err(|source| RegisterError::Connect { path, source })?;
    RegistrationClient::new(channel)
        .register(RegisterRequest {
            version: API_VERSION.to_owned(),
            endpoint: cfg.resource.socket_name().to_owned(),
            resource_name: cfg.resource.resource_name().to_owned(),
            options: Some(DevicePluginOptions {
                pre_start_required: false,
                get_preferred_allocation_available: false,
            }),
        })
        .await
        .map_err(|source| RegisterError::Refused { source })?;
    Ok(())
}

/// Registers until the kubelet accepts; returns false if our socket disappears meanwhile.
async fn register_until_accepted(cfg: &PluginConfig, ino: u64, metrics: &Metrics) -> bool {
    let mut delay = cfg.poll_interval;
    loop {
        if inode(&cfg.socket_path()) != Some(ino) {
            return false;
        }
        match register_once(cfg).await {
            Ok(()) => {
                metrics.count_registration(cfg.resource, true);
                tracing::info!(
                    resource = cfg.resource.resource_name(),
                    "registered with the kubelet"
                );
                return true;
            }
            Err(e) => {
                metrics.count_registration(cfg.resource, false);
                tracing::warn!(resource = cfg.resource.resource_name(), error = %crate::Chain(&e), retry_in = ?delay, "registration failed");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Deletes the plugin's socket on drop, unless it was replaced (another inode) meanwhile.
struct SocketGuard {
    path: PathBuf,
    ino: u64,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if inode(&self.path) == Some(self.ino) {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {
                    tracing::info!(socket = %self.path.display(), "device plugin socket removed")
                }
                Err(e) => {
                    tracing::warn!(socket = %self.path.display(), error = %e, "cannot remove the device plugin socket")
                }
            }
        }
    }
}

async fn wait_socket_gone(path: &Path, ino: u64, poll: Duration) {
    while inode(path) == Some(ino) {
        tokio::time::sleep(poll).await;
    }
}

/// Runs one resource's plugin until an error: serve, register, re-register after the socket
/// is deleted. Dropping the future stops the plugin.
pub async fn run_plugin(
    cfg: PluginConfig,
    health: watch::Receiver<DeviceNodes>,
    metrics: Metrics,
) -> Result<(), PluginError> {
    let socket = cfg.socket_path();
    if !cfg.dir.is_dir() {
        return Err(PluginError::DirectoryMissing {
            dir: cfg.dir.clone(),
        });
    }
    loop {
        claim_socket(&socket).await?;
        let listener = UnixListener::bind(&socket).map_err(|source| PluginError::Socket {
            path: socket.clone(),
            source,
        })?;
        let ino = inode(&socket).ok_or_else(|| PluginError::Socket {
            path: socket.clone(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
        // Removes our socket when this loop ends for any reason, including the future being
        // dropped at shutdown (SIGTERM), so the kubelet never sees a dead endpoint.
        let _guard = SocketGuard {
            path: socket.clone(),
            ino,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let service = DevicePluginService::new(
            cfg.resource,
            cfg.count,
            health.clone(),
            stop_rx.clone(),
            metrics.clone(),
        );
        let mut server_stop = stop_rx;
        let server = Server::builder()
            .add_service(DevicePluginServer::new(service))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                let _ = server_stop.wait_for(|s| *s).await;
            });
        tokio::pin!(server);
        let lifecycle = async {
            if register_until_accepted(&cfg, ino, &metrics).await {
                wait_socket_gone(&socket, ino, cfg.poll_interval).await;
            }
        };
        tokio::select! {
            res = &mut server => {
                return match res {
                    Ok(()) => Ok(()),
                    Err(source) => Err(PluginError::Serve { resource: cfg.resource.resource_name(), source }),
                };
            }
            () = lifecycle => {}
        }
        let _ = stop_tx.send(true);
        // Streams end on `stop`; give connections a moment to close, then drop the server.
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut server).await;
        metrics.count_restart(cfg.resource);
        tracing::info!(
            resource = cfg.resource.resource_name(),
            socket = %socket.display(),
            "device plugin socket was deleted (kubelet restart?); serving and registering again"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1beta1::ContainerAllocateRequest;

    fn req(ids: &[&[&str]]) -> AllocateRequest {
        AllocateRequest {
            container_requests: ids
                .iter()
                .map(|c| ContainerAllocateRequest {
                    devices_ids: c.iter().map(|s| (*s).to_owned()).collect(),
                })
                .collect(),
        }
    }

    const ALL: DeviceNodes = DeviceNodes {
        enclave: true,
        provision: true,
        legacy_enclave: false,
        legacy_provision: false,
    };

    #[test]
    fn allocate_gives_rw_device_specs() {
        let resp = allocate(
            SgxResource::Enclave,
            110,
            &ALL,
            req(&[&["sgx-enclave-0"], &["sgx-enclave-109", "sgx-enclave-3"]]),
        )
        .unwrap();
        assert_eq!(resp.container_responses.len(), 2);
        for c in &resp.container_responses {
            assert_eq!(
                c.devices,
                vec![DeviceSpec {
                    container_path: "/dev/sgx_enclave".into(),
                    host_path: "/dev/sgx_enclave".into(),
                    permissions: "rw".into()
                }]
            );
            assert!(c.envs.is_empty() && c.mounts.is_empty() && c.cdi_devices.is_empty());
        }
        let prov = allocate(
            SgxResource::Provision,
            1,
            &ALL,
            req(&[&["sgx-provision-0"]]),
        )
        .unwrap();
        assert_eq!(
            prov.container_responses[0].devices[0].host_path,
            "/dev/sgx_provision"
        );
    }

    #[test]
    fn allocate_errors() {
        let unhealthy = DeviceNodes {
            enclave: false,
            ..ALL
        };
        let cases: Vec<(SgxResource, DeviceNodes, AllocateRequest, tonic::Code, &str)> = vec![
            (
                SgxResource::Enclave,
                ALL,
                req(&[]),
                tonic::Code::InvalidArgument,
                "AllocateRequest has no container requests",
            ),
            (
                SgxResource::Enclave,
                ALL,
                req(&[&[]]),
                tonic::Code::InvalidArgument,
                "container request 0 asks for no sgx.intel.com/enclave devices",
            ),
            (
                SgxResource::Enclave,
                ALL,
                req(&[&["sgx-enclave-0"], &["sgx-enclave-110"]]),
                tonic::Code::InvalidArgument,
                "unknown device ID \"sgx-enclave-110\" for sgx.intel.com/enclave (this plugin serves sgx-enclave-0 to sgx-enclave-109)",
            ),
            (
                SgxResource::Enclave,
                ALL,
                req(&[&["sgx-provision-0"]]),
                tonic::Code::InvalidArgument,
                "unknown device ID \"sgx-provision-0\" for sgx.intel.com/enclave (this plugin serves sgx-enclave-0 to sgx-enclave-109)",
            ),
            (
                SgxResource::Enclave,
                ALL,
                req(&[&["sgx-enclave-007"]]),
                tonic::Code::InvalidArgument,
                "unknown device ID \"sgx-enclave-007\" for sgx.intel.com/enclave (this plugin serves sgx-enclave-0 to sgx-enclave-109)",
            ),
            (
                SgxResource::Enclave,
                unhealthy,
                req(&[&["sgx-enclave-1"]]),
                tonic::Code::FailedPrecondition,
                "device sgx-enclave-1 is Unhealthy: /dev/sgx_enclave does not exist on this node",
            ),
        ];
        for (resource, devices, request, code, message) in cases {
            let status = allocate(resource, 110, &devices, request).unwrap_err();
            assert_eq!(status.code(), code, "{message}");
            assert_eq!(status.message(), message);
        }
    }

    fn service() -> DevicePluginService {
        let (_h, health) = watch::channel(ALL);
        let (_s, stop) = watch::channel(false);
        DevicePluginService::new(SgxResource::Enclave, 4, health, stop, Metrics::default())
    }

    #[tokio::test]
    async fn preferred_allocation_and_options() {
        use crate::v1beta1::ContainerPreferredAllocationRequest;
        let svc = service();
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let resp = svc
            .get_preferred_allocation(Request::new(PreferredAllocationRequest {
                container_requests: vec![ContainerPreferredAllocationRequest {
                    available_device_i_ds: ids(&[
                        "sgx-enclave-0",
                        "sgx-enclave-2",
                        "sgx-enclave-3",
                    ]),
                    must_include_device_i_ds: ids(&["sgx-enclave-3"]),
                    allocation_size: 2,
                }],
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            resp.container_responses[0].device_i_ds,
            ids(&["sgx-enclave-3", "sgx-enclave-0"])
        );
        let err = svc
            .get_preferred_allocation(Request::new(PreferredAllocationRequest {
                container_requests: vec![ContainerPreferredAllocationRequest {
                    allocation_size: -1,
                    ..Default::default()
                }],
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "container request 0: allocation_size -1 is negative"
        );
        let opts = svc
            .get_device_plugin_options(Request::new(Empty {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(opts, DevicePluginOptions::default());
        svc.pre_start_container(Request::new(PreStartContainerRequest::default()))
            .await
            .unwrap();
    }

    #[test]
    fn device_ids_table() {
        let r = SgxResource::Enclave;
        let cases = [
            ("sgx-enclave-0", Some(0)),
            ("sgx-enclave-9", Some(9)),
            ("sgx-enclave-10", None),
            ("sgx-enclave--1", None),
            ("sgx-enclave-+1", None),
            ("sgx-enclave-", None),
            ("sgx-enclave0", None),
            ("enclave-0", None),
        ];
        for (id, want) in cases {
            assert_eq!(r.parse_device_id(id, 10), want, "{id}");
        }
    }
}
