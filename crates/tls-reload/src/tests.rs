use super::*;

use std::collections::VecDeque;

/// A self-signed certificate for `localhost` and its PKCS#8 P-256 key, both PEM, and the
/// certificate DER. rcgen certificates are valid until 4096-01-01.
fn pair() -> (String, String, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (
        ck.cert.pem(),
        ck.signing_key.serialize_pem(),
        ck.cert.der().to_vec(),
    )
}

const NOT_AFTER: &str = "4096-01-01T00:00:00Z";

/// `tls.crt` and `tls.key` in a fresh directory, removed when dropped.
struct Tmp {
    files: CertFiles,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Tmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.files.fmt(f)
    }
}

impl std::ops::Deref for Tmp {
    type Target = CertFiles;
    fn deref(&self) -> &CertFiles {
        &self.files
    }
}

fn tmp(name: &str) -> Tmp {
    let dir = tempfile::Builder::new()
        .prefix(&format!("confkube-tls-reload-{name}-"))
        .tempdir()
        .unwrap();
    Tmp {
        files: CertFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        },
        _dir: dir,
    }
}

fn write(files: &CertFiles, cert: &str, key: &str) {
    std::fs::write(&files.cert, cert).unwrap();
    std::fs::write(&files.key, key).unwrap();
}

fn served_der(r: &ReloadingCert) -> Vec<u8> {
    r.current().end_entity_cert().unwrap().to_vec()
}

fn load(files: &CertFiles) -> Result<ReloadingCert, TlsFileError> {
    ReloadingCert::load(files.clone(), default_provider())
}

/// The messages of every kind of unusable pair, exactly; `cert_a`/`key_a` and `key_b` are two
/// good certificates' files.
fn bad_pairs(
    files: &CertFiles,
    (cert_a, key_a): (&str, &str),
    key_b: &str,
) -> Vec<(String, String, String)> {
    let (c, k) = (files.cert.display(), files.key.display());
    vec![
        (
            "not a certificate\n".into(),
            key_a.into(),
            format!(
                "{c} holds no PEM CERTIFICATE block; --tls-cert must be the PEM certificate \
                 chain, leaf first"
            ),
        ),
        (
            key_a.into(),
            key_a.into(),
            format!(
                "{c} holds no PEM CERTIFICATE block; --tls-cert must be the PEM certificate \
                 chain, leaf first"
            ),
        ),
        (
            "-----BEGIN CERTIFICATE-----\nMIIB\n".into(),
            key_a.into(),
            format!("{c} is not valid PEM: no \"-----END CERTIFICATE-----\" line"),
        ),
        (
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".into(),
            key_a.into(),
            format!("{c} is not valid PEM: bad base64 (InvalidCharacter(33))"),
        ),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            key_a.into(),
            format!(
                "{c} holds a leaf certificate that cannot be parsed (invalid peer certificate: \
                 BadEncoding); --tls-cert must be the PEM certificate chain, leaf first"
            ),
        ),
        (
            cert_a.into(),
            cert_a.into(),
            format!(
                "{k} holds no PEM private key (PKCS#8, PKCS#1 or SEC1); --tls-key must be the PEM \
                 key of the serving certificate"
            ),
        ),
        (
            cert_a.into(),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n".into(),
            format!("{k} is not valid PEM: no \"-----END PRIVATE KEY-----\" line"),
        ),
        (
            cert_a.into(),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            format!(
                "{k} holds a private key that cannot be used (unexpected error: failed to parse \
                 private key as RSA, ECDSA, or EdDSA); --tls-key must be an RSA, ECDSA or Ed25519 \
                 key"
            ),
        ),
        (
            cert_a.into(),
            key_b.into(),
            format!(
                "the private key in {k} does not belong to the certificate in {c}; --tls-key must \
                 be the key of the first (leaf) certificate in --tls-cert"
            ),
        ),
    ]
}

#[test]
fn swaps_a_changed_pair_and_keeps_the_last_good_one() {
    let files = tmp("swap");
    let (cert_a, key_a, der_a) = pair();
    let (cert_b, key_b, der_b) = pair();
    write(&files, &cert_a, &key_a);
    let r = Arc::new(load(&files).unwrap());
    assert_eq!(served_der(&r), der_a);
    assert_eq!(r.not_after().as_deref(), Some(NOT_AFTER));
    assert_eq!(r.reload_if_changed().unwrap(), Reload::Unchanged);

    // good -> good: swapped.
    write(&files, &cert_b, &key_b);
    assert_eq!(
        r.reload_if_changed().unwrap(),
        Reload::Swapped {
            not_after: Some(NOT_AFTER.into())
        }
    );
    assert_eq!(served_der(&r), der_b);
    assert_eq!(r.reload_if_changed().unwrap(), Reload::Unchanged);

    // good -> each kind of bad pair: reported once, the last good pair stays.
    for (cert, key, message) in bad_pairs(&files, (&cert_a, &key_a), &key_b) {
        write(&files, &cert, &key);
        assert_eq!(r.reload_if_changed().unwrap_err().to_string(), message);
        assert_eq!(
            r.reload_if_changed().unwrap(),
            Reload::Unchanged,
            "{message}"
        );
        assert_eq!(served_der(&r), der_b, "{message}");
    }

    // A missing file.
    std::fs::remove_file(&files.key).unwrap();
    let err = r.reload_if_changed().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read {}: No such file or directory (os error 2); check the \
             --tls-cert/--tls-key path",
            files.key.display()
        )
    );
    assert!(matches!(err, TlsFileError::Read { ref path, .. } if *path == files.key));
    assert_eq!(r.reload_if_changed().unwrap(), Reload::Unchanged);
    assert_eq!(served_der(&r), der_b);

    // Back to a good pair (even the one before) clears it.
    write(&files, &cert_a, &key_a);
    assert_eq!(
        r.reload_if_changed().unwrap(),
        Reload::Swapped {
            not_after: Some(NOT_AFTER.into())
        }
    );
    assert_eq!(served_der(&r), der_a);

    // The server configuration resolves to whatever is current.
    let config = r.server_config(&[b"h2", b"http/1.1"]).unwrap();
    assert_eq!(
        config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    write(&files, &cert_b, &key_b);
    assert_eq!(
        r.reload_if_changed().unwrap(),
        Reload::Swapped {
            not_after: Some(NOT_AFTER.into())
        }
    );
    assert_eq!(served_der(&r), der_b);
}

#[test]
fn load_errors_name_the_file_and_the_fix() {
    let files = tmp("load");
    assert_eq!(
        load(&files).unwrap_err().to_string(),
        format!(
            "cannot read {}: No such file or directory (os error 2); check the \
             --tls-cert/--tls-key path",
            files.cert.display()
        )
    );
    let (cert_a, key_a, der_a) = pair();
    let (_, key_b, _) = pair();
    for (cert, key, message) in bad_pairs(&files, (&cert_a, &key_a), &key_b) {
        write(&files, &cert, &key);
        assert_eq!(load(&files).unwrap_err().to_string(), message);
    }
    write(&files, &cert_a, &key_b);
    assert!(matches!(
        load(&files),
        Err(TlsFileError::KeyMismatch { ref cert, ref key }) if *cert == files.cert && *key == files.key
    ));
    write(&files, &cert_a, &key_a);
    assert_eq!(served_der(&load(&files).unwrap()), der_a);
}

#[test]
fn errors_keep_their_cause_typed_and_show_it_once() {
    use std::error::Error as _;
    let files = tmp("typed");
    let (_, key_a, _) = pair();
    write(&files, "-----BEGIN CERTIFICATE-----\nAAAA\n", &key_a);
    let err = load(&files).unwrap_err();
    let TlsFileError::Pem { path, error } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*path, files.cert);
    assert!(matches!(
        error,
        rustls::pki_types::pem::Error::MissingSectionEnd { .. }
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not valid PEM: no \"-----END CERTIFICATE-----\" line",
            files.cert.display()
        )
    );
    // The message shows the cause, so `source()` does not repeat it.
    assert!(err.source().is_none());
}

/// Keys in every PEM form both servers accepted before: PKCS#1 RSA, SEC1 P-256 (after an `EC
/// PARAMETERS` block, as `openssl ecparam -genkey` writes it), PKCS#8 Ed25519 (and PKCS#8 P-256,
/// above). Made with `openssl genrsa -traditional 2048`, `openssl ecparam -genkey -name
/// prime256v1`, `openssl genpkey -algorithm ed25519` and `openssl req -x509 -days 36500`.
#[test]
fn pkcs1_sec1_and_ed25519_keys_load() {
    let files = tmp("key-types");
    for (cert, key) in [
        (
            include_str!("../testdata/rsa.crt"),
            include_str!("../testdata/rsa-pkcs1.key"),
        ),
        (
            include_str!("../testdata/ec.crt"),
            include_str!("../testdata/ec-sec1.key"),
        ),
        (
            include_str!("../testdata/ed25519.crt"),
            include_str!("../testdata/ed25519-pkcs8.key"),
        ),
    ] {
        write(&files, cert, key);
        let r = load(&files).unwrap();
        assert_eq!(r.not_after().as_deref(), Some("2126-11-04T16:21:17Z"));
    }
    // And a mismatch between key types is a mismatch.
    write(
        &files,
        include_str!("../testdata/rsa.crt"),
        include_str!("../testdata/ec-sec1.key"),
    );
    assert!(matches!(
        load(&files),
        Err(TlsFileError::KeyMismatch { .. })
    ));
}

#[test]
fn fingerprints_follow_both_contents() {
    let files = tmp("fingerprint");
    write(&files, "c", "k");
    let read = read_pair(&files, read_file);
    assert_eq!(read.as_ref().unwrap(), &(b"c".to_vec(), b"k".to_vec()));
    let fp = fingerprint(&read);
    assert_eq!(fp, fingerprint(&read_pair(&files, read_file)));
    // Same bytes written again (a new mtime) is the same fingerprint.
    write(&files, "c", "k");
    assert_eq!(fp, fingerprint(&read_pair(&files, read_file)));
    write(&files, "c", "k2");
    assert_ne!(fp, fingerprint(&read_pair(&files, read_file)));
    // Bytes moved from one file to the other.
    write(&files, "ck", "");
    assert_ne!(fp, fingerprint(&read_pair(&files, read_file)));
    // A read error has a fingerprint of its own, following the error.
    std::fs::remove_file(&files.key).unwrap();
    let missing_key = fingerprint(&read_pair(&files, read_file));
    assert_ne!(fp, missing_key);
    std::fs::remove_file(&files.cert).unwrap();
    assert_ne!(missing_key, fingerprint(&read_pair(&files, read_file)));
}

/// A reader that serves `script` in order and records which file each read was of.
fn scripted(files: &CertFiles, script: &[&str]) -> (PairRead, Vec<&'static str>) {
    let mut script: VecDeque<&str> = script.iter().copied().collect();
    let mut log = Vec::new();
    let read = read_pair(files, |path: &Path| {
        log.push(if path == files.cert { "cert" } else { "key" });
        script
            .pop_front()
            .map(|s| s.as_bytes().to_vec())
            .ok_or_else(|| std::io::Error::other("script exhausted"))
    });
    (read, log)
}

#[test]
fn a_pair_is_read_consistently_across_a_swap() {
    let files = CertFiles {
        cert: "/secret/tls.crt".into(),
        key: "/secret/tls.key".into(),
    };
    let pair = |c: &str, k: &str| (c.as_bytes().to_vec(), k.as_bytes().to_vec());

    // Nothing changes: cert, key, cert.
    let (read, log) = scripted(&files, &["A", "kA", "A"]);
    assert_eq!(read.unwrap(), pair("A", "kA"));
    assert_eq!(log, ["cert", "key", "cert"]);

    // The kubelet swaps `..data` after the first certificate read: the key read may be the new
    // one, so the pair is read again, and the certificate read last is paired with the key.
    let (read, log) = scripted(&files, &["A", "kB", "B", "kB", "B"]);
    assert_eq!(read.unwrap(), pair("B", "kB"));
    assert_eq!(log, ["cert", "key", "cert", "key", "cert"]);

    // It keeps changing: three attempts, then the last reads go to parsing (which decides).
    let (read, log) = scripted(&files, &["A", "kB", "B", "kC", "C", "kD", "D"]);
    assert_eq!(read.unwrap(), pair("D", "kD"));
    assert_eq!(log.len(), 7);

    // A read error on the way is the error, naming the file.
    let (read, _) = scripted(&files, &["A", "kA"]);
    assert_eq!(
        read.unwrap_err().to_string(),
        "cannot read /secret/tls.crt: script exhausted; check the --tls-cert/--tls-key path"
    );
}

#[test]
fn resolves_to_the_current_pair() {
    let files = tmp("resolve");
    let (cert_a, key_a, _) = pair();
    write(&files, &cert_a, &key_a);
    let r = Arc::new(load(&files).unwrap());
    let before = r.current();
    let (cert_b, key_b, der_b) = pair();
    write(&files, &cert_b, &key_b);
    assert_eq!(
        r.reload_if_changed().unwrap(),
        Reload::Swapped {
            not_after: Some(NOT_AFTER.into())
        }
    );
    // A handshake that already holds the old pair keeps it; new ones get the new pair.
    assert_ne!(before.end_entity_cert().unwrap().to_vec(), der_b);
    assert_eq!(served_der(&r), der_b);
    assert_eq!(
        format!("{r:?}"),
        format!("ReloadingCert {{ files: {:?}, .. }}", files)
    );
}
