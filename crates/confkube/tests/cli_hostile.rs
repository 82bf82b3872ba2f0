//! Issue 11 as processes: the admin-token rule for every source, nothing written before the
//! configuration is checked, a damaged store refused, and `--format json` errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn confkube(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confkube"));
    cmd.current_dir(cwd)
        .args(args)
        .env_remove("CONFKUBE_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The last line of standard error (after the log lines).
fn last_err(o: &Out) -> &str {
    o.stderr.trim_end().lines().last().unwrap_or_default()
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn start(cwd: &Path, args: &[&str]) -> Server {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .current_dir(cwd)
        .args(["attest", "serve", "--listen", &listen])
        .args(args)
        .env_remove("CONFKUBE_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/healthz", "", "").0 == 200
        {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the service did not come up on {listen}");
}

#[test]
fn nothing_is_written_before_the_configuration_is_checked() {
    let cwd = tmpdir("order");
    let default_data = cwd.join("confkube-data");

    // Plain HTTP off loopback, with --demo: refused, no data directory, no demo PKI.
    let o = confkube(
        &cwd,
        &["attest", "serve", "--demo", "--listen", "0.0.0.0:9090"],
        &[],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert_eq!(
        last_err(&o),
        "error: refusing plain HTTP on 0.0.0.0:9090: only loopback addresses may serve without \
         TLS; pass --tls-cert and --tls-key"
    );
    assert!(!default_data.exists());

    // A collateral directory that does not exist.
    let o = confkube(
        &cwd,
        &[
            "attest",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--collateral-dir",
            "/nonexistent",
        ],
        &[],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert_eq!(
        last_err(&o),
        "error: --collateral-dir /nonexistent is not a directory"
    );
    assert!(!default_data.exists());

    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = confkube(&cwd, &["attest", "serve", "--demo", "--listen", &addr], &[]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert_eq!(
        last_err(&o),
        format!("error: cannot listen on {addr}: Address already in use (os error 98)")
    );
    assert!(!default_data.exists());
    drop(taken);

    // A second instance on a locked store: refused before it writes an admin token or a demo
    // PKI into the first one's data directory.
    let coll = cwd.join("collateral");
    std::fs::create_dir_all(&coll).unwrap();
    let data = cwd.join("shared-data");
    let token_file = cwd.join("token");
    std::fs::write(&token_file, "0123456789abcdef0123").unwrap();
    let _first = start(
        &cwd,
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--collateral-dir",
            coll.to_str().unwrap(),
            "--admin-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let before: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let o = confkube(
        &cwd,
        &[
            "attest",
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert_eq!(
        last_err(&o),
        format!(
            "error: opening the store in {}: store {} is in use by another confkube process; \
             stop it, or give this one its own --data-dir",
            data.display(),
            data.join("confkube.redb").display()
        )
    );
    let after: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    assert!(!data.join("demo").exists() && !data.join("admin-token").exists());
}

#[test]
fn every_admin_token_source_has_the_same_rule() {
    let cwd = tmpdir("token");
    let data = cwd.join("d");
    let d = data.to_str().unwrap();
    let serve = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "attest",
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            d,
        ];
        args.extend_from_slice(extra);
        confkube(&cwd, &args, env)
    };

    // --admin-token-file: too short, or with whitespace; refused before the data dir exists.
    let f = cwd.join("short");
    std::fs::write(&f, "abc\n").unwrap();
    let o = serve(&["--admin-token-file", f.to_str().unwrap()], &[]);
    assert_eq!(o.code, Some(2));
    assert_eq!(
        last_err(&o),
        format!(
            "error: the admin token from the admin token file {} (--admin-token-file) has 3 \
             characters; at least 16 are required",
            f.display()
        )
    );
    std::fs::write(&f, "0123456789 abcdef\n").unwrap();
    let o = serve(&["--admin-token-file", f.to_str().unwrap()], &[]);
    assert_eq!(
        last_err(&o),
        format!(
            "error: the admin token from the admin token file {} (--admin-token-file) contains \
             whitespace; use a token without spaces, tabs or line breaks",
            f.display()
        )
    );
    assert!(!data.exists());

    // CONFKUBE_ADMIN_TOKEN (read by clap, never echoed in --help).
    let o = serve(&[], &[("CONFKUBE_ADMIN_TOKEN", "   ")]);
    assert_eq!(o.code, Some(2));
    assert_eq!(
        last_err(&o),
        "error: the admin token from CONFKUBE_ADMIN_TOKEN (or --admin-token) contains \
         whitespace; use a token without spaces, tabs or line breaks"
    );
    let o = serve(&[], &[("CONFKUBE_ADMIN_TOKEN", "too-short")]);
    assert_eq!(
        last_err(&o),
        "error: the admin token from CONFKUBE_ADMIN_TOKEN (or --admin-token) has 9 characters; \
         at least 16 are required"
    );
    assert!(!data.exists());
    let help = confkube(
        &cwd,
        &["attest", "serve", "--help"],
        &[("CONFKUBE_ADMIN_TOKEN", "secret-value-0123456789")],
    );
    assert!(
        help.stdout.contains("[env: CONFKUBE_ADMIN_TOKEN]"),
        "{}",
        help.stdout
    );
    assert!(!help.stdout.contains("secret-value"));

    // An empty generated file (the issue's reproduction) is refused, not trusted.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("admin-token"), "").unwrap();
    let o = serve(&[], &[]);
    assert_eq!(o.code, Some(2));
    assert_eq!(
        last_err(&o),
        format!(
            "error: the generated admin token file {} is empty; delete it to have a new token \
             generated",
            data.join("admin-token").display()
        )
    );

    // Generated: 256 bits in hex, 0600, written atomically (no temporary file left).
    std::fs::remove_file(data.join("admin-token")).unwrap();
    let srv = start(&cwd, &["--demo", "--data-dir", d]);
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("admin-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
    // An empty bearer token never authenticates; the generated one does.
    let put = r#"{"rules":[{"name":"x","allow_debug":true}]}"#;
    let (st, body) = http(
        srv.port,
        "PUT",
        "/policies/SgxEnclave",
        "Authorization: Bearer \r\n",
        put,
    );
    assert_eq!(st, 401, "{body}");
    let (st, _) = http(
        srv.port,
        "PUT",
        "/policies/SgxEnclave",
        &format!("Authorization: Bearer {token}\r\n"),
        put,
    );
    assert_eq!(st, 200);
}

#[test]
fn an_empty_store_file_is_refused_unless_init_store() {
    let cwd = tmpdir("store");
    let data = cwd.join("d");
    std::fs::create_dir_all(&data).unwrap();
    let store = data.join("confkube.redb");
    std::fs::write(&store, b"").unwrap();
    let args = [
        "attest",
        "serve",
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let o = confkube(&cwd, &args, &[]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert_eq!(
        last_err(&o),
        format!(
            "error: opening the store in {}: store {} is damaged (the file is empty); refusing \
             to start with new signing keys and the default policy: restore it from a backup, or \
             pass --init-store to move it aside and start with an empty store",
            data.display(),
            store.display()
        )
    );
    assert!(!data.join("demo").exists() && !data.join("admin-token").exists());

    let srv = start(
        &cwd,
        &[
            "--demo",
            "--init-store",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let (st, _) = http(srv.port, "GET", "/readyz", "", "");
    assert_eq!(st, 200);
    let aside: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("confkube.redb.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
}

#[test]
fn format_json_errors_are_one_json_object_on_stdout() {
    let cwd = tmpdir("json");
    let cases: Vec<(Vec<&str>, Value)> = vec![
        (
            vec![
                "quote",
                "verify",
                "/nonexistent/q",
                "--collateral",
                "/nonexistent/c",
                "--format",
                "json",
            ],
            json!({"error": "io-error", "message": "reading the quote file /nonexistent/q: No such file or directory (os error 2)"}),
        ),
        (
            vec!["quote", "verify", "--format=json", "--bogus"],
            json!({"error": "usage-error", "message": "unexpected argument '--bogus' found"}),
        ),
        (
            vec![
                "attest",
                "keygen",
                "--format",
                "json",
                "--out",
                "/nonexistent/dir/k.pem",
            ],
            json!({"error": "io-error", "message": "creating /nonexistent/dir/k.pem: No such file or directory (os error 2)"}),
        ),
        (
            vec![
                "attest", "keygen", "--format", "json", "--alg", "ES384", "--out", "k.pem",
            ],
            json!({"error": "usage-error", "message": "invalid value 'ES384' for '--alg <ALG>'"}),
        ),
    ];
    for (args, want) in cases {
        let o = confkube(&cwd, &args, &[]);
        assert_eq!(o.code, Some(2), "{args:?}: {}", o.stderr);
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {}", o.stdout);
        let got: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(got, want, "{args:?}");
        assert!(o.stderr.starts_with("error: "), "{args:?}: {}", o.stderr);
    }
    // Without --format json, standard output stays empty.
    let o = confkube(
        &cwd,
        &["quote", "verify", "/nonexistent/q", "--collateral", "/x"],
        &[],
    );
    assert_eq!((o.code, o.stdout.as_str()), (Some(2), ""));
}
