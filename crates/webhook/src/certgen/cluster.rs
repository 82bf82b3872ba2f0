//! The API calls of certgen, around the pure functions of [`super`]: read the Secret and the
//! named webhook configurations, set `caBundle` on the configurations, then create or replace
//! the Secret when [`super::decide`] says so. The configurations are patched first so that the
//! API server trusts a new CA before the webhook can load a certificate signed by it. Writes
//! only what changes: a second run against a valid Secret and patched configurations sends only
//! GET requests.

use std::fmt::{self, Debug};
use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
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
    skip_missing: bool,
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
            skip_missing: false,
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

    /// Whether a named webhook configuration that does not exist is skipped (logged, listed in
    /// [`Outcome::skipped`]) instead of failing with [`CertgenError::NotFound`]; for a
    /// pre-install hook, which runs before the configurations are created.
    pub fn with_skip_missing_webhooks(mut self, skip: bool) -> Self {
        self.skip_missing = skip;
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

/// A webhook configuration that does not exist and was skipped (`--skip-missing-webhooks`).
/// Displays as the log line: `<kind> <name> does not exist yet; skipped
/// (--skip-missing-webhooks)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSkipped {
    /// Its kind.
    pub kind: WebhookKind,
    /// Its name.
    pub name: String,
}

impl fmt::Display for WebhookSkipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} does not exist yet; skipped (--skip-missing-webhooks)",
            self.kind.resource(),
            self.name
        )
    }
}

/// What one certgen run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The Secret.
    pub secret: SecretAction,
    /// The webhook configurations that exist, mutating first, in the order given.
    pub webhooks: Vec<WebhookPatched>,
    /// The ones that do not exist and were skipped, in the same order.
    pub skipped: Vec<WebhookSkipped>,
}

/// Why certgen failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertgenError {
    /// `--kubeconfig` cannot be read (a usage error).
    #[error("Kubernetes client configuration: cannot read --kubeconfig {}", path.display())]
    KubeconfigRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `--kubeconfig` cannot be used (a usage error).
    #[error("Kubernetes client configuration: {}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: kube::config::KubeconfigError,
    },
    /// No `--kubeconfig`, none in the environment and no pod service account (a usage error).
    #[error(
        "Kubernetes client configuration: no kubeconfig and not running in a pod; pass \
         --kubeconfig"
    )]
    Infer {
        /// The cause.
        source: kube::config::InferConfigError,
    },
    /// The client could not be built from the configuration (a usage error).
    #[error("Kubernetes client configuration")]
    Client {
        /// The cause.
        source: kube::Error,
    },
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
    #[error("{object}")]
    Issue {
        /// The object.
        object: String,
        /// The cause.
        #[source]
        error: IssueError,
    },
}

impl CertgenError {
    /// Whether this is a usage error (bad `--kubeconfig`, no cluster to talk to).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::KubeconfigRead { .. }
                | Self::Kubeconfig { .. }
                | Self::Infer { .. }
                | Self::Client { .. }
        )
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
/// pod's service account, like kubectl (`kube_sgx::client`, the constructor the node agent
/// uses).
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, CertgenError> {
    use kube_sgx::client::ClientError;
    kube_sgx::client::client(kubeconfig)
        .await
        .map_err(|e| match e {
            ClientError::Kubeconfig {
                path,
                source: kube::config::KubeconfigError::ReadConfig(source, _),
            } => CertgenError::KubeconfigRead { path, source },
            ClientError::Kubeconfig { path, source } => CertgenError::Kubeconfig { path, source },
            ClientError::NoConfig { source } => CertgenError::Infer { source },
            ClientError::Client { source } => CertgenError::Client { source },
        })
}

/// Makes sure the Secret holds a certificate valid for the Service and that the named webhook
/// configurations' `caBundle` is its `ca.crt`. `now` decides expiry and starts new
/// certificates.
///
/// Requests, in order: GET the Secret; GET each configuration (mutating first, in the order
/// given) and plan its patch; PATCH the configurations whose `caBundle` differs; then, when a new
/// certificate was issued, create or replace the Secret. A missing configuration (unless
/// skipped) or one without a webhook for the Service fails the run before anything is written.
pub async fn run(
    client: &kube::Client,
    opts: &CertgenOptions,
    now: OffsetDateTime,
) -> Result<Outcome, CertgenError> {
    let target = SecretTarget::new(client, opts);
    let plan = plan_secret(&target, opts, now).await?;
    let configs = opts
        .mutating
        .iter()
        .map(|name| (WebhookKind::Mutating, name))
        .chain(
            opts.validating
                .iter()
                .map(|name| (WebhookKind::Validating, name)),
        );
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    for (kind, name) in configs {
        match plan_ca_bundle(client, kind, name, &opts.name, &plan.ca_pem).await? {
            Some(p) => planned.push(p),
            None if opts.skip_missing => {
                let skip = WebhookSkipped {
                    kind,
                    name: name.clone(),
                };
                tracing::info!("{skip}");
                skipped.push(skip);
            }
            None => {
                return Err(CertgenError::NotFound {
                    object: format!("{} {name}", kind.resource()),
                    flag: kind.flag(),
                    name: name.clone(),
                });
            }
        }
    }
    // caBundle is patched before the Secret is written. A new ca.crt lists the new CA first and
    // the previous one after it, so once patched the API server trusts both the certificate the
    // webhook serves now and the one it will load from the new Secret: the webhook cannot serve a
    // certificate the API server does not trust yet. If writing the Secret fails after the
    // patch, the state is still safe: the bundle still holds the previous CA, which signed the
    // certificate the webhook keeps serving, and the next run issues and patches again.
    let mut webhooks = Vec::new();
    for p in planned {
        webhooks.push(apply_ca_bundle(client, p).await?);
    }
    let secret = write_secret(&target, plan.write).await?;
    Ok(Outcome {
        secret,
        webhooks,
        skipped,
    })
}

/// The Secret certgen works on.
struct SecretTarget {
    api: Api<Secret>,
    namespace: String,
    name: String,
    /// `secret NS/NAME`.
    object: String,
}

impl SecretTarget {
    fn new(client: &kube::Client, opts: &CertgenOptions) -> Self {
        let namespace = opts.name.namespace().to_owned();
        let name = opts.secret.clone();
        Self {
            api: Api::namespaced(client.clone(), &namespace),
            object: format!("secret {namespace}/{name}"),
            namespace,
            name,
        }
    }

    fn api_err(&self, verb: &'static str) -> impl FnOnce(kube::Error) -> CertgenError + use<> {
        let object = self.object.clone();
        let ns = self.namespace.clone();
        move |error| CertgenError::Api {
            hint: format!(
                "the service account needs {verb} on secrets in namespace {ns}; {RBAC_DOC}"
            ),
            object,
            verb,
            error,
        }
    }
}

/// What to do with the Secret, decided from what was read.
struct SecretPlan {
    /// The `ca.crt` the webhook configurations must carry: the kept one or the new one.
    ca_pem: Vec<u8>,
    write: SecretWrite,
}

enum SecretWrite {
    /// Valid: leave it alone.
    Keep { expires: OffsetDateTime },
    /// Missing: create it.
    Create {
        secret: Box<Secret>,
        not_after: OffsetDateTime,
    },
    /// Not reusable: replace its data.
    Replace {
        secret: Box<Secret>,
        reason: Reason,
        not_after: OffsetDateTime,
    },
}

/// Reads the Secret and, when it cannot be reused, issues the new certificate (not written yet).
async fn plan_secret(
    target: &SecretTarget,
    opts: &CertgenOptions,
    now: OffsetDateTime,
) -> Result<SecretPlan, CertgenError> {
    let existing = target
        .api
        .get_opt(&target.name)
        .await
        .map_err(target.api_err("get"))?;
    let data = existing.as_ref().and_then(|s| s.data.as_ref());
    let reason = match decide(data, &opts.name, opts.renew_before, now) {
        Decision::Reuse { expires } => {
            tracing::info!(
                secret = %format!("{}/{}", target.namespace, target.name), expires = %expires,
                "reusing the serving certificate"
            );
            let ca_pem = data
                .and_then(|d| d.get(CA_CRT))
                .map(|b| b.0.clone())
                .unwrap_or_default();
            return Ok(SecretPlan {
                ca_pem,
                write: SecretWrite::Keep { expires },
            });
        }
        Decision::Issue(reason) => reason,
    };
    if let Some(existing) = &existing {
        let found = existing.type_.as_deref().unwrap_or("Opaque");
        if found != SECRET_TYPE {
            return Err(CertgenError::SecretType {
                object: target.object.clone(),
                namespace: target.namespace.clone(),
                name: target.name.clone(),
                found: found.to_owned(),
            });
        }
    }
    let previous_ca = data.and_then(|d| d.get(CA_CRT)).map(|b| b.0.as_slice());
    let issued = issue(&opts.name, opts.validity, now, previous_ca).map_err(|error| {
        CertgenError::Issue {
            object: target.object.clone(),
            error,
        }
    })?;
    let ca_pem = issued.ca_pem.clone().into_bytes();
    let exists = existing.is_some();
    let secret = Box::new(tls_secret(
        &target.namespace,
        &target.name,
        &issued,
        existing,
    ));
    let not_after = issued.not_after;
    let write = if exists {
        SecretWrite::Replace {
            secret,
            reason,
            not_after,
        }
    } else {
        SecretWrite::Create { secret, not_after }
    };
    Ok(SecretPlan { ca_pem, write })
}

async fn write_secret(
    target: &SecretTarget,
    write: SecretWrite,
) -> Result<SecretAction, CertgenError> {
    let params = PostParams::default();
    let secret = format!("{}/{}", target.namespace, target.name);
    match write {
        SecretWrite::Keep { expires } => Ok(SecretAction::Reused { expires }),
        SecretWrite::Create {
            secret: new,
            not_after,
        } => {
            target
                .api
                .create(&params, &new)
                .await
                .map_err(target.api_err("create"))?;
            tracing::info!(%secret, %not_after, "created the serving certificate");
            Ok(SecretAction::Created)
        }
        SecretWrite::Replace {
            secret: new,
            reason,
            not_after,
        } => {
            target
                .api
                .replace(&target.name, &params, &new)
                .await
                .map_err(target.api_err("update"))?;
            tracing::info!(%secret, %reason, %not_after, "replaced the serving certificate");
            Ok(SecretAction::Replaced(reason))
        }
    }
}

/// The patch planned for one webhook configuration.
struct PlannedPatch {
    done: WebhookPatched,
    /// `None` when every matching webhook already has the bundle.
    patch: Option<json_patch::Patch>,
}

fn config_err(
    kind: WebhookKind,
    name: &str,
    verb: &'static str,
) -> impl FnOnce(kube::Error) -> CertgenError + use<> {
    let resource = kind.resource();
    let object = format!("{resource} {name}");
    let hint = format!(
        "the service account needs {verb} on {resource}s (resourceNames: {name}); {RBAC_DOC}"
    );
    move |error| CertgenError::Api {
        hint,
        object,
        verb,
        error,
    }
}

/// Reads the configuration and plans its `caBundle` patch; `None` when it does not exist.
async fn plan_ca_bundle(
    client: &kube::Client,
    kind: WebhookKind,
    name: &str,
    service: &ServiceName,
    ca_pem: &[u8],
) -> Result<Option<PlannedPatch>, CertgenError> {
    let object = format!("{} {name}", kind.resource());
    let value = get_json(client, kind, name).await?;
    let Some(value) = value else {
        return Ok(None);
    };
    let plan = ca_bundle_patch(&value, service.namespace(), service.service(), ca_pem).map_err(
        |unmatched| CertgenError::NoMatchingWebhook {
            object: object.clone(),
            service: format!("{}/{}", service.namespace(), service.service()),
            calls: unmatched.calls,
        },
    )?;
    let patch = plan.ops;
    Ok(Some(PlannedPatch {
        done: WebhookPatched {
            kind,
            name: name.to_owned(),
            matched: plan.matched,
            changed: plan.changed,
        },
        patch,
    }))
}

/// GETs a webhook configuration as JSON (everything but `metadata`, as the API server sent
/// it, so the patch is planned against exactly those bytes); `None` when it does not exist.
async fn get_json(
    client: &kube::Client,
    kind: WebhookKind,
    name: &str,
) -> Result<Option<serde_json::Value>, CertgenError> {
    let resource = match kind {
        WebhookKind::Mutating => ApiResource::erase::<MutatingWebhookConfiguration>(&()),
        WebhookKind::Validating => ApiResource::erase::<ValidatingWebhookConfiguration>(&()),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let config = api
        .get_opt(name)
        .await
        .map_err(config_err(kind, name, "get"))?;
    Ok(config.map(|c| c.data))
}

/// Sends the planned patch, if any.
async fn apply_ca_bundle(
    client: &kube::Client,
    planned: PlannedPatch,
) -> Result<WebhookPatched, CertgenError> {
    let PlannedPatch { done, patch } = planned;
    let object = format!("{} {}", done.kind.resource(), done.name);
    let Some(patch) = patch else {
        tracing::info!(%object, webhooks = done.matched, "caBundle up to date");
        return Ok(done);
    };
    match done.kind {
        WebhookKind::Mutating => {
            patch_json::<MutatingWebhookConfiguration>(client, done.kind, &done.name, patch).await
        }
        WebhookKind::Validating => {
            patch_json::<ValidatingWebhookConfiguration>(client, done.kind, &done.name, patch).await
        }
    }?;
    tracing::info!(%object, webhooks = done.changed, "caBundle set");
    Ok(done)
}

async fn patch_json<K>(
    client: &kube::Client,
    kind: WebhookKind,
    name: &str,
    patch: json_patch::Patch,
) -> Result<(), CertgenError>
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::all(client.clone());
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(config_err(kind, name, "patch"))?;
    Ok(())
}
