//! Discovery: what SGX this node has, from a [`Probe`].

use crate::probe::{DeviceNodes, NumaEpc, Probe, ProbeError};
use sgx_types::cpuid::{
    CpuidError, CpuidRegs, LEAF_FEATURES, LEAF_SGX, SgxCpuInfo, SgxFeatureFlags,
};

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The probe could not read the machine.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// CPUID leaf 0x12 is inconsistent.
    #[error(transparent)]
    Cpuid(#[from] CpuidError),
}

/// Where the EPC size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpcSource {
    /// `--epc-size` (VMs that hide CPUID leaf 0x12).
    Override,
    /// The sum of the CPUID leaf 0x12 EPC sections.
    Cpuid,
    /// The sum of the per-NUMA `sgx_total_bytes` sysfs attributes.
    Sysfs,
    /// Nothing reports EPC.
    None,
}

impl EpcSource {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Override => "override",
            Self::Cpuid => "cpuid",
            Self::Sysfs => "sysfs",
            Self::None => "none",
        }
    }
}

/// What discovery found on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxNode {
    /// Leaf 0x7 flags (all false without CPUID).
    pub features: SgxFeatureFlags,
    /// The decoded SGX leaves, when the CPU reports SGX and leaf 0x12.
    pub cpu: Option<SgxCpuInfo>,
    /// The device nodes.
    pub devices: DeviceNodes,
    /// Per-NUMA EPC from sysfs.
    pub numa: Vec<NumaEpc>,
    /// The EPC size advertised as `sgx.intel.com/epc`.
    pub epc_bytes: u64,
    /// Where `epc_bytes` came from.
    pub epc_source: EpcSource,
}

impl SgxNode {
    /// The node can run enclaves: the enclave device exists and there is EPC.
    pub fn capable(&self) -> bool {
        self.devices.enclave && self.epc_bytes > 0
    }

    /// SGX2 (EDMM) instructions.
    pub fn sgx2(&self) -> bool {
        self.cpu.as_ref().is_some_and(|c| c.capabilities.sgx2)
    }

    /// Key separation and sharing.
    pub fn kss(&self) -> bool {
        self.cpu.as_ref().is_some_and(|c| c.attributes.kss())
    }

    /// AEX-Notify: the SECS attribute and ENCLU\[EDECCSSA\].
    pub fn aex_notify(&self) -> bool {
        self.cpu
            .as_ref()
            .is_some_and(|c| c.attributes.aex_notify() && c.capabilities.edeccssa)
    }

    /// The number of EPC sections CPUID reports.
    pub fn epc_sections(&self) -> usize {
        self.cpu.as_ref().map_or(0, |c| c.epc_sections.len())
    }
}

/// Reads the machine through `probe`. `epc_override` (`--epc-size`) replaces the EPC size.
pub fn discover(probe: &dyn Probe, epc_override: Option<u64>) -> Result<SgxNode, DiscoveryError> {
    let devices = probe.device_nodes()?;
    let numa = probe.numa_epc()?;
    let (features, cpu) = match probe.cpuid(0, 0)? {
        None => (SgxFeatureFlags::default(), None),
        Some(leaf0) => {
            let max_leaf = leaf0.eax;
            let leaf7 = if max_leaf >= LEAF_FEATURES {
                probe.cpuid(LEAF_FEATURES, 0)?.unwrap_or_default()
            } else {
                CpuidRegs::default()
            };
            let features = SgxFeatureFlags::decode(leaf7);
            let cpu = if features.sgx && max_leaf >= LEAF_SGX {
                let mut subleaves = Vec::new();
                for n in 0..=sgx_types::cpuid::EPC_LAST_SUBLEAF {
                    subleaves.push(probe.cpuid(LEAF_SGX, n)?.unwrap_or_default());
                }
                Some(SgxCpuInfo::decode(leaf7, |n| {
                    subleaves.get(n as usize).copied().unwrap_or_default()
                })?)
            } else {
                None
            };
            (features, cpu)
        }
    };
    let cpuid_epc = cpu.as_ref().map_or(0, SgxCpuInfo::epc_total);
    let sysfs_epc = numa.iter().fold(0u64, |acc, n| acc.saturating_add(n.bytes));
    let (epc_bytes, epc_source) = match epc_override {
        Some(bytes) => (bytes, EpcSource::Override),
        None if cpuid_epc > 0 => (cpuid_epc, EpcSource::Cpuid),
        None if sysfs_epc > 0 => (sysfs_epc, EpcSource::Sysfs),
        None => (0, EpcSource::None),
    };
    Ok(SgxNode {
        features,
        cpu,
        devices,
        numa,
        epc_bytes,
        epc_source,
    })
}

/// An `--epc-size` value that is not a whole number of bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("EPC size \"{text}\" {problem}; write a whole number of bytes such as 98566144 or 94Mi")]
#[non_exhaustive]
pub struct EpcSizeError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub problem: kube_sgx::quantity::QuantityError,
}

/// Parses an `--epc-size` value: a Kubernetes quantity of bytes (`98566144`, `94Mi`, `1e9`,
/// `0.5Gi`), with the same grammar as pod EPC requests ([`kube_sgx::quantity::parse`]).
pub fn parse_epc_size(text: &str) -> Result<u64, EpcSizeError> {
    kube_sgx::quantity::parse(text.trim())
        .map(|q| q.value)
        .map_err(|problem| EpcSizeError {
            text: text.trim().to_owned(),
            problem,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::FixtureProbe;
    use std::path::PathBuf;

    fn fixture_path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name)
    }

    struct Want {
        file: &'static str,
        capable: bool,
        sgx: bool,
        flc: bool,
        sgx2: bool,
        kss: bool,
        aex: bool,
        sections: usize,
        epc: u64,
        source: EpcSource,
        numa: usize,
    }

    #[test]
    fn fixture_machines() {
        let cases = [
            Want {
                file: "one-socket.json",
                capable: true,
                sgx: true,
                flc: true,
                sgx2: true,
                kss: true,
                aex: true,
                sections: 1,
                epc: 0xfe00_0000,
                source: EpcSource::Cpuid,
                numa: 1,
            },
            Want {
                file: "two-socket.json",
                capable: true,
                sgx: true,
                flc: true,
                sgx2: true,
                kss: true,
                aex: false,
                sections: 2,
                epc: 2 * 0x3_fe00_0000,
                source: EpcSource::Cpuid,
                numa: 2,
            },
            Want {
                file: "no-sgx.json",
                capable: false,
                sgx: false,
                flc: false,
                sgx2: false,
                kss: false,
                aex: false,
                sections: 0,
                epc: 0,
                source: EpcSource::None,
                numa: 0,
            },
            Want {
                file: "no-flc.json",
                capable: false,
                sgx: true,
                flc: false,
                sgx2: false,
                kss: false,
                aex: false,
                sections: 1,
                epc: 0x05d8_0000,
                source: EpcSource::Cpuid,
                numa: 0,
            },
            Want {
                file: "vm-hidden-leaf.json",
                capable: true,
                sgx: true,
                flc: true,
                sgx2: false,
                kss: false,
                aex: false,
                sections: 0,
                epc: 0x0800_0000,
                source: EpcSource::Sysfs,
                numa: 1,
            },
        ];
        for w in cases {
            let probe = FixtureProbe::open(fixture_path(w.file)).unwrap();
            let node = discover(&probe, None).unwrap();
            assert_eq!(node.capable(), w.capable, "{} capable", w.file);
            assert_eq!(node.features.sgx, w.sgx, "{} sgx", w.file);
            assert_eq!(node.features.flc, w.flc, "{} flc", w.file);
            assert_eq!(node.sgx2(), w.sgx2, "{} sgx2", w.file);
            assert_eq!(node.kss(), w.kss, "{} kss", w.file);
            assert_eq!(node.aex_notify(), w.aex, "{} aex", w.file);
            assert_eq!(node.epc_sections(), w.sections, "{} sections", w.file);
            assert_eq!(node.epc_bytes, w.epc, "{} epc", w.file);
            assert_eq!(node.epc_source, w.source, "{} source", w.file);
            assert_eq!(node.numa.len(), w.numa, "{} numa", w.file);
        }
    }

    #[test]
    fn two_socket_sections_and_numa() {
        let probe = FixtureProbe::open(fixture_path("two-socket.json")).unwrap();
        let node = discover(&probe, None).unwrap();
        let cpu = node.cpu.unwrap();
        assert_eq!(cpu.epc_sections[0].base, 0x40_0000_0000);
        assert_eq!(cpu.epc_sections[1].base, 0x80_0000_0000);
        assert_eq!(
            node.numa,
            vec![
                NumaEpc {
                    node: 0,
                    bytes: 0x3_fe00_0000
                },
                NumaEpc {
                    node: 1,
                    bytes: 0x3_fe00_0000
                }
            ]
        );
        assert_eq!(cpu.capabilities.max_enclave_size_64(), Some(1 << 56));
    }

    #[test]
    fn epc_override_wins() {
        let probe = FixtureProbe::open(fixture_path("one-socket.json")).unwrap();
        let node = discover(&probe, Some(64 << 20)).unwrap();
        assert_eq!(node.epc_bytes, 64 << 20);
        assert_eq!(node.epc_source, EpcSource::Override);
        assert!(node.capable());
        let none = FixtureProbe::open(fixture_path("no-sgx.json")).unwrap();
        let node = discover(&none, Some(64 << 20)).unwrap();
        assert!(!node.capable(), "no enclave device, no SGX node");
    }

    #[test]
    fn bad_epc_subleaf_is_an_error() {
        let dir = std::env::temp_dir().join(format!("node-agent-disc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.json");
        std::fs::write(
            &p,
            r#"{"cpuid":{"0x0.0x0":["0x1b","0","0","0"],"0x7.0x0":["0","0x4","0","0"],
                "0x12.0x0":["0x1","0","0","0x2420"],"0x12.0x2":["0x7","0","0","0"]}}"#,
        )
        .unwrap();
        let err = discover(&FixtureProbe::open(&p).unwrap(), None).unwrap_err();
        assert!(matches!(
            err,
            DiscoveryError::Cpuid(CpuidError::UnknownEpcType {
                subleaf: 2,
                kind: 7
            })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn probe_errors_surface() {
        let dir = std::env::temp_dir().join(format!("node-agent-disc-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.json");
        std::fs::write(&p, "{}").unwrap();
        let probe = FixtureProbe::open(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        let err = discover(&probe, None).unwrap_err();
        assert!(
            matches!(err, DiscoveryError::Probe(ProbeError::Io { .. })),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read {}", p.display()))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn epc_size_table() {
        let cases = [
            ("98566144", Ok(98_566_144)),
            ("94Mi", Ok(94 << 20)),
            ("4Gi", Ok(4 << 30)),
            ("512Ki", Ok(512 << 10)),
            ("1Ti", Ok(1 << 40)),
            ("2G", Ok(2_000_000_000)),
            ("3k", Ok(3_000)),
            ("10.5Mi", Ok(11_010_048)),
            ("1Pi", Ok(1 << 50)),
            ("1e6", Ok(1_000_000)),
            (
                "12Q",
                Err(
                    "EPC size \"12Q\" is not a Kubernetes quantity; write a whole number of bytes such as 98566144 or 94Mi",
                ),
            ),
            (
                "Mi",
                Err(
                    "EPC size \"Mi\" is not a Kubernetes quantity; write a whole number of bytes such as 98566144 or 94Mi",
                ),
            ),
            (
                "-1",
                Err(
                    "EPC size \"-1\" is negative; write a whole number of bytes such as 98566144 or 94Mi",
                ),
            ),
            (
                "1.5",
                Err(
                    "EPC size \"1.5\" is not a whole number; write a whole number of bytes such as 98566144 or 94Mi",
                ),
            ),
            (
                "99999999999Ti",
                Err(
                    "EPC size \"99999999999Ti\" is too large; write a whole number of bytes such as 98566144 or 94Mi",
                ),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_epc_size(text).map_err(|e| e.to_string()),
                want.map_err(str::to_owned),
                "{text}"
            );
        }
    }
}
