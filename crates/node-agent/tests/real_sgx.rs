//! On a real SGX machine: `cargo test -p node-agent --test real_sgx -- --ignored`. Checks that
//! the host probe (CPUID, /dev, /sys) finds an SGX-capable node with EPC sections whose sizes
//! agree with the kernel's per-NUMA `sgx_total_bytes` when the kernel reports them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use node_agent::discovery::{EpcSource, discover};
use node_agent::probe::HostProbe;

#[test]
#[ignore = "needs an SGX machine with the in-kernel driver (/dev/sgx_enclave)"]
fn host_is_sgx_capable() {
    let node = discover(&HostProbe::new("/dev", "/sys"), None).unwrap();
    assert!(node.features.sgx, "CPUID leaf 0x7 does not report SGX");
    assert!(node.devices.enclave, "/dev/sgx_enclave is missing");
    assert!(node.capable());
    assert_eq!(node.epc_source, EpcSource::Cpuid);
    assert!(node.epc_sections() >= 1);
    if !node.numa.is_empty() {
        let sysfs: u64 = node.numa.iter().map(|n| n.bytes).sum();
        assert_eq!(
            sysfs, node.epc_bytes,
            "sysfs and CPUID disagree on the EPC size"
        );
    }
}
