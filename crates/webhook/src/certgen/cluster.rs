//! The API calls of certgen, around the pure functions of [`super`]: read the Secret, create
//! or replace it when [`super::decide`] says so, then set `caBundle` on the named webhook
//! configurations. Writes only what changes: a second run against a valid Secret and patched
//! configurations sends only GET requests.

use std::fmt::Debug;
use std::path::Path;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

use super::{
    CA_CRT, Decision, IssueError, Reason, SECRET_TYPE, ServiceName, ca_bundle_patch, decide, issue,
    tls_secret,
};

/// Where the RBAC that certgen needs is described.
const RBAC_DOC: &str = "see \"Certificates\" in docs/webhook.md";

/// What certgen works on.
#[derive(Debug, Clone)]
pub struct CertgenOptions {
    name: ServiceName,
    secret: String,
    mutating: Vec<String>,
    validating: Vec<String>,
    validity: Duration,
    renew_before: Duration,
}

impl CertgenOptions {
    /// The Secret `secret` in the Service's namespace, for the Service `name`; certificates
    /// valid for 3650 days, renewed 30 days before they expire; no webhook configurations.
    pub fn new(name: ServiceName, secret: impl Into<String>) -> Self {
        Self {
            name,
            secret: secret.into(),
            mutating: Vec::new(),
            validating: Vec::new(),
            validity: Duration::days(3650),
            renew_before: Duration::days(30),
        }
    }

    /// MutatingWebhookConfigurations whose `caBundle` to set.
    pub fn with_mutating_webhooks(mut self, names: Vec<String>) -> Self {
        self.mutating = names;
        self
    }

    /// ValidatingWebhookConfigurations whose `caBundle` to set.
    pub fn with_validating_webhooks(mut self, names: Vec<String>) -> Self {
        self.validating = names;
        self
    }

    /// Lifetime of new certificates.
    pub fn with_validity(mut self, validity: Duration) -> Self {
        self.validity = validity;
        self
    }

    /// A certificate expiring within this window is replaced.
    pub fn with_renew_before(mut self, renew_before: Duration) -> Self {
        self.renew_before = renew_before;
        self
    }
}

/// Which kind of webhook configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookKind {
    /// `MutatingWebhookConfiguration`.
    Mutating,
    /// `ValidatingWebhookConfiguration`.
    Validating,
}

impl WebhookKind {
    /// The resource name in kubectl's singular form.
    pub fn resource(self) -> &'static str {
        match self {
            Self::Mutating => "mutatingwebhookconfiguration",
            Self::Validating => "validatingwebhookconfiguration",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Self::Mutating => "--mutating-webhook",
            Self::Validating => "--validating-webhook",
        }
    }
}

/// What happened to the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretAction {
    /// It was valid and left alone.
    Reused {
        /// When its certificate stops being valid.
        expires: OffsetDateTime,
    },
    /// It did not exist and was created.
    Created,
    /// It was replaced, for this reason.
    Replaced(Reason),
}

/// What happened to one webhook configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPatched {
    /// Its kind.
    pub kind: WebhookKind,
    /// Its name.
    pub name: String,
    /// How many of its webhooks call the Service.
    pub matched: usize,
    /// How many of them got the new `caBundle` (0: nothing was written).
    pub changed: usize,
}

/// What one certgen run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The Secret.
    pub secret: SecretAction,
    /// The webhook configurations, mutating first, in the order given.
    pub webhooks: Vec<WebhookPatched>,
}

/// Why certgen failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertgenError {
    /// No usable cluster configuration (a usage error).
    #[error("Kubernetes client configuration: {0}")]
    Config(String),
    /// The API server refused or failed a request.
    #[error("{object}: {verb}: {}{}", api_cause(.error), hint_suffix(.error, .hint))]
    Api {
        /// The object, e.g. `secret confkube/confkube-webhook`.
        object: String,
        /// The request, e.g. `get`.
        verb: &'static str,
        /// What the client reported.
        error: kube::Error,
        /// What to do on HTTP 403.
        hint: String,
    },
    /// A webhook configuration named on the command line does not exist.
    #[error(
        "{object} not found; create it before running certgen (run certgen as a post-install \
         and post-upgrade hook), or drop {flag} {name}"
    )]
    NotFound {
        /// The object, e.g. `mutatingwebhookconfiguration confkube-sgx`.
        object: String,
        /// The flag that named it.
        flag: &'static str,
        /// Its name.
        name: String,
    },
    /// A webhook configuration has no webhook calling the Service.
    #[error(
        "{object}: no webhook calls service {service} (its webhooks call: {}); check --namespace \
         and --service",
        if calls.is_empty() { "none".to_owned() } else { calls.join(", ") }
    )]
    NoMatchingWebhook {
        /// The object.
        object: String,
        /// `namespace/name` of the Service.
        service: String,
        /// What each webhook calls instead.
        calls: Vec<String>,
    },
    /// The Secret exists with another type, which cannot be changed.
    #[error(
        "{object} has type {found}, not kubernetes.io/tls, and a Secret's type cannot change; \
         delete it (kubectl -n {namespace} delete secret {name}) or pass another --secret"
    )]
    SecretType {
        /// The object.
        object: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its type.
        found: String,
    },
    /// The certificate could not be generated.
    #[error("{object}: {error}")]
    Issue {
        /// The object.
        object: String,
        /// The cause.
        error: IssueError,
    },
    /// A patch could not be encoded (a bug).
    #[error("{object}: cannot encode the patch: {message}")]
    Internal {
        /// The object.
        object: String,
        /// The cause.
        message: String,
    },
}

impl CertgenError {
    /// Whether this is a usage error (bad `--kubeconfig`, no cluster to talk to).
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Config(_))
    }
}

/// `NotFound` → `not found`.
fn reason_words(reason: &str) -> String {
    let mut out = String::new();
    for (i, ch) in reason.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

fn api_cause(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let what = if status.reason.is_empty() {
                format!("HTTP {}", status.code)
            } else {
                reason_words(&status.reason)
            };
            if status.message.is_empty() {
                what
            } else {
                format!("{what}: {}", status.message)
            }
        }
        other => {
            let mut text = format!("cannot reach the API server: {other}");
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

fn hint_suffix(error: &kube::Error, hint: &str) -> String {
    match error {
        kube::Error::Api(status) => match status.code {
            403 => format!("; {hint}"),
            401 => "; the API server rejected the credentials: check --kubeconfig or the \
                    service account token"
                .to_owned(),
            409 | 422 => "; the object changed while certgen ran: run it again".to_owned(),
            _ => String::new(),
        },
        _ => "; check --kubeconfig and that the API server is reachable".to_owned(),
    }
}

/// A kube client from `kubeconfig`; without one, from `$KUBECONFIG`, `~/.kube/config` or the
/// pod's service account, like kubectl.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, CertgenError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                CertgenError::Config(match e {
                    kube::config::KubeconfigError::ReadConfig(io, _) => {
                        format!("cannot read --kubeconfig {}: {io}", path.display())
                    }
                    other => format!("{}: {other}", path.display()),
                })
            })?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| CertgenError::Config(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer().await.map_err(|e| {
            CertgenError::Config(format!(
                "no kubeconfig and not running in a pod ({e}); pass --kubeconfig"
            ))
        })?,
    };
    kube::Client::try_from(config).map_err(|e| CertgenError::Config(e.to_string()))
}

/// Makes sure the Secret holds a certificate valid for the Service, then sets `caBundle` on
/// the webhook configurations. `now` decides expiry and starts new certificates.
pub async fn run(
    client: &kube::Client,
    opts: &CertgenOptions,
    now: OffsetDateTime,
) -> Result<Outcome, CertgenError> {
    let (ca_pem, secret) = ensure_secret(client, opts, now).await?;
    let mut webhooks = Vec::new();
    for name in &opts.mutating {
        webhooks.push(
            set_ca_bundle::<MutatingWebhookConfiguration>(
                client,
                WebhookKind::Mutating,
                name,
                &opts.name,
                &ca_pem,
            )
            .await?,
        );
    }
    for name in &opts.validating {
        webhooks.push(
            set_ca_bundle::<ValidatingWebhookConfiguration>(
                client,
                WebhookKind::Validating,
                name,
                &opts.name,
                &ca_pem,
            )
            .await?,
        );
    }
    Ok(Outcome { secret, webhooks })
}

async fn ensure_secret(
    client: &kube::Client,
    opts: &CertgenOptions,
    now: OffsetDateTime,
) -> Result<(Vec<u8>, SecretAction), CertgenError> {
    let ns = opts.name.namespace();
    let name = opts.secret.as_str();
    let object = format!("secret {ns}/{name}");
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let api_err = |verb: &'static str| {
        let object = object.clone();
        move |error| CertgenError::Api {
            hint: format!(
                "the service account needs {verb} on secrets in namespace {ns}; {RBAC_DOC}"
            ),
            object,
            verb,
            error,
        }
    };
    let existing = api.get_opt(name).await.map_err(api_err("get"))?;
    let data = existing.as_ref().and_then(|s| s.data.as_ref());
    let reason = match decide(data, &opts.name, opts.renew_before, now) {
        Decision::Reuse { expires } => {
            tracing::info!(secret = %format!("{ns}/{name}"), expires = %expires, "reusing the serving certificate");
            let ca = data
                .and_then(|d| d.get(CA_CRT))
                .map(|b| b.0.clone())
                .unwrap_or_default();
            return Ok((ca, SecretAction::Reused { expires }));
        }
        Decision::Issue(reason) => reason,
    };
    if let Some(existing) = &existing {
        let found = existing.type_.as_deref().unwrap_or("Opaque");
        if found != SECRET_TYPE {
            return Err(CertgenError::SecretType {
                object,
                namespace: ns.to_owned(),
                name: name.to_owned(),
                found: found.to_owned(),
            });
        }
    }
    let previous_ca = data.and_then(|d| d.get(CA_CRT)).map(|b| b.0.as_slice());
    let issued = issue(&opts.name, opts.validity, now, previous_ca).map_err(|error| {
        CertgenError::Issue {
            object: object.clone(),
            error,
        }
    })?;
    let ca_pem = issued.ca_pem.clone().into_bytes();
    let exists = existing.is_some();
    let secret = tls_secret(ns, name, &issued, existing);
    let params = PostParams::default();
    let action = if exists {
        api.replace(name, &params, &secret)
            .await
            .map_err(api_err("update"))?;
        SecretAction::Replaced(reason)
    } else {
        api.create(&params, &secret)
            .await
            .map_err(api_err("create"))?;
        SecretAction::Created
    };
    match &action {
        SecretAction::Replaced(reason) => tracing::info!(
            secret = %format!("{ns}/{name}"), %reason, not_after = %issued.not_after,
            "replaced the serving certificate"
        ),
        _ => tracing::info!(
            secret = %format!("{ns}/{name}"), not_after = %issued.not_after,
            "created the serving certificate"
        ),
    }
    Ok((ca_pem, action))
}

async fn set_ca_bundle<K>(
    client: &kube::Client,
    kind: WebhookKind,
    name: &str,
    service: &ServiceName,
    ca_pem: &[u8],
) -> Result<WebhookPatched, CertgenError>
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize,
{
    let resource = kind.resource();
    let object = format!("{resource} {name}");
    let api: Api<K> = Api::all(client.clone());
    let api_err = |verb: &'static str| {
        let object = object.clone();
        move |error| CertgenError::Api {
            hint: format!(
                "the service account needs {verb} on {resource}s (resourceNames: {name}); \
                 {RBAC_DOC}"
            ),
            object,
            verb,
            error,
        }
    };
    let Some(config) = api.get_opt(name).await.map_err(api_err("get"))? else {
        return Err(CertgenError::NotFound {
            object,
            flag: kind.flag(),
            name: name.to_owned(),
        });
    };
    let internal = |e: serde_json::Error| CertgenError::Internal {
        object: object.clone(),
        message: e.to_string(),
    };
    let value = serde_json::to_value(&config).map_err(internal)?;
    let plan = ca_bundle_patch(&value, service.namespace(), service.service(), ca_pem).map_err(
        |unmatched| CertgenError::NoMatchingWebhook {
            object: object.clone(),
            service: format!("{}/{}", service.namespace(), service.service()),
            calls: unmatched.calls,
        },
    )?;
    let done = WebhookPatched {
        kind,
        name: name.to_owned(),
        matched: plan.matched,
        changed: plan.changed,
    };
    let Some(ops) = plan.ops else {
        tracing::info!(%object, webhooks = plan.matched, "caBundle up to date");
        return Ok(done);
    };
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(internal)?;
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(api_err("patch"))?;
    tracing::info!(%object, webhooks = plan.changed, "caBundle set");
    Ok(done)
}
