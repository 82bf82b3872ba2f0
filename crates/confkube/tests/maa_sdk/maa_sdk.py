# Microsoft's Python SDK (azure-security-attestation 1.0.0), unmodified, against
# `confkube attest serve` over HTTPS with token validation on. Driven by
# crates/confkube/tests/maa_sdk.rs: argv[1] is a JSON file of inputs; one JSON object of results
# goes to stdout. TLS trust comes from REQUESTS_CA_BUNDLE (the test CA).
import base64
import json
import sys

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.security.attestation import AttestationClient


class Credential:
    """The attestation APIs need no Azure AD token; the SDK still asks for a credential."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("unused", 4102444800)


def b64(s):
    return base64.b64decode(s)


def result(r):
    return {
        "issuer": r.issuer,
        "mr_enclave": r.mr_enclave,
        "mr_signer": r.mr_signer,
        "product_id": r.product_id,
        "svn": r.svn,
        "is_debuggable": r.is_debuggable,
        "enclave_held_data": None
        if r.enclave_held_data is None
        else base64.b64encode(r.enclave_held_data).decode(),
        "runtime_claims": r.runtime_claims,
        "version": r.version,
        "verifier_type": r.verifier_type,
        "policy_hash": None if r.policy_hash is None else base64.b64encode(r.policy_hash).decode(),
    }


inp = json.load(open(sys.argv[1]))
endpoint = inp["endpoint"]
client = AttestationClient(
    endpoint,
    Credential(),
    validate_token=True,
    validate_signature=True,
    validate_expiration=True,
    validate_issuer=True,
    issuer=endpoint,
)
out = {}
meta = client.get_open_id_metadata()
out["metadata"] = {"issuer": meta.get("issuer"), "jwks_uri": meta.get("jwks_uri")}
out["signers"] = [
    {"key_id": s.key_id, "certificates": len(s.certificates)}
    for s in client.get_signing_certificates()
]
r, token = client.attest_sgx_enclave(b64(inp["quote_binary"]), runtime_data=b64(inp["runtime_binary"]))
out["sgx_binary"] = result(r)
out["sgx_binary"]["token_alg"] = token.algorithm
out["sgx_binary"]["token_kid"] = token.key_id
r, _ = client.attest_sgx_enclave(b64(inp["quote_json"]), runtime_json=b64(inp["runtime_json"]))
out["sgx_json"] = result(r)
r, _ = client.attest_sgx_enclave(b64(inp["quote_plain"]))
out["sgx_plain"] = result(r)
r, _ = client.attest_open_enclave(b64(inp["oe_report"]), runtime_data=b64(inp["runtime_binary"]))
out["open_enclave"] = result(r)
try:
    client.attest_sgx_enclave(b64(inp["quote_tampered"]))
    out["tampered"] = {"raised": False}
except HttpResponseError as e:
    out["tampered"] = {
        "raised": True,
        "status": e.status_code,
        "code": e.error.code if e.error else None,
        "message": e.error.message if e.error else None,
        "text": str(e),
    }
print(json.dumps(out))
