//! Offline collateral bundles: a directory of files, no network.

use std::path::{Path, PathBuf};

use dcap::Collateral;

use super::pcs::{self, Parts};
use super::{CollateralSource, PlatformId, SourceError, SourceFuture};

/// An offline bundle directory. For a platform with FMSPC `f` (12 lowercase hex digits) it reads,
/// in this order:
///
/// 1. **dcap-qvl JSON** (DESIGN.md §5): `DIR/<f>.json`, one `QuoteCollateralV3` document.
/// 2. **PCS-shaped**: the directory `DIR/<f>/` holding the PCS responses as saved files:
///
///    | file | content |
///    |---|---|
///    | `tcb.json` | body of `GET …/tcb?fmspc=<f>`: `{"tcbInfo":{…},"signature":"…"}` |
///    | `tcb.issuer-chain.pem` | its `TCB-Info-Issuer-Chain` header (PEM, URL-encoded or not) |
///    | `qe-identity.json` | body of `GET …/qe/identity`: `{"enclaveIdentity":{…},"signature":"…"}` |
///    | `qe-identity.issuer-chain.pem` | its `SGX-Enclave-Identity-Issuer-Chain` header |
///    | `pckcrl.der` | body of `GET …/pckcrl?ca=processor\|platform` (DER, PEM or hex) |
///    | `pckcrl.issuer-chain.pem` | its `SGX-PCK-CRL-Issuer-Chain` header |
///    | `rootcacrl.der` | the Intel SGX Root CA CRL (DER, PEM or the PCCS hex) |
///    | `pck-certificate-chain.pem` | optional: an out-of-band PCK chain (quotes without one) |
///
/// The PCK CA type of the request is not used: a bundle holds the PCK CRL of the CA that
/// issued that platform's PCK certificates. A missing `DIR/<f>.json` and `DIR/<f>/` is
/// [`SourceError::NotFound`]; a missing or garbled file inside `DIR/<f>/`, or a garbled
/// `DIR/<f>.json`, is [`SourceError::Invalid`] naming the file.
#[derive(Debug, Clone)]
pub struct OfflineDir {
    dir: PathBuf,
}

impl OfflineDir {
    /// A bundle rooted at `dir`. Nothing is read until [`OfflineDir::load`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads and checks the collateral for `id`.
    pub async fn load(&self, id: &PlatformId) -> Result<Collateral, SourceError> {
        let fmspc = id.fmspc_hex();
        // TDX collateral of a platform lives in the `tdx/` folder, in the same layout.
        let base = if id.tdx {
            self.dir.join("tdx")
        } else {
            self.dir.clone()
        };
        let json = base.join(format!("{fmspc}.json"));
        if let Some(bytes) = read_optional(&json).await? {
            let loc = json.display().to_string();
            let c = Collateral::from_json(&bytes).map_err(|e| SourceError::Invalid {
                location: loc.clone(),
                reason: e.to_string(),
            })?;
            pcs::check(&c, id, &loc, &loc)?;
            return Ok(c);
        }
        let sub = base.join(&fmspc);
        if !tokio::fs::metadata(&sub).await.is_ok_and(|m| m.is_dir()) {
            return Err(SourceError::NotFound {
                fmspc,
                location: format!("{} (nor {}/)", json.display(), sub.display()),
            });
        }
        let tcb_path = sub.join("tcb.json");
        let qe_path = sub.join("qe-identity.json");
        let tcb_loc = tcb_path.display().to_string();
        let qe_loc = qe_path.display().to_string();
        let tcb = pcs::split_signed_body(&read_required(&tcb_path).await?, "tcbInfo", &tcb_loc)?;
        let qe =
            pcs::split_signed_body(&read_required(&qe_path).await?, "enclaveIdentity", &qe_loc)?;
        let pck_certificate_chain =
            match read_optional(&sub.join("pck-certificate-chain.pem")).await? {
                Some(b) => Some(chain(&sub, "pck-certificate-chain.pem", &b)?),
                None => None,
            };
        let parts = Parts {
            tcb,
            tcb_chain: chain_file(&sub, "tcb.issuer-chain.pem").await?,
            qe,
            qe_chain: chain_file(&sub, "qe-identity.issuer-chain.pem").await?,
            pck_crl: crl_file(&sub, "pckcrl.der").await?,
            pck_crl_chain: chain_file(&sub, "pckcrl.issuer-chain.pem").await?,
            root_ca_crl: crl_file(&sub, "rootcacrl.der").await?,
            pck_certificate_chain,
        };
        pcs::assemble(parts, id, &tcb_loc, &qe_loc)
    }
}

impl CollateralSource for OfflineDir {
    fn fetch(&self, id: &PlatformId) -> SourceFuture<'_> {
        let id = *id;
        Box::pin(async move { self.load(&id).await })
    }
}

async fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, SourceError> {
    match tokio::fs::read(path).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SourceError::Unavailable {
            location: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

async fn read_required(path: &Path) -> Result<Vec<u8>, SourceError> {
    read_optional(path)
        .await?
        .ok_or_else(|| SourceError::Invalid {
            location: path.display().to_string(),
            reason: "missing: a PCS-shaped bundle needs this file".into(),
        })
}

fn chain(dir: &Path, name: &str, bytes: &[u8]) -> Result<String, SourceError> {
    pcs::chain_pem(bytes, &dir.join(name).display().to_string())
}

async fn chain_file(dir: &Path, name: &str) -> Result<String, SourceError> {
    chain(dir, name, &read_required(&dir.join(name)).await?)
}

async fn crl_file(dir: &Path, name: &str) -> Result<Vec<u8>, SourceError> {
    let path = dir.join(name);
    pcs::crl_der(&read_required(&path).await?, &path.display().to_string())
}
