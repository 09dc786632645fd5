// The browsers' client, @nats-io/nats-core `wsconnect`, against the
// WebSocket listener of nats-server (the reference: validates the test)
// and of tribune-broker, with the same configuration: publish/subscribe,
// request/reply and 1 MB payloads with compression off and on (checked on
// the socket: the permessage-deflate extension is in use or not), token
// and user/password authorization of the websocket block with a refused
// bad token reported alike, and failover of a client that only knew one
// node of a three-node cluster to another when its node is killed (it
// learns the others from the ws connect URLs the cluster gossips).
//
// Node 20 has WebSocket behind --experimental-websocket; the Makefile's
// test-node target passes it. Deadlines only guard against hanging.
import { test } from "node:test";
import assert from "node:assert/strict";

import { wsconnect } from "@nats-io/nats-core";

import { flavors, sleep, startCluster, startConfigured } from "./servers.mjs";

const MB = 1024 * 1024;
const GUARD_MS = 60_000;

/** A socket factory that remembers the sockets it made. */
function recordingFactory() {
  const sockets = [];
  const factory = async (url) => {
    const socket = new WebSocket(url);
    sockets.push(socket);
    return { socket, encrypted: url.startsWith("wss") };
  };
  return { factory, sockets };
}

async function withTimeout(what, promise, ms = 10_000) {
  let timer;
  const guard = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

async function pubSubRequestBig(nc, label) {
  const sub = nc.subscribe("t.>");
  const got = [];
  const done = (async () => {
    for await (const m of sub) {
      got.push(m);
      if (got.length === 11) break;
    }
  })();
  for (let i = 0; i < 10; i++) nc.publish(`t.${i}`, `hello ${i}`);
  const big = new Uint8Array(MB);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  nc.publish("t.big", big);
  await withTimeout(`${label}: messages`, done);
  assert.deepEqual(
    got.slice(0, 10).map((m) => `${m.subject}=${m.string()}`),
    [...Array(10).keys()].map((i) => `t.${i}=hello ${i}`),
    label,
  );
  assert.equal(got[10].subject, "t.big", label);
  assert.equal(got[10].data.length, MB, `${label}: 1 MB came back whole`);
  assert.ok(got[10].data.every((b, i) => b === i % 251), `${label}: 1 MB intact`);

  const svc = nc.subscribe("svc.echo", {
    callback: (err, m) => {
      if (!err) m.respond(`echo: ${m.string()}`);
    },
  });
  const r = await withTimeout(`${label}: request`, nc.request("svc.echo", "hi", { timeout: 5_000 }));
  assert.equal(r.string(), "echo: hi", label);
  svc.unsubscribe();
}

for (const compression of [false, true]) {
  test(`wsconnect pub/sub, request/reply, 1 MB, compression ${compression ? "on" : "off"}`, { timeout: GUARD_MS }, async () => {
    for (const [label, bin] of flavors) {
      // A 1 MB payload plus its PUB line: more than 1 MB in one message.
      const server = await startConfigured(
        bin,
        ({ wsPort }) =>
          `max_payload: 2MB\nwebsocket { host: 127.0.0.1, port: ${wsPort}, no_tls: true, compression: ${compression} }\n`,
      );
      const { factory, sockets } = recordingFactory();
      try {
        const nc = await wsconnect({ servers: server.wsUrl, wsFactory: factory });
        try {
          assert.equal(nc.info.max_payload, 2 * MB, label);
          assert.equal(nc.info.port, server.wsPort, `${label}: INFO names the WebSocket port`);
          const ext = sockets[0].extensions;
          if (compression) {
            assert.match(ext, /permessage-deflate/, `${label}: compression negotiated`);
          } else {
            assert.equal(ext, "", `${label}: no compression`);
          }
          await pubSubRequestBig(nc, `${label} compression=${compression}`);
        } finally {
          await nc.close();
        }
      } finally {
        server.stop();
      }
    }
  });
}

test("websocket authorization: token, user/password, a bad token refused alike", { timeout: GUARD_MS }, async () => {
  const refusals = [];
  for (const [label, bin] of flavors) {
    const tokenServer = await startConfigured(
      bin,
      ({ wsPort }) =>
        `websocket { host: 127.0.0.1, port: ${wsPort}, no_tls: true, authorization { token: s3cret } }\n`,
    );
    try {
      const nc = await wsconnect({ servers: tokenServer.wsUrl, token: "s3cret" });
      await pubSubRequestBig(nc, `${label} token`);
      await nc.close();
      const err = await wsconnect({
        servers: tokenServer.wsUrl,
        token: "wrong",
        reconnect: false,
      }).then(
        () => null,
        (e) => e,
      );
      assert.ok(err, `${label}: a bad token is refused`);
      refusals.push([label, `${err.name}: ${err.message}`]);
    } finally {
      tokenServer.stop();
    }
    const userServer = await startConfigured(
      bin,
      ({ wsPort }) =>
        `websocket { host: 127.0.0.1, port: ${wsPort}, no_tls: true, authorization { user: alice, password: pw } }\n`,
    );
    try {
      const nc = await wsconnect({ servers: userServer.wsUrl, user: "alice", pass: "pw" });
      await pubSubRequestBig(nc, `${label} user`);
      await nc.close();
      const err = await wsconnect({
        servers: userServer.wsUrl,
        user: "alice",
        pass: "nope",
        reconnect: false,
      }).then(
        () => null,
        (e) => e,
      );
      assert.ok(err, `${label}: a bad password is refused`);
    } finally {
      userServer.stop();
    }
  }
  assert.equal(refusals.length, 2);
  assert.equal(refusals[0][1], refusals[1][1], `the same error on both: ${JSON.stringify(refusals)}`);
  assert.match(refusals[0][1], /Authorization Violation/);
});

test("a wsconnect client that knew one node fails over to another when it is killed", { timeout: 120_000 }, async () => {
  for (const [label, bin] of flavors) {
    const cluster = await startCluster(bin, 3, {
      jetstream: false,
      config: (n) => `websocket { host: ${n.ip}, port: ${n.wsPort}, no_tls: true }\n`,
    });
    try {
      const [a] = cluster.nodes;
      const wsUrls = cluster.nodes.map((n) => `${n.ip}:${n.wsPort}`).sort();
      const nc = await wsconnect({
        servers: `ws://${a.ip}:${a.wsPort}`,
        name: "failover",
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
      });
      try {
        // The cluster's WebSocket URLs reach the client as connect_urls.
        for (let i = 0; nc.info.connect_urls?.length !== 3 && i < 100; i++) {
          await nc.flush();
          await sleep(100);
        }
        assert.deepEqual([...(nc.info.connect_urls ?? [])].sort(), wsUrls, `${label}: ws connect URLs`);
        assert.equal(nc.info.server_name, a.name, label);

        const reconnected = (async () => {
          for await (const s of nc.status()) {
            if (s.type === "reconnect") return s;
          }
        })();
        cluster.kill(a);
        await withTimeout(`${label}: reconnect`, reconnected, 30_000);
        assert.notEqual(nc.info.server_name, a.name, `${label}: on another node now`);
        await pubSubRequestBig(nc, `${label} after failover`);
      } finally {
        await nc.close();
      }
    } catch (e) {
      e.message += `\n${cluster.diagnostics()}`;
      throw e;
    } finally {
      cluster.stop();
    }
  }
});
