// Microsoft's JS SDK (@azure/attestation 1.0.0, from ./js/node_modules), unmodified, against
// `confkube attest serve` over HTTPS with token validation on. Driven by
// crates/confkube/tests/maa_sdk.rs: argv[2] is a JSON file of inputs; one JSON object of results
// goes to stdout. TLS trust comes from NODE_EXTRA_CA_CERTS (the test CA).
"use strict";
const fs = require("fs");
const path = require("path");
const { AttestationClient } = require(path.join(__dirname, "js", "node_modules", "@azure", "attestation"));

const inp = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const endpoint = inp.endpoint;
const bytes = (s) => new Uint8Array(Buffer.from(s, "base64"));
const hex = (b) => (b === undefined ? null : Buffer.from(b).toString("base64"));

function result(body) {
  return {
    issuer: body.issuer,
    mr_enclave: body.mrEnclave,
    mr_signer: body.mrSigner,
    product_id: body.productId,
    svn: body.svn,
    is_debuggable: body.isDebuggable,
    enclave_held_data: body.enclaveHeldData === undefined ? null : hex(body.enclaveHeldData),
    runtime_claims: body.runTimeClaims === undefined ? null : body.runTimeClaims,
    version: body.version,
    verifier_type: body.verifierType,
  };
}

async function main() {
  // validateToken must be set for the SDK to check anything (getTokenProblems returns early
  // otherwise); the issuer check is what the issue asks for.
  const client = new AttestationClient(endpoint, {
    validationOptions: {
      validateToken: true,
      validateExpirationTime: true,
      validateNotBeforeTime: true,
      validateIssuer: true,
      expectedIssuer: endpoint,
    },
  });
  const out = {};
  const meta = await client.getOpenIdMetadata();
  out.metadata = { issuer: meta.issuer, jwks_uri: meta.jwks_uri };
  const signers = await client.getAttestationSigners();
  out.signers = signers.map((s) => ({ key_id: s.keyId, certificates: s.certificates.length }));
  let r = await client.attestSgxEnclave(bytes(inp.quote_binary), { runTimeData: bytes(inp.runtime_binary) });
  out.sgx_binary = result(r.body);
  out.sgx_binary.token_alg = r.token.algorithm;
  out.sgx_binary.token_kid = r.token.keyId;
  r = await client.attestSgxEnclave(bytes(inp.quote_json), { runTimeJson: bytes(inp.runtime_json) });
  out.sgx_json = result(r.body);
  r = await client.attestSgxEnclave(bytes(inp.quote_plain));
  out.sgx_plain = result(r.body);
  r = await client.attestOpenEnclave(bytes(inp.oe_report), { runTimeData: bytes(inp.runtime_binary) });
  out.open_enclave = result(r.body);
  try {
    await client.attestSgxEnclave(bytes(inp.quote_tampered));
    out.tampered = { raised: false };
  } catch (e) {
    out.tampered = {
      raised: true,
      name: e.name,
      status: e.statusCode,
      code: e.code === undefined ? null : e.code,
      message: e.message,
      text: String(e),
    };
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
