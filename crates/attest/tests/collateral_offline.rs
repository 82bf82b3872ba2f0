//! The offline bundle directory in both layouts, built at test time from the real sets of
//! `../shared/testdata` (nothing is copied into the repository).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod collateral_support;

use std::fs;
use std::path::Path;

use attest::collateral::{
    CollateralSource, OfflineDir, PckCaType, PlatformId, SourceError, collateral_next_update,
};
use collateral_support::{
    Set, assert_verifies, diff_fields, icelake, mobilecoin, scratch_dir, synthetic,
};

/// Writes the set in the PCS-shaped layout: `DIR/<fmspc>/…`. The TCB chain is saved URL-encoded
/// (as the header carries it), the others as plain PEM; the root CRL as the PCCS hex; the PCK
/// CRL issuer chain as the derived file holds it.
fn write_pcs_layout(dir: &Path, set: &Set) -> std::path::PathBuf {
    let sub = dir.join(set.id.fmspc_hex());
    fs::create_dir_all(&sub).unwrap();
    fs::write(sub.join("tcb.json"), &set.tcb_body).unwrap();
    fs::write(
        sub.join("tcb.issuer-chain.pem"),
        percent_encoding::utf8_percent_encode(&set.tcb_chain, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
    )
    .unwrap();
    fs::write(sub.join("qe-identity.json"), &set.qe_body).unwrap();
    fs::write(sub.join("qe-identity.issuer-chain.pem"), &set.qe_chain).unwrap();
    fs::write(sub.join("pckcrl.der"), &set.pck_crl_der).unwrap();
    fs::write(sub.join("pckcrl.issuer-chain.pem"), &set.derived_pck_chain).unwrap();
    fs::write(sub.join("rootcacrl.der"), hex::encode(&set.root_crl_der)).unwrap();
    if let Some(chain) = &set.pck_certificate_chain {
        fs::write(sub.join("pck-certificate-chain.pem"), chain).unwrap();
    }
    sub
}

#[tokio::test]
async fn dcap_qvl_json_layout_loads_each_set_exactly() {
    let dir = scratch_dir("offline-json");
    for set in [icelake(), mobilecoin(), synthetic()] {
        let Some(set) = set else { return };
        fs::write(
            dir.join(format!("{}.json", set.id.fmspc_hex())),
            set.derived.to_json(),
        )
        .unwrap();
        let c = OfflineDir::new(&dir).fetch(&set.id).await.unwrap();
        assert_eq!(
            diff_fields(c.document(), set.derived.document()),
            Vec::<&str>::new(),
            "{}",
            set.name
        );
        assert_eq!(c.digest(), set.derived.digest(), "{}", set.name);
        assert_verifies(&set, &c);
    }
}

#[tokio::test]
async fn pcs_layout_equals_derived_json_and_verifies() {
    let dir = scratch_dir("offline-pcs");
    for set in [icelake(), mobilecoin(), synthetic()] {
        let Some(set) = set else { return };
        write_pcs_layout(&dir, &set);
        let c = OfflineDir::new(&dir).load(&set.id).await.unwrap();
        assert_eq!(
            diff_fields(c.document(), set.derived.document()),
            Vec::<&str>::new(),
            "{}",
            set.name
        );
        assert_verifies(&set, &c);
    }
}

#[tokio::test]
async fn pcs_layout_accepts_der_pem_and_hex_crls() {
    let Some(set) = icelake() else { return };
    let dir = scratch_dir("offline-crl-forms");
    let sub = write_pcs_layout(&dir, &set);
    // The PCK CRL as PEM (pckcrl without encoding=der), the root CRL as DER.
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &set.pck_crl_der);
    fs::write(
        sub.join("pckcrl.der"),
        format!("-----BEGIN X509 CRL-----\n{b64}\n-----END X509 CRL-----\n"),
    )
    .unwrap();
    fs::write(sub.join("rootcacrl.der"), &set.root_crl_der).unwrap();
    let c = OfflineDir::new(&dir).load(&set.id).await.unwrap();
    assert_eq!(
        diff_fields(c.document(), set.derived.document()),
        Vec::<&str>::new()
    );
}

#[tokio::test]
async fn json_file_wins_over_directory() {
    let Some(ice) = icelake() else { return };
    let dir = scratch_dir("offline-precedence");
    let sub = write_pcs_layout(&dir, &ice);
    // A broken directory is never read when the JSON file exists.
    fs::remove_file(sub.join("tcb.json")).unwrap();
    fs::write(
        dir.join(format!("{}.json", ice.id.fmspc_hex())),
        ice.derived.to_json(),
    )
    .unwrap();
    let c = OfflineDir::new(&dir).load(&ice.id).await.unwrap();
    assert_eq!(c.digest(), ice.derived.digest());
}

#[tokio::test]
async fn unknown_fmspc_is_not_found() {
    let dir = scratch_dir("offline-unknown");
    let id = PlatformId::from_hex("00606A000000", PckCaType::Platform).unwrap();
    let e = OfflineDir::new(&dir).load(&id).await.unwrap_err();
    let d = dir.display();
    assert_eq!(
        e,
        SourceError::NotFound {
            fmspc: "00606a000000".into(),
            location: format!("{d}/00606a000000.json (nor {d}/00606a000000/)"),
        }
    );
    assert_eq!(
        e.to_string(),
        format!(
            "no collateral for FMSPC 00606a000000 at {d}/00606a000000.json (nor {d}/00606a000000/)"
        )
    );
}

#[tokio::test]
async fn missing_file_in_pcs_layout_is_named() {
    let Some(set) = icelake() else { return };
    let dir = scratch_dir("offline-missing");
    let sub = write_pcs_layout(&dir, &set);
    for name in [
        "qe-identity.json",
        "pckcrl.issuer-chain.pem",
        "rootcacrl.der",
        "tcb.json",
    ] {
        let bytes = fs::read(sub.join(name)).unwrap();
        fs::remove_file(sub.join(name)).unwrap();
        let e = OfflineDir::new(&dir).load(&set.id).await.unwrap_err();
        assert_eq!(
            e,
            SourceError::Invalid {
                location: sub.join(name).display().to_string(),
                reason: "missing: a PCS-shaped bundle needs this file".into(),
            },
            "{name}"
        );
        fs::write(sub.join(name), bytes).unwrap();
    }
    assert!(OfflineDir::new(&dir).load(&set.id).await.is_ok());
}

#[tokio::test]
async fn garbled_files_are_invalid_with_the_file_named() {
    let (Some(set), Some(other)) = (icelake(), mobilecoin()) else {
        return;
    };
    let dir = scratch_dir("offline-garbled");
    let json = dir.join("00606a000000.json");
    let j = json.display();
    let load = || async { OfflineDir::new(&dir).load(&set.id).await.unwrap_err() };

    fs::write(&json, "{ not json").unwrap();
    assert_eq!(
        load().await.to_string(),
        format!(
            "invalid collateral from {j}: collateral is not QuoteCollateralV3 JSON: key must be a \
             string at line 1 column 3"
        )
    );
    let mut doc = set.derived.document().clone();
    doc.pck_crl = "zz".into();
    fs::write(&json, serde_json::to_string(&doc).unwrap()).unwrap();
    assert_eq!(
        load().await.to_string(),
        format!(
            "invalid collateral from {j}: collateral field pck_crl is not valid hex: Invalid \
             character 'z' at position 0"
        )
    );
    // Another platform's collateral under this FMSPC's name.
    fs::write(&json, other.derived.to_json()).unwrap();
    assert_eq!(
        load().await,
        SourceError::Invalid {
            location: j.to_string(),
            reason: "the TCB info is for FMSPC 00906ed50000, not 00606a000000".into(),
        }
    );
    // Unreadable: a directory where the file should be.
    fs::remove_file(&json).unwrap();
    fs::create_dir(&json).unwrap();
    let e = load().await;
    assert_eq!(e.kind(), "unavailable", "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "collateral source {j} is unavailable: Is a directory"
        )),
        "{e}"
    );
    fs::remove_dir(&json).unwrap();

    // PCS layout: garbled body, chain, CRL.
    let sub = write_pcs_layout(&dir, &set);
    let s = |n: &str| sub.join(n).display().to_string();
    fs::write(sub.join("tcb.json"), br#"{"tcbInfo":{}}"#).unwrap();
    assert_eq!(
        load().await,
        SourceError::Invalid {
            location: s("tcb.json"),
            reason: "the body has no \"signature\" member".into(),
        }
    );
    fs::write(sub.join("tcb.json"), &set.tcb_body).unwrap();
    fs::write(sub.join("qe-identity.issuer-chain.pem"), "hello").unwrap();
    assert_eq!(
        load().await,
        SourceError::Invalid {
            location: s("qe-identity.issuer-chain.pem"),
            reason: "the issuer chain is not a (URL-encoded) PEM certificate chain".into(),
        }
    );
    fs::write(sub.join("qe-identity.issuer-chain.pem"), &set.qe_chain).unwrap();
    fs::write(sub.join("pckcrl.der"), b"\x30\x03\x02\x01\x00").unwrap();
    let e = load().await;
    let SourceError::Invalid { location, reason } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(location, &s("pckcrl.der"));
    assert!(reason.starts_with("not a DER CRL: "), "{reason}");
    let mut trailing = set.pck_crl_der.clone();
    trailing.push(0);
    fs::write(sub.join("pckcrl.der"), trailing).unwrap();
    assert_eq!(
        load().await,
        SourceError::Invalid {
            location: s("pckcrl.der"),
            reason: "trailing bytes after the DER CRL".into(),
        }
    );
    fs::write(sub.join("pckcrl.der"), &set.pck_crl_der).unwrap();
    let sig = "00".repeat(64);
    fs::write(
        sub.join("tcb.json"),
        format!(r#"{{"tcbInfo":{{"id":"SGX"}},"signature":"{sig}"}}"#),
    )
    .unwrap();
    assert_eq!(
        load().await,
        SourceError::Invalid {
            location: s("tcb.json"),
            reason: "TCB info: not a tcbInfo object: missing field `version` at line 1 column 12"
                .into(),
        }
    );
    fs::write(sub.join("tcb.json"), &set.tcb_body).unwrap();
    fs::write(
        sub.join("qe-identity.json"),
        format!(r#"{{"enclaveIdentity":{{}},"signature":"{sig}"}}"#),
    )
    .unwrap();
    assert_eq!(
        load().await,
        SourceError::Invalid {
            location: s("qe-identity.json"),
            reason:
                "QE identity: not an enclaveIdentity object: missing field `id` at line 1 column 2"
                    .into(),
        }
    );
    fs::write(sub.join("qe-identity.json"), &set.qe_body).unwrap();
    fs::write(sub.join("tcb.json"), &other.tcb_body).unwrap();
    assert_eq!(
        load().await,
        SourceError::Invalid {
            location: s("tcb.json"),
            reason: "the TCB info is for FMSPC 00906ed50000, not 00606a000000".into(),
        }
    );
}

#[test]
fn next_update_is_the_earliest_of_all_parts() {
    let (Some(ice), Some(mob)) = (icelake(), mobilecoin()) else {
        return;
    };
    // icelake: the QE identity (2025-09-14T04:36:46Z) ends first.
    assert_eq!(collateral_next_update(&ice.derived), Ok(1_757_824_606));
    // mobilecoin: the PCK CRL (2023-05-21T22:00:36Z) ended before the TCB info was issued.
    assert_eq!(collateral_next_update(&mob.derived), Ok(1_684_706_436));
    let mut doc = ice.derived.document().clone();
    doc.tcb_info = "{}".into();
    assert_eq!(
        collateral_next_update(&dcap::Collateral::from_document(doc).unwrap()),
        Err(SourceError::Invalid {
            location: "the collateral document".into(),
            reason: "TCB info: not a tcbInfo object: missing field `version` at line 1 column 2"
                .into(),
        })
    );
}
