"""Enclave side of the secret-release interop test, with Python jwcrypto.

  python3 jwe.py gen RSA|P-256|P-384 KID   -> private JWK (JSON) on stdout
  python3 jwe.py decrypt KEYFILE < JWE     -> {"header": {...}, "plaintext_b64": "..."}
"""
import base64
import json
import sys

from jwcrypto import jwe, jwk


def main():
    if sys.argv[1] == "gen":
        kind, kid = sys.argv[2], sys.argv[3]
        if kind == "RSA":
            key = jwk.JWK.generate(kty="RSA", size=2048, kid=kid)
        else:
            key = jwk.JWK.generate(kty="EC", crv=kind, kid=kid)
        print(key.export_private())
        return
    if sys.argv[1] == "decrypt":
        with open(sys.argv[2]) as f:
            key = jwk.JWK.from_json(f.read())
        token = jwe.JWE()
        token.allowed_algs = ["RSA-OAEP-256", "ECDH-ES+A256KW", "A256GCM"]
        token.deserialize(sys.stdin.read().strip(), key=key)
        print(json.dumps({
            "header": json.loads(token.objects["protected"]),
            "plaintext_b64": base64.b64encode(token.payload).decode(),
        }))
        return
    sys.exit("usage: jwe.py gen KIND KID | decrypt KEYFILE")


if __name__ == "__main__":
    main()
