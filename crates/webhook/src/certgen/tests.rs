use super::*;
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use time::macros::datetime;
use webpki::{EndEntityCert, anchor_from_trusted_cert};
use x509_parser::prelude::{FromDer, X509Certificate};

const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

fn svc() -> ServiceName {
    ServiceName::new("confkube", "confkube-webhook", "cluster.local")
}

fn issued(validity_days: i64) -> Issued {
    issue(&svc(), Duration::days(validity_days), NOW, None).unwrap()
}

fn data(ca: &str, cert: &str, key: &str) -> BTreeMap<String, ByteString> {
    [(CA_CRT, ca), (TLS_CRT, cert), (TLS_KEY, key)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

fn of(i: &Issued) -> BTreeMap<String, ByteString> {
    data(&i.ca_pem, &i.cert_pem, &i.key_pem)
}

fn decide_at(d: Option<&BTreeMap<String, ByteString>>, now: OffsetDateTime) -> Decision {
    decide(d, &svc(), Duration::days(30), now)
}

fn reason(d: &BTreeMap<String, ByteString>) -> Reason {
    match decide_at(Some(d), NOW) {
        Decision::Issue(r) => r,
        other => panic!("expected Issue, got {other:?}"),
    }
}

#[test]
fn dns_names_of_the_service() {
    assert_eq!(
        ServiceName::new("ns", "svc", "example.internal.").dns_names(),
        ["svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.example.internal"]
    );
}

#[test]
fn reuses_a_valid_secret() {
    let i = issued(3650);
    assert_eq!(i.not_after, datetime!(2035-12-30 00:00 UTC));
    assert_eq!(
        decide_at(Some(&of(&i)), NOW + Duration::days(1)),
        Decision::Reuse {
            expires: datetime!(2035-12-30 00:00 UTC)
        }
    );
    // Right up to the renewal window.
    assert_eq!(
        decide_at(Some(&of(&i)), datetime!(2035-11-30 00:00 UTC)),
        Decision::Reuse {
            expires: i.not_after
        }
    );
}

#[test]
fn renews_within_the_window() {
    let i = issued(40);
    let r = match decide_at(Some(&of(&i)), NOW + Duration::days(11)) {
        Decision::Issue(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        r,
        Reason::Expiring {
            key: TLS_CRT,
            not_after: datetime!(2026-02-10 00:00 UTC),
            renew_before_days: 30
        }
    );
    assert_eq!(
        r.to_string(),
        "tls.crt expires at 2026-02-10T00:00:00Z, within the renewal window of 30 days"
    );
    assert_eq!(
        decide_at(Some(&of(&i)), NOW + Duration::days(9)),
        Decision::Reuse {
            expires: datetime!(2026-02-10 00:00 UTC)
        }
    );
}

#[test]
fn regenerates_expired_and_not_yet_valid() {
    let i = issued(40);
    let expired = decide_at(Some(&of(&i)), NOW + Duration::days(41));
    assert_eq!(
        expired,
        Decision::Issue(Reason::Expired {
            key: TLS_CRT,
            not_after: datetime!(2026-02-10 00:00 UTC)
        })
    );
    let early = decide_at(Some(&of(&i)), NOW - Duration::hours(1));
    let Decision::Issue(r) = early else {
        panic!("{early:?}")
    };
    assert_eq!(
        r.to_string(),
        "tls.crt is not valid before 2025-12-31T23:55:00Z"
    );
}

#[test]
fn regenerates_when_the_dns_names_differ() {
    let i = issued(3650);
    let other_domain = ServiceName::new("confkube", "confkube-webhook", "example.internal");
    let Decision::Issue(r) = decide(Some(&of(&i)), &other_domain, Duration::days(30), NOW) else {
        panic!()
    };
    assert_eq!(
        r,
        Reason::MissingDnsNames {
            names: vec!["confkube-webhook.confkube.svc.example.internal".to_owned()]
        }
    );
    let other_svc = ServiceName::new("confkube", "webhook", "cluster.local");
    let Decision::Issue(r) = decide(Some(&of(&i)), &other_svc, Duration::days(30), NOW) else {
        panic!()
    };
    assert_eq!(
        r.to_string(),
        "tls.crt does not cover the DNS names webhook, webhook.confkube, webhook.confkube.svc, \
         webhook.confkube.svc.cluster.local"
    );
}

#[test]
fn regenerates_when_ca_did_not_sign_the_certificate() {
    let a = issued(3650);
    let b = issued(3650);
    assert_eq!(
        reason(&data(&b.ca_pem, &a.cert_pem, &a.key_pem)),
        Reason::NotSignedByCa
    );
    assert_eq!(
        Reason::NotSignedByCa.to_string(),
        "tls.crt is not signed by a CA in ca.crt"
    );
    // The serving certificate given as the CA: not a CA at all.
    assert_eq!(
        reason(&data(&a.cert_pem, &a.cert_pem, &a.key_pem)),
        Reason::NotCa
    );
}

#[test]
fn regenerates_garbage() {
    let i = issued(3650);
    let cases: Vec<(BTreeMap<String, ByteString>, Reason, &str)> = vec![
        (
            data("hello", &i.cert_pem, &i.key_pem),
            Reason::BadCertificate {
                key: CA_CRT,
                message: "no PEM CERTIFICATE block".to_owned(),
            },
            "ca.crt is not a usable certificate: no PEM CERTIFICATE block",
        ),
        (
            data(&i.ca_pem, "-----BEGIN CERTIFICATE-----\nAAAA\n", &i.key_pem),
            Reason::BadCertificate {
                key: TLS_CRT,
                message: "no \"-----END CERTIFICATE-----\" line".to_owned(),
            },
            "tls.crt is not a usable certificate: no \"-----END CERTIFICATE-----\" line",
        ),
        (
            data(
                &i.ca_pem,
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                &i.key_pem,
            ),
            Reason::BadCertificate {
                key: TLS_CRT,
                message: "a CERTIFICATE block is not a DER X.509 certificate".to_owned(),
            },
            "tls.crt is not a usable certificate: a CERTIFICATE block is not a DER X.509 \
             certificate",
        ),
        (
            data(&i.ca_pem, &i.cert_pem, "garbage"),
            Reason::BadKey {
                message: "no PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned(),
            },
            "tls.key is not a usable private key: no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        ),
        (
            data(&i.ca_pem, &i.cert_pem, &issued(1).key_pem),
            Reason::KeyMismatch,
            "tls.key is not the private key of tls.crt",
        ),
    ];
    for (d, want, text) in cases {
        let got = reason(&d);
        assert_eq!(got, want);
        assert_eq!(got.to_string(), text);
    }
    let mut missing = of(&i);
    missing.remove(TLS_KEY);
    assert_eq!(reason(&missing), Reason::MissingKey { key: TLS_KEY });
    assert_eq!(
        Reason::MissingKey { key: TLS_KEY }.to_string(),
        "the secret has no tls.key"
    );
    assert_eq!(
        decide_at(None, NOW),
        Decision::Issue(Reason::NoSecret),
        "no secret"
    );
}

/// What `issued_certificates_have_the_required_shape` checks of one certificate, read with
/// x509-parser here (certgen itself leaves these checks to rustls-webpki).
struct Shape {
    der: Vec<u8>,
    is_ca: bool,
    signature_oid: String,
    key_curve: Option<String>,
    dns_names: Vec<String>,
    server_auth: bool,
    not_before: i64,
}

fn shapes(pem: &[u8]) -> Vec<Shape> {
    CertificateDer::pem_slice_iter(pem)
        .map(|der| {
            let der = der.unwrap().to_vec();
            let (_, c) = X509Certificate::from_der(&der).unwrap();
            let dns_names = c
                .subject_alternative_name()
                .unwrap()
                .map(|san| {
                    san.value
                        .general_names
                        .iter()
                        .filter_map(|n| match n {
                            x509_parser::extensions::GeneralName::DNSName(d) => {
                                Some((*d).to_owned())
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let shape = Shape {
                is_ca: c.basic_constraints().unwrap().is_some_and(|bc| bc.value.ca),
                signature_oid: c.signature_algorithm.algorithm.to_id_string(),
                key_curve: c
                    .public_key()
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|oid| oid.to_id_string()),
                dns_names,
                server_auth: c
                    .extended_key_usage()
                    .unwrap()
                    .is_some_and(|eku| eku.value.server_auth),
                not_before: c.validity().not_before.timestamp(),
                der: Vec::new(),
            };
            Shape { der, ..shape }
        })
        .collect()
}

impl Shape {
    /// Whether rustls-webpki builds the path `self` → `ca` (a TLS server certificate) at NOW.
    fn signed_by(&self, ca: &Shape) -> bool {
        let (leaf, ca) = (
            CertificateDer::from(self.der.as_slice()),
            CertificateDer::from(ca.der.as_slice()),
        );
        let anchor = anchor_from_trusted_cert(&ca).unwrap();
        let leaf = EndEntityCert::try_from(&leaf).unwrap();
        verify_path(&leaf, &anchor, NOW).is_ok()
    }
}

#[test]
fn issued_certificates_have_the_required_shape() {
    let i = issued(3650);
    let ca = shapes(i.ca_pem.as_bytes());
    assert_eq!(ca.len(), 1);
    let leaf = shapes(i.cert_pem.as_bytes());
    assert_eq!(leaf.len(), 1);
    let (ca, leaf) = (&ca[0], &leaf[0]);
    assert!(ca.is_ca && !leaf.is_ca);
    assert!(leaf.signed_by(ca));
    assert_eq!(leaf.signature_oid, "1.2.840.10045.4.3.2");
    assert_eq!(ca.key_curve.as_deref(), Some("1.2.840.10045.3.1.7"));
    assert_eq!(leaf.key_curve.as_deref(), Some("1.2.840.10045.3.1.7"));
    assert_eq!(leaf.dns_names, svc().dns_names());
    assert!(leaf.server_auth);
    assert_eq!(
        leaf.not_before,
        (NOW - Duration::minutes(5)).unix_timestamp()
    );
    assert!(i.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));

    let (_, ca) = X509Certificate::from_der(&ca.der).unwrap();
    let ku = ca.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign());
    assert_eq!(
        ca.basic_constraints()
            .unwrap()
            .unwrap()
            .value
            .path_len_constraint,
        Some(0)
    );
    let (_, leaf) = X509Certificate::from_der(&leaf.der).unwrap();
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    // The webhook server loads the pair.
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let chain = CertificateDer::pem_slice_iter(i.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(i.key_pem.as_bytes()).unwrap();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider).unwrap();
}

#[test]
fn a_renewed_bundle_keeps_the_previous_ca() {
    let old = issued(3650);
    let later = NOW + Duration::days(1);
    let new = issue(
        &svc(),
        Duration::days(3650),
        later,
        Some(old.ca_pem.as_bytes()),
    )
    .unwrap();
    let bundle = pem_certs(CA_CRT, new.ca_pem.as_bytes()).unwrap();
    assert_eq!(bundle.len(), 2);
    assert!(
        new.ca_pem.ends_with(&old.ca_pem),
        "old CA re-encoded byte for byte"
    );
    // New pair valid; the old serving certificate is still trusted by the new bundle (the
    // window between the caBundle patch and the webhook's reload).
    assert!(matches!(
        decide_at(Some(&of(&new)), later),
        Decision::Reuse { .. }
    ));
    assert!(matches!(
        decide_at(Some(&data(&new.ca_pem, &old.cert_pem, &old.key_pem)), later),
        Decision::Reuse { .. }
    ));
    // Only the one previous CA is kept: the bundle does not grow.
    let third = issue(
        &svc(),
        Duration::days(3650),
        later,
        Some(new.ca_pem.as_bytes()),
    )
    .unwrap();
    assert_eq!(pem_certs(CA_CRT, third.ca_pem.as_bytes()).unwrap().len(), 2);
    // An expired or unreadable previous CA is dropped.
    let short = issued(1);
    let after = issue(
        &svc(),
        Duration::days(3650),
        NOW + Duration::days(2),
        Some(short.ca_pem.as_bytes()),
    )
    .unwrap();
    assert_eq!(pem_certs(CA_CRT, after.ca_pem.as_bytes()).unwrap().len(), 1);
    let after = issue(&svc(), Duration::days(3650), NOW, Some(b"garbage")).unwrap();
    assert_eq!(pem_certs(CA_CRT, after.ca_pem.as_bytes()).unwrap().len(), 1);
}

#[test]
fn builds_the_secret() {
    let i = issued(3650);
    let new = tls_secret("confkube", "confkube-webhook", &i, None);
    assert_eq!(
        serde_json::to_value(&new).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "confkube-webhook",
                "namespace": "confkube",
                "labels": {"app.kubernetes.io/managed-by": "confkube-certgen"}
            },
            "type": "kubernetes.io/tls",
            "data": {
                "ca.crt": STANDARD.encode(&i.ca_pem),
                "tls.crt": STANDARD.encode(&i.cert_pem),
                "tls.key": STANDARD.encode(&i.key_pem),
            }
        })
    );
    let existing: Secret = serde_json::from_value(json!({
        "metadata": {"name": "confkube-webhook", "namespace": "confkube",
                     "resourceVersion": "7", "labels": {"team": "sgx"}},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "b2xk", "extra": "eA=="}
    }))
    .unwrap();
    let replaced = serde_json::to_value(tls_secret(
        "confkube",
        "confkube-webhook",
        &i,
        Some(existing),
    ))
    .unwrap();
    assert_eq!(replaced["metadata"]["resourceVersion"], "7");
    assert_eq!(
        replaced["metadata"]["labels"],
        json!({"app.kubernetes.io/managed-by": "confkube-certgen", "team": "sgx"})
    );
    assert_eq!(replaced["data"]["extra"], "eA==");
    assert_eq!(replaced["data"]["tls.crt"], STANDARD.encode(&i.cert_pem));
}

fn config(entries: Value) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1",
           "kind": "MutatingWebhookConfiguration",
           "metadata": {"name": "confkube-sgx"},
           "webhooks": entries})
}

#[test]
fn plans_the_ca_bundle_patch() {
    let ca = b"-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
    let b64 = STANDARD.encode(ca);
    let mut cfg = config(json!([
        {"name": "other.example.com",
         "clientConfig": {"service": {"namespace": "other", "name": "svc"}, "caBundle": "eA=="}},
        {"name": "mutate.sgx.confkube.io",
         "clientConfig": {"service": {"namespace": "confkube", "name": "confkube-webhook",
                                      "path": "/mutate-pods", "port": 443}}},
    ]));
    let plan = ca_bundle_patch(&cfg, "confkube", "confkube-webhook", ca).unwrap();
    assert_eq!(
        plan,
        CaBundlePatch {
            ops: Some(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/webhooks/1/name", "value": "mutate.sgx.confkube.io"},
                    {"op": "test", "path": "/webhooks/1/clientConfig/service/namespace", "value": "confkube"},
                    {"op": "test", "path": "/webhooks/1/clientConfig/service/name", "value": "confkube-webhook"},
                    {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": b64},
                ]))
                .unwrap()
            ),
            matched: 1,
            changed: 1,
        }
    );
    let patch: json_patch::Patch = plan.ops.unwrap();
    json_patch::patch(&mut cfg, &patch).unwrap();
    assert_eq!(cfg["webhooks"][0]["clientConfig"]["caBundle"], "eA==");
    assert_eq!(cfg["webhooks"][1]["clientConfig"]["path"], json!(null));
    assert_eq!(
        cfg["webhooks"][1]["clientConfig"]["service"]["path"],
        "/mutate-pods"
    );
    // Applied: nothing more to do.
    assert_eq!(
        ca_bundle_patch(&cfg, "confkube", "confkube-webhook", ca).unwrap(),
        CaBundlePatch {
            ops: None,
            matched: 1,
            changed: 0
        }
    );
    // A different bundle is replaced.
    let plan = ca_bundle_patch(&cfg, "confkube", "confkube-webhook", b"new").unwrap();
    assert_eq!(plan.changed, 1);
}

#[test]
fn no_webhook_calls_the_service() {
    let cfg = config(json!([
        {"name": "a.example.com", "clientConfig": {"service": {"namespace": "other", "name": "svc"}}},
        {"name": "b.example.com", "clientConfig": {"url": "https://hooks.example.com/b"}},
        {"name": "c.example.com"},
    ]));
    assert_eq!(
        ca_bundle_patch(&cfg, "confkube", "confkube-webhook", b"ca"),
        Err(NoMatchingWebhook {
            calls: vec![
                "a.example.com → other/svc".to_owned(),
                "b.example.com → https://hooks.example.com/b".to_owned(),
                "c.example.com → nothing".to_owned(),
            ]
        })
    );
    assert_eq!(
        ca_bundle_patch(&config(json!([])), "confkube", "confkube-webhook", b"ca"),
        Err(NoMatchingWebhook { calls: vec![] })
    );
}

#[test]
fn checks_dns_names() {
    for ok in ["confkube", "a", "web-hook-1"] {
        assert_eq!(check_dns_label(ok), Ok(()), "{ok}");
    }
    for bad in ["", "-a", "a-", "Caps", "a.b", &"x".repeat(64)] {
        assert!(check_dns_label(bad).is_err(), "{bad}");
    }
    assert_eq!(
        check_dns_label("Web"),
        Err(
            "\"Web\" is not a DNS label: use at most 63 lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
                .to_owned()
        )
    );
    for ok in ["confkube-sgx", "cluster.local", "a.b-c.d"] {
        assert_eq!(check_dns_subdomain(ok), Ok(()), "{ok}");
    }
    for bad in ["", "a..b", ".a", "a_b", "cluster.local."] {
        assert!(check_dns_subdomain(bad).is_err(), "{bad}");
    }
}

/// A CA (kept as an rcgen issuer) and `ca.crt` for hand-made serving certificates.
fn hand_ca() -> (Issuer<'static, KeyPair>, String) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "hand CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = NOW - Duration::days(1);
    params.not_after = NOW + Duration::days(3650);
    let cert = params.self_signed(&key).unwrap();
    (Issuer::new(params, key), cert.pem())
}

/// A certificate for the Service's names signed by `issuer`, after `edit`, and its key.
fn hand_leaf(
    issuer: &Issuer<'_, KeyPair>,
    edit: impl FnOnce(&mut CertificateParams),
) -> (String, String) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(svc().dns_names()).unwrap();
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = NOW - Duration::days(1);
    params.not_after = NOW + Duration::days(3650);
    edit(&mut params);
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn rustls_webpki_rules_name_the_problem() {
    let (issuer, ca) = hand_ca();
    // The hand-made pair itself is reused: the rules below are what changes the answer.
    let (cert, key) = hand_leaf(&issuer, |_| {});
    assert!(matches!(
        decide_at(Some(&data(&ca, &cert, &key)), NOW),
        Decision::Reuse { .. }
    ));

    let (cert, key) = hand_leaf(&issuer, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    });
    let r = reason(&data(&ca, &cert, &key));
    assert_eq!(r, Reason::NotServerAuth);
    assert_eq!(r.to_string(), "tls.crt's extendedKeyUsage lacks serverAuth");

    let (cert, key) = hand_leaf(&issuer, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    });
    let r = reason(&data(&ca, &cert, &key));
    assert_eq!(r, Reason::LeafIsCa);
    assert_eq!(
        r.to_string(),
        "tls.crt is a CA certificate (basicConstraints CA:TRUE), not a serving certificate"
    );

    let (cert, key) = hand_leaf(&issuer, |p| {
        let mut ext =
            rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![5, 0]);
        ext.set_criticality(true);
        p.custom_extensions = vec![ext];
    });
    let r = reason(&data(&ca, &cert, &key));
    assert_eq!(
        r,
        Reason::Rejected {
            key: TLS_CRT,
            error: webpki::Error::UnsupportedCriticalExtension
        }
    );
    assert_eq!(
        r.to_string(),
        "tls.crt breaks a certificate rule of rustls-webpki: UnsupportedCriticalExtension"
    );

    // A wildcard covers the one-label-deeper names only; webpki finds which are missing.
    let (cert, key) = hand_leaf(&issuer, |p| {
        p.subject_alt_names = vec![rcgen::SanType::DnsName(
            "*.confkube.svc".try_into().unwrap(),
        )];
    });
    assert_eq!(
        reason(&data(&ca, &cert, &key)),
        Reason::MissingDnsNames {
            names: vec![
                "confkube-webhook".to_owned(),
                "confkube-webhook.confkube".to_owned(),
                "confkube-webhook.confkube.svc.cluster.local".to_owned(),
            ]
        }
    );
}

#[test]
fn the_ca_validity_is_checked_too() {
    // webpki takes a trust anchor as given: certgen checks the CA's own dates.
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "short CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = NOW - Duration::days(1);
    params.not_after = NOW + Duration::days(10);
    let ca = params.self_signed(&key).unwrap().pem();
    let issuer = Issuer::new(params, key);
    let (cert, key) = hand_leaf(&issuer, |_| {});
    let r = reason(&data(&ca, &cert, &key));
    assert_eq!(
        r,
        Reason::Expiring {
            key: CA_CRT,
            not_after: NOW + Duration::days(10),
            renew_before_days: 30
        }
    );
    assert_eq!(
        r.to_string(),
        "ca.crt expires at 2026-01-11T00:00:00Z, within the renewal window of 30 days"
    );
}

#[test]
fn keys_compare_as_parsed_public_keys() {
    let i = issued(3650);
    // The key re-read and re-encoded: another file, the same public key.
    let der = PrivateKeyDer::from_pem_slice(i.key_pem.as_bytes()).unwrap();
    let pair = KeyPair::try_from(&der).unwrap();
    assert_eq!(
        decide_at(
            Some(&data(&i.ca_pem, &i.cert_pem, &pair.serialize_pem())),
            NOW
        ),
        Decision::Reuse {
            expires: i.not_after
        }
    );
    let leaf = pem_certs(TLS_CRT, i.cert_pem.as_bytes()).unwrap().remove(0);
    assert_eq!(leaf.key.algorithm.to_id_string(), "1.2.840.10045.2.1");
    assert_eq!(
        leaf.key.curve.as_ref().map(|c| c.to_id_string()).as_deref(),
        Some("1.2.840.10045.3.1.7")
    );
    assert_eq!(leaf.key.bits.len(), 65);
}
