//! Benchmark driver for a running `confkube node-agent`: plays the kubelet on
//! `<dir>/kubelet.sock`, waits for both registrations, measures `Allocate` latency over the
//! plugin socket, then deletes the enclave plugin socket (what a restarting kubelet does) and
//! measures the time until the agent registers again. Used by `bench/node-agent.sh`.
//!
//! Usage: `kubelet_bench <device-plugin-dir> <allocate-calls>`; prints `key=value` lines.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use node_agent::plugin::{SgxResource, unix_channel};
use node_agent::v1beta1::device_plugin_client::DevicePluginClient;
use node_agent::v1beta1::registration_server::{Registration, RegistrationServer};
use node_agent::v1beta1::{AllocateRequest, ContainerAllocateRequest, Empty, RegisterRequest};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

struct Kubelet(mpsc::UnboundedSender<(String, Instant)>);

#[tonic::async_trait]
impl Registration for Kubelet {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let _ = self
            .0
            .send((request.into_inner().resource_name, Instant::now()));
        Ok(Response::new(Empty {}))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: kubelet_bench <dir> <calls>"));
    let calls: usize = args.next().map_or(10_000, |n| n.parse().expect("calls"));
    let sock = dir.join("kubelet.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(Kubelet(tx)))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    println!("kubelet=ready");
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 {
        let (name, _) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .unwrap()
            .unwrap();
        seen.insert(name);
    }
    println!(
        "registered={}",
        seen.into_iter().collect::<Vec<_>>().join(",")
    );
    let plugin = dir.join(SgxResource::Enclave.socket_name());
    let mut client = DevicePluginClient::new(unix_channel(plugin.clone()).await.unwrap());
    let mut lat = Vec::with_capacity(calls);
    for i in 0..calls {
        let req = AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![SgxResource::Enclave.device_id((i % 110) as u32)],
            }],
        };
        let t = Instant::now();
        client.allocate(req).await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    println!("allocate_calls={calls}");
    println!("allocate_p50_us={:.0}", pct(0.50));
    println!("allocate_p99_us={:.0}", pct(0.99));
    println!(
        "allocate_max_us={:.0}",
        lat[lat.len() - 1].as_secs_f64() * 1e6
    );
    let t = Instant::now();
    std::fs::remove_file(&plugin).unwrap();
    loop {
        let (name, at) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if name == "sgx.intel.com/enclave" {
            println!("reregister_ms={:.1}", (at - t).as_secs_f64() * 1e3);
            break;
        }
    }
}
