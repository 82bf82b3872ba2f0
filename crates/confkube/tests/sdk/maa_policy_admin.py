"""Microsoft's azure-security-attestation 1.0.0 AttestationAdministrationClient against a running
`confkube attest serve` (HTTPS on loopback), token validation on. Driven by
crates/confkube/tests/maa_policy_sdk.rs; prints one JSON object of observations on success.

Usage: maa_policy_admin.py MODE ENDPOINT CA_PEM ADMIN_TOKEN REQUEST_JSON [SIGNER_KEY SIGNER_CERT OTHER_KEY OTHER_CERT]
MODE: aad (no policy management certificates) or isolated (--policy-signer-cert SIGNER_CERT).
"""
import base64, datetime, hashlib, json, ssl, sys, time, urllib.request

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.security.attestation import (
    AttestationAdministrationClient, AttestationToken, AttestationType, PolicyModification)
from azure.security.attestation._generated.models import StoredAttestationPolicy

mode, endpoint, ca, admin, request_path = sys.argv[1:6]
SGX = AttestationType.SGX_ENCLAVE


class Cred:
    def __init__(self, token):
        self.token = token

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self.token, int(time.time()) + 3600)


def client(token=admin, **kw):
    return AttestationAdministrationClient(
        endpoint, Cred(token), connection_verify=ca, validate_token=True,
        validate_issuer=True, issuer=endpoint, validation_slack=5, **kw)


def expected_hash(policy, key=None, cert=None):
    tok = AttestationToken(body=StoredAttestationPolicy(attestation_policy=policy.encode("ascii")),
                           signing_key=key, signing_certificate=cert)
    return hashlib.sha256(tok.to_jwt_string().encode("utf-8")).digest()


def attest(body):
    ctx = ssl.create_default_context(cafile=ca)
    req = urllib.request.Request(endpoint + "/attest/SgxEnclave?api-version=2022-08-01",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            tok = json.load(r)["token"]
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read())}
    h, p, _ = tok.split(".")
    dec = lambda s: json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    return {"status": 200, "header": dec(h), "claims": dec(p)}


def http_error(fn):
    try:
        fn()
    except HttpResponseError as e:
        body = e.response.text() if e.response is not None else ""
        try:
            body = json.loads(body)
        except ValueError:
            pass
        return {"status": e.status_code, "message": str(e), "body": body}
    raise AssertionError("expected an HTTP error")


request = json.load(open(request_path))
MAA = """version=1.1;
configurationrules { => issueproperty(type="x-ms-sgx-tcbidentifier", value="azuredefault"); };
authorizationrules {
    [type=="x-ms-sgx-is-debuggable", value==false] && [type=="x-ms-sgx-svn", value>=0] => permit();
};
issuancerules {
    c:[type=="x-ms-sgx-mrsigner"] => issue(type="custom-signer", value=c.value);
    => issueproperty(type="report_validity_in_minutes", value=10);
};
"""
BROKEN = "version=1.0;\nauthorizationrules { [type==\"x-ms-sgx-svn\" value>=1] => permit(); };"
out = {}
c = client()

if mode == "aad":
    default_text, tok = c.get_policy(SGX)
    out["default"] = json.loads(default_text)
    out["get_alg"] = tok.algorithm
    res, tok = c.set_policy(SGX, MAA)
    assert res.policy_resolution == PolicyModification.UPDATED, res.policy_resolution
    assert res.policy_token_hash == expected_hash(MAA), "policy_token_hash"
    text, _ = c.get_policy(SGX)
    assert text == MAA, text
    a = attest(request)
    out["attest"] = {k: a["claims"].get(k) for k in ("custom-signer", "x-ms-sgx-mrsigner", "x-ms-policy-hash", "iat", "exp")}
    # The x-ms-policy-hash MAA defines: BASE64URL(SHA256(BASE64URL(policy text))).
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    out["policy_hash_ok"] = a["claims"]["x-ms-policy-hash"] == b64(hashlib.sha256(b64(MAA.encode()).encode()).digest())
    # A policy that does not parse: 400 naming line and column; the stored policy unchanged.
    out["broken"] = http_error(lambda: c.set_policy(SGX, BROKEN))
    assert c.get_policy(SGX)[0] == MAA
    # Wrong and missing admin tokens.
    out["wrong_token"] = http_error(lambda: client("not-the-admin-token").get_policy(SGX))
    out["wrong_token_set"] = http_error(lambda: client("not-the-admin-token").set_policy(SGX, MAA))
    # A draft policy in the MAA language: an unsecured token, the stored policy untouched.
    draft = dict(request, draftPolicyForAttestation="version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(type=\"drafted\", value=true); };")
    d = attest(draft)
    out["draft"] = {"alg": d["header"]["alg"], "drafted": d["claims"].get("drafted"), "custom-signer": d["claims"].get("custom-signer")}
    assert c.get_policy(SGX)[0] == MAA
    # A policy that denies.
    c.set_policy(SGX, "version=1.0; authorizationrules { [type==\"x-ms-sgx-svn\", value>=100] => permit(); };")
    out["denied"] = attest(request)
    res, _ = c.reset_policy(SGX)
    assert res.policy_resolution == PolicyModification.REMOVED, res.policy_resolution
    out["after_reset"] = json.loads(c.get_policy(SGX)[0])
else:
    key, cert, other_key, other_cert = [open(p).read() for p in sys.argv[6:10]]
    out["unsigned"] = http_error(lambda: c.set_policy(SGX, MAA))
    out["other_signer"] = http_error(lambda: c.set_policy(SGX, MAA, signing_key=other_key, signing_certificate=other_cert))
    res, _ = c.set_policy(SGX, MAA, signing_key=key, signing_certificate=cert)
    assert res.policy_resolution == PolicyModification.UPDATED
    assert res.policy_token_hash == expected_hash(MAA, key, cert), "signed policy_token_hash"
    signer_pem = res.policy_signer.certificates[0]
    out["signer_matches"] = "".join(signer_pem.split()) == "".join(cert.split())
    text, tok = c.get_policy(SGX)
    assert text == MAA
    out["unsigned_reset"] = http_error(lambda: c.reset_policy(SGX))
    res, _ = c.reset_policy(SGX, signing_key=key, signing_certificate=cert)
    assert res.policy_resolution == PolicyModification.REMOVED
    out["after_reset_rules"] = json.loads(c.get_policy(SGX)[0])["rules"][0]["name"]

print(json.dumps(out))
