//! The one Kubernetes client constructor of confkube (the node agent's node patcher and the
//! webhook's certgen), behind the `client` feature: the only IO in this crate.
//!
//! With a kubeconfig file, that file; without one, what kubectl does: `$KUBECONFIG`, then
//! `~/.kube/config`, then the pod's service account (`kube::Config::infer`). Errors keep the
//! kube error as their `source`.

use std::path::{Path, PathBuf};

/// Why no client could be built. Exhaustive on purpose: callers map each cause to their own
/// error and exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file cannot be read or used.
    #[error("kubeconfig {}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The cause (`KubeconfigError::ReadConfig` when the file cannot be read).
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig was given, none is in the environment and there is no pod service account.
    #[error("no kubeconfig and not running in a pod")]
    NoConfig {
        /// The cause.
        #[source]
        source: kube::config::InferConfigError,
    },
    /// The client could not be built from the configuration.
    #[error("building the Kubernetes client")]
    Client {
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// A client from `kubeconfig`; without one, from `$KUBECONFIG`, `~/.kube/config` or the pod's
/// service account, like kubectl.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let err = |source| ClientError::Kubeconfig {
                path: path.to_owned(),
                source,
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(err)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(err)?
        }
        None => kube::Config::infer()
            .await
            .map_err(|source| ClientError::NoConfig { source })?,
    };
    kube::Client::try_from(config).map_err(|source| ClientError::Client { source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn unreadable_and_unusable_kubeconfigs() {
        let missing = Path::new("/nonexistent/kubeconfig");
        let Err(e) = client(Some(missing)).await else {
            panic!("a missing kubeconfig must be an error");
        };
        assert!(
            matches!(
                &e,
                ClientError::Kubeconfig {
                    source: kube::config::KubeconfigError::ReadConfig(..),
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "kubeconfig /nonexistent/kubeconfig");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("kubeconfig");
        std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").unwrap();
        let Err(e) = client(Some(&empty)).await else {
            panic!("a kubeconfig without a context must be an error");
        };
        assert!(matches!(&e, ClientError::Kubeconfig { .. }), "{e:?}");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[tokio::test]
    async fn a_kubeconfig_gives_a_client() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    \
             server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: k\n    \
             user: u\nusers:\n- name: u\n  user: {}\n",
        )
        .unwrap();
        let c = client(Some(&path)).await.unwrap();
        assert_eq!(c.default_namespace(), "default");
    }
}
