//! Pure decoding of the CPUID leaves that describe SGX: leaf 0x7 (feature flags) and leaf 0x12
//! (SGX capabilities, SECS attribute mask, EPC sections).
//!
//! Nothing here executes `CPUID`: callers pass the four registers they read (the node agent's
//! probe does that, or replays a fixture), and get typed values back.
//!
//! **Specs:** Intel SDM Vol. 2A, CPUID leaf 07H (EBX bit 2 `SGX`, ECX bit 30 `SGX_LC`) and leaf
//! 12H (sub-leaf 0: SGX1/SGX2/EDECCSSA bits, MISCSELECT, maximum enclave sizes; sub-leaf 1:
//! valid SECS.ATTRIBUTES bits; sub-leaves 2.. : EPC sections); the EPC walk follows
//! `shared/spec/kubernetes-sgx.md` §2.2 (sub-leaves 2..=9, type 0 ends the walk).

/// The four output registers of one `CPUID` execution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuidRegs {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

impl CpuidRegs {
    /// Registers from `[eax, ebx, ecx, edx]`.
    pub const fn new(eax: u32, ebx: u32, ecx: u32, edx: u32) -> Self {
        Self { eax, ebx, ecx, edx }
    }
}

/// The SGX leaf number.
pub const LEAF_SGX: u32 = 0x12;
/// The structured extended feature leaf.
pub const LEAF_FEATURES: u32 = 0x7;
/// The first EPC-section sub-leaf of leaf 0x12.
pub const EPC_FIRST_SUBLEAF: u32 = 2;
/// The last EPC-section sub-leaf walked (eight sections at most, as NFD and Intel's tools do).
pub const EPC_LAST_SUBLEAF: u32 = 9;

/// SECS.ATTRIBUTES bit 7: key separation and sharing (KSS).
pub const ATTRIBUTE_KSS: u64 = 1 << 7;
/// SECS.ATTRIBUTES bit 10: AEX-Notify.
pub const ATTRIBUTE_AEX_NOTIFY: u64 = 1 << 10;

/// What leaf 0x7 sub-leaf 0 says about SGX.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SgxFeatureFlags {
    /// EBX bit 2: the CPU supports SGX (and the BIOS has not hidden it).
    pub sgx: bool,
    /// ECX bit 30: SGX Launch Configuration, i.e. Flexible Launch Control (FLC).
    pub flc: bool,
}

impl SgxFeatureFlags {
    /// Decodes leaf 0x7 sub-leaf 0.
    pub const fn decode(leaf7: CpuidRegs) -> Self {
        Self {
            sgx: leaf7.ebx & (1 << 2) != 0,
            flc: leaf7.ecx & (1 << 30) != 0,
        }
    }
}

/// Leaf 0x12 sub-leaf 0: instruction-set support and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SgxCapabilities {
    /// EAX bit 0: SGX1 leaf functions.
    pub sgx1: bool,
    /// EAX bit 1: SGX2 leaf functions (EDMM).
    pub sgx2: bool,
    /// EAX bit 11: ENCLU\[EDECCSSA\], the instruction AEX-Notify needs.
    pub edeccssa: bool,
    /// EBX: the MISCSELECT bits that may be set.
    pub misc_select: u32,
    /// EDX\[7:0\]: log2 of the maximum enclave size outside 64-bit mode.
    pub max_enclave_size_32_log2: u8,
    /// EDX\[15:8\]: log2 of the maximum enclave size in 64-bit mode.
    pub max_enclave_size_64_log2: u8,
}

impl SgxCapabilities {
    /// Decodes leaf 0x12 sub-leaf 0.
    pub const fn decode(regs: CpuidRegs) -> Self {
        Self {
            sgx1: regs.eax & 1 != 0,
            sgx2: regs.eax & (1 << 1) != 0,
            edeccssa: regs.eax & (1 << 11) != 0,
            misc_select: regs.ebx,
            max_enclave_size_32_log2: (regs.edx & 0xff) as u8,
            max_enclave_size_64_log2: ((regs.edx >> 8) & 0xff) as u8,
        }
    }

    /// The maximum 64-bit enclave size in bytes, or `None` when the exponent does not fit a
    /// `u64` (a corrupt or virtualised report).
    pub fn max_enclave_size_64(&self) -> Option<u64> {
        1u64.checked_shl(u32::from(self.max_enclave_size_64_log2))
    }

    /// The maximum enclave size outside 64-bit mode in bytes, or `None` when the exponent does
    /// not fit a `u64`.
    pub fn max_enclave_size_32(&self) -> Option<u64> {
        1u64.checked_shl(u32::from(self.max_enclave_size_32_log2))
    }
}

/// Leaf 0x12 sub-leaf 1: which SECS.ATTRIBUTES bits software may set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttributesMask {
    /// ATTRIBUTES.FLAGS (EBX:EAX).
    pub flags: u64,
    /// ATTRIBUTES.XFRM (EDX:ECX).
    pub xfrm: u64,
}

impl AttributesMask {
    /// Decodes leaf 0x12 sub-leaf 1.
    pub const fn decode(regs: CpuidRegs) -> Self {
        Self {
            flags: (regs.eax as u64) | ((regs.ebx as u64) << 32),
            xfrm: (regs.ecx as u64) | ((regs.edx as u64) << 32),
        }
    }

    /// Key separation and sharing (SECS.ATTRIBUTES.KSS) is available.
    pub const fn kss(&self) -> bool {
        self.flags & ATTRIBUTE_KSS != 0
    }

    /// SECS.ATTRIBUTES.AEXNOTIFY may be set.
    pub const fn aex_notify(&self) -> bool {
        self.flags & ATTRIBUTE_AEX_NOTIFY != 0
    }
}

/// One EPC section, as leaf 0x12 sub-leaf ≥ 2 reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpcSection {
    /// Physical base address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

/// What one EPC sub-leaf says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpcSubleaf {
    /// Type 0: no section here; the walk ends.
    Invalid,
    /// Type 1: an EPC section.
    Section(EpcSection),
}

/// Why CPUID output does not describe SGX consistently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpuidError {
    /// A leaf 0x12 EPC sub-leaf has a type other than 0 (invalid) or 1 (section).
    #[error(
        "CPUID leaf 0x12 sub-leaf {subleaf}: unknown EPC sub-leaf type {kind} (expected 0 or 1)"
    )]
    UnknownEpcType {
        /// The sub-leaf index.
        subleaf: u32,
        /// EAX\[3:0\].
        kind: u8,
    },
    /// Leaf 0x12 sub-leaf 0 reports a 64-bit maximum enclave size that does not fit 64 bits.
    #[error("CPUID leaf 0x12 sub-leaf 0: maximum enclave size 2^{log2} bytes does not fit 64 bits")]
    MaxEnclaveSize {
        /// EDX\[15:8\].
        log2: u8,
    },
}

/// Decodes one EPC sub-leaf (`subleaf` is only used in the error).
///
/// Size = `(ECX & 0xfffff000) + ((EDX & 0xfffff) << 32)`, base = `(EAX & 0xfffff000) +
/// ((EBX & 0xfffff) << 32)`.
pub fn decode_epc_subleaf(subleaf: u32, regs: CpuidRegs) -> Result<EpcSubleaf, CpuidError> {
    let kind = (regs.eax & 0xf) as u8;
    match kind {
        0 => Ok(EpcSubleaf::Invalid),
        1 => Ok(EpcSubleaf::Section(EpcSection {
            base: u64::from(regs.eax & 0xffff_f000) | (u64::from(regs.ebx & 0xfffff) << 32),
            size: u64::from(regs.ecx & 0xffff_f000) | (u64::from(regs.edx & 0xfffff) << 32),
        })),
        kind => Err(CpuidError::UnknownEpcType { subleaf, kind }),
    }
}

/// Everything CPUID says about SGX on a CPU that reports SGX in leaf 0x7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxCpuInfo {
    /// Leaf 0x7 flags.
    pub features: SgxFeatureFlags,
    /// Leaf 0x12 sub-leaf 0.
    pub capabilities: SgxCapabilities,
    /// Leaf 0x12 sub-leaf 1.
    pub attributes: AttributesMask,
    /// The EPC sections, in sub-leaf order.
    pub epc_sections: Vec<EpcSection>,
}

impl SgxCpuInfo {
    /// Decodes the SGX leaves. `read_subleaf(n)` returns leaf 0x12 sub-leaf `n`; it is called
    /// for 0, 1 and then 2..=9 until a type-0 sub-leaf.
    pub fn decode(
        leaf7: CpuidRegs,
        mut read_subleaf: impl FnMut(u32) -> CpuidRegs,
    ) -> Result<Self, CpuidError> {
        let capabilities = SgxCapabilities::decode(read_subleaf(0));
        if capabilities.max_enclave_size_64().is_none() {
            return Err(CpuidError::MaxEnclaveSize {
                log2: capabilities.max_enclave_size_64_log2,
            });
        }
        let attributes = AttributesMask::decode(read_subleaf(1));
        let mut epc_sections = Vec::new();
        for subleaf in EPC_FIRST_SUBLEAF..=EPC_LAST_SUBLEAF {
            match decode_epc_subleaf(subleaf, read_subleaf(subleaf))? {
                EpcSubleaf::Invalid => break,
                EpcSubleaf::Section(section) => epc_sections.push(section),
            }
        }
        Ok(Self {
            features: SgxFeatureFlags::decode(leaf7),
            capabilities,
            attributes,
            epc_sections,
        })
    }

    /// The sum of the EPC section sizes in bytes. A section is below 2^52 bytes and there are
    /// at most eight, so the sum cannot overflow.
    pub fn epc_total(&self) -> u64 {
        self.epc_sections
            .iter()
            .fold(0u64, |acc, s| acc.saturating_add(s.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf7_flags_table() {
        let cases = [
            (CpuidRegs::new(0, 0, 0, 0), false, false),
            (CpuidRegs::new(0, 1 << 2, 0, 0), true, false),
            (CpuidRegs::new(0, 0, 1 << 30, 0), false, true),
            (CpuidRegs::new(0, 0xffff_ffff, 0xffff_ffff, 0), true, true),
            (CpuidRegs::new(0, !(1 << 2), !(1 << 30), 0), false, false),
        ];
        for (regs, sgx, flc) in cases {
            assert_eq!(
                SgxFeatureFlags::decode(regs),
                SgxFeatureFlags { sgx, flc },
                "{regs:?}"
            );
        }
    }

    #[test]
    fn capabilities_decode() {
        // Ice Lake server: SGX1 | SGX2 | ENCLV | ENCLS-C | EDECCSSA, MISCSELECT 1 (EXINFO),
        // 2^31 outside 64-bit mode, 2^56 in 64-bit mode.
        let caps = SgxCapabilities::decode(CpuidRegs::new(0x0863, 0x1, 0, 0x381f));
        assert_eq!(
            caps,
            SgxCapabilities {
                sgx1: true,
                sgx2: true,
                edeccssa: true,
                misc_select: 1,
                max_enclave_size_32_log2: 0x1f,
                max_enclave_size_64_log2: 0x38,
            }
        );
        assert_eq!(caps.max_enclave_size_64(), Some(1 << 56));
        assert_eq!(caps.max_enclave_size_32(), Some(1 << 31));
        let sgx1_only = SgxCapabilities::decode(CpuidRegs::new(0x1, 0, 0, 0x241f));
        assert!(sgx1_only.sgx1 && !sgx1_only.sgx2 && !sgx1_only.edeccssa);
        assert_eq!(sgx1_only.max_enclave_size_64(), Some(1 << 36));
    }

    #[test]
    fn attributes_mask_decode() {
        let mask = AttributesMask::decode(CpuidRegs::new(0x4b6, 0x1, 0xe7, 0x2));
        assert_eq!(mask.flags, 0x1_0000_04b6);
        assert_eq!(mask.xfrm, 0x2_0000_00e7);
        assert!(mask.kss());
        assert!(mask.aex_notify());
        let old = AttributesMask::decode(CpuidRegs::new(0x36, 0, 0x1f, 0));
        assert!(!old.kss());
        assert!(!old.aex_notify());
    }

    #[test]
    fn epc_subleaf_table() {
        let cases = [
            (CpuidRegs::new(0, 0, 0, 0), Ok(EpcSubleaf::Invalid)),
            (
                CpuidRegs::new(0x7000_0001, 0, 0x0bf0_0001, 0),
                Ok(EpcSubleaf::Section(EpcSection {
                    base: 0x7000_0000,
                    size: 0x0bf0_0000,
                })),
            ),
            (
                // Base and size above 4 GiB; the low type/property bits are masked out.
                CpuidRegs::new(0x0000_0001, 0x40, 0xfe00_0001, 0x3),
                Ok(EpcSubleaf::Section(EpcSection {
                    base: 0x40_0000_0000,
                    size: 0x3_fe00_0000,
                })),
            ),
            (
                CpuidRegs::new(0x2, 0, 0, 0),
                Err(CpuidError::UnknownEpcType {
                    subleaf: 2,
                    kind: 2,
                }),
            ),
        ];
        for (regs, want) in cases {
            assert_eq!(decode_epc_subleaf(2, regs), want, "{regs:?}");
        }
    }

    fn two_socket(subleaf: u32) -> CpuidRegs {
        match subleaf {
            0 => CpuidRegs::new(0x3, 0x1, 0, 0x381f),
            1 => CpuidRegs::new(0x36, 0, 0x1f, 0),
            2 => CpuidRegs::new(0x8000_0001, 0x0, 0x7f00_0001, 0x0),
            3 => CpuidRegs::new(0x0000_0001, 0x80, 0x7f00_0001, 0x0),
            _ => CpuidRegs::default(),
        }
    }

    #[test]
    fn full_decode_two_sections() {
        let info = SgxCpuInfo::decode(CpuidRegs::new(0, 1 << 2, 1 << 30, 0), two_socket).unwrap();
        assert_eq!(
            info.epc_sections,
            vec![
                EpcSection {
                    base: 0x8000_0000,
                    size: 0x7f00_0000
                },
                EpcSection {
                    base: 0x80_0000_0000,
                    size: 0x7f00_0000
                },
            ]
        );
        assert_eq!(info.epc_total(), 2 * 0x7f00_0000);
        assert!(info.features.sgx && info.features.flc);
        assert!(info.capabilities.sgx2);
    }

    #[test]
    fn walk_stops_at_last_subleaf() {
        let mut asked = Vec::new();
        let info = SgxCpuInfo::decode(CpuidRegs::default(), |n| {
            asked.push(n);
            match n {
                0 => CpuidRegs::new(1, 0, 0, 0x2420),
                1 => CpuidRegs::default(),
                _ => CpuidRegs::new(0x1, 0, 0x1000, 0),
            }
        })
        .unwrap();
        assert_eq!(info.epc_sections.len(), 8);
        assert_eq!(asked, (0..=9).collect::<Vec<_>>());
    }

    #[test]
    fn decode_errors() {
        let bad_type = SgxCpuInfo::decode(CpuidRegs::default(), |n| match n {
            0 => CpuidRegs::new(1, 0, 0, 0x2420),
            3 => CpuidRegs::new(0xf, 0, 0, 0),
            1 => CpuidRegs::default(),
            _ => CpuidRegs::new(0x1, 0, 0x1000, 0),
        });
        assert_eq!(
            bad_type,
            Err(CpuidError::UnknownEpcType {
                subleaf: 3,
                kind: 15
            })
        );
        assert_eq!(
            CpuidError::UnknownEpcType {
                subleaf: 3,
                kind: 15
            }
            .to_string(),
            "CPUID leaf 0x12 sub-leaf 3: unknown EPC sub-leaf type 15 (expected 0 or 1)"
        );
        let huge = SgxCpuInfo::decode(CpuidRegs::default(), |n| match n {
            0 => CpuidRegs::new(1, 0, 0, 0x4000),
            _ => CpuidRegs::default(),
        });
        assert_eq!(huge, Err(CpuidError::MaxEnclaveSize { log2: 64 }));
        assert_eq!(
            CpuidError::MaxEnclaveSize { log2: 64 }.to_string(),
            "CPUID leaf 0x12 sub-leaf 0: maximum enclave size 2^64 bytes does not fit 64 bits"
        );
    }
}
