//! Secret names, release policies, stored records, and the two back ends: the embedded store
//! (values sealed under the KEK, versions kept) and mounted files (HA: a Kubernetes Secret for
//! values, a ConfigMap for policies, polled and swapped atomically).

use super::kek::{Kek, SealError};
use crate::policy::Policy;
use crate::store::{Store, StoreError, Table};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use zeroize::Zeroizing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Longest secret name.
pub const MAX_NAME: usize = 128;
/// Largest secret value, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// Versions kept per secret; a PUT beyond this drops the oldest.
pub const MAX_VERSIONS: usize = 32;
/// Most secrets.
pub const MAX_SECRETS: usize = 10_000;
/// Longest content type.
pub const MAX_CONTENT_TYPE: usize = 255;

/// Checks a secret name: 1 to 128 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit (a
/// valid Kubernetes Secret key and URL path segment).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!(
            "a secret name has 1 to {MAX_NAME} characters (this one has {})",
            name.len()
        ));
    }
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "secret name {name:?} is not allowed: use letters, digits, '.', '_' and '-', \
             starting with a letter or digit"
        ));
    }
    Ok(())
}

/// A secret's release policy.
#[derive(Debug, Clone)]
pub enum ReleasePolicy {
    /// A confkube JSON policy (the document of `PUT /policies/SgxEnclave`).
    Json(Box<Policy>),
    /// A Microsoft Azure Attestation policy-language document (`{"maa": "<policy text>"}`): its
    /// `authorizationrules` decide, over the claims of the presented attestation.
    Maa(Arc<maa_policy::Policy>),
}

/// Why a release policy is not acceptable (`400 invalid-policy`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleasePolicyError {
    /// Not a valid confkube JSON policy, or not of the form `{"maa": "<policy text>"}`.
    #[error("{0}")]
    Invalid(String),
    /// An MAA policy text that does not parse.
    #[error("invalid policy: {0}")]
    MaaSyntax(maa_policy::ParseError),
}

impl ReleasePolicyError {
    /// The problem code.
    pub fn code(&self) -> &'static str {
        "invalid-policy"
    }

    /// Extra problem fields: `line` and `column` of an MAA syntax error.
    pub fn extra(&self) -> Option<Value> {
        match self {
            Self::MaaSyntax(e) => Some(serde_json::json!({"line": e.line, "column": e.column})),
            Self::Invalid(_) => None,
        }
    }
}

impl ReleasePolicy {
    /// Parses the `policy` member of a PUT body or policy file entry: a confkube JSON policy, or
    /// `{"maa": "<MAA policy text>"}`.
    pub fn from_value(v: &Value) -> Result<Self, ReleasePolicyError> {
        if let Some(obj) = v.as_object()
            && let Some(text) = obj.get("maa")
        {
            let (Some(text), 1) = (text.as_str(), obj.len()) else {
                return Err(ReleasePolicyError::Invalid(
                    "invalid policy: an MAA release policy is {\"maa\": \"<policy text>\"}: \
                     one string member and nothing else"
                        .into(),
                ));
            };
            let policy = maa_policy::Policy::parse(text).map_err(ReleasePolicyError::MaaSyntax)?;
            if policy.tcb_identifier().is_some() {
                return Err(ReleasePolicyError::Invalid(
                    "invalid policy: x-ms-sgx-tcbidentifier selects the TCB baseline of an \
                     attestation, which the attestation policy decides; remove it from the \
                     secret's release policy"
                        .into(),
                ));
            }
            return Ok(Self::Maa(Arc::new(policy)));
        }
        let text = v.to_string();
        Policy::from_json(text.as_bytes())
            .map(|p| Self::Json(Box::new(p)))
            .map_err(|e| ReleasePolicyError::Invalid(e.to_string()))
    }

    /// The document, as shown by `GET /secrets/{name}` and stored: the JSON policy, or
    /// `{"maa": "<policy text>"}`.
    pub fn document(&self) -> Value {
        match self {
            Self::Json(p) => serde_json::to_value(p.document()).unwrap_or(Value::Null),
            Self::Maa(p) => serde_json::json!({ "maa": p.text() }),
        }
    }

    /// The language: `confkube-json` or `maa`.
    pub fn language(&self) -> crate::policy_doc::Language {
        match self {
            Self::Json(_) => crate::policy_doc::Language::ConfkubeJson,
            Self::Maa(_) => crate::policy_doc::Language::Maa,
        }
    }
}

/// The language of a stored policy document, by its form (`{"maa": …}` or JSON).
pub fn document_language(doc: &Value) -> &'static str {
    let maa = doc.as_object().is_some_and(|o| o.contains_key("maa"));
    if maa {
        crate::policy_doc::Language::Maa.as_str()
    } else {
        crate::policy_doc::Language::ConfkubeJson.as_str()
    }
}

/// One stored version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredVersion {
    /// The version number (1, 2, ...; never reused).
    pub version: u64,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Optional content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The policy document.
    pub policy: Value,
    /// Value length in bytes.
    pub size: usize,
    /// `nonce ‖ AES-256-GCM(value) ‖ tag` in base64 (store mode); empty in file mode.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sealed: String,
}

/// A stored secret: its versions, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredSecret {
    /// Kept versions, ascending.
    pub versions: Vec<StoredVersion>,
    /// The next version number.
    pub next: u64,
}

impl StoredSecret {
    /// The newest version.
    pub fn current(&self) -> Option<&StoredVersion> {
        self.versions.last()
    }

    /// A version, or the newest.
    pub fn pick(&self, version: Option<u64>) -> Option<&StoredVersion> {
        match version {
            None => self.current(),
            Some(v) => self.versions.iter().find(|x| x.version == v),
        }
    }
}

/// A version ready to release: its policy and its value.
#[derive(Debug)]
pub struct Releasable {
    /// The version.
    pub version: u64,
    /// The policy.
    pub policy: ReleasePolicy,
    /// Content type.
    pub content_type: Option<String>,
    /// The value; zeroized on drop.
    pub value: Zeroizing<Vec<u8>>,
}

/// Why a back-end operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// No such secret or version.
    #[error("{0}")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record cannot be read or opened.
    #[error("secret {name}: {message}")]
    Corrupt {
        /// The secret.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The secrets come from files; the admin API cannot change them.
    #[error(
        "the secrets are managed by --secrets-dir/--secrets-policy-file: change the Kubernetes \
         Secret and ConfigMap instead; every replica applies them within \
         --config-reload-interval"
    )]
    ManagedByFiles,
    /// Too many secrets.
    #[error("the store already holds {MAX_SECRETS} secrets; delete some first")]
    Full,
}

/// The embedded-store back end.
#[derive(Debug)]
pub struct StoreBackend {
    store: Arc<Store>,
    kek: Kek,
    write: Mutex<()>,
}

impl StoreBackend {
    /// Values sealed under `kek` in `store`.
    pub fn new(store: Arc<Store>, kek: Kek) -> Self {
        Self {
            store,
            kek,
            write: Mutex::new(()),
        }
    }

    fn load(&self, name: &str) -> Result<Option<StoredSecret>, BackendError> {
        let Some(text) = self.store.get(Table::Secrets, name)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| BackendError::Corrupt {
                name: name.into(),
                message: format!("unreadable record: {e}"),
            })
    }

    fn save(&self, name: &str, s: &StoredSecret) -> Result<(), BackendError> {
        let text = serde_json::to_string(s).map_err(|e| BackendError::Corrupt {
            name: name.into(),
            message: e.to_string(),
        })?;
        Ok(self.store.put(Table::Secrets, name, &text)?)
    }

    /// Adds a version; returns it.
    pub fn put(
        &self,
        name: &str,
        value: &[u8],
        content_type: Option<String>,
        policy: Value,
        created: String,
    ) -> Result<StoredVersion, BackendError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut s = match self.load(name)? {
            Some(s) => s,
            None => {
                if self.store.list(Table::Secrets)?.len() >= MAX_SECRETS {
                    return Err(BackendError::Full);
                }
                StoredSecret {
                    versions: Vec::new(),
                    next: 1,
                }
            }
        };
        let version = s.next.max(1);
        let sealed = self.kek.seal(name, version, value)?;
        let v = StoredVersion {
            version,
            created,
            content_type,
            policy,
            size: value.len(),
            sealed: B64.encode(sealed),
        };
        s.versions.push(v.clone());
        if s.versions.len() > MAX_VERSIONS {
            let drop = s.versions.len() - MAX_VERSIONS;
            s.versions.drain(..drop);
        }
        s.next = version.saturating_add(1);
        self.save(name, &s)?;
        Ok(v)
    }

    /// Deletes one version or the whole secret; returns the deleted version numbers.
    pub fn delete(&self, name: &str, version: Option<u64>) -> Result<Vec<u64>, BackendError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut s = self
            .load(name)?
            .ok_or_else(|| BackendError::NotFound(format!("no secret named {name:?}")))?;
        let deleted: Vec<u64> = match version {
            None => s.versions.iter().map(|v| v.version).collect(),
            Some(n) => {
                if !s.versions.iter().any(|v| v.version == n) {
                    return Err(BackendError::NotFound(format!(
                        "secret {name:?} has no version {n}"
                    )));
                }
                s.versions.retain(|v| v.version != n);
                vec![n]
            }
        };
        if version.is_none() || s.versions.is_empty() {
            self.store.remove(Table::Secrets, name)?;
        } else {
            self.save(name, &s)?;
        }
        Ok(deleted)
    }

    fn list(&self) -> Result<Vec<(String, StoredSecret)>, BackendError> {
        self.store
            .list(Table::Secrets)?
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_str(&v)
                    .map(|s| (k.clone(), s))
                    .map_err(|e| BackendError::Corrupt {
                        name: k,
                        message: format!("unreadable record: {e}"),
                    })
            })
            .collect()
    }

    fn releasable(&self, name: &str, version: Option<u64>) -> Result<Releasable, BackendError> {
        let s = self.load(name)?.ok_or_else(|| not_found(name, None))?;
        let v = s.pick(version).ok_or_else(|| not_found(name, version))?;
        let corrupt = |m: String| BackendError::Corrupt {
            name: name.into(),
            message: m,
        };
        let sealed = B64
            .decode(&v.sealed)
            .map_err(|e| corrupt(format!("version {}: {e}", v.version)))?;
        let value = self.kek.open(name, v.version, &sealed)?;
        let policy = ReleasePolicy::from_value(&v.policy)
            .map_err(|e| corrupt(format!("version {}: {e}", v.version)))?;
        Ok(Releasable {
            version: v.version,
            policy,
            content_type: v.content_type.clone(),
            value,
        })
    }
}

fn not_found(name: &str, version: Option<u64>) -> BackendError {
    match version {
        None => BackendError::NotFound(format!("no secret named {name:?}")),
        Some(v) => BackendError::NotFound(format!("secret {name:?} has no version {v}")),
    }
}

/// Where the mounted files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// The values: one file per secret, named after it (a mounted Kubernetes Secret; names
    /// starting with '.' are skipped).
    pub dir: PathBuf,
    /// The policies: `{"<name>": {"policy": {...}, "contentType"?: str, "version"?: N}}` (a
    /// mounted ConfigMap).
    pub policy_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FilePolicyEntry {
    policy: Value,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    version: Option<u64>,
}

/// One secret from files.
#[derive(Debug)]
pub struct FileSecret {
    version: u64,
    policy: ReleasePolicy,
    policy_doc: Value,
    content_type: Option<String>,
    value: Zeroizing<Vec<u8>>,
}

/// The secrets read from the files.
#[derive(Debug, Default)]
pub struct FileSet {
    secrets: BTreeMap<String, FileSecret>,
}

impl FileSet {
    /// The secret names.
    pub fn names(&self) -> Vec<String> {
        self.secrets.keys().cloned().collect()
    }
}

/// Why the files cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secrets files: {0}")]
pub struct FileSetError(pub String);

const MAX_POLICY_FILE: u64 = 4 << 20;

fn read_bounded(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>, FileSetError> {
    use std::io::Read as _;
    let f = std::fs::File::open(path)
        .map_err(|e| FileSetError(format!("cannot read {}: {e}", path.display())))?;
    let mut bytes = Zeroizing::new(Vec::new());
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileSetError(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > max {
        return Err(FileSetError(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Raw contents of the mounted files: (policy file bytes, [(name, value)]).
pub(crate) type FileRead = (Zeroizing<Vec<u8>>, Vec<(String, Zeroizing<Vec<u8>>)>);

/// Reads the files (blocking IO).
pub(crate) fn read_files(cfg: &FileConfig) -> Result<FileRead, FileSetError> {
    let policies = read_bounded(&cfg.policy_file, MAX_POLICY_FILE)?;
    let entries = std::fs::read_dir(&cfg.dir)
        .map_err(|e| FileSetError(format!("cannot list {}: {e}", cfg.dir.display())))?;
    let mut values = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| FileSetError(format!("cannot list {}: {e}", cfg.dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // A Kubernetes Secret volume: keys are symlinks into ..data; follow them.
        if !path.is_file() {
            continue;
        }
        if values.len() >= MAX_SECRETS {
            return Err(FileSetError(format!(
                "{} holds more than {MAX_SECRETS} files",
                cfg.dir.display()
            )));
        }
        values.push((name, read_bounded(&path, MAX_VALUE as u64)?));
    }
    values.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((policies, values))
}

/// The fingerprint of a read: contents, or the error.
pub(crate) fn fingerprint(read: &Result<FileRead, FileSetError>) -> [u8; 32] {
    match read {
        Ok((p, values)) => {
            let mut parts: Vec<&[u8]> = vec![b"files", p];
            for (n, v) in values {
                parts.push(n.as_bytes());
                parts.push(v);
            }
            crate::reload::sha256(&parts)
        }
        Err(e) => crate::reload::sha256(&[b"error", e.to_string().as_bytes()]),
    }
}

/// Parses what was read: every value needs a policy entry and every entry a value.
pub(crate) fn parse_files(cfg: &FileConfig, read: FileRead) -> Result<FileSet, FileSetError> {
    let (policies, values) = read;
    let entries: BTreeMap<String, FilePolicyEntry> =
        serde_json::from_slice(&policies).map_err(|e| {
            FileSetError(format!(
                "{}: not a secrets policy file ({{\"<name>\": {{\"policy\": {{...}}}}}}): {e}",
                cfg.policy_file.display()
            ))
        })?;
    let mut values: BTreeMap<String, Zeroizing<Vec<u8>>> = values.into_iter().collect();
    let mut secrets = BTreeMap::new();
    for (name, e) in entries {
        let at = |m: String| {
            FileSetError(format!(
                "{}: secret {name:?}: {m}",
                cfg.policy_file.display()
            ))
        };
        check_name(&name).map_err(at)?;
        let policy = ReleasePolicy::from_value(&e.policy).map_err(|x| at(x.to_string()))?;
        if let Some(ct) = &e.content_type
            && ct.len() > MAX_CONTENT_TYPE
        {
            return Err(at(format!("contentType is longer than {MAX_CONTENT_TYPE}")));
        }
        let value = values.remove(&name).ok_or_else(|| {
            at(format!(
                "has a policy but no value file {}",
                cfg.dir.join(&name).display()
            ))
        })?;
        secrets.insert(
            name,
            FileSecret {
                version: e.version.unwrap_or(1),
                policy,
                policy_doc: e.policy,
                content_type: e.content_type,
                value,
            },
        );
    }
    if let Some(name) = values.keys().next() {
        return Err(FileSetError(format!(
            "{} has no policy for the value file {name:?} (add \"{name}\" to {})",
            cfg.dir.display(),
            cfg.policy_file.display()
        )));
    }
    Ok(FileSet { secrets })
}

/// The mounted-files back end.
#[derive(Debug)]
pub struct FileBackend {
    pub(crate) cfg: FileConfig,
    pub(crate) set: RwLock<Arc<FileSet>>,
    pub(crate) seen: Mutex<Option<[u8; 32]>>,
}

impl FileBackend {
    /// Reads and parses the files (start-up: a bad file is an error).
    pub fn load(cfg: FileConfig) -> Result<Self, FileSetError> {
        let read = read_files(&cfg);
        let fp = fingerprint(&read);
        let set = parse_files(&cfg, read?)?;
        Ok(Self {
            cfg,
            set: RwLock::new(Arc::new(set)),
            seen: Mutex::new(Some(fp)),
        })
    }

    pub(crate) fn current(&self) -> Arc<FileSet> {
        self.set
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Where secrets live.
#[derive(Debug)]
pub enum Backend {
    /// The embedded store.
    Store(StoreBackend),
    /// Mounted files.
    Files(FileBackend),
}

/// One line of `GET /secrets`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// The name.
    pub name: String,
    /// Kept versions.
    pub versions: Vec<u64>,
    /// The version released by default.
    pub current: u64,
    /// The language of the current version's release policy: `confkube-json` or `maa`.
    #[serde(rename = "policyLanguage")]
    pub policy_language: &'static str,
}

impl Backend {
    /// Every secret's name, versions and current version.
    pub fn list(&self) -> Result<Vec<Listed>, BackendError> {
        match self {
            Self::Store(s) => Ok(s
                .list()?
                .into_iter()
                .filter_map(|(name, s)| {
                    let current = s.current()?;
                    Some(Listed {
                        current: current.version,
                        policy_language: document_language(&current.policy),
                        versions: s.versions.iter().map(|v| v.version).collect(),
                        name,
                    })
                })
                .collect()),
            Self::Files(f) => Ok(f
                .current()
                .secrets
                .iter()
                .map(|(name, s)| Listed {
                    name: name.clone(),
                    versions: vec![s.version],
                    current: s.version,
                    policy_language: s.policy.language().as_str(),
                })
                .collect()),
        }
    }

    /// Metadata and policy of every version (never the value).
    pub fn describe(&self, name: &str) -> Result<Value, BackendError> {
        match self {
            Self::Store(s) => {
                let rec = s.load(name)?.ok_or_else(|| not_found(name, None))?;
                let current = rec.current().map(|v| v.version);
                let versions: Vec<Value> = rec
                    .versions
                    .iter()
                    .map(|v| {
                        serde_json::json!({
                            "version": v.version,
                            "created": v.created,
                            "contentType": v.content_type,
                            "size": v.size,
                            "policy": v.policy,
                            "policyLanguage": document_language(&v.policy),
                        })
                    })
                    .collect();
                Ok(
                    serde_json::json!({"name": name, "current": current, "versions": versions,
                                      "source": "store"}),
                )
            }
            Self::Files(f) => {
                let set = f.current();
                let s = set.secrets.get(name).ok_or_else(|| not_found(name, None))?;
                Ok(serde_json::json!({
                    "name": name,
                    "current": s.version,
                    "versions": [{
                        "version": s.version,
                        "contentType": s.content_type,
                        "size": s.value.len(),
                        "policy": s.policy_doc,
                        "policyLanguage": s.policy.language().as_str(),
                    }],
                    "source": "files",
                }))
            }
        }
    }

    /// The policy and value of a version (the newest when `version` is `None`).
    pub fn releasable(&self, name: &str, version: Option<u64>) -> Result<Releasable, BackendError> {
        match self {
            Self::Store(s) => s.releasable(name, version),
            Self::Files(f) => {
                let set = f.current();
                let s = set.secrets.get(name).ok_or_else(|| not_found(name, None))?;
                if version.is_some_and(|v| v != s.version) {
                    return Err(not_found(name, version));
                }
                Ok(Releasable {
                    version: s.version,
                    policy: s.policy.clone(),
                    content_type: s.content_type.clone(),
                    value: s.value.clone(),
                })
            }
        }
    }
}
