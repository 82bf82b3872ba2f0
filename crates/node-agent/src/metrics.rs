//! EPC and device-plugin metrics (prometheus-client), served on `/metrics`.

use crate::discovery::SgxNode;
use crate::plugin::SgxResource;
use crate::procfs;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    resource: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SectionLabels {
    section: String,
    base: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NumaLabels {
    numa_node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    pod_uid: String,
    container_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    namespace: String,
    pod: String,
    pod_uid: String,
    container: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodLabels {
    namespace: String,
    pod: String,
}

/// The node agent's metric handles. Cloning shares the same series.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    epc_capacity: Gauge,
    epc_section: Family<SectionLabels, Gauge>,
    epc_numa: Family<NumaLabels, Gauge>,
    device_healthy: Family<ResourceLabels, Gauge>,
    allocations: Family<ResultLabels, Counter>,
    registrations: Family<ResultLabels, Counter>,
    restarts: Family<ResourceLabels, Counter>,
    committed: Family<ContainerLabels, Gauge>,
    unreadable: Gauge,
    requested: Family<RequestLabels, Gauge>,
    missing_enclave: Family<PodLabels, Gauge>,
}

fn gauge_value(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

fn result(ok: bool) -> String {
    if ok { "ok" } else { "error" }.to_owned()
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "confkube_sgx_epc_capacity_bytes",
            "EPC advertised as sgx.intel.com/epc on this node",
            m.epc_capacity.clone(),
        );
        registry.register(
            "confkube_sgx_epc_section_bytes",
            "EPC section size from CPUID leaf 0x12",
            m.epc_section.clone(),
        );
        registry.register(
            "confkube_sgx_epc_numa_bytes",
            "EPC per NUMA node from sysfs sgx_total_bytes",
            m.epc_numa.clone(),
        );
        registry.register(
            "confkube_sgx_device_healthy",
            "1 when the resource's device node exists",
            m.device_healthy.clone(),
        );
        registry.register(
            "confkube_sgx_allocations",
            "Allocate calls answered by the device plugin",
            m.allocations.clone(),
        );
        registry.register(
            "confkube_sgx_registrations",
            "Register calls to the kubelet",
            m.registrations.clone(),
        );
        registry.register(
            "confkube_sgx_plugin_restarts",
            "Device plugin restarts after its socket was deleted",
            m.restarts.clone(),
        );
        registry.register(
            "confkube_sgx_epc_committed_bytes",
            "Enclave memory mapped from /dev/sgx_enclave per container (pod_uid/container_id empty outside pods)",
            m.committed.clone(),
        );
        registry.register(
            "confkube_sgx_procfs_unreadable_processes",
            "Processes whose maps could not be read in the last scan",
            m.unreadable.clone(),
        );
        registry.register(
            "confkube_sgx_epc_requested_bytes",
            "sgx.intel.com/epc requested by containers of pods bound to this node",
            m.requested.clone(),
        );
        registry.register(
            "confkube_sgx_pod_missing_enclave",
            "1 for a pod on this node that requests EPC without sgx.intel.com/enclave",
            m.missing_enclave.clone(),
        );
        m
    }

    /// Replaces the requested-EPC series.
    pub fn set_requested(&self, containers: &[crate::pods::ContainerEpc]) {
        self.requested.clear();
        for c in containers {
            self.requested
                .get_or_create(&RequestLabels {
                    namespace: c.namespace.clone(),
                    pod: c.pod.clone(),
                    pod_uid: c.pod_uid.clone(),
                    container: c.container.clone(),
                })
                .set(gauge_value(c.epc_bytes));
        }
    }

    /// Replaces the set of pods that request EPC without the enclave device.
    pub fn set_missing_enclave(&self, pods: impl IntoIterator<Item = (String, String)>) {
        self.missing_enclave.clear();
        for (namespace, pod) in pods {
            self.missing_enclave
                .get_or_create(&PodLabels { namespace, pod })
                .set(1);
        }
    }

    /// Publishes what discovery found.
    pub fn set_discovery(&self, node: &SgxNode) {
        self.epc_capacity.set(gauge_value(node.epc_bytes));
        self.epc_section.clear();
        if let Some(cpu) = &node.cpu {
            for (i, s) in cpu.epc_sections.iter().enumerate() {
                self.epc_section
                    .get_or_create(&SectionLabels {
                        section: i.to_string(),
                        base: format!("{:#x}", s.base),
                    })
                    .set(gauge_value(s.size));
            }
        }
        self.epc_numa.clear();
        for n in &node.numa {
            self.epc_numa
                .get_or_create(&NumaLabels {
                    numa_node: n.node.to_string(),
                })
                .set(gauge_value(n.bytes));
        }
    }

    /// Records a resource's device health.
    pub fn set_device_health(&self, resource: SgxResource, healthy: bool) {
        self.device_healthy
            .get_or_create(&ResourceLabels {
                resource: resource.resource_name().to_owned(),
            })
            .set(i64::from(healthy));
    }

    /// Counts one Allocate call.
    pub fn count_allocation(&self, resource: SgxResource, ok: bool) {
        self.allocations
            .get_or_create(&ResultLabels {
                resource: resource.resource_name().to_owned(),
                result: result(ok),
            })
            .inc();
    }

    /// Counts one Register call.
    pub fn count_registration(&self, resource: SgxResource, ok: bool) {
        self.registrations
            .get_or_create(&ResultLabels {
                resource: resource.resource_name().to_owned(),
                result: result(ok),
            })
            .inc();
    }

    /// Counts one plugin restart.
    pub fn count_restart(&self, resource: SgxResource) {
        self.restarts
            .get_or_create(&ResourceLabels {
                resource: resource.resource_name().to_owned(),
            })
            .inc();
    }

    /// Replaces the committed-EPC series with a fresh scan.
    pub fn set_committed(&self, scan: &procfs::Scan) {
        self.committed.clear();
        for ((pod_uid, container_id), bytes) in procfs::by_container(scan) {
            self.committed
                .get_or_create(&ContainerLabels {
                    pod_uid,
                    container_id,
                })
                .set(gauge_value(bytes));
        }
        self.unreadable
            .set(i64::try_from(scan.unreadable).unwrap_or(i64::MAX));
    }
}

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const NOT_FOUND: &[u8] = b"not found; try /metrics\n";

/// What `/metrics` serves: the registry, refreshed from `/proc` before each scrape.
#[derive(Debug, Clone)]
pub struct Exporter {
    registry: Arc<Registry>,
    metrics: Metrics,
    proc_root: PathBuf,
}

impl Exporter {
    /// An exporter for `registry` (holding `metrics`) scanning `proc_root` on each scrape.
    pub fn new(registry: Registry, metrics: Metrics, proc_root: impl Into<PathBuf>) -> Self {
        Self {
            registry: Arc::new(registry),
            metrics,
            proc_root: proc_root.into(),
        }
    }

    /// Scans `/proc` and renders the OpenMetrics text.
    pub fn render(&self) -> String {
        match procfs::scan(&self.proc_root) {
            Ok(scan) => self.metrics.set_committed(&scan),
            Err(e) => {
                tracing::warn!(error = %crate::Chain(&e), "committed EPC scan failed; keeping the last values")
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }

    /// Serves `GET /metrics` (HTTP/1.1) on `listener` until the future is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        use http_body_util::Full;
        use hyper::body::Bytes;
        use hyper::{Response, StatusCode};
        loop {
            let (stream, _) = listener.accept().await?;
            let this = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let this = this.clone();
                        async move {
                            if req.uri().path() == "/metrics" {
                                Response::builder()
                                    .header("content-type", CONTENT_TYPE)
                                    .body(Full::new(Bytes::from(this.render())))
                            } else {
                                Response::builder()
                                    .status(StatusCode::NOT_FOUND)
                                    .body(Full::new(Bytes::from_static(NOT_FOUND)))
                            }
                        }
                    },
                );
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "metrics connection ended with an error");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::discover;
    use crate::probe::FixtureProbe;

    #[test]
    fn discovery_and_plugin_series() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let probe = FixtureProbe::open(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/two-socket.json"),
        )
        .unwrap();
        m.set_discovery(&discover(&probe, None).unwrap());
        m.set_device_health(SgxResource::Enclave, true);
        m.set_device_health(SgxResource::Provision, false);
        m.count_allocation(SgxResource::Enclave, true);
        m.count_allocation(SgxResource::Enclave, false);
        m.count_registration(SgxResource::Provision, true);
        m.count_restart(SgxResource::Provision);
        let exporter = Exporter::new(registry, m, "/nonexistent-proc-root");
        let text = exporter.render();
        for line in [
            "confkube_sgx_epc_capacity_bytes 34292629504",
            "confkube_sgx_epc_section_bytes{section=\"0\",base=\"0x4000000000\"} 17146314752",
            "confkube_sgx_epc_section_bytes{section=\"1\",base=\"0x8000000000\"} 17146314752",
            "confkube_sgx_epc_numa_bytes{numa_node=\"1\"} 17146314752",
            "confkube_sgx_device_healthy{resource=\"sgx.intel.com/enclave\"} 1",
            "confkube_sgx_device_healthy{resource=\"sgx.intel.com/provision\"} 0",
            "confkube_sgx_allocations_total{resource=\"sgx.intel.com/enclave\",result=\"ok\"} 1",
            "confkube_sgx_allocations_total{resource=\"sgx.intel.com/enclave\",result=\"error\"} 1",
            "confkube_sgx_registrations_total{resource=\"sgx.intel.com/provision\",result=\"ok\"} 1",
            "confkube_sgx_plugin_restarts_total{resource=\"sgx.intel.com/provision\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn committed_series_follow_proc() {
        let root =
            std::env::temp_dir().join(format!("node-agent-metrics-proc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let d = root.join("42");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("maps"),
            "10000000-10400000 rw-s 00000000 00:06 9 /dev/sgx_enclave\n",
        )
        .unwrap();
        std::fs::write(
            d.join("cgroup"),
            "0::/kubepods/pod5f1d3c2a-1b2c-4d5e-8f90-0123456789ab/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let exporter = Exporter::new(registry, m, &root);
        let want = "confkube_sgx_epc_committed_bytes{pod_uid=\"5f1d3c2a-1b2c-4d5e-8f90-0123456789ab\",container_id=\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"} 4194304";
        assert!(exporter.render().lines().any(|l| l == want));
        std::fs::remove_file(d.join("maps")).unwrap();
        let text = exporter.render();
        assert!(
            !text.contains("confkube_sgx_epc_committed_bytes{"),
            "{text}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
