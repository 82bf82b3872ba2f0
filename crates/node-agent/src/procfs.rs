//! Committed EPC per container, from `/proc/<pid>/maps` and `/proc/<pid>/cgroup`.
//!
//! An enclave is mapped from `/dev/sgx_enclave` (or the legacy `/dev/sgx/enclave`); the sum of
//! those mappings in a process is the enclave address range it has built, which bounds the EPC
//! it can hold. The process cgroup path names the pod UID and container ID (cgroupfs and
//! systemd drivers, containerd, CRI-O and Docker naming). This is the "committed EPC" signal;
//! with SGX2 (EDMM) actual EPC use can be lower.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Why the process table could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcError {
    /// The proc root itself is unreadable.
    #[error("cannot read {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A maps line does not have the kernel's `start-end perms offset dev inode [path]` shape.
    #[error("{path}: malformed line {line:?}")]
    MalformedMaps {
        /// The maps file.
        path: PathBuf,
        /// The line.
        line: String,
    },
}

/// Enclave mappings of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEpc {
    /// The process ID.
    pub pid: u32,
    /// The pod UID from the cgroup path, when the process runs in a pod.
    pub pod_uid: Option<String>,
    /// The container ID from the cgroup path.
    pub container_id: Option<String>,
    /// Bytes mapped from the enclave device.
    pub bytes: u64,
}

/// The result of one scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Processes with at least one enclave mapping.
    pub processes: Vec<ProcessEpc>,
    /// Processes whose maps could not be read (permissions); they are not counted.
    pub unreadable: u64,
}

/// Sums the enclave-device mappings in a maps file.
pub fn enclave_bytes(path: &Path, text: &str) -> Result<u64, ProcError> {
    let mut total: u64 = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let malformed = || ProcError::MalformedMaps {
            path: path.to_owned(),
            line: line.to_owned(),
        };
        let mut fields = line.splitn(6, ' ');
        let range = fields.next().ok_or_else(malformed)?;
        // perms, offset, dev, inode must be there even for anonymous mappings.
        for _ in 0..4 {
            fields.next().ok_or_else(malformed)?;
        }
        let (start, end) = range.split_once('-').ok_or_else(malformed)?;
        let start = u64::from_str_radix(start, 16).map_err(|_| malformed())?;
        let end = u64::from_str_radix(end, 16).map_err(|_| malformed())?;
        let size = end.checked_sub(start).ok_or_else(malformed)?;
        let file = fields.next().unwrap_or("").trim();
        let file = file.strip_suffix(" (deleted)").unwrap_or(file);
        if file == "/dev/sgx_enclave" || file == "/dev/sgx/enclave" {
            total = total.saturating_add(size);
        }
    }
    Ok(total)
}

/// Pod UID and container ID from `/proc/<pid>/cgroup` contents.
pub fn pod_and_container(cgroup: &str) -> (Option<String>, Option<String>) {
    for line in cgroup.lines() {
        // "hierarchy-ID:controllers:path"; v2 has "0::/path".
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        if !path.contains("kubepods") {
            continue;
        }
        let mut pod = None;
        let mut container = None;
        for segment in path.split('/') {
            let segment = segment.strip_suffix(".slice").unwrap_or(segment);
            if let Some(idx) = segment.rfind("pod") {
                let uid = segment.get(idx + 3..).unwrap_or("");
                if uid.len() >= 32
                    && uid
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == '-' || c == '_')
                {
                    pod = Some(uid.replace('_', "-"));
                    continue;
                }
            }
            if pod.is_some() {
                let id = segment.strip_suffix(".scope").unwrap_or(segment);
                let id = id.rsplit('-').next().unwrap_or(id);
                if id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()) {
                    container = Some(id.to_owned());
                }
            }
        }
        if pod.is_some() {
            return (pod, container);
        }
    }
    (None, None)
}

fn read_optional(path: &Path) -> Result<Option<String>, io::Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        // The process exited between listing and reading.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(3) => Ok(None), // ESRCH
        Err(e) => Err(e),
    }
}

/// Scans every process under `proc_root` (normally `/proc`).
pub fn scan(proc_root: &Path) -> Result<Scan, ProcError> {
    let entries = std::fs::read_dir(proc_root).map_err(|source| ProcError::Io {
        path: proc_root.to_owned(),
        source,
    })?;
    let mut out = Scan::default();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let maps_path = entry.path().join("maps");
        let maps = match read_optional(&maps_path) {
            Ok(Some(text)) => text,
            Ok(None) => continue,
            Err(_) => {
                out.unreadable += 1;
                continue;
            }
        };
        let bytes = enclave_bytes(&maps_path, &maps)?;
        if bytes == 0 {
            continue;
        }
        let cgroup = read_optional(&entry.path().join("cgroup"))
            .ok()
            .flatten()
            .unwrap_or_default();
        let (pod_uid, container_id) = pod_and_container(&cgroup);
        out.processes.push(ProcessEpc {
            pid,
            pod_uid,
            container_id,
            bytes,
        });
    }
    out.processes.sort_by_key(|p| p.pid);
    Ok(out)
}

/// Committed bytes per (pod UID, container ID); processes outside pods are keyed by empty
/// strings.
pub fn by_container(scan: &Scan) -> BTreeMap<(String, String), u64> {
    let mut out: BTreeMap<(String, String), u64> = BTreeMap::new();
    for p in &scan.processes {
        let key = (
            p.pod_uid.clone().unwrap_or_default(),
            p.container_id.clone().unwrap_or_default(),
        );
        let slot = out.entry(key).or_default();
        *slot = slot.saturating_add(p.bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn maps_table() {
        let p = Path::new("/proc/1/maps");
        let cases = [
            ("", 0),
            (
                "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon\n",
                0,
            ),
            (
                "7f0000000000-7f0010000000 rw-s 00000000 00:06 123 /dev/sgx_enclave\n\
                 7f0010000000-7f0010001000 r--s 00000000 00:06 123 /dev/sgx_enclave\n\
                 7ffd0000000-7ffd0021000 rw-p 00000000 00:00 0                          [stack]\n",
                0x1000_1000,
            ),
            (
                "10000000-10200000 rw-s 00000000 00:06 9 /dev/sgx/enclave (deleted)\n\
                 7f0000000000-7f0000001000 rw-p 00000000 00:00 0\n",
                0x20_0000,
            ),
            (
                "10000000-10200000 rw-s 00000000 00:06 9 /dev/sgx_provision\n",
                0,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(enclave_bytes(p, text).unwrap(), want, "{text}");
        }
        for bad in [
            "zz-10 rw-s 0 0 0 /dev/sgx_enclave",
            "10000000 rw-s 0 0 0 /dev/sgx_enclave",
            "20-10 rw-s 0 0 0 /dev/sgx_enclave",
            "10-20 rw-s",
        ] {
            let err = enclave_bytes(p, bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("/proc/1/maps: malformed line {bad:?}")
            );
        }
    }

    #[test]
    fn cgroup_table() {
        let uid = "5f1d3c2a-1b2c-4d5e-8f90-0123456789ab";
        let uid_ = uid.replace('-', "_");
        let cases = [
            (
                format!(
                    "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{CID}.scope\n"
                ),
                (Some(uid.to_owned()), Some(CID.to_owned())),
            ),
            (
                format!("0::/kubepods/besteffort/pod{uid}/{CID}\n"),
                (Some(uid.to_owned()), Some(CID.to_owned())),
            ),
            (
                format!("12:memory:/kubepods/pod{uid}/crio-{CID}.scope\n1:name=systemd:/\n"),
                (Some(uid.to_owned()), Some(CID.to_owned())),
            ),
            (
                format!("0::/kubepods.slice/kubepods-pod{uid_}.slice\n"),
                (Some(uid.to_owned()), None),
            ),
            ("0::/system.slice/aesmd.service\n".to_owned(), (None, None)),
            ("garbage".to_owned(), (None, None)),
        ];
        for (text, want) in cases {
            assert_eq!(pod_and_container(&text), want, "{text}");
        }
    }

    #[test]
    fn scan_fake_proc_root() {
        let root = std::env::temp_dir().join(format!("node-agent-proc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let uid = "5f1d3c2a-1b2c-4d5e-8f90-0123456789ab";
        let write = |pid: &str, maps: &str, cgroup: &str| {
            let d = root.join(pid);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("maps"), maps).unwrap();
            std::fs::write(d.join("cgroup"), cgroup).unwrap();
        };
        let enclave = |size: u64| {
            format!(
                "10000000-{:x} rw-s 00000000 00:06 9 /dev/sgx_enclave\n",
                0x1000_0000 + size
            )
        };
        let cg = format!("0::/kubepods/burstable/pod{uid}/{CID}\n");
        write("10", &enclave(0x10_0000), &cg);
        write("11", &enclave(0x20_0000), &cg);
        write(
            "12",
            "00400000-00452000 r-xp 00000000 08:02 1 /bin/sh\n",
            &cg,
        );
        write("13", &enclave(0x1000), "0::/system.slice/aesmd.service\n");
        std::fs::create_dir_all(root.join("self")).unwrap();
        std::fs::create_dir_all(root.join("14")).unwrap(); // exited: no maps
        let s = scan(&root).unwrap();
        assert_eq!(
            s.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
            vec![10, 11, 13]
        );
        let by = by_container(&s);
        assert_eq!(by.get(&(uid.to_owned(), CID.to_owned())), Some(&0x30_0000));
        assert_eq!(by.get(&(String::new(), String::new())), Some(&0x1000));
        assert_eq!(by.len(), 2);
        write("15", "bad line\n", "");
        let err = scan(&root).unwrap_err();
        assert!(matches!(err, ProcError::MalformedMaps { ref line, .. } if line == "bad line"));
        std::fs::remove_dir_all(&root).unwrap();
        let err = scan(&root).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read {}", root.display()))
        );
    }
}
