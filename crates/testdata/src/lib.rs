//! Test-only helper: finds the shared, real test data (`../shared/testdata`).
//!
//! The directory comes from `CONFKUBE_TESTDATA`, defaulting to `../shared/testdata` relative to
//! the workspace root. When it is absent, data-driven tests print a notice and skip, unless
//! `CONFKUBE_REQUIRE_TESTDATA=1` (set by `.ci/run`), in which case they fail. The files are
//! never copied into this repository.
#![allow(clippy::panic)]

use std::path::{Path, PathBuf};

/// The test data root, or `None` (after printing a notice) when it is absent and not required.
///
/// # Panics
/// When the data is absent and `CONFKUBE_REQUIRE_TESTDATA=1`: in CI a missing data set is an
/// error, not a skip.
pub fn root() -> Option<PathBuf> {
    let dir = match std::env::var_os("CONFKUBE_TESTDATA") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata"),
    };
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    if std::env::var("CONFKUBE_REQUIRE_TESTDATA").as_deref() == Ok("1") {
        panic!(
            "test data not found at {} and CONFKUBE_REQUIRE_TESTDATA=1: set CONFKUBE_TESTDATA",
            dir.display()
        );
    }
    eprintln!(
        "notice: test data not found at {}; set CONFKUBE_TESTDATA to run the data-driven tests \
         (skipping)",
        dir.display()
    );
    None
}

/// A file below the test data root, or `None` when the data is absent (see [`root`]).
pub fn path(rel: &str) -> Option<PathBuf> {
    root().map(|r| r.join(rel))
}

/// Reads a file below the test data root, or `None` when the data is absent (see [`root`]).
///
/// # Panics
/// When the data root exists but the file cannot be read: that is a broken data set.
pub fn read(rel: &str) -> Option<Vec<u8>> {
    let p = path(rel)?;
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(e) => panic!("reading {}: {e}", p.display()),
    }
}
