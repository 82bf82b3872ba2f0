#!/usr/bin/env python3
"""Offline checks of the Helm chart deploy/helm/confkube (run by scripts/test.sh).

1. Lint the chart and render it (Helm's own Go engine, through the PyPI package
   helm-python-sdk: no helm binary, no cluster) with the default values and every value set
   under deploy/values/.
2. Validate every rendered object against the Kubernetes OpenAPI schemas offline
   (kubernetes-validate --strict, for the oldest and newest Kubernetes the chart supports);
   cert-manager and Prometheus Operator objects against the subset schemas in
   deploy/tests/crd-schemas/.
3. Check what the chart promises (deploy/tests/expectations below): security contexts, RBAC,
   device mounts, webhook selectors, HA wiring.
4. Run the real binary on every confkube command line the chart renders, with --help appended:
   clap rejects unknown flags and bad values before it prints help, so each rendered flag must
   exist and parse. A deliberately wrong flag must fail (the check can fail).
   Then start the rendered attestation service and webhook for real (each volume replaced by a
   temporary directory with fitting content, the listen address moved to loopback) and wait for
   /readyz: flag combinations that parse but conflict, or files a flag expects, are caught too.
5. Render each file in deploy/tests/bad-values/ and expect the error its first line names.
6. The Dockerfile (no Docker engine runs here): every COPY source exists and passes
   .dockerignore, the build stage's Rust matches the workspace's rust-version, and the image's
   user is the non-root uid the chart runs as; the binary links only libraries the distroless
   "cc" base has (glibc, libm, libgcc_s).
7. The webhooks' CEL matchConditions, evaluated (cel-python) on pods that must and must not
   reach the webhook: every EPC spelling in limits, requests or init containers; ordinary pods,
   pods without resources, pods with only sgx.intel.com/enclave.
8. Monitoring and autoscaling: promtool unit tests of the chart's rules
   (deploy/tests/rules-test.yaml); every PromQL expression of the Grafana dashboard and the
   prometheus-adapter rules parses and names only metrics that exist (recorded by the rules, or
   documented in docs/); the HPA example validates against the Kubernetes schemas.

Usage: scripts/chart-check.py --binary target/debug/confkube [--out target/chart-render]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "confkube"
VALUE_SETS = ROOT / "deploy" / "values"
BAD_VALUES = ROOT / "deploy" / "tests" / "bad-values"
CRD_SCHEMAS = ROOT / "deploy" / "tests" / "crd-schemas"
AUTOSCALING = ROOT / "deploy" / "autoscaling"
DASHBOARD = CHART / "dashboards" / "confkube.json"
RULES = CHART / "rules" / "confkube-rules.yaml"
KUBE_VERSIONS = ["1.30.0", "1.37.0"]
RELEASE, NAMESPACE = "confkube", "confkube"

failures: list[str] = []


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"  FAIL {msg}")


def need(cond: bool, msg: str) -> None:
    if not cond:
        fail(msg)


def load_yaml_docs(text: str) -> list[dict]:
    import yaml

    return [d for d in yaml.safe_load_all(text) if d]


def render(values: dict | None):
    import helm_python as helm

    chart = helm.Chart.load(CHART)
    out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path in sorted(out):
        if not path.endswith((".yaml", ".yml")):
            continue
        for d in load_yaml_docs(out[path]):
            d.setdefault("metadata", {})
            docs.append((path, d))
    return docs


def crd_validate(doc: dict) -> str | None:
    """Validates a cert-manager / Prometheus Operator object against deploy/tests/crd-schemas."""
    import jsonschema

    group = doc["apiVersion"].split("/")[0]
    path = CRD_SCHEMAS / f"{group}_{doc['kind'].lower()}.json"
    if not path.exists():
        return f"no schema for {doc['apiVersion']} {doc['kind']} in {CRD_SCHEMAS}"
    schema = json.loads(path.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
    if errors:
        e = errors[0]
        return f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
    return None


def validate(docs) -> None:
    import kubernetes_validate as kv

    for path, d in docs:
        ident = f"{d.get('kind')} {d['metadata'].get('name')} ({path})"
        group = d.get("apiVersion", "").split("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            err = crd_validate(d)
            need(err is None, f"{ident}: {err}")
            continue
        for v in KUBE_VERSIONS:
            try:
                kv.validate(d, v, strict=True)
            except kv.ValidationError as e:
                fail(f"{ident} invalid for Kubernetes {v}: {e.message} at {list(e.path)}")
            except kv.SchemaNotFoundError:
                fail(f"{ident}: no Kubernetes {v} schema for {d.get('apiVersion')} {d.get('kind')}")


def pod_specs(docs):
    for path, d in docs:
        spec = d.get("spec", {})
        if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
            yield d, spec["template"]["spec"]
        elif d["kind"] == "Pod":
            yield d, spec


def containers(docs):
    for d, ps in pod_specs(docs):
        for c in ps.get("initContainers", []) + ps.get("containers", []):
            yield d, ps, c


def by_kind(docs, kind):
    return [d for _, d in docs if d["kind"] == kind]


def one(docs, kind, name):
    found = [d for _, d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    need(len(found) == 1, f"expected one {kind} {name}, found {len(found)}")
    return found[0] if found else {}


def args_of(docs, kind, name):
    d = one(docs, kind, name)
    if not d:
        return []
    return d["spec"]["template"]["spec"]["containers"][0]["args"]


def common_expectations(docs) -> None:
    for d, ps, c in containers(docs):
        ident = f"{d['kind']} {d['metadata']['name']} container {c['name']}"
        sc = c.get("securityContext", {})
        need(sc.get("readOnlyRootFilesystem") is True, f"{ident}: root filesystem not read-only")
        need(sc.get("allowPrivilegeEscalation") is False, f"{ident}: privilege escalation allowed")
        need(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{ident}: capabilities not dropped")
        need(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{ident}: no RuntimeDefault seccomp")
        need("privileged" not in sc or sc["privileged"] is False, f"{ident}: privileged")
        need("limits" in c.get("resources", {}) and "memory" in c["resources"]["limits"], f"{ident}: no memory limit")
        if d["metadata"]["name"].endswith(("node-agent", "aesmd")):
            continue  # root with no capabilities: they write root-owned host directories
        need(sc.get("runAsNonRoot") is True or ps.get("securityContext", {}).get("runAsNonRoot") is True,
             f"{ident}: may run as root")
    for d, ps in pod_specs(docs):
        need(not ps.get("hostNetwork"), f"{d['metadata']['name']}: hostNetwork")
        for v in ps.get("volumes", []):
            hp = v.get("hostPath")
            if hp and not d["metadata"]["name"].endswith(("node-agent", "aesmd")):
                fail(f"{d['metadata']['name']}: hostPath volume {v['name']}")
    # Every ServiceAccount the pods use exists; only the node agent and certgen talk to the API.
    sas = {d["metadata"]["name"] for d in by_kind(docs, "ServiceAccount")}
    for d, ps in pod_specs(docs):
        if d["kind"] == "Pod":  # the helm-test pod: the namespace's default account, no token
            need(ps.get("automountServiceAccountToken") is False, f"{d['metadata']['name']}: mounts a token")
            continue
        need(ps.get("serviceAccountName") in sas, f"{d['metadata']['name']}: unknown service account")
    # No wildcard in RBAC.
    for role in by_kind(docs, "ClusterRole") + by_kind(docs, "Role"):
        for rule in role.get("rules", []):
            for k in ("verbs", "resources", "apiGroups"):
                need("*" not in rule.get(k, []), f"{role['kind']} {role['metadata']['name']}: wildcard in {k}")
    na_rules = next((r["rules"] for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"] == "confkube-node-agent"), None)
    if na_rules is not None:
        grants = {(res, verb) for r in na_rules for res in r["resources"] for verb in r["verbs"]}
        need(grants == {("nodes", "get"), ("nodes", "patch"), ("nodes/status", "patch"),
                        ("pods", "get"), ("pods", "list"), ("pods", "watch"),
                        ("events", "create"), ("events", "patch")},
             f"node agent RBAC is not the documented least privilege: {sorted(grants)}")
    # Labels point at real objects: Services select pods of a workload.
    for svc in by_kind(docs, "Service"):
        sel = svc["spec"]["selector"]
        need(any(all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())
                 for d, _ in pod_specs(docs) if d["kind"] != "Pod"),
             f"Service {svc['metadata']['name']} selects no pod template")


def expect_default(docs) -> None:
    ds = one(docs, "DaemonSet", "confkube-node-agent")
    ps = ds["spec"]["template"]["spec"]
    terms = ps["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    keys = {e["key"] for t in terms for e in t["matchExpressions"]}
    need("sgx.intel.com/capable" in keys, "node agent not limited to SGX-capable nodes")
    vols = {v["name"]: v for v in ps["volumes"]}
    need(vols.get("sgx-enclave", {}).get("hostPath") == {"path": "/dev/sgx_enclave", "type": "CharDevice"},
         "node agent: /dev/sgx_enclave is not a CharDevice mount")
    need(vols.get("sgx-provision", {}).get("hostPath", {}).get("type") == "CharDevice", "node agent: no sgx_provision CharDevice")
    need(vols.get("device-plugins", {}).get("hostPath", {}).get("path") == "/var/lib/kubelet/device-plugins",
         "node agent: device-plugin dir not mounted")
    need(ps.get("hostPID") is True, "committed EPC needs hostPID")
    need(ps.get("nodeSelector") == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
         "node agent must stay on x86-64 Linux nodes")
    need(not any(d["metadata"]["name"].endswith("aesmd") for _, d in docs), "aesmd is opt-in")
    need(not by_kind(docs, "NetworkPolicy"), "NetworkPolicies are opt-in")
    smoke = one(docs, "Pod", "confkube-smoke")
    need(smoke.get("metadata", {}).get("annotations", {}).get("helm.sh/hook") == "test", "smoke pod is a helm test")
    services = {s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in by_kind(docs, "Service")}
    for c in smoke.get("spec", {}).get("containers", []):
        for url in [a for a in c["args"] if a.startswith("https://")]:
            m = re.match(r"https://([^.]+)\.confkube\.svc(?::(\d+))?/", url)
            need(bool(m) and m.group(1) in services and int(m.group(2) or 443) in services[m.group(1)],
                 f"helm test URL {url} does not match a Service port")
    c = ps["containers"][0]
    need(c["securityContext"]["capabilities"].get("add") == ["SYS_PTRACE"], "committed EPC needs exactly SYS_PTRACE")
    need(any(t.get("key") == "kubernetes.azure.com/scalesetpriority" for t in ps["tolerations"]), "spot pools not tolerated")
    # Webhook: 2 replicas, PDB, anti-affinity, both configurations, exclusions, CEL condition.
    wd = one(docs, "Deployment", "confkube-webhook")
    need(wd["spec"]["replicas"] == 2, "webhook must run 2 replicas by default")
    need("podAntiAffinity" in wd["spec"]["template"]["spec"]["affinity"], "webhook without anti-affinity")
    one(docs, "PodDisruptionBudget", "confkube-webhook")
    mw = one(docs, "MutatingWebhookConfiguration", "confkube-webhook")["webhooks"][0]
    vw = one(docs, "ValidatingWebhookConfiguration", "confkube-webhook")["webhooks"][0]
    need(mw["failurePolicy"] == "Fail" and vw["failurePolicy"] == "Ignore", "default failure policies")
    need(mw["clientConfig"]["service"]["path"] == "/mutate-pods", "mutating path")
    need(vw["clientConfig"]["service"]["path"] == "/validate-pods", "validating path")
    for w in (mw, vw):
        excl = w["namespaceSelector"]["matchExpressions"][0]
        need(excl["operator"] == "NotIn" and set(excl["values"]) >= {"kube-system", NAMESPACE},
             f"{w['name']}: kube-system and {NAMESPACE} not excluded")
        cond = w["matchConditions"][0]["expression"]
        for name in ("sgx.intel.com/epc", "sgx.intel.com/sgx_epc_mem_in_MiB", "kubernetes.azure.com/sgx_epc_mem_in_MiB"):
            need(f"'{name}'" in cond, f"{w['name']}: matchCondition misses {name}")
    # Without cert-manager: certgen hook Jobs create the Secret, then patch caBundle.
    pre = one(docs, "Job", "confkube-certgen-pre")
    post = one(docs, "Job", "confkube-certgen-post")
    need(pre["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade", "certgen pre hook")
    need(post["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade", "certgen post hook")
    pre_args = pre["spec"]["template"]["spec"]["containers"][0]["args"]
    for flag in ("--mutating-webhook=confkube-webhook", "--validating-webhook=confkube-webhook",
                 "--skip-missing-webhooks"):
        need(flag in pre_args, f"pre-upgrade certgen must patch caBundle before renewing: {flag} missing")
    post_args = post["spec"]["template"]["spec"]["containers"][0]["args"]
    need("--mutating-webhook=confkube-webhook" in post_args and "--validating-webhook=confkube-webhook" in post_args,
         "post-install certgen does not patch both configurations")
    need(not any(d["kind"] == "Certificate" for _, d in docs), "cert-manager objects without cert-manager")
    # Attestation: single instance on its embedded store (PVC), keys generated, policy via API.
    a = args_of(docs, "Deployment", "confkube-attest")
    need("--signing-key-dir=/keys" not in a and not any(x.startswith("--policy-file") for x in a),
         "single instance must use the embedded store for keys and policy")
    one(docs, "PersistentVolumeClaim", "confkube-attest-data")
    need(one(docs, "Deployment", "confkube-attest")["spec"]["strategy"]["type"] == "Recreate",
         "single instance must not run two writers of one store")
    need("--issuer=https://confkube-attest.confkube.svc" in a, "issuer default")
    need(not by_kind(docs, "ServiceMonitor") and not by_kind(docs, "PrometheusRule"),
         "monitoring objects rendered although the CRDs are unknown (auto)")


def expect_ha(docs) -> None:
    d = one(docs, "Deployment", "confkube-attest")
    need(d["spec"]["replicas"] == 3, "HA attestation replicas")
    a = d["spec"]["template"]["spec"]["containers"][0]["args"]
    for flag in ("--signing-key-dir=/keys", "--policy-file=/policy/policy.json",
                 "--config-reload-interval=10", "--issuer=https://attest.example.com",
                 "--pccs-ca-bundle=/pccs-ca/ca.crt"):
        need(flag in a, f"HA attestation misses {flag}")
    need(not any(x.startswith("--root-crl-url") for x in a), "empty rootCrlUrl must drop the flag")
    vols = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
    need(vols["keys"]["secret"]["secretName"] == "confkube-attest-keys", "keys Secret not mounted")
    for flag in ("--secrets-dir=/secrets", "--secrets-policy-file=/secret-policies/policies.json",
                 "--secrets-max-releases-per-token=3"):
        need(flag in a, f"HA attestation misses {flag}")
    need(vols["secrets"]["secret"]["secretName"] == "confkube-released-secrets", "released-secrets Secret not mounted")
    need(vols["secret-policies"]["configMap"]["name"] == "confkube-secret-policies", "secret policies ConfigMap not mounted")
    need("emptyDir" in vols["data"], "HA replicas must not share a PVC")
    need(not [x for x in by_kind(docs, "PersistentVolumeClaim")], "HA must not create a PVC")
    cm = one(docs, "ConfigMap", "confkube-attest-policy")
    policy = json.loads(cm["data"]["policy.json"])
    need(policy["rules"][0]["name"] == "payments" and policy["rules"][0]["min_isv_svn"] == 3,
         f"policy ConfigMap content: {policy}")
    one(docs, "PodDisruptionBudget", "confkube-attest")
    one(docs, "Ingress", "confkube-attest")
    need(len(by_kind(docs, "ServiceMonitor")) == 2 and len(by_kind(docs, "PodMonitor")) == 1, "monitors")
    pr = one(docs, "PrometheusRule", "confkube")
    need(any(r.get("record") == "confkube:pod_sgx_epc_committed_bytes" for g in pr["spec"]["groups"] for r in g["rules"]),
         "recording rule for EPC autoscaling missing")
    dash = one(docs, "ConfigMap", "confkube-dashboard")
    need(json.loads(dash["data"]["confkube.json"])["uid"] == "confkube", "dashboard ConfigMap")
    need(one(docs, "Deployment", "confkube-webhook")["spec"]["replicas"] == 3, "webhook replicas")
    ae = one(docs, "DaemonSet", "confkube-aesmd")["spec"]["template"]
    c = ae["spec"]["containers"][0]
    for k in ("limits", "requests"):
        r = c["resources"][k]
        need(r.get("sgx.intel.com/epc") == "1Mi" and r.get("sgx.intel.com/enclave") == "1"
             and r.get("sgx.intel.com/provision") == "1", f"aesmd {k} not normalized: {r}")
    need({"name": "aesmd-socket", "mountPath": "/var/run/aesmd"} in c["volumeMounts"], "aesmd socket mount")
    need(ae["metadata"]["annotations"]["sgx.intel.com/quote-provider"] == "aesmd", "aesmd annotation")
    need(one(docs, "Deployment", "confkube-webhook")["spec"]["template"]["spec"].get("priorityClassName")
         == "system-cluster-critical", "webhook priorityClassName")
    pols = {d["metadata"]["name"]: d["spec"] for d in by_kind(docs, "NetworkPolicy")}
    need(set(pols) == {"confkube-webhook", "confkube-attest", "confkube-node-agent", "confkube-aesmd"},
         f"network policies: {sorted(pols)}")
    if "confkube-webhook" in pols:
        w = pols["confkube-webhook"]
        need("Egress" in w["policyTypes"] and w["egress"] == [], "the webhook must have no egress at all")
    if "confkube-attest" in pols:
        at = pols["confkube-attest"]
        ports = {p["port"] for rule in at["egress"] for p in rule["ports"]}
        need(ports == {53, 443, 8081}, f"attestation egress ports {sorted(ports)}: DNS, 443 and the PCCS port")
        need(at["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {"attestation-client": "true"},
             "attestationFrom not applied")
        test_pod = one(docs, "Pod", "confkube-smoke")["metadata"]["labels"]
        need(any(all(test_pod.get(k) == v for k, v in peer.get("podSelector", {}).get("matchLabels", {}).items())
                 and "podSelector" in peer for peer in at["ingress"][0]["from"]),
             "the helm test pod cannot reach the attestation service through its NetworkPolicy")
    qcnl = one(docs, "ConfigMap", "confkube-aesmd")["data"]["sgx_default_qcnl.conf"]
    need("pccs.confkube.svc" in qcnl, f"aesmd qcnl configuration: {qcnl}")
    need("--max-epc-per-pod=256Mi" in args_of(docs, "Deployment", "confkube-webhook"), "max EPC flag")


def expect_cert_manager(docs) -> None:
    need(not by_kind(docs, "Job"), "certgen Jobs rendered although cert-manager is used")
    certs = {d["metadata"]["name"]: d for d in by_kind(docs, "Certificate")}
    need(set(certs) == {"confkube-webhook-tls", "confkube-attest-tls"}, f"certificates: {sorted(certs)}")
    need(certs["confkube-webhook-tls"]["spec"]["issuerRef"]["kind"] == "ClusterIssuer", "issuerRef not used")
    need("confkube-webhook.confkube.svc" in certs["confkube-webhook-tls"]["spec"]["dnsNames"], "webhook DNS name")
    need(not by_kind(docs, "Issuer"), "own issuer created although issuerRef is set")
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        ann = one(docs, kind, "confkube-webhook")["metadata"].get("annotations", {})
        need(ann.get("cert-manager.io/inject-ca-from") == "confkube/confkube-webhook-tls", f"{kind}: CA injection")


def expect_all_nodes(docs) -> None:
    ps = one(docs, "DaemonSet", "confkube-node-agent")["spec"]["template"]["spec"]
    need("affinity" not in ps, "allNodes must drop the SGX node affinity")
    need(not ps.get("hostPID"), "committedEpc=false must drop hostPID")
    need("add" not in ps["containers"][0]["securityContext"]["capabilities"], "committedEpc=false must add no capability")
    need(any(t.get("key") == "dedicated" for t in ps["tolerations"]) and
         any(t.get("key") == "cloud.google.com/gke-spot" for t in ps["tolerations"]), "extraTolerations must add to the defaults")
    need("--epc-size=94Mi" in ps["containers"][0]["args"], "epcSize flag")
    mw = one(docs, "MutatingWebhookConfiguration", "confkube-webhook")["webhooks"][0]
    need("matchConditions" not in mw and mw["failurePolicy"] == "Ignore", "sgxPodsOnly=false / Ignore")
    need(not by_kind(docs, "PodDisruptionBudget"), "no PDB for a single replica")
    a = args_of(docs, "Deployment", "confkube-attest")
    need("--collateral-dir=/collateral" in a and not any(x.startswith("--pccs-url") for x in a), "offline collateral")
    need("--allow-missing-crls" in a and "--signing-alg=RS256" in a and "--log-format=text" in a, "attestation flags")


def expect_existing(docs) -> None:
    for d, ps, c in containers(docs):
        if d["kind"] != "Pod":  # the helm-test pod runs tests.image
            need(c["image"].startswith("registry.example.com/confkube@sha256:"), f"image by digest: {c['image']}")
        need(ps.get("imagePullSecrets") == [{"name": "registry-example-com"}], "imagePullSecrets")
    names = {d["metadata"]["name"] for d in by_kind(docs, "Secret")}
    need("confkube-attest-admin" not in names, "admin Secret created although an existing one is named")
    d = one(docs, "Deployment", "confkube-attest")
    vols = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
    need(vols["tls"]["secret"]["secretName"] == "attest-tls", "existing TLS Secret")
    need(vols["policy"]["configMap"]["name"] == "attest-policy", "existing policy ConfigMap")
    need(vols["secrets-kek"]["secret"]["secretName"] == "attest-secrets-kek", "secrets KEK Secret")
    need("--secrets-kek-file=/secrets-kek/kek" in d["spec"]["template"]["spec"]["containers"][0]["args"],
         "--secrets-kek-file missing")
    need(not by_kind(docs, "ConfigMap"), "policy ConfigMap created although an existing one is named")
    pols = {d["metadata"]["name"]: d["spec"] for d in by_kind(docs, "NetworkPolicy")}
    need(set(pols) == {"confkube-webhook", "confkube-attest", "confkube-node-agent", "confkube-certgen"},
         f"network policies: {sorted(pols)}")
    for name, want in (("confkube-attest", {53, 443}), ("confkube-certgen", {53, 6443}),
                       ("confkube-node-agent", {53, 6443})):
        if name in pols:
            ports = {p["port"] for rule in pols[name]["egress"] for p in rule["ports"]}
            need(ports == want, f"{name} egress ports {sorted(ports)}, expected {sorted(want)}")
    pre = one(docs, "Job", "confkube-certgen-pre")
    need([c["name"] for c in pre["spec"]["template"]["spec"]["containers"]] == ["webhook"],
         "certgen must not generate a certificate for the attestation service when tls.existingSecret is set")


EXPECT = {"default": expect_default, "ha": expect_ha, "cert-manager": expect_cert_manager,
          "all-nodes": expect_all_nodes, "existing-secrets": expect_existing}


def _pod(containers=None, init=None):
    spec = {"containers": containers or [{"name": "app", "image": "app:1"}]}
    if init is not None:
        spec["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def _c(limits=None, requests=None):
    c = {"name": "c", "image": "app:1"}
    if limits is not None or requests is not None:
        c["resources"] = {k: v for k, v in (("limits", limits), ("requests", requests)) if v is not None}
    return c


# (description, pod, must reach the webhook)
MATCH_CASES = [
    ("the FAQ Job's pod (sgx.intel.com/sgx_epc_mem_in_MiB limit)", _pod([_c({"sgx.intel.com/sgx_epc_mem_in_MiB": "10"})]), True),
    ("canonical sgx.intel.com/epc limit", _pod([_c({"sgx.intel.com/epc": "10Mi"})]), True),
    ("AKS gen-1 alias in requests only", _pod([_c(requests={"kubernetes.azure.com/sgx_epc_mem_in_MiB": "10"})]), True),
    ("EPC in the second container", _pod([_c({"cpu": "1"}), _c({"sgx.intel.com/epc": "4Mi"})]), True),
    ("EPC only in an init container", _pod([_c()], init=[_c({"sgx.intel.com/epc": "4Mi"})]), True),
    ("ordinary pod with cpu/memory", _pod([_c({"cpu": "1", "memory": "1Gi"}, {"cpu": "500m"})]), False),
    ("pod without resources", _pod(), False),
    ("pod with empty resources and init containers", _pod([_c({}, {})], init=[_c()]), False),
    ("pod with only sgx.intel.com/enclave (no EPC: the webhook leaves it alone)", _pod([_c({"sgx.intel.com/enclave": "1"})]), False),
]


_CEL_SKIP_REPORTED: list = []


def check_match_conditions(docs, label: str) -> None:
    try:
        import celpy
    except ImportError:
        if os.environ.get("CI"):
            fail("cel-python is required in CI (pip install cel-python)")
        elif not _CEL_SKIP_REPORTED:
            _CEL_SKIP_REPORTED.append(True)
            print("   cel-python not installed (pip install cel-python==0.5.0): "
                  "webhook matchConditions check SKIPPED")
        return
    env = celpy.Environment()
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for cfg in by_kind(docs, kind):
            for w in cfg["webhooks"]:
                for mc in w.get("matchConditions", []):
                    prog = env.program(env.compile(mc["expression"]))
                    for desc, pod, want in MATCH_CASES:
                        got = bool(prog.evaluate({"object": celpy.json_to_cel(pod)}))
                        need(got == want, f"{label}: {w['name']} matchCondition {mc['name']}: {desc}: "
                                          f"{'sent to' if got else 'not sent to'} the webhook")


def check_flags(docs, binary: Path, label: str, repository: str) -> int:
    """Runs `confkube <rendered args> --help` for each confkube container; returns the count."""
    n = 0
    for d, ps, c in containers(docs):
        if not c["image"].startswith(repository):
            continue  # not the confkube image (aesmd)
        args = list(c.get("command", [])[1:]) + list(c.get("args", []))
        env = {e["name"]: "placeholder" for e in c.get("env", [])}
        # Kubernetes expands $(VAR) from the container's env; a real value is not needed for
        # parsing flag names, but the variable must be defined.
        for a in args:
            for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
                need(var in env, f"{label}: {d['metadata']['name']}/{c['name']}: $({var}) is not defined")
        r = subprocess.run([str(binary), *args, "--help"], capture_output=True, text=True,
                           env={**os.environ, **env}, timeout=30)
        need(r.returncode == 0,
             f"{label}: {d['kind']} {d['metadata']['name']}/{c['name']}: `confkube {' '.join(args)}` "
             f"is rejected by the binary: {r.stderr.strip()}")
        n += 1
    return n


# The http-guard limit flags and the chart values that pass them (attestation.limits,
# webhook.limits): the chart's defaults must be the binary's.
LIMIT_FLAGS = {
    "headerTimeout": "--header-timeout",
    "idleTimeout": "--idle-timeout",
    "tlsHandshakeTimeout": "--tls-handshake-timeout",
    "bodyTimeout": "--body-timeout",
    "maxConnections": "--max-connections",
    "bodyLimit": "--body-limit",
}
LIMIT_COMMANDS = {"attestation": ["attest", "serve"], "webhook": ["webhook"]}


def help_defaults(help_text: str, server: str) -> dict[str, str]:
    """`[default: X]` of each limit flag in clap's long help; `--body-timeout` names one default
    per server ("[default: 30s for attest serve, 10s for the webhook]")."""
    out = {}
    for key, flag in LIMIT_FLAGS.items():
        m = re.search(re.escape(flag) + r" <[A-Z_]+>\n(.*?)(?=\n {2,6}-|\Z)", help_text, re.S)
        d = re.search(r"\[default: ([^\]]+)\]", m.group(1)) if m else None
        if d is None:
            continue
        value = d.group(1)
        per = dict((w, v) for v, w in re.findall(r"(\S+) for (attest serve|the webhook)", value))
        if per:
            value = per.get("attest serve" if server == "attestation" else "the webhook", value)
        out[key] = value
    return out


def limit_mismatches(server: str, values: dict, defaults: dict[str, str]) -> list[str]:
    bad = []
    for key, flag in LIMIT_FLAGS.items():
        want = defaults.get(key)
        have = values.get(key)
        if want is None:
            bad.append(f"{server}: the binary's help shows no default for {flag}")
        elif str(have) != want:
            bad.append(f"{server}.limits.{key} is {have!r}, the binary's {flag} default is {want!r}")
    return bad


def check_limit_defaults(binary: Path, docs) -> None:
    import yaml

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for server, cmd in LIMIT_COMMANDS.items():
        r = subprocess.run([str(binary), *cmd, "--help"], capture_output=True, text=True, timeout=30)
        defaults = help_defaults(r.stdout, server)
        limits = values[server].get("limits", {})
        for m in limit_mismatches(server, limits, defaults):
            fail(m)
        # The check can fail: a changed value is reported.
        need(limit_mismatches(server, {**limits, "maxConnections": 7}, defaults) != [],
             f"{server}: the limit-defaults check cannot fail")
        # The default render passes every limit flag with that value.
        name = {"attestation": "confkube-attest", "webhook": "confkube-webhook"}[server]
        args = args_of(docs, "Deployment", name)
        for key, flag in LIMIT_FLAGS.items():
            need(f"{flag}={limits.get(key)}" in args,
                 f"{server}: the Deployment does not pass {flag}={limits.get(key)} ({args})")



def _tls_files(d: Path) -> None:
    """A self-signed serving certificate for 127.0.0.1/localhost: tls.crt, tls.key, ca.crt."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chart-check")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    d.mkdir(parents=True, exist_ok=True)
    (d / "tls.crt").write_bytes(pem)
    (d / "ca.crt").write_bytes(pem)
    (d / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_servers(docs, binary: Path, label: str) -> int:
    """Starts the rendered attestation service and webhook on loopback; waits for /readyz."""
    import shutil as sh
    import ssl
    import tempfile
    import time
    import urllib.request

    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    started = 0
    for d in by_kind(docs, "Deployment"):
        ps = d["spec"]["template"]["spec"]
        c = ps["containers"][0]
        args = list(c["args"])
        if not any(a in ("webhook", "attest") for a in args):
            continue
        ident = f"{label}: Deployment {d['metadata']['name']}"
        tmp = Path(tempfile.mkdtemp(prefix="chart-check-"))
        try:
            vols = {v["name"]: v for v in ps.get("volumes", [])}
            mounts = sorted(c.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
            for m in mounts:
                host = tmp / m["name"]
                host.mkdir(parents=True, exist_ok=True)
                v = vols[m["name"]]
                if m["name"] == "tls":
                    _tls_files(host)
                elif m["name"] == "admin":
                    (host / "token").write_text("chart-check-admin-token-0123456789abcdef")
                elif m["name"] == "keys":
                    r = subprocess.run([str(binary), "attest", "keygen", "--alg", "ES256", "--out",
                                        str(host / "key-2026-11.pem")], capture_output=True, text=True)
                    need(r.returncode == 0, f"{ident}: attest keygen: {r.stderr.strip()}")
                elif m["name"] == "policy":
                    cm = configmaps.get(v["configMap"]["name"])
                    text = cm["data"]["policy.json"] if cm else '{"rules": [{"name": "default"}]}'
                    (host / "policy.json").write_text(text)
                elif m["name"] == "pccs-ca":
                    _tls_files(host)
                elif m["name"] == "secrets":
                    (host / "db-password").write_text("chart-check-secret-value")
                elif m["name"] == "secret-policies":
                    (host / "policies.json").write_text(
                        json.dumps({"db-password": {"policy": {"rules": [{"name": "default"}]}}}))
                elif m["name"] == "secrets-kek":
                    (host / "kek").write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
                os.chmod(host, 0o700)
            port = _free_port()
            real = []
            for a in args:
                if a.startswith("--listen="):
                    a = f"--listen=127.0.0.1:{port}"
                for m in mounts:
                    a = a.replace("=" + m["mountPath"], "=" + str(tmp / m["name"]), 1)
                real.append(a)
            proc = subprocess.Popen([str(binary), *real], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ready, deadline = False, time.time() + 60
            while time.time() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=2) as r:
                        ready = r.status == 200
                        break
                except OSError:
                    time.sleep(0.2)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            err = proc.stderr.read() if proc.stderr else ""
            need(ready, f"{ident}: the rendered command did not become ready: `confkube {' '.join(real)}`: "
                        f"{err.strip()[-800:]}")
            started += 1
        finally:
            sh.rmtree(tmp, ignore_errors=True)
    return started


def check_flag_check_can_fail(binary: Path) -> None:
    r = subprocess.run([str(binary), "webhook", "--tls-cert=/tls/tls.crt", "--no-such-flag", "--help"],
                       capture_output=True, text=True, timeout=30)
    need(r.returncode == 2 and "--no-such-flag" in r.stderr,
         f"the flag check cannot fail: an unknown flag before --help gave exit {r.returncode}")
    r = subprocess.run([str(binary), "webhook", "--listen=not-an-address", "--help"],
                       capture_output=True, text=True, timeout=30)
    need(r.returncode == 2, f"the flag check does not catch bad values (exit {r.returncode})")


def known_metrics() -> set[str]:
    """Metric names the project exports (documented in docs/) or records (the chart's rules)."""
    import yaml

    names = set()
    for md in (ROOT / "docs").glob("*.md"):
        names |= set(re.findall(r"\bconfkube_[a-z0-9_]+", md.read_text()))
    for g in yaml.safe_load(RULES.read_text())["groups"]:
        names |= {r["record"] for r in g["rules"] if "record" in r}
    return names


def check_monitoring(promtool: str | None) -> None:
    import tempfile

    import yaml

    exprs: list[tuple[str, str]] = []
    dash = json.loads(DASHBOARD.read_text())
    for p in dash["panels"]:
        for t in p.get("targets", []):
            exprs.append((f"dashboard panel {p['title']!r}", t["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.match(r"label_values\((.+), *[a-z_]+\)$", v["query"]["query"])
            need(m is not None, f"dashboard variable {v['name']}: unexpected query {v['query']['query']}")
            if m:
                exprs.append((f"dashboard variable {v['name']}", m.group(1)))
    adapter = yaml.safe_load((AUTOSCALING / "prometheus-adapter-values.yaml").read_text())
    for r in adapter["rules"]["custom"]:
        series = r["seriesQuery"]
        q = (r["metricsQuery"].replace("<<.GroupBy>>", "namespace, pod")
             .replace("<<.Series>>", series.split("{")[0])
             .replace("<<.LabelMatchers>>", 'namespace="shop", pod=~"enclave-.*"'))
        exprs.append((f"prometheus-adapter rule {r['name']['as']}", q))
        exprs.append((f"prometheus-adapter seriesQuery {series}", series))
    known = known_metrics()
    for where, e in exprs:
        for m in re.findall(r"\bconfkube[_:][a-z0-9_:]+", e):
            base = re.sub(r"_(bucket|sum|count)$", "", m)
            need(m in known or base in known, f"{where}: metric {m} is neither exported (docs/) nor recorded")
    if promtool is None:
        return
    # promtool parses PromQL through `check rules`: one recording rule per expression.
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        rules = [{"record": f"check:expr_{i}", "expr": re.sub(r"\$\{?[a-z]+\}?", ".*", e)}
                 for i, (_, e) in enumerate(exprs)]
        yaml.safe_dump({"groups": [{"name": "parse", "rules": rules}]}, f)
    r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    need(r.returncode == 0, f"dashboard/adapter PromQL does not parse: {r.stdout}{r.stderr}")
    os.unlink(f.name)
    for cmd in (["check", "rules", str(RULES)], ["test", "rules", str(ROOT / "deploy" / "tests" / "rules-test.yaml")]):
        r = subprocess.run([promtool, *cmd], capture_output=True, text=True)
        need(r.returncode == 0, f"promtool {' '.join(cmd)}: {r.stdout}{r.stderr}")
    print(f"   {len(exprs)} dashboard/adapter expressions parse; rules checked and unit-tested (promtool)")


# What gcr.io/distroless/cc-debian12 provides: glibc (libc, libm, libpthread, libdl, librt,
# the loader) and libgcc_s. Anything else the binary links would be missing at run time.
DISTROLESS_CC_LIBS = {"linux-vdso.so.1", "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2",
                      "librt.so.1", "libgcc_s.so.1", "ld-linux-x86-64.so.2"}


def check_linked_libraries(binary: Path) -> None:
    r = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"ldd {binary}: {r.stderr.strip()}")
        return
    libs = {Path(ln.split()[0]).name for ln in r.stdout.splitlines() if ln.strip()}
    extra = sorted(libs - DISTROLESS_CC_LIBS)
    need(not extra, f"the binary links {extra}, which the distroless cc image does not have")


def check_dockerfile() -> None:
    import fnmatch

    import yaml

    text = (ROOT / "Dockerfile").read_text()
    ignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for pat in ignore:
            neg = pat.startswith("!")
            pat = pat.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
                keep = neg
        return keep

    for ln in text.splitlines():
        m = re.match(r"COPY\s+(?!--from)(.+)\s+(\S+)$", ln)
        if not m:
            continue
        for src in m.group(1).split():
            need((ROOT / src).exists(), f"Dockerfile: COPY source {src} does not exist")
            need(included(src), f"Dockerfile: COPY source {src} is excluded by .dockerignore")
    rust = re.search(r'^rust-version = "([0-9.]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    base = re.search(r"FROM \S*rust:([0-9.]+)", text)
    need(bool(rust and base and base.group(1) == rust.group(1)),
         f"Dockerfile: build stage rust:{base and base.group(1)} differs from rust-version {rust and rust.group(1)}")
    user = re.findall(r"^USER (\d+):(\d+)$", text, re.M)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = values["podSecurityContext"]["runAsUser"]
    need(user == [(str(uid), str(uid))], f"Dockerfile: USER {user} is not the chart's runAsUser {uid}")
    need("--locked" in text, "Dockerfile: the build must use Cargo.lock (--locked)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", type=Path, required=True, help="the confkube binary to check flags against")
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "chart-render")
    a = ap.parse_args()
    import helm_python as helm
    import yaml

    a.out.mkdir(parents=True, exist_ok=True)
    print(f"== helm lint {CHART.relative_to(ROOT)} (Helm SDK {helm.helm_sdk_version()})")
    sets = [("default", None)] + [(p.stem, yaml.safe_load(p.read_text()) or {})
                                  for p in sorted(VALUE_SETS.glob("*.yaml"))]
    for label, values in sets:
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
        for m in report.get("messages", []):
            if m.get("severity", 0) >= 2:
                fail(f"lint ({label}): {m.get('path')}: {m.get('error')}")
        for e in report.get("errors", []):
            fail(f"lint ({label}): {e}")

    check_flag_check_can_fail(a.binary)
    for label, values in sets:
        docs = render(values)
        (a.out / f"{label}.yaml").write_text(yaml.safe_dump_all([d for _, d in docs], sort_keys=False))
        kinds = sorted({d["kind"] for _, d in docs})
        print(f"== {label}: {len(docs)} objects ({', '.join(kinds)})")
        before = len(failures)
        validate(docs)
        common_expectations(docs)
        if label not in EXPECT:
            fail(f"value set deploy/values/{label}.yaml has no expectations in scripts/chart-check.py")
        else:
            EXPECT[label](docs)
        check_match_conditions(docs, label)
        repo = ((values or {}).get("image") or {}).get("repository") or \
            yaml.safe_load((CHART / "values.yaml").read_text())["image"]["repository"]
        n = check_flags(docs, a.binary, label, repo)
        if label == "default":
            check_limit_defaults(a.binary, docs)
        started = start_servers(docs, a.binary, label)
        mc = "matchConditions SKIPPED (no cel-python)" if _CEL_SKIP_REPORTED else "matchConditions"
        print(f"   schemas (Kubernetes {', '.join(KUBE_VERSIONS)}), expectations, {mc}, {n} command lines, {started} servers started: "
              f"{'ok' if len(failures) == before else 'FAILED'}")

    print("== Dockerfile")
    before = len(failures)
    check_dockerfile()
    check_linked_libraries(a.binary)
    print(f"   COPY sources, .dockerignore, toolchain, user, linked libraries: "
          f"{'ok' if len(failures) == before else 'FAILED'}")
    print("== autoscaling example")
    hpa = load_yaml_docs((AUTOSCALING / "hpa-example.yaml").read_text())
    validate([("deploy/autoscaling/hpa-example.yaml", d) for d in hpa])
    print("== monitoring: rules, dashboard, prometheus-adapter")
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            fail("promtool is required in CI (apt-get install prometheus)")
        else:
            print("   promtool not installed (apt-get install prometheus): rule tests and PromQL parsing skipped")
    check_monitoring(promtool)

    print("== values that must be refused")
    for p in sorted(BAD_VALUES.glob("*.yaml")):
        text = p.read_text()
        m = re.match(r"# expect-error: (.+)\n", text)
        if not m:
            fail(f"{p.name}: first line must be '# expect-error: <message>'")
            continue
        try:
            render(yaml.safe_load(text))
            fail(f"{p.name}: rendered, expected an error containing {m.group(1)!r}")
        except helm.HelmError as e:
            need(m.group(1) in str(e), f"{p.name}: error {str(e)!r} does not contain {m.group(1)!r}")
            print(f"   {p.name}: refused as expected")

    if failures:
        print(f"\n{len(failures)} chart check(s) failed", file=sys.stderr)
        return 1
    print("chart checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
