// Check simple-otp tokens with jose, a library the service does not use.
//
//   node tests/js/verify_token.mjs <jwks_url> <issuer> < cases.json
//
// stdin: a JSON list of {"name", "token", "audience", "at"} ("at": the time to
// verify at, in seconds since the epoch, so that no answer depends on how fast
// the machine is). stdout: a JSON list, in the same order, of
// {"name", "ok": true, "header", "payload"} for a token jose accepts and
// {"name", "ok": false, "code", "message"} for one it refuses.
// jose is resolved from frontend/ (its devDependency), as a package would be.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const frontend = createRequire(new URL("../../frontend/package.json", import.meta.url));
const { createRemoteJWKSet, jwtVerify } = await import(pathToFileURL(frontend.resolve("jose")).href);

const [jwksUrl, issuer] = process.argv.slice(2);
if (!jwksUrl || !issuer) {
  console.error("usage: node verify_token.mjs <jwks_url> <issuer> < cases.json");
  process.exit(2);
}

const jwks = createRemoteJWKSet(new URL(jwksUrl));
const cases = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const { name, token, audience, at } of cases) {
  try {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      algorithms: ["ES256"],
      issuer,
      audience,
      typ: "JWT",
      clockTolerance: 0,
      currentDate: new Date(at * 1000),
      requiredClaims: ["sub", "exp", "iat", "jti"],
    });
    results.push({ name, ok: true, header: protectedHeader, payload });
  } catch (error) {
    results.push({ name, ok: false, code: error.code ?? error.name, message: String(error.message) });
  }
}
process.stdout.write(JSON.stringify(results) + "\n");
