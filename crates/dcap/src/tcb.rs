//! TCB Info (v2, v3 SGX) and QE Identity (v2), parsed from their signed JSON text, and TCB level
//! selection and status merging (spec §3).

use serde::Deserialize;
use std::fmt;

/// A TCB status as Intel's collateral states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub enum TcbStatus {
    /// Fully patched.
    UpToDate,
    /// Patched, but the enclave needs software mitigations.
    #[serde(rename = "SWHardeningNeeded")]
    SwHardeningNeeded,
    /// Hardware configuration is needed.
    ConfigurationNeeded,
    /// Both of the above.
    #[serde(rename = "ConfigurationAndSWHardeningNeeded")]
    ConfigurationAndSwHardeningNeeded,
    /// Not patched to the latest TCB recovery.
    OutOfDate,
    /// Out of date, and configuration is needed.
    OutOfDateConfigurationNeeded,
    /// Revoked.
    Revoked,
    /// TDX only, derived (never in collateral): the platform and TDX module were updated
    /// (TD-preserving) since the TD was launched; relaunching the TD brings it up to date.
    #[serde(rename = "TDRelaunchAdvised")]
    TdRelaunchAdvised,
    /// [`TcbStatus::TdRelaunchAdvised`], and configuration is needed.
    #[serde(rename = "TDRelaunchAdvisedConfigurationNeeded")]
    TdRelaunchAdvisedConfigurationNeeded,
}

impl TcbStatus {
    /// The name used in collateral, JSON results and tokens.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::UpToDate => "UpToDate",
            Self::SwHardeningNeeded => "SWHardeningNeeded",
            Self::ConfigurationNeeded => "ConfigurationNeeded",
            Self::ConfigurationAndSwHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            Self::OutOfDate => "OutOfDate",
            Self::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            Self::Revoked => "Revoked",
            Self::TdRelaunchAdvised => "TDRelaunchAdvised",
            Self::TdRelaunchAdvisedConfigurationNeeded => "TDRelaunchAdvisedConfigurationNeeded",
        }
    }

    /// Parses a status name: one of [`TcbStatus::ALL`] or of [`TcbStatus::DERIVED`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::DERIVED)
            .find(|t| t.as_str() == s)
    }

    /// Parses a status name that collateral may state (one of [`TcbStatus::ALL`]).
    pub fn parse_collateral(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The statuses only the TDX relaunch check derives (QVL `checkForRelaunch`).
    pub const DERIVED: [Self; 2] = [
        Self::TdRelaunchAdvised,
        Self::TdRelaunchAdvisedConfigurationNeeded,
    ];

    /// Whether the status says configuration is needed (QVL `isConfigurationNeeded`).
    pub fn configuration_needed(&self) -> bool {
        matches!(
            self,
            Self::ConfigurationNeeded
                | Self::OutOfDateConfigurationNeeded
                | Self::ConfigurationAndSwHardeningNeeded
                | Self::TdRelaunchAdvisedConfigurationNeeded
        )
    }

    /// Every status collateral can state.
    pub const ALL: [Self; 7] = [
        Self::UpToDate,
        Self::SwHardeningNeeded,
        Self::ConfigurationNeeded,
        Self::ConfigurationAndSwHardeningNeeded,
        Self::OutOfDate,
        Self::OutOfDateConfigurationNeeded,
        Self::Revoked,
    ];

    /// Merges the platform status with the QE's (QVL `convergeTcbStatusWithQeTcbStatus`).
    pub fn merge_with_qe(platform: Self, qe: Self) -> Self {
        match qe {
            Self::Revoked => Self::Revoked,
            Self::OutOfDate | Self::OutOfDateConfigurationNeeded => match platform {
                Self::UpToDate | Self::SwHardeningNeeded => Self::OutOfDate,
                Self::ConfigurationNeeded | Self::ConfigurationAndSwHardeningNeeded => {
                    Self::OutOfDateConfigurationNeeded
                }
                other => other,
            },
            _ => platform,
        }
    }
}

impl fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which signed collateral document a [`TcbJsonError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignedDocument {
    /// The `tcbInfo` object.
    TcbInfo,
    /// The `enclaveIdentity` object (QE or TD QE identity).
    QeIdentity,
}

impl SignedDocument {
    /// The object's name with its article, as messages use it.
    fn with_article(self) -> &'static str {
        match self {
            Self::TcbInfo => "a tcbInfo",
            Self::QeIdentity => "an enclaveIdentity",
        }
    }
}

/// A field of the signed JSON: `name`, or `parent.name` (`tdxModule.mrsigner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonField {
    /// The enclosing object, when the field is not at the top level.
    pub parent: Option<&'static str>,
    /// The field's JSON name.
    pub name: &'static str,
}

impl JsonField {
    pub(crate) const fn top(name: &'static str) -> Self {
        Self { parent: None, name }
    }
}

impl fmt::Display for JsonField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parent {
            Some(p) => write!(f, "{p}.{}", self.name),
            None => f.write_str(self.name),
        }
    }
}

/// A hex decoding error (hex's error type has no `Eq`; every one of its variants compares
/// totally).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error(transparent)]
pub struct HexError(#[from] pub hex::FromHexError);

impl Eq for HexError {}

/// Why signed collateral JSON is not a TCB info or QE identity this verifier understands. Each
/// variant names the document or field, and what was expected and found; a date or hex
/// field's decoding error is the [`std::error::Error::source`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TcbJsonError {
    /// The text is not the JSON object expected (syntax, a missing or mistyped field). The
    /// message ends with serde_json's description, which names the field and position.
    #[error("not {} object: {message}", document.with_article())]
    Json {
        /// Which document.
        document: SignedDocument,
        /// serde_json's classification (syntax, data, end of input).
        category: serde_json::error::Category,
        /// 1-based line of the error in the signed text.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// A `tcbInfo` version/id pair that is neither SGX nor TDX TCB info.
    #[error(
        "tcbInfo version {version} with id {id:?} is not SGX or TDX TCB info (expected version \
         2, or version 3 with id \"SGX\" or \"TDX\")"
    )]
    TcbInfoKind {
        /// The `version` found.
        version: u32,
        /// The `id` found.
        id: Option<String>,
    },
    /// An `enclaveIdentity` id/version pair that is not a QE or TD QE identity.
    #[error(
        "enclaveIdentity id {id:?} version {version} is not a QE identity (id \"QE\" version 2, \
         or id \"TD_QE\" version 2 or 3)"
    )]
    QeIdentityKind {
        /// The `id` found.
        id: String,
        /// The `version` found.
        version: u32,
    },
    /// A field the document's kind requires is absent.
    #[error("{within} without {field}")]
    Missing {
        /// Where it is missing (`tcbLevel`, `TDX tcbLevel`, `TDX TCB info`).
        within: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A TCB info v2 level without one of its 16 `sgxtcbcompNNsvn` numbers.
    #[error("tcbLevel without a valid sgxtcbcomp{index:02}svn")]
    MissingV2Component {
        /// The component number, 1 to 16.
        index: usize,
    },
    /// A component list of the wrong length.
    #[error("{found} {field}, not {expected}")]
    ComponentCount {
        /// `sgxtcbcomponents` or `tdxtcbcomponents`.
        field: &'static str,
        /// The number found.
        found: usize,
        /// The number required (16).
        expected: usize,
    },
    /// A `tcbStatus` this verifier does not know.
    #[error("unknown tcbStatus {found:?}")]
    UnknownStatus {
        /// The text found.
        found: String,
    },
    /// A known `tcbStatus` that this kind of level cannot have.
    #[error("tcbStatus {status} is not valid for {level}")]
    StatusNotAllowed {
        /// The status found.
        status: TcbStatus,
        /// `a QE identity` or `a TDX module identity`.
        level: &'static str,
    },
    /// A date field that is not RFC 3339.
    #[error("{field} {found:?} is not an RFC 3339 date")]
    Date {
        /// The field.
        field: &'static str,
        /// The text found.
        found: String,
        /// The date parser's error.
        #[source]
        source: time::error::Parse,
    },
    /// A hex field that does not decode.
    #[error("{field} is not hex")]
    Hex {
        /// The field.
        field: JsonField,
        /// The hex decoder's error.
        #[source]
        source: HexError,
    },
    /// A hex field of the wrong length.
    #[error("{field} has {found} bytes, not {expected}")]
    HexLength {
        /// The field.
        field: JsonField,
        /// Bytes found.
        found: usize,
        /// Bytes required.
        expected: usize,
    },
}

/// The error of a signed document that does not deserialize.
pub(crate) fn json_error(document: SignedDocument, e: &serde_json::Error) -> TcbJsonError {
    TcbJsonError::Json {
        document,
        category: e.classify(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

/// Parses an RFC 3339 date of the collateral into Unix seconds.
pub(crate) fn parse_date(field: &'static str, s: &str) -> Result<i64, TcbJsonError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|source| TcbJsonError::Date {
            field,
            found: s.to_owned(),
            source,
        })
}

pub(crate) fn fixed_hex<const N: usize>(
    field: JsonField,
    s: &str,
) -> Result<[u8; N], TcbJsonError> {
    let v = hex::decode(s).map_err(|e| TcbJsonError::Hex {
        field,
        source: HexError(e),
    })?;
    v.try_into().map_err(|v: Vec<u8>| TcbJsonError::HexLength {
        field,
        found: v.len(),
        expected: N,
    })
}

/// One TCB level of a TCB info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcbLevel {
    /// SGX TCB component SVNs 1..16.
    pub sgx_components: [u8; 16],
    /// TDX TCB component SVNs 1..16 (`tdxtcbcomponents`; TDX TCB info only).
    pub tdx_components: Option<[u8; 16]>,
    /// PCE SVN.
    pub pce_svn: u16,
    /// The TCB date.
    pub tcb_date: Option<String>,
    /// The status.
    pub status: TcbStatus,
    /// Advisory IDs (TCB info v3).
    pub advisory_ids: Vec<String>,
}

/// A TCB info (SGX, version 2 or 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcbInfo {
    /// 2 or 3.
    pub version: u32,
    /// The TDX module and its identities (`id: "TDX"` TCB info only).
    pub tdx: Option<crate::tdx::TdxModuleInfo>,
    /// Issue date, Unix seconds.
    pub issue_date: i64,
    /// Next update, Unix seconds.
    pub next_update: i64,
    /// FMSPC.
    pub fmspc: [u8; 6],
    /// PCE-ID.
    pub pce_id: [u8; 2],
    /// TCB evaluation data number.
    pub tcb_evaluation_data_number: Option<u32>,
    /// Levels in the given (descending) order.
    pub levels: Vec<TcbLevel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTcbInfo {
    id: Option<String>,
    tdx_module: Option<crate::tdx::RawTdxModule>,
    #[serde(default)]
    tdx_module_identities: Option<Vec<crate::tdx::RawTdxModuleIdentity>>,
    version: u32,
    issue_date: String,
    next_update: String,
    fmspc: String,
    pce_id: String,
    tcb_evaluation_data_number: Option<u32>,
    tcb_levels: Vec<RawTcbLevel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTcbLevel {
    tcb: RawTcb,
    tcb_date: Option<String>,
    tcb_status: String,
    #[serde(rename = "advisoryIDs", default)]
    advisory_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RawTcb {
    sgxtcbcomponents: Option<Vec<RawComponent>>,
    tdxtcbcomponents: Option<Vec<RawComponent>>,
    pcesvn: u16,
    // TCB info v2 names each component (explicit fields, not a flattened map: flattening makes
    // serde buffer every level's whole `tcb` object, which dominated parsing large TCB infos).
    #[serde(rename = "sgxtcbcomp01svn")]
    c01: Option<u8>,
    #[serde(rename = "sgxtcbcomp02svn")]
    c02: Option<u8>,
    #[serde(rename = "sgxtcbcomp03svn")]
    c03: Option<u8>,
    #[serde(rename = "sgxtcbcomp04svn")]
    c04: Option<u8>,
    #[serde(rename = "sgxtcbcomp05svn")]
    c05: Option<u8>,
    #[serde(rename = "sgxtcbcomp06svn")]
    c06: Option<u8>,
    #[serde(rename = "sgxtcbcomp07svn")]
    c07: Option<u8>,
    #[serde(rename = "sgxtcbcomp08svn")]
    c08: Option<u8>,
    #[serde(rename = "sgxtcbcomp09svn")]
    c09: Option<u8>,
    #[serde(rename = "sgxtcbcomp10svn")]
    c10: Option<u8>,
    #[serde(rename = "sgxtcbcomp11svn")]
    c11: Option<u8>,
    #[serde(rename = "sgxtcbcomp12svn")]
    c12: Option<u8>,
    #[serde(rename = "sgxtcbcomp13svn")]
    c13: Option<u8>,
    #[serde(rename = "sgxtcbcomp14svn")]
    c14: Option<u8>,
    #[serde(rename = "sgxtcbcomp15svn")]
    c15: Option<u8>,
    #[serde(rename = "sgxtcbcomp16svn")]
    c16: Option<u8>,
}

impl RawTcb {
    fn v2_components(&self) -> [Option<u8>; 16] {
        [
            self.c01, self.c02, self.c03, self.c04, self.c05, self.c06, self.c07, self.c08,
            self.c09, self.c10, self.c11, self.c12, self.c13, self.c14, self.c15, self.c16,
        ]
    }
}

#[derive(Deserialize)]
struct RawComponent {
    svn: u8,
}

pub(crate) fn status(s: &str) -> Result<TcbStatus, TcbJsonError> {
    TcbStatus::parse_collateral(s).ok_or_else(|| TcbJsonError::UnknownStatus {
        found: s.to_owned(),
    })
}

impl TcbInfo {
    /// Parses the signed `tcbInfo` object text.
    pub fn parse(text: &str) -> Result<Self, TcbJsonError> {
        let raw: RawTcbInfo =
            serde_json::from_str(text).map_err(|e| json_error(SignedDocument::TcbInfo, &e))?;
        let is_tdx = match (raw.version, raw.id.as_deref()) {
            (2, None) | (3, Some("SGX")) => false,
            (3, Some("TDX")) => true,
            (version, id) => {
                return Err(TcbJsonError::TcbInfoKind {
                    version,
                    id: id.map(str::to_owned),
                });
            }
        };
        let tdx = if is_tdx {
            Some(crate::tdx::TdxModuleInfo::from_raw(
                raw.tdx_module,
                raw.tdx_module_identities,
            )?)
        } else {
            None
        };
        let mut levels = Vec::with_capacity(raw.tcb_levels.len());
        for l in raw.tcb_levels {
            let mut comps = [0u8; 16];
            if raw.version == 3 {
                let c = l.tcb.sgxtcbcomponents.ok_or(TcbJsonError::Missing {
                    within: "tcbLevel",
                    field: "sgxtcbcomponents",
                })?;
                if c.len() != 16 {
                    return Err(TcbJsonError::ComponentCount {
                        field: "sgxtcbcomponents",
                        found: c.len(),
                        expected: 16,
                    });
                }
                for (slot, comp) in comps.iter_mut().zip(c) {
                    *slot = comp.svn;
                }
            } else {
                for (i, (slot, v)) in comps.iter_mut().zip(l.tcb.v2_components()).enumerate() {
                    *slot = v.ok_or(TcbJsonError::MissingV2Component { index: i + 1 })?;
                }
            }
            let tdx_components = if is_tdx {
                let c = l.tcb.tdxtcbcomponents.ok_or(TcbJsonError::Missing {
                    within: "TDX tcbLevel",
                    field: "tdxtcbcomponents",
                })?;
                if c.len() != 16 {
                    return Err(TcbJsonError::ComponentCount {
                        field: "tdxtcbcomponents",
                        found: c.len(),
                        expected: 16,
                    });
                }
                let mut t = [0u8; 16];
                for (slot, comp) in t.iter_mut().zip(c) {
                    *slot = comp.svn;
                }
                Some(t)
            } else {
                None
            };
            levels.push(TcbLevel {
                sgx_components: comps,
                tdx_components,
                pce_svn: l.tcb.pcesvn,
                tcb_date: l.tcb_date,
                status: status(&l.tcb_status)?,
                advisory_ids: l.advisory_ids,
            });
        }
        Ok(Self {
            version: raw.version,
            tdx,
            issue_date: parse_date("issueDate", &raw.issue_date)?,
            next_update: parse_date("nextUpdate", &raw.next_update)?,
            fmspc: fixed_hex(JsonField::top("fmspc"), &raw.fmspc)?,
            pce_id: fixed_hex(JsonField::top("pceId"), &raw.pce_id)?,
            tcb_evaluation_data_number: raw.tcb_evaluation_data_number,
            levels,
        })
    }

    /// The first level the platform's PCK TCB reaches (QVL `checkTcbLevel`).
    pub fn match_level(&self, comps: &[u8; 16], pce_svn: u16) -> Option<&TcbLevel> {
        self.levels.iter().find(|l| {
            pce_svn >= l.pce_svn && comps.iter().zip(&l.sgx_components).all(|(p, l)| p >= l)
        })
    }
}

/// One TCB level of a QE identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QeTcbLevel {
    /// The minimum ISVSVN.
    pub isv_svn: u16,
    /// The status.
    pub status: TcbStatus,
    /// Advisory IDs.
    pub advisory_ids: Vec<String>,
}

/// A QE identity (`enclaveIdentity`: id "QE" version 2 for SGX, id "TD_QE" version 2 or 3 for
/// TDX).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QeIdentity {
    /// "QE" or "TD_QE".
    pub id: String,
    /// 2, or 3 (TD_QE only).
    pub version: u32,
    /// Issue date, Unix seconds.
    pub issue_date: i64,
    /// Next update, Unix seconds.
    pub next_update: i64,
    /// MISCSELECT, in report byte order.
    pub miscselect: [u8; 4],
    /// MISCSELECT mask.
    pub miscselect_mask: [u8; 4],
    /// ATTRIBUTES (16 bytes, report order).
    pub attributes: [u8; 16],
    /// ATTRIBUTES mask.
    pub attributes_mask: [u8; 16],
    /// MRSIGNER.
    pub mrsigner: [u8; 32],
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// TCB evaluation data number.
    pub tcb_evaluation_data_number: Option<u32>,
    /// Levels in the given (descending) order.
    pub levels: Vec<QeTcbLevel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawQeIdentity {
    id: String,
    version: u32,
    issue_date: String,
    next_update: String,
    tcb_evaluation_data_number: Option<u32>,
    miscselect: String,
    miscselect_mask: String,
    attributes: String,
    attributes_mask: String,
    mrsigner: String,
    isvprodid: u16,
    tcb_levels: Vec<RawQeLevel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawQeLevel {
    tcb: RawQeTcb,
    tcb_status: String,
    #[serde(rename = "advisoryIDs", default)]
    advisory_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RawQeTcb {
    isvsvn: u16,
}

/// QE identity statuses accepted by QVL's `parseStringToTcbStatus`.
const QE_STATUSES: [TcbStatus; 5] = [
    TcbStatus::UpToDate,
    TcbStatus::ConfigurationNeeded,
    TcbStatus::OutOfDate,
    TcbStatus::OutOfDateConfigurationNeeded,
    TcbStatus::Revoked,
];

impl QeIdentity {
    /// Parses the signed `enclaveIdentity` object text.
    pub fn parse(text: &str) -> Result<Self, TcbJsonError> {
        let raw: RawQeIdentity =
            serde_json::from_str(text).map_err(|e| json_error(SignedDocument::QeIdentity, &e))?;
        match (raw.id.as_str(), raw.version) {
            ("QE", 2) | ("TD_QE", 2 | 3) => {}
            (id, version) => {
                return Err(TcbJsonError::QeIdentityKind {
                    id: id.to_owned(),
                    version,
                });
            }
        }
        let mut levels = Vec::with_capacity(raw.tcb_levels.len());
        for l in raw.tcb_levels {
            let status = status(&l.tcb_status)?;
            if !QE_STATUSES.contains(&status) {
                return Err(TcbJsonError::StatusNotAllowed {
                    status,
                    level: "a QE identity",
                });
            }
            levels.push(QeTcbLevel {
                isv_svn: l.tcb.isvsvn,
                status,
                advisory_ids: l.advisory_ids,
            });
        }
        Ok(Self {
            id: raw.id,
            version: raw.version,
            issue_date: parse_date("issueDate", &raw.issue_date)?,
            next_update: parse_date("nextUpdate", &raw.next_update)?,
            miscselect: fixed_hex(JsonField::top("miscselect"), &raw.miscselect)?,
            miscselect_mask: fixed_hex(JsonField::top("miscselectMask"), &raw.miscselect_mask)?,
            attributes: fixed_hex(JsonField::top("attributes"), &raw.attributes)?,
            attributes_mask: fixed_hex(JsonField::top("attributesMask"), &raw.attributes_mask)?,
            mrsigner: fixed_hex(JsonField::top("mrsigner"), &raw.mrsigner)?,
            isv_prod_id: raw.isvprodid,
            tcb_evaluation_data_number: raw.tcb_evaluation_data_number,
            levels,
        })
    }

    /// The first level with `isvsvn <= qe_isv_svn`.
    pub fn match_level(&self, qe_isv_svn: u16) -> Option<&QeTcbLevel> {
        self.levels.iter().find(|l| l.isv_svn <= qe_isv_svn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TcbStatus::*;

    #[test]
    fn merge_table_of_spec_3_4() {
        let cases = [
            (UpToDate, OutOfDate, OutOfDate),
            (SwHardeningNeeded, OutOfDate, OutOfDate),
            (ConfigurationNeeded, OutOfDate, OutOfDateConfigurationNeeded),
            (
                ConfigurationAndSwHardeningNeeded,
                OutOfDate,
                OutOfDateConfigurationNeeded,
            ),
            (OutOfDate, OutOfDate, OutOfDate),
            (SwHardeningNeeded, Revoked, Revoked),
            (ConfigurationNeeded, UpToDate, ConfigurationNeeded),
        ];
        for (platform, qe, want) in cases {
            assert_eq!(
                TcbStatus::merge_with_qe(platform, qe),
                want,
                "{platform} + {qe}"
            );
        }
    }

    #[test]
    fn statuses_round_trip_and_unknown_is_an_error() {
        for s in TcbStatus::ALL {
            assert_eq!(TcbStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            status("Fine").unwrap_err().to_string(),
            "unknown tcbStatus \"Fine\""
        );
    }

    #[test]
    fn v2_components_and_level_matching() {
        let mut comps = String::new();
        for i in 1..=16 {
            comps.push_str(&format!(
                "\"sgxtcbcomp{i:02}svn\":{},",
                if i == 1 { 5 } else { 0 }
            ));
        }
        let text = format!(
            "{{\"version\":2,\"issueDate\":\"2020-01-01T00:00:00Z\",\"nextUpdate\":\
             \"2020-02-01T00:00:00Z\",\"fmspc\":\"00707f000000\",\"pceId\":\"0000\",\"tcbType\":0,\
             \"tcbEvaluationDataNumber\":5,\"tcbLevels\":[{{\"tcb\":{{{comps}\"pcesvn\":3}},\
             \"tcbDate\":\"2019-01-01T00:00:00Z\",\"tcbStatus\":\"UpToDate\"}}]}}"
        );
        let t = TcbInfo::parse(&text).unwrap();
        assert_eq!(t.levels[0].sgx_components[0], 5);
        assert_eq!(t.fmspc, [0, 0x70, 0x7f, 0, 0, 0]);
        let mut pck = [0u8; 16];
        assert_eq!(t.match_level(&pck, 3), None);
        pck[0] = 5;
        assert_eq!(t.match_level(&pck, 2), None);
        assert_eq!(t.match_level(&pck, 3).map(|l| l.status), Some(UpToDate));
        let bad = text.replace("\"sgxtcbcomp07svn\":0,", "");
        assert_eq!(
            TcbInfo::parse(&bad).unwrap_err().to_string(),
            "tcbLevel without a valid sgxtcbcomp07svn"
        );
    }

    /// The typed details: which document and field, expected and found, and the decoder's
    /// error as the source (not repeated in the message).
    #[test]
    fn json_errors_are_typed() {
        use std::error::Error as _;
        let e = TcbInfo::parse("[]").unwrap_err();
        assert!(matches!(
            &e,
            TcbJsonError::Json {
                document: SignedDocument::TcbInfo,
                category: serde_json::error::Category::Data,
                line: 1,
                column: 2,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "not a tcbInfo object: invalid length 0, expected struct RawTcbInfo with 10 elements \
             at line 1 column 2"
        );
        let e = QeIdentity::parse("{").unwrap_err();
        assert!(matches!(
            &e,
            TcbJsonError::Json {
                document: SignedDocument::QeIdentity,
                category: serde_json::error::Category::Eof,
                ..
            }
        ));
        assert!(
            e.to_string()
                .starts_with("not an enclaveIdentity object: EOF")
        );

        let e = parse_date("nextUpdate", "tomorrow").unwrap_err();
        assert!(matches!(
            &e,
            TcbJsonError::Date { field: "nextUpdate", found, .. } if found == "tomorrow"
        ));
        assert_eq!(
            e.to_string(),
            "nextUpdate \"tomorrow\" is not an RFC 3339 date"
        );
        assert!(e.source().is_some_and(|s| !s.to_string().is_empty()));

        let field = JsonField {
            parent: Some("tdxModule"),
            name: "mrsigner",
        };
        let e = fixed_hex::<48>(field, "zz").unwrap_err();
        assert_eq!(e.to_string(), "tdxModule.mrsigner is not hex");
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("Invalid character 'z' at position 0")
        );
        let e = fixed_hex::<6>(JsonField::top("fmspc"), "0011").unwrap_err();
        assert_eq!(
            e,
            TcbJsonError::HexLength {
                field: JsonField::top("fmspc"),
                found: 2,
                expected: 6
            }
        );
        assert_eq!(e.to_string(), "fmspc has 2 bytes, not 6");
        assert!(e.source().is_none());

        let e = TcbJsonError::StatusNotAllowed {
            status: TcbStatus::SwHardeningNeeded,
            level: "a QE identity",
        };
        assert_eq!(
            e.to_string(),
            "tcbStatus SWHardeningNeeded is not valid for a QE identity"
        );
    }

    #[test]
    fn wrong_kinds_are_refused() {
        let tdx = r#"{"id":"TDX","version":2,"issueDate":"x","nextUpdate":"x","fmspc":"","pceId":"","tcbLevels":[]}"#;
        assert!(
            TcbInfo::parse(tdx)
                .unwrap_err()
                .to_string()
                .starts_with("tcbInfo version 2 with id Some(\"TDX\")")
        );
        assert!(TcbInfo::parse("[]").is_err());
        let td_qe = r#"{"id":"TD_QE","version":4,"issueDate":"x","nextUpdate":"x","miscselect":"","miscselectMask":"","attributes":"","attributesMask":"","mrsigner":"","isvprodid":2,"tcbLevels":[]}"#;
        assert!(
            QeIdentity::parse(td_qe)
                .unwrap_err()
                .to_string()
                .starts_with("enclaveIdentity id \"TD_QE\" version 4")
        );
        assert_eq!(
            parse_date("issueDate", "yesterday")
                .unwrap_err()
                .to_string()[..38],
            *"issueDate \"yesterday\" is not an RFC 33"
        );
    }
}
