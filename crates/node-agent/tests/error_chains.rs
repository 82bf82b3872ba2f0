#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! DESIGN §7.5 for the node agent's errors: each message says what failed and exposes its
//! cause through `source()`, never both, so walking the chain never repeats a message (and
//! `Chain` still shows the cause).

use node_agent::Chain;
use node_agent::agent::AgentError;
use node_agent::plugin::{PluginError, RegisterError, unix_channel};
use node_agent::probe::{FixtureProbe, ProbeError};
use std::error::Error;

/// Walks `source()` through the node agent's own `ours` links: none of their messages
/// contains its source's message (third-party links further down are their crates' business),
/// and the full chain shows `cause`.
fn check(err: &(dyn Error + 'static), ours: usize, cause: &str) {
    let mut link: &(dyn Error + 'static) = err;
    let mut depth = 0;
    while let Some(source) = link.source().filter(|_| depth < ours) {
        let (outer, inner) = (link.to_string(), source.to_string());
        assert!(
            !inner.is_empty() && !outer.contains(&inner),
            "\"{outer}\" repeats its source \"{inner}\""
        );
        link = source;
        depth += 1;
    }
    assert!(depth > 0, "{err} exposes no source");
    let text = Chain(err).to_string();
    assert!(text.contains(cause), "{text} lacks {cause}");
}

#[tokio::test]
async fn no_message_repeats_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent");

    let probe = FixtureProbe::open(&absent).unwrap_err();
    assert!(matches!(probe, ProbeError::Io { .. }));
    check(&probe, 1, "No such file or directory");
    let agent = AgentError::from(FixtureProbe::open(&absent).unwrap_err());
    check(&agent, 2, "No such file or directory");
    assert_eq!(
        Chain(&agent).to_string(),
        format!(
            "SGX discovery failed: cannot read {}: No such file or directory (os error 2)",
            absent.display()
        )
    );

    let proc = node_agent::procfs::scan(&absent).unwrap_err();
    check(&proc, 1, "No such file or directory");

    let socket = PluginError::Socket {
        path: absent.clone(),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    };
    check(&socket, 1, "permission denied");
    let metrics = AgentError::Metrics {
        addr: "127.0.0.1:1".parse().unwrap(),
        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    };
    check(&metrics, 1, "in use");

    let connect = RegisterError::Connect {
        path: absent.clone(),
        source: unix_channel(absent.clone()).await.unwrap_err(),
    };
    check(&connect, 1, "cannot connect to the kubelet");

    let Err(kubeconfig) = node_agent::patcher::client(Some(&absent)).await else {
        panic!("a missing kubeconfig is an error");
    };
    check(&kubeconfig, 1, "absent");
}
