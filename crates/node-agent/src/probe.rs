//! The probe seam: where discovery gets CPUID registers, device nodes and sysfs values from.
//!
//! [`HostProbe`] reads the machine it runs on; [`FixtureProbe`] reads a JSON file that
//! describes a machine, so discovery, the device plugin and the node patch are tested without
//! SGX hardware.

use serde::Deserialize;
use sgx_types::cpuid::CpuidRegs;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Why a probe could not read the machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// A file or directory could not be read (other than "not found", which means absent).
    #[error("cannot read {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A sysfs attribute does not hold what the kernel ABI says it holds.
    #[error("{path}: expected a decimal byte count, found {content:?}")]
    Sysfs {
        /// The attribute file.
        path: PathBuf,
        /// What it contained (trimmed).
        content: String,
    },
    /// A fixture file is not a valid machine description.
    #[error("fixture {path}: {reason}")]
    Fixture {
        /// The fixture file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Which SGX device nodes exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceNodes {
    /// `/dev/sgx_enclave` (in-kernel driver, Linux ≥ 5.11).
    pub enclave: bool,
    /// `/dev/sgx_provision`.
    pub provision: bool,
    /// `/dev/sgx/enclave` (legacy DCAP out-of-tree driver): reported, never handed out.
    pub legacy_enclave: bool,
    /// `/dev/sgx/provision` (legacy): reported, never handed out.
    pub legacy_provision: bool,
}

/// EPC bytes the kernel reports for one NUMA node
/// (`/sys/devices/system/node/node<N>/x86/sgx_total_bytes`, Linux ≥ 6.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumaEpc {
    /// The NUMA node number.
    pub node: u32,
    /// EPC bytes on that node.
    pub bytes: u64,
}

/// Where discovery reads the machine from.
pub trait Probe: Send + Sync {
    /// Executes `CPUID` for `leaf`/`subleaf`; `None` when the platform has no CPUID (not x86).
    fn cpuid(&self, leaf: u32, subleaf: u32) -> Result<Option<CpuidRegs>, ProbeError>;
    /// Which SGX device nodes exist now.
    fn device_nodes(&self) -> Result<DeviceNodes, ProbeError>;
    /// Per-NUMA EPC sizes from sysfs, sorted by node; empty when the kernel does not report them.
    fn numa_epc(&self) -> Result<Vec<NumaEpc>, ProbeError>;
}

/// The real machine: the `CPUID` instruction, a device directory and a sysfs root.
#[derive(Debug, Clone)]
pub struct HostProbe {
    dev_dir: PathBuf,
    sysfs_root: PathBuf,
}

impl HostProbe {
    /// A probe reading devices under `dev_dir` (normally `/dev`) and sysfs under `sysfs_root`
    /// (normally `/sys`).
    pub fn new(dev_dir: impl Into<PathBuf>, sysfs_root: impl Into<PathBuf>) -> Self {
        Self {
            dev_dir: dev_dir.into(),
            sysfs_root: sysfs_root.into(),
        }
    }
}

fn exists(path: &Path) -> Result<bool, ProbeError> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(ProbeError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads the device nodes under `dev_dir`.
pub fn device_nodes_in(dev_dir: &Path) -> Result<DeviceNodes, ProbeError> {
    Ok(DeviceNodes {
        enclave: exists(&dev_dir.join("sgx_enclave"))?,
        provision: exists(&dev_dir.join("sgx_provision"))?,
        legacy_enclave: exists(&dev_dir.join("sgx/enclave"))?,
        legacy_provision: exists(&dev_dir.join("sgx/provision"))?,
    })
}

/// Parses the contents of one `sgx_total_bytes` attribute.
pub fn parse_sgx_total_bytes(path: &Path, content: &str) -> Result<u64, ProbeError> {
    let trimmed = content.trim();
    trimmed.parse::<u64>().map_err(|_| ProbeError::Sysfs {
        path: path.to_owned(),
        content: trimmed.to_owned(),
    })
}

/// Reads `devices/system/node/node<N>/x86/sgx_total_bytes` under `sysfs_root`.
pub fn numa_epc_in(sysfs_root: &Path) -> Result<Vec<NumaEpc>, ProbeError> {
    let nodes_dir = sysfs_root.join("devices/system/node");
    let entries = match std::fs::read_dir(&nodes_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ProbeError::Io {
                path: nodes_dir,
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ProbeError::Io {
            path: nodes_dir.clone(),
            source,
        })?;
        let name = entry.file_name();
        let Some(node) = name
            .to_str()
            .and_then(|n| n.strip_prefix("node"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let attr = entry.path().join("x86/sgx_total_bytes");
        match std::fs::read_to_string(&attr) {
            Ok(content) => out.push(NumaEpc {
                node,
                bytes: parse_sgx_total_bytes(&attr, &content)?,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(ProbeError::Io { path: attr, source }),
        }
    }
    out.sort_by_key(|n| n.node);
    Ok(out)
}

impl Probe for HostProbe {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> Result<Option<CpuidRegs>, ProbeError> {
        Ok(host_cpuid(leaf, subleaf))
    }

    fn device_nodes(&self) -> Result<DeviceNodes, ProbeError> {
        device_nodes_in(&self.dev_dir)
    }

    fn numa_epc(&self) -> Result<Vec<NumaEpc>, ProbeError> {
        numa_epc_in(&self.sysfs_root)
    }
}

/// Executes `CPUID` on this CPU.
#[cfg(target_arch = "x86_64")]
pub fn host_cpuid(leaf: u32, subleaf: u32) -> Option<CpuidRegs> {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    Some(CpuidRegs::new(r.eax, r.ebx, r.ecx, r.edx))
}

/// Executes `CPUID` on this CPU: there is none on this architecture.
#[cfg(not(target_arch = "x86_64"))]
pub fn host_cpuid(_leaf: u32, _subleaf: u32) -> Option<CpuidRegs> {
    None
}

/// A machine described in a JSON file, re-read on every call so a test (or an operator
/// reproducing a report) can change the machine while the agent runs.
///
/// ```json
/// {
///   "cpuid": { "0x0.0": ["0x1b", "0", "0", "0"], "0x7.0": ["0", "0x4", "0x40000000", "0"] },
///   "devices": ["sgx_enclave", "sgx_provision"],
///   "numa_sgx_total_bytes": { "0": 4261412864 }
/// }
/// ```
///
/// `cpuid` keys are `"<leaf>.<subleaf>"` in hex, values are EAX, EBX, ECX, EDX as hex strings;
/// a leaf/sub-leaf that is not listed reads as zeros; without a `cpuid` key the machine has no
/// CPUID (not x86). `devices` are paths relative to `/dev`.
#[derive(Debug, Clone)]
pub struct FixtureProbe {
    path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    #[serde(default)]
    cpuid: Option<BTreeMap<String, [String; 4]>>,
    #[serde(default)]
    devices: Vec<String>,
    #[serde(default)]
    numa_sgx_total_bytes: BTreeMap<String, u64>,
}

/// A parsed fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Machine {
    cpuid: Option<BTreeMap<(u32, u32), CpuidRegs>>,
    devices: DeviceNodes,
    numa: Vec<NumaEpc>,
}

fn parse_hex_u32(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u32::from_str_radix(digits, 16).ok()
}

fn parse_hex_value(s: &str) -> Option<u32> {
    if s == "0" {
        return Some(0);
    }
    parse_hex_u32(s)
}

impl FixtureProbe {
    /// A probe reading the fixture at `path`. The file is checked now and on every call.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ProbeError> {
        let probe = Self { path: path.into() };
        probe.load()?;
        Ok(probe)
    }

    fn fail(&self, reason: impl Into<String>) -> ProbeError {
        ProbeError::Fixture {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn load(&self) -> Result<Machine, ProbeError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| ProbeError::Io {
            path: self.path.clone(),
            source,
        })?;
        let file: FixtureFile =
            serde_json::from_str(&text).map_err(|e| self.fail(e.to_string()))?;
        let cpuid = match file.cpuid {
            None => None,
            Some(map) => {
                let mut out = BTreeMap::new();
                for (key, regs) in map {
                    let (leaf, subleaf) = key
                        .split_once('.')
                        .and_then(|(l, s)| Some((parse_hex_u32(l)?, parse_hex_u32(s)?)))
                        .ok_or_else(|| {
                            self.fail(format!(
                                "cpuid key {key:?} is not \"<leaf>.<subleaf>\" in hex, e.g. \"0x12.0x2\""
                            ))
                        })?;
                    let mut values = [0u32; 4];
                    for (slot, text) in values.iter_mut().zip(regs.iter()) {
                        *slot = parse_hex_value(text).ok_or_else(|| {
                            self.fail(format!(
                                "cpuid {key}: register value {text:?} is not a 32-bit hex number like \"0x1f\""
                            ))
                        })?;
                    }
                    let [eax, ebx, ecx, edx] = values;
                    out.insert((leaf, subleaf), CpuidRegs::new(eax, ebx, ecx, edx));
                }
                Some(out)
            }
        };
        let mut devices = DeviceNodes::default();
        for name in &file.devices {
            match name.as_str() {
                "sgx_enclave" => devices.enclave = true,
                "sgx_provision" => devices.provision = true,
                "sgx/enclave" => devices.legacy_enclave = true,
                "sgx/provision" => devices.legacy_provision = true,
                other => {
                    return Err(self.fail(format!(
                        "unknown device {other:?}; expected sgx_enclave, sgx_provision, sgx/enclave or sgx/provision"
                    )));
                }
            }
        }
        let mut numa = Vec::new();
        for (node, bytes) in file.numa_sgx_total_bytes {
            let node = node.parse::<u32>().map_err(|_| {
                self.fail(format!(
                    "numa_sgx_total_bytes key {node:?} is not a NUMA node number"
                ))
            })?;
            numa.push(NumaEpc { node, bytes });
        }
        numa.sort_by_key(|n| n.node);
        Ok(Machine {
            cpuid,
            devices,
            numa,
        })
    }
}

impl Probe for FixtureProbe {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> Result<Option<CpuidRegs>, ProbeError> {
        Ok(self
            .load()?
            .cpuid
            .map(|table| table.get(&(leaf, subleaf)).copied().unwrap_or_default()))
    }

    fn device_nodes(&self) -> Result<DeviceNodes, ProbeError> {
        Ok(self.load()?.devices)
    }

    fn numa_epc(&self) -> Result<Vec<NumaEpc>, ProbeError> {
        Ok(self.load()?.numa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tempfile::TempDir;

    fn tempdir(tag: &str) -> TempDir {
        tempfile::Builder::new()
            .prefix(&format!("node-agent-probe-{tag}-"))
            .tempdir()
            .unwrap()
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }

    #[test]
    fn device_nodes_table() {
        let cases: &[(&[&str], DeviceNodes)] = &[
            (&[], DeviceNodes::default()),
            (
                &["sgx_enclave"],
                DeviceNodes {
                    enclave: true,
                    ..Default::default()
                },
            ),
            (
                &["sgx_enclave", "sgx_provision"],
                DeviceNodes {
                    enclave: true,
                    provision: true,
                    ..Default::default()
                },
            ),
            (
                &["sgx/enclave", "sgx/provision"],
                DeviceNodes {
                    legacy_enclave: true,
                    legacy_provision: true,
                    ..Default::default()
                },
            ),
        ];
        for (i, (files, want)) in cases.iter().enumerate() {
            let dir = tempdir(&format!("dev{i}"));
            for f in *files {
                touch(&dir.path().join(f));
            }
            assert_eq!(device_nodes_in(dir.path()).unwrap(), *want, "{files:?}");
        }
    }

    #[test]
    fn sysfs_numa_table() {
        let dir = tempdir("sysfs");
        assert_eq!(numa_epc_in(dir.path()).unwrap(), vec![]);
        let nodes = dir.path().join("devices/system/node");
        std::fs::create_dir_all(nodes.join("node0")).unwrap();
        std::fs::create_dir_all(nodes.join("possible-not-a-node")).unwrap();
        assert_eq!(numa_epc_in(dir.path()).unwrap(), vec![]);
        std::fs::create_dir_all(nodes.join("node1/x86")).unwrap();
        std::fs::write(nodes.join("node1/x86/sgx_total_bytes"), "4261412864\n").unwrap();
        std::fs::create_dir_all(nodes.join("node0/x86")).unwrap();
        std::fs::write(nodes.join("node0/x86/sgx_total_bytes"), "8388608\n").unwrap();
        assert_eq!(
            numa_epc_in(dir.path()).unwrap(),
            vec![
                NumaEpc {
                    node: 0,
                    bytes: 8_388_608
                },
                NumaEpc {
                    node: 1,
                    bytes: 4_261_412_864
                }
            ]
        );
        std::fs::write(nodes.join("node1/x86/sgx_total_bytes"), "lots\n").unwrap();
        let err = numa_epc_in(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: expected a decimal byte count, found \"lots\"",
                nodes.join("node1/x86/sgx_total_bytes").display()
            )
        );
    }

    #[test]
    fn sgx_total_bytes_parse_table() {
        let p = Path::new("x");
        let cases = [
            ("0\n", Some(0)),
            ("98566144\n", Some(98_566_144)),
            (" 12 ", Some(12)),
            ("", None),
            ("-1", None),
            ("1e6", None),
            ("18446744073709551616", None),
        ];
        for (content, want) in cases {
            assert_eq!(parse_sgx_total_bytes(p, content).ok(), want, "{content:?}");
        }
    }

    #[test]
    fn host_cpuid_reports_a_max_leaf() {
        // Every x86-64 CPU reports at least leaf 1 and a vendor string in leaf 0.
        #[cfg(target_arch = "x86_64")]
        {
            let leaf0 = HostProbe::new("/dev", "/sys").cpuid(0, 0).unwrap().unwrap();
            assert!(leaf0.eax >= 1);
            assert_ne!(leaf0.ebx, 0);
        }
    }

    fn fixture(dir: &TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("machine.json");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn fixture_reads_machine_and_rereads_on_change() {
        let dir = tempdir("fixture");
        let p = fixture(
            &dir,
            r#"{"cpuid":{"0x12.0x2":["0x80000001","0","0x7f000001","0"]},
                "devices":["sgx_enclave","sgx/enclave"],
                "numa_sgx_total_bytes":{"1":5,"0":7}}"#,
        );
        let probe = FixtureProbe::open(&p).unwrap();
        assert_eq!(
            probe.cpuid(0x12, 2).unwrap(),
            Some(CpuidRegs::new(0x8000_0001, 0, 0x7f00_0001, 0))
        );
        assert_eq!(probe.cpuid(0x12, 3).unwrap(), Some(CpuidRegs::default()));
        assert_eq!(
            probe.device_nodes().unwrap(),
            DeviceNodes {
                enclave: true,
                legacy_enclave: true,
                ..Default::default()
            }
        );
        assert_eq!(
            probe.numa_epc().unwrap(),
            vec![NumaEpc { node: 0, bytes: 7 }, NumaEpc { node: 1, bytes: 5 }]
        );
        std::fs::write(&p, r#"{"devices":[]}"#).unwrap();
        assert_eq!(probe.device_nodes().unwrap(), DeviceNodes::default());
        assert_eq!(probe.cpuid(0, 0).unwrap(), None);
    }

    #[test]
    fn fixture_errors() {
        let dir = tempdir("fixture-errors");
        let cases = [
            (
                r#"{"cpuid":{"7":["0","0","0","0"]}}"#,
                "cpuid key \"7\" is not \"<leaf>.<subleaf>\" in hex, e.g. \"0x12.0x2\"",
            ),
            (
                r#"{"cpuid":{"0x7.0x0":["0","4","0","0"]}}"#,
                "cpuid 0x7.0x0: register value \"4\" is not a 32-bit hex number like \"0x1f\"",
            ),
            (
                r#"{"cpuid":{"0x7.0x0":["0","0x100000000","0","0"]}}"#,
                "cpuid 0x7.0x0: register value \"0x100000000\" is not a 32-bit hex number like \"0x1f\"",
            ),
            (
                r#"{"devices":["sgx_vepc"]}"#,
                "unknown device \"sgx_vepc\"; expected sgx_enclave, sgx_provision, sgx/enclave or sgx/provision",
            ),
            (
                r#"{"numa_sgx_total_bytes":{"zero":1}}"#,
                "numa_sgx_total_bytes key \"zero\" is not a NUMA node number",
            ),
            (
                r#"{"gpus":[]}"#,
                "unknown field `gpus`, expected one of `cpuid`, `devices`, `numa_sgx_total_bytes` at line 1 column 7",
            ),
        ];
        for (text, reason) in cases {
            let p = fixture(&dir, text);
            let err = FixtureProbe::open(&p).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("fixture {}: {reason}", p.display()),
                "{text}"
            );
        }
        let missing = dir.path().join("absent.json");
        let err = FixtureProbe::open(&missing).unwrap_err();
        assert!(matches!(&err, ProbeError::Io { path, .. } if path == &missing));
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read {}", missing.display()))
        );
    }
}
