//! A minimal DER writer for the PCK certificate's SGX extension (spec §4): SEQUENCEs of
//! (OID, value) with INTEGER, OCTET STRING and ENUMERATED values.

/// The SGX extension's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxExtension {
    /// PPID.
    pub ppid: [u8; 16],
    /// SGX TCB component SVNs 1..16.
    pub tcb_comp_svn: [u8; 16],
    /// PCESVN.
    pub pce_svn: u16,
    /// CPUSVN.
    pub cpu_svn: [u8; 16],
    /// PCE-ID.
    pub pce_id: [u8; 2],
    /// FMSPC.
    pub fmspc: [u8; 6],
    /// SGX type (ENUMERATED).
    pub sgx_type: u8,
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let len = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | len.len() as u8);
        out.extend_from_slice(len);
    }
    out.extend_from_slice(content);
    out
}

fn seq(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &items.concat())
}

/// OID 1.2.840.113741.1.13.1 followed by `suffix` arcs (each < 128).
fn sgx_oid(suffix: &[u8]) -> Vec<u8> {
    let mut c = vec![0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01];
    c.extend_from_slice(suffix);
    tlv(0x06, &c)
}

fn uint(tag: u8, v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    let mut c: Vec<u8> = bytes.get(skip..).unwrap_or_default().to_vec();
    if c.first().is_some_and(|&b| b & 0x80 != 0) {
        c.insert(0, 0);
    }
    tlv(tag, &c)
}

/// DER of the SGX extension value.
pub fn sgx_extension(e: &SgxExtension) -> Vec<u8> {
    let mut tcb: Vec<Vec<u8>> = e
        .tcb_comp_svn
        .iter()
        .zip(1u8..)
        .map(|(&svn, i)| seq(&[sgx_oid(&[2, i]), uint(0x02, u64::from(svn))]))
        .collect();
    tcb.push(seq(&[sgx_oid(&[2, 17]), uint(0x02, u64::from(e.pce_svn))]));
    tcb.push(seq(&[sgx_oid(&[2, 18]), tlv(0x04, &e.cpu_svn)]));
    seq(&[
        seq(&[sgx_oid(&[1]), tlv(0x04, &e.ppid)]),
        seq(&[sgx_oid(&[2]), seq(&tcb)]),
        seq(&[sgx_oid(&[3]), tlv(0x04, &e.pce_id)]),
        seq(&[sgx_oid(&[4]), tlv(0x04, &e.fmspc)]),
        seq(&[sgx_oid(&[5]), uint(0x0a, u64::from(e.sgx_type))]),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_lengths() {
        assert_eq!(uint(0x02, 0), vec![0x02, 0x01, 0x00]);
        assert_eq!(uint(0x02, 255), vec![0x02, 0x02, 0x00, 0xff]);
        assert_eq!(uint(0x02, 13), vec![0x02, 0x01, 0x0d]);
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(
            sgx_oid(&[4]),
            hex::decode("060a2a864886f84d010d0104").unwrap()
        );
    }
}
