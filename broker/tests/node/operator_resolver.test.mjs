// nats.js in operator mode with the full resolver, against nats-server (the
// reference) and tribune-broker with the same configuration: a system user
// pushes an account JWT over $SYS.REQ.CLAIMS.UPDATE, a user of that account
// connects with credsAuthenticator, and a second push revoking the user
// ends its connection. Keys come from nkeys; JWTs are signed here as nsc
// signs them. Servers and binaries: servers.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { connect } from "@nats-io/transport-node";
import { credsAuthenticator, nkeys } from "@nats-io/nats-core";

import { flavors, sleep, startConfigured } from "./servers.mjs";

const b64 = (bytes) => Buffer.from(bytes).toString("base64url");
const enc = new TextEncoder();

/** A NATS JWT of `claims`, signed by `signer` (an nkeys key pair). */
function sign(claims, signer) {
  const iss = signer.getPublicKey();
  const body = { ...claims, iss, iat: Math.floor(Date.now() / 1000) };
  body.jti = b64(enc.encode(`${body.sub}.${body.iat}.${Math.random()}`)).slice(0, 52);
  const head = b64(enc.encode(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" })));
  const input = `${head}.${b64(enc.encode(JSON.stringify(body)))}`;
  return `${input}.${b64(signer.sign(enc.encode(input)))}`;
}

const account = (kp, name, nats = {}) => ({
  sub: kp.getPublicKey(),
  name,
  nats: { limits: { subs: -1, data: -1, payload: -1, conn: -1 }, type: "account", version: 2, ...nats },
});

const user = (kp, name) => ({
  sub: kp.getPublicKey(),
  name,
  nats: { pub: {}, sub: {}, subs: -1, data: -1, payload: -1, type: "user", version: 2 },
});

function creds(token, kp) {
  const seed = new TextDecoder().decode(kp.getSeed());
  return enc.encode(
    `-----BEGIN NATS USER JWT-----\n${token}\n------END NATS USER JWT------\n\n` +
      `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`,
  );
}

for (const [label, bin] of flavors) {
  test(`nats.js pushes an account and revokes a user against ${label}`, async () => {
    const op = nkeys.createOperator();
    const sys = nkeys.createAccount();
    const app = nkeys.createAccount();
    const operatorJwt = sign(
      {
        sub: op.getPublicKey(),
        name: "OP",
        nats: { system_account: sys.getPublicKey(), type: "operator", version: 2 },
      },
      op,
    );
    const dir = mkdtempSync(join(tmpdir(), "tribune-njs-jwt-"));
    const srv = await startConfigured(
      bin,
      ({ wsPort }) =>
        `operator: ${operatorJwt}\n` +
        `system_account: ${sys.getPublicKey()}\n` +
        `resolver: { type: full, dir: "${join(dir, "jwt")}" }\n` +
        `resolver_preload: { ${sys.getPublicKey()}: ${sign(account(sys, "SYS"), op)} }\n` +
        `websocket { port: ${wsPort}, no_tls: true }\n`,
    );
    const admin = nkeys.createUser();
    const fan = nkeys.createUser();
    const servers = `127.0.0.1:${srv.port}`;
    try {
      const sysConn = await connect({
        servers,
        authenticator: credsAuthenticator(creds(sign(user(admin, "admin"), sys), admin)),
      });
      const pushed = await sysConn.request(
        "$SYS.REQ.CLAIMS.UPDATE",
        sign(account(app, "APP"), op),
        { timeout: 10_000 },
      );
      const data = pushed.json().data;
      assert.deepEqual([data.code, data.message, data.account], [200, "jwt updated", app.getPublicKey()], label);

      const nc = await connect({
        servers,
        reconnect: false,
        authenticator: credsAuthenticator(creds(sign(user(fan, "fan"), app), fan)),
      });
      const closed = nc.closed();
      await nc.flush();
      await sleep(1100); // a revocation covers JWTs issued before it
      const revoking = account(app, "APP", {
        revocations: { [fan.getPublicKey()]: Math.floor(Date.now() / 1000) },
      });
      const revoked = await sysConn.request(
        `$SYS.REQ.ACCOUNT.${app.getPublicKey()}.CLAIMS.UPDATE`,
        sign(revoking, op),
        { timeout: 10_000 },
      );
      assert.equal(revoked.json().data.message, "jwt updated", label);
      const why = await Promise.race([closed, sleep(10_000).then(() => "still open")]);
      assert.notEqual(why, "still open", `${label}: the revoked user's connection`);
      assert.match(String(why?.message ?? why), /revoked/i, label);
      await sysConn.close();
    } finally {
      srv.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
